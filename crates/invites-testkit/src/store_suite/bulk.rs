//! The two batch writes ([`BulkStore`](invites_core::BulkStore)): facts, precedence, user creation, supersede and replace, the batch and its message, uniqueness under concurrency.

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

/// Direct add follows the precedence and supersedes pending invitations.
pub async fn direct_add_follows_the_precedence_and_supersedes_pending_invitations(
    backend: Arc<dyn Backend>,
) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    // A live invitation on A, an expired one on B.
    s.create_invitations(&invite("ann@example.com", 7, &[web(A)], T0))
        .await
        .unwrap();
    s.create_invitations(&invite("ann@example.com", 8, &[web(B)], at(-8 * DAY)))
        .await
        .unwrap();

    let missing = web(WebsiteId(id(0xdead)));
    let out = s
        .add_members(&add(
            "ann@example.com",
            1,
            &[web(A), web(B), missing, web(FOREIGN)],
            T0,
        ))
        .await
        .unwrap();
    assert_eq!(
        ok(&out.targets),
        vec![
            AddFact::Added,
            AddFact::Added,
            AddFact::TargetNotFound,
            AddFact::TargetNotFound
        ]
    );
    let snap = s.snapshot().await.unwrap();
    let status: Vec<(TargetId, StoredStatus)> = snap
        .invitations
        .iter()
        .map(|i| (i.target, i.status))
        .collect();
    assert!(status.contains(&(web(A), StoredStatus::Superseded)));
    assert!(
        status.contains(&(web(B), StoredStatus::Superseded)),
        "expired pending ones are superseded too, so a resend cannot revive them"
    );

    // Again: already a member (role unchanged), names untouched.
    let mut again = add("ann@example.com", 2, &[web(A), TargetId::Group(G)], at(1));
    again.role = Role::Viewer;
    again.new_user.first_name = name("Zed");
    let out = s.add_members(&again).await.unwrap();
    assert_eq!(
        ok(&out.targets),
        vec![AddFact::AlreadyMember { role: Role::Admin }, AddFact::Added]
    );
    assert_eq!(
        out.user,
        Some(UserRef {
            id: UserId(id(1)),
            created: false
        })
    );
    let user = s
        .find_user(&email("ann@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.first_name, name("Ann"));
    assert_eq!(s.get_user(user.id).await.unwrap(), Some(user.clone()));

    // An org member: explicit membership first, then OrgMember.
    s.add_org_member(ORG, user.id, OrgRole::Viewer)
        .await
        .unwrap();
    let out = s
        .add_members(&add("ann@example.com", 3, &[web(A), web(X)], at(2)))
        .await
        .unwrap();
    assert_eq!(
        ok(&out.targets),
        vec![
            AddFact::AlreadyMember { role: Role::Admin },
            AddFact::OrgMember
        ]
    );
}

/// Email mode creates one batch one message and replaces expired invitations.
pub async fn email_mode_creates_one_batch_one_message_and_replaces_expired_invitations(
    backend: Arc<dyn Backend>,
) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    let first = invite("bo@example.com", 7, &[web(A)], at(-8 * DAY));
    s.create_invitations(&first).await.unwrap();

    let cmd = invite("bo@example.com", 8, &[web(A), web(B), web(FOREIGN)], T0);
    let out = s.create_invitations(&cmd).await.unwrap();
    assert_eq!(out.existing_user, None);
    assert_eq!(
        ok(&out.targets),
        vec![
            InviteFact::Invited,
            InviteFact::Invited,
            InviteFact::TargetNotFound
        ]
    );
    let old = s
        .get_invitation(ORG, first.targets[0].1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.status, StoredStatus::Replaced);

    // Live ones block; the batch is not stored when nothing is invited.
    let out = s
        .create_invitations(&invite("bo@example.com", 9, &[web(A)], at(1)))
        .await
        .unwrap();
    assert_eq!(
        ok(&out.targets),
        vec![InviteFact::AlreadyInvited {
            invitation: cmd.targets[0].1
        }]
    );
    assert!(s.get_batch(ORG, BatchId(id(9))).await.unwrap().is_none());

    let batch = s.find_batch_by_token(&token(8)).await.unwrap().unwrap();
    assert_eq!(batch.id, BatchId(id(8)));
    assert_eq!((batch.created_at, batch.last_sent_at), (T0, T0));
    assert_eq!(batch.invitations.len(), 2);
    assert!(
        batch
            .invitations
            .iter()
            .all(|i| i.first_name == name("Bo") && i.last_name.is_none())
    );
    let names: Vec<&str> = batch
        .invitations
        .iter()
        .map(|i| i.target_name.as_str())
        .collect();
    assert!(names.contains(&"Alpha") && names.contains(&"Beta"));
    assert_eq!(s.get_batch(OTHER_ORG, batch.id).await.unwrap(), None);
    assert_eq!(s.get_batch(ORG, batch.id).await.unwrap(), Some(batch));

    let messages = s.batch_messages(BatchId(id(8))).await.unwrap();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        (m.status, m.attempts, m.created_at),
        (MessageStatus::Queued, 0, T0)
    );
    assert_eq!(m.next_attempt_at, cmd.batch.message_due_at);
    assert_eq!(
        m.accept_url.as_deref(),
        Some("https://app.example/accept/8")
    );
    assert_eq!(
        (m.organization, &m.recipient),
        (ORG, &email("bo@example.com"))
    );

    // An existing member / org member is reported with precedence over AlreadyInvited.
    let user = s
        .create_user(&User {
            id: UserId(id(5)),
            email: email("bo@example.com"),
            email_verified: false,
            first_name: None,
            last_name: None,
        })
        .await
        .unwrap();
    s.add_members(&add("bo@example.com", 6, &[web(X)], at(2)))
        .await
        .unwrap();
    s.add_org_member(ORG, user, OrgRole::Admin).await.unwrap();
    let out = s
        .create_invitations(&invite("bo@example.com", 10, &[web(X), web(A)], at(3)))
        .await
        .unwrap();
    assert_eq!(out.existing_user, Some(user));
    assert_eq!(
        ok(&out.targets),
        vec![
            InviteFact::AlreadyMember { role: Role::Admin },
            InviteFact::OrgMember
        ]
    );
}
