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
    s.record_delivery(
        m10,
        DeliveryUpdate::Failed {
            attempts: 3,
            error: "no".into(),
        },
        T0,
    )
    .await
    .unwrap();
    assert!(
        s.record_delivery(
            MessageId(id(4242)),
            DeliveryUpdate::Cancelled { attempts: 0 },
            T0
        )
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
    s.record_delivery(m9, DeliveryUpdate::Cancelled { attempts: 0 }, T0)
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

/// A delivery record applies only to a message still queued: a `Sent` that arrives after a
/// resend cancelled the message (the send was in flight) leaves it cancelled, without its
/// link; a late `Retry` does not requeue a sent message.
pub async fn a_late_delivery_record_does_not_revive_a_message_that_left_the_queue(
    backend: Arc<dyn Backend>,
) {
    let s = &*backend;
    seed(s).await;
    s.create_invitations(&invite("ann@example.com", 8, &[web(A)], T0))
        .await
        .expect("invite");
    let first = MessageId(id(8 + 500_000));
    let claimed = s
        .claim_due_messages(at(120_000), at(600_000), 10)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first]
    );
    // While the send is in flight, a resend cancels the message and queues another.
    let second = MessageId(id(8181));
    let rotated = s
        .rotate_batch(&RotateBatch {
            organization: ORG,
            batch_id: BatchId(id(8)),
            new_token_hash: token(81),
            expires_at: at(20 * DAY),
            message_id: second,
            accept_url: "https://app.example/accept/81".into(),
            message_due_at: at(200_000),
            not_sent_after: T0,
            now: at(130_000),
            actor: None,
        })
        .await
        .expect("rotate");
    assert!(matches!(rotated, RotateFact::Rotated { .. }), "{rotated:?}");
    s.record_delivery(first, DeliveryUpdate::Sent { attempts: 1 }, T0)
        .await
        .expect("a moot record is not an error");
    let messages = s.batch_messages(BatchId(id(8))).await.expect("messages");
    let row = |m: MessageId| messages.iter().find(|x| x.id == m).expect("row").clone();
    assert_eq!(row(first).status, MessageStatus::Cancelled);
    assert_eq!(row(first).accept_url, None);
    assert_eq!(row(second).status, MessageStatus::Queued);

    // The new one is sent; a late retry from a deliverer whose lease ran out changes nothing.
    s.record_delivery(second, DeliveryUpdate::Sent { attempts: 1 }, T0)
        .await
        .expect("record");
    s.record_delivery(
        second,
        DeliveryUpdate::Retry {
            attempts: 1,
            next_attempt_at: at(900_000),
            error: "late".into(),
        },
        T0,
    )
    .await
    .expect("a moot record is not an error");
    let messages = s.batch_messages(BatchId(id(8))).await.expect("messages");
    let second_row = messages.iter().find(|x| x.id == second).expect("row");
    assert_eq!(second_row.status, MessageStatus::Sent);
    assert_eq!(second_row.last_error, None);
    assert!(
        s.claim_due_messages(at(10_000_000), at(10_600_000), 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is queued any more"
    );
}

/// A claim counts an attempt (stored and returned), so a message whose deliverer dies
/// mid-send still uses up its attempts. `Deferred` gives the attempt back and sets a new due
/// time, keeping the last error, but only while the row still holds the deferring claim's
/// lease: once another claim took the message over, a late deferral changes nothing.
pub async fn a_claim_counts_an_attempt_and_a_deferral_applies_only_under_its_lease(
    backend: Arc<dyn Backend>,
) {
    let s = &*backend;
    seed(s).await;
    s.create_invitations(&invite("ann@example.com", 8, &[web(A)], T0))
        .await
        .expect("invite");
    let lease1 = at(200_000);
    let claimed = s
        .claim_due_messages(at(120_000), lease1, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let m = claimed[0].id;
    assert_eq!(claimed[0].attempts, 1, "the claim counts the attempt");
    assert_eq!(
        claimed[0].next_attempt_at,
        at(60_000),
        "returned with the time it became due"
    );
    let stored = |ms: Vec<OutboxMessage>| ms.into_iter().find(|x| x.id == m).expect("row");
    let row = stored(s.batch_messages(BatchId(id(8))).await.expect("read"));
    assert_eq!((row.attempts, row.next_attempt_at), (1, lease1));

    // Deferred under its own lease: the attempt is given back, due at the new time.
    s.record_delivery(
        m,
        DeliveryUpdate::Deferred {
            attempts: 0,
            next_attempt_at: at(150_000),
            leased_until: lease1,
        },
        T0,
    )
    .await
    .expect("defer");
    let row = stored(s.batch_messages(BatchId(id(8))).await.expect("read"));
    assert_eq!(
        (
            row.status,
            row.attempts,
            row.next_attempt_at,
            row.last_error
        ),
        (MessageStatus::Queued, 0, at(150_000), None)
    );

    // Claimed twice more (the first lease runs out): two attempts counted.
    let lease2 = at(300_000);
    let again = s
        .claim_due_messages(at(150_000), lease2, 10)
        .await
        .expect("claim");
    assert_eq!(again[0].attempts, 1);
    let lease3 = at(400_000);
    let third = s
        .claim_due_messages(lease2, lease3, 10)
        .await
        .expect("claim");
    assert_eq!(
        third[0].attempts, 2,
        "each claim counts, with no record between"
    );

    // A deferral from the second claim, whose lease was taken over: changes nothing.
    s.record_delivery(
        m,
        DeliveryUpdate::Deferred {
            attempts: 0,
            next_attempt_at: at(310_000),
            leased_until: lease2,
        },
        T0,
    )
    .await
    .expect("a moot deferral is not an error");
    let row = stored(s.batch_messages(BatchId(id(8))).await.expect("read"));
    assert_eq!((row.attempts, row.next_attempt_at), (2, lease3));
    // Nor does any deferral of a message that left the queue.
    s.record_delivery(m, DeliveryUpdate::Sent { attempts: 2 }, T0)
        .await
        .expect("sent");
    s.record_delivery(
        m,
        DeliveryUpdate::Deferred {
            attempts: 0,
            next_attempt_at: at(310_000),
            leased_until: lease3,
        },
        T0,
    )
    .await
    .expect("a moot deferral is not an error");
    let row = stored(s.batch_messages(BatchId(id(8))).await.expect("read"));
    assert_eq!((row.status, row.attempts), (MessageStatus::Sent, 2));
}

/// `failed_messages` lists the failed messages created in a half-open window, oldest first,
/// page by page from a position; queued, sent and cancelled messages and those outside the
/// window are not listed.
pub async fn failed_messages_lists_a_window_page_by_page(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    // Five messages created at T0 + n seconds; all but the third fail.
    let mut ids = Vec::new();
    for n in 0..5u128 {
        let cmd = invite(
            &format!("u{n}@example.com"),
            20 + n,
            &[web(A)],
            at(n as i64 * 1000),
        );
        s.create_invitations(&cmd).await.expect("invite");
        let m = s.batch_messages(BatchId(id(20 + n))).await.expect("read")[0].id;
        let update = if n == 2 {
            DeliveryUpdate::Sent { attempts: 1 }
        } else {
            DeliveryUpdate::Failed {
                attempts: 1,
                error: "refused".into(),
            }
        };
        s.record_delivery(m, update, T0).await.expect("record");
        ids.push(m);
    }
    let window = |after, limit| s.failed_messages(at(1000), at(4000), after, limit);
    let all = window(None, 10).await.expect("list");
    assert_eq!(
        all.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1], ids[3]],
        "[T0+1 s, T0+4 s): the failed ones, oldest first"
    );
    assert!(all.iter().all(|m| m.status == MessageStatus::Failed));
    let first = window(None, 1).await.expect("page");
    assert_eq!(first.len(), 1);
    let next = window(Some((first[0].created_at, first[0].id)), 1)
        .await
        .expect("page");
    assert_eq!(next.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[3]]);
    let end = window(Some((next[0].created_at, next[0].id)), 1)
        .await
        .expect("page");
    assert!(end.is_empty());
    assert!(window(None, 0).await.expect("limit 0").is_empty());
}
