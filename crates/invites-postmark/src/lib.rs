//! Postmark mailer of the invites library.
//!
//! [`PostmarkMailer`] implements the core's [`Mailer`](invites_core::Mailer) with Postmark's
//! `POST /email`: one request per consolidated email, text and HTML bodies, our stable
//! `Message-ID` in `Headers` and our message id in `Metadata`, link and open tracking off
//! (the accept link is a secret). The HTTP client is reqwest on rustls with the `ring`
//! provider; the base URL is configurable (a local stub in tests).
//!
//! Postmark's documented answers are classified in one function, [`classify`]: 429 and 5xx
//! are transient and honour `Retry-After` (the outbox waits at least that long, within its
//! policy); `ErrorCode` 406 (inactive recipient) and 300 (invalid request) are permanent for
//! the message; a bad token or an account problem (HTTP 401, `ErrorCode` 10, 400, 401, 405,
//! 412, 413, ...) is permanent too but reported distinctly, as
//! [`MailError::is_misconfigured`](invites_core::MailError::is_misconfigured) and
//! [`PostmarkError::is_account_problem`], so a host can alert. Error texts never carry
//! Postmark's free text (it quotes addresses) or the token.
//!
//! Library code never reads the environment (nor proxy variables): the host passes the token
//! from its own configuration.
//!
//! ```
//! use invites_postmark::{PostmarkConfig, PostmarkMailer};
//!
//! let config = PostmarkConfig::builder("server-token-from-your-config", "Acme <invites@acme.example>")
//!     .reply_to("support@acme.example")
//!     .message_stream("outbound")
//!     .build()?;
//! let mailer = PostmarkMailer::new(config)?;
//! assert_eq!(mailer.endpoint(), "https://api.postmarkapp.com/email");
//! assert!(!format!("{mailer:?}").contains("server-token"));
//!
//! // Bad values are typed errors naming the field; the token stays out of them.
//! let err = PostmarkConfig::builder("t", "Acme <invites@acme.example>")
//!     .base_url("http://api.example.com")
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.field(), "base_url");
//! # Ok::<(), invites_postmark::PostmarkConfigError>(())
//! ```

mod config;
mod mailer;

pub use config::{DEFAULT_BASE_URL, PostmarkConfig, PostmarkConfigBuilder, PostmarkConfigError};
pub use mailer::{PostmarkError, PostmarkErrorKind, PostmarkMailer, classify};
