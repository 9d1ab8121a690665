//! Delivery (docs/contract.md §5): retries with backoff, permanent failures, cancelled batches, store errors.

use super::support::*;
use crate::{Backend, Fault, MailerMode, World};
use invites_core::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

/// `deliver_due` retries a queued message with exponential backoff: not due a millisecond
/// before the backoff, due at it; attempts are counted; every attempt carries the same
/// message id and link; once sent the body is cleared and nothing is sent again.
pub async fn delivery_retries_with_exponential_backoff(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let (service, probe, clock) = probe_service(&backend, 125, MailerMode::FailTransient);
    let policy = service.config().delivery();
    assert_eq!(policy.backoff(2), policy.backoff(1) * 2);
    assert_eq!(policy.backoff(3), policy.backoff(1) * 4);
    let r = service
        .bulk_invite(
            &w.global_key(),
            sites(ByEmail, "ann@new.test", &[w.websites[0]]),
        )
        .await
        .expect("processed");
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    let batch = batch_of(&r);
    let row = |s: &Snapshot| outbox_of(s, batch)[0].clone();
    let s = snapshot(&backend).await;
    assert_eq!(row(&s).attempts, 1);
    assert_eq!(row(&s).next_attempt_at, clock.now().plus(policy.backoff(1)));

    let nothing = DeliveryReport::default();
    assert_eq!(service.deliver_due().await.expect("deliver"), nothing);
    for attempt in 1..=2u32 {
        clock.advance(policy.backoff(attempt) - MS);
        assert_eq!(
            service.deliver_due().await.expect("deliver"),
            nothing,
            "not due before the backoff"
        );
        assert_eq!(row(&snapshot(&backend).await).attempts, attempt);
        clock.advance(MS);
        let report = service.deliver_due().await.expect("deliver");
        assert_eq!(report.retried, 1, "due at the backoff");
        let s = snapshot(&backend).await;
        assert_eq!(row(&s).attempts, attempt + 1);
        assert_eq!(row(&s).status, MessageStatus::Queued);
        assert!(row(&s).accept_url.is_some());
        assert_eq!(
            row(&s).next_attempt_at,
            clock.now().plus(policy.backoff(attempt + 1))
        );
    }
    probe.set_mode(MailerMode::Ok);
    clock.advance(policy.backoff(3));
    let report = service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let s = snapshot(&backend).await;
    let final_row = row(&s);
    assert_eq!(final_row.status, MessageStatus::Sent);
    assert_eq!(final_row.attempts, 4);
    assert_eq!(final_row.accept_url, None);
    let attempts = probe.attempts();
    assert_eq!(attempts.len(), 4);
    for a in &attempts {
        assert_eq!(a.message.id, final_row.id, "a stable message id");
        assert_eq!(a.message.batch_id, batch);
        assert_eq!(a.message.text, attempts[0].message.text);
    }
    clock.advance(DAY);
    assert_eq!(service.deliver_due().await.expect("deliver"), nothing);
    assert_eq!(probe.attempts().len(), 4);
}
/// A permanent mailer error marks the message failed at once (body cleared, no retry), both
/// on the first attempt and on a retry; the invitations stand.
pub async fn permanent_mail_error_marks_failed(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let (service, probe, clock) = probe_service(&backend, 126, MailerMode::FailPermanent);
    let p = w.global_key();
    let r = service
        .bulk_invite(&p, sites(ByEmail, "ann@new.test", &[w.websites[0]]))
        .await
        .expect("processed");
    expect_codes(&r, &[(web(w.websites[0]), Invited)]);
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Failed));
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch_of(&r))[0].clone();
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.accept_url, None);
    assert!(row.last_error.is_some());
    assert_eq!(
        invitation(&s, invite_id(&r, 0)).status,
        StoredStatus::Pending
    );
    clock.advance(DAY);
    assert_eq!(
        service.deliver_due().await.expect("deliver"),
        DeliveryReport::default()
    );
    assert_eq!(probe.attempts().len(), 1);

    probe.set_mode(MailerMode::FailTransient);
    let r = service
        .bulk_invite(&p, sites(ByEmail, "bob@new.test", &[w.websites[1]]))
        .await
        .expect("processed");
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    probe.set_mode(MailerMode::FailPermanent);
    clock.advance(service.config().delivery().max_backoff());
    let report = service.deliver_due().await.expect("deliver");
    assert_eq!(report.failed, 1);
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch_of(&r))[0].clone();
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.accept_url, None);
}
/// After `max_attempts` transient failures the message is marked failed, its body cleared,
/// and it is never tried again.
pub async fn too_many_attempts_marks_failed(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 127).await;
    h.mailer.set_mode(MailerMode::FailTransient);
    let policy = h.service.config().delivery();
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0]]),
    )
    .await;
    let batch = batch_of(&r);
    let mut total = DeliveryReport::default();
    for _ in 0..policy.max_attempts() + 3 {
        h.clock.advance(policy.max_backoff());
        let rep = h.service.deliver_due().await.expect("deliver");
        total.retried += rep.retried;
        total.failed += rep.failed;
        total.sent += rep.sent;
    }
    assert_eq!(h.mailer.attempts(), policy.max_attempts() as usize);
    assert_eq!(total.retried, policy.max_attempts() as usize - 2);
    assert_eq!(total.failed, 1);
    assert_eq!(total.sent, 0);
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch)[0].clone();
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.attempts, policy.max_attempts());
    assert_eq!(row.accept_url, None);
}
/// A queued message whose batch has no live invitation left (all revoked) is cancelled, never
/// sent; one with some left lists only those.
pub async fn revoked_batch_is_cancelled_not_sent(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 128).await;
    let ws = &w.websites;
    let p = w.global_key();
    h.mailer.set_mode(MailerMode::FailTransient);
    let a = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[0], ws[1]])).await;
    let b = run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[2], ws[3]])).await;
    for i in 0..2 {
        let rev = h
            .service
            .revoke(&p, invite_id(&a, i))
            .await
            .expect("revoke");
        assert!(rev.changed);
    }
    h.service
        .revoke(&p, invite_id(&b, 0))
        .await
        .expect("revoke");
    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery().max_backoff());
    let report = h.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    assert_eq!(report.cancelled, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, email("bob@new.test"));
    assert_lists(&sent[0], &[("Site 3", Role::Viewer)], &["Site 2"]);
    let s = snapshot(&backend).await;
    let row_a = outbox_of(&s, batch_of(&a))[0].clone();
    assert_eq!(row_a.status, MessageStatus::Cancelled);
    assert_eq!(row_a.accept_url, None);
    assert_eq!(outbox_of(&s, batch_of(&b))[0].status, MessageStatus::Sent);
    h.clock.advance(DAY);
    assert_eq!(
        h.service.deliver_due().await.expect("deliver"),
        DeliveryReport::default()
    );
}
/// A message stored with its invitations is not lost when the store fails right after the
/// commit (the immediate delivery cannot run): the response says `queued`, and `deliver_due`
/// sends it once its lease has passed.
pub async fn queued_message_survives_store_error(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let (faulty, h) = faulty_harness(
        &backend,
        Fault {
            fail_everything_else: true,
            ..Fault::default()
        },
        129,
    );
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0]]),
    )
    .await;
    expect_codes(&r, &[(web(w.websites[0]), Invited)]);
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    assert_code(h.service.deliver_due().await, ErrorCode::StorageUnavailable);
    assert_eq!(h.mailer.attempts(), 0);
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch_of(&r))[0].clone();
    assert_eq!(row.status, MessageStatus::Queued);
    assert_eq!(row.attempts, 0);
    assert!(row.accept_url.is_some());

    faulty.set(Fault::default());
    assert_eq!(
        h.service.deliver_due().await.expect("deliver"),
        DeliveryReport::default(),
        "not due before its lease ends"
    );
    h.clock.advance(h.service.config().delivery().lease());
    let report = h.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, row.id);
    assert_lists(&sent[0], &[("Site 0", Role::Viewer)], &["Site 1"]);
}
/// A message the mailer refused permanently shows as `failed` (with its error and attempts)
/// in the batch view and in every listed invitation of the batch; a delivered one as `sent`.
pub async fn failed_delivery_shows_in_batch_and_list(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 152).await;
    let p = w.global_key();
    h.mailer.set_mode(MailerMode::FailPermanent);
    let r = must(
        h.service
            .bulk_invite(
                &p,
                sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
            )
            .await,
    );
    let email = r.email.expect("email report");
    assert_eq!(email.status, EmailStatus::Failed);
    let batch_id = email.batch_id.expect("a batch");

    let view = h.service.batch(&p, batch_id).await.expect("batch view");
    assert_eq!(view.invitations.len(), 2);
    assert_eq!(view.messages.len(), 1);
    assert_eq!(view.messages[0].status, MessageStatus::Failed);
    assert_eq!(view.messages[0].attempts, 1);
    assert!(view.messages[0].last_error.is_some());
    assert!(
        view.invitations
            .iter()
            .all(|i| i.delivery == Some(MessageStatus::Failed))
    );
    let listed = h
        .service
        .list_invitations(
            &p,
            InvitationFilter::Email(email_of("ann@new.test")),
            10,
            None,
        )
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    assert!(
        listed
            .items
            .iter()
            .all(|i| i.delivery == Some(MessageStatus::Failed))
    );

    h.mailer.set_mode(MailerMode::Ok);
    let ok = must(
        h.service
            .bulk_invite(&p, sites(ByEmail, "bob@new.test", &[w.websites[2]]))
            .await,
    );
    let listed = h
        .service
        .list_invitations(
            &p,
            InvitationFilter::Email(email_of("bob@new.test")),
            10,
            None,
        )
        .await
        .expect("list");
    assert_eq!(listed.items[0].delivery, Some(MessageStatus::Sent));
    let view = h
        .service
        .batch(&p, ok.email.unwrap().batch_id.unwrap())
        .await
        .expect("view");
    assert_eq!(view.messages[0].status, MessageStatus::Sent);

    // The batch view follows the same access rules as a resend.
    assert_code(
        h.service
            .batch(&w.scoped_key(&[w.websites[0]]), batch_id)
            .await,
        ErrorCode::Forbidden,
    );
    let other = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x997)));
    assert_code(h.service.batch(&other, batch_id).await, ErrorCode::NotFound);
}

/// A mailer whose every send takes `per_send` of (manual) time, and that can refuse
/// transiently, to make sends outlast a claim.
#[derive(Debug)]
struct SlowMailer {
    clock: crate::ManualClock,
    per_send: std::sync::Mutex<std::time::Duration>,
    refuse: std::sync::atomic::AtomicBool,
    sent: std::sync::Mutex<Vec<MessageId>>,
}

#[async_trait::async_trait]
impl Mailer for SlowMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        self.clock.advance(*lock(&self.per_send));
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(MailError::transient("refused"));
        }
        lock(&self.sent).push(message.id);
        Ok(())
    }
}

/// `deliver_due` stops once its claim's lease has run out (its sends took that long): from
/// then on another deliverer may claim the rest, so this one must not send them too. They go
/// out on the next call, each once.
pub async fn delivery_stops_when_its_claim_runs_out(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let clock = crate::ManualClock::standard();
    let mailer = Arc::new(SlowMailer {
        clock: clock.clone(),
        per_send: std::sync::Mutex::new(std::time::Duration::ZERO),
        refuse: std::sync::atomic::AtomicBool::new(true),
        sent: std::sync::Mutex::new(Vec::new()),
    });
    let config = crate::Harness::config(&clock, 171);
    let lease = config.delivery().lease();
    let service = InviteService::new(crate::as_store(&backend), mailer.clone(), config);
    let p = w.global_key();
    for to in ["a@new.test", "b@new.test", "c@new.test"] {
        let r = must(
            service
                .bulk_invite(&p, sites(ByEmail, to, &[w.websites[0]]))
                .await,
        );
        assert_eq!(r.email.expect("email").status, EmailStatus::Queued);
    }
    mailer
        .refuse
        .store(false, std::sync::atomic::Ordering::SeqCst);
    clock.advance(secs(3600));
    // Each send now takes the whole lease: the first one uses it up.
    *lock(&mailer.per_send) = lease;
    let report = service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(lock(&mailer.sent).len(), 1);
    // The other two were not sent after the lease ended; their claim has ended with it, so
    // the next call (this deliverer or another) sends them, each once.
    *lock(&mailer.per_send) = std::time::Duration::ZERO;
    let report = service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 2, "{report:?}");
    let sent = lock(&mailer.sent).clone();
    let distinct: BTreeSet<MessageId> = sent.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        3,
        "three messages, each sent once: {sent:?}"
    );
}
