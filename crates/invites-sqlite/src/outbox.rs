//! [`OutboxStore`](invites_core::OutboxStore): the outbox rows, their claims (leases) and delivery
//! records.

use crate::columns::{
    decode, decode_all, get_email, get_message_status, get_ts, get_u32, get_uuid, sql_limit,
};
use crate::error::Error;
use crate::events::append;
use crate::txn::immediate;
use invites_core::{
    BatchId, DeliveryUpdate, Email, EventContext, MessageId, NewEvent, OrganizationId,
    OutboxMessage, Timestamp,
};
use rusqlite::{Connection, Row, params};

pub(crate) const OUTBOX_COLUMNS: &str = "id, batch_id, organization_id, recipient, accept_url, status, attempts, next_attempt_at, created_at, last_error";

pub(crate) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: MessageId(get_uuid(row, 0)?),
        batch_id: BatchId(get_uuid(row, 1)?),
        organization: OrganizationId(get_uuid(row, 2)?),
        recipient: get_email(row, 3)?,
        accept_url: row.get(4)?,
        status: get_message_status(row, 5)?,
        attempts: get_u32(row, 6)?,
        next_attempt_at: get_ts(row, 7)?,
        created_at: get_ts(row, 8)?,
        last_error: row.get(9)?,
    })
}

/// A queued outbox message to insert.
pub(crate) struct QueuedMessage<'a> {
    pub(crate) id: MessageId,
    pub(crate) batch: BatchId,
    pub(crate) organization: OrganizationId,
    pub(crate) recipient: &'a Email,
    pub(crate) accept_url: &'a str,
    pub(crate) due_at: Timestamp,
    pub(crate) now: Timestamp,
}

/// Inserts a queued outbox message (no attempts yet, due at `due_at`, created at `now`).
pub(crate) fn insert_queued_message(conn: &Connection, m: &QueuedMessage<'_>) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO outbox (id, batch_id, organization_id, recipient, accept_url, status, attempts, \
                             next_attempt_at, created_at, last_error) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, NULL)",
    )?
    .execute(params![
        m.id.0.as_bytes(),
        m.batch.0.as_bytes(),
        m.organization.0.as_bytes(),
        m.recipient.as_str(),
        m.accept_url,
        m.due_at.as_millis(),
        m.now.as_millis()
    ])?;
    Ok(())
}

/// Claims due messages in one transaction. A due row this version cannot decode (see
/// [`decode`]) is never returned: it is set aside in the same transaction, marked `failed` with
/// the reason (the column, never the value) in `last_error` and its link cleared, so it can
/// neither block the messages behind it nor come back; the rest of the page is claimed as usual.
pub(crate) fn claim_due_messages(
    conn: &mut Connection,
    now: Timestamp,
    lease_until: Timestamp,
    limit: usize,
) -> Result<Vec<OutboxMessage>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let tx = immediate(conn)?;
    let mut messages = Vec::new();
    let mut unreadable = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS}, rowid FROM outbox \
             WHERE status = 'queued' AND next_attempt_at <= ?1 \
             ORDER BY next_attempt_at, created_at, id LIMIT ?2"
        ))?;
        let mut rows = stmt.query(params![now.as_millis(), sql_limit(limit)])?;
        while let Some(row) = rows.next()? {
            let rowid: i64 = row.get(10)?;
            match decode("outbox", row, message_from_row)? {
                Ok(message) => messages.push((rowid, message)),
                Err(reason) => unreadable.push((rowid, reason)),
            }
        }
    }
    {
        // The lease, and the attempt the claim counts (`OutboxStore::claim_due_messages`).
        let mut lease = tx.prepare_cached(
            "UPDATE outbox SET next_attempt_at = ?2, attempts = attempts + 1 WHERE rowid = ?1",
        )?;
        for (rowid, message) in &mut messages {
            lease.execute(params![*rowid, lease_until.as_millis()])?;
            message.attempts = message.attempts.saturating_add(1);
        }
        let mut set_aside = tx.prepare_cached(
            "UPDATE outbox SET status = 'failed', last_error = ?2, accept_url = NULL WHERE rowid = ?1",
        )?;
        for (rowid, reason) in &unreadable {
            set_aside.execute(params![rowid, reason.to_string()])?;
        }
    }
    tx.commit()?;
    for (_, reason) in &unreadable {
        reason.report_set_aside();
    }
    // The messages are returned with this claim's attempt counted but `next_attempt_at` as it
    // was found, before the lease (as the memory backend does): the time they became due.
    Ok(messages.into_iter().map(|(_, m)| m).collect())
}

/// Runs inside a transaction the worker opened (see `worker`, group commit). One statement:
/// an unknown id is an error that wrote nothing. A `Sent` or `Failed` record that applied
/// appends its event (`email_sent` / `email_failed`, at `now`, no actor) in the message's
/// organization.
pub(crate) fn record_delivery(
    conn: &Connection,
    message: MessageId,
    update: &DeliveryUpdate,
    now: Timestamp,
) -> Result<(), Error> {
    let id = message.0.as_bytes();
    let changed = match update {
        DeliveryUpdate::Sent { attempts } => conn
            .prepare_cached("UPDATE outbox SET status = 'sent', attempts = ?2, accept_url = NULL WHERE id = ?1 AND status = 'queued'")?
            .execute(params![id, attempts])?,
        DeliveryUpdate::Retry { attempts, next_attempt_at, error } => conn
            .prepare_cached("UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1 AND status = 'queued'")?
            .execute(params![id, attempts, next_attempt_at.as_millis(), error])?,
        DeliveryUpdate::Failed { attempts, error } => conn
            .prepare_cached(
                "UPDATE outbox SET status = 'failed', attempts = ?2, last_error = ?3, accept_url = NULL WHERE id = ?1 AND status = 'queued'",
            )?
            .execute(params![id, attempts, error])?,
        DeliveryUpdate::Cancelled { attempts } => conn
            .prepare_cached("UPDATE outbox SET status = 'cancelled', attempts = ?2, accept_url = NULL WHERE id = ?1 AND status = 'queued'")?
            .execute(params![id, attempts])?,
        // Fenced by the claim's lease (`rules::deferral_applies`).
        DeliveryUpdate::Deferred { attempts, next_attempt_at, leased_until } => conn
            .prepare_cached(
                "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3 \
                 WHERE id = ?1 AND status = 'queued' AND next_attempt_at = ?4",
            )?
            .execute(params![id, attempts, next_attempt_at.as_millis(), leased_until.as_millis()])?,
    };
    if changed == 0 {
        // Not queued any more (a resend cancelled it, another deliverer recorded it): the
        // record is moot and the row is left as it is (`rules::delivery_record_applies`).
        // Unless there is no such row at all.
        let exists: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM outbox WHERE id = ?1)")?
            .query_row([id], |row| row.get(0))?;
        if !exists {
            return Err(Error::Missing(format!("no outbox message {message}")));
        }
        return Ok(());
    }
    let event: fn(BatchId, MessageId) -> NewEvent = match update {
        DeliveryUpdate::Sent { .. } => NewEvent::email_sent,
        DeliveryUpdate::Failed { .. } => NewEvent::email_failed,
        DeliveryUpdate::Retry { .. }
        | DeliveryUpdate::Cancelled { .. }
        | DeliveryUpdate::Deferred { .. } => return Ok(()),
    };
    let (organization, batch) = conn
        .prepare_cached("SELECT organization_id, batch_id FROM outbox WHERE id = ?1")?
        .query_row([id], |row| {
            Ok((
                OrganizationId(get_uuid(row, 0)?),
                BatchId(get_uuid(row, 1)?),
            ))
        })?;
    let ctx = EventContext {
        organization,
        actor: None,
        at: now,
    };
    append(conn, &ctx, &[event(batch, message)])
}

/// The messages of a batch; a row this version cannot decode is left out (and reported), so
/// the batch view and the listing still show the others. Such a row was set aside by the claim
/// (or will be, once due), so it is never delivered.
pub(crate) fn batch_messages(
    conn: &Connection,
    batch: invites_core::BatchId,
) -> Result<Vec<OutboxMessage>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE batch_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query([batch.0.as_bytes()])?;
    Ok(decode_all("outbox", rows, message_from_row)?)
}

/// The failed messages created in `[from, until)` after `after`, oldest first (see
/// `OutboxStore::failed_messages`); a row this version cannot decode is left out.
pub(crate) fn failed_messages(
    conn: &Connection,
    from: Timestamp,
    until: Timestamp,
    after: Option<(Timestamp, MessageId)>,
    limit: usize,
) -> Result<Vec<OutboxMessage>, Error> {
    let window = "status = 'failed' AND created_at >= ?1 AND created_at < ?2";
    let rows = match after {
        None => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {window} \
                 ORDER BY created_at, id LIMIT ?3"
            ))?;
            let rows = stmt.query(params![
                from.as_millis(),
                until.as_millis(),
                sql_limit(limit)
            ])?;
            decode_all("outbox", rows, message_from_row)?
        }
        Some((at, id)) => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {window} AND (created_at, id) > (?3, ?4) \
                 ORDER BY created_at, id LIMIT ?5"
            ))?;
            let rows = stmt.query(params![
                from.as_millis(),
                until.as_millis(),
                at.as_millis(),
                id.0.as_bytes(),
                sql_limit(limit)
            ])?;
            decode_all("outbox", rows, message_from_row)?
        }
    };
    Ok(rows)
}
