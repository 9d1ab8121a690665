//! Checkpoints off the request path.
//!
//! In WAL mode every commit appends pages to the `-wal` file; a *checkpoint* copies them back
//! into the database file and syncs both files. SQLite's automatic checkpoint runs inside the
//! commit that makes the log long enough, so one request in every few dozen pays for it, and
//! on a slow disk that dominates the average cost of a write.
//!
//! Instead, a store on a file installs a WAL hook on its connection that, after each commit,
//! looks at the length of the log:
//!
//! - from `soft` pages on, it nudges a background thread, which owns a second connection to
//!   the same file and runs `PASSIVE` checkpoints: they copy what they can without blocking
//!   the writer or any reader, in parallel with the next requests;
//! - from `hard` pages on (four times `soft`), it stops nudging and runs a `PASSIVE`
//!   checkpoint itself. The log can only start over from its beginning once every page in it
//!   was copied back, which a background pass never achieves while writes keep coming; by
//!   then the background thread has copied nearly all of it, so this inline pass is short,
//!   and the next write starts the log over. It is also the safety net if the background
//!   thread could not start, or is busy (then a later commit tries again).
//!
//! Durability does not change: a commit is durable as before (`PRAGMA synchronous`), and a
//! crash at any point leaves a log that SQLite replays or ignores as usual.

use crate::error::Error;
use crate::{SqliteOptions, Synchronous};
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};
use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// The nudges to the background thread (at most one waiting: it checkpoints everything
/// there is whenever it wakes).
pub(crate) fn channel() -> (SyncSender<()>, Receiver<()>) {
    sync_channel(1)
}

/// Installs the WAL hook on the store's connection (see the module docs).
pub(crate) fn install(
    conn: &mut Connection,
    options: &SqliteOptions,
    nudge: SyncSender<()>,
) -> Result<(), Error> {
    let soft = options.checkpoint_after_pages.max(1);
    let hard = soft.saturating_mul(4);
    let step = (soft / 4).max(1);
    // The log length at which the next nudge is due.
    let mut due = soft;
    conn.wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
        let pages = u32::try_from(pages).unwrap_or(0);
        if pages < due.saturating_sub(step) {
            // The log started over since the last nudge.
            due = soft;
        }
        if pages >= hard {
            // Errors are ignored on purpose: the commit already happened, and an error here
            // would make SQLite report it as failed. `Busy` (the background thread is still
            // copying, and is no longer nudged) is retried after the next commit.
            let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
        } else if pages >= due {
            // Full means a nudge is already waiting; gone means no background thread.
            let _ = nudge.try_send(());
            due = pages.saturating_add(step);
        }
        Ok(())
    }))?;
    Ok(())
}

/// Starts the background checkpoint thread on `path`. Best effort: if the thread or its
/// connection cannot start, the hook's inline checkpoints keep the log bounded. The thread
/// ends when the store's connection closes (the hook, and with it the sender, is dropped).
pub(crate) fn spawn(path: PathBuf, options: SqliteOptions, nudges: Receiver<()>) {
    let _ = std::thread::Builder::new()
        .name("invites-sqlite-checkpoint".to_owned())
        .spawn(move || {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let Ok(conn) = Connection::open_with_flags(&path, flags) else {
                return;
            };
            let synchronous = match options.synchronous {
                Synchronous::Normal => "NORMAL",
                Synchronous::Full => "FULL",
            };
            if conn.busy_timeout(options.busy_timeout).is_err()
                || conn
                    .pragma_update(None, "synchronous", synchronous)
                    .is_err()
            {
                return;
            }
            while nudges.recv().is_ok() {
                let _ = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
            }
        });
}
