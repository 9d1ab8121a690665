//! The purge ([`LifecycleStore::purge_batches`](invites_core::LifecycleStore::purge_batches),
//! [`OutboxStore::purge_messages`](invites_core::OutboxStore::purge_messages),
//! [`IdempotencyStore::purge_idempotency`](invites_core::IdempotencyStore::purge_idempotency)):
//! each call is ONE statement (its own short transaction) deleting at most `limit` rows,
//! oldest first along the indexes of migration 2. The rows are picked with `FOR UPDATE SKIP
//! LOCKED`: a row a concurrent transaction is changing (a resend renewing a batch, a begin
//! replacing a record) is skipped rather than waited for, and a row changed between the
//! statement's snapshot and its lock is checked again on its new version, so nothing is
//! deleted under a writer. Several servers may purge at once; each row goes once.
//!
//! The predicates are the SQL form of `invites_core::rules::{batch_is_purgeable,
//! message_is_purgeable, idempotency_is_expired}` (written out on each); the statuses that
//! are not finished come from `rules::message_is_finished`.

use crate::PgStore;
use crate::error::Error;
use crate::sql::{execute, query};
use invites_core::rules;
use invites_core::{PurgedBatches, Timestamp};

/// The tags of the statuses that are not finished, for `status = ANY($n)`.
fn unfinished_statuses() -> Vec<&'static str> {
    rules::unfinished_statuses().map(|s| s.as_str()).collect()
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn count(row: &tokio_postgres::Row, column: &'static str) -> Result<u64, Error> {
    let n: i64 = row.try_get(column).map_err(|_| Error::Corrupt { column })?;
    u64::try_from(n).map_err(|_| Error::Corrupt { column })
}

/// Dead batches at `$1` (not finished statuses `$2`), at most `$3`, with their rows. The
/// invitations and messages are deleted by their own CTEs (the cascade then finds nothing)
/// so that the statement can count them.
const PURGE_BATCHES: &str = "\
WITH dead AS (
    SELECT b.id FROM {schema}.batches b
    WHERE b.last_sent_at < $1
      AND NOT EXISTS (SELECT 1 FROM {schema}.invitations i
                      WHERE i.batch_id = b.id AND i.expires_at >= $1)
      AND NOT EXISTS (SELECT 1 FROM {schema}.outbox o
                      WHERE o.batch_id = b.id AND (o.status = ANY($2) OR o.next_attempt_at >= $1))
    ORDER BY b.last_sent_at, b.id
    LIMIT $3
    FOR UPDATE OF b SKIP LOCKED
), invitations AS (
    DELETE FROM {schema}.invitations i USING dead WHERE i.batch_id = dead.id RETURNING 1
), messages AS (
    DELETE FROM {schema}.outbox o USING dead WHERE o.batch_id = dead.id RETURNING 1
), batches AS (
    DELETE FROM {schema}.batches b USING dead WHERE b.id = dead.id RETURNING 1
)
SELECT (SELECT count(*) FROM batches) AS batches,
       (SELECT count(*) FROM invitations) AS invitations,
       (SELECT count(*) FROM messages) AS messages";

pub(crate) async fn purge_batches(
    store: &PgStore,
    before: Timestamp,
    limit: usize,
) -> Result<PurgedBatches, Error> {
    if limit == 0 {
        return Ok(PurgedBatches::default());
    }
    let client = store.client().await?;
    let rows = query(
        &client,
        &store.q(PURGE_BATCHES),
        &[
            &before.as_millis(),
            &unfinished_statuses(),
            &sql_limit(limit),
        ],
    )
    .await?;
    let row = rows.first().ok_or(Error::Corrupt { column: "batches" })?;
    Ok(PurgedBatches {
        batches: count(row, "batches")?,
        invitations: count(row, "invitations")?,
        messages: count(row, "messages")?,
    })
}

/// Purgeable messages at `$1` (not finished statuses `$2`), at most `$3`. The newest message
/// of a batch is decided on the statement's snapshot, before anything is deleted.
const PURGE_MESSAGES: &str = "\
DELETE FROM {schema}.outbox o WHERE o.id IN (
    SELECT m.id FROM {schema}.outbox m
    WHERE NOT (m.status = ANY($2)) AND m.next_attempt_at < $1
      AND EXISTS (SELECT 1 FROM {schema}.outbox n
                  WHERE n.batch_id = m.batch_id AND (n.created_at, n.id) > (m.created_at, m.id))
    ORDER BY m.next_attempt_at, m.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED)";

pub(crate) async fn purge_messages(
    store: &PgStore,
    before: Timestamp,
    limit: usize,
) -> Result<u64, Error> {
    if limit == 0 {
        return Ok(0);
    }
    execute(
        &store.client().await?,
        &store.q(PURGE_MESSAGES),
        &[
            &before.as_millis(),
            &unfinished_statuses(),
            &sql_limit(limit),
        ],
    )
    .await
}

/// Idempotency records created before `$1` (`rules::idempotency_is_expired`), at most `$2`.
const PURGE_IDEMPOTENCY: &str = "\
DELETE FROM {schema}.idempotency r WHERE (r.organization_id, r.key_id, r.key) IN (
    SELECT organization_id, key_id, key FROM {schema}.idempotency
    WHERE created_at < $1
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)";

pub(crate) async fn purge_idempotency(
    store: &PgStore,
    expired_before: Timestamp,
    limit: usize,
) -> Result<u64, Error> {
    if limit == 0 {
        return Ok(0);
    }
    execute(
        &store.client().await?,
        &store.q(PURGE_IDEMPOTENCY),
        &[&expired_before.as_millis(), &sql_limit(limit)],
    )
    .await
}
