//! Concurrency: calls racing on one store behave as if they ran one after another, and the
//! uniqueness rules hold (the port's "Serializable" and "Uniqueness" clauses).

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const RACERS: u128 = 8;

/// Eight concurrent direct adds of one new address to the same three targets: one user is
/// created (by exactly one call, whose id every call reports), each target is `Added` by
/// exactly one call and `AlreadyMember` for the others, and no slot is an error.
pub async fn concurrent_adds_of_one_email_create_one_user_and_one_membership_each(
    backend: Arc<dyn Backend>,
) {
    seed(&*backend).await;
    let targets = [web(A), web(B), TargetId::Group(G)];
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let b = backend.clone();
            tokio::spawn(async move {
                b.add_members(&add("race@example.com", 100 + i, &targets, T0))
                    .await
                    .expect("the call succeeds")
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let users: BTreeSet<UserId> = outcomes
        .iter()
        .map(|o| o.user.expect("a user").id)
        .collect();
    assert_eq!(users.len(), 1, "every call reports the one user");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.user.is_some_and(|u| u.created))
            .count(),
        1,
        "exactly one call created it"
    );
    for (i, _) in targets.iter().enumerate() {
        let facts: Vec<AddFact> = outcomes
            .iter()
            .map(|o| *o.targets[i].as_ref().expect("no slot fails"))
            .collect();
        assert_eq!(facts.iter().filter(|f| **f == AddFact::Added).count(), 1);
        assert!(
            facts
                .iter()
                .all(|f| matches!(f, AddFact::Added | AddFact::AlreadyMember { .. }))
        );
    }
    let snap = backend.snapshot().await.expect("snapshot");
    assert_eq!(snap.users.len(), 1);
    assert_eq!(snap.memberships.len(), 3);
}

/// Eight concurrent email-mode calls for one address and two targets: each target gets
/// exactly one invitation (`Invited` once, `AlreadyInvited` naming it otherwise), one stored
/// pending row, and a batch with a message exists exactly for the calls that invited.
pub async fn concurrent_invitations_leave_one_pending_per_target(backend: Arc<dyn Backend>) {
    seed(&*backend).await;
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let b = backend.clone();
            tokio::spawn(async move {
                let cmd = invite("race@example.com", 10 + i, &[web(A), web(B)], T0);
                let out = b.create_invitations(&cmd).await.expect("the call succeeds");
                (cmd, out)
            })
        })
        .collect();
    let mut runs = Vec::new();
    for t in tasks {
        runs.push(t.await.expect("task"));
    }
    let mut invited_batches = BTreeSet::new();
    for target in 0..2 {
        let mut created = None;
        for (cmd, out) in &runs {
            if *out.targets[target].as_ref().expect("no slot fails") == InviteFact::Invited {
                assert!(created.is_none(), "one invitation per target");
                created = Some(cmd.targets[target].1);
                invited_batches.insert(cmd.batch.id);
            }
        }
        let created = created.expect("someone invited");
        for (_, out) in &runs {
            let fact = *out.targets[target].as_ref().expect("no slot fails");
            assert!(
                fact == InviteFact::Invited
                    || fact
                        == InviteFact::AlreadyInvited {
                            invitation: created
                        },
                "{fact:?}"
            );
        }
    }
    let snap = backend.snapshot().await.expect("snapshot");
    let pending: BTreeMap<TargetId, usize> = snap
        .invitations
        .iter()
        .filter(|i| i.status == StoredStatus::Pending)
        .fold(BTreeMap::new(), |mut m, i| {
            *m.entry(i.target).or_default() += 1;
            m
        });
    assert_eq!(pending, BTreeMap::from([(web(A), 1), (web(B), 1)]));
    let batches: BTreeSet<BatchId> = snap.batches.iter().map(|b| b.0).collect();
    assert_eq!(batches, invited_batches);
    let messages: BTreeSet<BatchId> = snap.outbox.iter().map(|m| m.batch_id).collect();
    assert_eq!(messages, invited_batches);
}

/// Four deliverers claiming concurrently in small pages: every due message is claimed by
/// exactly one of them while its lease holds.
pub async fn concurrent_claims_never_return_one_message_twice(backend: Arc<dyn Backend>) {
    seed(&*backend).await;
    for n in 0..20u128 {
        let address = format!("m{n}@example.com");
        backend
            .create_invitations(&invite(&address, 100 + n, &[web(A)], T0))
            .await
            .expect("invite");
    }
    let now = T0.plus(Duration::from_secs(120));
    let lease_until = T0.plus(Duration::from_secs(600));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let b = backend.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let page = b
                        .claim_due_messages(now, lease_until, 3)
                        .await
                        .expect("claim");
                    if page.is_empty() {
                        return mine;
                    }
                    mine.extend(page.into_iter().map(|m| m.id));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let distinct: BTreeSet<MessageId> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a message was claimed twice");
    assert_eq!(distinct.len(), 20, "every due message was claimed");
}

/// Eight concurrent begins of one idempotency key: exactly one is `Started`; the others see
/// it `InProgress` with the first request's fingerprint.
pub async fn concurrent_begins_of_one_key_start_once(backend: Arc<dyn Backend>) {
    seed(&*backend).await;
    let begin = IdempotencyBegin {
        organization: ORG,
        key_id: ApiKeyId(id(0x4e7)),
        key: "same".into(),
        fingerprint: [9; 32],
        expired_before: at(-DAY),
        stale_before: at(-60_000),
        now: T0,
    };
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let b = backend.clone();
            let begin = begin.clone();
            tokio::spawn(async move { b.idempotency_begin(&begin).await.expect("begin") })
        })
        .collect();
    let mut states = Vec::new();
    for t in tasks {
        states.push(t.await.expect("task"));
    }
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == IdempotencyState::Started)
            .count(),
        1
    );
    assert!(states.iter().all(|s| *s == IdempotencyState::Started
        || *s
            == IdempotencyState::InProgress {
                fingerprint: [9; 32]
            }));
}
