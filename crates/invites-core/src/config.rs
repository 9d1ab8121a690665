//! Configuration: [`InviteConfig`], the outbox's [`DeliveryPolicy`] and the sweeper's
//! [`RetentionPolicy`].
//!
//! Invalid states cannot be built: every field is private, every setter that takes a value
//! checks it and returns `Result<Self, ConfigError>`, and the defaults are valid. So an
//! [`InviteService`](crate::InviteService) (whose constructor takes a finished config) never
//! meets a zero batch size, a zero backoff or a time to live of a century. The bounds:
//!
//! | setting | accepted | default |
//! |---|---|---|
//! | accept link base | `http://` or `https://`, a host, printable ASCII without spaces, quotes, `<>`, `\`, `#`; at most 1024 bytes | (required) |
//! | invitation time to live | 1 second to 365 days | 7 days |
//! | idempotency time to live | 1 minute to 30 days | 24 hours |
//! | idempotency takeover (`stale_after`) | 1 second to the idempotency time to live | 5 minutes |
//! | resend interval | 1 second to 1 day | 60 seconds |
//! | delivery backoff | base 1 ms to max; max at most 7 days | 30 s doubling to 1 hour |
//! | delivery attempts | 1 to 100 | 8 |
//! | delivery lease | 1 second to 1 day | 60 seconds |
//! | delivery batch size | 1 to 1000 | 100 |
//! | retention of finished history | 1 day to 3650 days | 30 days |
//! | purge batch size (records per store call: a batch counts once, with its invitations and messages) | 1 to 10000 | 500 |
//! | purge interval (delivery worker) | 1 minute to 1 day | 1 hour |
//! | trace key (hashes addresses in tracing fields) | a secret of 16 bytes or more | a random key per process |

use crate::mail::{DefaultRenderer, EmailRenderer};
use crate::time::{Clock, SystemClock};
use crate::tokens::{AcceptToken, OsRandom, RandomSource};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A configuration value out of its bounds. Names the setting and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field} {reason}")]
pub struct ConfigError {
    field: &'static str,
    reason: &'static str,
}

impl ConfigError {
    const fn new(field: &'static str, reason: &'static str) -> Self {
        ConfigError { field, reason }
    }

    /// The setting, e.g. `"delivery.batch_size"`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why, e.g. `"must be 1 to 1000"`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

fn within(
    value: Duration,
    min: Duration,
    max: Duration,
    field: &'static str,
    reason: &'static str,
) -> Result<Duration, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(field, reason));
    }
    Ok(value)
}

/// How the outbox retries. Always valid (see the module docs for the bounds); build one from
/// [`DeliveryPolicy::default`] with the `with_*` setters.
///
/// ```
/// use invites_core::DeliveryPolicy;
/// use std::time::Duration;
///
/// let p = DeliveryPolicy::default()
///     .with_backoff(Duration::from_secs(10), Duration::from_secs(600))?
///     .with_batch_size(20)?;
/// assert_eq!(p.batch_size(), 20);
/// assert_eq!(DeliveryPolicy::default().with_batch_size(0).unwrap_err().field(), "delivery.batch_size");
/// # Ok::<(), invites_core::ConfigError>(())
/// ```
///
/// A policy with a zero batch size (which made the delivery worker spin) cannot be written:
///
/// ```compile_fail
/// let p = invites_core::DeliveryPolicy { batch_size: 0, ..Default::default() };
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeliveryPolicy {
    pub(crate) base_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) lease: Duration,
    pub(crate) batch_size: usize,
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
    /// Largest accepted batch size.
    pub const MAX_BATCH_SIZE: usize = 1000;
    /// Most accepted attempts.
    pub const MAX_ATTEMPTS: u32 = 100;

    /// The wait after the `attempts`-th failed attempt: `base * 2^(attempts-1)`, capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The wait after the `attempts`-th failed attempt when the mailer hinted `retry_after`:
    /// the [`backoff`](DeliveryPolicy::backoff), or the hint if that is longer, but never
    /// more than `max_backoff` (a hint cannot park a message beyond the policy).
    pub fn retry_wait(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(attempts);
        retry_after.map_or(backoff, |hint| backoff.max(hint.min(self.max_backoff)))
    }

    /// Wait after the first failed attempt; doubles each time.
    pub fn base_backoff(&self) -> Duration {
        self.base_backoff
    }

    /// Longest wait between attempts.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// Attempts before a message is marked failed.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// How long a claimed message is hidden from other deliverers (and how long after a crash
    /// an undelivered message waits before `deliver_due` picks it up).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Messages per `deliver_due` call.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// With a backoff starting at `base` and doubling up to `max`.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 ms ≤ `base` ≤ `max` ≤ 7 days.
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Result<Self, ConfigError> {
        self.max_backoff = within(
            max,
            Duration::from_millis(1),
            7 * DAY,
            "delivery.max_backoff",
            "must be 1 ms to 7 days",
        )?;
        self.base_backoff = within(
            base,
            Duration::from_millis(1),
            max,
            "delivery.base_backoff",
            "must be at least 1 ms and at most max_backoff",
        )?;
        Ok(self)
    }

    /// With at most `n` delivery attempts per message.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 ≤ `n` ≤ [`DeliveryPolicy::MAX_ATTEMPTS`].
    pub fn with_max_attempts(mut self, n: u32) -> Result<Self, ConfigError> {
        if !(1..=Self::MAX_ATTEMPTS).contains(&n) {
            return Err(ConfigError::new(
                "delivery.max_attempts",
                "must be 1 to 100",
            ));
        }
        self.max_attempts = n;
        Ok(self)
    }

    /// With a claim lease of `lease`.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 second ≤ `lease` ≤ 1 day.
    pub fn with_lease(mut self, lease: Duration) -> Result<Self, ConfigError> {
        self.lease = within(
            lease,
            SECOND,
            DAY,
            "delivery.lease",
            "must be 1 second to 1 day",
        )?;
        Ok(self)
    }

    /// With `n` messages per `deliver_due` call.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 ≤ `n` ≤ [`DeliveryPolicy::MAX_BATCH_SIZE`]. (A batch size of 0
    /// used to make the delivery worker spin without ever delivering.)
    pub fn with_batch_size(mut self, n: usize) -> Result<Self, ConfigError> {
        if !(1..=Self::MAX_BATCH_SIZE).contains(&n) {
            return Err(ConfigError::new("delivery.batch_size", "must be 1 to 1000"));
        }
        self.batch_size = n;
        Ok(self)
    }
}

/// What [`InviteService::purge_expired`](crate::InviteService::purge_expired) deletes and how.
/// Always valid (see the module docs for the bounds); build one from
/// [`RetentionPolicy::default`] with the `with_*` setters. Idempotency records need no
/// setting of their own: they go once the idempotency time to live has passed (see
/// [`InviteConfig::with_idempotency`]).
///
/// ```
/// use invites_core::RetentionPolicy;
/// use std::time::Duration;
///
/// let p = RetentionPolicy::default().with_history(Duration::from_secs(90 * 86_400))?;
/// assert_eq!(p.history(), Duration::from_secs(90 * 86_400));
/// assert_eq!(RetentionPolicy::default().with_batch_size(0).unwrap_err().field(), "retention.batch_size");
/// # Ok::<(), invites_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RetentionPolicy {
    pub(crate) history: Duration,
    pub(crate) batch_size: usize,
    pub(crate) interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            history: 30 * DAY,
            batch_size: 500,
            interval: HOUR,
        }
    }
}

impl RetentionPolicy {
    /// Largest accepted purge batch size.
    pub const MAX_BATCH_SIZE: usize = 10_000;

    /// How long finished history is kept: a finished outbox message, and a dead batch with
    /// its invitations and messages, are deleted once every time that could still matter
    /// about them is more than this long ago (the crate docs, "Retention", say exactly what).
    pub fn history(&self) -> Duration {
        self.history
    }

    /// Records a single store call deletes at most: idempotency records, messages, or
    /// batches (a batch goes with all its invitations and messages, so a batch call deletes
    /// more rows than this). Each call is one short transaction; the service calls again
    /// until a call comes back short. Default 500: on SQLite, 1000 dead
    /// batches (each with an invitation and a message) took one write transaction of up to
    /// about 150 ms on a loaded 2-core machine.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// How often the delivery worker of the `invites` facade (feature `tokio`) calls
    /// `purge_expired`. A host that runs the purge itself ignores it.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// With finished history kept for `history`.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 day ≤ `history` ≤ 3650 days. (Under a day, a deliverer whose
    /// lease of up to a day ran out could still be recording a message the purge deleted.)
    pub fn with_history(mut self, history: Duration) -> Result<Self, ConfigError> {
        self.history = within(
            history,
            DAY,
            3650 * DAY,
            "retention.history",
            "must be 1 day to 3650 days",
        )?;
        Ok(self)
    }

    /// With at most `n` rows deleted per store call.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 ≤ `n` ≤ [`RetentionPolicy::MAX_BATCH_SIZE`].
    pub fn with_batch_size(mut self, n: usize) -> Result<Self, ConfigError> {
        if !(1..=Self::MAX_BATCH_SIZE).contains(&n) {
            return Err(ConfigError::new(
                "retention.batch_size",
                "must be 1 to 10000",
            ));
        }
        self.batch_size = n;
        Ok(self)
    }

    /// With the delivery worker purging every `interval`.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 minute ≤ `interval` ≤ 1 day.
    pub fn with_interval(mut self, interval: Duration) -> Result<Self, ConfigError> {
        self.interval = within(
            interval,
            MINUTE,
            DAY,
            "retention.interval",
            "must be 1 minute to 1 day",
        )?;
        Ok(self)
    }
}

/// Configuration of an [`InviteService`](crate::InviteService). Always valid: see the module
/// docs for the bounds each setter checks.
#[derive(Clone)]
pub struct InviteConfig {
    pub(crate) accept_url_base: String,
    pub(crate) invitation_ttl: Duration,
    pub(crate) idempotency_ttl: Duration,
    pub(crate) idempotency_stale_after: Duration,
    pub(crate) resend_interval: Duration,
    pub(crate) delivery: DeliveryPolicy,
    pub(crate) retention: RetentionPolicy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) renderer: Arc<dyn EmailRenderer>,
    /// Keys the hash that stands for an address in tracing fields (never printed).
    pub(crate) trace_key: [u8; 32],
}

impl fmt::Debug for InviteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteConfig")
            .field("accept_url_base", &self.accept_url_base)
            .field("invitation_ttl", &self.invitation_ttl)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("idempotency_stale_after", &self.idempotency_stale_after)
            .field("resend_interval", &self.resend_interval)
            .field("delivery", &self.delivery)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// Longest accepted accept link base, in bytes.
const MAX_BASE_LEN: usize = 1024;

impl InviteConfig {
    /// Defaults, with accept links `"{accept_url_base}?token=…"` (or `&token=` when the base
    /// already has a query).
    ///
    /// # Errors
    /// [`ConfigError`] (field `accept_url_base`) unless the base is an `http://` or `https://`
    /// URL with a host, at most 1024 bytes of printable ASCII without spaces, quotes, `<`,
    /// `>`, `\`, `` ` `` or a fragment.
    pub fn new(accept_url_base: impl Into<String>) -> Result<Self, ConfigError> {
        let base = accept_url_base.into();
        const FIELD: &str = "accept_url_base";
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or(ConfigError::new(
                FIELD,
                "must start with https:// or http://",
            ))?;
        if base.len() > MAX_BASE_LEN {
            return Err(ConfigError::new(FIELD, "must be at most 1024 bytes"));
        }
        if !base
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'<>\\`{}|^#".contains(&b))
        {
            return Err(ConfigError::new(
                FIELD,
                "must be printable ASCII without spaces, control characters, quotes, <, >, \\, `, {, }, |, ^ or '#'",
            ));
        }
        let host = rest.split(['/', '?']).next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') || host.contains('@') {
            return Err(ConfigError::new(
                FIELD,
                "must name a host (without user information)",
            ));
        }
        Ok(InviteConfig {
            accept_url_base: base,
            invitation_ttl: 7 * DAY,
            idempotency_ttl: DAY,
            idempotency_stale_after: 5 * MINUTE,
            resend_interval: MINUTE,
            delivery: DeliveryPolicy::default(),
            retention: RetentionPolicy::default(),
            clock: Arc::new(SystemClock),
            random: Arc::new(OsRandom),
            renderer: Arc::new(DefaultRenderer::default()),
            trace_key: *crate::invitee::process_key(),
        })
    }

    /// With another clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// With another random source.
    #[must_use]
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// With the host's secret for the hash that stands for an email address in tracing fields
    /// (the `invitee` field of the bulk spans; the address itself never reaches a span, an
    /// event or a metric). The same secret on every app server gives one mailbox the same
    /// hash everywhere, so an operator can follow it across machines and restarts; without
    /// it, each process draws a random key (hashes match within one process only). The
    /// secret is never printed; keep it as secret as the logs' readers are untrusted, since
    /// with it a guessed address can be tested against a hash.
    ///
    /// # Errors
    /// [`ConfigError`] (field `trace_key`) for a secret shorter than 16 bytes.
    pub fn with_trace_key(mut self, secret: &[u8]) -> Result<Self, ConfigError> {
        use sha2::{Digest, Sha256};
        if secret.len() < 16 {
            return Err(ConfigError::new("trace_key", "must be at least 16 bytes"));
        }
        self.trace_key = Sha256::new()
            .chain_update(b"invites trace key\0")
            .chain_update(secret)
            .finalize()
            .into();
        Ok(self)
    }

    /// With another renderer.
    #[must_use]
    pub fn with_renderer(mut self, renderer: Arc<dyn EmailRenderer>) -> Self {
        self.renderer = renderer;
        self
    }

    /// With another invitation time to live.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 second ≤ `ttl` ≤ 365 days.
    pub fn with_invitation_ttl(mut self, ttl: Duration) -> Result<Self, ConfigError> {
        self.invitation_ttl = within(
            ttl,
            SECOND,
            365 * DAY,
            "invitation_ttl",
            "must be 1 second to 365 days",
        )?;
        Ok(self)
    }

    /// With another idempotency window: a key remembers its response for `ttl`, and an
    /// in-progress record (a crashed request) can be taken over after `stale_after`.
    ///
    /// Keep `stale_after` above the longest a live request can take (the host's pool wait,
    /// the store writes, and the inline send, which the mailer bounds: 30 s for SMTP by
    /// default); the default, 5 minutes, leaves room. A takeover that happens anyway is
    /// safe: the first run's finish is fenced out
    /// ([`idempotency_finish_applies`](crate::rules::idempotency_finish_applies)), so it
    /// cannot overwrite the response the second run stored.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 minute ≤ `ttl` ≤ 30 days and 1 second ≤ `stale_after` ≤ `ttl`.
    pub fn with_idempotency(
        mut self,
        ttl: Duration,
        stale_after: Duration,
    ) -> Result<Self, ConfigError> {
        self.idempotency_ttl = within(
            ttl,
            MINUTE,
            30 * DAY,
            "idempotency_ttl",
            "must be 1 minute to 30 days",
        )?;
        self.idempotency_stale_after = within(
            stale_after,
            SECOND,
            ttl,
            "idempotency_stale_after",
            "must be at least 1 second and at most idempotency_ttl",
        )?;
        Ok(self)
    }

    /// With another least time between two sends of one batch.
    ///
    /// # Errors
    /// [`ConfigError`] unless 1 second ≤ `interval` ≤ 1 day.
    pub fn with_resend_interval(mut self, interval: Duration) -> Result<Self, ConfigError> {
        self.resend_interval = within(
            interval,
            SECOND,
            DAY,
            "resend_interval",
            "must be 1 second to 1 day",
        )?;
        Ok(self)
    }

    /// With another outbox retry policy (valid by construction).
    #[must_use]
    pub fn with_delivery_policy(mut self, policy: DeliveryPolicy) -> Self {
        self.delivery = policy;
        self
    }

    /// With another retention policy for `purge_expired` (valid by construction).
    #[must_use]
    pub fn with_retention_policy(mut self, policy: RetentionPolicy) -> Self {
        self.retention = policy;
        self
    }

    /// How long an invitation can be accepted. Default 7 days.
    pub fn invitation_ttl(&self) -> Duration {
        self.invitation_ttl
    }

    /// How long an idempotency key remembers its response. Default 24 hours.
    pub fn idempotency_ttl(&self) -> Duration {
        self.idempotency_ttl
    }

    /// After how long an in-progress idempotency record can be taken over. Default 60 s.
    pub fn idempotency_stale_after(&self) -> Duration {
        self.idempotency_stale_after
    }

    /// Least time between two sends of one batch. Default 60 seconds.
    pub fn resend_interval(&self) -> Duration {
        self.resend_interval
    }

    /// The outbox retry policy.
    pub fn delivery(&self) -> DeliveryPolicy {
        self.delivery
    }

    /// The retention policy of `purge_expired`.
    pub fn retention(&self) -> RetentionPolicy {
        self.retention
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The random source for ids and tokens.
    pub fn random(&self) -> &Arc<dyn RandomSource> {
        &self.random
    }

    /// The email renderer.
    pub fn renderer(&self) -> &Arc<dyn EmailRenderer> {
        &self.renderer
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = DeliveryPolicy::default()
            .with_backoff(Duration::from_secs(10), Duration::from_secs(100))
            .unwrap();
        assert_eq!(p.backoff(1), Duration::from_secs(10));
        assert_eq!(p.backoff(2), Duration::from_secs(20));
        assert_eq!(p.backoff(4), Duration::from_secs(80));
        assert_eq!(p.backoff(5), Duration::from_secs(100));
        assert_eq!(p.backoff(60), Duration::from_secs(100));
    }

    #[test]
    fn accept_url_and_base_checks() {
        let c = InviteConfig::new("https://a.test/accept").unwrap();
        let t = AcceptToken::from_user("abc");
        assert_eq!(c.accept_url(&t), "https://a.test/accept?token=abc");
        let c = InviteConfig::new("https://a.test/accept?lang=en").unwrap();
        assert_eq!(c.accept_url(&t), "https://a.test/accept?lang=en&token=abc");
        assert!(InviteConfig::new("http://localhost:8080/accept").is_ok());
        for bad in [
            "ftp://x",
            "https://a b",
            "https://a.test/#x",
            "javascript:alert(1)",
            "https://",
            "https:///path",
            "https://:443/x",
            "https://user@evil.test/",
            "https://a.test/\"><script>",
            "https://bücher.test/",
            "https://a.test/\r\nx",
        ] {
            let e = InviteConfig::new(bad).unwrap_err();
            assert_eq!(e.field(), "accept_url_base", "{bad}");
        }
        let long = format!("https://a.test/{}", "x".repeat(MAX_BASE_LEN));
        assert!(InviteConfig::new(long).is_err());
    }

    /// Before, every one of these was accepted (the fields were public and unchecked); a
    /// batch size of 0 made the delivery worker spin forever.
    #[test]
    fn out_of_bounds_values_are_typed_errors() {
        let p = DeliveryPolicy::default();
        let ms = Duration::from_millis;
        let cases: Vec<(Result<DeliveryPolicy, ConfigError>, &str)> = vec![
            (p.with_batch_size(0), "delivery.batch_size"),
            (p.with_batch_size(1001), "delivery.batch_size"),
            (p.with_max_attempts(0), "delivery.max_attempts"),
            (p.with_max_attempts(101), "delivery.max_attempts"),
            (p.with_backoff(ms(0), ms(10)), "delivery.base_backoff"),
            (p.with_backoff(ms(20), ms(10)), "delivery.base_backoff"),
            (p.with_backoff(ms(1), ms(0)), "delivery.max_backoff"),
            (p.with_backoff(ms(1), 8 * DAY), "delivery.max_backoff"),
            (p.with_backoff(ms(1), Duration::MAX), "delivery.max_backoff"),
            (p.with_lease(Duration::ZERO), "delivery.lease"),
            (p.with_lease(2 * DAY), "delivery.lease"),
        ];
        for (r, field) in cases {
            assert_eq!(r.map_err(|e| e.field()), Err(field));
        }
        assert_eq!(p.with_batch_size(1).unwrap().batch_size(), 1);

        let r = RetentionPolicy::default();
        let cases: Vec<(Result<RetentionPolicy, ConfigError>, &str)> = vec![
            (r.with_history(Duration::ZERO), "retention.history"),
            (r.with_history(DAY - SECOND), "retention.history"),
            (r.with_history(3651 * DAY), "retention.history"),
            (r.with_history(Duration::MAX), "retention.history"),
            (r.with_batch_size(0), "retention.batch_size"),
            (r.with_batch_size(10_001), "retention.batch_size"),
            (r.with_interval(SECOND), "retention.interval"),
            (r.with_interval(2 * DAY), "retention.interval"),
        ];
        for (result, field) in cases {
            assert_eq!(result.map_err(|e| e.field()), Err(field));
        }
        assert_eq!(r.history(), 30 * DAY);
        assert_eq!(r.with_history(DAY).unwrap().history(), DAY);
        assert_eq!(r.with_batch_size(10_000).unwrap().batch_size(), 10_000);
        assert_eq!(r.with_interval(MINUTE).unwrap().interval(), MINUTE);
        assert_eq!(p.with_max_attempts(1).unwrap().max_attempts(), 1);

        let c = || InviteConfig::new("https://a.test/accept").unwrap();
        let errs = [
            c().with_invitation_ttl(Duration::ZERO).map(|_| ()),
            c().with_invitation_ttl(366 * DAY).map(|_| ()),
            c().with_invitation_ttl(Duration::MAX).map(|_| ()),
            c().with_idempotency(Duration::ZERO, SECOND).map(|_| ()),
            c().with_idempotency(31 * DAY, SECOND).map(|_| ()),
            c().with_idempotency(DAY, Duration::ZERO).map(|_| ()),
            c().with_idempotency(MINUTE, 2 * MINUTE).map(|_| ()),
            c().with_resend_interval(Duration::ZERO).map(|_| ()),
            c().with_resend_interval(2 * DAY).map(|_| ()),
        ];
        for e in errs {
            let e = e.unwrap_err();
            assert!(e.to_string().starts_with("invalid configuration: "), "{e}");
        }
        let ok = c()
            .with_invitation_ttl(SECOND)
            .unwrap()
            .with_idempotency(MINUTE, MINUTE)
            .unwrap()
            .with_resend_interval(DAY)
            .unwrap()
            .with_delivery_policy(p.with_batch_size(5).unwrap());
        assert_eq!(ok.invitation_ttl(), SECOND);
        assert_eq!(ok.delivery().batch_size(), 5);
        assert_eq!(ok.idempotency_stale_after(), MINUTE);
    }
}
