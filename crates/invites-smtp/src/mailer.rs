//! [`SmtpMailer`]: builds the MIME message and sends it over a pooled connection (see
//! `pool.rs`); [`classify`] maps every failure to transient, permanent or misconfigured.

use crate::config::{Security, SmtpConfig, SmtpConfigError};
use crate::pool::{Connector, Pool};
use async_trait::async_trait;
use invites_core::{EmailMessage, MailError, Mailer};
use lettre::address::Envelope;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::extension::{Extension, ServerInfo};
use lettre::transport::smtp::{self};
use lettre::{Address, Message};
use std::fmt;
use std::sync::Arc;

/// A [`Mailer`] that sends each message over SMTP.
///
/// The message is `multipart/alternative` (text, then HTML) with the configured `From` and
/// `Reply-To`, the message's recipient as `To` (the bare checked address, no display name),
/// the rendered subject, and `Message-ID: <message-id@domain>` derived from the stable
/// [`MessageId`](invites_core::MessageId), so a receiver can drop the duplicates that
/// at-least-once delivery allows. Nothing else from the message reaches a header.
///
/// Connections are pooled (see the crate docs: one is reused only after the server answered
/// the whole message sent on it) and open on the first send, inside the caller's tokio
/// runtime. Clones share the pool.
#[derive(Clone)]
pub struct SmtpMailer {
    inner: Arc<Inner>,
}

struct Inner {
    config: SmtpConfig,
    pool: Pool,
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
            Security::None => None,
            Security::StartTls | Security::ImplicitTls => {
                let mut params = TlsParameters::builder(config.host.clone());
                for cert in &config.root_certificates {
                    params = params.add_root_certificate(cert.clone());
                }
                Some(
                    params
                        .build_rustls()
                        .map_err(|_| SmtpConfigError::new("tls", "settings cannot be built"))?,
                )
            }
        };
        let pool = Pool::new(Connector::new(&config, tls), &config);
        Ok(SmtpMailer {
            inner: Arc::new(Inner { config, pool }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SmtpConfig {
        &self.inner.config
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
    /// The whole-send timeout ([`SmtpConfig::send_timeout`]): the outbox starts a send only
    /// with this much of its claim's lease left.
    fn send_timeout(&self) -> Option<std::time::Duration> {
        Some(self.inner.config.send_timeout)
    }

    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let mime = self.build_message(message).map_err(MailError::from)?;
        let envelope = mime.envelope().clone();
        let email = mime.formatted();
        // On the timeout the send's future is dropped, and with it its connection (closed,
        // never back in the pool).
        let sending = self.inner.pool.send(&envelope, &email);
        match tokio::time::timeout(self.inner.config.send_timeout, sending).await {
            Ok(result) => result.map_err(MailError::from),
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
    /// This message will never pass: a 5xx reply to it or its recipient, or a message this
    /// server cannot carry (a non-ASCII address to a server without `SMTPUTF8`), which is
    /// no fault of the account.
    Rejected,
    /// The sender's fault, not the message's: every message would fail the same way. The
    /// server refused the credentials (a 5xx reply to `AUTH`, 530/534/535/538), requires a
    /// login none was configured for, or refused the sender before any recipient was named (a
    /// 5xx at the greeting, `EHLO` or `MAIL FROM`, save 552: a blocklist, a daily quota, an
    /// address the account may not send from). The outbox pauses delivery on it and keeps the
    /// messages queued.
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

    /// A permanent reply `code` to the sender before any recipient was named (the greeting,
    /// `EHLO`, `MAIL FROM`): a blocklist, a quota, an address the account may not use.
    pub(crate) fn sender_refused(code: u16, stage: &str) -> Self {
        SmtpError {
            kind: SmtpErrorKind::Misconfigured,
            what: format!("{code} permanent refusal of the sender {stage}"),
            code: Some(code),
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

/// The one place lettre's SMTP failures are classified: 4xx replies, timeouts, connection and
/// TLS failures are transient; 5xx replies are permanent for the message, except the
/// authentication replies (530, 534, 535, 538), which say the configuration is wrong; lettre
/// refusing to go on (no `STARTTLS` offered where it is required, no common `AUTH` mechanism)
/// is the configuration's fault too. A message the server cannot carry is told apart before
/// anything is sent (permanent for that message), so it never reaches this function.
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

/// Refuses, before any command, a message this server cannot carry, as permanent for this
/// message alone: an address with non-ASCII characters (a UTF-8 local part) when the
/// server does not offer `SMTPUTF8` (RFC 6531), or 8-bit content without `8BITMIME`. lettre
/// would refuse the same with an error of the kind it also uses for a missing `STARTTLS`,
/// which reads as the account's fault.
pub(crate) fn cannot_carry(
    info: &ServerInfo,
    envelope: &Envelope,
    email: &[u8],
) -> Option<SmtpError> {
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_address && !info.supports_feature(Extension::SmtpUtfEight) {
        return Some(SmtpError::new(
            SmtpErrorKind::Rejected,
            "permanent rejection: a non-ASCII address needs SMTPUTF8, which the server does not offer",
        ));
    }
    if !email.is_ascii() && !info.supports_feature(Extension::EightBitMime) {
        return Some(SmtpError::new(
            SmtpErrorKind::Rejected,
            "permanent rejection: 8-bit content needs 8BITMIME, which the server does not offer",
        ));
    }
    None
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
