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
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_replaced_status.sql"),
    include_str!("migrations/0003_purge_indexes.sql"),
    include_str!("migrations/0004_access_indexes.sql"),
    include_str!("migrations/0005_events.sql"),
    include_str!("migrations/0006_webhooks.sql"),
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
