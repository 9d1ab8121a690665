//! [`SmtpMailer`]: builds the MIME message and sends it through a pooled lettre transport;
//! [`classify`] maps every failure to transient, permanent or misconfigured.

use crate::config::{Security, SmtpConfig, SmtpConfigError};
use async_trait::async_trait;
use invites_core::{EmailMessage, MailError, Mailer};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// A [`Mailer`] that sends each message over SMTP.
///
/// The message is `multipart/alternative` (text, then HTML) with the configured `From` and
/// `Reply-To`, the message's recipient as `To` (the bare checked address, no display name),
/// the rendered subject, and `Message-ID: <message-id@domain>` derived from the stable
/// [`MessageId`](invites_core::MessageId), so a receiver can drop the duplicates that
/// at-least-once delivery allows. Nothing else from the message reaches a header.
///
/// Connections are pooled and reused; the pool starts on the first send (inside the caller's
/// tokio runtime). Clones share the pool.
#[derive(Clone)]
pub struct SmtpMailer {
    inner: Arc<Inner>,
}

struct Inner {
    config: SmtpConfig,
    tls: Tls,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.inner.config.host)
            .field("port", &self.inner.config.port)
            .field("security", &self.inner.config.security)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `config`. Connects nothing yet.
    ///
    /// # Errors
    /// [`SmtpConfigError`] (field `tls`) if the TLS settings cannot be built.
    pub fn new(config: SmtpConfig) -> Result<Self, SmtpConfigError> {
        let tls = match config.security {
            Security::None => Tls::None,
            security => {
                let mut params = TlsParameters::builder(config.host.clone());
                for cert in &config.root_certificates {
                    params = params.add_root_certificate(cert.clone());
                }
                let params = params
                    .build_rustls()
                    .map_err(|_| SmtpConfigError::new("tls", "settings cannot be built"))?;
                if security == Security::ImplicitTls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        Ok(SmtpMailer {
            inner: Arc::new(Inner {
                config,
                tls,
                transport: OnceLock::new(),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SmtpConfig {
        &self.inner.config
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.inner.transport.get_or_init(|| {
            let c = &self.inner.config;
            let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
                .port(c.port)
                .tls(self.inner.tls.clone())
                .timeout(Some(c.timeout))
                .pool_config(
                    PoolConfig::new()
                        .max_size(c.pool_max_size)
                        .idle_timeout(c.pool_idle_timeout),
                );
            if let Some(login) = &c.login {
                b = b.credentials(Credentials::new(login.user.clone(), login.password.clone()));
            }
            if let Some(name) = &c.hello_name {
                b = b.hello_name(ClientId::Domain(name.clone()));
            }
            b.build()
        })
    }

    /// The MIME message for `message`.
    ///
    /// # Errors
    /// [`SmtpError`] of kind [`SmtpErrorKind::Rejected`] if the recipient or the message
    /// cannot be expressed (never for what the core produces).
    pub fn build_message(&self, message: &EmailMessage) -> Result<Message, SmtpError> {
        let c = &self.inner.config;
        let to: Address = message.to.as_str().parse().map_err(|_| {
            SmtpError::new(SmtpErrorKind::Rejected, "recipient is not an SMTP address")
        })?;
        let mut b = Message::builder()
            .from(c.from.clone())
            .to(Mailbox::new(None, to))
            .subject(one_line(&message.subject))
            .message_id(Some(format!("<{}@{}>", message.id, c.message_id_domain)));
        if let Some(reply_to) = &c.reply_to {
            b = b.reply_to(reply_to.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(
            message.text.clone(),
            message.html.clone(),
        ))
        .map_err(|_| SmtpError::new(SmtpErrorKind::Rejected, "message cannot be built"))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let mime = self.build_message(message).map_err(MailError::from)?;
        let sending = self.transport().send(mime);
        match tokio::time::timeout(self.inner.config.send_timeout, sending).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e).into()),
            Err(_) => {
                Err(SmtpError::new(SmtpErrorKind::Transient, "timed out (whole send)").into())
            }
        }
    }
}

/// How an SMTP failure counts for the outbox.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum SmtpErrorKind {
    /// A retry may pass: a 4xx reply, a timeout, a refused or dropped connection, a TLS
    /// handshake that failed.
    Transient,
    /// This message will never pass: a 5xx reply to it or its recipient.
    Rejected,
    /// Every message will fail until the configuration is fixed: the server refused the
    /// credentials (a 5xx reply to `AUTH`, 530/534/535/538) or requires a login none was
    /// configured for.
    Misconfigured,
}

/// A failed SMTP send. Its text names the class, the reply code and the enhanced status code
/// when there is one, never the server's free text (which may quote the recipient).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("SMTP {what}")]
pub struct SmtpError {
    kind: SmtpErrorKind,
    what: String,
    code: Option<u16>,
}

impl SmtpError {
    fn new(kind: SmtpErrorKind, what: impl Into<String>) -> Self {
        SmtpError {
            kind,
            what: what.into(),
            code: None,
        }
    }

    /// How it counts.
    pub fn kind(&self) -> SmtpErrorKind {
        self.kind
    }

    /// The server's reply code, when the server answered.
    pub fn reply_code(&self) -> Option<u16> {
        self.code
    }

    /// Whether the fault is the configuration (credentials), for alerting.
    pub fn is_misconfigured(&self) -> bool {
        self.kind == SmtpErrorKind::Misconfigured
    }
}

impl From<SmtpError> for MailError {
    fn from(e: SmtpError) -> Self {
        match e.kind {
            SmtpErrorKind::Transient => MailError::transient(e),
            SmtpErrorKind::Rejected => MailError::permanent(e),
            SmtpErrorKind::Misconfigured => MailError::misconfigured(e),
        }
    }
}

/// The one place SMTP failures are classified: 4xx replies, timeouts, connection and TLS
/// failures are transient; 5xx replies are permanent for the message, except the
/// authentication replies (530, 534, 535, 538), which say the configuration is wrong.
pub fn classify(e: &smtp::Error) -> SmtpError {
    if let Some(code) = e.status() {
        let n = u16::from(code);
        let kind = if e.is_transient() {
            SmtpErrorKind::Transient
        } else if matches!(n, 530 | 534 | 535 | 538) {
            SmtpErrorKind::Misconfigured
        } else {
            SmtpErrorKind::Rejected
        };
        let enhanced = enhanced_status(e);
        let what = match kind {
            SmtpErrorKind::Transient => "temporary failure",
            SmtpErrorKind::Rejected => "permanent rejection",
            SmtpErrorKind::Misconfigured => "authentication refused",
        };
        return SmtpError {
            kind,
            what: format!("{n}{enhanced} {what}"),
            code: Some(n),
        };
    }
    let io_kind = io_error_kind(e);
    let (kind, what) = if e.is_timeout() {
        (SmtpErrorKind::Transient, "timed out".to_owned())
    } else if e.is_tls() || io_kind == Some(std::io::ErrorKind::InvalidData) {
        // rustls reports an untrusted certificate or a failed handshake as invalid data.
        (
            SmtpErrorKind::Transient,
            "TLS failed (certificate not trusted or handshake refused)".to_owned(),
        )
    } else if e.is_client() {
        // lettre refuses before sending, e.g. no common AUTH mechanism or STARTTLS missing.
        (
            SmtpErrorKind::Misconfigured,
            "client refused to go on (TLS or AUTH not offered)".to_owned(),
        )
    } else if e.is_response() {
        (
            SmtpErrorKind::Transient,
            "unreadable server reply".to_owned(),
        )
    } else {
        let why = io_kind.map_or_else(String::new, |k| format!(" ({k})"));
        (SmtpErrorKind::Transient, format!("connection failed{why}"))
    };
    SmtpError::new(kind, what)
}

/// The kind of the first I/O error in the chain.
fn io_error_kind(e: &smtp::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = err.source();
    }
    None
}

/// ` (5.1.1)` when the reply text starts with an RFC 3463 enhanced status code.
fn enhanced_status(e: &smtp::Error) -> String {
    use std::error::Error as _;
    let Some(text) = e.source().map(ToString::to_string) else {
        return String::new();
    };
    let word = text.split_whitespace().next().unwrap_or("");
    let parts: Vec<&str> = word.split('.').collect();
    let ok = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        format!(" ({word})")
    } else {
        String::new()
    }
}

/// The subject as one line, whatever a host's renderer produced (the core already does this;
/// a header is the one place a stray line break would do harm).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
