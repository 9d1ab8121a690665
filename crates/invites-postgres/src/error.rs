//! The crate's private error type and its mapping to [`StoreError`].

use invites_core::StoreError;
use tokio_postgres::error::SqlState;

/// Everything that can go wrong inside this adapter. Never leaves the crate except as the
/// `source` of a [`StoreError`] (or of a [`ConnectError`](crate::ConnectError)).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The server (or the driver) reported an error.
    #[error(transparent)]
    Pg(#[from] tokio_postgres::Error),
    /// No connection could be taken from the pool.
    #[error("no PostgreSQL connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A stored value this code cannot have written (a corrupt or foreign row). Names the
    /// column, never the value (which may be personal data).
    #[error("stored row could not be read: column {column}")]
    Corrupt {
        /// The column.
        column: &'static str,
    },
    /// [`Error::Corrupt`] with its table, where a read of that one thing (a batch, a user)
    /// meets it; reads of many rows leave such a row out instead.
    #[error(transparent)]
    Unreadable(#[from] crate::sql::Unreadable),
    /// A directory write conflicts with an existing row (same id, other content).
    #[error("{0}")]
    Conflict(String),
    /// A write refers to a row that does not exist.
    #[error("{0}")]
    Missing(String),
    /// A `COMMIT` was sent, the connection was lost before its answer came, and reading the
    /// rows the transaction wrote could not tell whether it committed: its writes may be
    /// stored, or not.
    #[error(
        "the outcome of a commit is unknown (the connection was lost before PostgreSQL answered COMMIT, and {why}): its writes may or may not be stored"
    )]
    CommitUnknown {
        /// Why the check could not tell.
        why: &'static str,
        /// The check's error or the commit's (sanitized, see [`ServerError`]).
        #[source]
        source: invites_core::BoxError,
    },
}

impl Error {
    /// The SQLSTATE of a server error.
    pub(crate) fn code(&self) -> Option<&SqlState> {
        match self {
            Error::Pg(e) => e.code(),
            Error::Pool(deadpool_postgres::PoolError::Backend(e)) => e.code(),
            _ => None,
        }
    }

    /// A conflict with a concurrent transaction that running the whole transaction again
    /// resolves: serialization failure, deadlock, or a unique violation (another server
    /// inserted the row between our read and our write; the retry reads it).
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(
            self.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::UNIQUE_VIOLATION
        )
    }

    /// Whether a `COMMIT` that failed with this error may still have taken effect: the
    /// connection failed (closed, an I/O error, or the server ended the session with a
    /// `FATAL` or `PANIC`) before an answer came. Any other server error is an answer: the
    /// transaction was rolled back.
    pub(crate) fn may_have_committed(&self) -> bool {
        match self {
            Error::Pg(e) => match e.as_db_error() {
                Some(db) => matches!(db.severity(), "FATAL" | "PANIC"),
                None => true,
            },
            _ => false,
        }
    }

    /// The connection or the server is unavailable (retrying later may help).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Pool(_) | Error::CommitUnknown { .. } => true,
            Error::Pg(e) => {
                if e.is_closed() {
                    return true;
                }
                if let Some(code) = e.code() {
                    // 08: connection exception; 53: insufficient resources; 57P0x: admin or
                    // crash shutdown, cannot connect now; 40: transaction rollback
                    // (serialization failure, deadlock) left over after the store's retries.
                    let code = code.code();
                    return ["08", "53", "57P0", "40"]
                        .iter()
                        .any(|prefix| code.starts_with(prefix));
                }
                std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            _ => false,
        }
    }

    /// A server error raised by a statement (not by the connection): the transaction is
    /// aborted but the connection is fine.
    pub(crate) fn is_statement_error(&self) -> bool {
        match self {
            Error::Pg(e) => e.as_db_error().is_some() && !self.is_transient(),
            _ => false,
        }
    }
}

/// A server error as it leaves the crate: the SQLSTATE, the server's message and the
/// constraint it names, nothing else. The server's DETAIL, WHERE and HINT fields are dropped:
/// they may quote row values (a duplicate key's email, for one), and errors reach logs.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL error {code}: {message}{}", constraint.as_ref().map(|c| format!(" (constraint {c})")).unwrap_or_default())]
pub(crate) struct ServerError {
    /// The SQLSTATE.
    pub(crate) code: String,
    /// The primary message.
    pub(crate) message: String,
    /// The constraint, if the error names one.
    pub(crate) constraint: Option<String>,
}

impl Error {
    /// This error with every server error reduced to a [`ServerError`].
    pub(crate) fn sanitized(self) -> invites_core::BoxError {
        let db = match &self {
            Error::Pg(e) => e.as_db_error(),
            Error::Pool(deadpool_postgres::PoolError::Backend(e)) => e.as_db_error(),
            _ => None,
        };
        match db {
            Some(db) => Box::new(ServerError {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
                constraint: db.constraint().map(str::to_owned),
            }),
            None => Box::new(self),
        }
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        if e.is_transient() {
            StoreError::unavailable(e.sanitized())
        } else if matches!(e, Error::Corrupt { .. } | Error::Unreadable(_)) {
            StoreError::Incompatible {
                reason: e.to_string(),
            }
        } else {
            StoreError::backend(e.sanitized())
        }
    }
}
