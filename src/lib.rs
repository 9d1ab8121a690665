//! Invite one user to many websites or groups in one request — correctly, quickly, safely,
//! with pluggable storage.
//!
//! This facade re-exports [`invites_core`] (the rules and ports) and, behind additive
//! features, the backends: `memory` ([`memory::MemoryStore`]) and `sqlite`
//! ([`sqlite::SqliteStore`], SQLite compiled in), both on by default; the mail transports, off
//! by default: `smtp` (`invites::smtp::SmtpMailer`, lettre) and `postmark`
//! (`invites::postmark::PostmarkMailer`, Postmark's HTTP API), both on rustls with `ring`;
//! `axum` (off by default), the HTTP API, `invites::axum`; `postgres` (off by default),
//! `invites::postgres::PgStore` for many app servers on one shared database; and `webhooks`
//! (off by default), `invites::webhooks`: delivering the event log as Standard Webhooks.
//!
//! ```
//! use invites::prelude::*;
//! use invites::memory::{MemoryStore, RecordingMailer};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let org = OrganizationId(uuid::Uuid::from_u128(1));
//! let site = WebsiteId(uuid::Uuid::from_u128(2));
//! store.create_organization(org, "Acme").await.unwrap();
//! store.create_website(&Website { id: site, organization: org, name: "Shop".into(), url: "https://shop.example".into() })
//!     .await
//!     .unwrap();
//!
//! let service = InviteService::new(
//!     Arc::new(store),
//!     Arc::new(RecordingMailer::new_ok()),
//!     InviteConfig::new("https://app.example/accept").unwrap(),
//! );
//! let key = Principal::global(org, ApiKeyId(uuid::Uuid::from_u128(3)));
//! let body = format!(r#"{{"invite_method":"direct","email":"ann@example.com","website_ids":["{site}"]}}"#);
//! let response = service.bulk_invite(&key, BulkInviteRequest::from_json(body.as_bytes()).unwrap()).await.unwrap();
//! assert_eq!(response.results[0].code, OutcomeCode::Added);
//! assert!(response.user_created);
//! # });
//! ```

pub use invites_core as core;

/// Everything a host usually needs, in one import.
pub mod prelude {
    pub use invites_core::{
        ApiKeyId, BulkInviteRequest, BulkInviteResponse, Directory, EmailMessage, EmailStatus,
        ErrorCode, GroupId, InviteConfig, InviteError, InviteMethod, InviteService, Mailer,
        MembershipStore, OrganizationId, OutcomeCode, Principal, Role, UserId, Website, WebsiteId,
    };
}

/// The in-memory backend, with the recording mailer that goes with it in examples and
/// prototypes (`invites_core::RecordingMailer`).
#[cfg(feature = "memory")]
pub mod memory {
    pub use invites_core::{MailerMode, RecordingMailer};
    pub use invites_memory::MemoryStore;
}

/// The SQLite backend.
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use invites_sqlite::*;
}

/// The SMTP mailer: [`invites_smtp`].
#[cfg(feature = "smtp")]
pub mod smtp {
    pub use invites_smtp::*;
}

/// The Postmark mailer: [`invites_postmark`].
#[cfg(feature = "postmark")]
pub mod postmark {
    pub use invites_postmark::*;
}

/// Webhooks (feature `webhooks`, off by default): [`invites_webhooks`], the Standard Webhooks
/// signature and the rules for where a webhook may be sent.
#[cfg(feature = "webhooks")]
pub mod webhooks {
    pub use invites_webhooks::*;
}

/// The PostgreSQL backend (feature `postgres`, off by default): for hosts that run many app
/// servers on one shared database. See the README, "PostgreSQL".
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use invites_postgres::{
        ConnectError, Migrated, OptionError, PgOptions, PgStore, SchemaMismatch, deadpool_postgres,
    };
}

/// The README's Rust snippets compile (they are doctests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "tokio")]
pub mod delivery;

/// The HTTP API: an axum router, its JSON errors and its OpenAPI document (feature `axum`).
#[cfg(feature = "axum")]
pub mod axum {
    pub use invites_axum::*;
}
