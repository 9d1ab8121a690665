//! Connection setup and the versioned schema migrations.

use crate::error::Error;
use crate::{SqliteOptions, Synchronous};
use rusqlite::{Connection, TransactionBehavior};

/// The schema migrations, in order. Migration `i` takes the database from
/// `PRAGMA user_version = i` to `i + 1`; each runs in its own `BEGIN IMMEDIATE` transaction
/// together with the version bump. Never edit a released migration: append a new one.
/// (Migration 1 was last edited before the first release, when nothing had been deployed:
/// invitations became `WITHOUT ROWID`.)
///
/// Conventions: ids are 16-byte BLOBs (UUID bytes), timestamps are INTEGER milliseconds since
/// the Unix epoch, emails are TEXT already normalised to lowercase by `Email`, enums are TEXT
/// tags (`Role::as_str` and friends). Every uniqueness rule of the contract is a PRIMARY KEY,
/// UNIQUE constraint or partial unique index, so the database itself refuses duplicates.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
CREATE TABLE organizations (
    id   BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name TEXT NOT NULL
);

CREATE TABLE websites (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    url             TEXT NOT NULL
);
CREATE INDEX websites_by_organization ON websites (organization_id);

CREATE TABLE groups (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL
);
CREATE INDEX groups_by_organization ON groups (organization_id);

CREATE TABLE group_websites (
    group_id   BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    website_id BLOB NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, website_id)
) WITHOUT ROWID;
CREATE INDEX group_websites_by_website ON group_websites (website_id);

CREATE TABLE users (
    id             BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    email          TEXT NOT NULL UNIQUE,
    email_verified INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
    first_name     TEXT,
    last_name      TEXT
);

CREATE TABLE org_members (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    user_id         BLOB NOT NULL REFERENCES users (id),
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    PRIMARY KEY (organization_id, user_id)
) WITHOUT ROWID;

CREATE TABLE website_members (
    website_id BLOB NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (website_id, user_id)
) WITHOUT ROWID;
CREATE INDEX website_members_by_user ON website_members (user_id);

CREATE TABLE group_members (
    group_id   BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members (user_id);

CREATE TABLE batches (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    email           TEXT NOT NULL,
    token_hash      BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at      INTEGER NOT NULL,
    last_sent_at    INTEGER NOT NULL
);

CREATE TABLE invitations (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    batch_id        BLOB NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    target_kind     TEXT NOT NULL CHECK (target_kind IN ('website', 'group')),
    target_id       BLOB NOT NULL CHECK (length(target_id) = 16),
    email           TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    first_name      TEXT,
    last_name       TEXT,
    status          TEXT NOT NULL
        CHECK (status IN ('pending', 'accepted', 'revoked', 'expired', 'superseded')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) WITHOUT ROWID;
-- At most one pending invitation per (target, email): the database refuses a second one.
CREATE UNIQUE INDEX invitations_one_pending
    ON invitations (target_kind, target_id, email) WHERE status = 'pending';
CREATE INDEX invitations_by_batch ON invitations (batch_id, created_at, id);
CREATE INDEX invitations_by_organization ON invitations (organization_id, created_at, id);
CREATE INDEX invitations_by_target ON invitations (target_kind, target_id, created_at, id);
CREATE INDEX invitations_by_email ON invitations (email, created_at, id);

CREATE TABLE outbox (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    batch_id        BLOB NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    -- The batch's organization (immutable, copied from the batch on insert).
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    recipient       TEXT NOT NULL,
    accept_url      TEXT,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_error      TEXT
);
-- The deliverer's query: queued messages due now, oldest first.
CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at, id) WHERE status = 'queued';
CREATE INDEX outbox_by_batch ON outbox (batch_id, created_at, id);

CREATE TABLE idempotency (
    organization_id BLOB NOT NULL,
    key_id          BLOB NOT NULL,
    key             TEXT NOT NULL,
    fingerprint     BLOB NOT NULL CHECK (length(fingerprint) = 32),
    response        TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (organization_id, key_id, key)
) WITHOUT ROWID;
"#,
];

/// The schema version this build writes: the number of migrations.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies the connection pragmas. `file` is false for in-memory databases, which have no WAL.
pub(crate) fn configure(
    conn: &Connection,
    options: &SqliteOptions,
    file: bool,
) -> Result<(), Error> {
    // First, so that everything below (including the WAL switch) waits for other writers.
    conn.busy_timeout(options.busy_timeout)?;
    if file {
        // Returns the resulting mode as a row; WAL persists in the file once set.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    }
    let synchronous = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoint sub-journals (and temporary sort tables) in memory: when writes share a
    // transaction (group commit, see `worker`) each keeps a savepoint open around its
    // per-target ones, and past 64 KiB the sub-journal would spill to a temporary file, a
    // disk write per page the write touches.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A negative cache_size is in KiB. SQLite's default (2 MiB) is smaller than the pages a
    // busy invites database keeps touching, and every miss is a read from the OS.
    let cache_kib = i64::from(options.cache_size_kib.max(1));
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    // Enough for every fixed statement plus the variable-length IN lists of the batch reads.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

fn user_version(conn: &Connection) -> Result<i64, Error> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

fn check_version(found: i64, known: i64) -> Result<(), Error> {
    if found > known {
        Err(Error::NewerSchema { found, known })
    } else if found < 0 {
        Err(Error::BadSchemaVersion(found))
    } else {
        Ok(())
    }
}

/// Brings the schema up to [`latest_version`], one migration per transaction.
///
/// # Errors
/// [`Error::NewerSchema`] when the file was written by a newer version; SQLite errors.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let known = latest_version();
    let found = user_version(conn)?;
    check_version(found, known)?;
    if found == known {
        return Ok(());
    }
    loop {
        // Another connection (or process) may be migrating too: re-read the version under the
        // write lock, so each migration runs exactly once.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = user_version(&tx)?;
        check_version(version, known)?;
        if version == known {
            return Ok(());
        }
        // `version` is in 0..known here, so the index and the cast are in range.
        let index = usize::try_from(version).unwrap_or_default();
        tx.execute_batch(MIGRATIONS[index])?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
