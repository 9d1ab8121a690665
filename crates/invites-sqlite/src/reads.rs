//! [`ReadStore`](invites_core::ReadStore): users, batches and invitations read back, and the
//! paginated list.

use crate::columns::{
    decode, get_bool, get_email, get_invitation_status, get_kind, get_name, get_role, get_ts,
    get_uuid, sql_limit,
};
use crate::error::Error;
use invites_core::rules::{self, ExpiryBound};
use invites_core::{
    BatchId, BatchRecord, Email, InvitationFilter, InvitationId, InvitationQuery, InvitationRecord,
    OrganizationId, User, UserId,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

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
    Ok(stmt
        .query_row([email.as_str()], |row| decode("users", row, user_from_row))
        .optional()?
        .transpose()?)
}

pub(crate) fn get_user(conn: &Connection, id: UserId) -> Result<Option<User>, Error> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?;
    Ok(stmt
        .query_row([id.0.as_bytes()], |row| decode("users", row, user_from_row))
        .optional()?
        .transpose()?)
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
/// still exists. A batch is one unit: if one of its invitations cannot be decoded, the batch
/// cannot be read ([`Error::Unreadable`]), so an accept never skips an invitation unseen and an
/// email never leaves one out.
pub(crate) fn batch_invitations(
    conn: &Connection,
    batch: BatchId,
) -> Result<Vec<(InvitationRecord, bool)>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "{INVITATION_SELECT} WHERE i.batch_id = ?1 ORDER BY i.created_at, i.id"
    ))?;
    let rows = stmt.query_map([batch.0.as_bytes()], |row| {
        decode("invitations", row, invitation_from_row)
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// A batch with its invitations, found by `condition` (an SQL expression over `b` with
/// parameters `?1` and `?2`).
pub(crate) fn batch_where(
    conn: &Connection,
    condition: &str,
    p1: &[u8],
    p2: Option<&[u8]>,
) -> Result<Option<BatchRecord>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT b.id, b.organization_id, b.email, b.created_at, b.last_sent_at FROM batches b WHERE {condition}"
    ))?;
    let map = |row: &Row<'_>| {
        decode("batches", row, |row| {
            Ok(BatchRecord {
                id: BatchId(get_uuid(row, 0)?),
                organization: OrganizationId(get_uuid(row, 1)?),
                email: get_email(row, 2)?,
                created_at: get_ts(row, 3)?,
                last_sent_at: get_ts(row, 4)?,
                invitations: Vec::new(),
            })
        })
    };
    let found = match p2 {
        Some(p2) => stmt.query_row(params![p1, p2], map),
        None => stmt.query_row(params![p1], map),
    }
    .optional()?
    .transpose()?;
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

pub(crate) fn get_invitation(
    conn: &Connection,
    organization: OrganizationId,
    id: InvitationId,
) -> Result<Option<InvitationRecord>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "{INVITATION_SELECT} WHERE i.id = ?1 AND i.organization_id = ?2"
        ))?
        .query_row(params![id.0.as_bytes(), organization.0.as_bytes()], |row| {
            decode("invitations", row, invitation_from_row)
        })
        .optional()?
        .transpose()?
        .map(|(record, _)| record))
}

/// One page of invitations. A row this version cannot decode is left out (and reported), and
/// the page is filled up from the rows after it, so a page holds `limit` rows unless the list
/// ends: the core's cursor (made from the last row returned) stays right, and a short page
/// still means the end. The rows after a left-out one are found from its stored position,
/// whatever its values.
pub(crate) fn list_invitations(
    conn: &Connection,
    query: &InvitationQuery,
) -> Result<Vec<InvitationRecord>, Error> {
    let mut sql = format!("{INVITATION_SELECT} WHERE i.organization_id = ?");
    let mut values = vec![Value::Blob(query.organization.0.as_bytes().to_vec())];
    if let Some(allow) = &query.websites {
        if allow.is_empty() {
            return Ok(Vec::new());
        }
        sql.push_str(&format!(
            " AND i.target_kind = 'website' AND i.target_id IN ({})",
            vec!["?"; allow.len()].join(", ")
        ));
        values.extend(allow.iter().map(|w| Value::Blob(w.0.as_bytes().to_vec())));
    }
    match &query.filter {
        InvitationFilter::Target(target) => {
            sql.push_str(" AND i.target_kind = ? AND i.target_id = ?");
            values.push(Value::Text(target.kind().as_str().to_owned()));
            values.push(Value::Blob(target.uuid().as_bytes().to_vec()));
        }
        InvitationFilter::Email(email) => {
            sql.push_str(" AND i.email = ?");
            values.push(Value::Text(email.as_str().to_owned()));
        }
        // The status as seen at `now`: its stored forms, from the core's rules.
        InvitationFilter::Status(view) => {
            let forms: Vec<String> = rules::stored_forms(*view)
                .iter()
                .map(|(status, bound)| {
                    values.push(Value::Text(status.as_str().to_owned()));
                    match bound {
                        ExpiryBound::Any => "i.status = ?".to_owned(),
                        ExpiryBound::After => {
                            values.push(Value::Integer(query.now.as_millis()));
                            "(i.status = ? AND i.expires_at > ?)".to_owned()
                        }
                        ExpiryBound::AtOrBefore => {
                            values.push(Value::Integer(query.now.as_millis()));
                            "(i.status = ? AND i.expires_at <= ?)".to_owned()
                        }
                    }
                })
                .collect();
            sql.push_str(&format!(" AND ({})", forms.join(" OR ")));
        }
    }
    // The position to resume after, as stored values (a left-out row's may not decode).
    let mut after: Option<(Value, Value)> = query.after.map(|(created_at, id)| {
        (
            Value::Integer(created_at.as_millis()),
            Value::Blob(id.0.as_bytes().to_vec()),
        )
    });
    let mut page = Vec::new();
    loop {
        let want = query.limit - page.len();
        let mut sql = sql.clone();
        let mut values = values.clone();
        if let Some((created_at, id)) = &after {
            sql.push_str(" AND (i.created_at > ? OR (i.created_at = ? AND i.id > ?))");
            values.push(created_at.clone());
            values.push(created_at.clone());
            values.push(id.clone());
        }
        sql.push_str(" ORDER BY i.created_at, i.id LIMIT ?");
        values.push(Value::Integer(sql_limit(want)));
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
        let mut found = 0;
        while let Some(row) = rows.next()? {
            found += 1;
            match decode("invitations", row, invitation_from_row)? {
                Ok((record, _)) => page.push(record),
                Err(unreadable) => unreadable.report_skipped(),
            }
            after = Some((row.get(11)?, row.get(0)?));
        }
        // Done when the list ended or the page is full (every row read was kept).
        if found < want || page.len() == query.limit {
            return Ok(page);
        }
    }
}
