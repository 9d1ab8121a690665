//! The crate's private error type and its mapping to [`StoreError`].

use invites_core::StoreError;
use rusqlite::ErrorCode;

/// Everything that can go wrong inside this adapter. Never leaves the crate: every public
/// method maps it to a [`StoreError`], keeping it as the `source`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// SQLite (or rusqlite) reported an error.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The connection thread is gone (it could not start, or the store is shutting down).
    #[error("the SQLite connection thread has stopped")]
    Closed,
    /// The operation panicked on the connection thread; its transaction was rolled back.
    #[error("a SQLite operation panicked; its transaction was rolled back")]
    Panicked,
    /// The connection thread could not be spawned.
    #[error("could not start the SQLite connection thread")]
    Spawn(#[source] std::io::Error),
    /// The database was written by a newer version of this crate.
    #[error(
        "database schema version {found} is newer than the newest version this library knows ({known})"
    )]
    NewerSchema {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The number of migrations this build knows.
        known: i64,
    },
    /// `PRAGMA user_version` holds a value no version of this crate writes.
    #[error("database schema version {0} is not a version of this library")]
    BadSchemaVersion(i64),
    /// A directory write conflicts with an existing row (same id, different content).
    #[error("{0}")]
    Conflict(String),
    /// A directory write refers to a row that does not exist.
    #[error("{0}")]
    Missing(String),
    /// A write that shared a transaction (group commit) was undone with it, for this reason.
    #[error("{0}")]
    Undone(String),
    /// A per-target unit failed while the units ran together, without a savepoint each (see
    /// `txn::isolated_units`): the pass is undone and runs again with a savepoint per unit.
    /// Never leaves the bulk write that raised it.
    #[error("a per-target unit failed; the write runs again with a savepoint per target")]
    UnitFailed,
    /// A stored row this version cannot decode, where the read is of that one thing (a batch,
    /// a user); reads of many rows leave such a row out instead.
    #[error(transparent)]
    Unreadable(#[from] crate::columns::Unreadable),
}

/// A stored value that cannot be decoded (a corrupt or foreign row).
#[derive(Debug, thiserror::Error)]
#[error("column holds an invalid value: {0}")]
pub(crate) struct Corrupt(pub(crate) String);

impl Error {
    /// A copy of this error for another job of the same transaction (group commit): SQLite
    /// failures keep their code (so busy stays retryable), others keep their text.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
                Error::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
            }
            Error::Closed => Error::Closed,
            Error::Panicked => Error::Panicked,
            other => Error::Undone(other.to_string()),
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            Error::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ),
            Error::Closed => true,
            _ => false,
        }
    }

    fn is_corrupt_row(&self) -> bool {
        matches!(self, Error::Sqlite(e) if crate::columns::unreadable_column(e).is_some())
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        if e.is_transient() {
            StoreError::unavailable(e)
        } else if matches!(
            e,
            Error::NewerSchema { .. } | Error::BadSchemaVersion(_) | Error::Unreadable(_)
        ) || e.is_corrupt_row()
        {
            StoreError::Incompatible {
                reason: e.to_string(),
            }
        } else {
            StoreError::backend(e)
        }
    }
}
