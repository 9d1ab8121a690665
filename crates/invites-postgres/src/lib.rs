//! PostgreSQL storage for the invites library: [`PgStore`] implements the store ports of
//! `invites-core` over one PostgreSQL database, shared by any number of app servers.
//!
//! ```no_run
//! use invites_core::{Directory, Inspect, OrganizationId};
//! use invites_postgres::{PgOptions, PgStore};
//! use uuid::Uuid;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Tables in the host's own schema `invites` (created if missing, migrated once even when
//! // several servers start together).
//! let store = PgStore::connect_with(
//!     "postgresql://app@db.internal/app",
//!     PgOptions::default().schema("invites")?,
//! )
//! .await?;
//! store.create_organization(OrganizationId(Uuid::from_u128(1)), "Acme").await?;
//! assert!(store.snapshot().await?.users.is_empty());
//! # Ok(()) }
//! ```
//!
//! The crate's tests run that against a real server (see the README, "PostgreSQL").
//!
//! # Many app servers, one database
//!
//! Every write is one transaction at `READ COMMITTED` that first takes a transaction-scoped
//! advisory lock on the *invited email* (`pg_advisory_xact_lock`): every rule of the contract
//! that concerns one person (one user per email, one membership per target and user, one live
//! invitation per target and email) is then decided and written by one transaction at a time,
//! on every server, while requests for other people run in parallel. The facts are read after
//! the lock is held, so they still hold when the transaction writes. The database enforces the
//! same rules once more with constraints and partial unique indexes (see
//! `migrations/0001_initial.sql`): a host that writes the tables itself cannot break them
//! either. A transaction that fails with a serialization failure, a deadlock or a unique
//! violation (a concurrent writer that did not take the lock) is run again from the start,
//! up to [`PgOptions::max_attempts`] times, with a short random backoff.
//!
//! # The batch path: a constant number of round trips
//!
//! A bulk request's write costs two round trips for 1 or 50 targets. The first carries
//! `BEGIN`, the email lock and ONE query that reads the facts of every target; the second
//! carries ONE statement that writes every decided target (`INSERT … SELECT … FROM
//! unnest($1::uuid[])` in data-modifying CTEs: the user, the memberships, the superseded
//! invitations; or the batch, its outbox message and the invitations) and `COMMIT`. The
//! server runs a connection's requests in order, so sending them together (pipelining)
//! changes nothing but the waiting; a request cancelled between the two never hands its
//! connection back to the pool inside the transaction (the connection is closed instead).
//! The decisions are the core's (`invites_core::rules`): this crate only reads facts and
//! writes what the core decided.
//!
//! Per-target independence (docs/contract.md §3) without a savepoint per target on the fast path: if the
//! set-based write fails (a trigger, a check the host added, a full disk for one row), the
//! transaction is rolled back and the request runs again on the *slow path*: the same reads,
//! then each target's writes in its own `SAVEPOINT`. A target whose unit fails is rolled back
//! to its savepoint and reported as an error in its slot; the others commit. If PostgreSQL
//! refuses the `COMMIT` (a deferred constraint, a serialization failure), the call fails and
//! nothing of it is stored.
//!
//! # A `COMMIT` whose answer never comes
//!
//! If the connection is lost after a bulk write's `COMMIT` was sent and before PostgreSQL
//! answered (a network cut, a proxy, the server going away), the transaction may have
//! committed or not. The store does not guess: it takes the email's advisory lock on another
//! connection, which is granted once that transaction has ended on the server (PostgreSQL
//! rolls back a transaction whose connection closed), and reads back the rows it wrote (their
//! ids are the request's: the created user, the memberships with their role and time; the
//! batch and the invitations). All there: it answers as if the `COMMIT` had been answered
//! (`added`, `invited`, the queued message goes out). None there: the call fails and nothing
//! is stored, as the core's contract says. If the check cannot tell (it fails, finds only
//! some rows, or waits more than 5 s for the lock, as when the server still holds the
//! transaction open for a client it has not noticed is gone), the call fails with
//! [`StoreError::Unavailable`] whose text says **the outcome is unknown**: the core reports
//! `internal_error`, but the writes may be stored. Retrying the request is safe: it reports
//! what it then finds (`already_member`, `already_invited`). Accept, revoke and resend do not
//! check (a lost answer there fails the call, which may have committed).
//!
//! # Outbox
//!
//! Deliverers on any number of servers claim due messages with
//! `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`, setting a lease
//! (`next_attempt_at`): a message is handed to one deliverer at a time while its lease holds,
//! and comes back once it runs out (a crashed deliverer's claims are picked up again).
//!
//! # Who has access, and taking it back
//!
//! The access check (`AccessStore::access_paths`) is one statement of index probes: the
//! website by its key, its membership, the organization membership, and the memberships of
//! the groups that contain it. The member and website lists are keyset pages by id: each
//! source is an index range from the cursor (migration 6 puts the id after the equality
//! column where a list pages along it) and each row's paths are probes, written so that no
//! cached plan can turn them into a walk of a table (the crate's tests check it in buffers
//! under forced generic plans). A membership change (`change_member`) and an erasure
//! (`erase_person`) each run in one transaction holding the person's email lock, like every
//! other write about that person; a removal revokes the member's live invitation to the
//! target in the same transaction. An erasure deletes the user, its memberships, every batch
//! (in every organization), invitation and outbox message of the address, and every
//! idempotency response naming the user: the outbox and idempotency parts are scans of
//! those tables (no index holds a recipient or a response's text), the rest index probes.
//!
//! # The event log
//!
//! Every write appends its events (`invites_core::events`) in its own transaction, after its
//! other writes, as its last statement before the `COMMIT`: it increments the counter
//! `organizations.event_seq` by the number of events (`UPDATE … RETURNING`, which holds the
//! organization row's lock until the commit) and inserts the events at the positions it got
//! (migration 7). A concurrent writer of the same organization waits for that lock and then
//! reads the committed counter, so each organization's positions are 1, 2, 3, … with no gap,
//! in commit order: a reader of `read_events` that resumes after the last position it
//! processed never misses an event and never sees one twice. The bulk paths send the event
//! insert in the same round trip as their writes and `COMMIT` (one statement more per call,
//! not per event), so the lock is held for the time the server runs it. A savepoint unit that
//! fails leaves none of its events; a call that changes nothing takes no lock and writes
//! none. An erasure clears the user's id from every event (by the partial index on
//! `events.user_id`) and appends `person_erased` to each organization it deleted something
//! of, locking their rows in ascending id order. `purge_events` deletes the oldest events
//! first; the counters stay, so positions are never reused.
//!
//! # Schema and migrations
//!
//! [`PgOptions::schema`] puts the tables in a schema of the host's choice (default `public`).
//! Migrations are `.sql` files compiled into the crate, applied in order in one transaction
//! under an advisory lock (per schema), and recorded in `invites_schema_migrations`: two
//! servers starting together migrate once. Ids are `uuid`, timestamps `bigint` milliseconds
//! since the Unix epoch, emails normalised `text`. Token hashes are stored (never tokens),
//! unique, and never returned.
//!
//! Two ways to run them:
//!
//! - **On connect** (the default, convenient in development): [`PgStore::connect`] and
//!   [`PgStore::from_pool`] read the schema's version and migrate only when it is older than
//!   this build. A schema already up to date is only read (no DDL), so once migrated any
//!   role with the grants below can connect this way too.
//! - **As a separate step** (production roles that do not own their schema): the owner runs
//!   [`PgStore::migrate`] (or the `migrate` example, `cargo run -p invites-postgres --example
//!   migrate -- [--schema NAME] [URL]`) when deploying, and app servers connect with
//!   [`PgOptions::migrate`]`(false)`: they only check that the schema is at exactly this
//!   build's version and never issue DDL; a missing, older or newer schema is refused with
//!   [`ConnectError::Schema`] ([`SchemaMismatch`] says which and what to do).
//!
//! The app role then needs no CREATE privilege on the database or the schema and need not
//! own anything, only (the crate's tests run with exactly this):
//!
//! ```sql
//! GRANT USAGE ON SCHEMA invites TO app;
//! GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA invites TO app;
//! ```
//!
//! (The tables use no sequences. A later migration may add tables: grant again after it, or
//! set `ALTER DEFAULT PRIVILEGES IN SCHEMA invites GRANT … TO app` as the owner once.) A
//! database migrated by a newer version of this crate is refused in both modes.
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
//! - `read_events`: an event whose kind (or target) this version cannot read is left out (its
//!   organization named as the row), and the page is filled up from the events after it, so a
//!   page is short only at the end of the log and a reader is never stuck before it.
//! - `list_endpoints` and `claim_due_endpoints`: a webhook endpoint with a kind or a disabled
//!   reason this version cannot read is left out; the claim still leases it, so it moves
//!   behind the others and never blocks them.
//! - `get_batch`, `find_batch_by_token` and `accept_batch`: a batch is one unit, so if its row
//!   or one of its invitations cannot be decoded, that batch alone is
//!   [`StoreError::Incompatible`] (an accept never skips an invitation unseen, an email never
//!   leaves one out). The core then marks its queued message failed at delivery. `get_user`,
//!   `find_user` and `get_invitation` likewise fail for that one row only.
//!
//! # Errors
//!
//! Connection failures, an exhausted pool, shutdowns and conflicts left after the retries map
//! to [`StoreError::Unavailable`] (retryable); a row this version cannot decode and a newer
//! schema to [`StoreError::Incompatible`]; everything else to [`StoreError::Backend`]. The
//! driver's error is kept as the source. No error, `Debug` or log line holds an email, a name,
//! a token or an accept link.
//!
//! Accepting locks the batch row and its invitation rows (after the email lock), so a
//! concurrent revoke or resend of the same batch is either seen or waits; a resend takes the
//! same locks in the same order.
//!
//! # TLS
//!
//! [`PgStore::connect`] uses `NoTls` (loopback, a unix socket or a private network). A host
//! that needs TLS builds its own `deadpool_postgres::Pool` with a rustls connector and passes
//! it to [`PgStore::from_pool`].
//!
//! # Features
//!
//! `test-util` adds the `testing` module: throwaway databases (one per test, copied from a migrated
//! template, dropped with the last store handle) on the server named by `INVITES_PG_URL`.

mod access;
mod backlog;
mod bulk;
mod change;
mod directory;
mod erase;
mod error;
mod events;
mod lifecycle;
mod migrate;
mod outbox;
mod pipeline;
mod port;
mod purge;
mod sql;
#[cfg(feature = "test-util")]
pub mod testing;
mod unanswered;
mod webhooks;

use crate::error::Error;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use invites_core::StoreError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use deadpool_postgres;

/// How a [`PgStore`] uses its database.
#[derive(Clone, Debug)]
pub struct PgOptions {
    schema: String,
    pool_size: usize,
    max_attempts: u32,
    wait_timeout: Duration,
    migrate: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: "public".to_owned(),
            pool_size: 16,
            max_attempts: 20,
            wait_timeout: Duration::from_secs(10),
            migrate: true,
        }
    }
}

/// A [`PgOptions`] value that cannot be used.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("invalid PostgreSQL option `{field}`: {reason}")]
pub struct OptionError {
    /// The option.
    pub field: &'static str,
    /// Why it was refused.
    pub reason: &'static str,
}

impl PgOptions {
    /// The schema that holds the tables (default `public`); created if it does not exist.
    /// 1 to 63 characters of ASCII lowercase letters, digits and `_`, not starting with a
    /// digit and not starting with `pg_` (so it never needs quoting and never names a system
    /// schema).
    ///
    /// # Errors
    /// [`OptionError`] naming `schema` for any other name.
    pub fn schema(mut self, schema: &str) -> Result<Self, OptionError> {
        let refuse = |reason| OptionError {
            field: "schema",
            reason,
        };
        if schema.is_empty() || schema.len() > 63 {
            return Err(refuse("must be 1 to 63 characters long"));
        }
        if !schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(refuse("may hold only a-z, 0-9 and _"));
        }
        if schema.as_bytes()[0].is_ascii_digit() {
            return Err(refuse("must not start with a digit"));
        }
        if schema.starts_with("pg_") {
            return Err(refuse(
                "must not start with pg_ (reserved for system schemas)",
            ));
        }
        self.schema = schema.to_owned();
        Ok(self)
    }

    /// The number of connections [`PgStore::connect`] keeps at most (default 16). Ignored by
    /// [`PgStore::from_pool`], whose pool is the host's.
    ///
    /// # Errors
    /// [`OptionError`] naming `pool_size` for 0.
    pub fn pool_size(mut self, size: usize) -> Result<Self, OptionError> {
        if size == 0 {
            return Err(OptionError {
                field: "pool_size",
                reason: "must be at least 1",
            });
        }
        self.pool_size = size;
        Ok(self)
    }

    /// How often a transaction that lost a conflict with a concurrent one (serialization
    /// failure, deadlock, unique violation) is run at most, in all (default 20).
    ///
    /// # Errors
    /// [`OptionError`] naming `max_attempts` for 0.
    pub fn max_attempts(mut self, attempts: u32) -> Result<Self, OptionError> {
        if attempts == 0 {
            return Err(OptionError {
                field: "max_attempts",
                reason: "must be at least 1",
            });
        }
        self.max_attempts = attempts;
        Ok(self)
    }

    /// How long [`PgStore::connect`]'s pool waits for a free connection (default 10 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Whether connecting may migrate the schema (default `true`).
    ///
    /// - `true` (development, and hosts whose app role owns the schema): connecting reads the
    ///   schema's version, and only if it is older than this build runs the migrations, as
    ///   [`PgStore::migrate`] does. A schema already up to date is only read, so this also
    ///   works for a role without CREATE privileges once the schema is migrated; a migration
    ///   it cannot run fails with the server's permission error.
    /// - `false` (production roles that do not own their schema): connecting only checks the
    ///   version and never issues DDL. A schema that is missing, older or newer than this
    ///   build is refused with [`ConnectError::Schema`]; run [`PgStore::migrate`] first, as a
    ///   role that may create tables in the schema.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// The configured schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }
}

/// What [`PgStore::migrate`] found and left: schema versions, each the number of migrations
/// applied (0: no schema yet). Equal when there was nothing to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Migrated {
    /// The version before.
    pub from: u32,
    /// The version after: always the number of migrations this build knows
    /// ([`PgStore::migrations`]).
    pub to: u32,
}

/// The schema is not at the version this build reads and writes (see
/// [`ConnectError::Schema`]).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{}", self.explain())]
pub struct SchemaMismatch {
    /// The schema (the [`PgOptions::schema`] name).
    pub schema: String,
    /// Its version: the number of migrations applied, 0 when it holds no migrations table.
    pub found: u32,
    /// The version this build expects: the number of migrations it knows.
    pub expected: u32,
}

impl SchemaMismatch {
    /// The schema holds no tables of this crate (never migrated, or a wrong schema name).
    pub fn is_missing(&self) -> bool {
        self.found == 0
    }

    /// The schema is older than this build: run [`PgStore::migrate`].
    pub fn is_older(&self) -> bool {
        self.found < self.expected
    }

    /// The schema was migrated by a newer version of this crate: this build must not use it.
    pub fn is_newer(&self) -> bool {
        self.found > self.expected
    }

    fn explain(&self) -> String {
        let (schema, found, expected) = (&self.schema, self.found, self.expected);
        if self.is_missing() {
            format!(
                "schema `{schema}` holds no invites tables (this build expects version \
                 {expected}): run the migrations first (PgStore::migrate) as a role that may \
                 create tables in it"
            )
        } else if self.is_older() {
            format!(
                "schema `{schema}` is at version {found}, this build expects {expected}: run \
                 the migrations first (PgStore::migrate) as a role that may create tables in it"
            )
        } else {
            format!(
                "schema `{schema}` is at version {found}, newer than this build knows \
                 ({expected}): run a newer build of invites-postgres"
            )
        }
    }
}

/// Why [`PgStore::connect`], [`PgStore::from_pool`] or [`PgStore::migrate`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL could not be parsed (the URL itself is not repeated: it may hold a password).
    #[error("invalid PostgreSQL connection URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// The pool could not be built.
    #[error("could not build the connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    /// Connecting or migrating failed (no server, no permission: the server's error, as a
    /// [`StoreError`]).
    #[error("could not prepare the database: {0}")]
    Store(#[from] StoreError),
    /// The schema's version is not this build's: missing or older (with
    /// [`PgOptions::migrate`] off), or newer (always).
    #[error(transparent)]
    Schema(#[from] SchemaMismatch),
}

/// The PostgreSQL backend: implements the store ports of `invites-core` over a connection
/// pool. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// `"schema"`, quoted, to prefix table names.
    schema: Arc<str>,
    options: Arc<PgOptions>,
    /// Keeps a throwaway test database alive as long as the store (feature `test-util`).
    #[cfg(feature = "test-util")]
    guard: Option<Arc<testing::DropGuard>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's config holds the URL (and maybe a password): never printed.
        f.debug_struct("PgStore")
            .field("schema", &self.options.schema)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`postgresql://user[:password]@host[:port]/database`, or the
    /// key-value form `host=… user=… dbname=…`; a unix socket is a `host` that starts with
    /// `/`) with [`PgOptions::default`], and migrates the schema if it is older than this
    /// build (see [`PgOptions::migrate`]).
    ///
    /// # Errors
    /// [`ConnectError`]: a bad URL, an unreachable server, a migration the role may not run,
    /// or a schema from a newer version ([`ConnectError::Schema`]).
    pub async fn connect(url: &str) -> Result<PgStore, ConnectError> {
        PgStore::connect_with(url, PgOptions::default()).await
    }

    /// [`PgStore::connect`] with options.
    ///
    /// # Errors
    /// As [`PgStore::connect`].
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<PgStore, ConnectError> {
        let pool = build_pool(url, options.pool_size, options.wait_timeout)?;
        PgStore::from_pool_with(pool, options).await
    }

    /// A store over the host's own pool (its TLS, its sizes), with [`PgOptions::default`];
    /// migrates the schema if it is older than this build.
    ///
    /// # Errors
    /// [`ConnectError::Store`]: no connection, or a migration the role may not run;
    /// [`ConnectError::Schema`]: a schema from a newer version.
    pub async fn from_pool(pool: Pool) -> Result<PgStore, ConnectError> {
        PgStore::from_pool_with(pool, PgOptions::default()).await
    }

    /// [`PgStore::from_pool`] with options (`pool_size` and `wait_timeout` are the pool's).
    ///
    /// # Errors
    /// As [`PgStore::from_pool`]; with [`PgOptions::migrate`] off, [`ConnectError::Schema`]
    /// also for a schema that is missing or older than this build.
    pub async fn from_pool_with(pool: Pool, options: PgOptions) -> Result<PgStore, ConnectError> {
        let store = PgStore {
            pool,
            schema: format!("\"{}\"", options.schema).into(),
            options: Arc::new(options),
            #[cfg(feature = "test-util")]
            guard: None,
        };
        let mut client = store.client().await.map_err(StoreError::from)?;
        if store.options.migrate {
            migrate::migrate(&mut client, &store.options.schema).await?;
        } else {
            migrate::verify(&client, &store.options.schema).await?;
        }
        Ok(store)
    }

    /// Brings the schema of [`PgOptions::schema`] in the database at `url` up to this build's
    /// version, over one connection that is closed afterwards: the deployment step to run
    /// before app servers that connect with [`PgOptions::migrate`] off. Run it as a role that
    /// may create the schema (or create tables in it), normally its owner. Migrations run in
    /// one transaction under an advisory lock per schema, so running it from several places
    /// at once migrates once; a schema already up to date is only read.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use invites_postgres::{PgOptions, PgStore};
    /// // As the schema's owner, in the host's deploy step (e.g. `myapp migrate`):
    /// let done = PgStore::migrate(
    ///     "postgresql://owner@db.internal/app",
    ///     &PgOptions::default().schema("invites")?,
    /// )
    /// .await?;
    /// println!("schema version {} -> {}", done.from, done.to);
    /// // On every app server, as a role with USAGE on the schema and SELECT, INSERT, UPDATE,
    /// // DELETE on its tables: no DDL, refuses a schema of another version.
    /// let store = PgStore::connect_with(
    ///     "postgresql://app@db.internal/app",
    ///     PgOptions::default().schema("invites")?.migrate(false),
    /// )
    /// .await?;
    /// # drop(store); Ok(()) }
    /// ```
    ///
    /// The crate's `migrate` example is that step as a command:
    /// `cargo run -p invites-postgres --example migrate -- [--schema NAME] [URL]` (the URL
    /// from `DATABASE_URL` when not given, which keeps a password out of the process list).
    ///
    /// # Errors
    /// [`ConnectError::InvalidUrl`]; [`ConnectError::Store`]: no connection, or the role may
    /// not create what the migrations create; [`ConnectError::Schema`]: the schema is newer
    /// than this build.
    pub async fn migrate(url: &str, options: &PgOptions) -> Result<Migrated, ConnectError> {
        let pool = build_pool(url, 1, options.wait_timeout)?;
        let done = PgStore::migrate_pool(&pool, options).await;
        pool.close();
        done
    }

    /// [`PgStore::migrate`] over one connection of the host's own pool (its TLS).
    ///
    /// # Errors
    /// As [`PgStore::migrate`], without `InvalidUrl`.
    pub async fn migrate_pool(pool: &Pool, options: &PgOptions) -> Result<Migrated, ConnectError> {
        let mut client = pool
            .get()
            .await
            .map_err(|e| StoreError::from(Error::from(e)))?;
        migrate::migrate(&mut client, &options.schema).await
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The schema migrations this build knows, by version (1-based): the number of the last
    /// one is the schema version it writes.
    pub fn migrations() -> &'static [&'static str] {
        migrate::MIGRATIONS
    }

    /// `sql` with its `{schema}` placeholders replaced by this store's quoted schema.
    pub(crate) fn q(&self, sql: &str) -> String {
        sql.replace("{schema}", &self.schema)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        Ok(self.pool.get().await?)
    }
}

/// A pool of up to `size` connections to `url`, without TLS, waiting up to `wait` for one.
fn build_pool(url: &str, size: usize, wait: Duration) -> Result<Pool, ConnectError> {
    let config: tokio_postgres::Config = url.parse().map_err(ConnectError::InvalidUrl)?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(ConnectError::Pool)
}

/// Runs `$body` (an `async` block using the transaction `$tx`, which must commit it) in a
/// `READ COMMITTED` transaction of a pooled connection; runs it again from the start, with a
/// short random backoff, when it loses a conflict with a concurrent transaction.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store: &$crate::PgStore = $store;
        let mut attempt: u32 = 1;
        loop {
            let mut client = store.client().await?;
            let result: Result<_, $crate::error::Error> = async {
                let $tx = client
                    .build_transaction()
                    .isolation_level(::tokio_postgres::IsolationLevel::ReadCommitted)
                    .start()
                    .await?;
                $body
            }
            .await;
            match result {
                Err(e) if e.is_conflict() && attempt < store.options.max_attempts => {
                    drop(client);
                    $crate::backoff(attempt).await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use transaction;

/// Waits before running a transaction again: a random 0.5 to 1.5 times 2 ms × attempt,
/// capped at 50 ms.
pub(crate) async fn backoff(attempt: u32) {
    let base = (2 * u64::from(attempt)).min(50) * 1000;
    // A fresh `RandomState` is randomly keyed: enough randomness for a jitter.
    let random =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), attempt);
    let jitter = random % base;
    tokio::time::sleep(Duration::from_micros(base / 2 + jitter)).await;
}
