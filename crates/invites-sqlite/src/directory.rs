//! [`Directory`](invites_core::Directory) and [`Inspect`](invites_core::Inspect) operations.

use crate::columns::{decode_all, get_email, get_org_role, get_role, get_ts, get_uuid, name_param};
use crate::error::Error;
use crate::events::append;
use crate::outbox::{OUTBOX_COLUMNS, message_from_row};
use crate::reads::{INVITATION_SELECT, USER_COLUMNS, invitation_from_row, user_from_row};
use invites_core::{
    BatchId, EventContext, Group, GroupId, MembershipRow, NewEvent, OrgRole, OrganizationId,
    Snapshot, TargetKind, Timestamp, User, UserId, Website, WebsiteId,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, Error> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

fn organization_exists(conn: &Connection, id: OrganizationId) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = ?1)")?
        .query_row([id.0.as_bytes()], |row| row.get(0))?)
}

pub(crate) fn create_organization(
    conn: &mut Connection,
    id: OrganizationId,
    name: &str,
) -> Result<(), Error> {
    let tx = immediate(conn)?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO organizations (id, name) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![id.0.as_bytes(), name])?;
    if inserted == 0 {
        let existing: String = tx
            .prepare_cached("SELECT name FROM organizations WHERE id = ?1")?
            .query_row([id.0.as_bytes()], |row| row.get(0))?;
        if existing != name {
            return Err(Error::Conflict(format!(
                "organization {id} exists with another name"
            )));
        }
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn create_website(conn: &mut Connection, website: &Website) -> Result<(), Error> {
    let tx = immediate(conn)?;
    let existing = tx
        .prepare_cached("SELECT organization_id, name, url FROM websites WHERE id = ?1")?
        .query_row([website.id.0.as_bytes()], |row| {
            Ok(Website {
                id: website.id,
                organization: OrganizationId(get_uuid(row, 0)?),
                name: row.get(1)?,
                url: row.get(2)?,
            })
        })
        .optional()?;
    match existing {
        Some(existing) if existing == *website => return Ok(()),
        Some(_) => {
            return Err(Error::Conflict(format!(
                "website {} exists with other content",
                website.id
            )));
        }
        None => {}
    }
    if !organization_exists(&tx, website.organization)? {
        return Err(Error::Missing(format!(
            "organization {} does not exist",
            website.organization
        )));
    }
    tx.prepare_cached(
        "INSERT INTO websites (id, organization_id, name, url) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        website.id.0.as_bytes(),
        website.organization.0.as_bytes(),
        website.name,
        website.url
    ])?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn create_group(conn: &mut Connection, group: &Group) -> Result<(), Error> {
    let tx = immediate(conn)?;
    let existing = tx
        .prepare_cached("SELECT organization_id, name FROM groups WHERE id = ?1")?
        .query_row([group.id.0.as_bytes()], |row| {
            Ok(Group {
                id: group.id,
                organization: OrganizationId(get_uuid(row, 0)?),
                name: row.get(1)?,
            })
        })
        .optional()?;
    match existing {
        Some(existing) if existing == *group => return Ok(()),
        Some(_) => {
            return Err(Error::Conflict(format!(
                "group {} exists with other content",
                group.id
            )));
        }
        None => {}
    }
    if !organization_exists(&tx, group.organization)? {
        return Err(Error::Missing(format!(
            "organization {} does not exist",
            group.organization
        )));
    }
    tx.prepare_cached("INSERT INTO groups (id, organization_id, name) VALUES (?1, ?2, ?3)")?
        .execute(params![
            group.id.0.as_bytes(),
            group.organization.0.as_bytes(),
            group.name
        ])?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn add_website_to_group(
    conn: &mut Connection,
    group: GroupId,
    website: WebsiteId,
) -> Result<(), Error> {
    let tx = immediate(conn)?;
    let org_of = |sql: &str, id: &[u8; 16]| -> Result<Option<OrganizationId>, Error> {
        Ok(tx
            .prepare_cached(sql)?
            .query_row([id], |row| Ok(OrganizationId(get_uuid(row, 0)?)))
            .optional()?)
    };
    let group_org = org_of(
        "SELECT organization_id FROM groups WHERE id = ?1",
        group.0.as_bytes(),
    )?
    .ok_or_else(|| Error::Missing(format!("group {group} does not exist")))?;
    let website_org = org_of(
        "SELECT organization_id FROM websites WHERE id = ?1",
        website.0.as_bytes(),
    )?
    .ok_or_else(|| Error::Missing(format!("website {website} does not exist")))?;
    if group_org != website_org {
        return Err(Error::Conflict(format!(
            "website {website} and group {group} belong to different organizations"
        )));
    }
    tx.prepare_cached(
        "INSERT INTO group_websites (group_id, website_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![group.0.as_bytes(), website.0.as_bytes()])?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn create_user(conn: &mut Connection, user: &User) -> Result<UserId, Error> {
    let tx = immediate(conn)?;
    let existing = tx
        .prepare_cached("SELECT id FROM users WHERE email = ?1")?
        .query_row([user.email.as_str()], |row| Ok(UserId(get_uuid(row, 0)?)))
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    tx.prepare_cached(
        "INSERT INTO users (id, email, email_verified, first_name, last_name) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        user.id.0.as_bytes(),
        user.email.as_str(),
        user.email_verified,
        name_param(&user.first_name),
        name_param(&user.last_name)
    ])?;
    tx.commit()?;
    Ok(user.id)
}

pub(crate) fn add_org_member(
    conn: &mut Connection,
    organization: OrganizationId,
    user: UserId,
    role: OrgRole,
) -> Result<(), Error> {
    let tx = immediate(conn)?;
    if !organization_exists(&tx, organization)? {
        return Err(Error::Missing(format!(
            "organization {organization} does not exist"
        )));
    }
    let user_exists: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)")?
        .query_row([user.0.as_bytes()], |row| row.get(0))?;
    if !user_exists {
        return Err(Error::Missing(format!("user {user} does not exist")));
    }
    tx.prepare_cached(
        "INSERT INTO org_members (organization_id, user_id, role) VALUES (?1, ?2, ?3) \
         ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role",
    )?
    .execute(params![
        organization.0.as_bytes(),
        user.0.as_bytes(),
        role.as_str()
    ])?;
    tx.commit()?;
    Ok(())
}

/// The organization `sql` selects for the row `id` (a website or a group); `None` without it.
fn organization_of(
    conn: &Connection,
    sql: &str,
    id: &[u8; 16],
) -> Result<Option<OrganizationId>, Error> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row([id], |row| Ok(OrganizationId(get_uuid(row, 0)?)))
        .optional()?)
}

const WEBSITE_ORGANIZATION: &str = "SELECT organization_id FROM websites WHERE id = ?1";
const GROUP_ORGANIZATION: &str = "SELECT organization_id FROM groups WHERE id = ?1";

/// The events of a Directory call: no API key.
fn directory_event(
    conn: &Connection,
    organization: OrganizationId,
    at: Timestamp,
    event: NewEvent,
) -> Result<(), Error> {
    let ctx = EventContext {
        organization,
        actor: None,
        at,
    };
    append(conn, &ctx, &[event])
}

pub(crate) fn delete_website(
    conn: &mut Connection,
    website: WebsiteId,
    at: Timestamp,
) -> Result<(), Error> {
    let tx = immediate(conn)?;
    let id = website.0.as_bytes();
    let organization = organization_of(&tx, WEBSITE_ORGANIZATION, id)?;
    tx.prepare_cached("DELETE FROM website_members WHERE website_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM group_websites WHERE website_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM invitations WHERE target_kind = 'website' AND target_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM websites WHERE id = ?1")?
        .execute([id])?;
    if let Some(organization) = organization {
        directory_event(&tx, organization, at, NewEvent::website_deleted(website))?;
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn remove_org_member(
    conn: &mut Connection,
    organization: OrganizationId,
    user: UserId,
    at: Timestamp,
) -> Result<bool, Error> {
    let tx = immediate(conn)?;
    let removed = tx
        .prepare_cached("DELETE FROM org_members WHERE organization_id = ?1 AND user_id = ?2")?
        .execute(params![organization.0.as_bytes(), user.0.as_bytes()])?
        > 0;
    if removed {
        directory_event(&tx, organization, at, NewEvent::org_member_removed(user))?;
        tx.commit()?;
    }
    Ok(removed)
}

pub(crate) fn set_org_role(
    conn: &mut Connection,
    organization: OrganizationId,
    user: UserId,
    role: OrgRole,
    at: Timestamp,
) -> Result<bool, Error> {
    let tx = immediate(conn)?;
    let key = params![organization.0.as_bytes(), user.0.as_bytes()];
    // Compared as stored: a tag this version cannot read is a change too.
    let current: Option<String> = tx
        .prepare_cached("SELECT role FROM org_members WHERE organization_id = ?1 AND user_id = ?2")?
        .query_row(key, |row| row.get(0))
        .optional()?;
    match current {
        None => Ok(false),
        Some(current) if current == role.as_str() => Ok(true),
        Some(_) => {
            tx.prepare_cached(
                "UPDATE org_members SET role = ?3 WHERE organization_id = ?1 AND user_id = ?2",
            )?
            .execute(params![
                organization.0.as_bytes(),
                user.0.as_bytes(),
                role.as_str()
            ])?;
            directory_event(
                &tx,
                organization,
                at,
                NewEvent::org_member_role_changed(user, role),
            )?;
            tx.commit()?;
            Ok(true)
        }
    }
}

pub(crate) fn remove_website_from_group(
    conn: &mut Connection,
    group: GroupId,
    website: WebsiteId,
    at: Timestamp,
) -> Result<bool, Error> {
    let tx = immediate(conn)?;
    let removed = tx
        .prepare_cached("DELETE FROM group_websites WHERE group_id = ?1 AND website_id = ?2")?
        .execute(params![group.0.as_bytes(), website.0.as_bytes()])?
        > 0;
    if !removed {
        return Ok(false);
    }
    // A link names an existing group (foreign key).
    if let Some(organization) = organization_of(&tx, GROUP_ORGANIZATION, group.0.as_bytes())? {
        directory_event(
            &tx,
            organization,
            at,
            NewEvent::website_removed_from_group(group, website),
        )?;
    }
    tx.commit()?;
    Ok(true)
}

pub(crate) fn delete_group(
    conn: &mut Connection,
    group: GroupId,
    at: Timestamp,
) -> Result<bool, Error> {
    let tx = immediate(conn)?;
    let id = group.0.as_bytes();
    let organization = organization_of(&tx, GROUP_ORGANIZATION, id)?;
    tx.prepare_cached("DELETE FROM group_members WHERE group_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM group_websites WHERE group_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM invitations WHERE target_kind = 'group' AND target_id = ?1")?
        .execute([id])?;
    let existed = tx
        .prepare_cached("DELETE FROM groups WHERE id = ?1")?
        .execute([id])?
        > 0;
    if let (true, Some(organization)) = (existed, organization) {
        directory_event(&tx, organization, at, NewEvent::group_deleted(group))?;
    }
    tx.commit()?;
    Ok(existed)
}

/// Everything, in one read transaction. A row this version cannot decode is left out of its
/// table (and reported, see [`decode_all`]): the snapshot shows the rest instead of failing.
pub(crate) fn snapshot(conn: &mut Connection) -> Result<Snapshot, Error> {
    // One read transaction, so the parts agree with each other.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let mut stmt =
        tx.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"))?;
    let mut users = decode_all("users", stmt.query([])?, user_from_row)?;
    drop(stmt);
    users.sort_by(|a, b| a.email.cmp(&b.email));

    let mut memberships = Vec::new();
    for kind in [TargetKind::Website, TargetKind::Group] {
        let (table, column) = crate::columns::membership_table(kind);
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {column}, user_id, role, created_at FROM {table}"
        ))?;
        memberships.extend(decode_all(table, stmt.query([])?, |row| {
            Ok(MembershipRow {
                target: kind.with_id(get_uuid(row, 0)?),
                user: UserId(get_uuid(row, 1)?),
                role: get_role(row, 2)?,
                created_at: get_ts(row, 3)?,
            })
        })?);
    }
    memberships.sort();

    let mut stmt = tx.prepare_cached("SELECT organization_id, user_id, role FROM org_members")?;
    let mut org_members = decode_all("org_members", stmt.query([])?, |row| {
        Ok((
            OrganizationId(get_uuid(row, 0)?),
            UserId(get_uuid(row, 1)?),
            get_org_role(row, 2)?,
        ))
    })?;
    drop(stmt);
    org_members.sort();

    let mut stmt =
        tx.prepare_cached(&format!("{INVITATION_SELECT} ORDER BY i.created_at, i.id"))?;
    let mut invitations: Vec<_> = decode_all("invitations", stmt.query([])?, invitation_from_row)?
        .into_iter()
        .map(|(record, _)| record)
        .collect();
    drop(stmt);
    invitations.sort_by_key(|i| (i.created_at, i.id));

    let mut stmt = tx
        .prepare_cached("SELECT id, organization_id, email, created_at FROM batches ORDER BY id")?;
    let mut batches = decode_all("batches", stmt.query([])?, |row| {
        Ok((
            BatchId(get_uuid(row, 0)?),
            OrganizationId(get_uuid(row, 1)?),
            get_email(row, 2)?,
            get_ts(row, 3)?,
        ))
    })?;
    drop(stmt);
    batches.sort_by_key(|b| b.0);

    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY created_at, id"
    ))?;
    let mut outbox = decode_all("outbox", stmt.query([])?, message_from_row)?;
    drop(stmt);
    outbox.sort_by_key(|m| (m.created_at, m.id));

    tx.commit()?;
    Ok(Snapshot {
        users,
        memberships,
        org_members,
        invitations,
        batches,
        outbox,
    })
}
