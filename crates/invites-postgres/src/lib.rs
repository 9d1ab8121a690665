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
//! to its savepoint and reported as an error in its slot; the others commit. If the `COMMIT`
//! fails, the call fails and nothing of it is stored.
//!
//! # Outbox
//!
//! Deliverers on any number of servers claim due messages with
//! `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`, setting a lease
//! (`next_attempt_at`): a message is handed to one deliverer at a time while its lease holds,
//! and comes back once it runs out (a crashed deliverer's claims are picked up again).
//!
//! # Schema and migrations
//!
//! [`PgOptions::schema`] puts the tables in a schema of the host's choice (default `public`).
//! Migrations are `.sql` files compiled into the crate, applied in order on
//! [`PgStore::connect`] / [`PgStore::from_pool`] in one transaction under an advisory lock
//! (per schema), and recorded in `invites_schema_migrations`: two servers starting together
//! migrate once. A database migrated by a newer version of this crate is refused with
//! [`StoreError::Incompatible`]. Ids are `uuid`, timestamps `bigint` milliseconds since the
//! Unix epoch, emails normalised `text`. Token hashes are stored (never tokens), unique, and
//! never returned.
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

mod bulk;
mod directory;
mod error;
mod lifecycle;
mod migrate;
mod outbox;
mod pipeline;
mod port;
mod purge;
mod sql;
#[cfg(feature = "test-util")]
pub mod testing;

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
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: "public".to_owned(),
            pool_size: 16,
            max_attempts: 20,
            wait_timeout: Duration::from_secs(10),
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

    /// The configured schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }
}

/// Why [`PgStore::connect`] or [`PgStore::from_pool`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL could not be parsed (the URL itself is not repeated: it may hold a password).
    #[error("invalid PostgreSQL connection URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// The pool could not be built.
    #[error("could not build the connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    /// Connecting or migrating failed.
    #[error("could not prepare the database: {0}")]
    Store(#[from] StoreError),
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
    /// `/`) with [`PgOptions::default`], and migrates the schema.
    ///
    /// # Errors
    /// [`ConnectError`]: a bad URL, an unreachable server, or a schema from a newer version.
    pub async fn connect(url: &str) -> Result<PgStore, ConnectError> {
        PgStore::connect_with(url, PgOptions::default()).await
    }

    /// [`PgStore::connect`] with options.
    ///
    /// # Errors
    /// As [`PgStore::connect`].
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<PgStore, ConnectError> {
        let config: tokio_postgres::Config = url.parse().map_err(ConnectError::InvalidUrl)?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.wait_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(ConnectError::Pool)?;
        PgStore::from_pool_with(pool, options).await
    }

    /// A store over the host's own pool (its TLS, its sizes), with [`PgOptions::default`];
    /// migrates the schema.
    ///
    /// # Errors
    /// [`ConnectError::Store`]: no connection, or a schema from a newer version.
    pub async fn from_pool(pool: Pool) -> Result<PgStore, ConnectError> {
        PgStore::from_pool_with(pool, PgOptions::default()).await
    }

    /// [`PgStore::from_pool`] with options (`pool_size` and `wait_timeout` are the pool's).
    ///
    /// # Errors
    /// As [`PgStore::from_pool`].
    pub async fn from_pool_with(pool: Pool, options: PgOptions) -> Result<PgStore, ConnectError> {
        let store = PgStore {
            pool,
            schema: format!("\"{}\"", options.schema).into(),
            options: Arc::new(options),
            #[cfg(feature = "test-util")]
            guard: None,
        };
        migrate::migrate(&store).await.map_err(StoreError::from)?;
        Ok(store)
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
