//! The fact reads of the batch operations, one query each, never one per target: which targets
//! exist in the organization, the user and his organization membership, his memberships and pending
//! invitations among the targets. The core's rules decide what they mean.

use crate::columns::{
    blob, get_bool, get_role, get_ts, get_uuid, ids_of_kind, membership_table, placeholders,
};
use crate::error::Error;
use invites_core::{
    BatchId, Email, InvitationId, OrganizationId, Role, TargetId, TargetKind, Timestamp, UserId,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

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

/// The stored-pending invitations for `email` among `targets`: target -> (id, expires_at,
/// batch).
/// The partial unique index guarantees at most one per target.
pub(crate) fn pending_invitations_among(
    conn: &Connection,
    email: &Email,
    targets: &[TargetId],
) -> Result<HashMap<TargetId, (InvitationId, Timestamp, BatchId)>, Error> {
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
            "SELECT target_id, id, expires_at, batch_id FROM invitations \
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
                (
                    InvitationId(get_uuid(row, 1)?),
                    get_ts(row, 2)?,
                    BatchId(get_uuid(row, 3)?),
                ),
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
