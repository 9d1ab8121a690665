//! The outbox honours a mailer's retry-after hint: the next attempt comes no earlier than the
//! hint, still capped by the policy's longest backoff and bounded by its attempt count; and a
//! misconfigured mailer fails the message at once, reported as such.

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

/// Answers with the next scripted result (and `Ok` once the script is used up).
#[derive(Debug, Default)]
struct ScriptedMailer {
    script: Mutex<Vec<Result<(), MailError>>>,
    calls: Mutex<usize>,
}

impl ScriptedMailer {
    fn new(mut script: Vec<Result<(), MailError>>) -> Self {
        script.reverse();
        ScriptedMailer {
            script: Mutex::new(script),
            calls: Mutex::new(0),
        }
    }
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, _: &EmailMessage) -> Result<(), MailError> {
        *self.calls.lock().unwrap() += 1;
        self.script.lock().unwrap().pop().unwrap_or(Ok(()))
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
    let config = InviteConfig::new("https://app.example/accept")
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
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

#[tokio::test]
async fn a_misconfigured_mailer_fails_the_message_and_says_so() {
    let s = setup(vec![Err(MailError::misconfigured("token rejected"))]).await;
    assert_eq!(invite(&s).await, EmailStatus::Failed);
    let row = outbox(&s).await;
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.accept_url, None);
    assert!(
        row.last_error.unwrap().contains("misconfigured"),
        "the stored error names the kind"
    );
}
