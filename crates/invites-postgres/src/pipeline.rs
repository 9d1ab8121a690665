//! Pipelined transactions: `BEGIN` travels with the transaction's first statements and
//! `COMMIT` with its last, so the batch writes' fast paths wait for 2 round trips instead of 4.
//!
//! PostgreSQL runs a connection's requests in the order they arrive, so a statement sent
//! right after `BEGIN` (without waiting for its answer) runs inside the transaction, and a
//! `COMMIT` sent right after the last write commits it, or, if that write failed, ends the
//! aborted transaction (the server answers `ROLLBACK`). tokio-postgres sends a request the
//! first time its future is polled, and `tokio::try_join!` polls its futures in order, so the
//! order on the wire is the order written.
//!
//! A connection is never handed back to the pool inside a transaction: [`PipelinedTx::end`]
//! rolls back one that did not commit, and one dropped mid-flight (its future cancelled) is
//! taken out of the pool and closed, which makes the server roll back.

use crate::PgStore;
use crate::error::Error;
use crate::sql::Params;
use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::{Row, Statement};

/// The statement that opens every pipelined transaction (the crate's isolation level).
const BEGIN: &str = "START TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// A pooled connection with a transaction that may be open: from creation (its `BEGIN` may
/// already be on the wire) until a `COMMIT` was answered, or [`PipelinedTx::end`] rolled it
/// back.
pub(crate) struct PipelinedTx {
    client: Option<Object>,
    open: bool,
    /// A `COMMIT` was sent and its answer never came (see [`PipelinedTx::commit_unanswered`]).
    unanswered: bool,
}

impl PipelinedTx {
    /// A connection from the store's pool, for one transaction.
    pub(crate) async fn start(store: &PgStore) -> Result<PipelinedTx, Error> {
        Ok(PipelinedTx {
            client: Some(store.client().await?),
            open: true,
            unanswered: false,
        })
    }

    /// Whether a `COMMIT` was answered.
    pub(crate) fn committed(&self) -> bool {
        !self.open
    }

    /// Whether a `COMMIT` was sent and failed in a way that leaves its outcome unknown (the
    /// connection was lost before the answer came: [`Error::may_have_committed`]). The
    /// transaction may have committed; only reading what it wrote, on another connection,
    /// tells (`crate::unanswered`).
    pub(crate) fn commit_unanswered(&self) -> bool {
        self.unanswered
    }

    /// Notes a failure of a round trip that carried a `COMMIT`.
    fn commit_failed(&mut self, e: tokio_postgres::Error) -> Error {
        let e = Error::from(e);
        self.unanswered = e.may_have_committed();
        e
    }

    fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("the connection is held until the transaction ends")
    }

    /// Prepares `sql` on this connection (cached per connection).
    pub(crate) async fn prepare(&self, sql: &str) -> Result<Statement, Error> {
        Ok(self.client().prepare_cached(sql).await?)
    }

    /// Sends `BEGIN`, the advisory lock `lock` and the query `query` together: one round
    /// trip ([`locked_query`](crate::sql::locked_query)).
    pub(crate) async fn begin_locked_query(
        &self,
        lock: (&str, &Params<'_>),
        query: (&str, &Params<'_>),
    ) -> Result<Vec<Row>, Error> {
        crate::sql::locked_query(self.client(), Some(BEGIN), lock, query).await
    }

    /// Runs the statements in order (a `None` is skipped), then commits: one round trip.
    /// `Ok` only when all of them and the `COMMIT` succeeded. The bulk writes send their rows,
    /// then their events (`crate::events`, the organization's counter taken last), then the
    /// `COMMIT`: the counter's lock is held for the time the server runs the event insert.
    pub(crate) async fn execute_all_and_commit(
        &mut self,
        statements: [Option<(&Statement, &Params<'_>)>; 3],
    ) -> Result<(), Error> {
        let client = self.client();
        let [first, second, third] = statements;
        let ((), (), (), ()) = tokio::try_join!(
            execute_some(client, first),
            execute_some(client, second),
            execute_some(client, third),
            client.batch_execute("COMMIT")
        )
        .map_err(|e| self.commit_failed(e))?;
        self.open = false;
        Ok(())
    }

    /// Commits: one round trip.
    pub(crate) async fn commit(&mut self) -> Result<(), Error> {
        self.client().batch_execute("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    /// Hands the connection back to the pool, rolling back first if the transaction did not
    /// commit (an error path: a `ROLLBACK` with no transaction open only draws a warning). A
    /// connection that cannot roll back is closed instead.
    pub(crate) async fn end(mut self) {
        if self.open && self.client().batch_execute("ROLLBACK").await.is_ok() {
            self.open = false;
        }
        // Drop: back to the pool if closed, out of it otherwise.
    }
}

/// Runs `statement` if there is one (sent when first polled).
async fn execute_some(
    client: &Object,
    statement: Option<(&Statement, &Params<'_>)>,
) -> Result<(), tokio_postgres::Error> {
    match statement {
        Some((statement, params)) => client.execute(statement, params).await.map(drop),
        None => Ok(()),
    }
}

impl Drop for PipelinedTx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if self.open {
                // Cancelled mid-transaction (or a failed rollback): never reuse the
                // connection. Taken out of the pool, it closes when dropped here and the
                // server rolls back.
                drop(Object::take(client));
            }
        }
    }
}

/// Runs `$body` (an `async` block using `$tx`, a `&mut` [`PipelinedTx`], which must commit
/// it, or may return `Ok` after a `COMMIT` whose answer was lost) on a pooled connection; runs it again from the start, with a short random backoff,
/// when it loses a conflict with a concurrent transaction (as `transaction!` does). A macro,
/// not a function taking an async closure, so the future stays `Send` for `async_trait`.
macro_rules! pipelined {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store: &$crate::PgStore = $store;
        let mut attempt: u32 = 1;
        loop {
            let mut open = $crate::pipeline::PipelinedTx::start(store).await?;
            let result: Result<_, $crate::error::Error> = {
                let $tx = &mut open;
                $body.await
            };
            debug_assert!(
                result.is_err() || open.committed() || open.commit_unanswered(),
                "a pipelined body returned Ok without committing"
            );
            open.end().await;
            match result {
                Err(e) if e.is_conflict() && attempt < store.options.max_attempts => {
                    $crate::backoff(attempt).await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use pipelined;
