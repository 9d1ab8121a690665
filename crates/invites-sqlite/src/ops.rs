//! The [`MembershipStore`](invites_core::MembershipStore) operations, as plain synchronous
//! functions over a connection. They run on the connection thread (see `worker`).
//!
//! Every write operation runs in a `BEGIN IMMEDIATE` transaction: the write lock is taken at
//! the start, so the reads that decide a fact and the writes that follow see the same state,
//! and two processes never deadlock upgrading a read lock. `add_members`,
//! `create_invitations` and `record_delivery` run in a transaction the worker opened, which
//! they may share with other queued writes (group commit, see `worker`); the others open
//! their own. The batch operations give each target its own `SAVEPOINT` (see [`unit`]) and
//! write nowhere else.

use crate::error::Error;
use crate::sql::{
    INVITATION_SELECT, OUTBOX_COLUMNS, QueuedMessage, batch_invitations, existing_targets,
    get_bool, get_email, get_ts, get_uuid, insert_queued_message, insert_user, invitation_from_row,
    memberships_among, message_from_row, name_param, pending_invitations_among,
    user_with_org_access,
};
use invites_core::rules::{
    self, AcceptDecision, AcceptFacts, AddDecision, AddFacts, ExpiryBound, IdempotencyDecision,
    InviteDecision, InviteFacts, PendingInvitation, RevokeDecision, RotateDecision, RotateFacts,
    StoredIdempotency, TargetAccess,
};
use invites_core::{
    AcceptBatch, AcceptOutcome, AddMembers, AddMembersOutcome, ApiKeyId, CreateInvitations,
    CreateInvitationsOutcome, DeliveryUpdate, IdempotencyBegin, IdempotencyState, InvitationFilter,
    InvitationId, InvitationQuery, InvitationRecord, MessageId, OrganizationId, OutboxMessage,
    RevokeFact, Role, RotateBatch, RotateFact, StoredStatus, TargetId, TargetKind, Timestamp,
    UserId, UserRef,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::HashMap;

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, Error> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// Runs one target's unit of work in a savepoint of the open transaction: released on
/// success; rolled back to and released on error, so the unit leaves no trace. The savepoint
/// statements are prepared once and cached, like every other statement of the batch path.
///
/// The inner result is the unit's own outcome (an `Err` there becomes that target's slot).
/// The outer `Err` means the savepoint machinery itself failed, or SQLite rolled the whole
/// transaction back (it does so on some errors, e.g. disk full): the batch as a whole failed.
fn unit<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<Result<T, Error>, Error> {
    let exec = |sql: &str| -> Result<(), Error> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    exec("SAVEPOINT target")?;
    match work(conn) {
        Ok(value) => {
            exec("RELEASE target")?;
            Ok(Ok(value))
        }
        Err(e) => {
            if conn.is_autocommit() {
                // The enclosing transaction is gone; nothing of the batch may be reported.
                return Err(e);
            }
            exec("ROLLBACK TO target")?;
            exec("RELEASE target")?;
            Ok(Err(e))
        }
    }
}

const INSERT_WEBSITE_MEMBER: &str =
    "INSERT INTO website_members (website_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)";
const INSERT_GROUP_MEMBER: &str =
    "INSERT INTO group_members (group_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)";

fn insert_membership(
    conn: &Connection,
    target: TargetId,
    user: UserId,
    role: Role,
    now: Timestamp,
) -> Result<(), Error> {
    let sql = match target.kind() {
        TargetKind::Website => INSERT_WEBSITE_MEMBER,
        TargetKind::Group => INSERT_GROUP_MEMBER,
    };
    conn.prepare_cached(sql)?.execute(params![
        target.uuid().as_bytes(),
        user.0.as_bytes(),
        role.as_str(),
        now.as_millis()
    ])?;
    Ok(())
}

fn set_invitation_status(
    conn: &Connection,
    id: InvitationId,
    status: StoredStatus,
) -> Result<(), Error> {
    conn.prepare_cached("UPDATE invitations SET status = ?2 WHERE id = ?1")?
        .execute(params![id.0.as_bytes(), status.as_str()])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// add_members

/// Runs inside a transaction the worker opened (see `worker`, group commit). Writes happen
/// only inside the per-target units.
pub(crate) fn add_members(tx: &Connection, cmd: &AddMembers) -> Result<AddMembersOutcome, Error> {
    // Everything that decides the facts, read once before the loop (the write lock is held,
    // so nothing changes underneath): one query each, never one per target.
    let existing = existing_targets(tx, cmd.organization, &cmd.targets)?;
    let (mut user, org_member) = match user_with_org_access(tx, &cmd.email, cmd.organization)? {
        Some((id, org_member)) => (Some(UserRef { id, created: false }), org_member),
        None => (None, false),
    };
    let mut memberships = match user {
        Some(u) => memberships_among(tx, u.id, &cmd.targets)?,
        None => HashMap::new(),
    };
    // The pending invitations (live or expired) that an add supersedes.
    let pending = if org_member {
        HashMap::new()
    } else {
        pending_invitations_among(tx, &cmd.email, &cmd.targets)?
    };

    let mut slots = Vec::with_capacity(cmd.targets.len());
    for &target in &cmd.targets {
        let facts = AddFacts {
            access: TargetAccess {
                exists: existing.contains(&target),
                membership: memberships.get(&target).copied(),
                org_member,
            },
            pending: pending.get(&target).map(|&(id, _)| id),
        };
        let superseded = match rules::decide_add(&facts) {
            AddDecision::Report(fact) => {
                slots.push(Ok(fact));
                continue;
            }
            AddDecision::Add { supersede } => supersede,
        };
        let create_user = user.is_none();
        let user_id = user.map_or(cmd.new_user.id, |u| u.id);
        let done = unit(tx, |c| {
            if create_user {
                insert_user(
                    c,
                    user_id,
                    &cmd.email,
                    false,
                    &cmd.new_user.first_name,
                    &cmd.new_user.last_name,
                )?;
            }
            insert_membership(c, target, user_id, cmd.role, cmd.now)?;
            // The pending invitation for (target, email), live or expired, can no longer be
            // accepted or renewed by a resend.
            if let Some(id) = superseded {
                set_invitation_status(c, id, StoredStatus::Superseded)?;
            }
            Ok(())
        })?;
        match done {
            Ok(()) => {
                if create_user {
                    user = Some(UserRef {
                        id: user_id,
                        created: true,
                    });
                }
                memberships.insert(target, cmd.role);
                slots.push(Ok(invites_core::AddFact::Added));
            }
            Err(e) => slots.push(Err(e.into())),
        }
    }
    Ok(AddMembersOutcome {
        user,
        targets: slots,
    })
}

// ---------------------------------------------------------------------------------------------
// create_invitations

/// Runs inside a transaction the worker opened (see `worker`, group commit). Writes happen
/// only inside the per-target units: the batch row and its queued message are stored by the
/// first unit that creates an invitation (so they exist iff one was created), and a unit
/// that fails takes them back with it, for the next unit to store.
pub(crate) fn create_invitations(
    tx: &Connection,
    cmd: &CreateInvitations,
) -> Result<CreateInvitationsOutcome, Error> {
    let targets: Vec<TargetId> = cmd.targets.iter().map(|(t, _)| *t).collect();
    let existing = existing_targets(tx, cmd.organization, &targets)?;
    let (existing_user, org_member) = match user_with_org_access(tx, &cmd.email, cmd.organization)?
    {
        Some((id, org_member)) => (Some(id), org_member),
        None => (None, false),
    };
    let memberships = match existing_user {
        Some(id) => memberships_among(tx, id, &targets)?,
        None => HashMap::new(),
    };
    let mut pending = pending_invitations_among(tx, &cmd.email, &targets)?;

    let mut batch_stored = false;
    let mut slots = Vec::with_capacity(cmd.targets.len());
    for &(target, invitation) in &cmd.targets {
        let facts = InviteFacts {
            access: TargetAccess {
                exists: existing.contains(&target),
                membership: memberships.get(&target).copied(),
                org_member,
            },
            pending: pending
                .get(&target)
                .map(|&(id, expires_at)| PendingInvitation { id, expires_at }),
            now: cmd.now,
        };
        let replaced = match rules::decide_invite(&facts) {
            InviteDecision::Report(fact) => {
                slots.push(Ok(fact));
                continue;
            }
            InviteDecision::Invite { replace } => replace,
        };
        let store_batch = !batch_stored;
        let done = unit(tx, |c| {
            if store_batch {
                c.prepare_cached(
                    "INSERT INTO batches (id, organization_id, email, token_hash, created_at, last_sent_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?
                .execute(params![
                    cmd.batch.id.0.as_bytes(),
                    cmd.organization.0.as_bytes(),
                    cmd.email.as_str(),
                    &cmd.batch.token_hash.0,
                    cmd.now.as_millis()
                ])?;
                insert_queued_message(
                    c,
                    &QueuedMessage {
                        id: cmd.batch.message_id,
                        batch: cmd.batch.id,
                        organization: cmd.organization,
                        recipient: &cmd.email,
                        accept_url: &cmd.batch.accept_url,
                        due_at: cmd.batch.message_due_at,
                        now: cmd.now,
                    },
                )?;
            }
            if let Some(old) = replaced {
                set_invitation_status(c, old, StoredStatus::Replaced)?;
            }
            c.prepare_cached(
                "INSERT INTO invitations (id, batch_id, organization_id, target_kind, target_id, email, role, \
                                          first_name, last_name, status, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?11)",
            )?
            .execute(params![
                invitation.0.as_bytes(),
                cmd.batch.id.0.as_bytes(),
                cmd.organization.0.as_bytes(),
                target.kind().as_str(),
                target.uuid().as_bytes(),
                cmd.email.as_str(),
                cmd.role.as_str(),
                name_param(&cmd.first_name),
                name_param(&cmd.last_name),
                cmd.now.as_millis(),
                cmd.expires_at.as_millis()
            ])?;
            Ok(())
        })?;
        match done {
            Ok(()) => {
                batch_stored = true;
                pending.insert(target, (invitation, cmd.expires_at));
                slots.push(Ok(invites_core::InviteFact::Invited));
            }
            Err(e) => slots.push(Err(e.into())),
        }
    }
    Ok(CreateInvitationsOutcome {
        existing_user,
        targets: slots,
    })
}

// ---------------------------------------------------------------------------------------------
// accept_batch

pub(crate) fn accept_batch(
    conn: &mut Connection,
    cmd: &AcceptBatch,
) -> Result<Option<AcceptOutcome>, Error> {
    let tx = immediate(conn)?;
    let batch = tx
        .prepare_cached("SELECT organization_id, email, token_hash FROM batches WHERE id = ?1")?
        .query_row([cmd.batch_id.0.as_bytes()], |row| {
            Ok((
                OrganizationId(get_uuid(row, 0)?),
                get_email(row, 1)?,
                row.get::<_, [u8; 32]>(2)?,
            ))
        })
        .optional()?;
    let Some((organization, email, token_hash)) = batch else {
        return Ok(None);
    };
    if token_hash != cmd.token_hash.0 {
        // Rotated (or never this batch's token): the transaction is dropped, nothing changed.
        return Ok(None);
    }
    let invitations = batch_invitations(&tx, cmd.batch_id)?;

    let user = match user_with_org_access(&tx, &email, organization)? {
        Some((id, _)) => {
            tx.prepare_cached(
                "UPDATE users SET email_verified = 1 WHERE id = ?1 AND email_verified = 0",
            )?
            .execute([id.0.as_bytes()])?;
            UserRef { id, created: false }
        }
        None => {
            insert_user(
                &tx,
                cmd.new_user.id,
                &email,
                true,
                &cmd.new_user.first_name,
                &cmd.new_user.last_name,
            )?;
            UserRef {
                id: cmd.new_user.id,
                created: true,
            }
        }
    };
    let org_member = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM org_members WHERE organization_id = ?1 AND user_id = ?2)",
        )?
        .query_row(
            params![organization.0.as_bytes(), user.id.0.as_bytes()],
            |row| get_bool(row, 0),
        )?;
    let targets: Vec<TargetId> = invitations.iter().map(|(r, _)| r.target).collect();
    let mut memberships = memberships_among(&tx, user.id, &targets)?;

    let mut results = Vec::with_capacity(invitations.len());
    for (mut record, target_exists) in invitations {
        let facts = AcceptFacts {
            status: record.status,
            expires_at: record.expires_at,
            now: cmd.now,
            access: TargetAccess {
                exists: target_exists,
                membership: memberships.get(&record.target).copied(),
                org_member,
            },
        };
        let fact = match rules::decide_accept(&facts) {
            AcceptDecision::Report(fact) => Ok(fact),
            AcceptDecision::Accept {
                fact,
                create_membership,
            } => {
                let done = unit(&tx, |c| {
                    if create_membership {
                        insert_membership(c, record.target, user.id, record.role, cmd.now)?;
                    }
                    set_invitation_status(c, record.id, StoredStatus::Accepted)?;
                    Ok(())
                })?;
                if done.is_ok() {
                    record.status = StoredStatus::Accepted;
                    if create_membership {
                        memberships.insert(record.target, record.role);
                    }
                }
                done.map(|()| fact).map_err(Into::into)
            }
        };
        results.push((record, fact));
    }
    tx.commit()?;
    Ok(Some(AcceptOutcome {
        user,
        invitations: results,
    }))
}

// ---------------------------------------------------------------------------------------------
// revoke, rotate

pub(crate) fn revoke_invitation(
    conn: &mut Connection,
    organization: OrganizationId,
    id: InvitationId,
) -> Result<RevokeFact, Error> {
    let tx = immediate(conn)?;
    let status = tx
        .prepare_cached("SELECT status FROM invitations WHERE id = ?1 AND organization_id = ?2")?
        .query_row(params![id.0.as_bytes(), organization.0.as_bytes()], |row| {
            crate::sql::get_invitation_status(row, 0)
        })
        .optional()?;
    match rules::decide_revoke(status) {
        RevokeDecision::Report(fact) => Ok(fact),
        RevokeDecision::Revoke => {
            set_invitation_status(&tx, id, StoredStatus::Revoked)?;
            tx.commit()?;
            Ok(RevokeFact::Revoked)
        }
    }
}

pub(crate) fn rotate_batch(conn: &mut Connection, cmd: &RotateBatch) -> Result<RotateFact, Error> {
    let tx = immediate(conn)?;
    let found = tx
        .prepare_cached(
            "SELECT email, last_sent_at FROM batches WHERE id = ?1 AND organization_id = ?2",
        )?
        .query_row(
            params![cmd.batch_id.0.as_bytes(), cmd.organization.0.as_bytes()],
            |row| Ok((get_email(row, 0)?, get_ts(row, 1)?)),
        )
        .optional()?;
    let renewable = tx
        .prepare_cached("SELECT status FROM invitations WHERE batch_id = ?1")?
        .query_map([cmd.batch_id.0.as_bytes()], |row| {
            crate::sql::get_invitation_status(row, 0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(StoredStatus::is_renewable)
        .count();
    let facts = found.as_ref().map(|(_, last_sent_at)| RotateFacts {
        last_sent_at: *last_sent_at,
        renewable,
        not_sent_after: cmd.not_sent_after,
    });
    if let RotateDecision::Report(fact) = rules::decide_rotate(facts.as_ref()) {
        return Ok(fact);
    }
    let Some((email, _)) = found else {
        return Ok(RotateFact::NotFound);
    };
    // The renewable ones (stored pending, whether or not their expiry has passed).
    let renewed = tx
        .prepare_cached(&format!(
            "UPDATE invitations SET expires_at = ?2 WHERE batch_id = ?1 AND status = '{}'",
            StoredStatus::Pending.as_str()
        ))?
        .execute(params![
            cmd.batch_id.0.as_bytes(),
            cmd.expires_at.as_millis()
        ])?;
    tx.prepare_cached("UPDATE batches SET token_hash = ?2, last_sent_at = ?3 WHERE id = ?1")?
        .execute(params![
            cmd.batch_id.0.as_bytes(),
            &cmd.new_token_hash.0,
            cmd.now.as_millis()
        ])?;
    tx.prepare_cached(
        "UPDATE outbox SET status = 'cancelled', accept_url = NULL WHERE batch_id = ?1 AND status = 'queued'",
    )?
    .execute([cmd.batch_id.0.as_bytes()])?;
    insert_queued_message(
        &tx,
        &QueuedMessage {
            id: cmd.message_id,
            batch: cmd.batch_id,
            organization: cmd.organization,
            recipient: &email,
            accept_url: &cmd.accept_url,
            due_at: cmd.message_due_at,
            now: cmd.now,
        },
    )?;
    tx.commit()?;
    Ok(RotateFact::Rotated { renewed })
}

// ---------------------------------------------------------------------------------------------
// outbox

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
    let messages = tx
        .prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?1 \
             ORDER BY next_attempt_at, created_at, id LIMIT ?2"
        ))?
        .query_map(params![now.as_millis(), sql_limit(limit)], message_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    {
        let mut lease =
            tx.prepare_cached("UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1")?;
        for message in &messages {
            lease.execute(params![message.id.0.as_bytes(), lease_until.as_millis()])?;
        }
    }
    tx.commit()?;
    // The messages are returned as they were found, before the lease (as the memory backend
    // does): `next_attempt_at` is the time they became due.
    Ok(messages)
}

/// Runs inside a transaction the worker opened (see `worker`, group commit). One statement:
/// an unknown id is an error that wrote nothing.
pub(crate) fn record_delivery(
    conn: &Connection,
    message: MessageId,
    update: &DeliveryUpdate,
) -> Result<(), Error> {
    let id = message.0.as_bytes();
    let changed = match update {
        DeliveryUpdate::Sent { attempts } => conn
            .prepare_cached("UPDATE outbox SET status = 'sent', attempts = ?2, accept_url = NULL WHERE id = ?1")?
            .execute(params![id, attempts])?,
        DeliveryUpdate::Retry { attempts, next_attempt_at, error } => conn
            .prepare_cached("UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1")?
            .execute(params![id, attempts, next_attempt_at.as_millis(), error])?,
        DeliveryUpdate::Failed { attempts, error } => conn
            .prepare_cached(
                "UPDATE outbox SET status = 'failed', attempts = ?2, last_error = ?3, accept_url = NULL WHERE id = ?1",
            )?
            .execute(params![id, attempts, error])?,
        DeliveryUpdate::Cancelled => conn
            .prepare_cached("UPDATE outbox SET status = 'cancelled', accept_url = NULL WHERE id = ?1")?
            .execute([id])?,
    };
    if changed == 0 {
        return Err(Error::Missing(format!("no outbox message {message}")));
    }
    Ok(())
}

pub(crate) fn batch_messages(
    conn: &Connection,
    batch: invites_core::BatchId,
) -> Result<Vec<OutboxMessage>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE batch_id = ?1 ORDER BY created_at, id"
        ))?
        .query_map([batch.0.as_bytes()], message_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// reads

pub(crate) fn get_invitation(
    conn: &Connection,
    organization: OrganizationId,
    id: InvitationId,
) -> Result<Option<InvitationRecord>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "{INVITATION_SELECT} WHERE i.id = ?1 AND i.organization_id = ?2"
        ))?
        .query_row(
            params![id.0.as_bytes(), organization.0.as_bytes()],
            invitation_from_row,
        )
        .optional()?
        .map(|(record, _)| record))
}

pub(crate) fn list_invitations(
    conn: &Connection,
    query: &InvitationQuery,
) -> Result<Vec<InvitationRecord>, Error> {
    let mut sql = format!("{INVITATION_SELECT} WHERE i.organization_id = ?");
    let mut values = vec![Value::Blob(query.organization.0.as_bytes().to_vec())];
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
    if let Some((created_at, id)) = query.after {
        sql.push_str(" AND (i.created_at > ? OR (i.created_at = ? AND i.id > ?))");
        values.push(Value::Integer(created_at.as_millis()));
        values.push(Value::Integer(created_at.as_millis()));
        values.push(Value::Blob(id.0.as_bytes().to_vec()));
    }
    sql.push_str(" ORDER BY i.created_at, i.id LIMIT ?");
    values.push(Value::Integer(sql_limit(query.limit)));
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values), invitation_from_row)?
        .map(|row| row.map(|(record, _)| record))
        .collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------------
// idempotency

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
    response: Option<&str>,
) -> Result<(), Error> {
    match response {
        None => conn
            .prepare_cached("DELETE FROM idempotency WHERE organization_id = ?1 AND key_id = ?2 AND key = ?3")?
            .execute(params![organization.0.as_bytes(), key_id.0.as_bytes(), key])?,
        Some(response) => conn
            .prepare_cached(
                "UPDATE idempotency SET response = ?4 WHERE organization_id = ?1 AND key_id = ?2 AND key = ?3",
            )?
            .execute(params![organization.0.as_bytes(), key_id.0.as_bytes(), key, response])?,
    };
    Ok(())
}
