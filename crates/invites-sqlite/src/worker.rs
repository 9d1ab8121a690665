//! The connection thread: one OS thread owns the `rusqlite::Connection` and runs the closures
//! it receives over a channel, one at a time, replying through a oneshot channel. The async
//! executor never touches SQLite.

use crate::error::Error;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// A unit of work for the connection thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The sending side of the connection thread. Cloning it shares the thread; when the last
/// clone is dropped the channel closes, the thread leaves its loop and closes the connection.
#[derive(Clone)]
pub(crate) struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread, which opens the connection with `open`; returns once it is open (or
    /// failed to open).
    pub(crate) async fn start(
        open: impl FnOnce() -> Result<Connection, Error> + Send + 'static,
    ) -> Result<Self, Error> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), Error>>();
        std::thread::Builder::new()
            .name("invites-sqlite".to_owned())
            .spawn(move || {
                let conn = match catch_unwind(AssertUnwindSafe(open)) {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err(Error::Panicked));
                        return;
                    }
                };
                if ready_tx.send(Ok(())).is_ok() {
                    serve(conn, &inbox);
                }
            })
            .map_err(Error::Spawn)?;
        ready_rx.await.map_err(|_| Error::Closed)??;
        Ok(Worker { jobs })
    }

    /// Runs `work` on the connection thread and waits for its result without blocking the
    /// executor.
    pub(crate) async fn call<R, F>(&self, work: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, Error> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have gone away (its future dropped); the work is done regardless.
            let _ = reply_tx.send(work(conn));
        });
        self.jobs.send(job).map_err(|_| Error::Closed)?;
        // The reply sender is dropped without a reply only if `work` panicked.
        reply_rx.await.map_err(|_| Error::Panicked)?
    }
}

/// The thread's loop: run jobs until every sender is gone.
fn serve(mut conn: Connection, inbox: &mpsc::Receiver<Job>) {
    while let Ok(job) = inbox.recv() {
        if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() && !conn.is_autocommit() {
            // A panic unwound through a transaction guard, which rolls back on drop; make sure
            // no transaction is left open for the next job whatever happened.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    // Dropping `conn` closes the database (and checkpoints the WAL if it is the last one).
}
