//! The purge (`purge_batches`, `purge_messages`, `purge_idempotency`): what is older than the
//! cutoff goes, what is younger or still live stays, and storage stops growing.

use super::support::*;
use crate::Backend;
use invites_core::rules::{PurgeCutoffs, purge_cutoffs};
use invites_core::*;
use std::sync::Arc;
use std::time::Duration;

fn begin(
    key: &str,
    fingerprint: u8,
    now: Timestamp,
    expired_before: Timestamp,
) -> IdempotencyBegin {
    IdempotencyBegin {
        organization: ORG,
        key_id: ApiKeyId(id(3)),
        key: key.into(),
        fingerprint: [fingerprint; 32],
        expired_before,
        stale_before: Timestamp::from_millis(now.as_millis() - 60_000),
        now,
    }
}

/// Whether the record of `key` still exists: a begin that counts every record as live
/// (`expired_before` at the dawn of time) and brings another fingerprint is `Started` only
/// when there is none. (It then holds a new record, so probe each key once.)
async fn record_exists(s: &dyn Backend, key: &str, now: Timestamp) -> bool {
    let probe = begin(key, 0xee, now, Timestamp::from_millis(i64::MIN));
    s.idempotency_begin(&probe).await.expect("probe") != IdempotencyState::Started
}

/// Claims every message due at `now` and records it sent.
async fn deliver_all(s: &dyn Backend, now: Timestamp) -> usize {
    let due = s
        .claim_due_messages(now, now.plus(Duration::from_secs(60)), 1000)
        .await
        .expect("claim");
    for m in &due {
        s.record_delivery(m.id, DeliveryUpdate::Sent { attempts: 1 }, T0)
            .await
            .expect("record");
    }
    due.len()
}

fn rotate(batch: u128, seed: u128, now: Timestamp, expires_at: Timestamp) -> RotateBatch {
    RotateBatch {
        organization: ORG,
        batch_id: BatchId(id(batch)),
        new_token_hash: token(seed),
        expires_at,
        message_id: MessageId(id(seed + 500_000)),
        accept_url: format!("https://app.example/accept/{seed}"),
        message_due_at: now.plus(Duration::from_secs(60)),
        not_sent_after: now,
        now,
        actor: None,
    }
}

/// Rows older than the cutoff go, in bounded calls, oldest first; younger or live ones stay.
/// Dead batches: every invitation expired before the cutoff (pending, accepted alike), last
/// sent before it, nothing queued. Kept: a batch with a queued message, one whose invitation
/// expires later (a long time to live or a resend), and the newest message of every kept
/// batch; users and memberships always. Idempotency records go when created strictly before
/// their cutoff.
pub async fn purging_deletes_what_is_older_than_the_cutoff_and_keeps_the_rest(
    backend: Arc<dyn Backend>,
) {
    let s = &*backend;
    seed(s).await;
    // 1: pending, never accepted, expires at 7 days. 5: accepted. Both dead after 7 days.
    s.create_invitations(&invite("u1@example.com", 1, &[web(A)], T0))
        .await
        .expect("invite");
    s.create_invitations(&invite("u5@example.com", 5, &[web(B)], T0))
        .await
        .expect("invite");
    // 2: resent after a day (its first message cancelled, the second one sent): renewed.
    s.create_invitations(&invite("u2@example.com", 2, &[web(B)], T0))
        .await
        .expect("invite");
    // 3: its message is never delivered (stays queued). 4: expires after 60 days.
    s.create_invitations(&invite("u3@example.com", 3, &[web(A)], T0))
        .await
        .expect("invite");
    let mut long = invite("u4@example.com", 4, &[web(A)], T0);
    long.expires_at = at(60 * DAY);
    s.create_invitations(&long).await.expect("invite");

    let due = s
        .claim_due_messages(at(120_000), at(180_000), 10)
        .await
        .expect("claim");
    assert_eq!(due.len(), 5);
    for m in due.iter().filter(|m| m.batch_id != BatchId(id(3))) {
        if m.batch_id != BatchId(id(2)) {
            s.record_delivery(m.id, DeliveryUpdate::Sent { attempts: 1 }, T0)
                .await
                .expect("record");
        }
    }
    // Batch 2's first message is still queued (claimed): the resend cancels it.
    let rotated = s
        .rotate_batch(&rotate(2, 22, at(DAY), at(8 * DAY)))
        .await
        .expect("rotate");
    assert_eq!(rotated, RotateFact::Rotated { renewed: 1 });
    // Batch 2's new message is sent; batch 3's, due again, is claimed and left queued.
    let due = s
        .claim_due_messages(at(DAY + 120_000), at(DAY + 180_000), 10)
        .await
        .expect("claim");
    assert_eq!(due.len(), 2);
    let second = MessageId(id(22 + 500_000));
    assert!(due.iter().any(|m| m.id == second));
    s.record_delivery(second, DeliveryUpdate::Sent { attempts: 1 }, T0)
        .await
        .expect("record");
    let accepted = s
        .accept_batch(&AcceptBatch {
            batch_id: BatchId(id(5)),
            token_hash: token(5),
            new_user: NewUser {
                id: UserId(id(55)),
                first_name: None,
                last_name: None,
            },
            now: at(3_600_000),
        })
        .await
        .expect("accept")
        .expect("the batch");
    let u5 = accepted.user.id;

    // At the expiry itself nothing is dead yet (strictly before).
    assert_eq!(
        s.purge_batches(at(7 * DAY), 10).await.expect("purge"),
        PurgedBatches::default()
    );
    let before = at(7 * DAY + 1);
    assert_eq!(
        s.purge_batches(before, 0).await.expect("purge"),
        PurgedBatches::default(),
        "limit 0 deletes nothing"
    );
    // Bounded: one per call, oldest (last_sent_at, id) first.
    let one = PurgedBatches {
        batches: 1,
        invitations: 1,
        messages: 1,
    };
    assert_eq!(s.purge_batches(before, 1).await.expect("purge"), one);
    assert!(
        s.get_batch(ORG, BatchId(id(1)))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        s.get_batch(ORG, BatchId(id(5)))
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(s.purge_batches(before, 10).await.expect("purge"), one);
    assert_eq!(
        s.purge_batches(before, 10).await.expect("purge"),
        PurgedBatches::default()
    );
    assert_eq!(s.purge_messages(before, 0).await.expect("purge"), 0);
    assert_eq!(
        s.purge_messages(before, 10).await.expect("purge"),
        1,
        "batch 2's cancelled first message; its newest stays"
    );
    assert_eq!(s.purge_messages(before, 10).await.expect("purge"), 0);

    let snap = s.snapshot().await.expect("snapshot");
    let batches: Vec<BatchId> = snap.batches.iter().map(|b| b.0).collect();
    assert_eq!(batches, [2, 3, 4].map(|n| BatchId(id(n))));
    assert_eq!(snap.invitations.len(), 3);
    assert!(
        snap.invitations
            .iter()
            .all(|i| batches.contains(&i.batch_id))
    );
    let outbox: Vec<(BatchId, MessageStatus)> =
        snap.outbox.iter().map(|m| (m.batch_id, m.status)).collect();
    assert_eq!(
        outbox,
        [
            (BatchId(id(3)), MessageStatus::Queued),
            (BatchId(id(4)), MessageStatus::Sent),
            (BatchId(id(2)), MessageStatus::Sent),
        ]
    );
    assert_eq!(
        s.batch_messages(BatchId(id(2))).await.expect("read")[0].id,
        MessageId(id(22 + 500_000))
    );
    assert!(
        s.find_batch_by_token(&token(1))
            .await
            .expect("read")
            .is_none(),
        "a purged batch's token opens nothing"
    );
    assert!(s.get_user(u5).await.expect("read").is_some(), "users stay");
    assert_eq!(snap.memberships.len(), 1, "memberships stay");
    assert_eq!(snap.memberships[0].user, u5);

    // A purged pending invitation frees its (target, email): a new one is a plain invite.
    let again = s
        .create_invitations(&invite("u1@example.com", 6, &[web(A)], at(8 * DAY)))
        .await
        .expect("invite");
    assert_eq!(ok(&again.targets), [InviteFact::Invited]);

    // Much later: 2 and 4 die once their (renewed or long) expiries have passed; 3 and 6
    // never while their message is queued.
    let much_later = at(61 * DAY);
    let purged = s.purge_batches(much_later, 10).await.expect("purge");
    assert_eq!(
        (purged.batches, purged.invitations, purged.messages),
        (2, 2, 2)
    );
    let left: Vec<BatchId> = s
        .snapshot()
        .await
        .expect("snapshot")
        .batches
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(left, [3, 6].map(|n| BatchId(id(n))));

    // Idempotency: k1 created at T0 goes with a cutoff after it; k2, created at the cutoff,
    // stays (strictly before).
    s.idempotency_begin(&begin("k1", 1, T0, T0))
        .await
        .expect("begin");
    s.idempotency_finish(ORG, ApiKeyId(id(3)), "k1", T0, Some("{}"), None)
        .await
        .expect("finish");
    s.idempotency_begin(&begin("k2", 2, at(DAY), T0))
        .await
        .expect("begin");
    assert_eq!(s.purge_idempotency(at(DAY), 0).await.expect("purge"), 0);
    assert_eq!(s.purge_idempotency(at(DAY), 10).await.expect("purge"), 1);
    assert_eq!(s.purge_idempotency(at(DAY), 10).await.expect("purge"), 0);
    assert!(!record_exists(s, "k1", at(DAY)).await, "k1 was deleted");
    assert!(record_exists(s, "k2", at(DAY)).await, "k2 was kept");
}

/// One cycle a day: two requests (one resent an hour later), their deliveries, one
/// idempotency record, then (optionally) a purge with a retention of 3 days and an
/// idempotency time to live of 1 day. With the purge, the rows stay at the same count once
/// the retention window has passed, and each purge deletes exactly one day's rows; without
/// it, every day adds its rows.
pub async fn storage_stops_growing_when_purged(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    let history = Duration::from_secs(3 * 24 * 3600);
    let ttl = Duration::from_secs(24 * 3600);
    let mut counts = Vec::new();
    let mut last_cutoffs: Option<PurgeCutoffs> = None;
    let day = |d: i64| at(d * DAY);
    let cycle = |d: i64| async move {
        let t = day(d);
        let seed_a = 10 * d as u128 + 1000;
        for (n, site) in [(seed_a, A), (seed_a + 1, B)] {
            let mut cmd = invite(&format!("u{n}@example.com"), n, &[web(site)], t);
            cmd.expires_at = t.plus(Duration::from_secs(24 * 3600));
            s.create_invitations(&cmd).await.expect("invite");
        }
        assert_eq!(deliver_all(s, t.plus(Duration::from_secs(120))).await, 2);
        let resend_at = t.plus(Duration::from_secs(3600));
        let r = rotate(seed_a, seed_a + 5, resend_at, resend_at.plus(ttl));
        assert!(matches!(
            s.rotate_batch(&r).await.expect("rotate"),
            RotateFact::Rotated { .. }
        ));
        assert_eq!(
            deliver_all(s, resend_at.plus(Duration::from_secs(120))).await,
            1
        );
        let key = format!("k{d}");
        s.idempotency_begin(&begin(&key, 1, t, t))
            .await
            .expect("begin");
        s.idempotency_finish(ORG, ApiKeyId(id(3)), &key, t, Some("{}"), None)
            .await
            .expect("finish");
    };
    let count = |snap: &Snapshot| {
        (
            snap.batches.len(),
            snap.invitations.len(),
            snap.outbox.len(),
        )
    };

    for d in 0..20 {
        cycle(d).await;
        let now = day(d).plus(Duration::from_secs(12 * 3600));
        let c = purge_cutoffs(now, ttl, history);
        let mut purged = (0, 0, 0, 0);
        loop {
            let b = s.purge_batches(c.history_before, 3).await.expect("purge");
            purged.0 += b.batches;
            purged.1 += b.invitations;
            purged.2 += b.messages;
            if b.batches < 3 {
                break;
            }
        }
        purged.2 += s
            .purge_messages(c.history_before, 1000)
            .await
            .expect("purge");
        purged.3 += s
            .purge_idempotency(c.idempotency_before, 1000)
            .await
            .expect("purge");
        if d >= 6 {
            assert_eq!(purged, (2, 2, 3, 1), "day {d}: one day's rows go");
        }
        last_cutoffs = Some(c);
        counts.push(count(&s.snapshot().await.expect("snapshot")));
    }
    let steady = counts[6];
    assert!(
        counts[6..].iter().all(|c| *c == steady),
        "bounded after the window: {counts:?}"
    );
    assert!(
        steady.0 <= 2 * 5 && steady.2 <= 3 * 5,
        "at most five days' rows: {steady:?}"
    );
    // Exactly the keys younger than the last cutoff are left.
    let cutoff = last_cutoffs.expect("ran").idempotency_before;
    for d in 0..20 {
        let exists = record_exists(s, &format!("k{d}"), day(30)).await;
        assert_eq!(exists, day(d) >= cutoff, "key of day {d}");
    }

    // Without the purge, every day adds two batches, two invitations and three messages.
    let mut grown = vec![count(&s.snapshot().await.expect("snapshot"))];
    for d in 40..45 {
        cycle(d).await;
        grown.push(count(&s.snapshot().await.expect("snapshot")));
    }
    for pair in grown.windows(2) {
        assert_eq!(
            (
                pair[1].0 - pair[0].0,
                pair[1].1 - pair[0].1,
                pair[1].2 - pair[0].2
            ),
            (2, 2, 3),
            "grows without purge: {grown:?}"
        );
    }
}

/// Purges racing resends of the same dead batches (pending invitations that expired long
/// ago can still be resent): each batch ends either resent (and kept, with its new message
/// queued and its invitation renewed) or purged whole (the resend then finds nothing); the
/// purges' counts match, and no invitation or message is left without its batch.
pub async fn purges_racing_resends_keep_each_batch_whole(backend: Arc<dyn Backend>) {
    const BATCHES: u128 = 8;
    let s = &*backend;
    seed(s).await;
    for n in 0..BATCHES {
        let site = [A, B, X][(n % 3) as usize];
        s.create_invitations(&invite(
            &format!("r{n}@example.com"),
            700 + n,
            &[web(site)],
            T0,
        ))
        .await
        .expect("invite");
    }
    assert_eq!(deliver_all(s, at(120_000)).await, BATCHES as usize);
    let now = at(40 * DAY);
    let before = at(10 * DAY);
    let resends: Vec<_> = (0..BATCHES)
        .map(|n| {
            let b = backend.clone();
            tokio::spawn(async move {
                let cmd = rotate(
                    700 + n,
                    7700 + n,
                    now,
                    now.plus(Duration::from_secs(86_400)),
                );
                (n, b.rotate_batch(&cmd).await.expect("resend"))
            })
        })
        .collect();
    let purges: Vec<_> = (0..2)
        .map(|_| {
            let b = backend.clone();
            tokio::spawn(async move {
                let mut total = PurgedBatches::default();
                loop {
                    let p = b.purge_batches(before, 1).await.expect("purge");
                    total.batches += p.batches;
                    total.invitations += p.invitations;
                    total.messages += p.messages;
                    if p.batches == 0 {
                        return total;
                    }
                }
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in resends {
        outcomes.push(t.await.expect("task"));
    }
    let mut purged = PurgedBatches::default();
    for t in purges {
        let p = t.await.expect("task");
        purged.batches += p.batches;
        purged.invitations += p.invitations;
        purged.messages += p.messages;
    }
    let snap = s.snapshot().await.expect("snapshot");
    let kept: Vec<BatchId> = snap.batches.iter().map(|b| b.0).collect();
    let mut resent = 0;
    for (n, fact) in outcomes {
        let id = BatchId(id(700 + n));
        match fact {
            RotateFact::Rotated { renewed: 1 } => {
                resent += 1;
                assert!(kept.contains(&id), "a resent batch is kept");
                let messages = s.batch_messages(id).await.expect("read");
                assert_eq!(messages.len(), 2);
                assert_eq!(messages[1].status, MessageStatus::Queued);
                let batch = s.get_batch(ORG, id).await.expect("read").expect("kept");
                assert_eq!(
                    batch.invitations[0].expires_at,
                    now.plus(Duration::from_secs(86_400))
                );
            }
            RotateFact::NotFound => assert!(!kept.contains(&id), "purged whole"),
            other => panic!("batch {n}: {other:?}"),
        }
    }
    assert_eq!(kept.len(), resent);
    assert_eq!(purged.batches as usize, BATCHES as usize - resent);
    assert_eq!(
        (purged.invitations, purged.messages),
        (purged.batches, purged.batches)
    );
    assert!(snap.invitations.iter().all(|i| kept.contains(&i.batch_id)));
    assert!(snap.outbox.iter().all(|m| kept.contains(&m.batch_id)));
}
