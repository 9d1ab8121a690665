//! Read connections for the access check, used on the caller's thread.
//!
//! `access_paths` is the call a host makes on every request of its own users: one statement of
//! index probes, a few tens of microseconds. Sending it to the connection thread and waiting
//! for the reply costs more than the read itself (the thread has to be woken, and then the
//! caller; BENCHMARKS.md, issue 18), so a store on a file keeps a few extra connections to the
//! same file, opened read-only, and runs the check directly on the calling thread with one of
//! them. In WAL mode a reader never waits for the writer, and it sees every transaction
//! committed before it starts, so a check made after a write returned sees that write.
//!
//! The pool holds the connections that are not in use; a caller that finds it empty opens a
//! new one, and at most [`KEEP`] are kept afterwards. An in-memory store has no file to share,
//! so it reads on its connection thread, as before.

use crate::SqliteOptions;
use crate::error::Error;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::Mutex;

/// At most this many idle read connections are kept.
const KEEP: usize = 4;

/// Read-only connections to one database file.
pub(crate) struct Readers {
    path: PathBuf,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, options: SqliteOptions) -> Self {
        Readers {
            path,
            options,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on an idle read connection (or a new one), on this thread.
    pub(crate) fn read<R>(
        &self,
        read: impl FnOnce(&Connection) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = read(&conn);
        // A connection whose read failed is dropped rather than reused: it may be in a state
        // the next read should not inherit.
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEEP {
                idle.push(conn);
            }
        }
        result
    }

    fn open(&self) -> Result<Connection, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.options.busy_timeout)?;
        conn.pragma_update(None, "query_only", true)?;
        let cache_kib = i64::from(self.options.cache_size_kib.max(1));
        conn.pragma_update(None, "cache_size", -cache_kib)?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
    }
}
