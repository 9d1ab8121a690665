//! Core of the invites library: invite one user (by email) to many websites or groups in one
//! request, correctly, with pluggable storage.
//!
//! This crate owns every rule: request parsing and validation ([`BulkInviteRequest`]),
//! authorization ([`Principal`]), per-target outcomes in request order ([`BulkInviteResponse`]),
//! expiry, accept tokens (256 random bits, stored only as SHA-256), the consolidated email
//! ([`DefaultRenderer`]), the outbox with retries, the invitation lifecycle and idempotency —
//! all in [`InviteService`]. It reaches the world only through ports: [`MembershipStore`]
//! (storage, in five parts with their contracts: [`BulkStore`], [`LifecycleStore`],
//! [`OutboxStore`], [`IdempotencyStore`], [`ReadStore`]; what the facts a store reads mean is
//! decided in [`rules`]), [`Mailer`], [`Clock`] and
//! [`RandomSource`]. It depends on no storage crate and no async runtime.
//!
//! ```
//! use invites_core::*;
//! use invites_memory::MemoryStore;
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // A backend (here in memory) with one organization and two websites.
//! let store = MemoryStore::new();
//! let org = OrganizationId(uuid::Uuid::from_u128(1));
//! store.create_organization(org, "Acme").await.unwrap();
//! let sites = [WebsiteId(uuid::Uuid::from_u128(2)), WebsiteId(uuid::Uuid::from_u128(3))];
//! for (i, id) in sites.iter().enumerate() {
//!     let site = Website { id: *id, organization: org, name: format!("Site {i}"), url: format!("https://s{i}.example") };
//!     store.create_website(&site).await.unwrap();
//! }
//!
//! let mailer = RecordingMailer::new_ok();
//! let service = InviteService::new(
//!     Arc::new(store.clone()),
//!     Arc::new(mailer.clone()),
//!     InviteConfig::new("https://app.example/invites/accept").unwrap(),
//! );
//! let key = Principal::global(org, ApiKeyId(uuid::Uuid::from_u128(9)));
//!
//! // The JSON body of POST /api/v1/invites/bulk.
//! let body = format!(
//!     r#"{{"invite_method": "email", "email": "Ann@Example.com", "role": "admin",
//!         "website_ids": ["{}", "{}"]}}"#,
//!     sites[0], sites[1]
//! );
//! let request = BulkInviteRequest::from_json(body.as_bytes()).unwrap();
//! let response = service.bulk_invite(&key, request).await.unwrap();
//! assert_eq!(response.summary.succeeded, 2);
//! assert_eq!(response.email.unwrap().status, EmailStatus::Sent);
//!
//! // One consolidated email with one accept link; accepting it creates the memberships.
//! let mail = &mailer.sent()[0];
//! let token = mail.text.split("token=").nth(1).unwrap()[..64].to_owned();
//! let accepted = service.accept(&token, None).await.unwrap();
//! assert!(accepted.results.iter().all(|r| r.result.code == OutcomeCode::Added));
//!
//! // Bad input is a typed error naming the field; nothing is written.
//! let err = BulkInviteRequest::from_json(br#"{"invite_method": "email", "email": "x@y.z", "website_ids": [], "group_ids": []}"#)
//!     .unwrap()
//!     .validate()
//!     .unwrap_err();
//! assert_eq!(err.code(), ErrorCode::MutuallyExclusiveTargets);
//! # });
//! ```
//!
//! # Decisions where the contract is silent
//!
//! - Request parsing: see [`request`] (null means absent, error order, empty names).
//! - `group_ids` with a website-scoped key is `global_key_required` before any value check.
//! - A website-scoped key gets per-target `forbidden` for websites outside its allowlist
//!   without the store being asked, so it cannot probe for existence.
//! - Outcome precedence per target: `forbidden`, `target_not_found`, `already_member`,
//!   `has_org_access`, `already_invited`.
//! - The outbox stores the accept link with the message and renders the body at each delivery
//!   attempt from the batch's *live* invitations: a target revoked before delivery is not
//!   mailed, and a batch with none left is cancelled. A permanent mailer refusal is reported
//!   as `email.status = "failed"` (an addition to the three statuses of the contract).
//! - Accepting reports invitations a direct add superseded, or an earlier accept took, as
//!   `already_member`.

pub mod error;
mod ids;
pub mod mail;
mod port;
mod principal;
pub mod random;
#[cfg(feature = "test-util")]
mod recording_mailer;
pub mod request;
mod response;
pub mod rules;
mod service;
mod store;
mod time;
pub mod values;

pub use error::{BoxError, ErrorCode, InviteError, MailError, StoreError};
pub use ids::{
    ApiKeyId, BatchId, GroupId, InvitationId, MessageId, OrganizationId, TargetId, TargetKind,
    UserId, WebsiteId,
};
pub use mail::{
    BatchEmail, DefaultRenderer, EmailMessage, EmailRenderer, EmailTarget, Mailer, RenderedEmail,
    escape_html,
};
pub use port::{
    BulkStore, IdempotencyStore, LifecycleStore, MembershipStore, OutboxStore, ReadStore,
};
pub use principal::{KeyScope, Principal};
pub use random::{AcceptToken, OsRandom, RandomSource, TokenHash};
#[cfg(feature = "test-util")]
pub use recording_mailer::{MailerMode, RecordingMailer};
pub use request::{BulkInviteRequest, InviteMethod, MAX_TARGETS, ValidatedRequest};
pub use response::{
    BulkInviteResponse, EmailReport, EmailStatus, OutcomeCode, Summary, TargetResult,
};
pub use service::{
    AcceptResponse, AcceptResult, BatchView, ConfigError, DeliveryPolicy, DeliveryReport,
    InvitationPage, InvitationPreview, InvitationView, InviteConfig, InviteService, MessageView,
    PreviewItem, ResendResponse, RevokeResponse,
};
pub use store::{
    AcceptBatch, AcceptFact, AcceptOutcome, AddFact, AddMembers, AddMembersOutcome, BatchRecord,
    CreateInvitations, CreateInvitationsOutcome, DeliveryUpdate, Directory, Group,
    IdempotencyBegin, IdempotencyState, Inspect, InvitationFilter, InvitationQuery,
    InvitationRecord, InvitationStatus, InviteFact, MembershipRow, MessageStatus, NewBatch,
    NewUser, OutboxMessage, RevokeFact, RotateBatch, RotateFact, Snapshot, StoredStatus,
    TargetSlot, User, UserRef, Website,
};
pub use time::{Clock, SystemClock, Timestamp};
pub use values::{Email, EmailError, OrgRole, PersonName, Role};
