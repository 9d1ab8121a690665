//! [`Directory`](invites_core::Directory) and [`Inspect`](invites_core::Inspect) operations.

use crate::error::Error;
use crate::events;
use crate::sql::{
    INVITATION_SELECT, LOCK_EMAIL, OUTBOX_COLUMNS, USER_COLUMNS, decode_all, email, execute,
    invitation_from_row, message_from_row, name_param, query, tag, text, ts, user_from_row, uuid,
};
use crate::{PgStore, transaction};
use invites_core::{
    BatchId, Group, GroupId, MembershipRow, NewEvent, OrgRole, OrganizationId, Role, Snapshot,
    TargetKind, Timestamp, User, UserId, Website, WebsiteId,
};

async fn organization_exists(
    store: &PgStore,
    tx: &deadpool_postgres::Transaction<'_>,
    id: OrganizationId,
) -> Result<bool, Error> {
    Ok(!query(
        tx,
        &store.q("SELECT 1 FROM {schema}.organizations WHERE id = $1"),
        &[&id.0],
    )
    .await?
    .is_empty())
}

pub(crate) async fn create_organization(
    store: &PgStore,
    id: OrganizationId,
    name: &str,
) -> Result<(), Error> {
    transaction!(store, |tx| {
        let inserted = execute(
            &tx,
            &store.q(
                "INSERT INTO {schema}.organizations (id, name) VALUES ($1, $2) \
                 ON CONFLICT (id) DO NOTHING",
            ),
            &[&id.0, &name],
        )
        .await?;
        if inserted == 0 {
            let rows = query(
                &tx,
                &store.q("SELECT name FROM {schema}.organizations WHERE id = $1"),
                &[&id.0],
            )
            .await?;
            if rows
                .first()
                .map(|r| text(r, "name"))
                .transpose()?
                .as_deref()
                != Some(name)
            {
                return Err(Error::Conflict(format!(
                    "organization {id} exists with another name"
                )));
            }
        }
        tx.commit().await?;
        Ok(())
    })
}

pub(crate) async fn create_website(store: &PgStore, website: &Website) -> Result<(), Error> {
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q(
                "SELECT organization_id, name, url FROM {schema}.websites WHERE id = $1 FOR UPDATE",
            ),
            &[&website.id.0],
        )
        .await?;
        if let Some(row) = rows.first() {
            let existing = Website {
                id: website.id,
                organization: OrganizationId(uuid(row, "organization_id")?),
                name: text(row, "name")?,
                url: text(row, "url")?,
            };
            if existing == *website {
                return Ok(());
            }
            return Err(Error::Conflict(format!(
                "website {} exists with other content",
                website.id
            )));
        }
        if !organization_exists(store, &tx, website.organization).await? {
            return Err(Error::Missing(format!(
                "organization {} does not exist",
                website.organization
            )));
        }
        execute(
            &tx,
            &store.q(
                "INSERT INTO {schema}.websites (id, organization_id, name, url) \
                 VALUES ($1, $2, $3, $4)",
            ),
            &[
                &website.id.0,
                &website.organization.0,
                &website.name,
                &website.url,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
}

pub(crate) async fn create_group(store: &PgStore, group: &Group) -> Result<(), Error> {
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q("SELECT organization_id, name FROM {schema}.groups WHERE id = $1 FOR UPDATE"),
            &[&group.id.0],
        )
        .await?;
        if let Some(row) = rows.first() {
            let existing = Group {
                id: group.id,
                organization: OrganizationId(uuid(row, "organization_id")?),
                name: text(row, "name")?,
            };
            if existing == *group {
                return Ok(());
            }
            return Err(Error::Conflict(format!(
                "group {} exists with other content",
                group.id
            )));
        }
        if !organization_exists(store, &tx, group.organization).await? {
            return Err(Error::Missing(format!(
                "organization {} does not exist",
                group.organization
            )));
        }
        execute(
            &tx,
            &store.q("INSERT INTO {schema}.groups (id, organization_id, name) VALUES ($1, $2, $3)"),
            &[&group.id.0, &group.organization.0, &group.name],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
}

pub(crate) async fn add_website_to_group(
    store: &PgStore,
    group: GroupId,
    website: WebsiteId,
) -> Result<(), Error> {
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q(
                "SELECT (SELECT organization_id FROM {schema}.groups WHERE id = $1) AS group_org, \
                        (SELECT organization_id FROM {schema}.websites WHERE id = $2) AS website_org",
            ),
            &[&group.0, &website.0],
        )
        .await?;
        let row = rows.first().ok_or(Error::Corrupt {
            column: "group_org",
        })?;
        let group_org = crate::sql::opt_uuid(row, "group_org")?
            .ok_or_else(|| Error::Missing(format!("group {group} does not exist")))?;
        let website_org = crate::sql::opt_uuid(row, "website_org")?
            .ok_or_else(|| Error::Missing(format!("website {website} does not exist")))?;
        if group_org != website_org {
            return Err(Error::Conflict(format!(
                "website {website} and group {group} belong to different organizations"
            )));
        }
        execute(
            &tx,
            &store.q(
                "INSERT INTO {schema}.group_websites (group_id, website_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            ),
            &[&group.0, &website.0],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
}

pub(crate) async fn create_user(store: &PgStore, user: &User) -> Result<UserId, Error> {
    transaction!(store, |tx| {
        // The same lock as the bulk writes: a user created here never races one created there.
        execute(&tx, LOCK_EMAIL, &[&user.email.as_str()]).await?;
        let rows = query(
            &tx,
            &store.q("SELECT id FROM {schema}.users WHERE email = $1"),
            &[&user.email.as_str()],
        )
        .await?;
        if let Some(row) = rows.first() {
            return Ok(UserId(uuid(row, "id")?));
        }
        execute(
            &tx,
            &store.q(crate::bulk::INSERT_USER),
            &[
                &user.id.0,
                &user.email.as_str(),
                &user.email_verified,
                &name_param(&user.first_name),
                &name_param(&user.last_name),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(user.id)
    })
}

pub(crate) async fn add_org_member(
    store: &PgStore,
    organization: OrganizationId,
    user: UserId,
    role: OrgRole,
) -> Result<(), Error> {
    transaction!(store, |tx| {
        if !organization_exists(store, &tx, organization).await? {
            return Err(Error::Missing(format!(
                "organization {organization} does not exist"
            )));
        }
        let exists = !query(
            &tx,
            &store.q("SELECT 1 FROM {schema}.users WHERE id = $1"),
            &[&user.0],
        )
        .await?
        .is_empty();
        if !exists {
            return Err(Error::Missing(format!("user {user} does not exist")));
        }
        execute(
            &tx,
            &store.q(
                "INSERT INTO {schema}.org_members (organization_id, user_id, role) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role",
            ),
            &[&organization.0, &user.0, &role.as_str()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
}

/// Appends the one event of a Directory change (no actor) in `tx`, when `organization` says
/// the change happened there.
async fn append_change(
    store: &PgStore,
    tx: &deadpool_postgres::Transaction<'_>,
    organization: Option<uuid::Uuid>,
    at: Timestamp,
    event: NewEvent,
) -> Result<(), Error> {
    if let Some(organization) = organization {
        let ctx = events::context(OrganizationId(organization), None, at);
        events::append(store, tx, &ctx, &[event]).await?;
    }
    Ok(())
}

/// The organization in the first row's `organization_id`, if any row.
fn organization_of(rows: &[tokio_postgres::Row]) -> Result<Option<uuid::Uuid>, Error> {
    Ok(rows
        .first()
        .map(|row| crate::sql::opt_uuid(row, "organization_id"))
        .transpose()?
        .flatten())
}

/// One statement, its memberships, group links and invitations with it; `website_deleted`
/// when there was a website.
pub(crate) async fn delete_website(
    store: &PgStore,
    id: WebsiteId,
    at: Timestamp,
) -> Result<(), Error> {
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q(
                "WITH m AS (DELETE FROM {schema}.website_members WHERE website_id = $1), \
                      g AS (DELETE FROM {schema}.group_websites WHERE website_id = $1), \
                      i AS (DELETE FROM {schema}.invitations \
                            WHERE target_kind = 'website' AND target_id = $1) \
                 DELETE FROM {schema}.websites WHERE id = $1 RETURNING organization_id",
            ),
            &[&id.0],
        )
        .await?;
        let organization = organization_of(&rows)?;
        append_change(store, &tx, organization, at, NewEvent::website_deleted(id)).await?;
        tx.commit().await?;
        Ok(())
    })
}

pub(crate) async fn remove_org_member(
    store: &PgStore,
    organization: OrganizationId,
    user: UserId,
    at: Timestamp,
) -> Result<bool, Error> {
    transaction!(store, |tx| {
        let removed = execute(
            &tx,
            &store
                .q("DELETE FROM {schema}.org_members WHERE organization_id = $1 AND user_id = $2"),
            &[&organization.0, &user.0],
        )
        .await?;
        let changed = (removed > 0).then_some(organization.0);
        append_change(store, &tx, changed, at, NewEvent::org_member_removed(user)).await?;
        tx.commit().await?;
        Ok(removed > 0)
    })
}

/// Whether the user is a member; the role is written, with its event, only when it changes.
pub(crate) async fn set_org_role(
    store: &PgStore,
    organization: OrganizationId,
    user: UserId,
    role: OrgRole,
    at: Timestamp,
) -> Result<bool, Error> {
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q("SELECT role FROM {schema}.org_members \
                 WHERE organization_id = $1 AND user_id = $2 FOR UPDATE"),
            &[&organization.0, &user.0],
        )
        .await?;
        let Some(row) = rows.first() else {
            return Ok(false);
        };
        // A role this version cannot read is changed like any other.
        let current = text(row, "role")?;
        if current != role.as_str() {
            execute(
                &tx,
                &store.q("UPDATE {schema}.org_members SET role = $3 \
                     WHERE organization_id = $1 AND user_id = $2"),
                &[&organization.0, &user.0, &role.as_str()],
            )
            .await?;
            let event = NewEvent::org_member_role_changed(user, role);
            append_change(store, &tx, Some(organization.0), at, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    })
}

pub(crate) async fn remove_website_from_group(
    store: &PgStore,
    group: GroupId,
    website: WebsiteId,
    at: Timestamp,
) -> Result<bool, Error> {
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q(
                "DELETE FROM {schema}.group_websites gw WHERE group_id = $1 AND website_id = $2 \
                 RETURNING (SELECT g.organization_id FROM {schema}.groups g \
                            WHERE g.id = gw.group_id) AS organization_id",
            ),
            &[&group.0, &website.0],
        )
        .await?;
        let organization = organization_of(&rows)?;
        let event = NewEvent::website_removed_from_group(group, website);
        append_change(store, &tx, organization, at, event).await?;
        tx.commit().await?;
        Ok(!rows.is_empty())
    })
}

/// One statement, as [`delete_website`]: the group's memberships, its website links and its
/// invitations go with it (their batches stay, as the other invitations of a batch do);
/// `group_deleted` when there was a group.
pub(crate) async fn delete_group(
    store: &PgStore,
    id: GroupId,
    at: Timestamp,
) -> Result<bool, Error> {
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q(
                "WITH m AS (DELETE FROM {schema}.group_members WHERE group_id = $1), \
                      w AS (DELETE FROM {schema}.group_websites WHERE group_id = $1), \
                      i AS (DELETE FROM {schema}.invitations \
                            WHERE target_kind = 'group' AND target_id = $1) \
                 DELETE FROM {schema}.groups WHERE id = $1 RETURNING organization_id",
            ),
            &[&id.0],
        )
        .await?;
        let organization = organization_of(&rows)?;
        append_change(store, &tx, organization, at, NewEvent::group_deleted(id)).await?;
        tx.commit().await?;
        Ok(!rows.is_empty())
    })
}

/// Everything, in one read-only snapshot. A row this version cannot decode is left out of its
/// table (and reported): the snapshot shows the rest instead of failing.
pub(crate) async fn snapshot(store: &PgStore) -> Result<Snapshot, Error> {
    let mut client = store.client().await?;
    // One snapshot for every part, so they agree with each other.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut users = query(
        &tx,
        &store.q(&format!("SELECT {USER_COLUMNS} FROM {{schema}}.users")),
        &[],
    )
    .await
    .and_then(|rows| decode_all("users", &rows, user_from_row))?;
    users.sort_by(|a, b| a.email.cmp(&b.email));

    let rows = query(
        &tx,
        &store.q(
            "SELECT 'website' AS kind, website_id AS target, user_id, role, created_at \
               FROM {schema}.website_members \
             UNION ALL \
             SELECT 'group', group_id, user_id, role, created_at FROM {schema}.group_members",
        ),
        &[],
    )
    .await?;
    let mut memberships = decode_all("memberships", &rows, |row| {
        Ok(MembershipRow {
            target: tag(row, "kind", TargetKind::parse)?.with_id(uuid(row, "target")?),
            user: UserId(uuid(row, "user_id")?),
            role: tag(row, "role", Role::parse)?,
            created_at: ts(row, "created_at")?,
        })
    })?;
    memberships.sort();

    let rows = query(
        &tx,
        &store.q("SELECT organization_id, user_id, role FROM {schema}.org_members"),
        &[],
    )
    .await?;
    let mut org_members = decode_all("org_members", &rows, |row| {
        Ok((
            OrganizationId(uuid(row, "organization_id")?),
            UserId(uuid(row, "user_id")?),
            tag(row, "role", OrgRole::parse)?,
        ))
    })?;
    org_members.sort();

    let rows = query(&tx, &store.q(INVITATION_SELECT), &[]).await?;
    let mut invitations: Vec<_> = decode_all("invitations", &rows, invitation_from_row)?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    invitations.sort_by_key(|i| (i.created_at, i.id));

    let rows = query(
        &tx,
        &store.q("SELECT id, organization_id, email, created_at FROM {schema}.batches"),
        &[],
    )
    .await?;
    let mut batches = decode_all("batches", &rows, |row| {
        Ok((
            BatchId(uuid(row, "id")?),
            OrganizationId(uuid(row, "organization_id")?),
            email(row, "email")?,
            ts(row, "created_at")?,
        ))
    })?;
    batches.sort_by_key(|b| b.0);

    let mut outbox = query(
        &tx,
        &store.q(&format!("SELECT {OUTBOX_COLUMNS} FROM {{schema}}.outbox")),
        &[],
    )
    .await
    .and_then(|rows| decode_all("outbox", &rows, message_from_row))?;
    outbox.sort_by_key(|m| (m.created_at, m.id));
    tx.commit().await?;
    Ok(Snapshot {
        users,
        memberships,
        org_members,
        invitations,
        batches,
        outbox,
    })
}
