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
//! going alone; a lone writer never waits. The contract of each job is unchanged:
//!
//! - a shared job writes only in per-target savepoints, so one that fails has written nothing
//!   and gets its own error; the other jobs of the group are not affected (see [`run_group`]
//!   for a job that fails after writing);
//! - a job's reply is sent only after the `COMMIT`; if the `COMMIT` fails (or SQLite rolls the
//!   whole transaction back while a later job runs), every job of the transaction gets an
//!   error and nothing of any of them is stored;
//! - jobs run in arrival order, so the group is equivalent to running them one after another.

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
    /// Runs the work on `conn`, inside the open transaction. On failure returns a copy of the
    /// error it keeps for its reply.
    fn run(&mut self, conn: &Connection) -> Result<(), Error>;
    /// Replies once the transaction's fate is known: `None` when it committed, else the error
    /// that undid it.
    fn finish(self: Box<Self>, undone: Option<&Error>);
}

/// A unit of work for the connection thread.
enum Job {
    Plain(Plain),
    Shared(Box<dyn Shared>),
}

struct SharedCall<R, F> {
    work: Option<F>,
    result: Option<Result<R, Error>>,
    reply: oneshot::Sender<Result<R, Error>>,
}

impl<R, F> Shared for SharedCall<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, Error> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> Result<(), Error> {
        let Some(work) = self.work.take() else {
            return Err(Error::Panicked);
        };
        let result = work(conn);
        let copy = result.as_ref().err().map(Error::duplicate);
        self.result = Some(result);
        copy.map_or(Ok(()), Err)
    }

    fn finish(self: Box<Self>, undone: Option<&Error>) {
        let reply = match (self.result, undone) {
            // Its own failure wins: that is what rolled it back.
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
    /// queued writes, see the module docs); the result arrives once that transaction
    /// committed. `work` must not begin, commit or roll back the transaction, and should
    /// write only inside savepoints it releases or rolls back itself: if it returns `Err`
    /// after writing, the whole transaction is rolled back and every write in it fails.
    pub(crate) async fn write<R, F>(&self, work: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, Error> + Send + 'static,
    {
        let (reply, reply_rx) = oneshot::channel();
        let job = SharedCall {
            work: Some(work),
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

/// Runs shared jobs in as few transactions as possible (one, unless a transaction is lost
/// half-way, in which case the jobs after it get a new one).
///
/// The jobs need no savepoint of their own: a shared job either succeeds, or fails before
/// writing anything (its reads failed: it is simply answered with its error), or fails after
/// writing, which only happens when the savepoint machinery of its per-target units broke
/// down. Then the whole transaction is rolled back and every job in it gets an error, as if
/// its `COMMIT` had failed. `total_changes` tells the last two apart. (A savepoint per job
/// would cost more than it saves: SQLite would keep every page the job touches in the
/// savepoint's journal.)
fn run_group(conn: &Connection, mut queue: VecDeque<Box<dyn Shared>>) {
    while !queue.is_empty() {
        if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
            for job in queue {
                job.finish(Some(&e));
            }
            return;
        }
        let mut ran: Vec<Box<dyn Shared>> = Vec::with_capacity(queue.len());
        let mut lost: Option<Error> = None;
        while let Some(mut job) = queue.pop_front() {
            let before = conn.total_changes();
            let outcome = catch_unwind(AssertUnwindSafe(|| job.run(conn)));
            let failed = !matches!(outcome, Ok(Ok(())));
            if conn.is_autocommit() || (failed && conn.total_changes() != before) {
                // SQLite rolled the transaction back (e.g. disk full), or a job failed half-way
                // through its writes: nothing of this transaction may be kept.
                let ran_to_end = outcome.is_ok();
                let e = match outcome {
                    Ok(Err(e)) => e,
                    _ => Error::Undone("the transaction was rolled back".to_owned()),
                };
                // A panicked job is dropped: its caller sees the reply channel close.
                if ran_to_end {
                    ran.push(job);
                }
                lost = Some(e);
                break;
            }
            // A job that failed without writing is answered with its own error; a panicked
            // one (that wrote nothing) is dropped, and its caller sees the channel close.
            if outcome.is_ok() {
                ran.push(job);
            }
        }
        let undone = match lost {
            Some(e) => Some(e),
            None => exec(conn, "COMMIT").err(),
        };
        if undone.is_some() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for job in ran {
            job.finish(undone.as_ref());
        }
    }
}
