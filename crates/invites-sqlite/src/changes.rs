//! The writes of [`AccessStore`](invites_core::AccessStore): a membership change and the
//! erasure of a person, each one `BEGIN IMMEDIATE` transaction, which appends the call's
//! events last, before its commit.

use crate::access::target_organization;
use crate::columns::{decode, get_role, get_uuid, membership_table};
use crate::error::Error;
use crate::events::{append, scrub_user};
use crate::reads::{INVITATION_SELECT, invitation_from_row};
use crate::txn::immediate;
use crate::writes::set_invitation_status;
use invites_core::access::{
    ChangeDecision, ChangeFact, ChangeMember, ErasureReport, decide_change, revoked_by_removal,
};
use invites_core::rules::TargetAccess;
use invites_core::{
    BatchId, Email, EventContext, InvitationId, NewEvent, OrganizationId, StoredStatus, Timestamp,
    UserId,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeSet;

pub(crate) fn change_member(
    conn: &mut Connection,
    cmd: &ChangeMember,
) -> Result<ChangeFact, Error> {
    let tx = immediate(conn)?;
    let (table, column) = membership_table(cmd.target.kind());
    let target = cmd.target.uuid();
    let key = params![target.as_bytes(), cmd.user.0.as_bytes()];
    let membership = tx
        .prepare_cached(&format!(
            "SELECT role FROM {table} WHERE {column} = ?1 AND user_id = ?2"
        ))?
        .query_row(key, |row| get_role(row, 0))
        .optional()?;
    let org_member: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM org_members WHERE organization_id = ?1 AND user_id = ?2)",
        )?
        .query_row(
            params![cmd.organization.0.as_bytes(), cmd.user.0.as_bytes()],
            |row| row.get(0),
        )?;
    let access = TargetAccess {
        exists: target_organization(&tx, cmd.target)? == Some(cmd.organization),
        membership,
        org_member,
    };
    let mut events = Vec::new();
    let fact = match (decide_change(access, cmd.change), membership) {
        (ChangeDecision::Report(fact), _) => return Ok(fact),
        (ChangeDecision::Update(role), Some(from)) => {
            tx.prepare_cached(&format!(
                "UPDATE {table} SET role = ?3 WHERE {column} = ?1 AND user_id = ?2"
            ))?
            .execute(params![
                target.as_bytes(),
                cmd.user.0.as_bytes(),
                role.as_str()
            ])?;
            events.push(NewEvent::member_role_changed(cmd.target, cmd.user, role));
            ChangeFact::Updated { from }
        }
        (ChangeDecision::Remove, Some(role)) => {
            tx.prepare_cached(&format!(
                "DELETE FROM {table} WHERE {column} = ?1 AND user_id = ?2"
            ))?
            .execute(key)?;
            events.push(NewEvent::member_removed(cmd.target, cmd.user));
            let revoked = revoke_live_invitations(&tx, cmd)?;
            events.extend(
                revoked
                    .iter()
                    .map(|&(id, batch)| NewEvent::invitation_revoked(cmd.target, id, batch)),
            );
            ChangeFact::Removed {
                role,
                revoked: revoked.len(),
            }
        }
        // `decide_change` updates or removes only an existing membership.
        (ChangeDecision::Update(_) | ChangeDecision::Remove, None) => {
            return Ok(ChangeFact::NotAMember);
        }
    };
    let ctx = EventContext {
        organization: cmd.organization,
        actor: cmd.actor,
        at: cmd.now,
    };
    append(&tx, &ctx, &events)?;
    tx.commit()?;
    Ok(fact)
}

/// Revokes the invitations to `cmd.target` for the user's email that are live at `cmd.now`
/// ([`revoked_by_removal`]); returns them with their batches, in the order
/// `revoked_by_removal` gave. An invitation row this version cannot read fails the call (a
/// removal never leaves a live link it did not see).
fn revoke_live_invitations(
    conn: &Connection,
    cmd: &ChangeMember,
) -> Result<Vec<(InvitationId, BatchId)>, Error> {
    let email: Option<String> = conn
        .prepare_cached("SELECT email FROM users WHERE id = ?1")?
        .query_row([cmd.user.0.as_bytes()], |row| row.get(0))
        .optional()?;
    let Some(email) = email else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(&format!(
        "{INVITATION_SELECT} WHERE i.email = ?1 AND i.target_kind = ?2 AND i.target_id = ?3"
    ))?;
    let rows = stmt.query_map(
        params![
            email,
            cmd.target.kind().as_str(),
            cmd.target.uuid().as_bytes()
        ],
        |row| decode("invitations", row, invitation_from_row),
    )?;
    let mut candidates = Vec::new();
    for row in rows {
        candidates.push(row??.0);
    }
    let revoked = revoked_by_removal(&candidates, cmd.now);
    let mut out = Vec::with_capacity(revoked.len());
    for id in revoked {
        set_invitation_status(conn, id, StoredStatus::Revoked)?;
        if let Some(record) = candidates.iter().find(|r| r.id == id) {
            out.push((id, record.batch_id));
        }
    }
    Ok(out)
}

/// Runs `sql` with `?1` bound to `value`; returns how many rows it changed.
fn delete(conn: &Connection, sql: &str, value: impl rusqlite::ToSql) -> Result<u64, Error> {
    Ok(conn.prepare_cached(sql)?.execute([value])? as u64)
}

// The statements of the erasure, each an index search (see the tests), but the idempotency
// one. Addresses are bound as TEXT, as the columns hold them (a BLOB never equals TEXT).
const USER_BY_EMAIL: &str = "SELECT id FROM users WHERE email = ?1";
const DELETE_WEBSITE_MEMBERSHIPS: &str = "DELETE FROM website_members WHERE user_id = ?1";
const DELETE_GROUP_MEMBERSHIPS: &str = "DELETE FROM group_members WHERE user_id = ?1";
const DELETE_ORG_MEMBERSHIPS: &str = "DELETE FROM org_members WHERE user_id = ?1";
const DELETE_USER: &str = "DELETE FROM users WHERE id = ?1";
const DELETE_INVITATIONS_TO: &str = "DELETE FROM invitations WHERE email = ?1";
const BATCHES_TO: &str = "SELECT id, organization_id FROM batches WHERE email = ?1";
const DELETE_BATCH_INVITATIONS: &str = "DELETE FROM invitations WHERE batch_id = ?1";
const DELETE_BATCH_MESSAGES: &str = "DELETE FROM outbox WHERE batch_id = ?1";
const DELETE_BATCH: &str = "DELETE FROM batches WHERE id = ?1";
const DELETE_MESSAGES_TO: &str = "DELETE FROM outbox WHERE recipient = ?1";
// The organizations the erasure deletes something of, read before it does (each gets its
// `person_erased` event).
const ORGS_OF_WEBSITE_MEMBERSHIPS: &str = "SELECT w.organization_id FROM website_members m \
     JOIN websites w ON w.id = m.website_id WHERE m.user_id = ?1";
const ORGS_OF_GROUP_MEMBERSHIPS: &str = "SELECT g.organization_id FROM group_members m \
     JOIN groups g ON g.id = m.group_id WHERE m.user_id = ?1";
const ORGS_OF_ORG_MEMBERSHIPS: &str = "SELECT organization_id FROM org_members WHERE user_id = ?1";
const ORGS_OF_INVITATIONS_TO: &str = "SELECT organization_id FROM invitations WHERE email = ?1";
const ORGS_OF_MESSAGES_TO: &str = "SELECT organization_id FROM outbox WHERE recipient = ?1";
/// The one search without an index: a stored response is JSON text. The records live a day
/// (the purge deletes them after `idempotency_ttl`), so the table stays small.
const DELETE_RESPONSES_NAMING: &str = "DELETE FROM idempotency WHERE instr(response, ?1) > 0";

/// Adds the organizations `sql` (with `?1` bound to `value`) selects to `touched`.
fn organizations(
    conn: &Connection,
    sql: &str,
    value: impl rusqlite::ToSql,
    touched: &mut BTreeSet<OrganizationId>,
) -> Result<(), Error> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([value])?;
    while let Some(row) = rows.next()? {
        touched.insert(OrganizationId(get_uuid(row, 0)?));
    }
    Ok(())
}

pub(crate) fn erase_person(
    conn: &mut Connection,
    email: &Email,
    now: Timestamp,
) -> Result<ErasureReport, Error> {
    let tx = immediate(conn)?;
    let address = email.as_str();
    let mut report = ErasureReport::default();
    // The organizations the erasure deletes something of, in id order.
    let mut touched = BTreeSet::new();
    let user = tx
        .prepare_cached(USER_BY_EMAIL)?
        .query_row([address], |row| Ok(UserId(get_uuid(row, 0)?)))
        .optional()?;
    if let Some(user) = user {
        let id = user.0.as_bytes();
        for sql in [
            ORGS_OF_WEBSITE_MEMBERSHIPS,
            ORGS_OF_GROUP_MEMBERSHIPS,
            ORGS_OF_ORG_MEMBERSHIPS,
        ] {
            organizations(&tx, sql, id, &mut touched)?;
        }
        // The events stay, naming no one.
        scrub_user(&tx, user)?;
        report.memberships = delete(&tx, DELETE_WEBSITE_MEMBERSHIPS, id)?
            + delete(&tx, DELETE_GROUP_MEMBERSHIPS, id)?;
        report.org_memberships = delete(&tx, DELETE_ORG_MEMBERSHIPS, id)?;
        // The id as the core's responses spell it (`UserId`'s JSON form).
        report.idempotency_records = delete(&tx, DELETE_RESPONSES_NAMING, user.0.to_string())?;
        delete(&tx, DELETE_USER, id)?;
        report.user = Some(user);
    }
    // A request running across the erasure stores its response later: the finish checks that
    // the user it names still exists and deletes its record otherwise
    // (`IdempotencyStore::idempotency_finish`), on this same connection thread.
    organizations(&tx, ORGS_OF_INVITATIONS_TO, address, &mut touched)?;
    organizations(&tx, ORGS_OF_MESSAGES_TO, address, &mut touched)?;
    report.invitations = delete(&tx, DELETE_INVITATIONS_TO, address)?;
    let batches: Vec<([u8; 16], OrganizationId)> = tx
        .prepare_cached(BATCHES_TO)?
        .query_map([address], |row| {
            Ok((row.get(0)?, OrganizationId(get_uuid(row, 1)?)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (batch, organization) in &batches {
        touched.insert(*organization);
        // A batch's invitations and messages are to its address; the ones of the batch are
        // deleted by batch all the same, whatever their address, so none outlives it.
        report.invitations += delete(&tx, DELETE_BATCH_INVITATIONS, batch)?;
        report.messages += delete(&tx, DELETE_BATCH_MESSAGES, batch)?;
        report.batches += delete(&tx, DELETE_BATCH, batch)?;
    }
    report.messages += delete(&tx, DELETE_MESSAGES_TO, address)?;
    for organization in touched {
        let ctx = EventContext {
            organization,
            actor: None,
            at: now,
        };
        append(&tx, &ctx, &[NewEvent::person_erased()])?;
    }
    tx.commit()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::assert_searches;

    #[test]
    fn every_erasure_statement_but_the_responses_one_searches_an_index() {
        assert_searches(&[
            USER_BY_EMAIL,
            DELETE_WEBSITE_MEMBERSHIPS,
            DELETE_GROUP_MEMBERSHIPS,
            DELETE_ORG_MEMBERSHIPS,
            DELETE_USER,
            DELETE_INVITATIONS_TO,
            BATCHES_TO,
            DELETE_BATCH_INVITATIONS,
            DELETE_BATCH_MESSAGES,
            DELETE_BATCH,
            DELETE_MESSAGES_TO,
            ORGS_OF_WEBSITE_MEMBERSHIPS,
            ORGS_OF_GROUP_MEMBERSHIPS,
            ORGS_OF_ORG_MEMBERSHIPS,
            ORGS_OF_INVITATIONS_TO,
            ORGS_OF_MESSAGES_TO,
        ]);
    }
}
