//! SQLite storage for the invites library: [`SqliteStore`] implements
//! [`MembershipStore`](invites_core::MembershipStore) (the event log included), [`Directory`]
//! and [`Inspect`] over one SQLite file (or an in-memory database).
//!
//! ```
//! use invites_core::{Directory, Inspect, OrganizationId, Website, WebsiteId};
//! use invites_sqlite::SqliteStore;
//! use uuid::Uuid;
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! runtime.block_on(async {
//!     let store = SqliteStore::open_in_memory().await?;
//!     let org = OrganizationId(Uuid::from_u128(1));
//!     store.create_organization(org, "Acme").await?;
//!     store
//!         .create_website(&Website {
//!             id: WebsiteId(Uuid::from_u128(2)),
//!             organization: org,
//!             name: "Blog".into(),
//!             url: "https://blog.example".into(),
//!         })
//!         .await?;
//!     assert!(store.snapshot().await?.users.is_empty());
//!     Ok::<_, invites_core::StoreError>(())
//! })
//! .unwrap();
//! ```
//!
//! # Threading
//!
//! rusqlite is blocking, so it never runs on the async executor: each store owns one
//! dedicated thread that owns the `rusqlite::Connection` and runs the operations it receives
//! over a channel, one at a time, answering through a oneshot channel. [`SqliteStore`] is
//! cheap to clone; clones share the thread and the connection. The thread ends (and the
//! connection closes) when the last clone is dropped. Several stores (in one process or in
//! several) may open the same file: SQLite's locking and the busy timeout serialise writers.
//!
//! # Atomicity
//!
//! Every write is one transaction started with `BEGIN IMMEDIATE`, which takes the write lock
//! up front: the reads that decide a fact and the writes that follow see the same state, and
//! two connections never deadlock upgrading a read lock (a waiting writer gets the busy
//! timeout, then a retryable [`StoreError::Unavailable`]). The batch operations
//! (`add_members`, `create_invitations`, `accept_batch`) read everything that decides the
//! per-target facts once, before the loop, one query each (targets of the organization, the
//! user and his organization membership, his memberships and pending invitations among the
//! targets), then run each target's writes in its own `SAVEPOINT`: on error the savepoint is
//! rolled back and released, and only that target's slot is an `Err`. If the final `COMMIT`
//! fails the call returns `Err` and nothing of the batch is stored. Every statement is
//! prepared once and cached on the connection, the savepoint statements included.
//!
//! # Group commit
//!
//! `add_members`, `create_invitations` and `record_delivery` are *shared* writes: when several
//! are waiting for the connection thread at once (concurrent requests), the thread runs them
//! all, in arrival order, in ONE transaction, and commits once (while requests keep arriving
//! together, it waits up to 100 µs for the ones just behind before it starts; a lone request
//! never waits). Each keeps its contract, and its outcome depends only on its own targets,
//! never on the writes it shares the transaction with: each runs in its own savepoint, so a
//! write that fails, even half-way, leaves nothing and gets its own error while the others
//! are kept; if SQLite rolls the whole transaction back during one write (a `ROLLBACK`
//! conflict, disk full), that write gets its error and the writes undone with it run again
//! in a new transaction. Every write's answer waits for the `COMMIT`, and if the `COMMIT`
//! fails every write in it gets an error and none of them is stored. Concurrent requests
//! thus share the cost of a commit and of the B-tree pages they both touch, so several tasks
//! on one store get at least the throughput of one.
//!
//! The uniqueness rules are enforced by the database itself, whatever the concurrency: a
//! UNIQUE constraint on `users.email`, primary keys on `(website_id, user_id)` and
//! `(group_id, user_id)`, and a partial unique index on invitations
//! `(target_kind, target_id, email) WHERE status = 'pending'` (so at most one pending
//! invitation per target and address; an expired pending one is marked `expired` before its
//! replacement is inserted).
//!
//! # Schema and migrations
//!
//! Invitations live in a `WITHOUT ROWID` table keyed by their id; the core makes invitation
//! ids (and the ids of users it creates) time-ordered, so a batch's rows are appended next to
//! each other instead of landing on one random B-tree page each. Pages are cached per
//! connection up to [`SqliteOptions::cache_size_kib`] and savepoint journals are kept in memory
//! (`temp_store = MEMORY`).
//!
//! # Checkpoints
//!
//! A store on a file does not let SQLite checkpoint inside a commit (which made one request
//! in every few dozen pay for copying the write-ahead log back and syncing the files). A WAL
//! hook on its connection nudges a background thread, with its own connection to the file,
//! to run `PASSIVE` checkpoints once the log is [`SqliteOptions::checkpoint_after_pages`]
//! long; they never block the writer or readers. Since the log can only start over once all
//! of it was copied back, which a background pass never achieves while writes keep coming,
//! the commit that makes the log four times that long finishes the (by then short) copy
//! itself, and the next write starts the log over. The thread ends when the store's
//! connection closes. Durability is unchanged.
//!
//! The schema is versioned with `PRAGMA user_version` and brought up to date on open by an
//! explicit list of migrations, each applied in its own transaction. A file written by a newer
//! version of this crate is refused with [`StoreError::Incompatible`]. Ids are stored as
//! 16-byte BLOBs, timestamps as INTEGER milliseconds since the Unix epoch, emails as
//! normalised TEXT. Token hashes are stored (never tokens) and never returned.
//!
//! # Contract
//!
//! The behaviour of every port method (atomicity, what "not found" returns, concurrency) is
//! the contract on the traits in `invites_core` ([`BulkStore`], [`LifecycleStore`],
//! [`OutboxStore`], [`IdempotencyStore`], [`ReadStore`], [`AccessStore`],
//! [`EventStore`](invites_core::EventStore)); this crate reads
//! the facts in its transactions and applies `invites_core::rules` and
//! `invites_core::access`, and runs the store suite of `invites-testkit`.
//!
//! [`AccessStore`]: `access_paths` is one statement of primary-key and index searches (the
//! website, its membership, the memberships of the groups that contain it, the organization
//! membership). A store on a file runs it on the calling thread, with one of a few read-only
//! connections to the same file, instead of sending it to the connection thread: the hop
//! there and back cost three times the read (BENCHMARKS.md). In WAL mode such a read never
//! waits for the writer and sees every write that returned before it started; the call blocks
//! its task's thread for the read alone, tens of microseconds. The member lists are keyset pages that cost the page: each source of members
//! (or of websites) is an index range read from the cursor, at most `limit` rows (see the
//! `access` module). `change_member` and `erase_person` are each one `BEGIN IMMEDIATE`
//! transaction; the erasure finds every row by index, except the idempotency responses, which
//! it searches as text. A request running across the erasure cannot store a response naming
//! the erased user afterwards: `idempotency_finish` checks that the user it names still exists
//! (on the same connection thread, so nothing runs between the check and the write) and
//! deletes the record otherwise; its retry runs again, as after a crash.
//!
//! Left to the backend by the [`Directory`] port:
//!
//! - `delete_website` deletes the website, its memberships, its group links and its
//!   invitations, and `delete_group` the group with the same (one transaction each).
//!   Batches and outbox messages are kept (the record of what was sent).
//! - Directory creates are idempotent: the same id with the same content is a no-op; the same
//!   id with other content, a missing organization (or user, for `add_org_member`) and a
//!   cross-organization `add_website_to_group` are errors ([`StoreError::Backend`]).
//!   `create_user` returns the id of the user that already has the email, if any.
//! - The removing and changing calls write their event only when they changed a row:
//!   `set_org_role` to the role a member has already changes nothing (a stored role this
//!   version cannot read is changed, with its event); `delete_website` of an unknown website
//!   writes none.
//!
//! # Events
//!
//! Every write appends its events (`invites_core::events`) in its own transaction, as its
//! last step before the commit, as one row: one `UPDATE` moves the organization's counter
//! (`organizations.event_seq`, migration 5) on by the call's number of events, then one
//! `INSERT` stores them all in `event_groups` (positions `first_position..=last_position`,
//! the time, the actor, and the events in a versioned binary form), keyed by (organization,
//! last position), with the one user they name in the row's indexed `user_id` (a group
//! naming two or more has one `event_users` row per distinct user instead). Whoever moves
//! a counter holds the write lock until its commit, so positions are gap-free and in commit
//! order per organization, across connections and processes. A bulk write collects the
//! events of its per-target units as they succeed (a unit that fails adds none) and appends
//! them after the last unit; in a group commit, a write's events are in its own savepoint
//! and go if it is undone. An event that cannot be stored fails its write, which then leaves
//! nothing. Events hold ids, roles and times only; `erase_person` rewrites every group that
//! names the user (found by `event_groups_by_user` and `event_users`) with the user's id
//! cleared, and writes `person_erased` in each organization it deleted something of.
//! `purge_events` deletes whole groups, oldest first (by `event_groups_by_at`), so it may
//! delete a few more than its limit, and never touches the counters. `read_events` walks one range of the groups'
//! unique index, read like `access_paths` (on the calling thread, with a read connection,
//! for a store on a file).
//!
//! # Rows this version cannot read
//!
//! A stored row that this version cannot decode (a value an older version, another tool or a
//! hand wrote: an address `Email::parse` refuses, an unknown tag, a bad id or number) never
//! blocks anything but itself. Every such error names the table and column
//! (`stored row could not be read: column outbox.recipient`), never the value, which may be
//! personal data; a row left out is reported with a `tracing` warning (table, column, row id).
//!
//! - `claim_due_messages`: a due row that cannot be decoded is set aside in the claim's
//!   transaction: marked `failed`, the reason in `last_error`, its link cleared. It is never
//!   returned, and the rest of the page is claimed and returned as usual. (The row itself is
//!   kept as it was, for whoever repairs it.)
//! - `list_invitations`: the row is left out, and the page is filled up from the rows after
//!   it, so a page is short only at the end of the list and the cursor stays right.
//! - `batch_messages` and `Inspect::snapshot`: the row is left out.
//! - `read_events`: a group of events this version cannot decode (another version byte,
//!   truncated data) is left out and the page filled up from the groups after it, as
//!   `list_invitations` does; a reader sees a gap in positions there, as after a purge, and
//!   is never stuck behind the row. `erase_person` deletes such a group when it names the
//!   erased user (it cannot clear the id inside it).
//! - `get_batch`, `find_batch_by_token` and `accept_batch`: a batch is one unit, so if its row
//!   or one of its invitations cannot be decoded, that batch alone is
//!   [`StoreError::Incompatible`] (an accept never skips an invitation unseen, an email never
//!   leaves one out). The core then marks its queued message failed at delivery. `get_user`,
//!   `find_user` and `get_invitation` likewise fail for that one row only.
//!
//! # Errors
//!
//! SQLite busy/locked errors and a stopped connection thread map to
//! [`StoreError::Unavailable`] (retryable); a row this version cannot decode and a newer
//! schema map to [`StoreError::Incompatible`]; everything else to [`StoreError::Backend`].
//! The original error is kept as the source.
//!
//! # Features
//!
//! `bundled` compiles SQLite in (no system library needed). It is off here and turned on by
//! the `invites` facade.

mod access;
mod backlog;
mod bulk;
mod changes;
mod checkpoint;
mod columns;
mod directory;
mod error;
mod event_codec;
mod events;
mod facts;
mod idempotency;
mod lifecycle;
mod outbox;
mod purge;
mod readers;
mod reads;
mod schema;
mod txn;
mod webhooks;
mod worker;
mod writes;

#[cfg(test)]
mod tests;

use crate::error::Error;
use crate::worker::Worker;
use async_trait::async_trait;
use invites_core::access::{
    AccessFacts, ChangeFact, ChangeMember, ErasureReport, MemberQuery, MemberRecord,
    UserWebsiteRecord, UserWebsitesQuery,
};
use invites_core::observe::OutboxBacklog;
use invites_core::{
    AcceptBatch, AcceptOutcome, AccessStore, AddMembers, AddMembersOutcome, ApiKeyId, BatchId,
    BatchRecord, BulkStore, CreateInvitations, CreateInvitationsOutcome, DeliveryUpdate, Directory,
    Email, Group, GroupId, IdempotencyBegin, IdempotencyState, IdempotencyStore, Inspect,
    InvitationId, InvitationQuery, InvitationRecord, LifecycleStore, MessageId, OrgRole,
    OrganizationId, OutboxMessage, OutboxStore, PurgedBatches, ReadStore, RevokeFact,
    RevokeInvitation, RotateBatch, RotateFact, Snapshot, StoreError, Timestamp, TokenHash, User,
    UserId, Website, WebsiteId,
};
use rusqlite::Connection;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Synchronous {
    /// `NORMAL`: in WAL mode, a power loss or OS crash may lose the last commits (they were
    /// reported as done), but never corrupts the database. An application crash loses
    /// nothing. Faster; the default.
    #[default]
    Normal,
    /// `FULL`: every commit is on disk before it is reported, so even a power loss keeps it.
    Full,
}

/// Options for [`SqliteStore::open_with`].
///
/// ```
/// use invites_sqlite::{SqliteOptions, Synchronous};
/// use std::time::Duration;
///
/// let options = SqliteOptions::default()
///     .with_synchronous(Synchronous::Full)
///     .with_busy_timeout(Duration::from_secs(1));
/// assert_eq!(options.synchronous, Synchronous::Full);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Durability of commits. Default [`Synchronous::Normal`].
    pub synchronous: Synchronous,
    /// How long a write waits for another connection's lock before failing with a retryable
    /// [`StoreError::Unavailable`]. Default 5 seconds.
    pub busy_timeout: Duration,
    /// The most memory the connection's page cache may use, in KiB (`PRAGMA cache_size`;
    /// allocated as pages are read, so a small database never uses it all). Default
    /// 16,384 (16 MiB); SQLite's own default is 2 MiB, which a busy invites database outgrows,
    /// and every page that misses it is read again from the OS.
    pub cache_size_kib: u32,
    /// Once the write-ahead log is this many pages long, a background thread copies it back
    /// into the database file (a `PASSIVE` checkpoint, which syncs both files), in parallel
    /// with the requests; at four times this length, the commit that gets there finishes the
    /// checkpoint itself so that the log starts over (see the crate docs). Default 1,000
    /// pages (4 MiB with 4 KiB pages), as SQLite's own automatic checkpoint, which runs
    /// inside a commit instead.
    pub checkpoint_after_pages: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            cache_size_kib: 16 * 1024,
            checkpoint_after_pages: 1000,
        }
    }
}

impl SqliteOptions {
    /// These options with `synchronous` set.
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// These options with `busy_timeout` set.
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// These options with `cache_size_kib` set.
    pub fn with_cache_size_kib(mut self, cache_size_kib: u32) -> Self {
        self.cache_size_kib = cache_size_kib;
        self
    }

    /// These options with `checkpoint_after_pages` set.
    pub fn with_checkpoint_after_pages(mut self, pages: u32) -> Self {
        self.checkpoint_after_pages = pages;
        self
    }
}

/// A [`MembershipStore`](invites_core::MembershipStore), [`Directory`] and [`Inspect`] backed by SQLite.
///
/// Cheap to clone: clones share one connection thread. See the crate docs for the threading
/// and transaction model.
#[derive(Clone)]
pub struct SqliteStore {
    worker: Worker,
    location: Arc<str>,
    /// Read connections for the access check (a store on a file; see `readers`).
    readers: Option<Arc<readers::Readers>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The schema version (`PRAGMA user_version`) this version of the crate writes.
    pub const SCHEMA_VERSION: i64 = schema::MIGRATIONS.len() as i64;

    /// Opens (creating it if needed) the database file at `path` with default
    /// [`SqliteOptions`], and migrates it to the current schema.
    ///
    /// # Errors
    /// [`StoreError::Incompatible`] if the file's schema is newer than this crate knows;
    /// [`StoreError::Unavailable`] if another connection holds the lock past the busy timeout;
    /// [`StoreError::Backend`] if the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (creating it if needed) the database file at `path` in WAL mode with `options`,
    /// and migrates it to the current schema.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path: PathBuf = path.as_ref().to_owned();
        let location: Arc<str> = path.display().to_string().into();
        let (nudge, nudges) = checkpoint::channel();
        let open_path = path.clone();
        let worker = Worker::start(move || {
            let mut conn = Connection::open(&open_path)?;
            schema::configure(&conn, &options, true)?;
            schema::migrate(&mut conn)?;
            checkpoint::install(&mut conn, &options, nudge)?;
            Ok(conn)
        })
        .await?;
        let readers = Arc::new(readers::Readers::new(path.clone(), options));
        checkpoint::spawn(path, options, nudges);
        Ok(SqliteStore {
            worker,
            location,
            readers: Some(readers),
        })
    }

    /// Opens a new, private in-memory database (shared by the clones of the returned store,
    /// gone when the last clone is dropped). For tests and prototypes.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if SQLite cannot open it.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let worker = Worker::start(|| {
            let mut conn = Connection::open_in_memory()?;
            schema::configure(&conn, &SqliteOptions::default(), false)?;
            schema::migrate(&mut conn)?;
            Ok(conn)
        })
        .await?;
        Ok(SqliteStore {
            worker,
            location: ":memory:".into(),
            readers: None,
        })
    }

    /// Runs `work` on the connection thread.
    async fn run<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, Error> + Send + 'static,
    {
        self.worker.call(work).await.map_err(StoreError::from)
    }

    /// Runs the write `work` on the connection thread inside a transaction the thread opens,
    /// possibly together with other queued writes, each in its own savepoint (group commit,
    /// see `worker`). `work` may run more than once, if SQLite rolls back a shared
    /// transaction because of another write.
    async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: Fn(&rusqlite::Connection) -> Result<R, Error> + Send + 'static,
    {
        self.worker.write(work).await.map_err(StoreError::from)
    }
}

#[async_trait]
impl BulkStore for SqliteStore {
    async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError> {
        let cmd = cmd.clone();
        self.write(move |c| bulk::add_members(c, &cmd)).await
    }

    async fn create_invitations(
        &self,
        cmd: &CreateInvitations,
    ) -> Result<CreateInvitationsOutcome, StoreError> {
        let cmd = cmd.clone();
        self.write(move |c| bulk::create_invitations(c, &cmd)).await
    }
}

#[async_trait]
impl LifecycleStore for SqliteStore {
    async fn accept_batch(&self, cmd: &AcceptBatch) -> Result<Option<AcceptOutcome>, StoreError> {
        let cmd = cmd.clone();
        self.run(move |c| lifecycle::accept_batch(c, &cmd)).await
    }

    async fn revoke_invitation(&self, cmd: &RevokeInvitation) -> Result<RevokeFact, StoreError> {
        let cmd = *cmd;
        self.run(move |c| lifecycle::revoke_invitation(c, &cmd))
            .await
    }

    async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError> {
        let cmd = cmd.clone();
        self.run(move |c| lifecycle::rotate_batch(c, &cmd)).await
    }

    async fn purge_batches(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<PurgedBatches, StoreError> {
        self.run(move |c| purge::purge_batches(c, before, limit))
            .await
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.run(move |c| outbox::claim_due_messages(c, now, lease_until, limit))
            .await
    }

    async fn record_delivery(
        &self,
        id: MessageId,
        update: DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(move |c| outbox::record_delivery(c, id, &update, now))
            .await
    }

    async fn batch_messages(&self, batch: BatchId) -> Result<Vec<OutboxMessage>, StoreError> {
        self.run(move |c| outbox::batch_messages(c, batch)).await
    }

    async fn failed_messages(
        &self,
        created_from: Timestamp,
        created_until: Timestamp,
        after: Option<(Timestamp, MessageId)>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.run(move |c| outbox::failed_messages(c, created_from, created_until, after, limit))
            .await
    }

    async fn purge_messages(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.run(move |c| purge::purge_messages(c, before, limit))
            .await
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn idempotency_begin(
        &self,
        begin: &IdempotencyBegin,
    ) -> Result<IdempotencyState, StoreError> {
        let begin = begin.clone();
        self.run(move |c| idempotency::idempotency_begin(c, &begin))
            .await
    }

    async fn idempotency_finish(
        &self,
        organization: OrganizationId,
        key_id: ApiKeyId,
        key: &str,
        started_at: Timestamp,
        response: Option<&str>,
        names_user: Option<UserId>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        let response = response.map(str::to_owned);
        // On the connection thread the check and the write run with no other statement
        // between them (an erasure runs on the same thread).
        self.run(move |c| {
            let erased = match names_user {
                Some(u) => !idempotency::user_exists(c, u)?,
                None => false,
            };
            let response = if erased { None } else { response.as_deref() };
            idempotency::idempotency_finish(c, organization, key_id, &key, started_at, response)
        })
        .await
    }

    async fn purge_idempotency(
        &self,
        expired_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        self.run(move |c| purge::purge_idempotency(c, expired_before, limit))
            .await
    }
}

#[async_trait]
impl ReadStore for SqliteStore {
    async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let email = email.clone();
        self.run(move |c| reads::find_user(c, &email)).await
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.run(move |c| reads::get_user(c, id)).await
    }

    async fn find_batch_by_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let hash = *hash;
        self.run(move |c| reads::batch_by_token(c, &hash.0)).await
    }

    async fn get_batch(
        &self,
        organization: OrganizationId,
        batch: BatchId,
    ) -> Result<Option<BatchRecord>, StoreError> {
        self.run(move |c| reads::batch_in_org(c, organization, batch))
            .await
    }

    async fn get_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        self.run(move |c| reads::get_invitation(c, organization, id))
            .await
    }

    async fn list_invitations(
        &self,
        query: &InvitationQuery,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        let query = query.clone();
        self.run(move |c| reads::list_invitations(c, &query)).await
    }

    async fn outbox_backlog(&self) -> Result<Option<OutboxBacklog>, StoreError> {
        self.run(|c| backlog::outbox_backlog(c).map(Some)).await
    }

    fn db_system_name(&self) -> &'static str {
        "sqlite"
    }
}

#[async_trait]
impl Directory for SqliteStore {
    async fn create_organization(&self, id: OrganizationId, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.run(move |c| directory::create_organization(c, id, &name))
            .await
    }

    async fn create_website(&self, website: &Website) -> Result<(), StoreError> {
        let website = website.clone();
        self.run(move |c| directory::create_website(c, &website))
            .await
    }

    async fn create_group(&self, group: &Group) -> Result<(), StoreError> {
        let group = group.clone();
        self.run(move |c| directory::create_group(c, &group)).await
    }

    async fn add_website_to_group(
        &self,
        group: GroupId,
        website: WebsiteId,
    ) -> Result<(), StoreError> {
        self.run(move |c| directory::add_website_to_group(c, group, website))
            .await
    }

    async fn create_user(&self, user: &User) -> Result<UserId, StoreError> {
        let user = user.clone();
        self.run(move |c| directory::create_user(c, &user)).await
    }

    async fn add_org_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
    ) -> Result<(), StoreError> {
        self.run(move |c| directory::add_org_member(c, organization, user, role))
            .await
    }

    async fn delete_website(&self, id: WebsiteId, at: Timestamp) -> Result<(), StoreError> {
        self.run(move |c| directory::delete_website(c, id, at))
            .await
    }

    async fn remove_org_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(move |c| directory::remove_org_member(c, organization, user, at))
            .await
    }

    async fn set_org_role(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(move |c| directory::set_org_role(c, organization, user, role, at))
            .await
    }

    async fn remove_website_from_group(
        &self,
        group: GroupId,
        website: WebsiteId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(move |c| directory::remove_website_from_group(c, group, website, at))
            .await
    }

    async fn delete_group(&self, id: GroupId, at: Timestamp) -> Result<bool, StoreError> {
        self.run(move |c| directory::delete_group(c, id, at)).await
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn access_paths(
        &self,
        user: UserId,
        website: WebsiteId,
    ) -> Result<Option<AccessFacts>, StoreError> {
        match &self.readers {
            Some(readers) => readers
                .read(|c| access::access_paths(c, user, website))
                .map_err(StoreError::from),
            None => {
                self.run(move |c| access::access_paths(c, user, website))
                    .await
            }
        }
    }

    async fn list_members(&self, q: &MemberQuery) -> Result<Option<Vec<MemberRecord>>, StoreError> {
        let q = q.clone();
        self.run(move |c| access::list_members(c, &q)).await
    }

    async fn list_user_websites(
        &self,
        q: &UserWebsitesQuery,
    ) -> Result<Vec<UserWebsiteRecord>, StoreError> {
        let q = q.clone();
        self.run(move |c| access::list_user_websites(c, &q)).await
    }

    async fn change_member(&self, cmd: &ChangeMember) -> Result<ChangeFact, StoreError> {
        let cmd = cmd.clone();
        self.run(move |c| changes::change_member(c, &cmd)).await
    }

    async fn erase_person(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<ErasureReport, StoreError> {
        let email = email.clone();
        self.run(move |c| changes::erase_person(c, &email, now))
            .await
    }
}

#[async_trait]
impl Inspect for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.run(directory::snapshot).await
    }
}
