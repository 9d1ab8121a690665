//! Per-target outcomes (docs/contract.md §3): added, invited, already member, org access, already invited, not found, forbidden, internal error; groups as targets.

use super::support::*;
use crate::{Backend, Fault, World};
use invites_core::*;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Direct mode adds the user to each target and creates the user (unverified, with the
/// request's trimmed names) in the same request; a later direct add reuses the user and does
/// not overwrite its names. No email, no invitation.
pub async fn direct_adds_and_creates_unverified_user(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 101).await;
    let (w0, w1, w2) = (w.websites[0], w.websites[1], w.websites[2]);
    let req = with_names(
        with_role(sites(Direct, "ann@new.test", &[w0, w1]), Role::Admin),
        "  Ann ",
        "Lee",
    );
    let r = run(&h, &w.global_key(), req).await;
    expect_codes(
        &r,
        &[(web(w0), OutcomeCode::Added), (web(w1), OutcomeCode::Added)],
    );
    assert_eq!(r.invite_method, Direct);
    assert!(r.user_created);
    let uid = r.user_id.expect("the created user");

    let s = snapshot(&backend).await;
    let u = user(&s, "ann@new.test").expect("the user was created");
    assert_eq!(u.id, uid);
    assert!(!u.email_verified, "direct mode creates unverified users");
    assert_eq!(u.first_name.as_ref().map(PersonName::as_str), Some("Ann"));
    assert_eq!(u.last_name.as_ref().map(PersonName::as_str), Some("Lee"));
    let rows = memberships_of(&s, uid);
    assert_eq!(rows.len(), 2);
    for t in [web(w0), web(w1)] {
        let m = membership(&s, t, uid).expect("membership");
        assert_eq!(m.role, Role::Admin);
        assert_eq!(m.created_at, h.clock.now());
    }
    assert!(s.invitations.is_empty() && s.batches.is_empty() && s.outbox.is_empty());

    h.clock.advance(secs(5));
    let req = with_names(sites(Direct, "ann@new.test", &[w2]), "Changed", "Name");
    let r = run(&h, &w.global_key(), req).await;
    expect_codes(&r, &[(web(w2), OutcomeCode::Added)]);
    assert!(!r.user_created);
    assert_eq!(r.user_id, Some(uid));
    let s = snapshot(&backend).await;
    let u = user(&s, "ann@new.test").expect("user");
    assert_eq!(u.first_name.as_ref().map(PersonName::as_str), Some("Ann"));
    assert_eq!(u.last_name.as_ref().map(PersonName::as_str), Some("Lee"));
    assert_eq!(
        membership(&s, web(w2), uid).map(|m| m.role),
        Some(Role::Viewer),
        "the default role is viewer"
    );
    assert_eq!(h.mailer.attempts(), 0, "direct mode sends no email");
}
/// Direct mode with an existing user adds memberships for that user and leaves its names
/// and verification state untouched.
pub async fn direct_keeps_existing_user_untouched(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 102).await;
    let before = snapshot(&backend).await;
    let old = user(&before, "existing@acme.test").expect("seeded").clone();
    let req = with_names(
        sites(Direct, "Existing@Acme.test", &[w.websites[0]]),
        "New",
        "Name",
    );
    let r = run(&h, &w.global_key(), req).await;
    expect_codes(&r, &[(web(w.websites[0]), OutcomeCode::Added)]);
    assert!(!r.user_created);
    assert_eq!(r.user_id, Some(w.existing_user));
    let s = snapshot(&backend).await;
    assert_eq!(user(&s, "existing@acme.test"), Some(&old));
    assert_eq!(s.users.len(), before.users.len());
    assert!(membership(&s, web(w.websites[0]), w.existing_user).is_some());
}
/// `already_member`: an explicit membership exists, in direct and in email mode; the
/// existing membership (role, time) is not changed and nothing else is written.
pub async fn already_member_keeps_role(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 103).await;
    let (w0, w1) = (w.websites[0], w.websites[1]);
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        with_role(sites(Direct, "existing@acme.test", &[w0]), Role::Admin),
    )
    .await;
    expect_codes(&r, &[(web(w0), OutcomeCode::Added)]);
    let t0 = h.clock.now();
    h.clock.advance(secs(10));

    let r = run(
        &h,
        &p,
        with_role(sites(Direct, "existing@acme.test", &[w0, w1]), Role::Viewer),
    )
    .await;
    expect_codes(
        &r,
        &[(web(w0), AlreadyMember), (web(w1), OutcomeCode::Added)],
    );
    assert_eq!(r.user_id, Some(w.existing_user));

    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &p,
        with_role(sites(ByEmail, "existing@acme.test", &[w0]), Role::Viewer),
    )
    .await;
    expect_codes(&r, &[(web(w0), AlreadyMember)]);
    assert_eq!(r.user_id, Some(w.existing_user));
    assert_eq!(snapshot(&backend).await, before);

    let s = snapshot(&backend).await;
    let m = membership(&s, web(w0), w.existing_user).expect("membership");
    assert_eq!(m.role, Role::Admin, "the role is not changed");
    assert_eq!(m.created_at, t0);
    assert_eq!(memberships_of(&s, w.existing_user).len(), 2);
    assert!(s.invitations.is_empty());
    assert_eq!(h.mailer.attempts(), 0);
}
/// `has_org_access`: an organization member is neither added nor invited, for websites and
/// groups, in both modes, whatever the case of the address. Nothing changes.
pub async fn org_member_has_org_access(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 104).await;
    let before = snapshot(&backend).await;
    for method in [Direct, ByEmail] {
        let r = run(
            &h,
            &w.global_key(),
            sites(method, "Admin@ACME.test", &[w.websites[0], w.websites[5]]),
        )
        .await;
        expect_codes(
            &r,
            &[
                (web(w.websites[0]), HasOrgAccess),
                (web(w.websites[5]), HasOrgAccess),
            ],
        );
        assert_eq!(r.user_id, Some(w.org_admin));
        assert!(!r.user_created);
        let r = run(
            &h,
            &w.global_key(),
            groups(method, "admin@acme.test", &[w.groups[0]]),
        )
        .await;
        expect_codes(&r, &[(grp(w.groups[0]), HasOrgAccess)]);
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);
}
/// `already_invited`: a live invitation for (target, email) blocks a second one; the other
/// targets of the request are still invited, and the new email lists only those.
pub async fn already_invited_blocks_second_invitation(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 105).await;
    let (w0, w1) = (w.websites[0], w.websites[1]);
    let p = w.global_key();
    let r1 = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    expect_codes(&r1, &[(web(w0), Invited)]);
    let first = invite_id(&r1, 0);
    let s1 = snapshot(&backend).await;

    h.clock.advance(secs(60));
    let r2 = run(&h, &p, sites(ByEmail, "ANN@new.test", &[w0, w1])).await;
    expect_codes(&r2, &[(web(w0), AlreadyInvited), (web(w1), Invited)]);
    assert_ne!(batch_of(&r2), batch_of(&r1));
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 2);
    assert_lists(&sent[1], &[("Site 1", Role::Viewer)], &["Site 0"]);

    let s = snapshot(&backend).await;
    assert_eq!(invitation(&s, first), invitation(&s1, first), "unchanged");
    assert_eq!(invitations_to(&s, "ann@new.test").len(), 2);
    assert_eq!(stored_pending(&s, web(w0), "ann@new.test"), 1);

    let r = run(&h, &p, groups(ByEmail, "ann@new.test", &[w.groups[0]])).await;
    expect_codes(&r, &[(grp(w.groups[0]), Invited)]);
    let r = run(&h, &p, groups(ByEmail, "ann@new.test", &[w.groups[0]])).await;
    expect_codes(&r, &[(grp(w.groups[0]), AlreadyInvited)]);
}
/// `target_not_found`: a missing id and another organization's website or group give
/// identical results (apart from the id), in both modes, and change nothing.
pub async fn target_not_found_is_uniform(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 106).await;
    let p = w.global_key();
    let before = snapshot(&backend).await;
    for method in [Direct, ByEmail] {
        for to in ["ann@new.test", "existing@acme.test"] {
            let missing = run(&h, &p, sites(method, to, &[missing_website()])).await;
            let other = run(&h, &p, sites(method, to, &[w.other_website])).await;
            expect_codes(&missing, &[(web(missing_website()), TargetNotFound)]);
            expect_codes(&other, &[(web(w.other_website), TargetNotFound)]);
            assert_eq!(without_target_ids(&missing), without_target_ids(&other));

            let both = run(
                &h,
                &p,
                sites(method, to, &[missing_website(), w.other_website]),
            )
            .await;
            expect_codes(
                &both,
                &[
                    (web(missing_website()), TargetNotFound),
                    (web(w.other_website), TargetNotFound),
                ],
            );

            let missing = run(&h, &p, groups(method, to, &[missing_group()])).await;
            let other = run(&h, &p, groups(method, to, &[w.other_group])).await;
            expect_codes(&missing, &[(grp(missing_group()), TargetNotFound)]);
            expect_codes(&other, &[(grp(w.other_group), TargetNotFound)]);
            assert_eq!(without_target_ids(&missing), without_target_ids(&other));
        }
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);
}
/// `forbidden`: a website-scoped key gets `forbidden` for websites outside its allowlist, and
/// the other targets of the request are still processed. A scoped key that lists another
/// organization's website gets `target_not_found` for it. When every target is forbidden,
/// no user is created.
pub async fn scoped_key_forbidden_per_target(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 107).await;
    let ws = &w.websites;
    let scoped = w.scoped_key(&[ws[0], ws[2], w.other_website]);
    let r = run(
        &h,
        &scoped,
        sites(Direct, "ann@new.test", &[ws[1], ws[0], ws[3], ws[2]]),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(ws[1]), OutcomeCode::Forbidden),
            (web(ws[0]), OutcomeCode::Added),
            (web(ws[3]), OutcomeCode::Forbidden),
            (web(ws[2]), OutcomeCode::Added),
        ],
    );
    let uid = r.user_id.expect("user");
    let s = snapshot(&backend).await;
    let targets: BTreeSet<TargetId> = memberships_of(&s, uid).iter().map(|m| m.target).collect();
    assert_eq!(targets, BTreeSet::from([web(ws[0]), web(ws[2])]));

    let r = run(
        &h,
        &scoped,
        sites(
            ByEmail,
            "bob@new.test",
            &[ws[1], ws[0], w.other_website, ws[2]],
        ),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(ws[1]), OutcomeCode::Forbidden),
            (web(ws[0]), Invited),
            (web(w.other_website), TargetNotFound),
            (web(ws[2]), Invited),
        ],
    );
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_lists(
        &sent[0],
        &[("Site 0", Role::Viewer), ("Site 2", Role::Viewer)],
        &["Site 1", "Elsewhere"],
    );

    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &scoped,
        sites(Direct, "carol@new.test", &[ws[1], ws[4]]),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(ws[1]), OutcomeCode::Forbidden),
            (web(ws[4]), OutcomeCode::Forbidden),
        ],
    );
    assert_eq!(r.user_id, None);
    assert!(!r.user_created);
    assert_eq!(snapshot(&backend).await, before);
}
/// `internal_error`: targets whose unit fails in the store are reported `internal_error` and
/// leave no trace; the other targets of the request succeed as if nothing had failed.
pub async fn failing_target_is_internal_error_only(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let w = world.websites.clone();
    let failing = Fault {
        failing_targets: BTreeSet::from([web(w[1]), web(w[3])]),
        ..Fault::default()
    };
    let (_faulty, h) = faulty_harness(&backend, failing, 108);
    let p = world.global_key();

    let r = run(&h, &p, sites(Direct, "ann@new.test", &[w[1], w[0], w[2]])).await;
    expect_codes(
        &r,
        &[
            (web(w[1]), InternalError),
            (web(w[0]), OutcomeCode::Added),
            (web(w[2]), OutcomeCode::Added),
        ],
    );
    assert!(r.user_created);
    let uid = r.user_id.expect("user");
    let s = snapshot(&backend).await;
    let targets: BTreeSet<TargetId> = memberships_of(&s, uid).iter().map(|m| m.target).collect();
    assert_eq!(targets, BTreeSet::from([web(w[0]), web(w[2])]));

    let r = run(&h, &p, sites(ByEmail, "bob@new.test", &[w[3], w[4], w[1]])).await;
    expect_codes(
        &r,
        &[
            (web(w[3]), InternalError),
            (web(w[4]), Invited),
            (web(w[1]), InternalError),
        ],
    );
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Sent));
    let s = snapshot(&backend).await;
    let bob = invitations_to(&s, "bob@new.test");
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].target, web(w[4]));
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_lists(&sent[0], &[("Site 4", Role::Viewer)], &["Site 3", "Site 1"]);

    let before = snapshot(&backend).await;
    let r = run(&h, &p, sites(Direct, "carol@new.test", &[w[1], w[3]])).await;
    expect_codes(
        &r,
        &[(web(w[1]), InternalError), (web(w[3]), InternalError)],
    );
    assert_eq!(r.user_id, None, "no target succeeded, so no user");
    assert!(!r.user_created);
    assert_eq!(snapshot(&backend).await, before);
}
/// A batch that fails as a whole makes every target `internal_error` and stores nothing (no
/// user, no invitation, no batch, no message); after the fault clears, the same request works.
pub async fn failing_batch_is_all_internal_error(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let w = world.websites.clone();
    let (faulty, h) = faulty_harness(
        &backend,
        Fault {
            fail_batches: true,
            ..Fault::default()
        },
        109,
    );
    let p = world.global_key();
    let before = snapshot(&backend).await;

    let r = run(&h, &p, sites(Direct, "ann@new.test", &[w[0], w[1]])).await;
    expect_codes(
        &r,
        &[(web(w[0]), InternalError), (web(w[1]), InternalError)],
    );
    assert_eq!(r.user_id, None);
    assert!(!r.user_created);

    let r = run(&h, &p, sites(Direct, "existing@acme.test", &[w[0]])).await;
    expect_codes(&r, &[(web(w[0]), InternalError)]);
    assert!(!r.user_created);

    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[w[0], w[1]])).await;
    expect_codes(
        &r,
        &[(web(w[0]), InternalError), (web(w[1]), InternalError)],
    );
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::NotSent));

    let r = run(&h, &p, groups(ByEmail, "ann@new.test", &[world.groups[0]])).await;
    expect_codes(&r, &[(grp(world.groups[0]), InternalError)]);

    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);

    faulty.set(Fault::default());
    let r = run(&h, &p, sites(Direct, "ann@new.test", &[w[0]])).await;
    expect_codes(&r, &[(web(w[0]), OutcomeCode::Added)]);
    assert!(r.user_created);
}
/// Groups are targets like websites: memberships and invitations name the group, results
/// carry `group_id`, texts say "group", the email lists group names.
pub async fn groups_are_targets(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 110).await;
    let (g0, g1) = (w.groups[0], w.groups[1]);
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        with_role(groups(Direct, "ann@new.test", &[g0, g1]), Role::Admin),
    )
    .await;
    expect_codes(
        &r,
        &[(grp(g0), OutcomeCode::Added), (grp(g1), OutcomeCode::Added)],
    );
    let uid = r.user_id.expect("user");
    let s = snapshot(&backend).await;
    assert_eq!(
        membership(&s, grp(g0), uid).map(|m| m.role),
        Some(Role::Admin)
    );
    assert!(membership(&s, grp(g1), uid).is_some());
    assert_eq!(
        memberships_of(&s, uid).len(),
        2,
        "only the groups themselves"
    );

    let r = run(&h, &p, groups(Direct, "ann@new.test", &[g1])).await;
    expect_codes(&r, &[(grp(g1), AlreadyMember)]);

    let r = run(&h, &p, groups(ByEmail, "bob@new.test", &[g1, g0])).await;
    expect_codes(&r, &[(grp(g1), Invited), (grp(g0), Invited)]);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_lists(
        &sent[0],
        &[("Group 1", Role::Viewer), ("Group 0", Role::Viewer)],
        &["Site 0"],
    );
    let s = snapshot(&backend).await;
    let targets: BTreeSet<TargetId> = invitations_to(&s, "bob@new.test")
        .iter()
        .map(|i| i.target)
        .collect();
    assert_eq!(targets, BTreeSet::from([grp(g0), grp(g1)]));
    let names: BTreeSet<&str> = invitations_to(&s, "bob@new.test")
        .iter()
        .map(|i| i.target_name.as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["Group 0", "Group 1"]));
}
