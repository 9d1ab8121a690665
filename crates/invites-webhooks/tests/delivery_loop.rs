//! The delivery loop against a real receiver: a Python server that verifies every request with
//! the Standard Webhooks reference library, drops a `webhook-id` it has already processed, and
//! answers from a script (500, 429 with `Retry-After`, nothing past the timeout, 410, ...).
//! The events come from real operations on each backend (in memory, SQLite, and PostgreSQL
//! when `INVITES_PG_URL` names a server); the schedule follows a manual clock.
//!
//! Needs `INVITES_WEBHOOKS_PYTHON` (`.ci/steps/webhooks-python.sh`); without it, one
//! `skipped:` line.

mod support;
use async_trait::async_trait;
use invites_core::*;
use invites_memory::MemoryStore;
use invites_testkit::{Harness, ManualClock, World};
use invites_webhooks::{
    DeliveryConfig, DeliveryError, Reach, WebhookBackend, WebhookDeliverer, WebhookSecret,
};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::python;

const RECEIVER: &str = r#"
import sys, json, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
secret, answers = sys.argv[1], [a for a in sys.argv[2].split(",") if a]
done = set()
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            event = Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            print("refused", headers.get("webhook-id"), flush=True)
            self.answer("400")
            return
        wid = headers["webhook-id"]
        if wid in done:
            print("duplicate", wid, flush=True)
            self.answer("200")
            return
        answer = answers.pop(0) if answers else "200"
        if answer.startswith("sleep:"):
            time.sleep(float(answer[6:]))
            print("slept", wid, flush=True)
            self.answer("200")
            return
        if answer.startswith("2"):
            done.add(wid)
            print("processed", wid, event["type"], event["data"]["position"], flush=True)
        else:
            print("answered", wid, answer, flush=True)
        self.answer(answer)
    def answer(self, answer):
        code, _, retry_after = answer.partition(":")
        self.send_response(int(code))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The receiver process, killed when the test ends.
struct Receiver {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    url: String,
}

impl Receiver {
    fn start(python: &str, secret: &WebhookSecret, answers: &[&str]) -> Self {
        let mut child = Command::new(python)
            .args(["-c", RECEIVER, &secret.expose(), &answers.join(",")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python receiver");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("a line").expect("utf-8");
        let port = first
            .strip_prefix("port ")
            .expect("the receiver's port")
            .to_owned();
        Receiver {
            child,
            lines,
            url: format!("http://127.0.0.1:{port}/hook"),
        }
    }

    /// The next `n` lines the receiver printed.
    fn take(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| self.lines.next().expect("a line").expect("utf-8"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A backend the loop runs on: the store port, the directory, the endpoints.
trait Store: invites_testkit::Backend + WebhookStore {}
impl<T: invites_testkit::Backend + WebhookStore> Store for T {}

/// A store whose first progress record fails once when armed: a deliverer that crashed after
/// the receiver got the event and before its progress was stored.
#[derive(Debug, Clone)]
struct CrashOnce {
    inner: Arc<dyn Store>,
    armed: Arc<AtomicBool>,
}

#[async_trait]
impl EventStore for CrashOnce {
    async fn read_events(
        &self,
        organization: OrganizationId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.inner.read_events(organization, after, limit).await
    }
    async fn purge_events(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.inner.purge_events(before, limit).await
    }
}

#[async_trait]
impl WebhookStore for CrashOnce {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        start: StartAt,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.create_endpoint(endpoint, start, now).await
    }
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        self.inner.update_endpoint(endpoint).await
    }
    async fn set_endpoint_enabled(
        &self,
        organization: OrganizationId,
        id: EndpointId,
        enabled: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner
            .set_endpoint_enabled(organization, id, enabled, now)
            .await
    }
    async fn delete_endpoint(
        &self,
        organization: OrganizationId,
        id: EndpointId,
    ) -> Result<bool, StoreError> {
        self.inner.delete_endpoint(organization, id).await
    }
    async fn list_endpoints(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<EndpointState>, StoreError> {
        self.inner.list_endpoints(organization).await
    }
    async fn claim_due_endpoints(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<EndpointState>, StoreError> {
        self.inner
            .claim_due_endpoints(now, lease_until, limit)
            .await
    }
    async fn record_webhook(
        &self,
        id: EndpointId,
        update: &WebhookUpdate,
    ) -> Result<bool, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            return Err(StoreError::unavailable("crashed before the record"));
        }
        self.inner.record_webhook(id, update).await
    }
}

const ENDPOINT: EndpointId = EndpointId(uuid::Uuid::from_u128(0xe1));

fn config() -> DeliveryConfig {
    DeliveryConfig {
        reach: Reach::AllowPrivate,
        timeout: Duration::from_secs(1),
        lease: Duration::from_secs(10),
        ..DeliveryConfig::default()
    }
}

async fn state(store: &dyn Store, org: OrganizationId) -> EndpointState {
    store
        .list_endpoints(org)
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("the endpoint")
}

/// Every event arrives, verified, in position order, each processed once although the
/// receiver answered 500, 429 with `Retry-After`, nothing (a timeout), and a crash made the
/// deliverer send one event twice; the waits follow the schedule; a 410 disables the endpoint
/// with its progress kept, and enabling it again resumes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_in_order_once_through_failures_and_a_crash_in_memory() {
    every_event_arrives(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_in_order_once_through_failures_and_a_crash_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = invites_sqlite::SqliteStore::open(dir.path().join("webhooks.db"))
        .await
        .expect("open");
    every_event_arrives(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_in_order_once_through_failures_and_a_crash_on_postgres() {
    let Some(store) = invites_postgres::testing::fresh_store("webhook delivery loop").await else {
        return;
    };
    every_event_arrives(Arc::new(store)).await;
}

async fn every_event_arrives(backend: Arc<dyn Store>) {
    let Some(python) = python() else { return };
    let secret = WebhookSecret::from_bytes((7u8..39).collect()).expect("secret");
    let mut receiver = Receiver::start(&python, &secret, &["200", "500", "429:900", "sleep:3"]);

    let memory = backend.clone();
    let world = World::seed(&*memory).await;
    let h = Harness::with_seed(memory.clone() as Arc<dyn MembershipStore>, 1);
    let clock = ManualClock::standard();
    h.clock.set(clock.now());
    let store = CrashOnce {
        inner: memory.clone(),
        armed: Arc::new(AtomicBool::new(false)),
    };
    let deliverer = WebhookDeliverer::new(
        Arc::new(store.clone()) as Arc<dyn WebhookBackend>,
        Arc::new(clock.clone()),
        config(),
    )
    .expect("deliverer");
    assert!(
        deliverer
            .register(
                world.org,
                ENDPOINT,
                &receiver.url,
                std::slice::from_ref(&secret),
                None,
                StartAt::After(0),
            )
            .await
            .expect("register")
    );

    // Events from real requests: a direct add to two sites (3 events), an email invitation to
    // two more (2 + the email sent), an accept (2 per invitation + the user).
    let p = world.global_key();
    h.service
        .bulk_invite(
            &p,
            BulkInviteRequest::websites(
                InviteMethod::Direct,
                "ann@example.com",
                [world.websites[0], world.websites[1]],
            ),
        )
        .await
        .expect("direct");
    h.service
        .bulk_invite(
            &p,
            BulkInviteRequest::websites(
                InviteMethod::Email,
                "bob@example.com",
                [world.websites[2], world.websites[3]],
            ),
        )
        .await
        .expect("email");
    h.service
        .accept(&h.last_token(), None)
        .await
        .expect("accept");
    let log = h
        .service
        .events(world.org, None, 100)
        .await
        .expect("events")
        .events;
    assert_eq!(log.len(), 11, "{log:?}");

    // 1st event: 200. 2nd: 500, then the schedule's 5 s.
    let report = deliverer.deliver_due().await.expect("pass 1");
    assert_eq!((report.delivered, report.failed), (1, 1));
    let s = state(&*memory, world.org).await;
    assert_eq!((s.delivered_through, s.failed_attempts), (1, 1));
    assert_eq!(s.next_attempt_at, clock.now().plus(Duration::from_secs(5)));
    assert_eq!(deliverer.deliver_due().await.expect("not due").endpoints, 0);
    // 429 with Retry-After 900 s: longer than the schedule's 5 minutes, so 900 s.
    clock.advance(Duration::from_secs(5));
    let report = deliverer.deliver_due().await.expect("pass 2");
    assert_eq!((report.delivered, report.failed), (0, 1));
    let s = state(&*memory, world.org).await;
    assert_eq!(
        s.next_attempt_at,
        clock.now().plus(Duration::from_secs(900))
    );
    // No answer within the timeout: the third wait, 30 minutes.
    clock.advance(Duration::from_secs(900));
    let report = deliverer.deliver_due().await.expect("pass 3");
    assert_eq!(report.failed, 1);
    let s = state(&*memory, world.org).await;
    assert_eq!(s.failed_attempts, 3);
    assert_eq!(
        s.next_attempt_at,
        clock.now().plus(Duration::from_secs(1800))
    );
    // Then everything is answered; the deliverer crashes once after a delivery.
    clock.advance(Duration::from_secs(1800));
    store.armed.store(true, Ordering::SeqCst);
    assert!(matches!(
        deliverer.deliver_due().await,
        Err(DeliveryError::Store(_))
    ));
    assert_eq!(
        state(&*memory, world.org).await.delivered_through,
        1,
        "not recorded"
    );
    assert_eq!(deliverer.deliver_due().await.expect("leased").endpoints, 0);
    clock.advance(Duration::from_secs(10));
    let report = deliverer.deliver_due().await.expect("after the lease");
    assert_eq!(report.delivered, 10);
    assert_eq!(state(&*memory, world.org).await.delivered_through, 11);
    assert_eq!(deliverer.deliver_due().await.expect("idle").endpoints, 0);

    let lines = receiver.take(15);
    assert!(lines.iter().all(|l| !l.starts_with("refused")), "{lines:?}");
    let processed: Vec<(String, String, u64)> = lines
        .iter()
        .filter_map(|l| {
            let mut w = l.split(' ');
            (w.next()? == "processed").then(|| {
                (
                    w.next().unwrap().to_owned(),
                    w.next().unwrap().to_owned(),
                    w.next().unwrap().parse().unwrap(),
                )
            })
        })
        .collect();
    let expected: Vec<(String, String, u64)> = log
        .iter()
        .map(|e| (e.id(), e.kind.as_str().to_owned(), e.position))
        .collect();
    assert_eq!(processed, expected, "every event once, in order: {lines:?}");
    let second = log[1].id();
    assert_eq!(
        lines.iter().filter(|l| l.contains(&second)).count(),
        5,
        "the second event: 500, 429, the timeout, processed, then sent again after the crash: {lines:?}"
    );
    assert!(lines.contains(&format!("duplicate {second}")), "{lines:?}");

    // 410: disabled at once, progress kept; enabled again, it resumes.
    drop(receiver);
    let mut receiver = Receiver::start(&python, &secret, &["410"]);
    let url = receiver.url.clone();
    assert!(
        deliverer
            .update(
                world.org,
                ENDPOINT,
                &url,
                std::slice::from_ref(&secret),
                None
            )
            .await
            .expect("update")
    );
    h.service
        .bulk_invite(
            &p,
            BulkInviteRequest::websites(
                InviteMethod::Direct,
                "cy@example.com",
                [world.websites[4]],
            ),
        )
        .await
        .expect("direct");
    let report = deliverer.deliver_due().await.expect("410");
    assert_eq!(report.disabled, 1);
    let s = state(&*memory, world.org).await;
    assert_eq!(
        (s.disabled, s.delivered_through),
        (Some(DisabledReason::Gone), 11)
    );
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(
        deliverer.deliver_due().await.expect("disabled").endpoints,
        0
    );
    assert!(
        memory
            .set_endpoint_enabled(world.org, ENDPOINT, true, clock.now())
            .await
            .expect("enable")
    );
    let report = deliverer.deliver_due().await.expect("resumed");
    assert_eq!(report.delivered, 2);
    let lines = receiver.take(3);
    assert!(
        lines[0].starts_with("answered evt_") && lines[0].ends_with(" 410"),
        "{lines:?}"
    );
    assert!(lines[1].ends_with(" user_created 12"), "{lines:?}");
    assert!(lines[2].ends_with(" member_added 13"), "{lines:?}");
}

/// The schedule runs out: after the eighth failed attempt at one event the endpoint is
/// disabled (exhausted) at that event; an endpoint subscribed to some kinds passes over the
/// others without sending them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_runs_out_and_kinds_filter() {
    let Some(python) = python() else { return };
    let secret = WebhookSecret::from_bytes(vec![9; 32]).expect("secret");
    let mut receiver = Receiver::start(&python, &secret, &["503"; 8]);
    let memory = MemoryStore::new();
    let world = World::seed(&memory).await;
    let h = Harness::new(memory.clone());
    let clock = ManualClock::standard();
    let deliverer = WebhookDeliverer::new(
        Arc::new(memory.clone()) as Arc<dyn WebhookBackend>,
        Arc::new(clock.clone()),
        config(),
    )
    .expect("deliverer");
    deliverer
        .register(
            world.org,
            ENDPOINT,
            &receiver.url,
            &[secret],
            Some(BTreeSet::from([EventKind::MemberAdded])),
            StartAt::Latest,
        )
        .await
        .expect("register");
    h.service
        .bulk_invite(
            &world.global_key(),
            BulkInviteRequest::websites(
                InviteMethod::Direct,
                "dee@example.com",
                [world.websites[0]],
            ),
        )
        .await
        .expect("direct");
    let mut waits = Vec::new();
    for _ in 0..8 {
        let before = clock.now();
        let report = deliverer.deliver_due().await.expect("pass");
        assert_eq!(
            report.skipped + report.failed + report.disabled,
            report.skipped + 1
        );
        let s = state(&memory, world.org).await;
        assert_eq!(s.delivered_through, 1, "user_created passed over");
        if s.disabled.is_some() {
            assert_eq!(s.disabled, Some(DisabledReason::Exhausted));
            assert_eq!(s.failed_attempts, 8);
            break;
        }
        let wait = Duration::from_millis(
            u64::try_from(s.next_attempt_at.as_millis() - before.as_millis()).expect("later"),
        );
        waits.push(wait.as_secs());
        clock.advance(wait);
    }
    assert_eq!(waits, vec![5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
    let lines = receiver.take(8);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("answered") && l.ends_with(" 503")),
        "{lines:?}"
    );
}

/// Registration refuses what cannot be used, naming the field, and stores nothing.
#[tokio::test]
async fn registration_refuses_bad_endpoints() {
    let memory = MemoryStore::new();
    let world = World::seed(&memory).await;
    let clock = ManualClock::standard();
    let public = WebhookDeliverer::new(
        Arc::new(memory.clone()) as Arc<dyn WebhookBackend>,
        Arc::new(clock),
        DeliveryConfig::default(),
    )
    .expect("deliverer");
    let secret = WebhookSecret::from_bytes(vec![1; 32]).expect("secret");
    type Case = (
        &'static str,
        Vec<WebhookSecret>,
        Option<BTreeSet<EventKind>>,
        &'static str,
    );
    let cases: [Case; 5] = [
        (
            "http://hooks.example.com/x",
            vec![secret.clone()],
            None,
            "url",
        ),
        ("https://127.0.0.1/x", vec![secret.clone()], None, "url"),
        ("https://hooks.example.com/x", vec![], None, "secrets"),
        (
            "https://hooks.example.com/x",
            vec![secret.clone(); 11],
            None,
            "secrets",
        ),
        (
            "https://hooks.example.com/x",
            vec![secret.clone()],
            Some(BTreeSet::new()),
            "event_types",
        ),
    ];
    for (url, secrets, kinds, field) in cases {
        match public
            .register(world.org, ENDPOINT, url, &secrets, kinds, StartAt::Latest)
            .await
        {
            Err(DeliveryError::Invalid(e)) => assert_eq!(e.field, field, "{url}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(
        memory
            .list_endpoints(world.org)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        public
            .register(
                world.org,
                ENDPOINT,
                "https://hooks.example.com/x",
                std::slice::from_ref(&secret),
                None,
                StartAt::Latest,
            )
            .await
            .expect("a good one")
    );
    assert!(
        !public
            .register(
                world.org,
                ENDPOINT,
                "https://hooks.example.com/y",
                &[secret],
                None,
                StartAt::Latest,
            )
            .await
            .expect("the same id again")
    );
    let listed = memory.list_endpoints(world.org).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].endpoint.url, "https://hooks.example.com/x");
    assert!(
        !format!("{listed:?}").contains("whsec_"),
        "secrets never print"
    );
}
