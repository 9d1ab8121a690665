//! The storage ports.
//!
//! [`MembershipStore`] is what `InviteService` needs. Its write operations are *conditional*
//! and *batch-shaped*: the core hands over a whole request (up to 50 targets, all ids, hashes
//! and timestamps already decided), the store applies it with **each target as its own atomic
//! unit** and reports, per target, a *fact* ([`AddFact`], [`InviteFact`], [`AcceptFact`]). The
//! core maps facts to outcome codes and messages. A backend may run the whole batch in one
//! transaction with a savepoint per target (SQLite does), as long as:
//!
//! - a target whose unit failed leaves no trace and is reported as `Err` in its slot;
//! - if the batch as a whole fails (the final commit), the call returns `Err` and *nothing*
//!   of the batch is stored, so the core can report every target as `internal_error`;
//! - the uniqueness rules hold under any concurrency: one user per normalised email, one
//!   membership per (target, user), one live invitation per (target, email).
//!
//! Precedence of facts (part of the contract, checked by the conformance suite): for each
//! target, in this order: `TargetNotFound` (the target is not in the given organization),
//! `AlreadyMember` (an explicit membership of the user), `OrgMember` (the user is an
//! organization member), then for invitations `AlreadyInvited` (a pending, unexpired
//! invitation), else the write happens.
//!
//! [`Directory`] creates the things invites point at (organizations, websites, groups, users,
//! organization members); [`Inspect`] reads whole state back for tests and admin tools.

use crate::error::StoreError;
use crate::ids::{
    ApiKeyId, BatchId, GroupId, InvitationId, MessageId, OrganizationId, TargetId, UserId,
    WebsiteId,
};
use crate::random::TokenHash;
use crate::time::Timestamp;
use crate::values::{Email, OrgRole, PersonName, Role};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::sync::Arc;

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

/// The result of [`MembershipStore::add_members`].
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

/// The result of [`MembershipStore::create_invitations`].
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

/// The status of an invitation.
///
/// Stores keep an invitation `Pending` when it passes its expiry: `Expired` is derived from
/// the clock ([`InvitationRecord::status_at`]). The one time a store writes `Expired` is when
/// a new invitation for the same (target, email) replaces an expired pending one (so at most
/// one `Pending` row per (target, email) exists, which a unique index can enforce). A stored
/// `Expired` invitation is never renewed by a resend.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Waiting to be accepted (may have expired; see `status_at`).
    Pending,
    /// Turned into a membership (or found the user already had access) by accepting.
    Accepted,
    /// Revoked by an API key.
    Revoked,
    /// Pending but past its expiry (derived, never stored).
    Expired,
    /// A direct add made it moot.
    Superseded,
}

impl InvitationStatus {
    /// The stable storage tag.
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
    /// Stored status (`Expired` only when replaced, see [`InvitationStatus`]).
    pub status: InvitationStatus,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops being acceptable.
    pub expires_at: Timestamp,
}

impl InvitationRecord {
    /// The status as seen at `now`: a pending invitation at or past its expiry is `Expired`.
    pub fn status_at(&self, now: Timestamp) -> InvitationStatus {
        if self.status == InvitationStatus::Pending && now >= self.expires_at {
            InvitationStatus::Expired
        } else {
            self.status
        }
    }

    /// Whether it can still be accepted at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.status_at(now) == InvitationStatus::Pending
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
    /// No live invitation left: status cancelled, body cleared.
    Cancelled,
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

/// The result of [`MembershipStore::accept_batch`].
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
}

/// What [`MembershipStore::rotate_batch`] found or did.
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
}

/// Idempotency record state, as found by [`MembershipStore::idempotency_begin`].
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

/// The storage port of `InviteService`. See the module docs for the batch contract.
///
/// Every method is atomic on its own. Implementations use interior mutability and are
/// shared as `Arc<dyn MembershipStore>`.
#[async_trait]
pub trait MembershipStore: Send + Sync + Debug + 'static {
    /// Direct mode: for each target on its own, add the user unless the target is missing,
    /// the user is already a member or the user is an org member; create the user in the first
    /// unit that adds; supersede the pending invitation for (target, email), live or expired.
    ///
    /// # Errors
    /// `Err` when the batch as a whole failed and nothing of it is stored.
    async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError>;

    /// Email mode: for each target on its own, create the invitation unless the target is
    /// missing, the existing user is a member or org member, or a live invitation exists;
    /// store the batch and its queued message iff at least one invitation was created.
    ///
    /// # Errors
    /// `Err` when the batch as a whole failed and nothing of it is stored.
    async fn create_invitations(
        &self,
        cmd: &CreateInvitations,
    ) -> Result<CreateInvitationsOutcome, StoreError>;

    /// The user with this normalised email.
    ///
    /// # Errors
    /// Storage failure.
    async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The user with this id.
    ///
    /// # Errors
    /// Storage failure.
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Queued messages due at `now`, oldest first, at most `limit`; each returned message is
    /// leased (its `next_attempt_at` set to `lease_until`) so a concurrent deliverer skips it.
    ///
    /// # Errors
    /// Storage failure.
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Records how a delivery attempt ended.
    ///
    /// # Errors
    /// Storage failure.
    async fn record_delivery(
        &self,
        id: MessageId,
        update: DeliveryUpdate,
    ) -> Result<(), StoreError>;

    /// The outbox messages of a batch, oldest first.
    ///
    /// # Errors
    /// Storage failure.
    async fn batch_messages(&self, batch: BatchId) -> Result<Vec<OutboxMessage>, StoreError>;

    /// The batch whose current token hash is `hash`, with its invitations.
    ///
    /// # Errors
    /// Storage failure.
    async fn find_batch_by_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<BatchRecord>, StoreError>;

    /// A batch of the organization, with its invitations.
    ///
    /// # Errors
    /// Storage failure.
    async fn get_batch(
        &self,
        organization: OrganizationId,
        batch: BatchId,
    ) -> Result<Option<BatchRecord>, StoreError>;

    /// Accept: if the batch's token hash still equals `token_hash` (else `Ok(None)`), find or
    /// create the user for the batch's email and mark it verified, then for each invitation
    /// of the batch on its own: turn a live one into a membership (or note the existing
    /// access) and mark it accepted; report the others as they are.
    ///
    /// # Errors
    /// `Err` when the operation as a whole failed and nothing is stored.
    async fn accept_batch(&self, cmd: &AcceptBatch) -> Result<Option<AcceptOutcome>, StoreError>;

    /// Revoke one invitation of the organization (pending or expired ones).
    ///
    /// # Errors
    /// Storage failure.
    async fn revoke_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: Timestamp,
    ) -> Result<RevokeFact, StoreError>;

    /// One invitation of the organization.
    ///
    /// # Errors
    /// Storage failure.
    async fn get_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError>;

    /// Resend: rotate the token, renew pending/expired invitations, cancel queued messages of
    /// the batch and queue a new one, all at once; unless sent too recently.
    ///
    /// # Errors
    /// Storage failure.
    async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError>;

    /// One page of invitations.
    ///
    /// # Errors
    /// Storage failure.
    async fn list_invitations(
        &self,
        query: &InvitationQuery,
    ) -> Result<Vec<InvitationRecord>, StoreError>;

    /// Start an idempotent request (see [`IdempotencyState`]).
    ///
    /// # Errors
    /// Storage failure.
    async fn idempotency_begin(
        &self,
        begin: &IdempotencyBegin,
    ) -> Result<IdempotencyState, StoreError>;

    /// Finish an idempotent request: store `response` (JSON), or with `None` release the
    /// in-progress record so the key can be used again.
    ///
    /// # Errors
    /// Storage failure.
    async fn idempotency_finish(
        &self,
        organization: OrganizationId,
        key_id: ApiKeyId,
        key: &str,
        response: Option<&str>,
    ) -> Result<(), StoreError>;
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
    async fn delete_website(&self, id: WebsiteId) -> Result<(), StoreError>;
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

macro_rules! forward_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: MembershipStore + ?Sized> MembershipStore for $ty {
            async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError> {
                (**self).add_members(cmd).await
            }
            async fn create_invitations(
                &self,
                cmd: &CreateInvitations,
            ) -> Result<CreateInvitationsOutcome, StoreError> {
                (**self).create_invitations(cmd).await
            }
            async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError> {
                (**self).find_user(email).await
            }
            async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
                (**self).get_user(id).await
            }
            async fn claim_due_messages(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: usize,
            ) -> Result<Vec<OutboxMessage>, StoreError> {
                (**self).claim_due_messages(now, lease_until, limit).await
            }
            async fn record_delivery(
                &self,
                id: MessageId,
                update: DeliveryUpdate,
            ) -> Result<(), StoreError> {
                (**self).record_delivery(id, update).await
            }
            async fn batch_messages(
                &self,
                batch: BatchId,
            ) -> Result<Vec<OutboxMessage>, StoreError> {
                (**self).batch_messages(batch).await
            }
            async fn find_batch_by_token(
                &self,
                hash: &TokenHash,
            ) -> Result<Option<BatchRecord>, StoreError> {
                (**self).find_batch_by_token(hash).await
            }
            async fn get_batch(
                &self,
                o: OrganizationId,
                b: BatchId,
            ) -> Result<Option<BatchRecord>, StoreError> {
                (**self).get_batch(o, b).await
            }
            async fn accept_batch(
                &self,
                cmd: &AcceptBatch,
            ) -> Result<Option<AcceptOutcome>, StoreError> {
                (**self).accept_batch(cmd).await
            }
            async fn revoke_invitation(
                &self,
                o: OrganizationId,
                id: InvitationId,
                now: Timestamp,
            ) -> Result<RevokeFact, StoreError> {
                (**self).revoke_invitation(o, id, now).await
            }
            async fn get_invitation(
                &self,
                o: OrganizationId,
                id: InvitationId,
            ) -> Result<Option<InvitationRecord>, StoreError> {
                (**self).get_invitation(o, id).await
            }
            async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError> {
                (**self).rotate_batch(cmd).await
            }
            async fn list_invitations(
                &self,
                q: &InvitationQuery,
            ) -> Result<Vec<InvitationRecord>, StoreError> {
                (**self).list_invitations(q).await
            }
            async fn idempotency_begin(
                &self,
                b: &IdempotencyBegin,
            ) -> Result<IdempotencyState, StoreError> {
                (**self).idempotency_begin(b).await
            }
            async fn idempotency_finish(
                &self,
                o: OrganizationId,
                k: ApiKeyId,
                key: &str,
                response: Option<&str>,
            ) -> Result<(), StoreError> {
                (**self).idempotency_finish(o, k, key, response).await
            }
        }
    };
}

forward_store!(Arc<T>);
forward_store!(Box<T>);
