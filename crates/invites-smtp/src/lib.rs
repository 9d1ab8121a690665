//! SMTP mailer of the invites library.
//!
//! [`SmtpMailer`] implements the core's [`Mailer`](invites_core::Mailer) over
//! [lettre](https://lettre.rs)'s SMTP client: async on tokio, a pool of connections of its
//! own, STARTTLS or implicit TLS with rustls (the `ring` provider; system roots plus any
//! certificate you add), a connect timeout and one on the whole send. Each consolidated email
//! goes out as one `multipart/alternative` message (text and HTML) whose `Message-ID` is
//! derived from the stable message id, so a receiver can drop the duplicates that
//! at-least-once delivery allows.
//!
//! **Encryption by default.** The builder defaults to STARTTLS required, and so does an
//! `smtp://host` URL without `tls=`, unless the host is `localhost` or a loopback address
//! (a relay on the same machine, which seldom has a certificate for that name); plain SMTP
//! to another host only when asked for (`?tls=none`, [`Security::None`]), never with
//! credentials. The email carries an accept link, a bearer token: it must not cross a
//! network in clear by accident.
//!
//! **Connections.** A connection goes back to the pool only once the server answered the
//! whole message sent on it. A send that timed out, or whose future was dropped (an HTTP
//! client that went away during an inline send), closes its connection, so the next message
//! never reads the replies meant for another.
//!
//! **Timeouts.** The whole send is bounded (30 s by default); keep it well inside the
//! outbox's claim lease (60 s by default), or another worker may send the message again while
//! the first send still runs.
//!
//! Failures are classified in one function, [`classify`]: 4xx replies, timeouts, connection
//! and TLS failures are transient (the outbox retries with backoff); 5xx replies are
//! permanent for that message (the outbox marks it failed), and so is a non-ASCII address
//! the server cannot carry (no `SMTPUTF8`); a refused login is reported as
//! [`MailError::is_misconfigured`](invites_core::MailError::is_misconfigured) so a host can
//! alert. Error texts carry reply codes, never the server's free text or the recipient.
//!
//! Library code never reads the environment: the host passes the URL or values from its own
//! configuration.
//!
//! ```
//! use invites_smtp::{Security, SmtpConfig, SmtpMailer};
//!
//! // From a URL the host read from its configuration ...
//! let config = SmtpConfig::from_url("smtp://mailer:secret@smtp.example.com?tls=starttls")?
//!     .from("Acme <invites@acme.example>")
//!     .reply_to("support@acme.example")
//!     .build()?;
//! assert_eq!((config.port(), config.security()), (587, Security::StartTls));
//!
//! // ... or built in code.
//! let config = SmtpConfig::builder("smtp.example.com")
//!     .security(Security::ImplicitTls)
//!     .credentials("mailer", "secret")
//!     .from("invites@acme.example")
//!     .send_timeout(std::time::Duration::from_secs(20))
//!     .build()?;
//! let mailer = SmtpMailer::new(config)?; // connects on the first send
//! assert!(!format!("{mailer:?}").contains("secret"));
//!
//! // Without tls=, STARTTLS is required, except to this machine.
//! let remote = SmtpConfig::from_url("smtp://smtp.example.com")?.from("a@acme.example").build()?;
//! let local = SmtpConfig::from_url("smtp://localhost:2525")?.from("a@acme.example").build()?;
//! assert_eq!(remote.security(), Security::StartTls);
//! assert_eq!(local.security(), Security::None);
//!
//! // Bad values are typed errors naming the field: no credentials in clear.
//! let err = SmtpConfig::from_url("smtp://mailer:secret@smtp.example.com?tls=none")?
//!     .from("invites@acme.example")
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.field(), "credentials");
//! # Ok::<(), invites_smtp::SmtpConfigError>(())
//! ```

mod config;
mod mailer;
mod pool;

pub use config::{Security, SmtpConfig, SmtpConfigBuilder, SmtpConfigError};
pub use mailer::{SmtpError, SmtpErrorKind, SmtpMailer, classify};
