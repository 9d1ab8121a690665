//! The outbox backlog ([`ReadStore::outbox_backlog`](invites_core::ReadStore::outbox_backlog)):
//! the read behind the outbox gauges.

use super::support::*;
use crate::Backend;
use invites_core::observe::OutboxBacklog;
use invites_core::*;
use std::sync::Arc;

/// The backlog counts exactly the queued messages (due, leased or waiting for a retry) and
/// names the oldest one's creation time; a message that left the queue leaves the count. A
/// store that cannot tell (`None`, the port's default) passes: the gauges then stay unset.
pub async fn the_outbox_backlog_counts_queued_messages_and_names_the_oldest(
    backend: Arc<dyn Backend>,
) {
    let s = &*backend;
    seed(s).await;
    let Some(empty) = s.outbox_backlog().await.unwrap() else {
        return;
    };
    assert_eq!(empty, OutboxBacklog::default());
    for seed in [8, 9, 10] {
        let cmd = invite(
            &format!("u{seed}@example.com"),
            seed,
            &[web(A)],
            at(seed as i64),
        );
        s.create_invitations(&cmd).await.unwrap();
    }
    let backlog = |queued, oldest| OutboxBacklog {
        queued,
        oldest_created_at: Some(at(oldest)),
    };
    assert_eq!(s.outbox_backlog().await.unwrap(), Some(backlog(3, 8)));

    // Claimed (leased) messages are still queued; a retry stays queued; sent and failed go.
    let claimed = s
        .claim_due_messages(at(70_000), at(200_000), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(s.outbox_backlog().await.unwrap(), Some(backlog(3, 8)));
    let [m8, m9, m10] = [&claimed[0], &claimed[1], &claimed[2]].map(|m| m.id);
    s.record_delivery(m8, DeliveryUpdate::Sent { attempts: 1 }, T0)
        .await
        .unwrap();
    s.record_delivery(
        m9,
        DeliveryUpdate::Retry {
            attempts: 1,
            next_attempt_at: at(300_000),
            error: "later".into(),
        },
        T0,
    )
    .await
    .unwrap();
    assert_eq!(s.outbox_backlog().await.unwrap(), Some(backlog(2, 9)));
    s.record_delivery(
        m9,
        DeliveryUpdate::Failed {
            attempts: 2,
            error: "no".into(),
        },
        T0,
    )
    .await
    .unwrap();
    s.record_delivery(m10, DeliveryUpdate::Cancelled { attempts: 0 }, T0)
        .await
        .unwrap();
    assert_eq!(
        s.outbox_backlog().await.unwrap(),
        Some(OutboxBacklog::default())
    );
}
