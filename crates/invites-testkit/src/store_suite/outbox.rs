//! The outbox ([`OutboxStore`](invites_core::OutboxStore)): claims are leases, deliveries are recorded.

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

/// The outbox is claimed with a lease and records deliveries.
pub async fn the_outbox_is_claimed_with_a_lease_and_records_deliveries(backend: Arc<dyn Backend>) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    for seed in [8, 9, 10] {
        let cmd = invite(
            &format!("u{seed}@example.com"),
            seed,
            &[web(A)],
            at(seed as i64),
        );
        s.create_invitations(&cmd).await.unwrap();
    }
    // Due at created + 60 s.
    assert!(
        s.claim_due_messages(at(1000), at(100_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = at(70_000);
    let claimed = s.claim_due_messages(due, at(200_000), 2).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.batch_id).collect::<Vec<_>>(),
        vec![BatchId(id(8)), BatchId(id(9))]
    );
    // Leased: a second claim skips them.
    let rest = s.claim_due_messages(due, at(200_000), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    let stored = s.batch_messages(BatchId(id(8))).await.unwrap();
    assert_eq!(stored[0].next_attempt_at, at(200_000));

    let [m8, m9, m10] = [&claimed[0], &claimed[1], &rest[0]].map(|m| m.id);
    s.record_delivery(m8, DeliveryUpdate::Sent { attempts: 1 })
        .await
        .unwrap();
    s.record_delivery(
        m9,
        DeliveryUpdate::Retry {
            attempts: 1,
            next_attempt_at: at(300_000),
            error: "later".into(),
        },
    )
    .await
    .unwrap();
    s.record_delivery(
        m10,
        DeliveryUpdate::Failed {
            attempts: 3,
            error: "no".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        s.record_delivery(MessageId(id(4242)), DeliveryUpdate::Cancelled)
            .await
            .is_err()
    );

    let snap = s.snapshot().await.unwrap();
    let by_id = |m| snap.outbox.iter().find(|o| o.id == m).unwrap().clone();
    let (o8, o9, o10) = (by_id(m8), by_id(m9), by_id(m10));
    assert_eq!(
        (o8.status, o8.attempts, o8.accept_url),
        (MessageStatus::Sent, 1, None)
    );
    assert_eq!(
        (o9.status, o9.next_attempt_at),
        (MessageStatus::Queued, at(300_000))
    );
    assert_eq!(
        (o9.last_error.as_deref(), o9.accept_url.is_some()),
        (Some("later"), true)
    );
    assert_eq!(
        (o10.status, o10.last_error.as_deref(), o10.accept_url),
        (MessageStatus::Failed, Some("no"), None)
    );
    s.record_delivery(m9, DeliveryUpdate::Cancelled)
        .await
        .unwrap();
    let o9 = s.batch_messages(BatchId(id(9))).await.unwrap().remove(0);
    assert_eq!((o9.status, o9.accept_url), (MessageStatus::Cancelled, None));
    assert!(
        s.claim_due_messages(at(400_000), at(500_000), 0)
            .await
            .unwrap()
            .is_empty()
    );
}
