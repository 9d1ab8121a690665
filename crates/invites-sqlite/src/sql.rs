//! Column encoding and decoding, and the reads several operations share.

use crate::error::{Corrupt, Error};
use invites_core::{
    BatchId, BatchRecord, Email, InvitationId, InvitationRecord, MessageId, MessageStatus, OrgRole,
    OrganizationId, OutboxMessage, PersonName, Role, StoredStatus, TargetId, TargetKind, Timestamp,
    User, UserId,
};
use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::HashMap;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Decoding. Every failure is a `FromSqlConversionFailure`, which maps to
// `StoreError::Incompatible` (a row this code cannot have written).

fn corrupt(index: usize, ty: Type, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, ty, Box::new(Corrupt(what)))
}

pub(crate) fn get_uuid(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    Ok(Uuid::from_bytes(row.get::<_, [u8; 16]>(index)?))
}

pub(crate) fn get_ts(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_millis(row.get(index)?))
}

pub(crate) fn get_email(row: &Row<'_>, index: usize) -> rusqlite::Result<Email> {
    let text: String = row.get(index)?;
    match Email::parse(&text) {
        Ok(email) if email.as_str() == text => Ok(email),
        _ => Err(corrupt(
            index,
            Type::Text,
            format!("not a normalised email: {text:?}"),
        )),
    }
}

pub(crate) fn get_name(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<PersonName>> {
    let Some(text) = row.get::<_, Option<String>>(index)? else {
        return Ok(None);
    };
    match PersonName::parse(&text) {
        Ok(Some(name)) if name.as_str() == text => Ok(Some(name)),
        _ => Err(corrupt(
            index,
            Type::Text,
            format!("not a valid name: {text:?}"),
        )),
    }
}

fn get_tag<T>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| corrupt(index, Type::Text, format!("unknown tag {text:?}")))
}

pub(crate) fn get_role(row: &Row<'_>, index: usize) -> rusqlite::Result<Role> {
    get_tag(row, index, Role::parse)
}

pub(crate) fn get_org_role(row: &Row<'_>, index: usize) -> rusqlite::Result<OrgRole> {
    get_tag(row, index, OrgRole::parse)
}

pub(crate) fn get_kind(row: &Row<'_>, index: usize) -> rusqlite::Result<TargetKind> {
    get_tag(row, index, TargetKind::parse)
}

pub(crate) fn get_invitation_status(row: &Row<'_>, index: usize) -> rusqlite::Result<StoredStatus> {
    get_tag(row, index, StoredStatus::parse)
}

pub(crate) fn get_message_status(row: &Row<'_>, index: usize) -> rusqlite::Result<MessageStatus> {
    get_tag(row, index, MessageStatus::parse)
}

pub(crate) fn get_u32(row: &Row<'_>, index: usize) -> rusqlite::Result<u32> {
    let n: i64 = row.get(index)?;
    u32::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, n))
}

pub(crate) fn get_bool(row: &Row<'_>, index: usize) -> rusqlite::Result<bool> {
    match row.get::<_, i64>(index)? {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(rusqlite::Error::IntegralValueOutOfRange(index, n)),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers.

/// The SQL parameter of a name.
pub(crate) fn name_param(name: &Option<PersonName>) -> Option<&str> {
    name.as_ref().map(PersonName::as_str)
}

/// `?first, ?first+1, ...` (`n` numbered placeholders), for an `IN (...)` list.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The membership table and its target column for a target kind (static names only).
pub(crate) fn membership_table(kind: TargetKind) -> (&'static str, &'static str) {
    match kind {
        TargetKind::Website => ("website_members", "website_id"),
        TargetKind::Group => ("group_members", "group_id"),
    }
}

/// The ids of `targets` of one kind, in order.
pub(crate) fn ids_of_kind(
    targets: impl IntoIterator<Item = TargetId>,
    kind: TargetKind,
) -> Vec<Uuid> {
    targets
        .into_iter()
        .filter(|t| t.kind() == kind)
        .map(|t| t.uuid())
        .collect()
}

fn blob(id: Uuid) -> Value {
    Value::Blob(id.as_bytes().to_vec())
}

// ---------------------------------------------------------------------------------------------
// Shared reads.

/// Which of `targets` exist in `organization` (one query per target kind present).
pub(crate) fn existing_targets(
    conn: &Connection,
    organization: OrganizationId,
    targets: &[TargetId],
) -> Result<std::collections::HashSet<TargetId>, Error> {
    let mut found = std::collections::HashSet::new();
    for kind in [TargetKind::Website, TargetKind::Group] {
        let ids = ids_of_kind(targets.iter().copied(), kind);
        if ids.is_empty() {
            continue;
        }
        let table = match kind {
            TargetKind::Website => "websites",
            TargetKind::Group => "groups",
        };
        // Looked up by id (the primary key) and the organization compared here: with the
        // organization in the WHERE clause and a long IN list, SQLite's planner prefers the
        // by-organization index and scans every target of the organization.
        let sql = format!(
            "SELECT id, organization_id FROM {table} WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(ids.into_iter().map(blob)))?;
        while let Some(row) = rows.next()? {
            if get_uuid(row, 1)? == organization.0 {
                found.insert(kind.with_id(get_uuid(row, 0)?));
            }
        }
    }
    Ok(found)
}

/// The explicit memberships of `user` among `targets`, with their roles (one query per kind).
pub(crate) fn memberships_among(
    conn: &Connection,
    user: UserId,
    targets: &[TargetId],
) -> Result<HashMap<TargetId, Role>, Error> {
    let mut found = HashMap::new();
    for kind in [TargetKind::Website, TargetKind::Group] {
        let ids = ids_of_kind(targets.iter().copied(), kind);
        if ids.is_empty() {
            continue;
        }
        let (table, column) = membership_table(kind);
        let sql = format!(
            "SELECT {column}, role FROM {table} WHERE user_id = ?1 AND {column} IN ({})",
            placeholders(2, ids.len())
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let params = std::iter::once(blob(user.0)).chain(ids.into_iter().map(blob));
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            found.insert(kind.with_id(get_uuid(row, 0)?), get_role(row, 1)?);
        }
    }
    Ok(found)
}

/// The stored-pending invitations for `email` among `targets`: target -> (id, expires_at).
/// The partial unique index guarantees at most one per target.
pub(crate) fn pending_invitations_among(
    conn: &Connection,
    email: &Email,
    targets: &[TargetId],
) -> Result<HashMap<TargetId, (InvitationId, Timestamp)>, Error> {
    let mut found = HashMap::new();
    // Most requests are for an address with no pending invitation at all: one look at the
    // address's invitations (by email) spares the per-target lookups below, which land on a
    // different page of the pending index for every target.
    let any: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM invitations WHERE email = ?1 AND status = 'pending')",
        )?
        .query_row([email.as_str()], |row| get_bool(row, 0))?;
    if !any {
        return Ok(found);
    }
    for kind in [TargetKind::Website, TargetKind::Group] {
        let ids = ids_of_kind(targets.iter().copied(), kind);
        if ids.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT target_id, id, expires_at FROM invitations \
             WHERE status = 'pending' AND email = ?1 AND target_kind = ?2 AND target_id IN ({})",
            placeholders(3, ids.len())
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let params = [
            Value::Text(email.as_str().to_owned()),
            Value::Text(kind.as_str().to_owned()),
        ]
        .into_iter()
        .chain(ids.into_iter().map(blob));
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            found.insert(
                kind.with_id(get_uuid(row, 0)?),
                (InvitationId(get_uuid(row, 1)?), get_ts(row, 2)?),
            );
        }
    }
    Ok(found)
}

/// The user with `email` and whether they are a member of `organization` (one query).
pub(crate) fn user_with_org_access(
    conn: &Connection,
    email: &Email,
    organization: OrganizationId,
) -> Result<Option<(UserId, bool)>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, EXISTS (SELECT 1 FROM org_members m \
                              WHERE m.organization_id = ?2 AND m.user_id = u.id) \
         FROM users u WHERE u.email = ?1",
    )?;
    Ok(stmt
        .query_row(params![email.as_str(), organization.0.as_bytes()], |row| {
            Ok((UserId(get_uuid(row, 0)?), get_bool(row, 1)?))
        })
        .optional()?)
}

pub(crate) const USER_COLUMNS: &str = "id, email, email_verified, first_name, last_name";

pub(crate) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId(get_uuid(row, 0)?),
        email: get_email(row, 1)?,
        email_verified: get_bool(row, 2)?,
        first_name: get_name(row, 3)?,
        last_name: get_name(row, 4)?,
    })
}

pub(crate) fn find_user(conn: &Connection, email: &Email) -> Result<Option<User>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = ?1"
    ))?;
    Ok(stmt.query_row([email.as_str()], user_from_row).optional()?)
}

pub(crate) fn get_user(conn: &Connection, id: UserId) -> Result<Option<User>, Error> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?;
    Ok(stmt
        .query_row([id.0.as_bytes()], user_from_row)
        .optional()?)
}

/// Inserts a user row.
pub(crate) fn insert_user(
    conn: &Connection,
    id: UserId,
    email: &Email,
    verified: bool,
    first_name: &Option<PersonName>,
    last_name: &Option<PersonName>,
) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO users (id, email, email_verified, first_name, last_name) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id.0.as_bytes(),
        email.as_str(),
        verified,
        name_param(first_name),
        name_param(last_name)
    ])?;
    Ok(())
}

/// The columns of an invitation record, with its target's name and whether the target still
/// exists, from `invitations i` joined to the target tables. Use with [`invitation_from_row`].
pub(crate) const INVITATION_SELECT: &str = "\
SELECT i.id, i.batch_id, i.organization_id, i.target_kind, i.target_id,
       COALESCE(w.name, g.name, '') AS target_name,
       i.email, i.role, i.first_name, i.last_name, i.status, i.created_at, i.expires_at,
       (w.organization_id = i.organization_id OR g.organization_id = i.organization_id) AS target_exists
FROM invitations i
LEFT JOIN websites w ON i.target_kind = 'website' AND w.id = i.target_id
LEFT JOIN groups g ON i.target_kind = 'group' AND g.id = i.target_id";

/// Decodes a row of [`INVITATION_SELECT`]: the record and whether its target exists (in the
/// invitation's organization).
pub(crate) fn invitation_from_row(row: &Row<'_>) -> rusqlite::Result<(InvitationRecord, bool)> {
    let kind = get_kind(row, 3)?;
    let record = InvitationRecord {
        id: InvitationId(get_uuid(row, 0)?),
        batch_id: BatchId(get_uuid(row, 1)?),
        organization: OrganizationId(get_uuid(row, 2)?),
        target: kind.with_id(get_uuid(row, 4)?),
        target_name: row.get(5)?,
        email: get_email(row, 6)?,
        role: get_role(row, 7)?,
        first_name: get_name(row, 8)?,
        last_name: get_name(row, 9)?,
        status: get_invitation_status(row, 10)?,
        created_at: get_ts(row, 11)?,
        expires_at: get_ts(row, 12)?,
    };
    Ok((record, get_bool(row, 13)?))
}

/// The invitations of a batch in batch order (created_at, id), each with whether its target
/// still exists.
pub(crate) fn batch_invitations(
    conn: &Connection,
    batch: BatchId,
) -> Result<Vec<(InvitationRecord, bool)>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "{INVITATION_SELECT} WHERE i.batch_id = ?1 ORDER BY i.created_at, i.id"
    ))?;
    let rows = stmt.query_map([batch.0.as_bytes()], invitation_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A batch with its invitations, found by `condition` (an SQL expression over `b` with
/// parameters `?1` and `?2`).
fn batch_where(
    conn: &Connection,
    condition: &str,
    p1: &[u8],
    p2: Option<&[u8]>,
) -> Result<Option<BatchRecord>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT b.id, b.organization_id, b.email, b.created_at, b.last_sent_at FROM batches b WHERE {condition}"
    ))?;
    let map = |row: &Row<'_>| {
        Ok(BatchRecord {
            id: BatchId(get_uuid(row, 0)?),
            organization: OrganizationId(get_uuid(row, 1)?),
            email: get_email(row, 2)?,
            created_at: get_ts(row, 3)?,
            last_sent_at: get_ts(row, 4)?,
            invitations: Vec::new(),
        })
    };
    let found = match p2 {
        Some(p2) => stmt.query_row(params![p1, p2], map),
        None => stmt.query_row(params![p1], map),
    }
    .optional()?;
    let Some(mut batch) = found else {
        return Ok(None);
    };
    batch.invitations = batch_invitations(conn, batch.id)?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    Ok(Some(batch))
}

pub(crate) fn batch_by_token(
    conn: &Connection,
    hash: &[u8; 32],
) -> Result<Option<BatchRecord>, Error> {
    batch_where(conn, "b.token_hash = ?1", hash, None)
}

pub(crate) fn batch_in_org(
    conn: &Connection,
    organization: OrganizationId,
    batch: BatchId,
) -> Result<Option<BatchRecord>, Error> {
    batch_where(
        conn,
        "b.id = ?1 AND b.organization_id = ?2",
        batch.0.as_bytes(),
        Some(organization.0.as_bytes()),
    )
}

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
