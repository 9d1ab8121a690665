//! The row writes several operations share: users, memberships, invitation status.

use crate::columns::name_param;
use crate::error::Error;
use invites_core::{
    Email, InvitationId, PersonName, Role, StoredStatus, TargetId, TargetKind, Timestamp, UserId,
};
use rusqlite::{Connection, params};

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

pub(crate) const INSERT_WEBSITE_MEMBER: &str =
    "INSERT INTO website_members (website_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)";

pub(crate) const INSERT_GROUP_MEMBER: &str =
    "INSERT INTO group_members (group_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)";

pub(crate) fn insert_membership(
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

pub(crate) fn set_invitation_status(
    conn: &Connection,
    id: InvitationId,
    status: StoredStatus,
) -> Result<(), Error> {
    conn.prepare_cached("UPDATE invitations SET status = ?2 WHERE id = ?1")?
        .execute(params![id.0.as_bytes(), status.as_str()])?;
    Ok(())
}
