//! The connection thread: one OS thread owns the `rusqlite::Connection` and runs the work it
//! receives over a channel, one job at a time, replying through a oneshot channel. The async
//! executor never touches SQLite.
//!
//! # Group commit
//!
//! Two kinds of jobs arrive. A *plain* job gets the connection to itself and manages its own
//! transaction (reads, migrations, the lifecycle writes). A *shared* job is a write that runs
//! inside a transaction the worker opens ([`Worker::write`]: the bulk operations and delivery
//! records). When a shared job arrives, the worker also takes every shared job already
//! waiting in the channel (up to [`MAX_GROUP`]) and runs them in ONE `BEGIN IMMEDIATE`
//! transaction, one after the other, then commits once. Under concurrency this writes each
//! touched B-tree page once per group instead of once per request; alone, a shared job is
//! exactly one transaction, as before. While writers keep arriving together (the last group
//! had more than one job), the thread waits up to [`GATHER`] for the ones just behind before
//! it starts, so that a burst of concurrent requests shares one commit instead of the first
//! going alone; a lone writer never waits.
//!
//! A request's outcome depends only on its own targets (docs/contract.md §3), never on the requests it
//! happened to share a transaction with:
//!
//! - each shared job runs in its own savepoint (`SAVEPOINT job`), released when it succeeds;
//!   when it fails (or panics), even after writing, the worker rolls back to the savepoint, so
//!   that job alone gets its error and nothing of it is stored, and the group goes on;
//! - when SQLite itself rolls the whole transaction back while a job runs (a `RAISE(ROLLBACK)`
//!   or `ON CONFLICT ROLLBACK`, disk full, ...), that job gets its error and the jobs that had
//!   already run in the transaction were undone with it: the worker runs them again, from the
//!   start, in a new transaction, followed by the jobs not yet run. This is why a shared job
//!   is an `Fn`: it may run more than once, and each run decides from the database as it finds
//!   it. Every lost transaction takes its culprit out of the group, so a group ends after at
//!   most [`MAX_GROUP`] transactions;
//! - a job's reply is sent only after the `COMMIT`; if the `COMMIT` itself fails (or `BEGIN`
//!   does), every job of that transaction gets an error and nothing of any of them is stored;
//! - jobs run in arrival order, so the group is equivalent to running them one after another
//!   (a job that got an error as if it had never run).

use crate::error::Error;
use rusqlite::Connection;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// At most this many shared jobs share one transaction.
pub(crate) const MAX_GROUP: usize = 32;

/// How long the thread waits for more shared jobs before starting a group, when the last
/// group had more than one (see `serve`).
const GATHER: Duration = Duration::from_micros(100);

/// A job that gets the connection to itself.
type Plain = Box<dyn FnOnce(&mut Connection) + Send>;

/// A write that runs inside a transaction opened by the worker, possibly with others.
trait Shared: Send {
    /// Runs the work on `conn`, inside the open transaction and the job's savepoint; it may
    /// be called again, in a new transaction, when SQLite rolled back the one it ran in. On
    /// failure returns a copy of the error it keeps for its reply.
    fn run(&mut self, conn: &Connection) -> Result<(), Error>;
    /// Replies once the job's fate is known: `None` when its transaction committed, else the
    /// error that undid it.
    fn finish(self: Box<Self>, undone: Option<&Error>);
}

/// A unit of work for the connection thread.
enum Job {
    Plain(Plain),
    Shared(Box<dyn Shared>),
}

struct SharedCall<R, F> {
    work: F,
    /// The outcome of the last run; `None` before the first, or if it panicked.
    result: Option<Result<R, Error>>,
    reply: oneshot::Sender<Result<R, Error>>,
}

impl<R, F> Shared for SharedCall<R, F>
where
    R: Send + 'static,
    F: Fn(&Connection) -> Result<R, Error> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> Result<(), Error> {
        // An earlier run's outcome was undone with its transaction.
        self.result = None;
        let result = (self.work)(conn);
        let copy = result.as_ref().err().map(Error::duplicate);
        self.result = Some(result);
        copy.map_or(Ok(()), Err)
    }

    fn finish(self: Box<Self>, undone: Option<&Error>) {
        let reply = match (self.result, undone) {
            // Its own failure wins: nothing of it was stored, whatever became of the others.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Some(e)) => Err(e.duplicate()),
            (Some(Ok(value)), None) => Ok(value),
            (None, Some(e)) => Err(e.duplicate()),
            (None, None) => Err(Error::Panicked),
        };
        // The caller may have gone away (its future dropped); the work is done regardless.
        let _ = self.reply.send(reply);
    }
}

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

    /// Runs `work` on the connection thread, alone, and waits for its result without blocking
    /// the executor. `work` manages its own transaction.
    pub(crate) async fn call<R, F>(&self, work: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, Error> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Plain = Box::new(move |conn| {
            // The caller may have gone away (its future dropped); the work is done regardless.
            let _ = reply_tx.send(work(conn));
        });
        self.jobs.send(Job::Plain(job)).map_err(|_| Error::Closed)?;
        // The reply sender is dropped without a reply only if `work` panicked.
        reply_rx.await.map_err(|_| Error::Panicked)?
    }

    /// Runs the write `work` inside a transaction the worker opens (and may share with other
    /// queued writes, see the module docs), in a savepoint of its own; the result arrives once
    /// that transaction committed. If `work` returns `Err` (or panics), everything it wrote
    /// is rolled back and the other writes of the transaction are not affected. `work` must
    /// not begin, commit or roll back the transaction, nor release or roll back savepoints it
    /// did not open. It may be run more than once: if SQLite rolls back the transaction
    /// because of a later write, `work` runs again in a new one; each run must decide from
    /// the database alone.
    pub(crate) async fn write<R, F>(&self, work: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: Fn(&Connection) -> Result<R, Error> + Send + 'static,
    {
        let (reply, reply_rx) = oneshot::channel();
        let job = SharedCall {
            work,
            result: None,
            reply,
        };
        self.jobs
            .send(Job::Shared(Box::new(job)))
            .map_err(|_| Error::Closed)?;
        reply_rx.await.map_err(|_| Error::Panicked)?
    }
}

/// The thread's loop: run jobs until every sender is gone.
fn serve(mut conn: Connection, inbox: &mpsc::Receiver<Job>) {
    let mut next: Option<Job> = None;
    // Whether the last group had company: writers are arriving concurrently.
    let mut busy = false;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match inbox.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        match job {
            Job::Plain(job) => run_plain(&mut conn, job),
            Job::Shared(first) => {
                let mut group = VecDeque::from([first]);
                // While writers arrive concurrently, wait a moment for the ones that are just
                // behind (concurrent requests send within microseconds of each other), so
                // they share the commit; a lone writer never waits.
                let deadline = busy.then(|| Instant::now() + GATHER);
                while group.len() < MAX_GROUP {
                    let received = match deadline {
                        Some(deadline) => inbox
                            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                            .ok(),
                        None => inbox.try_recv().ok(),
                    };
                    match received {
                        Some(Job::Shared(job)) => group.push_back(job),
                        Some(plain) => {
                            // Runs after the group, keeping arrival order.
                            next = Some(plain);
                            break;
                        }
                        None => break,
                    }
                }
                busy = group.len() > 1;
                run_group(&conn, group);
            }
        }
    }
    // Dropping `conn` closes the database (and checkpoints the WAL if it is the last one).
}

fn run_plain(conn: &mut Connection, job: Plain) {
    if catch_unwind(AssertUnwindSafe(|| job(conn))).is_err() && !conn.is_autocommit() {
        // A panic unwound through a transaction guard, which rolls back on drop; make sure
        // no transaction is left open for the next job whatever happened.
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), Error> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs shared jobs in as few transactions as possible: one, unless SQLite rolls a
/// transaction back half-way (see the module docs).
///
/// Each job runs in its own savepoint ([`run_isolated`]), so a job that fails after writing
/// leaves nothing and the others are kept. When a job loses the whole transaction, it is
/// answered with its error, and the jobs that ran before it (undone with the transaction) go
/// back to the front of the queue, to run again in the next transaction. Each round either
/// commits or takes one job out of the queue, so the loop ends.
fn run_group(conn: &Connection, mut queue: VecDeque<Box<dyn Shared>>) {
    while !queue.is_empty() {
        if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
            for job in queue {
                job.finish(Some(&e));
            }
            return;
        }
        let mut ran: Vec<Box<dyn Shared>> = Vec::with_capacity(queue.len());
        let mut lost = false;
        while let Some(mut job) = queue.pop_front() {
            match run_isolated(conn, job.as_mut()) {
                Ok(Isolated::Kept) => ran.push(job),
                // Nothing of it is left, whatever becomes of the transaction: the caller
                // learns of the panic now (an earlier run's outcome, if any, was reset).
                Ok(Isolated::Panicked) => job.finish(None),
                Err(e) => {
                    job.finish(Some(&e));
                    lost = true;
                    break;
                }
            }
        }
        if lost {
            if !conn.is_autocommit() {
                // The transaction could not be kept (its savepoint broke down): drop it.
                let _ = conn.execute_batch("ROLLBACK");
            }
            // Undone with it: they run again, in arrival order, before the others.
            for job in ran.into_iter().rev() {
                queue.push_front(job);
            }
            continue;
        }
        let undone = exec(conn, "COMMIT").err();
        if undone.is_some() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for job in ran {
            job.finish(undone.as_ref());
        }
    }
}

/// What became of a job run in its savepoint, the transaction still open.
enum Isolated {
    /// It succeeded (its writes are kept) or failed (rolled back to its savepoint, nothing of
    /// it is left); its outcome waits for the `COMMIT`.
    Kept,
    /// It panicked; rolled back to its savepoint, nothing of it is left.
    Panicked,
}

/// Runs `job` in its own savepoint of the open transaction: released when the job succeeds,
/// rolled back to and released when it fails or panics, so that a failing job leaves no trace
/// even if it wrote. `Err` means the transaction is lost: SQLite rolled it back while the job
/// ran (the error is the job's own, if it has one), or the savepoint statements failed (then
/// the transaction may still be open and must be rolled back by the caller).
fn run_isolated(conn: &Connection, job: &mut dyn Shared) -> Result<Isolated, Error> {
    exec(conn, "SAVEPOINT job")?;
    let outcome = catch_unwind(AssertUnwindSafe(|| job.run(conn)));
    if conn.is_autocommit() {
        return Err(match outcome {
            Ok(Err(e)) => e,
            _ => Error::Undone("SQLite rolled back the transaction while this write ran".into()),
        });
    }
    match outcome {
        Ok(Ok(())) => {
            exec(conn, "RELEASE job")?;
            Ok(Isolated::Kept)
        }
        failed => {
            exec(conn, "ROLLBACK TO job")?;
            exec(conn, "RELEASE job")?;
            Ok(if failed.is_ok() {
                Isolated::Kept
            } else {
                Isolated::Panicked
            })
        }
    }
}
