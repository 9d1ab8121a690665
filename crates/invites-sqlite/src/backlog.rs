//! [`ReadStore::outbox_backlog`](invites_core::ReadStore::outbox_backlog): how many messages are
//! queued and since when, for the outbox gauges.

use crate::error::Error;
use invites_core::Timestamp;
use invites_core::observe::OutboxBacklog;
use rusqlite::Connection;

/// Counts the queued rows through their own partial index (`outbox_due`, which also holds
/// `created_at`), so the read costs the queue, never the table.
const BACKLOG: &str = "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'queued'";

pub(crate) fn outbox_backlog(conn: &Connection) -> Result<OutboxBacklog, Error> {
    let mut stmt = conn.prepare_cached(BACKLOG)?;
    let (queued, oldest) = stmt.query_row([], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
    })?;
    Ok(OutboxBacklog {
        queued: u64::try_from(queued).unwrap_or(0),
        oldest_created_at: oldest.map(Timestamp::from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_read_covers_only_the_queued_rows_index() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(&mut conn).expect("migrate");
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {BACKLOG}"))
            .expect("explain")
            .query_map([], |row| row.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(
            plan[0].contains("USING COVERING INDEX outbox_due"),
            "{plan:?}"
        );
        assert_eq!(
            outbox_backlog(&conn).expect("read"),
            OutboxBacklog::default()
        );
    }
}
