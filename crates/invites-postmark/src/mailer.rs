//! [`PostmarkMailer`]: one `POST /email` per message; [`classify`] maps Postmark's answers.

use crate::config::{PostmarkConfig, PostmarkConfigError};
use async_trait::async_trait;
use invites_core::{EmailMessage, MailError, Mailer};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The most of an answer body read (Postmark's answers are a few hundred bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// A [`Mailer`] that sends each message with Postmark's `POST /email`.
///
/// The request carries the server token in `X-Postmark-Server-Token`, `Accept` and
/// `Content-Type: application/json`, and the JSON fields `From`, `To` (the bare checked
/// recipient), `Subject`, `TextBody`, `HtmlBody`, `ReplyTo` (if configured), `MessageStream`,
/// `Headers` (our `Message-ID: <message-id@domain>`, stable across attempts), `Metadata`
/// (`invites_message_id`, `invites_batch_id`), and `TrackOpens: false`, `TrackLinks: "None"`
/// so the accept link is never rewritten through a tracking redirect.
///
/// The HTTP client is reqwest on rustls (the `ring` provider, system roots), no proxy from
/// the environment, no redirects followed. Clones share the client.
#[derive(Clone)]
pub struct PostmarkMailer {
    inner: Arc<Inner>,
}

struct Inner {
    config: PostmarkConfig,
    endpoint: url::Url,
    client: reqwest::Client,
}

impl fmt::Debug for PostmarkMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostmarkMailer")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("message_stream", &self.inner.config.message_stream)
            .finish_non_exhaustive()
    }
}

impl PostmarkMailer {
    /// A mailer for `config`.
    ///
    /// # Errors
    /// [`PostmarkConfigError`] (field `http_client`) if the TLS client cannot be built.
    pub fn new(config: PostmarkConfig) -> Result<Self, PostmarkConfigError> {
        let mut endpoint = config.base_url.clone();
        endpoint
            .path_segments_mut()
            .map_err(|()| PostmarkConfigError::new("base_url", "cannot take a path"))?
            .pop_if_empty()
            .push("email");
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("invites-postmark/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| PostmarkConfigError::new("http_client", "cannot be built"))?;
        Ok(PostmarkMailer {
            inner: Arc::new(Inner {
                config,
                endpoint,
                client,
            }),
        })
    }

    /// The URL messages are posted to (`<base_url>/email`).
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint.as_str()
    }

    /// The JSON body for `message`.
    pub fn request_body(&self, message: &EmailMessage) -> serde_json::Value {
        let c = &self.inner.config;
        let mut body = serde_json::json!({
            "From": c.from,
            "To": message.to.as_str(),
            "Subject": one_line(&message.subject),
            "TextBody": message.text,
            "HtmlBody": message.html,
            "MessageStream": c.message_stream,
            "Headers": [
                { "Name": "Message-ID", "Value": format!("<{}@{}>", message.id, c.message_id_domain) }
            ],
            "Metadata": {
                "invites_message_id": message.id.to_string(),
                "invites_batch_id": message.batch_id.to_string(),
            },
            "TrackOpens": false,
            "TrackLinks": "None",
        });
        if let Some(reply_to) = &c.reply_to {
            body["ReplyTo"] = reply_to.as_str().into();
        }
        body
    }

    async fn post(&self, message: &EmailMessage) -> Result<(), PostmarkError> {
        let c = &self.inner.config;
        let response = self
            .inner
            .client
            .post(self.inner.endpoint.clone())
            .header("X-Postmark-Server-Token", &c.server_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&self.request_body(message))
            .send()
            .await
            .map_err(|e| PostmarkError::network(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_limited(response)
            .await
            .map_err(|e| PostmarkError::network(&e))?;
        #[allow(clippy::disallowed_methods)] // Retry-After dates are wall-clock times
        let now = SystemTime::now();
        classify(status, &body, retry_after.as_deref(), now)
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    Ok(body)
}

#[async_trait]
impl Mailer for PostmarkMailer {
    /// The whole-request timeout (default 30 s): the outbox starts a send only with this
    /// much of its claim's lease left.
    fn send_timeout(&self) -> Option<std::time::Duration> {
        Some(self.inner.config.timeout)
    }

    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        self.post(message).await.map_err(MailError::from)
    }
}

/// How a Postmark failure counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum PostmarkErrorKind {
    /// A retry may pass: 429, 5xx, maintenance, a timeout, a connection failure, an answer
    /// that could not be read.
    Transient,
    /// Postmark refused this message for good: an inactive recipient (406), an invalid
    /// request (300), a payload too large, ...
    Rejected,
    /// Every message will fail until the account or configuration is fixed: a bad or
    /// missing token (HTTP 401, ErrorCode 10), an unknown or unconfirmed sender (400, 401),
    /// sending not allowed (405), a pending account (412), an account that may not send
    /// (413), an unknown message stream (1235), a wrong base URL (404, redirects).
    Account,
}

/// A failed Postmark send. Its text names the HTTP status, Postmark's `ErrorCode` and our
/// reading of it, never Postmark's `Message` (which quotes recipient addresses).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("Postmark {}", self.describe())]
pub struct PostmarkError {
    kind: PostmarkErrorKind,
    status: Option<u16>,
    error_code: Option<i64>,
    what: &'static str,
    retry_after: Option<Duration>,
}

impl PostmarkError {
    fn new(kind: PostmarkErrorKind, status: Option<u16>, what: &'static str) -> Self {
        PostmarkError {
            kind,
            status,
            error_code: None,
            what,
            retry_after: None,
        }
    }

    fn network(e: &reqwest::Error) -> Self {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed before an answer"
        };
        Self::new(PostmarkErrorKind::Transient, None, what)
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(st) = self.status {
            s.push_str(&format!("HTTP {st}"));
        }
        if let Some(code) = self.error_code {
            s.push_str(&format!(", ErrorCode {code}"));
        }
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(self.what);
        if let Some(d) = self.retry_after {
            s.push_str(&format!(" (retry after {} s)", d.as_secs()));
        }
        s
    }

    /// How it counts.
    pub fn kind(&self) -> PostmarkErrorKind {
        self.kind
    }

    /// Whether the account or configuration is at fault: alert someone.
    pub fn is_account_problem(&self) -> bool {
        self.kind == PostmarkErrorKind::Account
    }

    /// The HTTP status, when Postmark answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Postmark's `ErrorCode`, when the answer carried one.
    pub fn error_code(&self) -> Option<i64> {
        self.error_code
    }

    /// Postmark's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl From<PostmarkError> for MailError {
    fn from(e: PostmarkError) -> Self {
        match e.kind {
            PostmarkErrorKind::Transient => match e.retry_after {
                Some(d) => MailError::transient(e).with_retry_after(d),
                None => MailError::transient(e),
            },
            PostmarkErrorKind::Rejected => MailError::permanent(e),
            PostmarkErrorKind::Account => MailError::misconfigured(e),
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "ErrorCode")]
    error_code: i64,
}

/// What Postmark's `ErrorCode` means for the outbox.
fn by_error_code(code: i64) -> (PostmarkErrorKind, &'static str) {
    use PostmarkErrorKind::{Account, Rejected, Transient};
    match code {
        10 => (Account, "bad or missing server token"),
        100 => (Transient, "maintenance"),
        300 => (Rejected, "invalid email request"),
        400 => (Account, "sender signature not found"),
        401 => (Account, "sender signature not confirmed"),
        402 | 403 | 409 => (Rejected, "request body not accepted as JSON"),
        405 => (
            Account,
            "not allowed to send (account credits or permissions)",
        ),
        406 => (Rejected, "inactive recipient"),
        411 => (Rejected, "forbidden attachment type"),
        412 => (Account, "account is pending"),
        413 => (Account, "account may not send"),
        429 => (Transient, "rate limit exceeded"),
        1235 => (Account, "message stream not found"),
        _ => (Rejected, "request refused"),
    }
}

/// The one place Postmark's answers are classified, from the documented status codes and
/// `ErrorCode`s: 200 with `ErrorCode` 0 is success; 429 and 5xx are transient, honouring
/// `Retry-After` (seconds or an HTTP date, read against `now`); 401 is an account problem;
/// 422 is read by its `ErrorCode` (406 inactive recipient and 300 invalid request are
/// permanent for the message; 10, 400, 401, 405, 412, 413, 1235 are account problems); 404
/// and redirects mean a wrong base URL (account/configuration); 413 (payload too large) and
/// other 4xx are permanent for the message. An answer that cannot be read is transient:
/// the message may be sent twice, never lost, and its stable `Message-ID` lets receivers
/// drop the copy.
///
/// # Errors
/// The [`PostmarkError`] for every answer but success.
pub fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    now: SystemTime,
) -> Result<(), PostmarkError> {
    use PostmarkErrorKind::{Account, Rejected, Transient};
    let answer = serde_json::from_slice::<Answer>(body).ok();
    let with_code = |kind, what, code| PostmarkError {
        kind,
        status: Some(status),
        error_code: code,
        what,
        retry_after: None,
    };
    let err = match status {
        200..=299 => match answer {
            Some(Answer { error_code: 0 }) => return Ok(()),
            Some(Answer { error_code }) => {
                let (kind, what) = by_error_code(error_code);
                with_code(kind, what, Some(error_code))
            }
            None => with_code(Transient, "success status with an unreadable answer", None),
        },
        401 => with_code(
            Account,
            "unauthorized (missing or incorrect server token)",
            answer.map(|a| a.error_code),
        ),
        422 => match answer {
            Some(Answer { error_code }) => {
                let (kind, what) = by_error_code(error_code);
                with_code(kind, what, Some(error_code))
            }
            None => with_code(Rejected, "unprocessable request", None),
        },
        429 => with_code(
            Transient,
            "rate limit exceeded",
            answer.map(|a| a.error_code),
        ),
        500..=599 => with_code(Transient, "server error", answer.map(|a| a.error_code)),
        404 => with_code(Account, "endpoint not found (check the base URL)", None),
        300..=399 => with_code(Account, "redirected (check the base URL)", None),
        413 => with_code(Rejected, "payload too large", None),
        400..=499 => with_code(Rejected, "request refused", answer.map(|a| a.error_code)),
        _ => with_code(Transient, "unexpected status", None),
    };
    let retry_after = match err.kind {
        Transient => retry_after.and_then(|v| parse_retry_after(v, now)),
        _ => None,
    };
    Err(PostmarkError { retry_after, ..err })
}

/// `Retry-After` as seconds or an HTTP date (a date in the past means now).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use PostmarkErrorKind::{Account, Rejected, Transient};

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_683_600)
    }

    fn kind(status: u16, body: &str) -> PostmarkErrorKind {
        classify(status, body.as_bytes(), None, now())
            .unwrap_err()
            .kind()
    }

    #[test]
    fn documented_answers() {
        let ok = r#"{"To":"a@b.test","SubmittedAt":"2026-11-26T09:00:00Z","MessageID":"x","ErrorCode":0,"Message":"OK"}"#;
        assert_eq!(classify(200, ok.as_bytes(), None, now()), Ok(()));
        let code = |c: i64| {
            format!(r#"{{"ErrorCode":{c},"Message":"Found inactive addresses: ann@x.test"}}"#)
        };
        assert_eq!(kind(401, &code(10)), Account);
        assert_eq!(kind(401, ""), Account);
        for c in [10, 400, 401, 405, 412, 413, 1235] {
            assert_eq!(kind(422, &code(c)), Account, "ErrorCode {c}");
        }
        for c in [300, 406, 402, 411, 9999] {
            assert_eq!(kind(422, &code(c)), Rejected, "ErrorCode {c}");
        }
        assert_eq!(kind(422, &code(100)), Transient);
        assert_eq!(kind(200, &code(406)), Rejected);
        assert_eq!(kind(200, "<html>proxy</html>"), Transient);
        assert_eq!(kind(429, &code(429)), Transient);
        for s in [500, 502, 503, 504] {
            assert_eq!(kind(s, ""), Transient, "{s}");
        }
        assert_eq!(kind(413, ""), Rejected);
        assert_eq!(kind(404, ""), Account);
        assert_eq!(kind(302, ""), Account);
        assert_eq!(kind(400, ""), Rejected);
        let e = classify(422, code(406).as_bytes(), None, now()).unwrap_err();
        assert_eq!((e.status(), e.error_code()), (Some(422), Some(406)));
        assert!(!e.to_string().contains("ann@"), "{e}");
        assert!(e.to_string().contains("inactive recipient"), "{e}");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let e = classify(429, b"", Some("120"), now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(90));
        let e = classify(503, b"", Some(&date), now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(90));
        let e = classify(503, b"", Some(&past), now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::ZERO));
        let e = classify(503, b"", Some("soon"), now()).unwrap_err();
        assert_eq!(e.retry_after(), None);
        let e = classify(422, br#"{"ErrorCode":406}"#, Some("60"), now()).unwrap_err();
        assert_eq!(
            e.retry_after(),
            None,
            "only transient errors carry the hint"
        );
        let m: MailError = classify(429, b"", Some("120"), now()).unwrap_err().into();
        assert_eq!(m.retry_after(), Some(Duration::from_secs(120)));
    }
}
