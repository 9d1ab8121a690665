//! [`ReadStore::outbox_backlog`](invites_core::ReadStore::outbox_backlog): how many messages are
//! queued and since when, for the outbox gauges.

use crate::PgStore;
use crate::error::Error;
use crate::sql::query;
use invites_core::Timestamp;
use invites_core::observe::OutboxBacklog;

/// One read of the queued rows, which their partial index (`outbox_due`, holding `created_at`
/// too) covers: the planner can answer it from the queue alone, never the whole table.
const BACKLOG: &str =
    "SELECT COUNT(*), MIN(created_at) FROM {schema}.outbox WHERE status = 'queued'";

pub(crate) async fn outbox_backlog(store: &PgStore) -> Result<OutboxBacklog, Error> {
    let client = store.client().await?;
    let rows = query(&client, &store.q(BACKLOG), &[]).await?;
    let (queued, oldest): (i64, Option<i64>) = match rows.first() {
        Some(row) => (row.try_get(0)?, row.try_get(1)?),
        None => (0, None),
    };
    Ok(OutboxBacklog {
        queued: u64::try_from(queued).unwrap_or(0),
        oldest_created_at: oldest.map(Timestamp::from_millis),
    })
}
