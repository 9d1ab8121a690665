//! How the outbox delivers, end to end over the memory store:
//! - it honours a mailer's retry-after hint: the next attempt comes no earlier than the hint,
//!   still capped by the policy's longest backoff and bounded by its attempt count;
//! - a sender-wide failure (a misconfigured mailer) pauses delivery and keeps the queue,
//!   instead of failing every due message in one pass; failed messages of a window can be
//!   re-queued;
//! - a panic in the mailer is caught, counts an attempt, and sets the poison message aside
//!   after the configured attempts while the others are delivered; a message whose attempts
//!   all ended the process is set aside too;
//! - each retry is computed from its own attempt's time, and no send starts that could outlive
//!   the claim's lease.

use async_trait::async_trait;
use invites_core::*;
use invites_memory::MemoryStore;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn advance(&self, d: Duration) {
        self.0
            .fetch_add(i64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// What the mailer does before answering: advance the clock (a slow send), panic, ...
type Hook = Arc<dyn Fn(&EmailMessage) + Send + Sync>;

/// Answers with the next scripted result (and `Ok` once the script is used up), after running
/// its hook, if any.
#[derive(Default)]
struct ScriptedMailer {
    script: Mutex<Vec<Result<(), MailError>>>,
    calls: Mutex<usize>,
    hook: Mutex<Option<Hook>>,
    timeout: Mutex<Option<Duration>>,
}

impl std::fmt::Debug for ScriptedMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptedMailer")
    }
}

impl ScriptedMailer {
    fn new(mut script: Vec<Result<(), MailError>>) -> Self {
        script.reverse();
        ScriptedMailer {
            script: Mutex::new(script),
            ..ScriptedMailer::default()
        }
    }

    fn then(&self, mut more: Vec<Result<(), MailError>>) {
        more.reverse();
        *self.script.lock().unwrap() = more;
    }

    fn hook(&self, hook: impl Fn(&EmailMessage) + Send + Sync + 'static) {
        *self.hook.lock().unwrap() = Some(Arc::new(hook));
    }
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        *self.calls.lock().unwrap() += 1;
        // Called outside the lock: a hook may panic.
        let hook = self.hook.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook(message);
        }
        self.script.lock().unwrap().pop().unwrap_or(Ok(()))
    }

    fn send_timeout(&self) -> Option<Duration> {
        *self.timeout.lock().unwrap()
    }
}

struct Setup {
    service: InviteService,
    store: MemoryStore,
    clock: TestClock,
    mailer: Arc<ScriptedMailer>,
    key: Principal,
    site: WebsiteId,
}

async fn setup(script: Vec<Result<(), MailError>>) -> Setup {
    setup_with(script, |c| c).await
}

async fn setup_with(
    script: Vec<Result<(), MailError>>,
    config: impl FnOnce(InviteConfig) -> InviteConfig,
) -> Setup {
    let store = MemoryStore::new();
    let org = OrganizationId(Uuid::from_u128(1));
    let site = WebsiteId(Uuid::from_u128(2));
    store.create_organization(org, "Acme").await.unwrap();
    store
        .create_website(&Website {
            id: site,
            organization: org,
            name: "Shop".into(),
            url: "https://shop.example".into(),
        })
        .await
        .unwrap();
    let clock = TestClock(Arc::new(AtomicI64::new(1_795_683_600_000)));
    let mailer = Arc::new(ScriptedMailer::new(script));
    let config = config(
        InviteConfig::new("https://app.example/accept")
            .unwrap()
            .with_clock(Arc::new(clock.clone())),
    );
    let service = InviteService::new(Arc::new(store.clone()), mailer.clone(), config);
    Setup {
        service,
        store,
        clock,
        mailer,
        key: Principal::global(org, ApiKeyId(Uuid::from_u128(3))),
        site,
    }
}

fn busy(hint: Duration) -> Result<(), MailError> {
    Err(MailError::transient("rate limited").with_retry_after(hint))
}

async fn outbox(s: &Setup) -> OutboxMessage {
    let snap = s.store.snapshot().await.unwrap();
    assert_eq!(snap.outbox.len(), 1);
    snap.outbox[0].clone()
}

async fn invite(s: &Setup) -> EmailStatus {
    let req = BulkInviteRequest::websites(InviteMethod::Email, "ann@example.com", [s.site]);
    let r = s.service.bulk_invite(&s.key, req).await.unwrap();
    r.email.unwrap().status
}

#[test]
fn retry_wait_takes_the_longer_of_backoff_and_hint_within_the_cap() {
    let p = DeliveryPolicy::default()
        .with_backoff(Duration::from_secs(30), Duration::from_secs(600))
        .unwrap();
    let s = Duration::from_secs;
    assert_eq!(p.retry_wait(1, None), s(30));
    assert_eq!(
        p.retry_wait(1, Some(s(5))),
        s(30),
        "a short hint never shortens"
    );
    assert_eq!(p.retry_wait(1, Some(s(120))), s(120), "a longer hint wins");
    assert_eq!(p.retry_wait(3, Some(s(100))), s(120), "backoff 120 > hint");
    assert_eq!(
        p.retry_wait(1, Some(s(86_400))),
        s(600),
        "capped by max_backoff"
    );
}

#[test]
fn retry_after_is_only_for_transient_errors() {
    let d = Duration::from_secs(9);
    let t = MailError::transient("x").with_retry_after(d);
    assert_eq!(t.retry_after(), Some(d));
    assert!(t.is_retryable() && !t.is_misconfigured());
    let p = MailError::permanent("x").with_retry_after(d);
    assert_eq!(p.retry_after(), None);
    let m = MailError::misconfigured("bad token");
    assert!(!m.is_retryable() && m.is_misconfigured());
    assert!(m.to_string().contains("misconfigured"), "{m}");
    assert!(!MailError::permanent("x").is_misconfigured());
}

#[tokio::test]
async fn deliver_due_waits_for_the_hint() {
    let hint = Duration::from_secs(300);
    let s = setup(vec![busy(hint), busy(Duration::from_secs(1))]).await;
    let policy = s.service.config().delivery();
    assert!(hint > policy.backoff(1), "the hint is the longer wait");
    let start = s.clock.now();
    assert_eq!(invite(&s).await, EmailStatus::Queued);
    let row = outbox(&s).await;
    assert_eq!(row.status, MessageStatus::Queued);
    assert_eq!(row.next_attempt_at, start.plus(hint));

    // Past the backoff but before the hint: not due.
    s.clock.advance(hint - Duration::from_millis(1));
    assert_eq!(
        s.service.deliver_due().await.unwrap(),
        DeliveryReport::default()
    );
    assert_eq!(*s.mailer.calls.lock().unwrap(), 1);

    // At the hint: tried again; a hint shorter than the backoff leaves the backoff.
    s.clock.advance(Duration::from_millis(1));
    assert_eq!(s.service.deliver_due().await.unwrap().retried, 1);
    let row = outbox(&s).await;
    assert_eq!(row.attempts, 2);
    assert_eq!(row.next_attempt_at, s.clock.now().plus(policy.backoff(2)));

    s.clock.advance(policy.backoff(2));
    assert_eq!(s.service.deliver_due().await.unwrap().sent, 1);
    assert_eq!(outbox(&s).await.status, MessageStatus::Sent);
}

#[tokio::test]
async fn a_huge_hint_is_capped_and_attempts_stay_bounded() {
    let year = Duration::from_secs(365 * 86_400);
    let s = setup((0..20).map(|_| busy(year)).collect()).await;
    let policy = s.service.config().delivery();
    assert_eq!(invite(&s).await, EmailStatus::Queued);
    let row = outbox(&s).await;
    assert_eq!(
        row.next_attempt_at,
        s.clock.now().plus(policy.max_backoff())
    );
    for _ in 0..policy.max_attempts() + 2 {
        s.clock.advance(policy.max_backoff());
        s.service.deliver_due().await.unwrap();
    }
    let row = outbox(&s).await;
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.attempts, policy.max_attempts());
    assert_eq!(
        *s.mailer.calls.lock().unwrap(),
        policy.max_attempts() as usize
    );
}

async fn invite_to(s: &Setup, to: &str) -> EmailStatus {
    let req = BulkInviteRequest::websites(InviteMethod::Email, to, [s.site]);
    let r = s.service.bulk_invite(&s.key, req).await.unwrap();
    r.email.unwrap().status
}

async fn rows(s: &Setup) -> Vec<OutboxMessage> {
    let mut v = s.store.snapshot().await.unwrap().outbox;
    v.sort_by_key(|m| (m.created_at, m.id));
    v
}

/// Issue 17 item 2: a misconfigured mailer (the sender's fault) used to fail every due message
/// in one pass (`failed: 3`), and nothing was sent after the fix. Now the first failure
/// pauses delivery, the message and the rest of the pass stay queued with their attempts, and
/// after the pause everything is sent.
#[tokio::test]
async fn a_sender_wide_failure_pauses_delivery_and_keeps_the_queue() {
    let busy = || Err(MailError::transient("421 try later"));
    let s = setup(vec![busy(), busy(), busy()]).await;
    for n in 0..3 {
        assert_eq!(
            invite_to(&s, &format!("u{n}@example.com")).await,
            EmailStatus::Queued
        );
    }
    s.mailer.then(vec![Err(MailError::misconfigured(
        "535 authentication failed",
    ))]);
    let policy = s.service.config().delivery();
    s.clock.advance(policy.max_backoff());
    let report = s.service.deliver_due().await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.deferred, 3, "{report:?}");
    let pause = s.service.delivery_pause().expect("paused");
    assert_eq!(report.paused_until, Some(pause.until));
    assert_eq!(pause.failures, 1);
    assert!(pause.error.contains("535"), "{pause:?}");
    for row in rows(&s).await {
        assert_eq!(row.status, MessageStatus::Queued);
        assert_eq!(row.attempts, 1, "the sender's failure counts no attempt");
        assert!(row.accept_url.is_some(), "the link is kept");
    }
    // While paused: nothing is claimed, an inline send is not tried.
    let calls = *s.mailer.calls.lock().unwrap();
    let paused = s.service.deliver_due().await.unwrap();
    assert_eq!(paused.paused_until, Some(pause.until));
    assert_eq!(paused.deferred + paused.sent, 0);
    assert_eq!(invite_to(&s, "u9@example.com").await, EmailStatus::Queued);
    assert_eq!(
        *s.mailer.calls.lock().unwrap(),
        calls,
        "no send while paused"
    );

    // Still misconfigured after the pause: paused twice as long.
    s.clock.advance(policy.max_backoff());
    s.mailer.then(vec![Err(MailError::misconfigured(
        "535 authentication failed",
    ))]);
    let again = s.service.deliver_due().await.unwrap();
    assert_eq!((again.failed, again.sent), (0, 0));
    assert_eq!(s.service.delivery_pause().unwrap().failures, 2);

    // Fixed: the next call after the pause sends everything and resumes.
    s.clock.advance(policy.max_backoff());
    let fixed = s.service.deliver_due().await.unwrap();
    assert_eq!(fixed.sent, 4, "{fixed:?}");
    assert_eq!(s.service.delivery_pause(), None);
    assert!(
        rows(&s)
            .await
            .iter()
            .all(|m| m.status == MessageStatus::Sent)
    );
}

/// A host re-queues the failed messages of a window: each batch gets a new link and a new
/// message due at once; a batch resent since, or outside the window, is left alone.
#[tokio::test]
async fn failed_messages_of_a_window_are_requeued_with_a_new_link() {
    let refused = || Err(MailError::permanent("550 mailbox unavailable"));
    let s = setup(vec![refused(), refused(), refused()]).await;
    let start = s.clock.now();
    assert_eq!(invite_to(&s, "a@example.com").await, EmailStatus::Failed);
    s.clock.advance(Duration::from_secs(3600));
    assert_eq!(invite_to(&s, "b@example.com").await, EmailStatus::Failed);
    s.clock.advance(Duration::from_secs(3600));
    assert_eq!(invite_to(&s, "c@example.com").await, EmailStatus::Failed);
    let window_end = s.clock.now();
    s.clock.advance(Duration::from_secs(60));

    let bad = s.service.requeue_failed(window_end, start).await;
    assert!(
        matches!(&bad, Err(InviteError::Validation { field, .. }) if field == "created_until"),
        "{bad:?}"
    );
    // The window holds a and b (c was created at its end, which is excluded).
    let report = s.service.requeue_failed(start, window_end).await.unwrap();
    assert_eq!(
        (report.failed_found, report.requeued, report.skipped),
        (2, 2, 0)
    );
    let sent = s.service.deliver_due().await.unwrap();
    assert_eq!(sent.sent, 2, "the new messages are due at once: {sent:?}");
    // Again: the failed messages are no longer the newest of their batches.
    let report = s.service.requeue_failed(start, window_end).await.unwrap();
    assert_eq!((report.requeued, report.skipped), (0, 2));
}

/// Issue 17 item 4: a mailer that panics for one recipient ended the worker's pass (and the
/// worker) for good. Now the panic is caught: the poison message counts an attempt each time
/// and is set aside after `max_attempts`, and the message behind it is delivered on the same
/// pass.
#[tokio::test]
async fn a_panicking_mailer_costs_one_message_its_attempts_not_the_queue() {
    let s = setup_with(vec![], |c| {
        c.with_delivery_policy(DeliveryPolicy::default().with_max_attempts(3).unwrap())
    })
    .await;
    let busy = || Err(MailError::transient("421 later"));
    s.mailer.then(vec![busy(), busy()]);
    invite_to(&s, "poison@example.com").await;
    invite_to(&s, "fine@example.com").await;
    s.mailer.hook(|m| {
        if m.to.as_str().starts_with("poison") {
            panic!("renderer bug for this one message");
        }
    });
    let policy = s.service.config().delivery();
    s.clock.advance(policy.max_backoff());
    let first = s.service.deliver_due().await.unwrap();
    assert_eq!(
        (first.panicked, first.retried, first.sent),
        (1, 1, 1),
        "{first:?}"
    );
    let poison = rows(&s)
        .await
        .into_iter()
        .find(|m| m.recipient.as_str().starts_with("poison"))
        .unwrap();
    assert_eq!((poison.status, poison.attempts), (MessageStatus::Queued, 2));
    assert!(poison.last_error.unwrap().contains("panicked"));
    s.clock.advance(policy.max_backoff());
    let last = s.service.deliver_due().await.unwrap();
    assert_eq!((last.panicked, last.failed), (1, 1), "{last:?}");
    let poison = rows(&s)
        .await
        .into_iter()
        .find(|m| m.recipient.as_str().starts_with("poison"))
        .unwrap();
    assert_eq!((poison.status, poison.attempts), (MessageStatus::Failed, 3));
}

/// A message whose every attempt ended the process (claimed `max_attempts` times with no
/// outcome recorded: a crash or an abort mid-send) is set aside without calling the mailer.
#[tokio::test]
async fn a_message_whose_attempts_all_ended_the_process_is_set_aside() {
    let s = setup_with(vec![Err(MailError::transient("421 later"))], |c| {
        c.with_delivery_policy(DeliveryPolicy::default().with_max_attempts(2).unwrap())
    })
    .await;
    invite_to(&s, "ann@example.com").await;
    let policy = s.service.config().delivery();
    // The inline send was attempt 1; attempt 2 is claimed and the process dies.
    for _ in 0..1 {
        s.clock.advance(policy.max_backoff());
        let now = s.clock.now();
        let claimed = s
            .store
            .claim_due_messages(now, now.plus(policy.lease()), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "the process dies after claiming");
    }
    s.clock.advance(policy.max_backoff());
    let calls = *s.mailer.calls.lock().unwrap();
    let report = s.service.deliver_due().await.unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(*s.mailer.calls.lock().unwrap(), calls, "not sent again");
    let row = &rows(&s).await[0];
    assert_eq!((row.status, row.attempts), (MessageStatus::Failed, 2));
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("without an outcome")
    );
}

/// Issue 17 item 6: retry times were computed from the start of a pass, so a message handled
/// late in a long pass was due again at once; and a send could start with less of the lease
/// left than it may take. Each retry now counts from its own attempt, and a send starts only
/// with the mailer's `send_timeout` left on the lease: the rest go back, due at once, with
/// their attempts restored.
#[tokio::test]
async fn retries_count_from_their_own_attempt_and_no_send_outlives_the_lease() {
    let busy = || Err(MailError::transient("421 later"));
    let s = setup(vec![busy(), busy(), busy(), busy(), busy()]).await;
    for n in 0..4 {
        invite_to(&s, &format!("u{n}@example.com")).await;
    }
    // The lease is 60 s; each send takes 20 s and may take up to 25 s.
    let policy = s.service.config().delivery();
    assert_eq!(policy.lease(), Duration::from_secs(60));
    *s.mailer.timeout.lock().unwrap() = Some(Duration::from_secs(25));
    let clock = s.clock.clone();
    s.mailer
        .hook(move |_| clock.advance(Duration::from_secs(20)));
    s.mailer.then(vec![busy(), busy(), busy(), busy()]);
    s.clock.advance(policy.max_backoff());
    let pass_start = s.clock.now();
    let report = s.service.deliver_due().await.unwrap();
    // Sends start at +0 and +20 s; at +40 s only 20 s of the lease are left (< 25 s).
    assert_eq!((report.retried, report.deferred), (2, 2), "{report:?}");
    let rows = rows(&s).await;
    let retried: Vec<_> = rows.iter().filter(|m| m.attempts == 2).collect();
    assert_eq!(retried.len(), 2);
    let mut due: Vec<_> = retried.iter().map(|m| m.next_attempt_at).collect();
    due.sort();
    let backoff = policy.backoff(2);
    assert_eq!(
        due,
        vec![
            pass_start.plus(Duration::from_secs(20)).plus(backoff),
            pass_start.plus(Duration::from_secs(40)).plus(backoff),
        ],
        "each retry counts from the end of its own attempt"
    );
    for m in rows.iter().filter(|m| m.attempts != 2) {
        assert_eq!(m.attempts, 1, "the deferred ones got their attempt back");
        assert_eq!(m.next_attempt_at, pass_start.plus(Duration::from_secs(40)));
    }
}
