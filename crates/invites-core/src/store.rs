//! The data of the storage port: the commands the core hands a store, the facts it reports
//! back, and the records it reads. The port's traits and their contracts are in the `port`
//! module ([`MembershipStore`](crate::MembershipStore) and its parts); what the facts mean is
//! decided in [`rules`](crate::rules).
//!
//! [`Directory`] creates the things invites point at (organizations, websites, groups, users,
//! organization members); [`Inspect`] reads whole state back for tests and admin tools.

use crate::error::StoreError;
use crate::ids::{
    ApiKeyId, BatchId, GroupId, InvitationId, MessageId, OrganizationId, TargetId, UserId,
    WebsiteId,
};
use crate::invitee::{Email, OrgRole, PersonName, Role};
use crate::rules;
use crate::time::Timestamp;
use crate::tokens::TokenHash;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The per-target slot of a batch result: a fact, or the error that rolled that target back.
pub type TargetSlot<F> = Result<F, StoreError>;

/// A user the store creates if no user has the email yet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewUser {
    /// The id to use.
    pub id: UserId,
    /// First name.
    pub first_name: Option<PersonName>,
    /// Last name.
    pub last_name: Option<PersonName>,
}

/// The user a batch operation found or created.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UserRef {
    /// The user.
    pub id: UserId,
    /// Whether this operation created it (and committed it).
    pub created: bool,
}

/// Direct mode: add one user to many targets.
#[derive(Clone, Debug)]
pub struct AddMembers {
    /// The caller's organization; targets outside it are `TargetNotFound`.
    pub organization: OrganizationId,
    /// Whom to add.
    pub email: Email,
    /// Created (unverified, with these names) inside the first target's unit that adds a
    /// membership, if no user has `email`. An existing user's names are never changed.
    pub new_user: NewUser,
    /// The role of each new membership.
    pub role: Role,
    /// Distinct targets, in request order.
    pub targets: Vec<TargetId>,
    /// The time of the request (membership `created_at`; decides which invitations are live).
    pub now: Timestamp,
    /// The API key that made the request, recorded on its events.
    pub actor: Option<ApiKeyId>,
}

/// What a store found or did for one target of [`AddMembers`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum AddFact {
    /// The membership was created; the pending invitation for (target, email), live or
    /// expired, was superseded (so a resend cannot revive it).
    Added,
    /// An explicit membership exists (role unchanged).
    AlreadyMember {
        /// Its role.
        role: Role,
    },
    /// The user is an organization member.
    OrgMember,
    /// The target is not in the organization.
    TargetNotFound,
}

/// The result of [`BulkStore::add_members`](crate::BulkStore::add_members).
#[derive(Debug)]
pub struct AddMembersOutcome {
    /// The user with the email after the operation: existing, created, or `None` when none
    /// existed and nothing was added.
    pub user: Option<UserRef>,
    /// One slot per target, in order.
    pub targets: Vec<TargetSlot<AddFact>>,
}

/// The batch an email-mode request creates.
///
/// `Debug` prints the accept link as `[redacted]`.
#[derive(Clone)]
pub struct NewBatch {
    /// Its id.
    pub id: BatchId,
    /// SHA-256 of its accept token.
    pub token_hash: TokenHash,
    /// The outbox message stored with it.
    pub message_id: MessageId,
    /// The accept link, stored in the outbox row until delivered, then cleared.
    pub accept_url: String,
    /// When the stored message becomes due for `claim_due_messages`. The service delivers
    /// the message itself right after the call, so this is `now` plus a lease: a concurrent
    /// deliverer does not send it twice, and after a crash it is picked up once due.
    pub message_due_at: Timestamp,
}

/// Email mode: create one invitation per target, one batch, one outbox message.
#[derive(Clone, Debug)]
pub struct CreateInvitations {
    /// The caller's organization.
    pub organization: OrganizationId,
    /// The invited address.
    pub email: Email,
    /// Role of every invitation.
    pub role: Role,
    /// Names stored on the invitations.
    pub first_name: Option<PersonName>,
    /// Names stored on the invitations.
    pub last_name: Option<PersonName>,
    /// Distinct targets with the invitation id each would get, in request order.
    pub targets: Vec<(TargetId, InvitationId)>,
    /// The batch. Stored, with its outbox message (status queued, due at `message_due_at`), in the same
    /// commit as the invitations, and only if at least one invitation was created.
    pub batch: NewBatch,
    /// Expiry of the new invitations.
    pub expires_at: Timestamp,
    /// The time of the request.
    pub now: Timestamp,
    /// The API key that made the request, recorded on its events.
    pub actor: Option<ApiKeyId>,
}

/// What a store found or did for one target of [`CreateInvitations`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum InviteFact {
    /// The invitation was created.
    Invited,
    /// The existing user has an explicit membership.
    AlreadyMember {
        /// Its role.
        role: Role,
    },
    /// The existing user is an organization member.
    OrgMember,
    /// A pending, unexpired invitation for (target, email) exists.
    AlreadyInvited {
        /// That invitation.
        invitation: InvitationId,
    },
    /// The target is not in the organization.
    TargetNotFound,
}

/// The result of [`BulkStore::create_invitations`](crate::BulkStore::create_invitations).
#[derive(Debug)]
pub struct CreateInvitationsOutcome {
    /// The existing user with the email, if any (never created here).
    pub existing_user: Option<UserId>,
    /// One slot per target, in order.
    pub targets: Vec<TargetSlot<InviteFact>>,
}

/// A user record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Normalised email, unique.
    pub email: Email,
    /// Whether the mailbox was proven.
    pub email_verified: bool,
    /// First name.
    pub first_name: Option<PersonName>,
    /// Last name.
    pub last_name: Option<PersonName>,
}

/// The status of an invitation as a store keeps it. `expired` is not one of them: it is
/// derived from the clock (see [`rules::view_status`](crate::rules::view_status)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum StoredStatus {
    /// Not acted on yet. Live until its expiry ([`rules::is_live`](crate::rules::is_live)); a resend renews it, expired or
    /// not. At most one per (target, email) — a unique index can enforce it.
    Pending,
    /// Accepted: turned into a membership, or found the user already had access.
    Accepted,
    /// Revoked by an API key.
    Revoked,
    /// A direct add for the same (target, email) made it moot.
    Superseded,
    /// It had expired when a new invitation for the same (target, email) took its place. It
    /// reads as `expired` forever; a resend does not renew it.
    Replaced,
}

impl StoredStatus {
    /// Every stored status.
    pub const ALL: [StoredStatus; 5] = [
        StoredStatus::Pending,
        StoredStatus::Accepted,
        StoredStatus::Revoked,
        StoredStatus::Superseded,
        StoredStatus::Replaced,
    ];

    /// The stable storage tag.
    pub fn as_str(&self) -> &'static str {
        match self {
            StoredStatus::Pending => "pending",
            StoredStatus::Accepted => "accepted",
            StoredStatus::Revoked => "revoked",
            StoredStatus::Superseded => "superseded",
            StoredStatus::Replaced => "replaced",
        }
    }

    /// Parses [`StoredStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        StoredStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether a resend renews it (sets a new expiry): stored `Pending`, expired or not.
    pub fn is_renewable(&self) -> bool {
        *self == StoredStatus::Pending
    }
}

/// The status of an invitation *as seen at a time*: what lists show and filter on. Never
/// stored: a store keeps a [`StoredStatus`], and `Expired` is derived from it and the clock
/// ([`InvitationRecord::status_at`], [`rules::view_status`](crate::rules::view_status)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Live: stored pending and not yet expired.
    Pending,
    /// Turned into a membership (or found the user already had access) by accepting.
    Accepted,
    /// Revoked by an API key.
    Revoked,
    /// Stored pending but at or past its expiry, or replaced by a newer invitation after it
    /// expired.
    Expired,
    /// A direct add made it moot.
    Superseded,
}

impl InvitationStatus {
    /// The stable tag (as in JSON).
    pub fn as_str(&self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
            InvitationStatus::Superseded => "superseded",
        }
    }

    /// Parses [`InvitationStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => InvitationStatus::Pending,
            "accepted" => InvitationStatus::Accepted,
            "revoked" => InvitationStatus::Revoked,
            "expired" => InvitationStatus::Expired,
            "superseded" => InvitationStatus::Superseded,
            _ => return None,
        })
    }
}

/// An invitation as stored (never with a token or its hash).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvitationRecord {
    /// Id.
    pub id: InvitationId,
    /// Its batch.
    pub batch_id: BatchId,
    /// The organization of its target.
    pub organization: OrganizationId,
    /// Its target.
    pub target: TargetId,
    /// The target's display name.
    pub target_name: String,
    /// Invited address.
    pub email: Email,
    /// Role to grant.
    pub role: Role,
    /// First name given with the invite.
    pub first_name: Option<PersonName>,
    /// Last name given with the invite.
    pub last_name: Option<PersonName>,
    /// The stored status; see [`InvitationRecord::status_at`] for the status as seen at a time.
    pub status: StoredStatus,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops being acceptable.
    pub expires_at: Timestamp,
}

impl InvitationRecord {
    /// The status as seen at `now` ([`rules::view_status`]): a pending invitation at or past
    /// its expiry, and a replaced one, are `Expired`.
    pub fn status_at(&self, now: Timestamp) -> InvitationStatus {
        rules::view_status(self.status, self.expires_at, now)
    }

    /// Whether it can still be accepted at `now` ([`rules::is_live`]).
    pub fn is_live(&self, now: Timestamp) -> bool {
        rules::is_live(self.status, self.expires_at, now)
    }
}

/// A batch with its invitations (what a token opens).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Id.
    pub id: BatchId,
    /// Organization.
    pub organization: OrganizationId,
    /// Invited address.
    pub email: Email,
    /// Creation time.
    pub created_at: Timestamp,
    /// When the batch was last (re)sent; the resend rate limit counts from here.
    pub last_sent_at: Timestamp,
    /// The batch's invitations, ordered by (created_at, id).
    pub invitations: Vec<InvitationRecord>,
}

/// Status of an outbox message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for (another) delivery attempt.
    Queued,
    /// Handed to the mailer; body cleared.
    Sent,
    /// Given up (permanent error or too many attempts); body cleared.
    Failed,
    /// Not sent because its batch had no live invitation left, or a resend replaced it.
    Cancelled,
}

impl MessageStatus {
    /// Every status.
    pub const ALL: [MessageStatus; 4] = [
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Failed,
        MessageStatus::Cancelled,
    ];

    /// The stable storage tag.
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
            MessageStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`MessageStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => MessageStatus::Queued,
            "sent" => MessageStatus::Sent,
            "failed" => MessageStatus::Failed,
            "cancelled" => MessageStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One outbox row.
///
/// `Debug` prints the accept link as `[redacted]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Stable id, the same on every delivery attempt.
    pub id: MessageId,
    /// The batch it announces.
    pub batch_id: BatchId,
    /// The organization of the batch.
    pub organization: OrganizationId,
    /// Recipient.
    pub recipient: Email,
    /// The accept link; `None` once the message left the queue.
    pub accept_url: Option<String>,
    /// Status.
    pub status: MessageStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (queued); other statuses keep the last value it had.
    pub next_attempt_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// The last delivery error, as text.
    pub last_error: Option<String>,
}

/// How a delivery attempt ended, as recorded in the outbox.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DeliveryUpdate {
    /// Delivered: status sent, body cleared.
    Sent {
        /// Attempts including this one.
        attempts: u32,
    },
    /// Transient failure: stays queued until `next_attempt_at`.
    Retry {
        /// Attempts including this one.
        attempts: u32,
        /// When to try again.
        next_attempt_at: Timestamp,
        /// The error, as text.
        error: String,
    },
    /// Given up: status failed, body cleared.
    Failed {
        /// Attempts including this one.
        attempts: u32,
        /// The error, as text.
        error: String,
    },
    /// No live invitation left: status cancelled, body cleared, `attempts` set (nothing was
    /// sent, so the claim's count is given back).
    Cancelled {
        /// Attempts so far, not counting this claim.
        attempts: u32,
    },
    /// Not attempted after all (delivery paused by a sender-wide failure, or the claim's
    /// lease too short for another send): stays queued, due at `next_attempt_at`, with
    /// `attempts` restored to what it was before the claim counted it and `last_error`
    /// unchanged. Fenced by the claim: applies only while the message is still queued *and*
    /// still holds this claim's lease (`next_attempt_at == leased_until`,
    /// [`deferral_applies`](crate::rules::deferral_applies)), so a deliverer whose lease ran
    /// out cannot undo another deliverer's newer claim.
    Deferred {
        /// Attempts to restore (the claim's count minus the one it added).
        attempts: u32,
        /// When it is due again.
        next_attempt_at: Timestamp,
        /// The lease end the claim set; the record applies only while the row still holds it.
        leased_until: Timestamp,
    },
}

/// What accepting did for one invitation of a batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum AcceptFact {
    /// A membership was created; the invitation is accepted.
    Added,
    /// The user already had an explicit membership; the invitation is accepted.
    AlreadyMember,
    /// The user is an organization member; the invitation is accepted.
    OrgMember,
    /// The invitation was revoked (unchanged).
    Revoked,
    /// The invitation had expired (unchanged).
    Expired,
    /// The invitation was superseded by a direct add (unchanged).
    Superseded,
    /// The invitation was accepted before (unchanged).
    AlreadyAccepted,
    /// The target no longer exists (invitation unchanged).
    TargetNotFound,
}

/// Accept a batch.
#[derive(Clone, Debug)]
pub struct AcceptBatch {
    /// The batch the token opened.
    pub batch_id: BatchId,
    /// The token's hash; the store re-checks it inside the transaction so a concurrent
    /// resend (token rotation) wins cleanly.
    pub token_hash: TokenHash,
    /// Created (verified) if no user has the batch's email.
    pub new_user: NewUser,
    /// The time of acceptance; invitations expiring at or before it are `Expired`.
    pub now: Timestamp,
}

/// The result of [`LifecycleStore::accept_batch`](crate::LifecycleStore::accept_batch).
#[derive(Debug)]
pub struct AcceptOutcome {
    /// The user, found or created, now verified.
    pub user: UserRef,
    /// One slot per invitation of the batch, in batch order.
    pub invitations: Vec<(InvitationRecord, TargetSlot<AcceptFact>)>,
}

/// What revoking found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RevokeFact {
    /// Now revoked.
    Revoked,
    /// It was already revoked (harmless).
    AlreadyRevoked,
    /// Accepted invitations cannot be revoked.
    AlreadyAccepted,
    /// Superseded invitations are already dead (harmless).
    AlreadyDead,
    /// No such invitation in the organization.
    NotFound,
}

/// Revoke one invitation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RevokeInvitation {
    /// The caller's organization.
    pub organization: OrganizationId,
    /// The invitation.
    pub id: InvitationId,
    /// Now (the event's time).
    pub now: Timestamp,
    /// The API key that asked, recorded on the event.
    pub actor: Option<ApiKeyId>,
}

/// Rotate a batch's token and queue a new message (resend).
///
/// `Debug` prints the accept link as `[redacted]`.
#[derive(Clone)]
pub struct RotateBatch {
    /// The caller's organization.
    pub organization: OrganizationId,
    /// The batch.
    pub batch_id: BatchId,
    /// The new token's hash; the old one stops matching at once.
    pub new_token_hash: TokenHash,
    /// The new expiry of every pending (expired included) invitation of the batch.
    pub expires_at: Timestamp,
    /// The new message (queued, due at `message_due_at`); any queued message of the batch is cancelled.
    pub message_id: MessageId,
    /// The new accept link.
    pub accept_url: String,
    /// When the new message becomes due (see [`NewBatch::message_due_at`]).
    pub message_due_at: Timestamp,
    /// Only rotate if the batch was last sent at or before this time (the rate limit).
    pub not_sent_after: Timestamp,
    /// Now.
    pub now: Timestamp,
    /// The API key that made the request, recorded on its events.
    pub actor: Option<ApiKeyId>,
}

/// What [`LifecycleStore::rotate_batch`](crate::LifecycleStore::rotate_batch) found or did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RotateFact {
    /// Rotated; this many invitations were renewed.
    Rotated {
        /// Renewed invitations.
        renewed: usize,
    },
    /// Sent too recently; nothing changed.
    TooSoon {
        /// When the batch was last sent.
        last_sent_at: Timestamp,
    },
    /// No pending or expired invitation left to renew; nothing changed.
    NothingToResend,
    /// No such batch in the organization.
    NotFound,
}

/// What one [`LifecycleStore::purge_batches`](crate::LifecycleStore::purge_batches) call
/// deleted.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PurgedBatches {
    /// Dead batches deleted.
    pub batches: u64,
    /// Their invitations, deleted with them.
    pub invitations: u64,
    /// Their outbox messages (all finished), deleted with them.
    pub messages: u64,
}

/// Which invitations to list.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum InvitationFilter {
    /// Of one target.
    Target(TargetId),
    /// To one address.
    Email(Email),
    /// With one status as seen at `now` (expired derived from the clock).
    Status(InvitationStatus),
}

/// A list query, ordered by (created_at, id).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvitationQuery {
    /// The caller's organization.
    pub organization: OrganizationId,
    /// The filter.
    pub filter: InvitationFilter,
    /// Resume after this (created_at, id) position; `None` for the first page.
    pub after: Option<(Timestamp, InvitationId)>,
    /// Page size, 1 to 500.
    pub limit: usize,
    /// The time that decides `Expired`.
    pub now: Timestamp,
    /// The caller's scope: `None` for every target of the organization; `Some(websites)` for
    /// a website-scoped key, which sees only invitations to those websites (never a group's).
    /// Applied in the query, before paging, so a page never holds or is cut at a row the
    /// caller cannot see.
    pub websites: Option<std::collections::BTreeSet<WebsiteId>>,
}

/// Idempotency record state, as found by [`IdempotencyStore::idempotency_begin`](crate::IdempotencyStore::idempotency_begin).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum IdempotencyState {
    /// No live record existed; one is now held in progress for the caller.
    Started,
    /// A live record holds this request fingerprint and is still in progress.
    InProgress {
        /// The first request's fingerprint.
        fingerprint: [u8; 32],
    },
    /// A live record holds this fingerprint and the stored response (JSON).
    Completed {
        /// The first request's fingerprint.
        fingerprint: [u8; 32],
        /// The stored response.
        response: String,
    },
}

/// Begin an idempotent request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdempotencyBegin {
    /// The principal's organization.
    pub organization: OrganizationId,
    /// The principal's key.
    pub key_id: ApiKeyId,
    /// The client's idempotency key.
    pub key: String,
    /// SHA-256 of the canonical request.
    pub fingerprint: [u8; 32],
    /// Records created before this are dead and replaced.
    pub expired_before: Timestamp,
    /// An in-progress record older than this (a crashed request) is taken over.
    pub stale_before: Timestamp,
    /// Now.
    pub now: Timestamp,
}

/// A website.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Website {
    /// Id.
    pub id: WebsiteId,
    /// Organization.
    pub organization: OrganizationId,
    /// Display name.
    pub name: String,
    /// URL.
    pub url: String,
}

/// A group of websites.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Group {
    /// Id.
    pub id: GroupId,
    /// Organization.
    pub organization: OrganizationId,
    /// Display name.
    pub name: String,
}

/// Creates what invites point at. Every backend implements it so hosts and tests can seed
/// state. Ids are chosen by the caller, so seeding is reproducible and idempotent (creating
/// an existing id with the same content is a no-op).
///
/// The creating calls write no event (the host makes them and knows of them). The removing
/// and changing calls (`delete_website`, `remove_org_member`, `set_org_role`,
/// `remove_website_from_group`, `delete_group`) take the time `at` and, when they change
/// something, write their event ([`events`](crate::events)) in the same transaction.
#[async_trait]
pub trait Directory: Send + Sync + Debug + 'static {
    /// Create an organization.
    ///
    /// # Errors
    /// Storage failure, or a conflicting existing row.
    async fn create_organization(&self, id: OrganizationId, name: &str) -> Result<(), StoreError>;
    /// Create a website in an organization.
    ///
    /// # Errors
    /// Storage failure, unknown organization, or a conflicting existing row.
    async fn create_website(&self, website: &Website) -> Result<(), StoreError>;
    /// Create a group in an organization.
    ///
    /// # Errors
    /// Storage failure, unknown organization, or a conflicting existing row.
    async fn create_group(&self, group: &Group) -> Result<(), StoreError>;
    /// Put a website (of the same organization) into a group.
    ///
    /// # Errors
    /// Storage failure, or unknown / cross-organization ids.
    async fn add_website_to_group(
        &self,
        group: GroupId,
        website: WebsiteId,
    ) -> Result<(), StoreError>;
    /// Create a user; returns the id of the user with that email (the given id if new).
    ///
    /// # Errors
    /// Storage failure.
    async fn create_user(&self, user: &User) -> Result<UserId, StoreError>;
    /// Make a user an organization member (or change the role).
    ///
    /// # Errors
    /// Storage failure, or unknown ids.
    async fn add_org_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
    ) -> Result<(), StoreError>;
    /// Delete a website with its memberships and invitations.
    ///
    /// # Errors
    /// Storage failure.
    async fn delete_website(&self, id: WebsiteId, at: Timestamp) -> Result<(), StoreError>;
    /// Take a user out of an organization (its website and group memberships stay: they are
    /// explicit grants of their own). Returns whether the user was a member.
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn remove_org_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Change an organization member's role. Returns whether the user is a member (a
    /// non-member is not added: that is [`add_org_member`](Directory::add_org_member)).
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn set_org_role(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Take a website out of a group: the group's members no longer reach it through the
    /// group. Returns whether it was in the group.
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn remove_website_from_group(
        &self,
        group: GroupId,
        website: WebsiteId,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Delete a group in one transaction, with its memberships, its website links and every
    /// invitation to it (as [`delete_website`](Directory::delete_website) does for a
    /// website). Returns whether it existed.
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn delete_group(&self, id: GroupId, at: Timestamp) -> Result<bool, StoreError>;
}

/// An explicit membership row.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, PartialOrd, Ord)]
pub struct MembershipRow {
    /// Target.
    pub target: TargetId,
    /// Member.
    pub user: UserId,
    /// Role.
    pub role: Role,
    /// When added.
    pub created_at: Timestamp,
}

/// Everything a store holds that invites change, in a canonical order (for differential
/// tests and audits). Token hashes are deliberately absent.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Users by email.
    pub users: Vec<User>,
    /// Memberships by (target, user).
    pub memberships: Vec<MembershipRow>,
    /// Organization members: (org, user, role), sorted.
    pub org_members: Vec<(OrganizationId, UserId, OrgRole)>,
    /// Invitations by (created_at, id).
    pub invitations: Vec<InvitationRecord>,
    /// Batches (without invitations) by id.
    pub batches: Vec<(BatchId, OrganizationId, Email, Timestamp)>,
    /// Outbox by (created_at, id).
    pub outbox: Vec<OutboxMessage>,
}

/// Reads whole state back.
#[async_trait]
pub trait Inspect: Send + Sync + Debug + 'static {
    /// The canonical snapshot.
    ///
    /// # Errors
    /// Storage failure.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;
}
