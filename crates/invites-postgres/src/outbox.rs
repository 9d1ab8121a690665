//! The outbox: claims with `FOR UPDATE SKIP LOCKED` and a lease, delivery records, reads.

use crate::error::Error;
use crate::sql::{OUTBOX_COLUMNS, decode, decode_all, execute, message_from_row, query};
use crate::{PgStore, transaction};
use invites_core::rules;
use invites_core::{
    BatchId, DeliveryUpdate, EventKind, MessageId, MessageStatus, OutboxMessage, Timestamp,
};

/// Claims due messages in ONE statement: the rows are picked and locked by the inner
/// `SELECT … FOR UPDATE SKIP LOCKED` (a row another deliverer is claiming right now is
/// skipped, not waited for) and leased by the `UPDATE` (`next_attempt_at` = the lease's end,
/// so no deliverer picks it again until the lease runs out) and counts the attempt.
/// `RETURNING` reports each message with that attempt counted and its `next_attempt_at` as it
/// was found: the time it became due.
const CLAIM: &str = "\
UPDATE {schema}.outbox o SET next_attempt_at = $2, attempts = o.attempts + 1
FROM (SELECT id, next_attempt_at AS due_at FROM {schema}.outbox
      WHERE status = 'queued' AND next_attempt_at <= $1
      ORDER BY next_attempt_at, created_at, id
      LIMIT $3
      FOR UPDATE SKIP LOCKED) due
WHERE o.id = due.id
RETURNING o.id, o.batch_id, o.organization_id, o.recipient, o.accept_url, o.status, o.attempts,
          due.due_at AS next_attempt_at, o.created_at, o.last_error";

/// Sets a due message this version cannot decode aside: failed, with the reason (the column,
/// never the value) as its last error, and its link cleared.
const SET_ASIDE: &str = "\
UPDATE {schema}.outbox SET status = 'failed', last_error = $2, accept_url = NULL
WHERE id = $1 AND status = 'queued'";

/// Claims due messages: [`CLAIM`] in a transaction with the set-aside of the claimed rows this
/// version cannot decode, so such a row is never returned and never blocks the rest of the
/// page (which is claimed and returned as usual); marked `failed` in the same commit, it is
/// never claimed again.
pub(crate) async fn claim_due_messages(
    store: &PgStore,
    now: Timestamp,
    lease_until: Timestamp,
    limit: usize,
) -> Result<Vec<OutboxMessage>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (mut messages, unreadable) = transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q(CLAIM),
            &[&now.as_millis(), &lease_until.as_millis(), &limit],
        )
        .await?;
        let mut messages = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in &rows {
            match decode("outbox", row, message_from_row)? {
                Ok(message) => messages.push(message),
                Err(reason) => {
                    // The id is a `uuid` column: always readable.
                    let id: uuid::Uuid = row.try_get("id")?;
                    execute(&tx, &store.q(SET_ASIDE), &[&id, &reason.to_string()]).await?;
                    unreadable.push(reason);
                }
            }
        }
        tx.commit().await?;
        Ok((messages, unreadable))
    })?;
    for reason in &unreadable {
        reason.report_set_aside();
    }
    messages.sort_by_key(|m| (m.next_attempt_at, m.created_at, m.id));
    Ok(messages)
}

/// The stored statuses a delivery record still applies to, as the core decides
/// ([`rules::delivery_record_applies`]), for the statements' `status = ANY($n)`.
fn applicable_statuses() -> Vec<&'static str> {
    [
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Failed,
        MessageStatus::Cancelled,
    ]
    .into_iter()
    .filter(|s| rules::delivery_record_applies(*s))
    .map(|s| s.as_str())
    .collect()
}

/// `update` (an `UPDATE … RETURNING organization_id, batch_id` of one message, `$1` its id)
/// with its event: when it changed the message, the organization's counter is incremented
/// (its row locked until the statement's implicit commit) and the event `kind` inserted at
/// the new position, at `$now`. One statement; it returns the number of events inserted,
/// which is the number of messages changed.
fn with_event(update: &str, kind: EventKind, now: &str) -> String {
    format!(
        "WITH m AS ({update}), \
         seq AS (UPDATE {{schema}}.organizations o SET event_seq = o.event_seq + 1 \
                 FROM m WHERE o.id = m.organization_id \
                 RETURNING o.id, o.event_seq, m.batch_id) \
         INSERT INTO {{schema}}.events (organization_id, position, kind, at, batch_id, message_id) \
         SELECT id, event_seq, '{kind}', {now}, batch_id, $1 FROM seq",
        kind = kind.as_str()
    )
}

/// One conditional statement: the record is written only if the message is still in a status
/// it applies to; otherwise (a resend cancelled it, another deliverer recorded it) the row is
/// left as it is. A message that does not exist at all is an error. A `Sent` or `Failed`
/// record that applies writes its event (`email_sent`, `email_failed`, at `now`, no actor) in
/// the same statement ([`with_event`]).
pub(crate) async fn record_delivery(
    store: &PgStore,
    id: MessageId,
    update: &DeliveryUpdate,
    now: Timestamp,
) -> Result<(), Error> {
    let client = store.client().await?;
    let applies = applicable_statuses();
    let changed =
        match update {
            DeliveryUpdate::Sent { attempts } => execute(
                &client,
                &store.q(&with_event(
                    "UPDATE {schema}.outbox SET status = 'sent', attempts = $2, accept_url = NULL \
                     WHERE id = $1 AND status = ANY($3::text[]) \
                     RETURNING organization_id, batch_id",
                    EventKind::EmailSent,
                    "$4::bigint",
                )),
                &[
                    &id.0,
                    &attempts_param(*attempts),
                    &applies,
                    &now.as_millis(),
                ],
            )
            .await?,
            DeliveryUpdate::Retry {
                attempts,
                next_attempt_at,
                error,
            } => {
                execute(
                    &client,
                    &store.q(
                        "UPDATE {schema}.outbox SET attempts = $2, next_attempt_at = $3, \
                     last_error = $4 WHERE id = $1 AND status = ANY($5::text[])",
                    ),
                    &[
                        &id.0,
                        &attempts_param(*attempts),
                        &next_attempt_at.as_millis(),
                        error,
                        &applies,
                    ],
                )
                .await?
            }
            DeliveryUpdate::Failed { attempts, error } => execute(
                &client,
                &store.q(&with_event(
                    "UPDATE {schema}.outbox SET status = 'failed', attempts = $2, last_error = $3, \
                     accept_url = NULL WHERE id = $1 AND status = ANY($4::text[]) \
                     RETURNING organization_id, batch_id",
                    EventKind::EmailFailed,
                    "$5::bigint",
                )),
                &[
                    &id.0,
                    &attempts_param(*attempts),
                    error,
                    &applies,
                    &now.as_millis(),
                ],
            )
            .await?,
            DeliveryUpdate::Cancelled { attempts } => {
                execute(
                    &client,
                    &store.q(
                        "UPDATE {schema}.outbox SET status = 'cancelled', attempts = $2, \
                     accept_url = NULL WHERE id = $1 AND status = ANY($3::text[])",
                    ),
                    &[&id.0, &attempts_param(*attempts), &applies],
                )
                .await?
            }
            // Fenced by the claim's lease (`rules::deferral_applies`).
            DeliveryUpdate::Deferred {
                attempts,
                next_attempt_at,
                leased_until,
            } => {
                execute(
                    &client,
                    &store.q(
                        "UPDATE {schema}.outbox SET attempts = $2, next_attempt_at = $3 \
                     WHERE id = $1 AND status = ANY($5::text[]) AND next_attempt_at = $4",
                    ),
                    &[
                        &id.0,
                        &attempts_param(*attempts),
                        &next_attempt_at.as_millis(),
                        &leased_until.as_millis(),
                        &applies,
                    ],
                )
                .await?
            }
        };
    if changed == 0 {
        let exists = !query(
            &client,
            &store.q("SELECT 1 FROM {schema}.outbox WHERE id = $1"),
            &[&id.0],
        )
        .await?
        .is_empty();
        if !exists {
            return Err(Error::Missing(format!("no outbox message {id}")));
        }
    }
    Ok(())
}

fn attempts_param(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

/// The messages of a batch; a row this version cannot decode is left out (and reported), so
/// the batch view and the listing still show the others. Such a row was set aside by the claim
/// (or will be, once due), so it is never delivered.
pub(crate) async fn batch_messages(
    store: &PgStore,
    batch: BatchId,
) -> Result<Vec<OutboxMessage>, Error> {
    let client = store.client().await?;
    query(
        &client,
        &store.q(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM {{schema}}.outbox WHERE batch_id = $1 \
             ORDER BY created_at, id"
        )),
        &[&batch.0],
    )
    .await
    .and_then(|rows| decode_all("outbox", &rows, message_from_row))
}

/// The failed messages created in `[from, until)` after `after`, oldest first (see
/// `OutboxStore::failed_messages`); a row this version cannot decode is left out.
pub(crate) async fn failed_messages(
    store: &PgStore,
    from: Timestamp,
    until: Timestamp,
    after: Option<(Timestamp, MessageId)>,
    limit: usize,
) -> Result<Vec<OutboxMessage>, Error> {
    let client = store.client().await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // `after` as a row position; with none, a position before every row of the window.
    let (after_at, after_id) = after.map_or((i64::MIN, uuid::Uuid::nil()), |(at, id)| {
        (at.as_millis(), id.0)
    });
    query(
        &client,
        &store.q(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM {{schema}}.outbox \
             WHERE status = 'failed' AND created_at >= $1 AND created_at < $2 \
               AND (created_at, id) > ($3, $4) \
             ORDER BY created_at, id LIMIT $5"
        )),
        &[
            &from.as_millis(),
            &until.as_millis(),
            &after_at,
            &after_id,
            &limit,
        ],
    )
    .await
    .and_then(|rows| decode_all("outbox", &rows, message_from_row))
}
