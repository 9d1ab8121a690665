//! `change_member`: set the role of, or remove, one explicit membership, in one transaction
//! that holds the member's email lock (the lock every write about that person takes first:
//! the bulk adds and invites, accept, erasure), so a change and a concurrent add, accept or
//! erasure of the same person run one after the other.

use crate::error::Error;
use crate::events;
use crate::sql::{
    INVITATION_SELECT, LOCK_EMAIL, Params, boolean, decode_one, email, execute,
    invitation_from_row, locked_query, opt_role, query,
};
use crate::{PgStore, transaction};
use invites_core::access::{
    ChangeDecision, ChangeFact, ChangeMember, decide_change, revoked_by_removal,
};
use invites_core::rules::TargetAccess;
use invites_core::{InvitationRecord, NewEvent, TargetKind};
use uuid::Uuid;

/// The facts of (target `$1` in organization `$2`, user `$3`): whether the target is in the
/// organization, whether the user is an organization member, and the explicit membership's
/// role, its row locked until the transaction ends (a concurrent `delete_website` or
/// `delete_group`, which deletes it, waits or is seen). `{kind}`: `website` or `group`.
fn facts_sql(kind: TargetKind) -> String {
    let (targets, members, column) = match kind {
        TargetKind::Website => ("websites", "website_members", "website_id"),
        TargetKind::Group => ("groups", "group_members", "group_id"),
    };
    format!(
        "SELECT EXISTS (SELECT 1 FROM {{schema}}.{targets} t \
                        WHERE t.id = $1 AND t.organization_id = $2) AS target_exists, \
                EXISTS (SELECT 1 FROM {{schema}}.org_members o \
                        WHERE o.organization_id = $2 AND o.user_id = $3) AS org_member, \
                (SELECT m.role FROM {{schema}}.{members} m \
                 WHERE m.{column} = $1 AND m.user_id = $3 FOR UPDATE) AS member_role"
    )
}

fn membership_sql(kind: TargetKind, update: bool) -> String {
    let (members, column) = match kind {
        TargetKind::Website => ("website_members", "website_id"),
        TargetKind::Group => ("group_members", "group_id"),
    };
    if update {
        format!("UPDATE {{schema}}.{members} SET role = $3 WHERE {column} = $1 AND user_id = $2")
    } else {
        format!("DELETE FROM {{schema}}.{members} WHERE {column} = $1 AND user_id = $2")
    }
}

/// The member's stored-pending invitations to the target (the only ones that can be live,
/// `rules::is_live`), locked: one probe of `invitations_one_pending`, which is keyed by
/// exactly (email, target kind, target id) and holds only pending rows.
const PENDING_TO_TARGET: &str = "i.email = $1 AND i.target_kind = $2 AND i.target_id = $3 \
    AND i.status = 'pending' FOR UPDATE OF i";

/// Revokes the invitations with these ids that are still pending (a join on the ids: one
/// primary-key probe each, whatever the plan).
const REVOKE: &str = "UPDATE {schema}.invitations i SET status = 'revoked' \
    FROM unnest($1::uuid[]) AS s(id) WHERE i.id = s.id AND i.status = 'pending'";

pub(crate) async fn change_member(
    store: &PgStore,
    cmd: &ChangeMember,
) -> Result<ChangeFact, Error> {
    let kind = cmd.target.kind();
    let target = cmd.target.uuid();
    let ctx = events::context(cmd.organization, cmd.actor, cmd.now);
    transaction!(store, |tx| {
        // A user's email never changes: read it, then take its lock and read the facts
        // (pipelined: the facts are read once the lock is held).
        let rows = query(
            &tx,
            &store.q("SELECT email FROM {schema}.users WHERE id = $1"),
            &[&cmd.user.0],
        )
        .await?;
        let member_email = rows.first().map(|row| email(row, "email")).transpose()?;
        let facts = store.q(&facts_sql(kind));
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&target, &cmd.organization.0, &cmd.user.0];
        let rows = match &member_email {
            Some(address) => {
                let lock: &Params<'_> = &[&address.as_str()];
                locked_query(&tx, None, (LOCK_EMAIL, lock), (&facts, &params)).await?
            }
            // No user: no membership can exist (and no lock is needed to say so).
            None => query(&tx, &facts, &params).await?,
        };
        let row = rows.first().ok_or(Error::Corrupt {
            column: "target_exists",
        })?;
        let access = TargetAccess {
            exists: boolean(row, "target_exists")?,
            membership: opt_role(row, "member_role")?,
            org_member: boolean(row, "org_member")?,
        };
        let fact = match decide_change(access, cmd.change) {
            ChangeDecision::Report(fact) => fact,
            ChangeDecision::Update(role) => {
                execute(
                    &tx,
                    &store.q(&membership_sql(kind, true)),
                    &[&target, &cmd.user.0, &role.as_str()],
                )
                .await?;
                events::append(
                    store,
                    &tx,
                    &ctx,
                    &[NewEvent::member_role_changed(cmd.target, cmd.user, role)],
                )
                .await?;
                ChangeFact::Updated {
                    from: access.membership.ok_or(Error::Corrupt {
                        column: "member_role",
                    })?,
                }
            }
            ChangeDecision::Remove => {
                let role = access.membership.ok_or(Error::Corrupt {
                    column: "member_role",
                })?;
                execute(
                    &tx,
                    &store.q(&membership_sql(kind, false)),
                    &[&target, &cmd.user.0],
                )
                .await?;
                // A membership names an existing user (foreign key), so the email was read.
                let address = member_email.as_ref().ok_or(Error::Corrupt {
                    column: "users.email",
                })?;
                let candidates: Vec<InvitationRecord> = query(
                    &tx,
                    &store.q(&format!("{INVITATION_SELECT} WHERE {PENDING_TO_TARGET}")),
                    &[&address.as_str(), &kind.as_str(), &target],
                )
                .await?
                .iter()
                .map(|row| decode_one("invitations", row, invitation_from_row).map(|(r, _)| r))
                .collect::<Result<_, _>>()?;
                let revoked_ids = revoked_by_removal(&candidates, cmd.now);
                let revoked: Vec<Uuid> = revoked_ids.iter().map(|id| id.0).collect();
                if !revoked.is_empty() {
                    execute(&tx, &store.q(REVOKE), &[&revoked]).await?;
                }
                // `member_removed`, then `invitation_revoked` per revoked invitation, in
                // `revoked_by_removal` order.
                let mut new_events = vec![NewEvent::member_removed(cmd.target, cmd.user)];
                for id in &revoked_ids {
                    let batch = candidates
                        .iter()
                        .find(|c| c.id == *id)
                        .ok_or(Error::Corrupt {
                            column: "invitations.id",
                        })?
                        .batch_id;
                    new_events.push(NewEvent::invitation_revoked(cmd.target, *id, batch));
                }
                events::append(store, &tx, &ctx, &new_events).await?;
                ChangeFact::Removed {
                    role,
                    revoked: revoked.len(),
                }
            }
        };
        tx.commit().await?;
        Ok(fact)
    })
}
