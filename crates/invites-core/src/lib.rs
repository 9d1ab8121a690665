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
//! - Request parsing: see [`BulkInviteRequest`] (null means absent, error order, empty names).
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
//!
//! # Hostile input: decisions
//!
//! - **Email normalisation** ([`Email`]): trim, then the local part NFC → lowercase → NFC and
//!   the domain through UTS #46 to its **A-label** (ASCII, `xn--`) form; *then* validation of
//!   that normal form (syntax, 254 bytes in all, 64 in the local part), so every stored
//!   address parses again to itself. U-label, A-label, NFC, NFD and case spellings of one
//!   mailbox are one `Email` and one user. A-labels are stored because DNS and every SMTP
//!   server take them without SMTPUTF8; [`Email::domain_unicode`] is for display.
//! - **Refused addresses** (`invalid_email`, the reason in the message): quoted local parts,
//!   domain literals, single-label domains, display names, inner whitespace, and characters of
//!   the categories Cc, Cf, Zl and Zp anywhere.
//! - **Names** ([`PersonName`], `invalid_name`): besides controls, refuse U+2028, U+2029 and
//!   every Cf character (bidi controls U+202A–U+202E and U+2066–U+2069, zero-width spaces,
//!   BOM, soft hyphen), except the joiners U+200C and U+200D that real spellings need. The
//!   [`DefaultRenderer`] puts every interpolated value, directory names included, through
//!   [`plain_line`] (line breaks and invisible controls become spaces) and escapes it in HTML.
//! - **Tenancy of `user_id`** (where docs/contract.md §4 was silent): a bulk response names the user only
//!   when a target succeeded or an outcome is `already_member` or `has_org_access`; otherwise
//!   it is null, even when the address has an account elsewhere.
//! - **Limits**: request bodies up to [`MAX_REQUEST_BODY_BYTES`] (`body_too_large`,
//!   HTTP 413, before decoding); id arrays longer than [`MAX_ID_ARRAY_LEN`] refused before
//!   their elements are parsed (over [`MAX_TARGETS`] is refused by validation, in the
//!   documented order); unknown field names echoed cut to [`MAX_ECHOED_FIELD_BYTES`];
//!   accept tokens must be [`AcceptToken::LEN`] lowercase hex characters, checked before
//!   hashing (`invalid_token`); idempotency keys 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] printable
//!   ASCII characters.
//! - **Configuration**: [`InviteConfig`], [`DeliveryPolicy`] and [`RetentionPolicy`] have private
//!   fields and validating setters returning [`ConfigError`] (naming the setting), so an
//!   invalid configuration (batch size 0, zero or week-long backoff, no attempts, a TTL of 0
//!   or over a year, a base URL without a host) cannot reach an [`InviteService`].
//! - **Secrets**: the accept link and token never appear in `Debug` or `Display`
//!   ([`REDACTED`] is printed instead); [`EmailMessage`]'s `Display` shows headers only.
//!
//! # What an operator sees
//!
//! A `tracing` span per public operation of [`InviteService`] (and per message delivered),
//! with a child span per store call; a `warn` event for every store error the service does
//! not return; metrics through the `metrics` facade. The [`observe`] module lists every span
//! with its fields and every metric with its type, unit and labels; [`observe::describe_metrics`]
//! describes them to the host's recorder. No address, name or token reaches a span, an event
//! or a metric label.
//!
//! # Retention
//!
//! [`InviteService::purge_expired`] (run hourly by the facade's delivery worker) keeps
//! storage from growing with traffic. What is deleted, with `now` the service clock and the
//! cutoffs of [`rules::purge_cutoffs`]:
//!
//! - **Idempotency records** created more than the idempotency time to live ago (24 hours),
//!   in progress or completed: exactly the ones no request would be answered from any more
//!   ([`rules::idempotency_is_expired`]). A replay within the time to live is unaffected.
//! - **Dead batches**, with all their invitations and outbox messages
//!   ([`rules::batch_is_purgeable`]): every invitation of the batch expired, the batch was
//!   last (re)sent, and every message of it was last handed to a deliverer, all more than
//!   [`RetentionPolicy::history`] (30 days) ago, and none of its messages is queued. Whatever
//!   the invitations' statuses: an accepted, revoked, superseded or replaced invitation
//!   stays listed for at least the retention after it stopped being acceptable (an accept
//!   happens before the expiry). A stored-pending invitation that expired that long ago goes
//!   too, so it can no longer be resent; its batch's token opens nothing any more.
//! - **Finished outbox messages** (sent, failed, cancelled) last handed to a deliverer more
//!   than the retention ago ([`rules::message_is_purgeable`]), except the newest message of
//!   each kept batch: lists keep showing the batch's delivery status, and the batch view
//!   keeps its latest message (older ones disappear from it).
//!
//! Kept, always: live and recently expired invitations and their batches, queued messages,
//! **users and memberships** (never purged). Each store call deletes at most
//! [`RetentionPolicy::batch_size`] records (a batch counting once, with its invitations and
//! messages) in one short transaction, oldest first; the service
//! calls again until a call comes back short. Several processes may purge at once.
//!
//! # Limits
//!
//! Bounds on everything a caller controls, as public constants, each enforced where the input
//! first arrives (so oversized input is refused before any work proportional to its size):
//!
//! | constant | bound | enforced by | error |
//! |---|---|---|---|
//! | [`MAX_REQUEST_BODY_BYTES`] | 16 KiB | [`BulkInviteRequest::from_json`](crate::BulkInviteRequest::from_json), before decoding; HTTP layers should cap bodies with it too | `body_too_large` |
//! | [`MAX_TARGETS`] | 50 ids | [`BulkInviteRequest::validate`](crate::BulkInviteRequest::validate), after the permission and exclusivity checks | `invalid_target_count` |
//! | [`MAX_ID_ARRAY_LEN`] | 500 elements | parsing: a longer id array is refused from its length alone, before any element is parsed | `invalid_target_count` |
//! | [`MAX_ECHOED_FIELD_BYTES`] | 64 bytes | an unknown field name echoed in an error is cut to this (and stripped of control characters) | `unknown_field` |
//! | [`AcceptToken::LEN`](crate::AcceptToken::LEN) | 64 hex characters | preview and accept check the token's shape before hashing it or asking the store | `invalid_token` |
//! | [`MAX_IDEMPOTENCY_KEY_LEN`] | 255 printable ASCII characters | [`check_idempotency_key`] | `invalid_idempotency_key` |
//! | [`Email::MAX_LEN`](crate::Email::MAX_LEN), [`Email::MAX_LOCAL_LEN`](crate::Email::MAX_LOCAL_LEN) | 254 / 64 bytes of the normal form | [`Email::parse`](crate::Email::parse) | `invalid_email` |
//! | [`PersonName::MAX_CHARS`](crate::PersonName::MAX_CHARS) | 100 characters | [`PersonName::parse`](crate::PersonName::parse) | `invalid_name` |

pub mod access;
mod config;
pub mod endpoints;
mod error;
pub mod events;
mod ids;
mod invitee;
mod limits;
mod mail;
pub mod observe;
mod port;
mod principal;
#[cfg(feature = "test-util")]
mod recording_mailer;
mod redact;
mod request;
mod response;
pub mod rules;
mod sender;
mod service;
mod store;
mod time;
mod tokens;
mod traced;
mod unreadable;

pub use access::{Access, AccessPath, ChangeFact, ErasureReport, MemberChange};
pub use config::{ConfigError, DeliveryPolicy, InviteConfig, RetentionPolicy};
pub use endpoints::{
    DisabledReason, EndpointState, StartAt, WebhookEndpoint, WebhookStore, WebhookUpdate,
    webhook_record_applies,
};
pub use error::{BoxError, ErrorCode, InviteError, MailError, StoreError};
pub use events::{Event, EventContext, EventCursor, EventKind, EventPage, EventStore, NewEvent};
pub use ids::{
    ApiKeyId, BatchId, EndpointId, GroupId, InvitationId, MessageId, OrganizationId, TargetId,
    TargetKind, UserId, WebsiteId,
};
pub use invitee::{Email, EmailError, OrgRole, PersonName, Role};
pub use limits::{
    MAX_ECHOED_FIELD_BYTES, MAX_ID_ARRAY_LEN, MAX_IDEMPOTENCY_KEY_LEN, MAX_REQUEST_BODY_BYTES,
    check_idempotency_key,
};
pub use mail::{
    BatchEmail, DefaultRenderer, EmailMessage, EmailRenderer, EmailTarget, Mailer, RenderedEmail,
    escape_html, is_message_id_domain, plain_line, sanitize_header,
};
pub use port::{
    AccessStore, BulkStore, IdempotencyStore, LifecycleStore, MembershipStore, OutboxStore,
    ReadStore,
};
pub use principal::{KeyScope, Principal};
#[cfg(feature = "test-util")]
pub use recording_mailer::{MailerMode, RecordingMailer};
pub use redact::REDACTED;
pub use request::{BulkInviteRequest, InviteMethod, MAX_TARGETS, ValidatedRequest};
pub use response::{
    BulkInviteResponse, EmailReport, EmailStatus, OutcomeCode, Summary, TargetResult,
};
pub use sender::{SenderError, check_message_id_domain, check_sender, mailbox_address};
pub use service::{
    AcceptResponse, AcceptResult, BatchView, DeliveryPause, DeliveryReport, InvitationPage,
    InvitationPreview, InvitationView, InviteService, MessageView, PreviewItem, PurgeReport,
    RequeueReport, ResendResponse, RevokeResponse,
};
pub use service::{
    MAX_EVENT_PAGE, MemberChangeResponse, MemberOutcome, MemberPage, MemberView, WebsiteAccessPage,
    WebsiteAccessView,
};
pub use store::{
    AcceptBatch, AcceptFact, AcceptOutcome, AddFact, AddMembers, AddMembersOutcome, BatchRecord,
    CreateInvitations, CreateInvitationsOutcome, DeliveryUpdate, Directory, Group,
    IdempotencyBegin, IdempotencyState, Inspect, InvitationFilter, InvitationQuery,
    InvitationRecord, InvitationStatus, InviteFact, MembershipRow, MessageStatus, NewBatch,
    NewUser, OutboxMessage, PurgedBatches, RevokeFact, RevokeInvitation, RotateBatch, RotateFact,
    Snapshot, StoredStatus, TargetSlot, User, UserRef, Website,
};
pub use time::{Clock, SystemClock, Timestamp};
pub use tokens::{AcceptToken, OsRandom, RandomSource, TokenHash};
pub use unreadable::UnreadableRow;
