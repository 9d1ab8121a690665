//! Per-target isolation and whole-call failure, with faults injected inside the backend by a
//! [`FaultInjector`](super::FaultInjector).

use super::FaultInjector;
use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

/// A failing target is rolled back to its savepoint and the others commit.
pub async fn a_failing_target_is_rolled_back_to_its_savepoint_and_the_others_commit(
    backend: Arc<dyn Backend>,
    faults: Arc<dyn FaultInjector>,
) {
    let store = &*backend;
    seed(store).await;
    faults.fail_unit(web(X)).await;
    let out = store
        .add_members(&add("ann@example.com", 1, &[web(A), web(X), web(B)], T0))
        .await
        .unwrap();
    assert_eq!(
        out.user,
        Some(UserRef {
            id: UserId(id(1)),
            created: true
        })
    );
    assert_eq!(out.targets[0].as_ref().unwrap(), &AddFact::Added);
    let err = out.targets[1].as_ref().unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(out.targets[2].as_ref().unwrap(), &AddFact::Added);

    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.users.len(), 1, "user created once");
    assert!(!snap.users[0].email_verified);
    assert_eq!(snap.users[0].first_name, name("Ann"));
    let targets: Vec<TargetId> = snap.memberships.iter().map(|m| m.target).collect();
    assert_eq!(targets, vec![web(A), web(B)]);
    assert_eq!(
        log_of(store, ORG).await,
        vec![
            (EventKind::UserCreated, None),
            (EventKind::MemberAdded, Some(web(A))),
            (EventKind::MemberAdded, Some(web(B))),
        ],
        "the failed unit's event went with it"
    );
}

/// When the first target fails the user is created in the next ones savepoint.
pub async fn when_the_first_target_fails_the_user_is_created_in_the_next_ones_savepoint(
    backend: Arc<dyn Backend>,
    faults: Arc<dyn FaultInjector>,
) {
    let store = &*backend;
    seed(store).await;
    faults.fail_unit(web(X)).await;
    let out = store
        .add_members(&add("ann@example.com", 1, &[web(X), web(A), web(B)], T0))
        .await
        .unwrap();
    assert!(out.targets[0].is_err());
    assert_eq!(ok(&out.targets[1..]), vec![AddFact::Added, AddFact::Added]);
    assert_eq!(
        out.user,
        Some(UserRef {
            id: UserId(id(1)),
            created: true
        })
    );
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.users.len(), 1);
    assert_eq!(snap.memberships.len(), 2);
    assert_eq!(
        log_of(store, ORG).await,
        vec![
            (EventKind::UserCreated, None),
            (EventKind::MemberAdded, Some(web(A))),
            (EventKind::MemberAdded, Some(web(B))),
        ],
        "the user's event is written once, by the unit that created it"
    );
}

/// A batch where every target fails creates no user.
pub async fn a_batch_where_every_target_fails_creates_no_user(
    backend: Arc<dyn Backend>,
    faults: Arc<dyn FaultInjector>,
) {
    let store = &*backend;
    seed(store).await;
    faults.fail_unit(web(X)).await;
    let missing = web(WebsiteId(id(0xdead)));
    let out = store
        .add_members(&add(
            "ann@example.com",
            1,
            &[web(X), missing, web(FOREIGN)],
            T0,
        ))
        .await
        .unwrap();
    assert!(out.targets[0].is_err());
    assert_eq!(
        ok(&out.targets[1..]),
        vec![AddFact::TargetNotFound, AddFact::TargetNotFound]
    );
    assert_eq!(out.user, None);
    let snap = store.snapshot().await.unwrap();
    assert!(snap.users.is_empty());
    assert!(snap.memberships.is_empty());
    assert!(log_of(store, ORG).await.is_empty());
}

/// A failing invitation leaves no batch when nothing else succeeds.
pub async fn a_failing_invitation_leaves_no_batch_when_nothing_else_succeeds(
    backend: Arc<dyn Backend>,
    faults: Arc<dyn FaultInjector>,
) {
    let store = &*backend;
    seed(store).await;
    faults.fail_unit(web(A)).await;
    faults.fail_unit(web(B)).await;
    let out = store
        .create_invitations(&invite("bo@example.com", 7, &[web(A), web(B)], T0))
        .await
        .unwrap();
    assert!(out.targets.iter().all(Result::is_err));
    let snap = store.snapshot().await.unwrap();
    assert!(snap.batches.is_empty() && snap.invitations.is_empty() && snap.outbox.is_empty());
    assert!(log_of(store, ORG).await.is_empty());
}

/// A batch whose message cannot be stored creates nothing.
pub async fn a_batch_whose_message_cannot_be_stored_creates_nothing(
    backend: Arc<dyn Backend>,
    faults: Arc<dyn FaultInjector>,
) {
    let store = &*backend;
    seed(store).await;
    faults.fail_outbox(&email("cy@example.com")).await;
    let out = store
        .create_invitations(&invite("cy@example.com", 3, &[web(A), web(B)], T0))
        .await
        .unwrap();
    // The batch and its message are stored in the first unit that creates an invitation, so
    // each unit fails in turn.
    assert!(out.targets.iter().all(Result::is_err), "{out:?}");
    let snap = store.snapshot().await.unwrap();
    assert!(snap.batches.is_empty() && snap.invitations.is_empty() && snap.outbox.is_empty());
    assert!(log_of(store, ORG).await.is_empty());
}

/// A direct add whose commit fails returns `Err` and stores nothing: no user, no membership,
/// not even of the targets whose units succeeded.
pub async fn a_failed_commit_of_add_members_stores_nothing(
    backend: Arc<dyn Backend>,
    faults: Arc<dyn FaultInjector>,
) {
    let store = &*backend;
    seed(store).await;
    faults.fail_commit(web(X)).await;
    let before = store.snapshot().await.expect("snapshot");
    let out = store
        .add_members(&add("ann@example.com", 1, &[web(A), web(X), web(B)], T0))
        .await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(store.snapshot().await.expect("snapshot"), before);
    assert!(
        log_of(store, ORG).await.is_empty(),
        "no event without its change"
    );
    // The store is still usable afterwards, and the rolled-back call took no positions.
    let out = store
        .add_members(&add("ann@example.com", 1, &[web(A)], T0))
        .await
        .expect("add");
    assert_eq!(ok(&out.targets), vec![AddFact::Added]);
    assert_eq!(
        log_of(store, ORG).await,
        vec![
            (EventKind::UserCreated, None),
            (EventKind::MemberAdded, Some(web(A))),
        ]
    );
}

/// An email-mode call whose commit fails returns `Err` and stores nothing: no invitation,
/// batch or message.
pub async fn a_failed_commit_of_create_invitations_stores_nothing(
    backend: Arc<dyn Backend>,
    faults: Arc<dyn FaultInjector>,
) {
    let store = &*backend;
    seed(store).await;
    faults.fail_commit(web(B)).await;
    let before = store.snapshot().await.expect("snapshot");
    let out = store
        .create_invitations(&invite("bo@example.com", 7, &[web(A), web(B)], T0))
        .await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(store.snapshot().await.expect("snapshot"), before);
    assert!(
        log_of(store, ORG).await.is_empty(),
        "no event without its change"
    );
}

/// An accept whose commit fails returns `Err` and stores nothing: the user is not created,
/// no membership exists, every invitation is still pending.
pub async fn a_failed_commit_of_accept_batch_stores_nothing(
    backend: Arc<dyn Backend>,
    faults: Arc<dyn FaultInjector>,
) {
    let store = &*backend;
    seed(store).await;
    store
        .create_invitations(&invite("cy@example.com", 8, &[web(A), web(X)], T0))
        .await
        .expect("invite");
    faults.fail_commit(web(X)).await;
    let before = store.snapshot().await.expect("snapshot");
    let out = store
        .accept_batch(&AcceptBatch {
            batch_id: BatchId(id(8)),
            token_hash: token(8),
            new_user: NewUser {
                id: UserId(id(0x77)),
                first_name: None,
                last_name: None,
            },
            now: at(1),
        })
        .await;
    assert!(out.is_err(), "{out:?}");
    let after = store.snapshot().await.expect("snapshot");
    assert_eq!(after, before);
    assert!(after.users.is_empty());
    assert!(
        after
            .invitations
            .iter()
            .all(|i| i.status == StoredStatus::Pending)
    );
    assert_eq!(
        log_of(store, ORG).await,
        vec![
            (EventKind::InvitationCreated, Some(web(A))),
            (EventKind::InvitationCreated, Some(web(X))),
        ],
        "the accept left no event"
    );
}
