//! The storage port of [`InviteService`](crate::InviteService), shaped by role.
//!
//! The contract is on [`MembershipStore`] (what every method keeps) and on each part.

use crate::access::{
    AccessFacts, ChangeFact, ChangeMember, ErasureReport, MemberQuery, MemberRecord,
    UserWebsiteRecord, UserWebsitesQuery,
};
use crate::error::StoreError;
use crate::events::EventStore;
use crate::ids::{ApiKeyId, BatchId, InvitationId, MessageId, OrganizationId, UserId, WebsiteId};
use crate::invitee::Email;
use crate::observe::OutboxBacklog;
use crate::store::{
    AcceptBatch, AcceptOutcome, AddMembers, AddMembersOutcome, BatchRecord, CreateInvitations,
    CreateInvitationsOutcome, DeliveryUpdate, IdempotencyBegin, IdempotencyState, InvitationQuery,
    InvitationRecord, OutboxMessage, PurgedBatches, RevokeFact, RevokeInvitation, RotateBatch,
    RotateFact, User,
};
use crate::time::Timestamp;
use crate::tokens::TokenHash;
use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;

/// The two batch writes of a bulk request.
///
/// # Contract
///
/// The core hands over a whole request: up to 50 *distinct* targets in request order, with
/// every id, hash and timestamp already decided. The store applies it with **each target as
/// its own atomic unit** (a backend may use one transaction with a savepoint per target) and
/// reports one slot per target, in order:
///
/// - `Ok(fact)`: what the rules decided for the target, and (for `Added` / `Invited`) the
///   write is part of the call's commit;
/// - `Err(e)`: that target's unit failed and left no trace; the other targets are as if it
///   had not been in the request.
///
/// If the call as a whole fails (e.g. the final commit), it returns `Err` and **nothing** of
/// it is stored, so the core can report every target as `internal_error`. A target outside
/// `organization` (or unknown) is the `TargetNotFound` fact, not an error.
///
/// The facts of each target are read in the call's transaction *after* the earlier targets
/// of the same call were applied (a user created for the first target is the user of the
/// second).
///
/// Each write appends its events ([`events`](crate::events): at `cmd.now`, by `cmd.actor`)
/// in the call's commit; a target unit that fails takes its events back with it.
#[async_trait]
pub trait BulkStore: Send + Sync + Debug + 'static {
    /// Direct mode. For each target on its own, fill [`AddFacts`](crate::rules::AddFacts)
    /// (target in the organization; the user with `cmd.email`, his explicit membership and
    /// his organization membership; the stored-pending invitation for (target, email)) and
    /// apply [`decide_add`](crate::rules::decide_add). On `Add`: create the user (unverified,
    /// `cmd.new_user`'s id and names) if none has the email yet — inside this target's unit,
    /// so it exists iff some target added —, insert the membership (`cmd.role`, `created_at =
    /// cmd.now`) and mark the superseded invitation `Superseded`.
    ///
    /// [`AddMembersOutcome::user`] is the user with the email after the call: existing
    /// (`created: false`), created by it (`created: true`), or `None` when none existed and
    /// nothing was added. An existing user's names are never changed.
    ///
    /// # Errors
    /// `Err` when the call as a whole failed; nothing of it is stored.
    async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError>;

    /// Email mode. For each target on its own, fill
    /// [`InviteFacts`](crate::rules::InviteFacts) and apply
    /// [`decide_invite`](crate::rules::decide_invite). On `Invite`: mark the replaced
    /// (expired) invitation `Replaced` and insert the new one (`Pending`, the id paired with
    /// the target, `cmd`'s role, names, `created_at = cmd.now`, `expires_at`).
    ///
    /// The batch (`cmd.batch`: id, token hash, `created_at = last_sent_at = cmd.now`) and its
    /// outbox message (status `Queued`, 0 attempts, the accept link, `next_attempt_at =
    /// message_due_at`) are stored in the same commit as the invitations, **iff at least one
    /// invitation was created** — a target unit that fails takes them back with it.
    ///
    /// No user is ever created; [`CreateInvitationsOutcome::existing_user`] is the user with
    /// the email, if any.
    ///
    /// # Errors
    /// `Err` when the call as a whole failed; nothing of it is stored.
    async fn create_invitations(
        &self,
        cmd: &CreateInvitations,
    ) -> Result<CreateInvitationsOutcome, StoreError>;
}

/// Accept, revoke and resend.
///
/// # Contract
///
/// Each method is one atomic, serializable operation (see [`MembershipStore`]); a batch
/// or invitation outside the caller's organization is `NotFound` (`accept_batch` is opened by
/// a token, which is its own proof, and has no organization argument). Each appends its
/// events ([`events`](crate::events)) in its commit: `accept_batch` at `cmd.now` with no
/// actor (a token is not a key), the others at their `now` by their `actor`.
#[async_trait]
pub trait LifecycleStore: Send + Sync + Debug + 'static {
    /// Accept a batch. If the batch `cmd.batch_id` does not exist or its *current* token hash
    /// is not `cmd.token_hash` (a concurrent resend rotated it), returns `Ok(None)` and
    /// changes nothing. Otherwise: find the user with the batch's email or create it
    /// (`cmd.new_user`'s id and names), mark it verified; then for each invitation of the
    /// batch, in (created_at, id) order, on its own: fill
    /// [`AcceptFacts`](crate::rules::AcceptFacts) (target in the batch's organization) and
    /// apply [`decide_accept`](crate::rules::decide_accept).
    ///
    /// Returns each invitation record *as it is after the call* (status `Accepted` for the
    /// accepting facts) with its slot; a slot is `Err` when that invitation's unit failed and
    /// left no trace. The token is not consumed: accepting again reports every invitation as
    /// it now is (`AlreadyAccepted`, ...).
    ///
    /// # Errors
    /// `Err` when the call as a whole failed; nothing of it is stored (the user included).
    async fn accept_batch(&self, cmd: &AcceptBatch) -> Result<Option<AcceptOutcome>, StoreError>;

    /// Revoke one invitation of `cmd.organization`: read its stored status (none if missing
    /// or in another organization) and apply [`decide_revoke`](crate::rules::decide_revoke).
    /// On `Revoked`, the `invitation_revoked` event (at `cmd.now`, by `cmd.actor`).
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn revoke_invitation(&self, cmd: &RevokeInvitation) -> Result<RevokeFact, StoreError>;

    /// Resend. Read the batch of `cmd.organization` (none if missing or in another
    /// organization), count its renewable invitations
    /// ([`StoredStatus::is_renewable`](crate::StoredStatus::is_renewable)), and apply
    /// [`decide_rotate`](crate::rules::decide_rotate). On `Rotate`, all at once: set the
    /// renewable invitations' expiry to `cmd.expires_at`, replace the token hash (the old
    /// token stops matching at once), set `last_sent_at = cmd.now`, cancel (and clear the link
    /// of) every queued message of the batch, and queue the new message as
    /// [`BulkStore::create_invitations`] does.
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError>;

    /// Delete up to `limit` (`0`: none) dead batches, oldest `(last_sent_at, id)` first, each
    /// with all its invitations and outbox messages. A batch is dead at `before` iff
    /// [`batch_is_purgeable`](crate::rules::batch_is_purgeable) holds for its facts (its
    /// `last_sent_at`, the latest `expires_at` of its invitations, the latest
    /// `next_attempt_at` of its messages, whether one is queued), read in the call's
    /// transaction; the token of a deleted batch opens nothing any more. Users and
    /// memberships are never deleted.
    ///
    /// # Contract
    ///
    /// One short atomic operation: a batch goes whole or not at all. A batch another call is
    /// changing at the same time (a resend renewing it, an accept) is either seen as it is
    /// after that call or skipped, never deleted under it. Returns what it deleted; fewer
    /// than `limit` batches means no other batch was dead at `before` when it ran (save
    /// ones skipped as busy), so a caller loops until a call comes back short.
    ///
    /// # Errors
    /// Storage failure; nothing deleted.
    async fn purge_batches(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<PurgedBatches, StoreError>;
}

/// The outbox: messages stored with their batch, delivered at least once.
///
/// # Contract
///
/// Claiming is how several deliverers (tasks, processes, machines) share the outbox: a claim
/// is a *lease*, so a message claimed by one is not returned to another until the lease runs
/// out. A message whose deliverer crashed is claimed again once its lease has passed.
#[async_trait]
pub trait OutboxStore: Send + Sync + Debug + 'static {
    /// Atomically select the `Queued` messages with `next_attempt_at <= now`, ordered by
    /// (next_attempt_at, created_at, id), at most `limit` (`0`: none), set their
    /// `next_attempt_at` to `lease_until` and **count an attempt** (`attempts + 1`). Returns
    /// them with `attempts` counting this claim and `next_attempt_at` as it was found (the
    /// time they became due); the stored rows hold the lease. Concurrent claims never return
    /// the same message while its lease holds.
    ///
    /// Counting the attempt at the claim means a message whose delivery never records an
    /// outcome (the process crashed or aborted mid-send) still uses up its attempts, so a
    /// poison message is set aside after `max_attempts` claims instead of coming back after
    /// every restart. A claim that did not attempt after all gives the count back with
    /// [`DeliveryUpdate::Deferred`].
    ///
    /// # Errors
    /// Storage failure; nothing claimed.
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Record how a delivery attempt ended ([`DeliveryUpdate`]): `Sent`, `Failed` and
    /// `Cancelled` set the status and clear the accept link; `Retry` keeps the message
    /// queued, with the link, until its `next_attempt_at`; `Deferred` keeps it queued with
    /// its attempts restored and its last error unchanged. Conditional: the record applies
    /// only while the message is still `Queued`
    /// ([`delivery_record_applies`](crate::rules::delivery_record_applies)), and `Deferred`
    /// only while the row still holds that claim's lease
    /// ([`deferral_applies`](crate::rules::deferral_applies)); a message that left the queue
    /// meanwhile (a resend cancelled it, another deliverer recorded it) is left as it is and
    /// the call returns `Ok`.
    ///
    /// # Errors
    /// `Err(StoreError::Backend)` for an unknown message id (nothing written: the caller holds
    /// an id the store gave it, so a missing one is a fault); storage failure.
    ///
    /// A `Sent` or `Failed` record that applies writes the `email_sent` / `email_failed`
    /// event at `now` in the message's organization.
    async fn record_delivery(
        &self,
        id: MessageId,
        update: DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Every outbox message of a batch, whatever its status, ordered by (created_at, id);
    /// empty for an unknown batch.
    ///
    /// # Errors
    /// Storage failure.
    async fn batch_messages(&self, batch: BatchId) -> Result<Vec<OutboxMessage>, StoreError>;

    /// The `Failed` messages created in `[created_from, created_until)`, ordered by
    /// (created_at, id), after the `after` position (exclusive; `None` for the first page), at
    /// most `limit` (`0`: none). A row this version cannot decode is left out. For
    /// [`InviteService::requeue_failed`](crate::InviteService::requeue_failed), a host's
    /// recovery after an outage; it is not on any request path.
    ///
    /// # Errors
    /// Storage failure.
    async fn failed_messages(
        &self,
        created_from: Timestamp,
        created_until: Timestamp,
        after: Option<(Timestamp, MessageId)>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Delete up to `limit` (`0`: none) outbox messages that
    /// [`message_is_purgeable`](crate::rules::message_is_purgeable) at `before`: finished,
    /// `next_attempt_at < before`, and not the newest message of their batch (that one goes
    /// only with its batch, [`LifecycleStore::purge_batches`]); oldest
    /// `(next_attempt_at, id)` first. Returns how many it deleted.
    ///
    /// # Contract
    ///
    /// One short atomic operation; fewer than `limit` deleted means none other was
    /// purgeable at `before` when it ran (save ones skipped as busy). A queued message is
    /// never deleted.
    ///
    /// # Errors
    /// Storage failure; nothing deleted.
    async fn purge_messages(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError>;
}

/// Idempotency records, one per (organization, key id, key).
///
/// # Contract
///
/// [`IdempotencyStore::idempotency_begin`] is a compare-and-set: of any number of concurrent
/// begins for the same key, at most one gets `Started` while the record is live.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + Debug + 'static {
    /// Start an idempotent request: atomically read the key's record (if any) and apply
    /// [`decide_idempotency`](crate::rules::decide_idempotency); on `Start`, store the fresh
    /// in-progress record (replacing any other record of the key).
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn idempotency_begin(
        &self,
        begin: &IdempotencyBegin,
    ) -> Result<IdempotencyState, StoreError>;

    /// Finish an idempotent request: with `Some(response)` (JSON), store it on the key's
    /// record; with `None`, delete the record so the key can be used again.
    ///
    /// Fenced: it applies only to the record of *this run*, the one its begin stored with
    /// `created_at == started_at` (the begin's `now`;
    /// [`idempotency_finish_applies`](crate::rules::idempotency_finish_applies)). A run that
    /// was taken over as stale (a later begin replaced its record) finds another record and
    /// changes nothing, so it cannot overwrite the response of the run that replaced it. A key
    /// without a record: no-op.
    ///
    /// With `names_user: Some(u)` (the response names user `u`), the response is stored only
    /// if `u` still exists when the write happens; otherwise the record is deleted: an
    /// erasure ([`AccessStore::erase_person`]) ran while the request was in flight, so a
    /// replay must start clean rather than return the erased user's id. The check and the
    /// write are one atomic step against an erasure (PostgreSQL: the user row is read
    /// `FOR SHARE`, and an erasure deletes the user before the idempotency records).
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn idempotency_finish(
        &self,
        organization: OrganizationId,
        key_id: ApiKeyId,
        key: &str,
        started_at: Timestamp,
        response: Option<&str>,
        names_user: Option<UserId>,
    ) -> Result<(), StoreError>;

    /// Delete up to `limit` (`0`: none) idempotency records, in progress or completed,
    /// created strictly before `expired_before`
    /// ([`idempotency_is_expired`](crate::rules::idempotency_is_expired)), oldest first.
    /// Returns how many it deleted.
    ///
    /// # Contract
    ///
    /// One short atomic operation. It changes no answer: a begin whose `expired_before` is
    /// at or after this one's treats those records as dead already. A record a concurrent
    /// begin is replacing is either deleted before or skipped. Fewer than `limit` deleted
    /// means none other was that old when it ran (save ones skipped as busy).
    ///
    /// # Errors
    /// Storage failure; nothing deleted.
    async fn purge_idempotency(
        &self,
        expired_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError>;
}

/// Point reads and lists. Read-only; a read sees only committed data.
///
/// # Contract
///
/// Records never carry a token or its hash. An invitation record carries its target's
/// *current* name (empty if the target no longer exists). Batches list their invitations in
/// (created_at, id) order.
#[async_trait]
pub trait ReadStore: Send + Sync + Debug + 'static {
    /// The user with this normalised email, if any.
    ///
    /// # Errors
    /// Storage failure.
    async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The user with this id, if any.
    ///
    /// # Errors
    /// Storage failure.
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The batch whose *current* token hash is `hash` (of any organization: the token is the
    /// credential), with its invitations; `None` for an unknown or rotated-away hash.
    ///
    /// # Errors
    /// Storage failure.
    async fn find_batch_by_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<BatchRecord>, StoreError>;

    /// A batch of `organization`, with its invitations; `None` if missing or in another
    /// organization.
    ///
    /// # Errors
    /// Storage failure.
    async fn get_batch(
        &self,
        organization: OrganizationId,
        batch: BatchId,
    ) -> Result<Option<BatchRecord>, StoreError>;

    /// One invitation of `organization`; `None` if missing or in another organization.
    ///
    /// # Errors
    /// Storage failure.
    async fn get_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError>;

    /// One page of the invitations of `query.organization` matching `query.filter`, ordered by
    /// (created_at, id), strictly after `query.after`, at most `query.limit`, only within
    /// `query.websites` when it is set (the scope is part of the query, so the limit counts
    /// only rows the caller may see). A status filter
    /// matches the status as seen at `query.now`
    /// ([`rules::stored_forms`](crate::rules::stored_forms) gives its stored forms).
    ///
    /// # Errors
    /// Storage failure.
    async fn list_invitations(
        &self,
        query: &InvitationQuery,
    ) -> Result<Vec<InvitationRecord>, StoreError>;

    /// How many outbox messages are `Queued` and the `created_at` of the oldest of them: a
    /// cheap read (the queued rows' own index) for the outbox gauges, which
    /// [`InviteService::deliver_due`](crate::InviteService::deliver_due) takes after each
    /// pass. `Ok(None)` (the default) for a store that cannot tell cheaply: then the gauges
    /// are not set.
    ///
    /// # Errors
    /// Storage failure.
    async fn outbox_backlog(&self) -> Result<Option<OutboxBacklog>, StoreError> {
        Ok(None)
    }

    /// The storage system, as OpenTelemetry's database conventions spell `db.system.name`
    /// (`"sqlite"`, `"postgresql"`, `"memory"` for the in-memory store): a field of every
    /// store call's span. `"other"` unless the backend says.
    fn db_system_name(&self) -> &'static str {
        "other"
    }
}

/// Who has access, and taking it back (contract §11): the reads a host authorizes with, the
/// member lists, the membership changes and the erasure of a person.
///
/// # Contract
///
/// - Reads report facts (paths); what they mean is decided in the core
///   ([`access`](crate::access): the effective role is the strongest path).
/// - Every read that takes an organization treats another organization's rows as absent.
/// - Lists are keyset pages in id order: a page holds at most `limit` entries after the
///   `after` position and costs the page (index range scans from the position, never the
///   whole organization).
/// - [`change_member`](AccessStore::change_member) and
///   [`erase_person`](AccessStore::erase_person) are each one atomic transaction.
#[async_trait]
pub trait AccessStore: Send + Sync + Debug + 'static {
    /// Every path from `user` to `website`: its website membership, its memberships of the
    /// groups that contain the website, its organization membership in the website's
    /// organization. `None` when there is no such website. One indexed read per path kind.
    ///
    /// # Errors
    /// Storage failure.
    async fn access_paths(
        &self,
        user: UserId,
        website: WebsiteId,
    ) -> Result<Option<AccessFacts>, StoreError>;

    /// A page of the members of `q.target`, by user id: for a website, every user who
    /// reaches it (direct, through a group containing it, or as an organization member),
    /// each once with all its paths; for a group, its explicit members (one `Group` path
    /// each). `None` when the target is not in `q.organization`.
    ///
    /// # Errors
    /// Storage failure.
    async fn list_members(&self, q: &MemberQuery) -> Result<Option<Vec<MemberRecord>>, StoreError>;

    /// A page of the websites of `q.organization` that `q.user` reaches (within the
    /// allowlist when one is given), by website id, each once with all its paths. Empty for an
    /// unknown user.
    ///
    /// # Errors
    /// Storage failure.
    async fn list_user_websites(
        &self,
        q: &UserWebsitesQuery,
    ) -> Result<Vec<UserWebsiteRecord>, StoreError>;

    /// In one transaction: read the [`TargetAccess`](crate::rules::TargetAccess) of
    /// (target, user) — the target in the organization, the explicit membership, the
    /// organization membership — and apply [`decide_change`](crate::access::decide_change).
    /// On `Update`, set the role; on `Remove`, delete the membership and revoke (status
    /// `Revoked`) the invitations to the same target and the user's email that are live at
    /// `cmd.now` ([`revoked_by_removal`](crate::access::revoked_by_removal)), reporting how
    /// many.
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    async fn change_member(&self, cmd: &ChangeMember) -> Result<ChangeFact, StoreError>;

    /// In one transaction, delete everything of the person with `email` (normalised): the
    /// user (if any) with every website, group and organization membership; every invitation
    /// to the address in any status and every batch to it (its token hash dies with it);
    /// every outbox message to the address, queued or finished; every idempotency record
    /// whose stored response names the user's id. Afterwards no row holds the address, the
    /// user's names or its id. Global: not scoped to an organization.
    ///
    /// # Errors
    /// Storage failure; nothing changed.
    ///
    /// Also clears the user's id from every stored event (the event stays, naming no one),
    /// and writes `person_erased` at `now` in each organization it deleted something of.
    async fn erase_person(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<ErasureReport, StoreError>;
}

/// The whole storage port of [`InviteService`](crate::InviteService).
///
/// This is what the service holds (one `Arc<dyn MembershipStore>` for the whole
/// store). It has no methods of its own: it is the sum of seven parts, each a trait with its
/// own contract, and every type implementing the seven is a `MembershipStore` (blanket impl):
///
/// | trait | concern |
/// |---|---|
/// | [`BulkStore`] | the two batch writes of a bulk request (direct and email mode) |
/// | [`LifecycleStore`] | accept, revoke, resend (token rotation), purging dead batches |
/// | [`OutboxStore`] | claiming, recording, listing and purging outbox messages |
/// | [`IdempotencyStore`] | idempotency records, and purging the expired ones |
/// | [`ReadStore`] | point reads and paginated lists |
/// | [`AccessStore`] | access checks, member lists, membership changes, erasure |
/// | [`EventStore`] | reading and purging the event log (written by the other parts' calls) |
///
/// # Contract (every method)
///
/// - **Atomic.** Each call is atomic on its own: it either happens completely or, when it
///   returns `Err`, changes nothing. The batch operations ([`BulkStore`] and
///   [`LifecycleStore::accept_batch`]) refine this per target, see their docs.
/// - **Serializable.** Any methods may run concurrently, from any number of tasks, processes
///   or machines sharing the store; the result is as if they ran one after another in some
///   order. The decisions of [`rules`](crate::rules) are taken on facts read *inside* the
///   call's transaction, so they still hold when it writes.
/// - **Uniqueness**, whatever the concurrency: one user per normalised email, one membership
///   per (target, user), one stored-pending invitation per (target, email).
/// - **Facts, not decisions.** A store reads facts and applies the `rules::decide_*`
///   function for them; it never decides on its own which outcome wins or what "live" means.
/// - **Not found is a value.** A missing or other-organization row is `Ok(None)`, an empty
///   list, or the `NotFound` / `TargetNotFound` fact named in the method's docs — never an
///   `Err`. Another organization's row looks exactly like a missing one. The one exception,
///   [`OutboxStore::record_delivery`] for an unknown message, is documented there.
/// - **Errors.** `Err(StoreError::Unavailable)` when a retry may help (busy, connection
///   lost), `Incompatible` for data or schema this version cannot read, `Backend` otherwise;
///   the original error is kept as the source.
/// - **Secrets.** Token hashes are stored and compared, never returned; no record carries one.
/// - All timestamps are given by the caller (`now`, `expires_at`, leases): a store never
///   reads a clock.
///
/// # Wrappers
///
/// A wrapper (fault injection, tracing, metrics) implements the seven traits by forwarding;
/// mark each forwarding impl `#[deny(clippy::missing_trait_methods)]` so a method added later
/// cannot be forgotten. `Arc<T>` and `Box<T>` forward already.
///
/// The store suite of `invites-testkit` (`store_suite!`) checks every clause above that a
/// test can observe; a new backend runs it with one line.
pub trait MembershipStore:
    BulkStore + LifecycleStore + OutboxStore + IdempotencyStore + ReadStore + AccessStore + EventStore
{
}

impl<T> MembershipStore for T where
    T: BulkStore
        + LifecycleStore
        + OutboxStore
        + IdempotencyStore
        + ReadStore
        + AccessStore
        + EventStore
        + ?Sized
{
}

/// Forwards six of the parts (events.rs forwards the seventh) through a smart pointer.
macro_rules! forward_store {
    ($ty:ty) => {
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: BulkStore + ?Sized> BulkStore for $ty {
            async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError> {
                (**self).add_members(cmd).await
            }
            async fn create_invitations(
                &self,
                cmd: &CreateInvitations,
            ) -> Result<CreateInvitationsOutcome, StoreError> {
                (**self).create_invitations(cmd).await
            }
        }

        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: LifecycleStore + ?Sized> LifecycleStore for $ty {
            async fn accept_batch(
                &self,
                cmd: &AcceptBatch,
            ) -> Result<Option<AcceptOutcome>, StoreError> {
                (**self).accept_batch(cmd).await
            }
            async fn revoke_invitation(
                &self,
                cmd: &RevokeInvitation,
            ) -> Result<RevokeFact, StoreError> {
                (**self).revoke_invitation(cmd).await
            }
            async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError> {
                (**self).rotate_batch(cmd).await
            }
            async fn purge_batches(
                &self,
                before: Timestamp,
                limit: usize,
            ) -> Result<PurgedBatches, StoreError> {
                (**self).purge_batches(before, limit).await
            }
        }

        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: OutboxStore + ?Sized> OutboxStore for $ty {
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
                now: Timestamp,
            ) -> Result<(), StoreError> {
                (**self).record_delivery(id, update, now).await
            }
            async fn batch_messages(
                &self,
                batch: BatchId,
            ) -> Result<Vec<OutboxMessage>, StoreError> {
                (**self).batch_messages(batch).await
            }
            async fn failed_messages(
                &self,
                created_from: Timestamp,
                created_until: Timestamp,
                after: Option<(Timestamp, MessageId)>,
                limit: usize,
            ) -> Result<Vec<OutboxMessage>, StoreError> {
                (**self)
                    .failed_messages(created_from, created_until, after, limit)
                    .await
            }
            async fn purge_messages(
                &self,
                before: Timestamp,
                limit: usize,
            ) -> Result<u64, StoreError> {
                (**self).purge_messages(before, limit).await
            }
        }

        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: IdempotencyStore + ?Sized> IdempotencyStore for $ty {
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
                started_at: Timestamp,
                response: Option<&str>,
                names_user: Option<UserId>,
            ) -> Result<(), StoreError> {
                (**self)
                    .idempotency_finish(o, k, key, started_at, response, names_user)
                    .await
            }
            async fn purge_idempotency(
                &self,
                expired_before: Timestamp,
                limit: usize,
            ) -> Result<u64, StoreError> {
                (**self).purge_idempotency(expired_before, limit).await
            }
        }

        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: ReadStore + ?Sized> ReadStore for $ty {
            async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError> {
                (**self).find_user(email).await
            }
            async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
                (**self).get_user(id).await
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
            async fn get_invitation(
                &self,
                o: OrganizationId,
                id: InvitationId,
            ) -> Result<Option<InvitationRecord>, StoreError> {
                (**self).get_invitation(o, id).await
            }
            async fn list_invitations(
                &self,
                q: &InvitationQuery,
            ) -> Result<Vec<InvitationRecord>, StoreError> {
                (**self).list_invitations(q).await
            }
            async fn outbox_backlog(&self) -> Result<Option<OutboxBacklog>, StoreError> {
                (**self).outbox_backlog().await
            }
            fn db_system_name(&self) -> &'static str {
                (**self).db_system_name()
            }
        }

        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: AccessStore + ?Sized> AccessStore for $ty {
            async fn access_paths(
                &self,
                user: UserId,
                website: WebsiteId,
            ) -> Result<Option<AccessFacts>, StoreError> {
                (**self).access_paths(user, website).await
            }
            async fn list_members(
                &self,
                q: &MemberQuery,
            ) -> Result<Option<Vec<MemberRecord>>, StoreError> {
                (**self).list_members(q).await
            }
            async fn list_user_websites(
                &self,
                q: &UserWebsitesQuery,
            ) -> Result<Vec<UserWebsiteRecord>, StoreError> {
                (**self).list_user_websites(q).await
            }
            async fn change_member(&self, cmd: &ChangeMember) -> Result<ChangeFact, StoreError> {
                (**self).change_member(cmd).await
            }
            async fn erase_person(
                &self,
                email: &Email,
                now: Timestamp,
            ) -> Result<ErasureReport, StoreError> {
                (**self).erase_person(email, now).await
            }
        }
    };
}

forward_store!(Arc<T>);
forward_store!(Box<T>);
