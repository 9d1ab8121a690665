//! [`BulkStore`](invites_core::BulkStore): `add_members` and `create_invitations`. Both run inside
//! a transaction the connection thread opened, possibly shared with other writes (group commit, see
//! `worker`), and write only inside their per-target savepoints, but for their events: each
//! unit that succeeds adds its events to the call's list, which is appended after the last
//! unit (a unit that fails adds none).

use crate::columns::name_param;
use crate::error::Error;
use crate::events::append;
use crate::facts::{
    existing_targets, memberships_among, pending_invitations_among, user_with_org_access,
};
use crate::outbox::{QueuedMessage, insert_queued_message};
use crate::txn::{Units, isolated_units, unit};
use crate::writes::{insert_membership, insert_user, set_invitation_status};
use invites_core::rules::{
    self, AddDecision, AddFacts, InviteDecision, InviteFacts, PendingInvitation, TargetAccess,
};
use invites_core::{
    AddMembers, AddMembersOutcome, CreateInvitations, CreateInvitationsOutcome, EventContext,
    NewEvent, StoredStatus, TargetId, UserRef,
};
use rusqlite::{Connection, params};
use std::collections::HashMap;

/// Runs inside a transaction the worker opened (see `worker`, group commit). Writes happen
/// only inside the per-target units.
pub(crate) fn add_members(tx: &Connection, cmd: &AddMembers) -> Result<AddMembersOutcome, Error> {
    isolated_units(tx, |c, units| add_members_with(c, cmd, units))
}

fn add_members_with(
    tx: &Connection,
    cmd: &AddMembers,
    units: Units,
) -> Result<AddMembersOutcome, Error> {
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
    let mut events = Vec::new();
    for &target in &cmd.targets {
        let facts = AddFacts {
            access: TargetAccess {
                exists: existing.contains(&target),
                membership: memberships.get(&target).copied(),
                org_member,
            },
            pending: pending.get(&target).map(|&(id, _, _)| id),
        };
        let superseded = match rules::decide_add(&facts) {
            AddDecision::Report(fact) => {
                slots.push(Ok(fact));
                continue;
            }
            // With the superseded invitation's batch, for its event.
            AddDecision::Add { supersede } => {
                supersede.and_then(|id| pending.get(&target).map(|&(_, _, batch)| (id, batch)))
            }
        };
        let create_user = user.is_none();
        let user_id = user.map_or(cmd.new_user.id, |u| u.id);
        let done = unit(tx, units, |c| {
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
            if let Some((id, _)) = superseded {
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
                    events.push(NewEvent::user_created(user_id));
                }
                events.push(NewEvent::member_added(target, user_id, cmd.role));
                if let Some((id, batch)) = superseded {
                    events.push(NewEvent::invitation_superseded(target, id, batch));
                }
                memberships.insert(target, cmd.role);
                slots.push(Ok(invites_core::AddFact::Added));
            }
            Err(e) => slots.push(Err(e.into())),
        }
    }
    let ctx = EventContext {
        organization: cmd.organization,
        actor: cmd.actor,
        at: cmd.now,
    };
    append(tx, &ctx, &events)?;
    Ok(AddMembersOutcome {
        user,
        targets: slots,
    })
}

/// Runs inside a transaction the worker opened (see `worker`, group commit). Writes happen
/// only inside the per-target units: the batch row and its queued message are stored by the
/// first unit that creates an invitation (so they exist iff one was created), and a unit
/// that fails takes them back with it, for the next unit to store.
pub(crate) fn create_invitations(
    tx: &Connection,
    cmd: &CreateInvitations,
) -> Result<CreateInvitationsOutcome, Error> {
    isolated_units(tx, |c, units| create_invitations_with(c, cmd, units))
}

fn create_invitations_with(
    tx: &Connection,
    cmd: &CreateInvitations,
    units: Units,
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
    let mut events = Vec::new();
    for &(target, invitation) in &cmd.targets {
        let facts = InviteFacts {
            access: TargetAccess {
                exists: existing.contains(&target),
                membership: memberships.get(&target).copied(),
                org_member,
            },
            pending: pending
                .get(&target)
                .map(|&(id, expires_at, _)| PendingInvitation { id, expires_at }),
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
        let done = unit(tx, units, |c| {
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
                pending.insert(target, (invitation, cmd.expires_at, cmd.batch.id));
                events.push(NewEvent::invitation_created(
                    target,
                    invitation,
                    cmd.batch.id,
                    cmd.role,
                ));
                slots.push(Ok(invites_core::InviteFact::Invited));
            }
            Err(e) => slots.push(Err(e.into())),
        }
    }
    let ctx = EventContext {
        organization: cmd.organization,
        actor: cmd.actor,
        at: cmd.now,
    };
    append(tx, &ctx, &events)?;
    Ok(CreateInvitationsOutcome {
        existing_user,
        targets: slots,
    })
}
