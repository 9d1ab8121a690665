//! Webhooks of the `invites` library, behind the facade's `webhooks` feature.
//!
//! What is here: signing, the endpoint address rules, one attempt, and the delivery loop.
//!
//! - [`sign`]: the [Standard Webhooks](https://www.standardwebhooks.com/) signature. Every
//!   delivery carries `webhook-id` (the same on each retry), `webhook-timestamp` (seconds since
//!   the Unix epoch) and `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of
//!   `{id}.{timestamp}.{body}` keyed with the bytes of a `whsec_` secret ([`WebhookSecret`]),
//!   one per secret the endpoint holds, separated by spaces, so a receiver verifies with either
//!   secret while the host rotates them. Any Standard Webhooks library verifies it; the tests
//!   check it with the Python reference library and pin the specification's test vector.
//! - [`EndpointUrl`]: where a webhook may go. `https://` to public addresses only, unless the
//!   host allows private networks ([`Reach::AllowPrivate`]); the addresses a name resolves to
//!   are checked again at delivery ([`EndpointUrl::allows`]).
//!
//! - [`WebhookSender`]: one attempt: a signed JSON `POST`, no redirects, a timeout, the answer
//!   sorted into [`Attempt::Delivered`], [`Attempt::Gone`] (410: disable the endpoint) or
//!   [`Attempt::Failed`] with the receiver's `Retry-After`; [`next_delay`] is the
//!   specification's retry schedule.
//!
//! - [`WebhookDeliverer`]: registering endpoints ([`WebhookDeliverer::register`]) and the
//!   delivery loop ([`WebhookDeliverer::deliver_due`]) over the event log: at least once, in
//!   position order per endpoint, progress stored after every delivery so a crash resumes, the
//!   retry schedule, `410` disabling the endpoint. See [`delivery`](WebhookDeliverer) for the
//!   rules.

mod delivery;
mod destination;
mod sender;
mod signing;

pub use delivery::{
    DeliveryConfig, DeliveryError, WebhookBackend, WebhookDeliverer, WebhookReport, payload,
};
pub use destination::{EndpointUrl, Reach, is_public};
pub use sender::{Attempt, Failure, WebhookSender, next_delay};
pub use signing::{SignedHeaders, WebhookSecret, sign};

/// A webhook value that cannot be used: the field and the reason, never the value (a secret
/// or a URL may be sensitive).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("webhook {field}: {reason}")]
pub struct WebhookError {
    /// The field: `secret`, `secrets`, `id`, `url`, `timeout` or `http_client`.
    pub field: &'static str,
    /// Why it cannot be used.
    pub reason: &'static str,
}

impl WebhookError {
    pub(crate) fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}
