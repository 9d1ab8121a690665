//! Column decoding, and the reads several operations share.

use crate::PgStore;
use crate::error::Error;
use invites_core::{
    BatchId, BatchRecord, Email, InvitationId, InvitationRecord, MessageId, MessageStatus,
    OrganizationId, OutboxMessage, PersonName, Role, StoredStatus, TargetId, TargetKind, Timestamp,
    User, UserId,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// Statement parameters.
pub(crate) type Params<'a> = [&'a (dyn ToSql + Sync)];

fn corrupt(column: &'static str) -> Error {
    Error::Corrupt { column }
}

/// A stored row this version cannot decode: the core's type, which every backend reports alike.
pub(crate) use invites_core::UnreadableRow as Unreadable;

/// Decodes one row of `table` with `decode_row`: `Ok(Ok(value))`, `Ok(Err(unreadable))` when a
/// stored value cannot be decoded, `Err` for any other failure.
pub(crate) fn decode<T>(
    table: &'static str,
    row: &Row,
    decode_row: impl FnOnce(&Row) -> Result<T, Error>,
) -> Result<Result<T, Unreadable>, Error> {
    match decode_row(row) {
        Ok(value) => Ok(Ok(value)),
        Err(Error::Corrupt { column }) => Ok(Err(Unreadable {
            table,
            column: column.to_owned(),
            row: row.try_get::<_, Uuid>("id").ok(),
        })),
        Err(e) => Err(e),
    }
}

/// Decodes one row of `table`; a value this version cannot decode is [`Error::Unreadable`].
pub(crate) fn decode_one<T>(
    table: &'static str,
    row: &Row,
    decode_row: impl FnOnce(&Row) -> Result<T, Error>,
) -> Result<T, Error> {
    Ok(decode(table, row, decode_row)??)
}

/// Decodes every row of `table`, leaving out (and reporting) the rows that cannot be decoded.
pub(crate) fn decode_all<T>(
    table: &'static str,
    rows: &[Row],
    decode_row: impl Fn(&Row) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match decode(table, row, &decode_row)? {
            Ok(value) => out.push(value),
            Err(unreadable) => unreadable.report_skipped(),
        }
    }
    Ok(out)
}

pub(crate) fn uuid(row: &Row, column: &'static str) -> Result<Uuid, Error> {
    row.try_get(column).map_err(|_| corrupt(column))
}

pub(crate) fn opt_uuid(row: &Row, column: &'static str) -> Result<Option<Uuid>, Error> {
    row.try_get(column).map_err(|_| corrupt(column))
}

pub(crate) fn ts(row: &Row, column: &'static str) -> Result<Timestamp, Error> {
    Ok(Timestamp::from_millis(
        row.try_get(column).map_err(|_| corrupt(column))?,
    ))
}

pub(crate) fn opt_ts(row: &Row, column: &'static str) -> Result<Option<Timestamp>, Error> {
    Ok(row
        .try_get::<_, Option<i64>>(column)
        .map_err(|_| corrupt(column))?
        .map(Timestamp::from_millis))
}

pub(crate) fn boolean(row: &Row, column: &'static str) -> Result<bool, Error> {
    row.try_get(column).map_err(|_| corrupt(column))
}

pub(crate) fn text(row: &Row, column: &'static str) -> Result<String, Error> {
    row.try_get(column).map_err(|_| corrupt(column))
}

pub(crate) fn opt_text(row: &Row, column: &'static str) -> Result<Option<String>, Error> {
    row.try_get(column).map_err(|_| corrupt(column))
}

pub(crate) fn bytes32(row: &Row, column: &'static str) -> Result<[u8; 32], Error> {
    let bytes: Vec<u8> = row.try_get(column).map_err(|_| corrupt(column))?;
    bytes.try_into().map_err(|_| corrupt(column))
}

/// An email column: must hold a normalised address (what `Email` writes).
pub(crate) fn email(row: &Row, column: &'static str) -> Result<Email, Error> {
    let text: &str = row.try_get(column).map_err(|_| corrupt(column))?;
    Email::from_stored(text).ok_or_else(|| corrupt(column))
}

pub(crate) fn name(row: &Row, column: &'static str) -> Result<Option<PersonName>, Error> {
    row.try_get::<_, Option<&str>>(column)
        .map_err(|_| corrupt(column))?
        .map(|text| PersonName::from_stored(text).ok_or_else(|| corrupt(column)))
        .transpose()
}

pub(crate) fn tag<T>(
    row: &Row,
    column: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, Error> {
    parse(&text(row, column)?).ok_or_else(|| corrupt(column))
}

pub(crate) fn opt_role(row: &Row, column: &'static str) -> Result<Option<Role>, Error> {
    match opt_text(row, column)? {
        None => Ok(None),
        Some(t) => Role::parse(&t).map(Some).ok_or_else(|| corrupt(column)),
    }
}

pub(crate) fn u32_col(row: &Row, column: &'static str) -> Result<u32, Error> {
    let n: i32 = row.try_get(column).map_err(|_| corrupt(column))?;
    u32::try_from(n).map_err(|_| corrupt(column))
}

/// The name parameter of an optional name.
pub(crate) fn name_param(name: &Option<PersonName>) -> Option<&str> {
    name.as_ref().map(PersonName::as_str)
}

/// Targets as two parallel arrays (kind tags, ids), for `unnest($1::text[], $2::uuid[])`.
pub(crate) fn target_arrays(
    targets: impl IntoIterator<Item = TargetId>,
) -> (Vec<&'static str>, Vec<Uuid>) {
    targets
        .into_iter()
        .map(|t| (t.kind().as_str(), t.uuid()))
        .unzip()
}

/// The ids of the targets of one kind.
pub(crate) fn ids_of_kind(targets: &[TargetId], kind: TargetKind) -> Vec<Uuid> {
    targets
        .iter()
        .filter(|t| t.kind() == kind)
        .map(TargetId::uuid)
        .collect()
}

/// The transaction-scoped advisory lock on one email: every write that decides a rule about
/// that person takes it first (see the crate docs). The two-key form with a fixed class keeps
/// it apart from the host's own advisory locks.
pub(crate) const LOCK_EMAIL: &str = "SELECT pg_advisory_xact_lock(1769170275, hashtext($1))";

pub(crate) const USER_COLUMNS: &str = "id, email, email_verified, first_name, last_name";

pub(crate) fn user_from_row(row: &Row) -> Result<User, Error> {
    Ok(User {
        id: UserId(uuid(row, "id")?),
        email: email(row, "email")?,
        email_verified: boolean(row, "email_verified")?,
        first_name: name(row, "first_name")?,
        last_name: name(row, "last_name")?,
    })
}

/// Invitations with their target's current name and whether the target still exists in the
/// invitation's organization.
pub(crate) const INVITATION_SELECT: &str = "\
SELECT i.id, i.batch_id, i.organization_id, i.target_kind, i.target_id,
       COALESCE(w.name, g.name, '') AS target_name,
       i.email, i.role, i.first_name, i.last_name, i.status, i.created_at, i.expires_at,
       COALESCE(w.organization_id = i.organization_id OR g.organization_id = i.organization_id, false)
           AS target_exists
FROM {schema}.invitations i
LEFT JOIN {schema}.websites w ON i.target_kind = 'website' AND w.id = i.target_id
LEFT JOIN {schema}.groups g ON i.target_kind = 'group' AND g.id = i.target_id";

/// An invitation row of [`INVITATION_SELECT`], and whether its target exists.
pub(crate) fn invitation_from_row(row: &Row) -> Result<(InvitationRecord, bool), Error> {
    let kind = tag(row, "target_kind", TargetKind::parse)?;
    let record = InvitationRecord {
        id: InvitationId(uuid(row, "id")?),
        batch_id: BatchId(uuid(row, "batch_id")?),
        organization: OrganizationId(uuid(row, "organization_id")?),
        target: kind.with_id(uuid(row, "target_id")?),
        target_name: text(row, "target_name")?,
        email: email(row, "email")?,
        role: tag(row, "role", Role::parse)?,
        first_name: name(row, "first_name")?,
        last_name: name(row, "last_name")?,
        status: tag(row, "status", StoredStatus::parse)?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
    };
    Ok((record, boolean(row, "target_exists")?))
}

pub(crate) const OUTBOX_COLUMNS: &str = "id, batch_id, organization_id, recipient, accept_url, \
    status, attempts, next_attempt_at, created_at, last_error";

pub(crate) fn message_from_row(row: &Row) -> Result<OutboxMessage, Error> {
    Ok(OutboxMessage {
        id: MessageId(uuid(row, "id")?),
        batch_id: BatchId(uuid(row, "batch_id")?),
        organization: OrganizationId(uuid(row, "organization_id")?),
        recipient: email(row, "recipient")?,
        accept_url: opt_text(row, "accept_url")?,
        status: tag(row, "status", MessageStatus::parse)?,
        attempts: u32_col(row, "attempts")?,
        next_attempt_at: ts(row, "next_attempt_at")?,
        created_at: ts(row, "created_at")?,
        last_error: opt_text(row, "last_error")?,
    })
}

/// Runs one query on anything that can (a pooled client or a transaction), preparing and
/// caching the statement on its connection.
pub(crate) async fn query<C: deadpool_postgres::GenericClient + Sync>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, Error> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// [`query`] for statements that return no rows; the number of rows changed.
pub(crate) async fn execute<C: deadpool_postgres::GenericClient + Sync>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, Error> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// The batch found by `condition` (on `b`), with its invitations: two statements sent
/// together (one round trip), the second finding the batch again by the same condition.
pub(crate) async fn batch_where<C: deadpool_postgres::GenericClient + Sync>(
    store: &PgStore,
    client: &C,
    condition: &str,
    params: &Params<'_>,
) -> Result<Option<BatchRecord>, Error> {
    let batch_sql = store.q(&format!(
        "SELECT b.id, b.organization_id, b.email, b.created_at, b.last_sent_at \
         FROM {{schema}}.batches b WHERE {condition}"
    ));
    let invitations_sql = store.q(&format!(
        "{INVITATION_SELECT} WHERE i.batch_id IN \
         (SELECT b.id FROM {{schema}}.batches b WHERE {condition}) ORDER BY i.created_at, i.id"
    ));
    let batch_statement = client.prepare_cached(&batch_sql).await?;
    let invitations_statement = client.prepare_cached(&invitations_sql).await?;
    let (rows, invitation_rows) = tokio::try_join!(
        client.query(&batch_statement, params),
        client.query(&invitations_statement, params)
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let mut batch = decode_one("batches", row, |row| {
        Ok(BatchRecord {
            id: BatchId(uuid(row, "id")?),
            organization: OrganizationId(uuid(row, "organization_id")?),
            email: email(row, "email")?,
            created_at: ts(row, "created_at")?,
            last_sent_at: ts(row, "last_sent_at")?,
            invitations: Vec::new(),
        })
    })?;
    for row in &invitation_rows {
        let (record, _) = decode_one("invitations", row, invitation_from_row)?;
        // Both statements find at most one batch (the condition is on a unique column).
        if record.batch_id == batch.id {
            batch.invitations.push(record);
        }
    }
    Ok(Some(batch))
}

/// A batch's invitations in batch order, each with whether its target exists; with `lock`,
/// the invitation rows are locked (`FOR UPDATE`) until the transaction ends, so a
/// concurrent revoke either happened before (and is seen) or waits. A batch is one unit: if
/// one of its invitations cannot be decoded, the batch cannot be read
/// ([`Error::Unreadable`]), so an accept never skips an invitation unseen and an email never
/// leaves one out.
pub(crate) async fn batch_invitations<C: deadpool_postgres::GenericClient + Sync>(
    store: &PgStore,
    client: &C,
    batch: BatchId,
    lock: bool,
) -> Result<Vec<(InvitationRecord, bool)>, Error> {
    let lock = if lock { " FOR UPDATE OF i" } else { "" };
    query(
        client,
        &store.q(&format!(
            "{INVITATION_SELECT} WHERE i.batch_id = $1 ORDER BY i.created_at, i.id{lock}"
        )),
        &[&batch.0],
    )
    .await?
    .iter()
    .map(|row| decode_one("invitations", row, invitation_from_row))
    .collect()
}

/// Inserts a queued outbox message.
pub(crate) const INSERT_QUEUED_MESSAGE: &str = "\
INSERT INTO {schema}.outbox (id, batch_id, organization_id, recipient, accept_url, status,
                             attempts, next_attempt_at, created_at, last_error)
VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, NULL)";

/// Takes an advisory lock, then runs `sql`: two statements sent together (pipelined, one
/// round trip), three with `begin` (a `BEGIN` sent first, for a pipelined transaction). The
/// query's snapshot is taken after the lock is granted (`READ COMMITTED` takes one per
/// statement), so it sees every write the lock's previous holder committed.
pub(crate) async fn locked_query<C: deadpool_postgres::GenericClient + Sync>(
    client: &C,
    begin: Option<&str>,
    (lock_sql, lock_params): (&str, &Params<'_>),
    (sql, params): (&str, &Params<'_>),
) -> Result<Vec<Row>, Error> {
    // Prepared first: a statement this connection has not seen costs a round trip of its own,
    // once per connection, outside any transaction.
    let lock = client.prepare_cached(lock_sql).await?;
    let statement = client.prepare_cached(sql).await?;
    // Polled in order, so sent in order: the `BEGIN` (if any), the lock, the query.
    let begin = async {
        match begin {
            Some(begin) => client.batch_execute(begin).await,
            None => Ok(()),
        }
    };
    let ((), _, rows) = tokio::try_join!(
        begin,
        client.execute(&lock, lock_params),
        client.query(&statement, params)
    )?;
    Ok(rows)
}
