//! The configuration of an [`InviteService`]: accept links, time to live, delivery policy, clock,
//! randomness, renderer.

use crate::mail::{DefaultRenderer, EmailRenderer};
use crate::random::{AcceptToken, OsRandom, RandomSource};
use crate::time::{Clock, SystemClock};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How the outbox retries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeliveryPolicy {
    /// Wait after the first failed attempt; doubles each time.
    pub base_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
    /// How long a claimed message is hidden from other deliverers (and how long after a crash
    /// an undelivered message waits before `deliver_due` picks it up).
    pub lease: Duration,
    /// Messages per `deliver_due` call.
    pub batch_size: usize,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            base_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 8,
            lease: Duration::from_secs(60),
            batch_size: 100,
        }
    }
}

impl DeliveryPolicy {
    /// The wait after the `attempts`-th failed attempt: `base * 2^(attempts-1)`, capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(&'static str);

/// Configuration of an [`InviteService`](crate::InviteService).
#[derive(Clone)]
pub struct InviteConfig {
    accept_url_base: String,
    /// How long an invitation can be accepted. Default 7 days.
    pub invitation_ttl: Duration,
    /// How long an idempotency key remembers its response. Default 24 hours.
    pub idempotency_ttl: Duration,
    /// After how long an in-progress idempotency record (a crashed request) can be taken over.
    /// Default 60 seconds.
    pub idempotency_stale_after: Duration,
    /// Least time between two sends of one batch. Default 60 seconds.
    pub resend_interval: Duration,
    /// Outbox retry policy.
    pub delivery: DeliveryPolicy,
    /// The clock. Default [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// The random source for ids and tokens. Default [`OsRandom`].
    pub random: Arc<dyn RandomSource>,
    /// The email renderer. Default [`DefaultRenderer`].
    pub renderer: Arc<dyn EmailRenderer>,
}

impl fmt::Debug for InviteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteConfig")
            .field("accept_url_base", &self.accept_url_base)
            .field("invitation_ttl", &self.invitation_ttl)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("resend_interval", &self.resend_interval)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl InviteConfig {
    /// Defaults, with accept links `"{accept_url_base}?token=…"` (or `&token=` when the base
    /// already has a query).
    ///
    /// # Errors
    /// [`ConfigError`] unless the base is an `http://` or `https://` URL without spaces,
    /// control characters or a fragment.
    pub fn new(accept_url_base: impl Into<String>) -> Result<Self, ConfigError> {
        let base = accept_url_base.into();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ConfigError(
                "accept_url_base must start with https:// or http://",
            ));
        }
        if base.chars().any(|c| c.is_control() || c.is_whitespace()) || base.contains('#') {
            return Err(ConfigError(
                "accept_url_base must not hold spaces, control characters or '#'",
            ));
        }
        Ok(InviteConfig {
            accept_url_base: base,
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_stale_after: Duration::from_secs(60),
            resend_interval: Duration::from_secs(60),
            delivery: DeliveryPolicy::default(),
            clock: Arc::new(SystemClock),
            random: Arc::new(OsRandom),
            renderer: Arc::new(DefaultRenderer::default()),
        })
    }

    /// With another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// With another random source.
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// With another renderer.
    pub fn with_renderer(mut self, renderer: Arc<dyn EmailRenderer>) -> Self {
        self.renderer = renderer;
        self
    }

    /// With another invitation time to live.
    pub fn with_invitation_ttl(mut self, ttl: Duration) -> Self {
        self.invitation_ttl = ttl;
        self
    }

    /// The accept link for a token.
    pub fn accept_url(&self, token: &AcceptToken) -> String {
        let sep = if self.accept_url_base.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}token={}", self.accept_url_base, token.expose())
    }
}
