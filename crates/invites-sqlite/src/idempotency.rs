//! [`IdempotencyStore`](invites_core::IdempotencyStore): idempotency records.

use crate::columns::get_ts;
use crate::error::Error;
use crate::txn::immediate;
use invites_core::rules::{self, IdempotencyDecision, StoredIdempotency};
use invites_core::{ApiKeyId, IdempotencyBegin, IdempotencyState, OrganizationId, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn idempotency_begin(
    conn: &mut Connection,
    begin: &IdempotencyBegin,
) -> Result<IdempotencyState, Error> {
    let tx = immediate(conn)?;
    let record_key = params![
        begin.organization.0.as_bytes(),
        begin.key_id.0.as_bytes(),
        begin.key
    ];
    let found = tx
        .prepare_cached(
            "SELECT fingerprint, response, created_at FROM idempotency \
             WHERE organization_id = ?1 AND key_id = ?2 AND key = ?3",
        )?
        .query_row(record_key, |row| {
            Ok((
                row.get::<_, [u8; 32]>(0)?,
                row.get::<_, Option<String>>(1)?,
                get_ts(row, 2)?,
            ))
        })
        .optional()?;
    let found = found.map(|(fingerprint, response, created_at)| StoredIdempotency {
        fingerprint,
        response,
        created_at,
    });
    if let IdempotencyDecision::Report(state) = rules::decide_idempotency(found, begin) {
        return Ok(state);
    }
    // Start: hold a fresh record for the caller (replacing a dead or crashed request's).
    tx.prepare_cached(
        "INSERT INTO idempotency (organization_id, key_id, key, fingerprint, response, created_at) \
         VALUES (?1, ?2, ?3, ?4, NULL, ?5) \
         ON CONFLICT (organization_id, key_id, key) \
         DO UPDATE SET fingerprint = excluded.fingerprint, response = NULL, created_at = excluded.created_at",
    )?
    .execute(params![
        begin.organization.0.as_bytes(),
        begin.key_id.0.as_bytes(),
        begin.key,
        &begin.fingerprint,
        begin.now.as_millis()
    ])?;
    tx.commit()?;
    Ok(IdempotencyState::Started)
}

pub(crate) fn idempotency_finish(
    conn: &Connection,
    organization: OrganizationId,
    key_id: ApiKeyId,
    key: &str,
    started_at: Timestamp,
    response: Option<&str>,
) -> Result<(), Error> {
    // Fenced by `created_at` (rules::idempotency_finish_applies): only this run's record.
    let (org, kid, at) = (
        organization.0.as_bytes(),
        key_id.0.as_bytes(),
        started_at.as_millis(),
    );
    match response {
        None => conn
            .prepare_cached(
                "DELETE FROM idempotency \
                 WHERE organization_id = ?1 AND key_id = ?2 AND key = ?3 AND created_at = ?4",
            )?
            .execute(params![org, kid, key, at])?,
        Some(response) => conn
            .prepare_cached(
                "UPDATE idempotency SET response = ?5 \
                 WHERE organization_id = ?1 AND key_id = ?2 AND key = ?3 AND created_at = ?4",
            )?
            .execute(params![org, kid, key, at, response])?,
    };
    Ok(())
}

/// Whether a user with this id exists (the idempotency finish's erasure check).
pub(crate) fn user_exists(conn: &Connection, user: invites_core::UserId) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)")?
        .query_row([user.0.as_bytes()], |row| row.get(0))?)
}
