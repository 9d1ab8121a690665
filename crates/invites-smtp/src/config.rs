//! [`SmtpConfig`]: where and how to connect, who the mail is from; built with
//! [`SmtpConfigBuilder`], from code or from a URL the host passes.

use lettre::message::Mailbox;
use lettre::transport::smtp::client::Certificate;
use std::fmt;
use std::time::Duration;

/// How the connection is secured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Security {
    /// TLS from the first byte (`smtps://`, usually port 465).
    ImplicitTls,
    /// Plain connection upgraded with `STARTTLS`, which the server must offer: the mailer
    /// refuses to go on without it (usually port 587). The builder's default, and what
    /// `smtp://host` means for any host but a loopback one (`?tls=starttls` says it outright).
    StartTls,
    /// No encryption: accept links (bearer tokens) and everything else cross the network in
    /// clear. Only for a relay on the same host, which is what `smtp://localhost` or
    /// `smtp://127.0.0.1` mean without `tls=`, or when asked for (`smtp://host?tls=none`,
    /// `.security(Security::None)`). Credentials are refused with it.
    None,
}

impl Security {
    /// The usual port for this security.
    pub fn default_port(self) -> u16 {
        match self {
            Security::ImplicitTls => 465,
            Security::StartTls => 587,
            Security::None => 25,
        }
    }
}

/// A configuration value that cannot be used: names the field and why. Never echoes a
/// password.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("invalid SMTP configuration: {field} {reason}")]
pub struct SmtpConfigError {
    field: String,
    reason: String,
}

impl SmtpConfigError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SmtpConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The offending field (`url`, `from`, `credentials`, `root_certificate[0]`, ...).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Why, in words.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl From<invites_core::SenderError> for SmtpConfigError {
    fn from(e: invites_core::SenderError) -> Self {
        SmtpConfigError::new(e.field(), e.reason())
    }
}

/// A user name and password for `AUTH`. The password never reaches `Debug` or errors.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A checked SMTP configuration; make one with [`SmtpConfig::builder`] or
/// [`SmtpConfig::from_url`].
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) security: Security,
    pub(crate) login: Option<Login>,
    pub(crate) from: Mailbox,
    pub(crate) reply_to: Option<Mailbox>,
    pub(crate) message_id_domain: String,
    pub(crate) timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) pool_max_size: u32,
    pub(crate) pool_idle_timeout: Duration,
    pub(crate) root_certificates: Vec<Certificate>,
    pub(crate) hello_name: Option<String>,
}

impl SmtpConfig {
    /// A builder for a server at `host`, [`Security::StartTls`] on port 587 unless changed.
    pub fn builder(host: impl Into<String>) -> SmtpConfigBuilder {
        SmtpConfigBuilder {
            host: host.into(),
            port: None,
            security: Security::StartTls,
            login: None,
            from: None,
            reply_to: None,
            message_id_domain: None,
            timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            pool_max_size: 4,
            pool_idle_timeout: Duration::from_secs(60),
            root_certificates: Vec::new(),
            hello_name: None,
        }
    }

    /// A builder from a URL the host read from its own configuration:
    ///
    /// - `smtps://[user[:password]@]host[:port]`: implicit TLS, port 465 by default;
    /// - `smtp://[user[:password]@]host[:port]`: STARTTLS required, port 587 (the same as
    ///   `?tls=starttls`, also spelled `?tls=required`);
    /// - `smtp://host[:port]` where host is `localhost` or a loopback address (127.0.0.0/8,
    ///   `[::1]`): no encryption, port 25, no credentials (`?tls=starttls` asks for STARTTLS);
    /// - `smtp://host[:port]?tls=none`: no encryption to any host, port 25, no credentials,
    ///   only when asked for like this.
    ///
    /// So a URL without `tls=` never sends accept links (bearer tokens) in clear beyond this
    /// machine.
    ///
    /// User and password are percent-decoded. The sender is not part of the URL: set it with
    /// [`SmtpConfigBuilder::from`].
    ///
    /// # Errors
    /// [`SmtpConfigError`] naming `url` (and what is wrong with it) for anything else: another
    /// scheme, a path, an unknown query parameter, a `tls` other than `starttls`, `required`
    /// or `none`, `tls` on `smtps://`, a bad port. Credentials with no encryption are refused
    /// by [`SmtpConfigBuilder::build`], naming `credentials`.
    pub fn from_url(url: &str) -> Result<SmtpConfigBuilder, SmtpConfigError> {
        let bad = |reason: &str| SmtpConfigError::new("url", reason);
        let parsed =
            url::Url::parse(url).map_err(|e| SmtpConfigError::new("url", e.to_string()))?;
        let implicit_tls = match parsed.scheme() {
            "smtps" => true,
            "smtp" => false,
            _ => return Err(bad("must start with smtp:// or smtps://")),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("has no host"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        if !matches!(parsed.path(), "" | "/") {
            return Err(bad("must not have a path"));
        }
        if parsed.fragment().is_some() {
            return Err(bad("must not have a fragment"));
        }
        let mut asked: Option<Security> = None;
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "tls" if implicit_tls => {
                    return Err(bad("takes no tls parameter with smtps:// (always TLS)"));
                }
                "tls" => {
                    asked = Some(match value.as_ref() {
                        "starttls" | "required" => Security::StartTls,
                        "none" => Security::None,
                        _ => return Err(bad("has tls= other than starttls or none")),
                    });
                }
                _ => return Err(bad("has an unknown query parameter (only tls is known)")),
            }
        }
        let security = match asked {
            _ if implicit_tls => Security::ImplicitTls,
            Some(security) => security,
            None if is_loopback(&host) => Security::None,
            None => Security::StartTls,
        };
        let mut builder = SmtpConfig::builder(host).security(security);
        if let Some(port) = parsed.port() {
            builder = builder.port(port);
        }
        if !parsed.username().is_empty() {
            let decode = |s: &str, what: &str| {
                percent_decode(s).ok_or_else(|| bad(&format!("has a {what} that is not UTF-8")))
            };
            let user = decode(parsed.username(), "user name")?;
            let password = decode(parsed.password().unwrap_or(""), "password")?;
            builder = builder.credentials(user, password);
        } else if parsed.password().is_some() {
            return Err(bad("has a password without a user name"));
        }
        Ok(builder)
    }

    /// The server's host name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the connection is secured.
    pub fn security(&self) -> Security {
        self.security
    }

    /// The `From` of every message.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// The domain of every `Message-ID`.
    pub fn message_id_domain(&self) -> &str {
        &self.message_id_domain
    }

    /// The limit on one whole send (see [`SmtpConfigBuilder::send_timeout`]).
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }
}

/// Builds an [`SmtpConfig`]; every value is checked in [`SmtpConfigBuilder::build`].
#[derive(Clone, Debug)]
pub struct SmtpConfigBuilder {
    host: String,
    port: Option<u16>,
    security: Security,
    login: Option<Login>,
    from: Option<String>,
    reply_to: Option<String>,
    message_id_domain: Option<String>,
    timeout: Duration,
    send_timeout: Duration,
    pool_max_size: u32,
    pool_idle_timeout: Duration,
    root_certificates: Vec<Vec<u8>>,
    hello_name: Option<String>,
}

impl SmtpConfigBuilder {
    /// The port (default: [`Security::default_port`]).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How the connection is secured (default [`Security::StartTls`]).
    #[must_use]
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Logs in with `AUTH` (PLAIN or LOGIN, whichever the server offers); only over TLS.
    #[must_use]
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.login = Some(Login {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// The sender of every message, as an address or `Name <address>` (required).
    #[must_use]
    pub fn from(mut self, mailbox: impl Into<String>) -> Self {
        self.from = Some(mailbox.into());
        self
    }

    /// A `Reply-To` for every message.
    #[must_use]
    pub fn reply_to(mut self, mailbox: impl Into<String>) -> Self {
        self.reply_to = Some(mailbox.into());
        self
    }

    /// The domain of `Message-ID`s, `<message-id@domain>` (default: the sender's domain).
    #[must_use]
    pub fn message_id_domain(mut self, domain: impl Into<String>) -> Self {
        self.message_id_domain = Some(domain.into());
        self
    }

    /// The limit on opening a TCP connection (default 10 s); also bounds the `QUIT` said to
    /// a connection the pool lets go.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The limit on one whole send: checking a pooled connection or connecting, TLS, every
    /// command and the data (default 30 s). A server that stops answering mid-conversation
    /// is cut off here, the failure is transient, and the connection is closed (never
    /// reused).
    ///
    /// A send must end well within the outbox's claim lease
    /// ([`DeliveryPolicy::lease`](invites_core::DeliveryPolicy::lease), 60 s by default): once the lease runs out, another worker may
    /// claim the same message and send it again while this send still runs. Keep this below
    /// the lease you configure, with room for the store's own work.
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Most idle connections kept open in the pool for later sends (default 4). Sends running
    /// at once each use their own connection, so more may be open for a while; the extra
    /// ones are closed when their send is done.
    #[must_use]
    pub fn pool_max_size(mut self, size: u32) -> Self {
        self.pool_max_size = size;
        self
    }

    /// How long an unused pooled connection stays open before it is closed with `QUIT`
    /// (default 60 s).
    #[must_use]
    pub fn pool_idle_timeout(mut self, idle: Duration) -> Self {
        self.pool_idle_timeout = idle;
        self
    }

    /// Trusts this PEM certificate as a root, besides the system's (a private CA, or a
    /// self-signed server certificate in tests).
    #[must_use]
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// The name sent with `EHLO` (default: this machine's host name).
    #[must_use]
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`SmtpConfigError`] naming the field: an empty or malformed host, a missing or invalid
    /// `from`, an invalid `reply_to` or `message_id_domain`, credentials without TLS, a zero
    /// timeout or pool size, a PEM without a certificate.
    pub fn build(self) -> Result<SmtpConfig, SmtpConfigError> {
        let host = self.host.trim().to_owned();
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(SmtpConfigError::new(
                "host",
                "must be a host name or address",
            ));
        }
        let from = self
            .from
            .as_deref()
            .ok_or_else(|| SmtpConfigError::new("from", "is required"))?;
        let (from, reply_to) = invites_core::check_sender(from, self.reply_to.as_deref(), |s| {
            s.parse::<Mailbox>().ok()
        })?;
        let message_id_domain =
            invites_core::check_message_id_domain(self.message_id_domain, from.email.domain())?;
        if self.login.is_some() && self.security == Security::None {
            return Err(SmtpConfigError::new(
                "credentials",
                "need TLS: use smtps:// or ?tls=starttls (Security::ImplicitTls or StartTls)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(SmtpConfigError::new(
                "connect_timeout",
                "must be more than zero",
            ));
        }
        if self.send_timeout.is_zero() {
            return Err(SmtpConfigError::new(
                "send_timeout",
                "must be more than zero",
            ));
        }
        if self.pool_max_size == 0 {
            return Err(SmtpConfigError::new("pool_max_size", "must be at least 1"));
        }
        let mut root_certificates = Vec::new();
        for (i, pem) in self.root_certificates.iter().enumerate() {
            let field = format!("root_certificate[{i}]");
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(SmtpConfigError::new(field, "holds no PEM certificate"));
            }
            let cert = Certificate::from_pem(pem)
                .map_err(|_| SmtpConfigError::new(field, "is not a valid PEM certificate"))?;
            root_certificates.push(cert);
        }
        if let Some(name) = &self.hello_name
            && (name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()))
        {
            return Err(SmtpConfigError::new("hello_name", "must be one word"));
        }
        Ok(SmtpConfig {
            port: self.port.unwrap_or(self.security.default_port()),
            host,
            security: self.security,
            login: self.login,
            from,
            reply_to,
            message_id_domain,
            timeout: self.timeout,
            send_timeout: self.send_timeout,
            pool_max_size: self.pool_max_size,
            pool_idle_timeout: self.pool_idle_timeout,
            root_certificates,
            hello_name: self.hello_name,
        })
    }
}

/// Whether `host` names this machine: `localhost` or a loopback address (127.0.0.0/8, `::1`,
/// or 127.0.0.0/8 mapped into IPv6). Only these get plain SMTP without asking.
fn is_loopback(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> Result<SmtpConfig, SmtpConfigError> {
        SmtpConfig::from_url(u)?
            .from("Acme <invites@acme.test>")
            .build()
    }

    #[test]
    fn url_forms() {
        let c = url("smtps://mail.acme.test").unwrap();
        assert_eq!((c.security, c.port), (Security::ImplicitTls, 465));
        let c = url("smtp://mail.acme.test?tls=starttls").unwrap();
        assert_eq!((c.security, c.port), (Security::StartTls, 587));
        let c = url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((c.security, c.port), (Security::None, 2525));
        assert_eq!(c.host, "127.0.0.1");
        let c = url("smtp://[::1]:2525?tls=none").unwrap();
        assert_eq!(c.host, "::1");
        let c = url("smtps://ann%40acme.test:p%40ss%3Aw%2Frd@mail.acme.test:2465").unwrap();
        let login = c.login.clone().unwrap();
        assert_eq!(login.user, "ann@acme.test");
        assert_eq!(login.password, "p@ss:w/rd");
        assert_eq!(c.port, 2465);
        assert_eq!(c.message_id_domain, "acme.test");
        assert!(!format!("{c:?}").contains("p@ss"), "no password in Debug");
    }

    /// Without `tls=`, `smtp://` means STARTTLS required, except to a loopback host, where a
    /// local relay usually has no certificate for its name; `tls=none` asks for plain anywhere.
    #[test]
    fn smtp_urls_default_to_starttls_except_on_loopback() {
        for u in [
            "smtp://mail.acme.test",
            "smtp://MAIL.acme.test:2525",
            "smtp://10.1.2.3",
            "smtp://[2001:db8::1]",
            "smtp://localhost.acme.test",
            "smtp://127.0.0.1.acme.test",
        ] {
            let c = url(u).unwrap();
            assert_eq!(c.security, Security::StartTls, "{u}");
        }
        assert_eq!(url("smtp://mail.acme.test").unwrap().port, 587);
        let c = url("smtp://ann:pw@mail.acme.test").unwrap();
        assert_eq!(c.security, Security::StartTls);
        assert!(c.login.is_some(), "credentials are fine over STARTTLS");

        for u in [
            "smtp://127.0.0.1",
            "smtp://127.8.9.10:2525",
            "smtp://localhost",
            "smtp://LocalHost:2525",
            "smtp://localhost.",
            "smtp://[::1]",
            "smtp://[::ffff:127.0.0.1]",
        ] {
            let c = url(u).unwrap();
            assert_eq!(c.security, Security::None, "{u}");
        }
        assert_eq!(url("smtp://localhost").unwrap().port, 25);

        let c = url("smtp://mail.acme.test?tls=none").unwrap();
        assert_eq!((c.security, c.port), (Security::None, 25), "asked for");
        let c = url("smtp://localhost:2525?tls=starttls").unwrap();
        assert_eq!(c.security, Security::StartTls, "asked for");
    }

    #[test]
    fn a_send_ends_well_within_the_outbox_lease_by_default() {
        let c = SmtpConfig::builder("mail.acme.test")
            .from("invites@acme.test")
            .build()
            .unwrap();
        assert_eq!(c.send_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn bad_urls_name_the_field_and_reason() {
        for (u, reason) in [
            ("http://mail.acme.test", "smtp://"),
            ("smtp://", "host"),
            ("smtp://mail.acme.test/inbox", "path"),
            ("smtp://mail.acme.test?tls=maybe", "tls="),
            ("smtp://mail.acme.test?pool=3", "unknown query"),
            ("smtps://mail.acme.test?tls=none", "smtps://"),
            ("smtp://mail.acme.test:99999", "port"),
            // Plain by default to a loopback host, and plain takes no credentials.
            ("smtp://ann:secret-pw@localhost", "need TLS"),
            ("smtp://ann:secret-pw@mail.acme.test?tls=none", "need TLS"),
        ] {
            let e = url(u).unwrap_err();
            assert!(e.field() == "url" || e.field() == "credentials", "{u}: {e}");
            assert!(e.to_string().contains(reason), "{u}: {e}");
            assert!(!e.to_string().contains("secret-pw"), "{e}");
        }
    }

    #[test]
    fn builder_checks_every_field() {
        let ok = || SmtpConfig::builder("mail.acme.test").from("invites@acme.test");
        assert!(ok().build().is_ok());
        let field = |b: SmtpConfigBuilder| b.build().unwrap_err().field().to_owned();
        assert_eq!(field(SmtpConfig::builder("mail.acme.test")), "from");
        assert_eq!(field(ok().from("not an address")), "from");
        assert_eq!(field(ok().reply_to("x@")), "reply_to");
        assert_eq!(field(ok().message_id_domain("a>b")), "message_id_domain");
        assert_eq!(field(SmtpConfig::builder(" ").from("a@b.test")), "host");
        assert_eq!(
            field(ok().connect_timeout(Duration::ZERO)),
            "connect_timeout"
        );
        assert_eq!(field(ok().send_timeout(Duration::ZERO)), "send_timeout");
        assert_eq!(field(ok().pool_max_size(0)), "pool_max_size");
        assert_eq!(
            field(ok().add_root_certificate_pem("nothing here")),
            "root_certificate[0]"
        );
        assert_eq!(
            field(ok().security(Security::None).credentials("u", "p")),
            "credentials"
        );
        assert_eq!(field(ok().hello_name("two words")), "hello_name");
        let c = ok()
            .reply_to("Support <help@acme.test>")
            .message_id_domain("mail.acme.test")
            .build()
            .unwrap();
        assert_eq!(c.message_id_domain(), "mail.acme.test");
        assert_eq!(c.port(), 587);
    }
}
