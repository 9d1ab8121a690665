//! The purge ([`LifecycleStore::purge_batches`](invites_core::LifecycleStore::purge_batches),
//! [`OutboxStore::purge_messages`](invites_core::OutboxStore::purge_messages),
//! [`IdempotencyStore::purge_idempotency`](invites_core::IdempotencyStore::purge_idempotency),
//! [`EventStore::purge_events`](invites_core::EventStore::purge_events)):
//! bounded deletes by cutoff, each one `BEGIN IMMEDIATE` transaction of at most `limit` rows,
//! oldest first along the indexes of migrations 3 and 5 (events: whole groups, see
//! [`purge_events`]). The predicates are the SQL form of
//! `invites_core::rules::{batch_is_purgeable, message_is_purgeable, idempotency_is_expired}`
//! (written out on each), with the unfinished message statuses taken from
//! `rules::message_is_finished`.

use crate::columns::sql_limit;
use crate::error::Error;
use crate::txn::immediate;
use invites_core::rules;
use invites_core::{PurgedBatches, Timestamp};
use rusqlite::{Connection, params};
use std::sync::LazyLock;

/// The tags of the statuses that are not finished, as an SQL list (`'queued'`): the
/// statuses are fixed identifiers of the core, never input.
fn unfinished_list() -> String {
    rules::unfinished_statuses()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The dead batches at `?1`, oldest first, at most `?2`.
static DEAD_BATCHES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT b.id FROM batches b \
         WHERE b.last_sent_at < ?1 \
           AND NOT EXISTS (SELECT 1 FROM invitations i WHERE i.batch_id = b.id AND i.expires_at >= ?1) \
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.batch_id = b.id \
                           AND (o.status IN ({unfinished}) OR o.next_attempt_at >= ?1)) \
         ORDER BY b.last_sent_at, b.id LIMIT ?2",
        unfinished = unfinished_list()
    )
});

/// Up to `?2` purgeable messages at `?1`, oldest first. The `IN (SELECT …)` list is computed
/// before any row is deleted, so "not the newest of its batch" is decided on the rows as they
/// were.
static PURGEABLE_MESSAGES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM outbox WHERE id IN ( \
           SELECT m.id FROM outbox m \
           WHERE m.status NOT IN ({unfinished}) AND m.next_attempt_at < ?1 \
             AND EXISTS (SELECT 1 FROM outbox n WHERE n.batch_id = m.batch_id \
                         AND (n.created_at, n.id) > (m.created_at, m.id)) \
           ORDER BY m.next_attempt_at, m.id LIMIT ?2)",
        unfinished = unfinished_list()
    )
});

pub(crate) fn purge_batches(
    conn: &mut Connection,
    before: Timestamp,
    limit: usize,
) -> Result<PurgedBatches, Error> {
    let mut purged = PurgedBatches::default();
    if limit == 0 {
        return Ok(purged);
    }
    let tx = immediate(conn)?;
    let dead: Vec<[u8; 16]> = tx
        .prepare_cached(&DEAD_BATCHES)?
        .query_map(params![before.as_millis(), sql_limit(limit)], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in &dead {
        // Explicit deletes (not the cascade) so that the call can say what went.
        purged.invitations += tx
            .prepare_cached("DELETE FROM invitations WHERE batch_id = ?1")?
            .execute([id])? as u64;
        purged.messages += tx
            .prepare_cached("DELETE FROM outbox WHERE batch_id = ?1")?
            .execute([id])? as u64;
        purged.batches += tx
            .prepare_cached("DELETE FROM batches WHERE id = ?1")?
            .execute([id])? as u64;
    }
    tx.commit()?;
    Ok(purged)
}

pub(crate) fn purge_messages(
    conn: &mut Connection,
    before: Timestamp,
    limit: usize,
) -> Result<u64, Error> {
    bounded_delete(conn, &PURGEABLE_MESSAGES, before, limit)
}

pub(crate) fn purge_idempotency(
    conn: &mut Connection,
    expired_before: Timestamp,
    limit: usize,
) -> Result<u64, Error> {
    bounded_delete(conn, PURGEABLE_IDEMPOTENCY, expired_before, limit)
}

/// Deletes whole groups of events (the events of one call, see `events`) with `at < before`,
/// oldest first, until at least `limit` events went or none is left, in one `BEGIN
/// IMMEDIATE` transaction; how many events went (the last group can take it past `limit`).
/// The organizations' counters are not touched, so positions are never given out again.
pub(crate) fn purge_events(
    conn: &mut Connection,
    before: Timestamp,
    limit: usize,
) -> Result<u64, Error> {
    if limit == 0 {
        return Ok(0);
    }
    let tx = immediate(conn)?;
    // Every group holds at least one event: `limit` groups are enough.
    let groups: Vec<([u8; 16], i64, i64, bool)> = tx
        .prepare_cached(PURGEABLE_EVENT_GROUPS)?
        .query_map(params![before.as_millis(), sql_limit(limit)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    // Only a group naming two or more users has `event_users` rows (and no `user_id`), and
    // there are rarely any: one look at the table spares a search per group.
    let any_users: bool = tx
        .prepare_cached(ANY_EVENT_USERS)?
        .query_row([], |r| r.get(0))?;
    let mut deleted = 0u64;
    for (organization, last, first, no_single_user) in &groups {
        let key = params![organization, last];
        tx.prepare_cached(crate::events::DELETE_GROUP)?
            .execute(key)?;
        if any_users && *no_single_user {
            tx.prepare_cached(crate::events::DELETE_GROUP_USERS)?
                .execute(key)?;
        }
        // The group's events (its positions); one for a row whose positions are out of order.
        deleted += u64::try_from(last.saturating_sub(*first))
            .unwrap_or(0)
            .saturating_add(1);
        if deleted >= limit as u64 {
            break;
        }
    }
    tx.commit()?;
    Ok(deleted)
}

/// The groups of events with `at < ?1`, oldest first (ties by organization and last
/// position: the order of `event_groups_by_at`), at most `?2`, and whether each has no single
/// user (so may have `event_users` rows).
const PURGEABLE_EVENT_GROUPS: &str = "SELECT organization_id, last_position, first_position, \
    user_id IS NULL \
    FROM event_groups WHERE at < ?1 ORDER BY at, organization_id, last_position LIMIT ?2";
/// Whether any group names two or more users (has `event_users` rows).
const ANY_EVENT_USERS: &str = "SELECT EXISTS (SELECT 1 FROM event_users)";

/// Up to `?2` idempotency records created strictly before `?1`
/// (`rules::idempotency_is_expired`), oldest first.
const PURGEABLE_IDEMPOTENCY: &str = "DELETE FROM idempotency \
    WHERE (organization_id, key_id, key) IN ( \
      SELECT organization_id, key_id, key FROM idempotency \
      WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)";

/// Runs `delete` (parameters: the cutoff, the limit) in one `BEGIN IMMEDIATE` transaction;
/// the rows it deleted.
fn bounded_delete(
    conn: &mut Connection,
    delete: &str,
    cutoff: Timestamp,
    limit: usize,
) -> Result<u64, Error> {
    if limit == 0 {
        return Ok(0);
    }
    let tx = immediate(conn)?;
    let deleted = tx
        .prepare_cached(delete)?
        .execute(params![cutoff.as_millis(), sql_limit(limit)])?;
    tx.commit()?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of `sql`, one line per step.
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        stmt.query_map(params![0i64, 10i64], |row| row.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn each_purge_walks_its_index_oldest_first() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(&mut conn).expect("migrate");
        for (sql, index) in [
            (DEAD_BATCHES.as_str(), "batches_by_last_sent"),
            (PURGEABLE_MESSAGES.as_str(), "outbox_by_next_attempt"),
            (PURGEABLE_IDEMPOTENCY, "idempotency_by_created"),
            (PURGEABLE_EVENT_GROUPS, "event_groups_by_at"),
        ] {
            let steps = plan(&conn, sql);
            assert!(
                steps.iter().any(|s| s.contains(index)),
                "{index} not used: {steps:#?}"
            );
            // Oldest first straight from the index: no sort of the whole table.
            assert!(
                !steps.iter().any(|s| s.contains("TEMP B-TREE FOR ORDER BY")),
                "{steps:#?}"
            );
        }
    }
}
