//! [`LifecycleStore`](invites_core::LifecycleStore): accept, revoke and rotate, each in its own
//! `BEGIN IMMEDIATE` transaction, which appends the call's events last, before its commit.

use crate::columns::{get_bool, get_email, get_kind, get_ts, get_uuid};
use crate::error::Error;
use crate::events::append;
use crate::facts::{memberships_among, user_with_org_access};
use crate::outbox::{QueuedMessage, insert_queued_message};
use crate::reads::batch_invitations;
use crate::txn::{Units, immediate, unit};
use crate::writes::{insert_membership, insert_user, set_invitation_status};
use invites_core::rules::{
    self, AcceptDecision, AcceptFacts, RevokeDecision, RotateDecision, RotateFacts, TargetAccess,
};
use invites_core::{
    AcceptBatch, AcceptOutcome, BatchId, EventContext, NewEvent, OrganizationId, RevokeFact,
    RevokeInvitation, RotateBatch, RotateFact, StoredStatus, TargetId, UserRef,
};
use rusqlite::{Connection, OptionalExtension, params};

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

    let mut events = Vec::new();
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
            events.push(NewEvent::user_created(cmd.new_user.id));
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
                let done = unit(&tx, Units::Apart, |c| {
                    if create_membership {
                        insert_membership(c, record.target, user.id, record.role, cmd.now)?;
                    }
                    set_invitation_status(c, record.id, StoredStatus::Accepted)?;
                    Ok(())
                })?;
                if done.is_ok() {
                    record.status = StoredStatus::Accepted;
                    events.push(NewEvent::invitation_accepted(
                        record.target,
                        record.id,
                        record.batch_id,
                        user.id,
                    ));
                    if create_membership {
                        memberships.insert(record.target, record.role);
                        events.push(NewEvent::member_added(record.target, user.id, record.role));
                    }
                }
                done.map(|()| fact).map_err(Into::into)
            }
        };
        results.push((record, fact));
    }
    // A token is not a key: no actor.
    let ctx = EventContext {
        organization,
        actor: None,
        at: cmd.now,
    };
    append(&tx, &ctx, &events)?;
    tx.commit()?;
    Ok(Some(AcceptOutcome {
        user,
        invitations: results,
    }))
}

pub(crate) fn revoke_invitation(
    conn: &mut Connection,
    cmd: &RevokeInvitation,
) -> Result<RevokeFact, Error> {
    let tx = immediate(conn)?;
    let found = tx
        .prepare_cached(
            "SELECT status, target_kind, target_id, batch_id FROM invitations \
             WHERE id = ?1 AND organization_id = ?2",
        )?
        .query_row(
            params![cmd.id.0.as_bytes(), cmd.organization.0.as_bytes()],
            |row| {
                Ok((
                    crate::columns::get_invitation_status(row, 0)?,
                    get_kind(row, 1)?.with_id(get_uuid(row, 2)?),
                    BatchId(get_uuid(row, 3)?),
                ))
            },
        )
        .optional()?;
    match (rules::decide_revoke(found.map(|f| f.0)), found) {
        (RevokeDecision::Report(fact), _) => Ok(fact),
        // `decide_revoke` revokes only an invitation it was given.
        (RevokeDecision::Revoke, None) => Ok(RevokeFact::NotFound),
        (RevokeDecision::Revoke, Some((_, target, batch))) => {
            set_invitation_status(&tx, cmd.id, StoredStatus::Revoked)?;
            let ctx = EventContext {
                organization: cmd.organization,
                actor: cmd.actor,
                at: cmd.now,
            };
            append(
                &tx,
                &ctx,
                &[NewEvent::invitation_revoked(target, cmd.id, batch)],
            )?;
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
            crate::columns::get_invitation_status(row, 0)
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
    let ctx = EventContext {
        organization: cmd.organization,
        actor: cmd.actor,
        at: cmd.now,
    };
    append(
        &tx,
        &ctx,
        &[NewEvent::batch_resent(cmd.batch_id, cmd.message_id)],
    )?;
    tx.commit()?;
    Ok(RotateFact::Rotated { renewed })
}
