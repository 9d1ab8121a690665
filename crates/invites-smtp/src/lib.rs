//! SMTP mailer of the invites library.
//!
//! [`SmtpMailer`] implements the core's [`Mailer`](invites_core::Mailer) over
//! [lettre](https://lettre.rs): async on tokio, a connection pool, STARTTLS or implicit TLS
//! with rustls (the `ring` provider; system roots plus any certificate you add), a connect
//! timeout and one on the whole send. Each consolidated email goes out as one
//! `multipart/alternative` message (text and HTML) whose `Message-ID` is derived from the
//! stable message id, so a receiver can drop the duplicates that at-least-once delivery
//! allows.
//!
//! Failures are classified in one function, [`classify`]: 4xx replies, timeouts, connection
//! and TLS failures are transient (the outbox retries with backoff); 5xx replies are
//! permanent for that message (the outbox marks it failed); a refused login is reported as
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
//! // Bad values are typed errors naming the field.
//! let err = SmtpConfig::from_url("smtp://mailer:secret@smtp.example.com")?
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
