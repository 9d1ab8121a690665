//! The background delivery task: retries queued messages on its interval and stops on request.
//! Runs under tokio's paused clock, so no real time passes.

use invites::core::{BulkInviteRequest, EmailStatus, InviteMethod};
use invites::delivery::DeliveryWorker;
use invites::memory::{MailerMode, MemoryStore};
use invites_testkit::{Harness, World};
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn worker_delivers_queued_mail_then_stops() {
    let store = MemoryStore::new();
    let world = World::seed(&store).await;
    let h = Harness::new(store);
    h.mailer.set_mode(MailerMode::FailTransient);
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            BulkInviteRequest::websites(
                InviteMethod::Email,
                "ann@example.test",
                world.websites[..2].iter().copied(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.email.unwrap().status, EmailStatus::Queued);
    assert_eq!(h.mailer.attempts(), 1);

    let worker = DeliveryWorker::spawn(h.service.clone(), Duration::from_secs(10));
    // The message is not due yet (30 s backoff on the service's clock): ticks do nothing.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(h.mailer.attempts(), 1);

    // The mailer recovers and the service's clock passes the backoff: the next tick delivers.
    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(Duration::from_secs(31));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.mailer.sent().len(), 1, "delivered by the worker");

    let totals = worker.stop().await;
    assert_eq!(totals.sent, 1);
    assert!(totals.runs >= 3, "ran on its interval: {totals:?}");

    // Stopped: nothing more happens, even for a new due message.
    h.mailer.set_mode(MailerMode::FailTransient);
    h.service
        .bulk_invite(
            &world.global_key(),
            BulkInviteRequest::websites(
                InviteMethod::Email,
                "bob@example.test",
                [world.websites[3]],
            ),
        )
        .await
        .unwrap();
    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.mailer.sent().len(), 1);
}

/// The worker purges after its first tick and then once per `RetentionPolicy::interval`
/// (default one hour of tokio time), on the service's clock: expired idempotency keys and
/// dead batches go, and its totals say what went.
#[tokio::test(start_paused = true)]
async fn worker_purges_on_its_interval() {
    use invites::core::{Inspect, PurgeReport};
    let store = MemoryStore::new();
    let world = World::seed(&store).await;
    let h = Harness::new(store.clone());
    let key = world.global_key();
    let email = BulkInviteRequest::websites(
        InviteMethod::Email,
        "ann@example.test",
        world.websites[..2].iter().copied(),
    );
    let r = h.service.bulk_invite(&key, email).await.unwrap();
    assert_eq!(r.email.unwrap().status, EmailStatus::Sent);
    let direct = BulkInviteRequest::websites(
        InviteMethod::Direct,
        "bob@example.test",
        [world.websites[2]],
    );
    h.service
        .bulk_invite_idempotent(&key, "order-1", direct)
        .await
        .unwrap();

    let seeded = store.snapshot().await.unwrap();
    let worker = DeliveryWorker::spawn(h.service.clone(), Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Past the retention (30 days) after the invitations expired (7 days), on the service's
    // clock; the next purge is due an hour after the first.
    h.clock.advance(Duration::from_secs(38 * 24 * 3600));
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.batches.len(), 1, "not purged before the interval");

    tokio::time::sleep(Duration::from_secs(31 * 60)).await;
    let snapshot = store.snapshot().await.unwrap();
    assert!(snapshot.batches.is_empty(), "purged by the worker");
    assert!(snapshot.invitations.is_empty() && snapshot.outbox.is_empty());
    assert_eq!(
        snapshot.users, seeded.users,
        "users stay (bob, added directly)"
    );
    assert_eq!(snapshot.memberships, seeded.memberships, "memberships stay");
    assert!(!seeded.memberships.is_empty());

    let totals = worker.stop().await;
    assert_eq!(totals.purges, 2, "{totals:?}");
    assert_eq!(
        totals.purged,
        PurgeReport {
            idempotency_records: 1,
            batches: 1,
            invitations: 2,
            messages: 1,
            // Ann's two invitation_created and email_sent, Bob's user_created and member_added.
            events: 5,
        }
    );
    assert_eq!(totals.store_errors, 0);
}
