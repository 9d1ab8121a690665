//! One webhook delivery attempt over HTTP: a signed JSON `POST`, no redirects followed, a
//! timeout, and the receiver's answer sorted into delivered, gone (410) or failed, with its
//! `Retry-After`. The delivery loop (which event, which endpoint, when to try again) decides
//! what to do with it; [`next_delay`] is the specification's retry schedule.

use crate::WebhookError;
use crate::destination::{EndpointUrl, Reach, is_public};
use crate::signing::{WebhookSecret, sign};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A `2xx` answer: the receiver has the event.
    Delivered {
        /// The status.
        status: u16,
    },
    /// `410 Gone`: the receiver asks never to be sent to again; disable the endpoint.
    Gone,
    /// Anything else: try again later, no sooner than `retry_after` when the receiver said so.
    Failed {
        /// What went wrong.
        cause: Failure,
        /// The receiver's `Retry-After` (seconds or an HTTP date), when it sent one.
        retry_after: Option<Duration>,
    },
}

/// Why an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A non-`2xx` status other than `410` and the redirects.
    Status(u16),
    /// A redirect (`3xx`): never followed, since it could lead anywhere.
    Redirect(u16),
    /// No answer within the timeout.
    Timeout,
    /// The host's name did not resolve, or no connection could be made.
    Unreachable,
    /// Every address the host's name resolved to is one the endpoint may not reach (loopback,
    /// private, link-local...): the name was re-pointed after the endpoint was registered.
    AddressRefused,
}

/// Sends signed webhook deliveries (reqwest on rustls with `ring`).
#[derive(Clone, Debug)]
pub struct WebhookSender {
    client: reqwest::Client,
    reach: Reach,
}

impl WebhookSender {
    /// A sender that may reach what `reach` allows, waiting at most `timeout` for an answer
    /// (connecting included).
    ///
    /// # Errors
    /// [`WebhookError`] (field `timeout`) for a zero timeout; (field `http_client`) when the
    /// HTTP client cannot be built.
    pub fn new(reach: Reach, timeout: Duration) -> Result<Self, WebhookError> {
        if timeout.is_zero() {
            return Err(WebhookError::new("timeout", "must be more than zero"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(reach)))
            .user_agent(concat!("invites-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| WebhookError::new("http_client", "cannot be built"))?;
        Ok(Self { client, reach })
    }

    /// Posts `body` (JSON) to `endpoint` as message `id`, signed at `timestamp` (seconds since
    /// the Unix epoch) with every secret in `secrets`.
    ///
    /// # Errors
    /// [`WebhookError`] for what [`sign`] refuses, and (field `url`) for an endpoint checked
    /// with [`Reach::AllowPrivate`] given to a sender that reaches public addresses only.
    pub async fn send(
        &self,
        endpoint: &EndpointUrl,
        secrets: &[WebhookSecret],
        id: &str,
        timestamp: u64,
        body: Vec<u8>,
    ) -> Result<Attempt, WebhookError> {
        if endpoint.reach() == Reach::AllowPrivate && self.reach == Reach::PublicOnly {
            return Err(WebhookError::new(
                "url",
                "allows private networks, which this sender does not",
            ));
        }
        let headers = sign(id, timestamp, &body, secrets)?;
        let mut request = self
            .client
            .post(endpoint.as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(e) => {
                let cause = if e.is_timeout() {
                    Failure::Timeout
                } else if refused_address(&e) {
                    Failure::AddressRefused
                } else {
                    Failure::Unreachable
                };
                return Ok(Attempt::Failed {
                    cause,
                    retry_after: None,
                });
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                #[allow(clippy::disallowed_methods)] // an HTTP date is a wall-clock time
                let now = SystemTime::now();
                retry_after(v, now)
            });
        Ok(match status {
            200..=299 => Attempt::Delivered { status },
            410 => Attempt::Gone,
            300..=399 => Attempt::Failed {
                cause: Failure::Redirect(status),
                retry_after,
            },
            _ => Attempt::Failed {
                cause: Failure::Status(status),
                retry_after,
            },
        })
    }
}

/// The Standard Webhooks retry schedule: after the first failed attempt wait 5 seconds, then
/// 5 minutes, 30 minutes, 2 hours, 5 hours, 10 hours and 10 hours; after the eighth failure,
/// `None` (give up). A receiver's `Retry-After` can only make the wait longer.
#[must_use]
pub fn next_delay(failed_attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
    const SCHEDULE: [u64; 7] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];
    let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
    let scheduled = Duration::from_secs(*SCHEDULE.get(index)?);
    Some(retry_after.map_or(scheduled, |r| r.max(scheduled)))
}

/// A `Retry-After` value: delay-seconds, or an HTTP date read against `now`.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => httpdate::parse_http_date(value)
            .ok()
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO)),
    }
}

/// The error the resolver gives when every address is out of the endpoint's reach.
#[derive(Debug, thiserror::Error)]
#[error("every address of the webhook host is out of reach")]
struct AddressRefused;

fn refused_address(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<AddressRefused>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Resolves names as the system does, then keeps only the addresses `Reach` allows, so a name
/// re-pointed at a private address after registration reaches nothing.
struct GuardedResolver(Reach);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let reach = self.0;
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| reach == Reach::AllowPrivate || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_specifications_and_retry_after_only_lengthens_it() {
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        assert_eq!(next_delay(0, None), None);
        assert_eq!(next_delay(1, None), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(2, None), minutes(5));
        assert_eq!(next_delay(3, None), minutes(30));
        assert_eq!(next_delay(4, None), minutes(120));
        assert_eq!(next_delay(5, None), minutes(300));
        assert_eq!(next_delay(6, None), minutes(600));
        assert_eq!(next_delay(7, None), minutes(600));
        assert_eq!(next_delay(8, None), None);
        assert_eq!(next_delay(1, Some(Duration::from_secs(60))), minutes(1));
        assert_eq!(next_delay(2, Some(Duration::from_secs(1))), minutes(5));
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_loopback_reaches_nothing_from_a_public_sender() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let name = || reqwest::dns::Name::from_str("localhost").unwrap();
        let refused = GuardedResolver(Reach::PublicOnly).resolve(name()).await;
        let e = refused.err().expect("loopback is out of reach");
        assert!(e.is::<AddressRefused>());
        let allowed = GuardedResolver(Reach::AllowPrivate).resolve(name()).await;
        assert!(allowed.expect("resolves").all(|a| a.ip().is_loopback()));
    }

    #[tokio::test]
    async fn a_public_sender_refuses_an_endpoint_that_allows_private_networks() {
        let sender = WebhookSender::new(Reach::PublicOnly, Duration::from_secs(1)).unwrap();
        let endpoint = EndpointUrl::parse("http://127.0.0.1:9/", Reach::AllowPrivate).unwrap();
        let secret = WebhookSecret::from_bytes(vec![1; 32]).unwrap();
        let e = sender
            .send(&endpoint, &[secret], "msg_1", 1, b"{}".to_vec())
            .await
            .unwrap_err();
        assert_eq!(e.field, "url");
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        assert_eq!(
            WebhookSender::new(Reach::PublicOnly, Duration::ZERO)
                .unwrap_err()
                .field,
            "timeout"
        );
    }
}
