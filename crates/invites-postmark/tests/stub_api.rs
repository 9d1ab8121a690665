//! `PostmarkMailer` against a local stub of Postmark's `POST /email` (an axum server on
//! 127.0.0.1). The stub checks every header and JSON field the documented API requires and
//! records each violation; it replays each documented error answer on demand. The tests run
//! the shared mailer suite against it and check the outbox state every answer leads to.

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use invites_core::*;
use invites_postmark::{PostmarkConfig, PostmarkConfigBuilder, PostmarkErrorKind, PostmarkMailer};
use invites_testkit::mailer_suite::{self, ALTERNATIVE, Inbox, MailerSetup, Received};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "server-token-0f3c";
const FROM: &str = "Acme Invites <invites@acme.test>";

/// The fields `POST /email` documents.
const DOCUMENTED: [&str; 15] = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Tag",
    "HtmlBody",
    "TextBody",
    "ReplyTo",
    "Headers",
    "TrackOpens",
    "TrackLinks",
    "Metadata",
    "Attachments",
    "MessageStream",
];

#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

fn error_code(status: u16, code: i64) -> Answer {
    // Like Postmark's, the message quotes the address; it must not reach our errors.
    answer(
        status,
        json!({"ErrorCode": code, "Message": "Found inactive addresses: ann@example.com."}),
    )
}

#[derive(Clone)]
struct Recorded {
    body: Value,
    status: u16,
}

#[derive(Default)]
struct StubState {
    requests: Mutex<Vec<Recorded>>,
    violations: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Answer>>,
    delay: Mutex<Option<Duration>>,
}

#[derive(Clone)]
struct Stub {
    state: Arc<StubState>,
    base_url: String,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Stub {
    async fn start() -> Stub {
        let state = Arc::new(StubState::default());
        let app = axum::Router::new()
            .route("/email", post(email))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Stub {
            state,
            base_url,
            server: Arc::new(server),
        }
    }

    fn then(&self, a: Answer) {
        self.state.script.lock().unwrap().push_back(a);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    fn assert_no_violations(&self) {
        let v = self.state.violations.lock().unwrap();
        assert!(v.is_empty(), "the requests broke the documented API: {v:?}");
    }

    fn config(&self) -> PostmarkConfigBuilder {
        PostmarkConfig::builder(TOKEN, FROM)
            .base_url(&self.base_url)
            .reply_to("support@acme.test")
            .message_id_domain("invites.acme.test")
            .timeout(Duration::from_secs(10))
    }

    fn mailer(&self) -> PostmarkMailer {
        PostmarkMailer::new(self.config().build().expect("config")).expect("mailer")
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

/// What the documented API requires of one request; each broken rule is one entry.
fn violations(headers: &HeaderMap, raw: &[u8]) -> Vec<String> {
    let mut v = Vec::new();
    let header = |n: &str| headers.get(n).and_then(|h| h.to_str().ok()).unwrap_or("");
    if header("x-postmark-server-token") != TOKEN {
        v.push("X-Postmark-Server-Token is not the server token".to_owned());
    }
    if header("accept") != "application/json" {
        v.push(format!("Accept is {:?}", header("accept")));
    }
    if !header("content-type").starts_with("application/json") {
        v.push(format!("Content-Type is {:?}", header("content-type")));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(raw) else {
        v.push("the body is not a JSON object".to_owned());
        return v;
    };
    for key in body.keys() {
        if !DOCUMENTED.contains(&key.as_str()) {
            v.push(format!("undocumented field {key}"));
        }
    }
    for key in ["From", "To", "Subject", "MessageStream"] {
        if !body.get(key).is_some_and(Value::is_string) {
            v.push(format!("{key} is missing or not a string"));
        }
    }
    if !body.contains_key("TextBody") && !body.contains_key("HtmlBody") {
        v.push("neither TextBody nor HtmlBody".to_owned());
    }
    for key in ["TextBody", "HtmlBody", "ReplyTo"] {
        if body.get(key).is_some_and(|x| !x.is_string()) {
            v.push(format!("{key} is not a string"));
        }
    }
    if body.get("From").and_then(Value::as_str) != Some(FROM) {
        v.push("From is not the configured sender".to_owned());
    }
    if body
        .get("To")
        .and_then(Value::as_str)
        .is_some_and(|t| t.contains(','))
    {
        v.push("To holds more than one recipient".to_owned());
    }
    match body.get("Headers") {
        None => {}
        Some(Value::Array(hs)) => {
            for h in hs {
                let ok = h.as_object().is_some_and(|o| {
                    o.len() == 2
                        && o.get("Name").is_some_and(Value::is_string)
                        && o.get("Value").is_some_and(Value::is_string)
                });
                if !ok {
                    v.push(format!("Headers entry {h} is not {{Name, Value}}"));
                }
            }
        }
        Some(_) => v.push("Headers is not an array".to_owned()),
    }
    match body.get("Metadata") {
        None => {}
        Some(Value::Object(m)) => {
            if m.len() > 10 {
                v.push("more than 10 Metadata fields".to_owned());
            }
            for (k, val) in m {
                if k.chars().count() > 20 || val.as_str().is_none_or(|s| s.chars().count() > 80) {
                    v.push(format!("Metadata {k} is not a short string field"));
                }
            }
        }
        Some(_) => v.push("Metadata is not an object".to_owned()),
    }
    if body.get("TrackOpens").is_some_and(|x| !x.is_boolean()) {
        v.push("TrackOpens is not a boolean".to_owned());
    }
    if let Some(t) = body.get("TrackLinks")
        && !matches!(
            t.as_str(),
            Some("None" | "HtmlAndText" | "HtmlOnly" | "TextOnly")
        )
    {
        v.push(format!("TrackLinks {t} is not a documented value"));
    }
    v
}

async fn email(State(state): State<Arc<StubState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let delay = *state.delay.lock().unwrap();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let broken = violations(&headers, &raw);
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = if headers
        .get("x-postmark-server-token")
        .is_none_or(|t| t.as_bytes() != TOKEN.as_bytes())
    {
        error_code(401, 10)
    } else if !broken.is_empty() {
        error_code(422, 300)
    } else if let Some(a) = scripted {
        a
    } else {
        answer(
            200,
            json!({"To": body["To"], "SubmittedAt": "2026-11-26T09:00:00.0000000Z",
                   "MessageID": "0a129aee-e1cd-480d-b08d-4f48548ff48d", "ErrorCode": 0, "Message": "OK"}),
        )
    };
    state.violations.lock().unwrap().extend(broken);
    state.requests.lock().unwrap().push(Recorded {
        body,
        status: reply.status,
    });
    let mut response = (
        StatusCode::from_u16(reply.status).expect("status"),
        [("content-type", "application/json")],
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

#[async_trait]
impl Inbox for Stub {
    async fn received(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .map(|r| {
                let b = &r.body;
                let s = |k: &str| b[k].as_str().unwrap_or("").to_owned();
                let mut headers = vec![
                    ("from".to_owned(), s("From")),
                    ("to".to_owned(), s("To")),
                    ("subject".to_owned(), s("Subject")),
                ];
                if b.get("ReplyTo").is_some() {
                    headers.push(("reply-to".to_owned(), s("ReplyTo")));
                }
                for h in b["Headers"].as_array().into_iter().flatten() {
                    headers.push((
                        h["Name"].as_str().unwrap_or("").to_ascii_lowercase(),
                        h["Value"].as_str().unwrap_or("").to_owned(),
                    ));
                }
                let structure = match (b.get("TextBody"), b.get("HtmlBody")) {
                    (Some(_), Some(_)) => ALTERNATIVE.to_owned(),
                    (Some(_), None) => "text/plain".to_owned(),
                    _ => "text/html".to_owned(),
                };
                Received {
                    recipients: vec![s("To")],
                    headers,
                    structure,
                    text: s("TextBody"),
                    html: s("HtmlBody"),
                }
            })
            .collect()
    }
}

#[tokio::test]
async fn the_shared_mailer_suite_passes_against_the_stub() {
    let stub = Stub::start().await;
    mailer_suite::run_all(&stub.mailer(), &stub).await;
    stub.assert_no_violations();
    assert!(stub.requests().len() >= 9);
}

#[tokio::test]
async fn the_request_is_what_the_api_documents() {
    let stub = Stub::start().await;
    let mailer =
        PostmarkMailer::new(stub.config().message_stream("invites").build().unwrap()).unwrap();
    let message = mailer_suite::sample_message(1, "ann@example.com");
    mailer.send(&message).await.expect("sent");
    stub.assert_no_violations();
    let body = &stub.requests()[0].body;
    assert_eq!(
        body,
        &json!({
            "From": FROM,
            "To": "ann@example.com",
            "ReplyTo": "support@acme.test",
            "Subject": message.subject,
            "TextBody": message.text,
            "HtmlBody": message.html,
            "MessageStream": "invites",
            "Headers": [{"Name": "Message-ID", "Value": format!("<{}@invites.acme.test>", message.id)}],
            "Metadata": {
                "invites_message_id": message.id.to_string(),
                "invites_batch_id": message.batch_id.to_string(),
            },
            "TrackOpens": false,
            "TrackLinks": "None",
        })
    );
}

#[tokio::test]
async fn a_wrong_token_is_an_account_problem() {
    let stub = Stub::start().await;
    let mailer = PostmarkMailer::new(
        PostmarkConfig::builder("not-the-token", FROM)
            .base_url(&stub.base_url)
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = mailer
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    assert!(e.is_misconfigured() && !e.is_retryable(), "{e}");
    assert!(e.to_string().contains("HTTP 401"), "{e}");
    assert!(!e.to_string().contains("not-the-token"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Every documented answer, through the service: the outbox ends in the right state.
// ---------------------------------------------------------------------------------------------

async fn setup(mailer: PostmarkMailer) -> MailerSetup {
    MailerSetup::new(mailer, 11).await
}

/// Invites ann@example.com by email to two websites; what became of the email.
async fn invite(s: &MailerSetup) -> EmailStatus {
    let req = BulkInviteRequest::websites(
        InviteMethod::Email,
        "ann@example.com",
        [s.world.websites[0], s.world.websites[1]],
    );
    let r = s
        .service
        .bulk_invite(&s.world.global_key(), req)
        .await
        .expect("processed");
    r.email.expect("email report").status
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Queued, next attempt this long after now.
    Queued(Duration),
    /// Failed for this message.
    Failed,
    /// Failed, reported as the mailer's account or configuration.
    Misconfigured,
}

#[tokio::test]
async fn every_documented_answer_leaves_the_outbox_in_the_right_state() {
    let policy = DeliveryPolicy::default();
    let backoff = policy.backoff(1);
    let secs = Duration::from_secs;
    let with_retry_after = |status: u16, v: &str| Answer {
        headers: vec![("retry-after", v.to_owned())],
        ..error_code(status, 429)
    };
    let cases: Vec<(&str, Answer, Expect)> = vec![
        (
            "429 Retry-After 120",
            with_retry_after(429, "120"),
            Expect::Queued(secs(120)),
        ),
        (
            "429 Retry-After 5 (shorter than backoff)",
            with_retry_after(429, "5"),
            Expect::Queued(backoff),
        ),
        (
            "429 without Retry-After",
            error_code(429, 429),
            Expect::Queued(backoff),
        ),
        (
            "503 Retry-After 2 hours (capped)",
            with_retry_after(503, "7200"),
            Expect::Queued(policy.max_backoff()),
        ),
        (
            "500",
            answer(500, json!({"ErrorCode": 0, "Message": "Internal"})),
            Expect::Queued(backoff),
        ),
        (
            "422 ErrorCode 100 maintenance",
            error_code(422, 100),
            Expect::Queued(backoff),
        ),
        (
            "200 with an unreadable body",
            Answer {
                status: 200,
                headers: vec![],
                body: "<html>".into(),
            },
            Expect::Queued(backoff),
        ),
        (
            "422 ErrorCode 406 inactive recipient",
            error_code(422, 406),
            Expect::Failed,
        ),
        (
            "422 ErrorCode 300 invalid email request",
            error_code(422, 300),
            Expect::Failed,
        ),
        (
            "413 payload too large",
            answer(413, json!({})),
            Expect::Failed,
        ),
        (
            "401 unauthorized",
            error_code(401, 10),
            Expect::Misconfigured,
        ),
        (
            "422 ErrorCode 10 bad token",
            error_code(422, 10),
            Expect::Misconfigured,
        ),
        (
            "422 ErrorCode 400 sender signature not found",
            error_code(422, 400),
            Expect::Misconfigured,
        ),
        (
            "422 ErrorCode 401 sender signature not confirmed",
            error_code(422, 401),
            Expect::Misconfigured,
        ),
        (
            "422 ErrorCode 405 not allowed to send",
            error_code(422, 405),
            Expect::Misconfigured,
        ),
        (
            "422 ErrorCode 412 account pending",
            error_code(422, 412),
            Expect::Misconfigured,
        ),
        (
            "422 ErrorCode 413 account may not send",
            error_code(422, 413),
            Expect::Misconfigured,
        ),
        (
            "404 wrong base URL",
            answer(404, json!({})),
            Expect::Misconfigured,
        ),
    ];
    for (name, reply, expect) in cases {
        let stub = Stub::start().await;
        stub.then(reply);
        let s = setup(stub.mailer()).await;
        let start = s.clock.now();
        let status = invite(&s).await;
        let row = s.outbox().await;
        let error = row.last_error.clone().unwrap_or_default();
        assert!(
            !error.contains("ann@example.com"),
            "{name}: no address in {error}"
        );
        match expect {
            Expect::Queued(wait) => {
                assert_eq!(status, EmailStatus::Queued, "{name}");
                assert_eq!(row.status, MessageStatus::Queued, "{name}");
                assert_eq!(row.next_attempt_at, start.plus(wait), "{name}");
                assert!(row.accept_url.is_some(), "{name}");
                // The next attempt, once due, delivers (the stub answers success now).
                s.clock.advance(wait);
                assert_eq!(s.service.deliver_due().await.unwrap().sent, 1, "{name}");
                let row = s.outbox().await;
                assert_eq!(
                    (row.status, row.attempts),
                    (MessageStatus::Sent, 2),
                    "{name}"
                );
                let ids: Vec<Value> = stub
                    .requests()
                    .iter()
                    .map(|r| r.body["Headers"].clone())
                    .collect();
                assert_eq!(ids[0], ids[1], "{name}: the retry keeps the Message-ID");
            }
            Expect::Misconfigured => {
                // The account's fault, not the message's: delivery pauses and the message
                // stays queued, its attempt not counted, until the pause ends.
                assert_eq!(status, EmailStatus::Queued, "{name}");
                assert_eq!(
                    (row.status, row.attempts),
                    (MessageStatus::Queued, 0),
                    "{name}"
                );
                assert!(row.accept_url.is_some(), "{name}");
                assert!(error.contains("misconfigured"), "{name}: {error}");
                let pause = s.service.delivery_pause().expect("paused");
                assert_eq!(row.next_attempt_at, pause.until, "{name}");
                s.clock.advance(Duration::from_secs(1));
                let paused = s.service.deliver_due().await.unwrap();
                assert_eq!(paused.paused_until, Some(pause.until), "{name}");
                assert_eq!(stub.requests().len(), 1, "{name}: not tried while paused");
                s.clock.advance(Duration::from_secs(86_400));
                assert_eq!(s.service.deliver_due().await.unwrap().sent, 1, "{name}");
                assert_eq!(s.service.delivery_pause(), None, "{name}: resumed");
            }
            Expect::Failed => {
                assert_eq!(status, EmailStatus::Failed, "{name}");
                assert_eq!(row.status, MessageStatus::Failed, "{name}");
                assert_eq!(row.accept_url, None, "{name}");
                assert!(!error.contains("misconfigured"), "{name}: {error}");
                s.clock.advance(Duration::from_secs(86_400));
                assert_eq!(
                    s.service.deliver_due().await.unwrap(),
                    DeliveryReport::default()
                );
                assert_eq!(stub.requests().len(), 1, "{name}: not tried again");
            }
        }
        stub.assert_no_violations();
    }
}

#[tokio::test]
async fn errors_expose_their_kind_for_alerting() {
    let stub = Stub::start().await;
    stub.then(error_code(422, 405));
    let mailer = stub.mailer();
    let e = mailer
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    let source = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<invites_postmark::PostmarkError>())
        .expect("the Postmark error is the source");
    assert_eq!(source.kind(), PostmarkErrorKind::Account);
    assert!(source.is_account_problem());
    assert_eq!(
        (source.status(), source.error_code()),
        (Some(422), Some(405))
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let stub = Stub::start().await;
    stub.then(Answer {
        status: 302,
        headers: vec![("location", format!("{}/email", stub.base_url))],
        body: String::new(),
    });
    let e = stub
        .mailer()
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    assert!(e.is_misconfigured(), "{e}");
    assert_eq!(
        stub.requests().len(),
        1,
        "the token is not re-sent anywhere"
    );
}

#[tokio::test]
async fn an_api_that_is_down_or_slow_is_transient() {
    let port = mailer_suite::closed_port();
    let down = PostmarkMailer::new(
        PostmarkConfig::builder(TOKEN, FROM)
            .base_url(format!("http://127.0.0.1:{port}"))
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = down
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("connection failed"),
        "{e}"
    );

    let stub = Stub::start().await;
    *stub.state.delay.lock().unwrap() = Some(Duration::from_secs(3));
    let slow = PostmarkMailer::new(
        stub.config()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = slow
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("timed out"),
        "{e}"
    );
}
