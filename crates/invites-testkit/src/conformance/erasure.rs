//! The directory's other half and the erasure of a person (docs/contract.md §11).

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The directory's other half changes access: removing an organization member takes the
/// organization path away (explicit memberships stay), changing its role changes the role
/// (a non-member is not added), taking a website out of a group takes that group path away,
/// and deleting a group deletes its memberships and invitations (no row is left naming it,
/// and a batch that only invited to it opens nothing). Each reports whether it changed
/// something.
pub async fn directory_changes_change_access(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 190).await;
    let (ws, gs) = (&w.websites, &w.groups);
    let p = w.global_key();

    // Organization members.
    let bob = add_to_sites(&h, &p, "bob@new.test", &[ws[0]], Role::Viewer).await;
    backend
        .add_org_member(w.org, bob, OrgRole::Admin)
        .await
        .expect("org member");
    assert_eq!(
        access_of(&h, bob, ws[0]).await,
        reach(Role::Admin, &[direct(Role::Viewer), org(OrgRole::Admin)])
    );
    assert!(
        backend
            .remove_org_member(w.org, bob, h.clock.now())
            .await
            .expect("remove")
    );
    assert_eq!(access_of(&h, bob, ws[1]).await, None);
    assert_eq!(
        access_of(&h, bob, ws[0]).await,
        reach(Role::Viewer, &[direct(Role::Viewer)]),
        "the explicit membership stays"
    );
    assert!(
        !backend
            .remove_org_member(w.org, bob, h.clock.now())
            .await
            .expect("again")
    );
    assert!(
        !backend
            .remove_org_member(w.other_org, w.org_admin, h.clock.now())
            .await
            .expect("another organization")
    );
    assert!(
        !snapshot(&backend)
            .await
            .org_members
            .iter()
            .any(|(_, u, _)| *u == bob)
    );

    assert!(
        backend
            .set_org_role(w.org, w.org_admin, OrgRole::Viewer, h.clock.now())
            .await
            .expect("set role")
    );
    assert_eq!(
        access_of(&h, w.org_admin, ws[3]).await,
        reach(Role::Viewer, &[org(OrgRole::Viewer)])
    );
    assert!(
        backend
            .set_org_role(w.org, w.org_admin, OrgRole::Owner, h.clock.now())
            .await
            .expect("set role")
    );
    assert_eq!(
        access_of(&h, w.org_admin, ws[3]).await,
        reach(Role::Admin, &[org(OrgRole::Owner)])
    );
    let before = snapshot(&backend).await;
    assert!(
        !backend
            .set_org_role(w.org, w.existing_user, OrgRole::Admin, h.clock.now())
            .await
            .expect("set role")
    );
    assert!(
        !backend
            .set_org_role(w.other_org, w.org_admin, OrgRole::Admin, h.clock.now())
            .await
            .expect("set role")
    );
    assert_eq!(
        snapshot(&backend).await,
        before,
        "a non-member is not added"
    );

    // Group links.
    let carol = add_to_groups(&h, &w, "carol@new.test", &[gs[0]], Role::Admin).await;
    assert_eq!(
        access_of(&h, carol, ws[1]).await,
        reach(Role::Admin, &[via(gs[0], Role::Admin)])
    );
    assert!(
        backend
            .remove_website_from_group(gs[0], ws[1], h.clock.now())
            .await
            .expect("unlink")
    );
    assert_eq!(access_of(&h, carol, ws[1]).await, None);
    assert!(
        access_of(&h, carol, ws[0]).await.is_some(),
        "the other website"
    );
    let members = h
        .service
        .members_of(&p, web(ws[1]), None, 10)
        .await
        .expect("members");
    assert!(members.items.iter().all(|m| m.user_id != carol));
    assert!(
        !backend
            .remove_website_from_group(gs[0], ws[1], h.clock.now())
            .await
            .expect("again")
    );
    assert!(
        !backend
            .remove_website_from_group(gs[1], ws[0], h.clock.now())
            .await
            .expect("never in it")
    );

    // Deleting a group.
    let dave = add_to_groups(&h, &w, "dave@new.test", &[gs[1]], Role::Viewer).await;
    run(&h, &p, groups(ByEmail, "erin@new.test", &[gs[1]])).await;
    let erin_token = h.last_token();
    run(&h, &p, groups(ByEmail, "frank@new.test", &[gs[0], gs[1]])).await;
    let frank_token = h.last_token();
    let pending_to_g0 = stored_pending(&snapshot(&backend).await, grp(gs[0]), "frank@new.test");
    assert_eq!(pending_to_g0, 1);
    assert!(access_of(&h, dave, ws[2]).await.is_some());

    assert!(
        backend
            .delete_group(gs[1], h.clock.now())
            .await
            .expect("delete")
    );
    let s = snapshot(&backend).await;
    assert!(
        !s.memberships.iter().any(|m| m.target == grp(gs[1])),
        "no membership names the group"
    );
    assert!(
        !s.invitations.iter().any(|i| i.target == grp(gs[1])),
        "no invitation names the group"
    );
    assert!(
        !to_json!(&s).contains(&gs[1].0.to_string()),
        "no stored row names the group"
    );
    assert_eq!(access_of(&h, dave, ws[2]).await, None);
    assert_eq!(access_of(&h, dave, ws[3]).await, None);
    assert_code(
        h.service.members_of(&p, grp(gs[1]), None, 10).await,
        ErrorCode::NotFound,
    );
    let r = h
        .service
        .remove_member(&p, grp(gs[1]), dave)
        .await
        .expect("answered");
    assert_eq!(r.code, MemberOutcome::TargetNotFound);
    assert_code(
        h.service.preview(&erin_token).await,
        ErrorCode::InvalidToken,
    );
    assert_code(
        h.service.accept(&erin_token, None).await,
        ErrorCode::InvalidToken,
    );
    let preview = h.service.preview(&frank_token).await.expect("still opens");
    let targets: Vec<TargetId> = preview.invitations.iter().map(|i| i.target).collect();
    assert_eq!(
        targets,
        vec![grp(gs[0])],
        "the invitation to the other group stays"
    );
    assert_eq!(stored_pending(&s, grp(gs[0]), "frank@new.test"), 1);
    assert!(
        !backend
            .delete_group(gs[1], h.clock.now())
            .await
            .expect("again")
    );
    assert!(
        !backend
            .delete_group(missing_group(), h.clock.now())
            .await
            .expect("unknown")
    );
    assert_eq!(
        snapshot(&backend).await,
        s,
        "deleting nothing changes nothing"
    );
    let theirs = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x1901)));
    h.service
        .members_of(&theirs, grp(w.other_group), None, 10)
        .await
        .expect("another organization's group stays");
}

/// `erase_person` (the address in any spelling) deletes the user with every website, group
/// and organization membership in any organization, every invitation, batch and outbox
/// message to the address, and the stored idempotent responses naming the user: afterwards
/// no stored row holds the address, the names or the id, the erased batch's token is
/// `invalid_token`, an idempotent replay of a request that named the user executes afresh,
/// another person's rows and replays are untouched, and the purge still works. An invalid
/// address is `invalid_email` (field `email`); an unknown one erases nothing.
pub async fn erasure_leaves_nothing_of_the_person(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 191).await;
    let (ws, gs) = (&w.websites, &w.groups);
    let p = w.global_key();
    let theirs = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x1911)));

    let named = with_names(
        sites(Direct, "ann@new.test", &[ws[0]]),
        "Annabel",
        "Lovelace",
    );
    let first = h
        .service
        .bulk_invite_idempotent(&p, "k-ann", named.clone())
        .await
        .expect("first");
    let ann = first.user_id.expect("ann added");
    add_to_groups(&h, &w, "ann@new.test", &[gs[0]], Role::Viewer).await;
    run(
        &h,
        &theirs,
        sites(ByEmail, "ann@new.test", &[w.other_website]),
    )
    .await;
    backend
        .add_org_member(w.other_org, ann, OrgRole::Viewer)
        .await
        .expect("org member elsewhere");
    run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[2], ws[3]])).await;
    let ann_token = h.last_token();

    let bob_request = sites(Direct, "bob@new.test", &[ws[0]]);
    let bob_first = h
        .service
        .bulk_invite_idempotent(&p, "k-bob", bob_request.clone())
        .await
        .expect("bob");
    let bob = bob_first.user_id.expect("bob added");
    let bob_batch = batch_of(&run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[1]])).await);
    let bob_token = h.last_token();

    let before = snapshot(&backend).await;
    let keep = |s: &Snapshot| {
        let mut s = s.clone();
        let e = email("ann@new.test");
        s.users.retain(|u| u.email != e);
        s.memberships.retain(|m| m.user != ann);
        s.org_members.retain(|(_, u, _)| *u != ann);
        s.invitations.retain(|i| i.email != e);
        s.batches.retain(|b| b.2 != e);
        s.outbox.retain(|m| m.recipient != e);
        s
    };

    let e = assert_code(
        h.service.erase_person("not an address").await,
        ErrorCode::InvalidEmail,
    );
    assert_eq!(e.field(), Some("email"));
    let nobody = h
        .service
        .erase_person("nobody@new.test")
        .await
        .expect("erase unknown");
    assert_eq!(nobody, ErasureReport::default());
    assert_eq!(snapshot(&backend).await, before, "nothing changed");

    let report = h
        .service
        .erase_person("  ANN@New.TEST ")
        .await
        .expect("erase");
    assert_eq!(
        report,
        ErasureReport {
            user: Some(ann),
            memberships: 2,
            org_memberships: 1,
            invitations: 3,
            batches: 2,
            messages: 2,
            idempotency_records: 1,
        }
    );
    let after = snapshot(&backend).await;
    assert_eq!(after, keep(&before), "exactly the person's rows are gone");
    let stored = to_json!(&after).to_lowercase();
    for value in ["ann@new.test", "annabel", "lovelace", &ann.0.to_string()] {
        assert!(!stored.contains(value), "no stored row holds {value}");
    }
    for site in ws.iter().chain([&w.other_website]) {
        assert_eq!(access_of(&h, ann, *site).await, None);
    }
    assert_code(h.service.preview(&ann_token).await, ErrorCode::InvalidToken);
    assert_code(
        h.service.accept(&ann_token, None).await,
        ErrorCode::InvalidToken,
    );
    h.service
        .preview(&bob_token)
        .await
        .expect("bob's link works");
    let again = h.service.erase_person("ann@new.test").await.expect("again");
    assert_eq!(again, ErasureReport::default(), "nothing left to erase");

    let bob_replay = h
        .service
        .bulk_invite_idempotent(&p, "k-bob", bob_request)
        .await
        .expect("bob's replay");
    assert_eq!(
        bob_replay, bob_first,
        "another person's stored response stays"
    );
    assert_eq!(snapshot(&backend).await, after);
    let fresh = h
        .service
        .bulk_invite_idempotent(&p, "k-ann", named)
        .await
        .expect("replay after erasure");
    assert_ne!(fresh, first, "not the erased response");
    expect_codes(&fresh, &[(web(ws[0]), OutcomeCode::Added)]);
    assert!(fresh.user_created, "executed afresh");
    assert_ne!(fresh.user_id, Some(ann));

    // Retention still works around the hole the erasure left.
    h.clock.advance(Duration::from_secs(40 * 24 * 3600));
    let purged = h.service.purge_expired().await.expect("purge");
    assert_eq!(purged.batches, 1, "bob's dead batch: {purged:?}");
    assert_eq!(purged.idempotency_records, 2, "{purged:?}");
    let s = snapshot(&backend).await;
    assert!(!s.batches.iter().any(|b| b.0 == bob_batch));
    assert!(
        membership(&s, web(ws[0]), bob).is_some(),
        "memberships stay"
    );
    assert!(user(&s, "bob@new.test").is_some());
    assert_eq!(
        h.service.purge_expired().await.expect("purge"),
        PurgeReport::default()
    );
}
