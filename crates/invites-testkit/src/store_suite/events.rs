//! The event log of the storage port (docs/contract.md §12, `invites_core::events`): which
//! call writes which events, in which order, with which fields; reading by position; the
//! purge keeping positions.

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

const KEY: ApiKeyId = ApiKeyId(uuid::Uuid::from_u128(0x4b));

/// Every write of the port appends the events the `events` module docs list for it, at the
/// organization's next positions, with the call's time and actor; a call that changes
/// nothing appends none; another organization's log is untouched.
pub async fn every_change_writes_its_events_in_order(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    assert!(log_of(s, ORG).await.is_empty(), "seeding writes no event");

    // Email mode: one invitation_created per invited target.
    let mut inv = invite("bo@example.com", 1, &[web(A), web(B), web(FOREIGN)], T0);
    inv.actor = Some(KEY);
    s.create_invitations(&inv).await.expect("invite");
    let (ia, ib) = (inv.targets[0].1, inv.targets[1].1);
    // Direct mode: the user, then per target its membership and the invitation it superseded.
    let mut add_cmd = add("bo@example.com", 2, &[web(A), web(X)], at(10));
    add_cmd.actor = Some(KEY);
    let out = s.add_members(&add_cmd).await.expect("add");
    let bo = out.user.expect("created").id;
    let events = s.read_events(ORG, 0, 100).await.expect("read");
    let expected = [
        NewEvent::invitation_created(web(A), ia, BatchId(id(1)), Role::Viewer),
        NewEvent::invitation_created(web(B), ib, BatchId(id(1)), Role::Viewer),
        NewEvent::user_created(bo),
        NewEvent::member_added(web(A), bo, Role::Admin),
        NewEvent::invitation_superseded(web(A), ia, BatchId(id(1))),
        NewEvent::member_added(web(X), bo, Role::Admin),
    ];
    let ctx = |at| EventContext {
        organization: ORG,
        actor: Some(KEY),
        at,
    };
    let want: Vec<Event> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| e.at_position(&ctx(if i < 2 { T0 } else { at(10) }), i as u64 + 1))
        .collect();
    assert_eq!(events, want);
    assert_eq!(
        events[0].id(),
        format!("evt_{}_1", ORG.0.as_simple()),
        "ids are stable"
    );

    // Accept: invitation_accepted for B, and member_added (A was superseded: nothing).
    let accepted = s
        .accept_batch(&AcceptBatch {
            batch_id: BatchId(id(1)),
            token_hash: token(1),
            new_user: NewUser {
                id: UserId(id(0x99)),
                first_name: None,
                last_name: None,
            },
            now: at(20),
        })
        .await
        .expect("accept")
        .expect("opened");
    assert!(!accepted.user.created);
    let tail = s.read_events(ORG, 6, 100).await.expect("read");
    assert_eq!(
        tail,
        vec![
            NewEvent::invitation_accepted(web(B), ib, BatchId(id(1)), bo).at_position(
                &EventContext {
                    organization: ORG,
                    actor: None,
                    at: at(20)
                },
                7
            ),
            NewEvent::member_added(web(B), bo, Role::Viewer).at_position(
                &EventContext {
                    organization: ORG,
                    actor: None,
                    at: at(20)
                },
                8
            ),
        ]
    );

    // Membership changes: the removal (no live invitation of Bo to B is left to revoke:
    // it was accepted), an invitation and an add again, the role.
    let mut again = invite("bo@example.com", 3, &[web(X)], at(30));
    again.targets = vec![(web(B), InvitationId(id(3000)))];
    s.change_member(&access::ChangeMember {
        organization: ORG,
        target: web(B),
        user: bo,
        change: MemberChange::Remove,
        now: at(25),
        actor: Some(KEY),
    })
    .await
    .expect("remove");
    s.create_invitations(&again).await.expect("invite again");
    s.add_members(&add("bo@example.com", 4, &[web(B)], at(31)))
        .await
        .expect("add B again");
    let before = log_of(s, ORG).await.len();
    let unchanged = s
        .change_member(&access::ChangeMember {
            organization: ORG,
            target: web(X),
            user: bo,
            change: MemberChange::SetRole(Role::Admin),
            now: at(32),
            actor: Some(KEY),
        })
        .await
        .expect("same role");
    assert_eq!(unchanged, ChangeFact::Unchanged);
    assert_eq!(log_of(s, ORG).await.len(), before, "no change, no event");
    s.change_member(&access::ChangeMember {
        organization: ORG,
        target: web(X),
        user: bo,
        change: MemberChange::SetRole(Role::Viewer),
        now: at(33),
        actor: Some(KEY),
    })
    .await
    .expect("role");

    // Revoke, resend, deliveries.
    let inv5 = invite("cy@example.com", 5, &[web(A), web(B)], at(40));
    s.create_invitations(&inv5).await.expect("invite cy");
    let revoked = s
        .revoke_invitation(&RevokeInvitation {
            organization: ORG,
            id: inv5.targets[0].1,
            now: at(41),
            actor: Some(KEY),
        })
        .await
        .expect("revoke");
    assert_eq!(revoked, RevokeFact::Revoked);
    let again = s
        .revoke_invitation(&RevokeInvitation {
            organization: ORG,
            id: inv5.targets[0].1,
            now: at(42),
            actor: Some(KEY),
        })
        .await
        .expect("revoke again");
    assert_eq!(again, RevokeFact::AlreadyRevoked);
    let rotated = s
        .rotate_batch(&RotateBatch {
            organization: ORG,
            batch_id: BatchId(id(5)),
            new_token_hash: token(55),
            expires_at: at(50 + 7 * DAY),
            message_id: MessageId(id(0x5555)),
            accept_url: "https://app.example/accept/55".into(),
            message_due_at: at(50),
            not_sent_after: at(50),
            now: at(50),
            actor: Some(KEY),
        })
        .await
        .expect("rotate");
    assert!(matches!(rotated, RotateFact::Rotated { .. }), "{rotated:?}");
    s.record_delivery(
        MessageId(id(0x5555)),
        DeliveryUpdate::Sent { attempts: 1 },
        at(51),
    )
    .await
    .expect("sent");
    s.record_delivery(
        MessageId(id(0x5555)),
        DeliveryUpdate::Failed {
            attempts: 2,
            error: "late".into(),
        },
        at(52),
    )
    .await
    .expect("a record that no longer applies");
    s.record_delivery(
        MessageId(id(3 + 500_000)),
        DeliveryUpdate::Retry {
            attempts: 1,
            next_attempt_at: at(60),
            error: "busy".into(),
        },
        at(53),
    )
    .await
    .expect("retry");
    s.record_delivery(
        MessageId(id(3 + 500_000)),
        DeliveryUpdate::Failed {
            attempts: 2,
            error: "gave up".into(),
        },
        at(54),
    )
    .await
    .expect("failed");

    let kinds: Vec<EventKind> = log_of(s, ORG).await.into_iter().map(|(k, _)| k).collect();
    use EventKind::*;
    assert_eq!(
        kinds[8..],
        [
            MemberRemoved,
            InvitationCreated,
            MemberAdded,
            InvitationSuperseded,
            MemberRoleChanged,
            InvitationCreated,
            InvitationCreated,
            InvitationRevoked,
            BatchResent,
            EmailSent,
            EmailFailed,
        ],
        "{kinds:?}"
    );
    assert!(
        log_of(s, OTHER_ORG).await.is_empty(),
        "the other organization's log is untouched"
    );
    let all = s.read_events(ORG, 0, 100).await.expect("read");
    let sent = &all[17];
    assert_eq!(
        (sent.batch, sent.message, sent.actor, sent.at),
        (
            Some(BatchId(id(5))),
            Some(MessageId(id(0x5555))),
            None,
            at(51)
        )
    );
    let role = &all[12];
    assert_eq!(
        (role.user, role.role.as_deref(), role.actor),
        (Some(bo), Some("viewer"), Some(KEY))
    );
}

/// Reading pages by position (`after`, `limit`), an unknown organization reads empty, and the
/// purge deletes the oldest events first, a bounded number per call, without reusing
/// positions.
pub async fn events_are_read_by_position_and_purged_oldest_first(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    for (i, who) in ["a@example.com", "b@example.com", "c@example.com"]
        .iter()
        .enumerate()
    {
        s.add_members(&add(who, 10 + i as u128, &[web(A)], at(i as i64 * DAY)))
            .await
            .expect("add");
    }
    // Six events: user_created and member_added per person, on days 0, 1, 2.
    let all = s.read_events(ORG, 0, 100).await.expect("read");
    assert_eq!(all.len(), 6);
    let page = s.read_events(ORG, 2, 3).await.expect("page");
    assert_eq!(page, all[2..5].to_vec());
    assert!(s.read_events(ORG, 6, 10).await.expect("end").is_empty());
    assert!(s.read_events(ORG, 0, 0).await.expect("limit 0").is_empty());
    assert!(
        s.read_events(OrganizationId(id(0xabc)), 0, 10)
            .await
            .expect("unknown")
            .is_empty()
    );

    // Four events are older than day 2. A call deletes at least 3 of them (a backend that
    // keeps a call's events together deletes them together: here 4 at once), then the rest.
    let first = s.purge_events(at(2 * DAY), 3).await.expect("purge");
    assert!((3..=4).contains(&first), "{first}");
    let second = s.purge_events(at(2 * DAY), 3).await.expect("purge");
    assert_eq!(first + second, 4);
    assert_eq!(s.purge_events(at(2 * DAY), 3).await.expect("purge"), 0);
    assert_eq!(
        s.read_events(ORG, 0, 100).await.expect("read"),
        all[4..].to_vec(),
        "the newest stay"
    );
    s.add_members(&add("d@example.com", 20, &[web(A)], at(3 * DAY)))
        .await
        .expect("add");
    let after = s.read_events(ORG, 6, 100).await.expect("read");
    assert_eq!(
        after.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![7, 8],
        "positions go on after a purge"
    );
}

/// The Directory's changing calls write their event only when they change something; its
/// creating calls write none. An erasure clears the user's id from every event and writes
/// `person_erased`, naming no one, in each organization it deleted something of.
pub async fn directory_changes_and_erasure_in_the_log(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    let out = s
        .add_members(&add("ann@example.com", 1, &[web(B)], T0))
        .await
        .expect("add");
    let ann = out.user.expect("created").id;
    s.add_org_member(ORG, ann, OrgRole::Viewer)
        .await
        .expect("org member");
    s.add_org_member(OTHER_ORG, ann, OrgRole::Viewer)
        .await
        .expect("other org member");
    assert_eq!(log_of(s, ORG).await.len(), 2, "add_org_member writes none");
    assert!(
        s.set_org_role(ORG, ann, OrgRole::Viewer, at(1))
            .await
            .expect("same role")
    );
    assert!(
        s.set_org_role(ORG, ann, OrgRole::Admin, at(2))
            .await
            .expect("role")
    );
    assert!(s.remove_org_member(ORG, ann, at(3)).await.expect("remove"));
    assert!(!s.remove_org_member(ORG, ann, at(4)).await.expect("again"));
    assert!(
        s.remove_website_from_group(G, A, at(5))
            .await
            .expect("unlink")
    );
    assert!(
        !s.remove_website_from_group(G, A, at(6))
            .await
            .expect("again")
    );
    assert!(s.delete_group(G, at(7)).await.expect("delete group"));
    assert!(!s.delete_group(G, at(8)).await.expect("again"));
    s.delete_website(X, at(9)).await.expect("delete website");
    s.delete_website(X, at(10)).await.expect("again");
    use EventKind::*;
    let log = s.read_events(ORG, 0, 100).await.expect("read");
    let got: Vec<(EventKind, Timestamp)> = log.iter().map(|e| (e.kind, e.at)).collect();
    assert_eq!(
        got,
        vec![
            (UserCreated, T0),
            (MemberAdded, T0),
            (OrgMemberRoleChanged, at(2)),
            (OrgMemberRemoved, at(3)),
            (WebsiteRemovedFromGroup, at(5)),
            (GroupDeleted, at(7)),
            (WebsiteDeleted, at(9)),
        ]
    );
    assert_eq!(log[2].role.as_deref(), Some("admin"));
    assert_eq!((log[4].target, log[4].group), (Some(web(A)), Some(G)));

    // Erasure: Ann is a member in ORG and an organization member of OTHER_ORG.
    s.erase_person(&email("ann@example.com"), at(20))
        .await
        .expect("erase");
    for org in [ORG, OTHER_ORG] {
        let log = s.read_events(org, 0, 100).await.expect("read");
        assert!(log.iter().all(|e| e.user != Some(ann)), "{log:?}");
        let last = log.last().expect("person_erased");
        assert_eq!(
            (last.kind, last.at, last.user),
            (PersonErased, at(20), None)
        );
    }
    assert_eq!(
        log_of(s, ORG).await.len(),
        8,
        "the events stay, naming no one"
    );
    let before = log_of(s, ORG).await;
    s.erase_person(&email("nobody@example.com"), at(21))
        .await
        .expect("erase nobody");
    assert_eq!(
        log_of(s, ORG).await,
        before,
        "erasing nothing writes nothing"
    );
}
