//! [`PostmarkConfig`]: the server token, the sender, the message stream and where the API is.

use std::fmt;
use std::time::Duration;

/// Postmark's API.
pub const DEFAULT_BASE_URL: &str = "https://api.postmarkapp.com";

/// A configuration value that cannot be used: names the field and why. Never echoes the
/// token.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("invalid Postmark configuration: {field} {reason}")]
pub struct PostmarkConfigError {
    field: &'static str,
    reason: &'static str,
}

impl PostmarkConfigError {
    pub(crate) fn new(field: &'static str, reason: &'static str) -> Self {
        PostmarkConfigError { field, reason }
    }

    /// The offending field (`server_token`, `from`, `base_url`, ...).
    pub fn field(&self) -> &str {
        self.field
    }

    /// Why, in words.
    pub fn reason(&self) -> &str {
        self.reason
    }
}

impl From<invites_core::SenderError> for PostmarkConfigError {
    fn from(e: invites_core::SenderError) -> Self {
        PostmarkConfigError::new(e.field(), e.reason())
    }
}

/// A checked configuration; make one with [`PostmarkConfig::builder`].
#[derive(Clone)]
pub struct PostmarkConfig {
    pub(crate) server_token: String,
    pub(crate) from: String,
    pub(crate) reply_to: Option<String>,
    pub(crate) message_stream: String,
    pub(crate) base_url: url::Url,
    pub(crate) message_id_domain: String,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl fmt::Debug for PostmarkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostmarkConfig")
            .field("server_token", &"<redacted>")
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("message_stream", &self.message_stream)
            .field("base_url", &self.base_url.as_str())
            .field("message_id_domain", &self.message_id_domain)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PostmarkConfig {
    /// A builder for the server whose token is `server_token`, sending as `from` (an address
    /// or `Name <address>`, a confirmed sender signature in Postmark).
    pub fn builder(
        server_token: impl Into<String>,
        from: impl Into<String>,
    ) -> PostmarkConfigBuilder {
        PostmarkConfigBuilder {
            server_token: server_token.into(),
            from: from.into(),
            reply_to: None,
            message_stream: "outbound".to_owned(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            message_id_domain: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        self.base_url.as_str()
    }

    /// The message stream every message goes to.
    pub fn message_stream(&self) -> &str {
        &self.message_stream
    }

    /// The domain of every `Message-ID`.
    pub fn message_id_domain(&self) -> &str {
        &self.message_id_domain
    }
}

/// Builds a [`PostmarkConfig`]; every value is checked in [`PostmarkConfigBuilder::build`].
#[derive(Clone)]
pub struct PostmarkConfigBuilder {
    server_token: String,
    from: String,
    reply_to: Option<String>,
    message_stream: String,
    base_url: String,
    message_id_domain: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for PostmarkConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostmarkConfigBuilder")
            .field("server_token", &"<redacted>")
            .field("from", &self.from)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl PostmarkConfigBuilder {
    /// A `Reply-To` for every message.
    #[must_use]
    pub fn reply_to(mut self, mailbox: impl Into<String>) -> Self {
        self.reply_to = Some(mailbox.into());
        self
    }

    /// The message stream (default `outbound`, the transactional stream).
    #[must_use]
    pub fn message_stream(mut self, stream: impl Into<String>) -> Self {
        self.message_stream = stream.into();
        self
    }

    /// Where the API is (default [`DEFAULT_BASE_URL`]). `https://`, or `http://` to a
    /// loopback address only (a local stub), so the token never crosses a network in clear.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The domain of `Message-ID`s, `<message-id@domain>` (default: the sender's domain).
    #[must_use]
    pub fn message_id_domain(mut self, domain: impl Into<String>) -> Self {
        self.message_id_domain = Some(domain.into());
        self
    }

    /// The limit on one whole request (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The limit on connecting (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`PostmarkConfigError`] naming the field: an empty token or one that cannot be a header
    /// value, a sender or `reply_to` that is not an address, an empty or odd message stream,
    /// a base URL that is not `https://` (or `http://` to loopback) or has a query, a zero
    /// timeout.
    pub fn build(self) -> Result<PostmarkConfig, PostmarkConfigError> {
        let token = self.server_token.trim().to_owned();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PostmarkConfigError::new(
                "server_token",
                "must be a non-empty token of visible ASCII characters",
            ));
        }
        let (from_address, _) = invites_core::check_sender(
            &self.from,
            self.reply_to.as_deref(),
            invites_core::mailbox_address,
        )?;
        let stream = self.message_stream.trim().to_owned();
        if stream.is_empty()
            || !stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(PostmarkConfigError::new(
                "message_stream",
                "must be a stream id (letters, digits, '-', '_')",
            ));
        }
        let base_url = url::Url::parse(self.base_url.trim())
            .map_err(|_| PostmarkConfigError::new("base_url", "is not a URL"))?;
        let loopback = match base_url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        match base_url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(PostmarkConfigError::new(
                    "base_url",
                    "must be https:// (http:// only to a loopback address)",
                ));
            }
            _ => return Err(PostmarkConfigError::new("base_url", "must be https://")),
        }
        if base_url.query().is_some()
            || base_url.fragment().is_some()
            || !base_url.username().is_empty()
        {
            return Err(PostmarkConfigError::new(
                "base_url",
                "must not have a query, fragment or user",
            ));
        }
        let message_id_domain =
            invites_core::check_message_id_domain(self.message_id_domain, from_address.domain())?;
        if self.timeout.is_zero() {
            return Err(PostmarkConfigError::new(
                "timeout",
                "must be more than zero",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(PostmarkConfigError::new(
                "connect_timeout",
                "must be more than zero",
            ));
        }
        Ok(PostmarkConfig {
            server_token: token,
            from: self.from.trim().to_owned(),
            reply_to: self.reply_to.map(|r| r.trim().to_owned()),
            message_stream: stream,
            base_url,
            message_id_domain,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> PostmarkConfigBuilder {
        PostmarkConfig::builder("server-token-123", "Acme <invites@acme.test>")
    }

    #[test]
    fn defaults_and_redaction() {
        let c = ok().build().unwrap();
        assert_eq!(c.base_url(), "https://api.postmarkapp.com/");
        assert_eq!(c.message_stream(), "outbound");
        assert_eq!(c.message_id_domain(), "acme.test");
        assert!(!format!("{c:?}").contains("server-token-123"));
        assert!(!format!("{:?}", ok()).contains("server-token-123"));
    }

    #[test]
    fn every_field_is_checked() {
        let field = |b: PostmarkConfigBuilder| b.build().unwrap_err().field().to_owned();
        assert_eq!(
            field(PostmarkConfig::builder(" ", "a@b.test")),
            "server_token"
        );
        assert_eq!(
            field(PostmarkConfig::builder("a\nb", "a@b.test")),
            "server_token"
        );
        assert_eq!(field(PostmarkConfig::builder("t", "nobody")), "from");
        assert_eq!(field(PostmarkConfig::builder("t", "Ann <a@b.test")), "from");
        assert_eq!(field(ok().reply_to("x")), "reply_to");
        assert_eq!(field(ok().message_stream("")), "message_stream");
        assert_eq!(field(ok().message_stream("a b")), "message_stream");
        assert_eq!(field(ok().base_url("http://api.example.com")), "base_url");
        assert_eq!(field(ok().base_url("ftp://127.0.0.1")), "base_url");
        assert_eq!(field(ok().base_url("https://x.test/?a=1")), "base_url");
        assert_eq!(field(ok().base_url("not a url")), "base_url");
        assert_eq!(field(ok().message_id_domain("a b")), "message_id_domain");
        assert_eq!(field(ok().timeout(Duration::ZERO)), "timeout");
        for local in [
            "http://127.0.0.1:8080",
            "http://[::1]:9",
            "http://localhost:1",
        ] {
            assert!(ok().base_url(local).build().is_ok(), "{local}");
        }
        let e = PostmarkConfig::builder("secret tok", "a@b.test")
            .build()
            .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
