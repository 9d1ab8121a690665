//! Retention: `purge_expired` deletes expired idempotency keys and dead history, and keeps
//! everything a host can still see or use.

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

/// Within the idempotency time to live a purge keeps the key (the replay still returns the
/// stored response and changes nothing); once it has passed, the purge deletes the record
/// (its report counts it: after the time to live the key would serve another request even
/// if the record stayed, so the report is what shows the deletion), and a later purge does
/// not touch the young record of the new request.
pub async fn purge_keeps_idempotent_replays_and_frees_expired_keys(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 160).await;
    let p = w.global_key();
    let req = sites(Direct, "ann@new.test", &[w.websites[0]]);
    let r1 = h
        .service
        .bulk_invite_idempotent(&p, "order-9", req.clone())
        .await
        .expect("first");
    h.clock.advance(DAY - secs(1));
    let report = h.service.purge_expired().await.expect("purge");
    assert_eq!(report, PurgeReport::default(), "nothing expired yet");
    let s1 = snapshot(&backend).await;
    let r2 = h
        .service
        .bulk_invite_idempotent(&p, "order-9", req)
        .await
        .expect("replay");
    assert_eq!(r2, r1, "the stored response, after a purge within the ttl");
    assert_eq!(snapshot(&backend).await, s1);

    h.clock.advance(secs(2));
    let report = h.service.purge_expired().await.expect("purge");
    assert_eq!(report.idempotency_records, 1);
    assert_eq!(report.total(), 1, "nothing else is old enough: {report:?}");
    let other = sites(Direct, "bob@new.test", &[w.websites[1]]);
    let r3 = h
        .service
        .bulk_invite_idempotent(&p, "order-9", other.clone())
        .await
        .expect("the key is free");
    expect_codes(&r3, &[(web(w.websites[1]), OutcomeCode::Added)]);
    assert_eq!(
        h.service.purge_expired().await.expect("purge"),
        PurgeReport::default(),
        "the new record is young"
    );
    let replay = h
        .service
        .bulk_invite_idempotent(&p, "order-9", other)
        .await
        .expect("replay of the new request");
    assert_eq!(replay, r3);
}

/// After the retention (30 days by default) a batch whose invitations all expired that long
/// ago (here: accepted) goes with its invitations and message, and its token opens nothing;
/// the user and his memberships stay. A batch resent since stays, with its newest message:
/// its batch view and its invitations in the list read as before, minus the older messages.
pub async fn purge_keeps_what_hosts_see_and_drops_dead_batches(backend: Arc<dyn Backend>) {
    dead_batches(backend, RetentionPolicy::default()).await;
}

/// The same purge with `retention.batch_size` 1: the service calls the store again until a
/// call comes back short, so the report and everything kept are the same as with the default
/// of 500 rows per call.
pub async fn purge_one_row_per_call_reports_the_same(backend: Arc<dyn Backend>) {
    let policy = RetentionPolicy::default()
        .with_batch_size(1)
        .expect("a valid batch size");
    dead_batches(backend, policy).await;
}

async fn dead_batches(backend: Arc<dyn Backend>, policy: RetentionPolicy) {
    let (w, mut h) = setup(&backend, 161).await;
    h.service = InviteService::new(
        h.store.clone(),
        Arc::new(h.mailer.clone()),
        crate::Harness::config(&h.clock, 161).with_retention_policy(policy),
    );
    let p = w.global_key();
    let ann = must(
        h.service
            .bulk_invite(
                &p,
                sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
            )
            .await,
    );
    let ann_batch = ann.email.expect("email").batch_id.expect("batch");
    let bob = must(
        h.service
            .bulk_invite(&p, sites(ByEmail, "bob@new.test", &[w.websites[2]]))
            .await,
    );
    let bob_batch = bob.email.expect("email").batch_id.expect("batch");
    let bob_token = h.last_token();
    h.clock.advance(secs(3600));
    let accepted = h.service.accept(&bob_token, None).await.expect("accept");
    let bob_user = accepted.user_id;
    // Ann's batch is resent twice, six days apart: three messages, the invitations renewed.
    for _ in 0..2 {
        h.clock.advance(6 * DAY);
        let resent = h.service.resend(&p, ann_batch).await.expect("resend");
        assert_eq!(resent.email.status, EmailStatus::Sent);
    }
    assert_eq!(
        h.service
            .batch(&p, ann_batch)
            .await
            .expect("view")
            .messages
            .len(),
        3
    );
    let list = |h: &crate::Harness, to: &'static str| {
        let service = h.service.clone();
        let p = p.clone();
        async move {
            service
                .list_invitations(&p, InvitationFilter::Email(email_of(to)), 10, None)
                .await
                .expect("list")
        }
    };
    // Day 38: the cutoff is day 8. Bob's batch expired on day 7; Ann's was last sent on day 12.
    h.clock.advance(26 * DAY);
    let ann_listed = list(&h, "ann@new.test").await;
    // The accept refuses an expired token whether or not its batch is still stored, so the
    // store itself is asked what the token finds, before and after the purge.
    let bob_hash = AcceptToken::from_user(&bob_token).hash();
    let found = backend.find_batch_by_token(&bob_hash).await.expect("read");
    assert_eq!(
        found.map(|b| b.id),
        Some(bob_batch),
        "stored until the purge"
    );
    let before = snapshot(&backend).await;
    // Events go once older than the history window (30 days): those of days 0 to 7.
    let cutoff = h.clock.now().minus(30 * DAY);
    let log = h
        .service
        .events(w.org, None, 1000)
        .await
        .expect("events")
        .events;
    let old_events = log.iter().filter(|e| e.at < cutoff).count() as u64;
    assert!(old_events > 0 && old_events < log.len() as u64, "{log:?}");
    let report = h.service.purge_expired().await.expect("purge");
    assert_eq!(
        report,
        PurgeReport {
            idempotency_records: 0,
            batches: 1,
            invitations: 1,
            messages: 3,
            events: old_events,
        },
        "bob's batch with its message, and ann's two older messages"
    );
    assert_eq!(
        h.service.purge_expired().await.expect("purge"),
        PurgeReport::default(),
        "a second purge finds nothing"
    );
    let kept = h
        .service
        .events(w.org, None, 1000)
        .await
        .expect("events")
        .events;
    assert_eq!(
        kept.as_slice(),
        &log[log.len() - kept.len()..],
        "the newest events stay as they were"
    );
    assert_eq!(kept.len() as u64, log.len() as u64 - old_events);

    let view = h
        .service
        .batch(&p, ann_batch)
        .await
        .expect("ann's batch stays");
    assert_eq!(view.invitations.len(), 2);
    assert_eq!(view.messages.len(), 1, "only the newest message");
    assert_eq!(view.messages[0].status, MessageStatus::Sent);
    assert_eq!(
        list(&h, "ann@new.test").await,
        ann_listed,
        "the list reads as before"
    );

    assert!(matches!(
        h.service.batch(&p, bob_batch).await,
        Err(InviteError::NotFound { .. })
    ));
    assert!(list(&h, "bob@new.test").await.items.is_empty());
    assert!(
        backend
            .find_batch_by_token(&bob_hash)
            .await
            .expect("read")
            .is_none(),
        "the purged batch's token finds nothing"
    );
    assert!(
        h.service.accept(&bob_token, None).await.is_err(),
        "the token is dead"
    );
    let after = snapshot(&backend).await;
    assert_eq!(after.users, before.users, "users stay");
    assert_eq!(after.memberships, before.memberships, "memberships stay");
    assert!(membership(&after, web(w.websites[2]), bob_user).is_some());
    assert_eq!(after.batches.len(), before.batches.len() - 1);
}
