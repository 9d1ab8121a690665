//! Who has access (issue 18): the paths from a user to a website, the member lists of a
//! target and the website lists of a user. Every read is ONE statement per page (the
//! existence of the target is checked in the same round trip, pipelined), made of index
//! probes and index range scans that start at the cursor (migration 6), so a page costs the
//! page, whatever plan a prepared statement keeps. The writes are in `change.rs`
//! (`change_member`) and `erase.rs` (`erase_person`).

use crate::PgStore;
use crate::error::Error;
use crate::sql::{Params, decode, email, opt_role, opt_text, query, text, uuid};
use invites_core::access::{
    AccessFacts, MemberQuery, MemberRecord, UserWebsiteRecord, UserWebsitesQuery,
};
use invites_core::{
    AccessPath, GroupId, OrgRole, OrganizationId, Role, TargetId, UserId, WebsiteId,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// The paths of user `$1` to website `$2`, and the website's organization: the website by
/// its primary key, then one probe each: the website membership (primary key), the
/// organization membership (primary key), and the memberships of the groups that contain
/// the website (`group_websites_by_website`, then `group_members`' primary key). No row: no
/// such website.
const ACCESS_PATHS: &str = "\
SELECT w.organization_id,
       (SELECT d.role FROM {schema}.website_members d
        WHERE d.website_id = w.id AND d.user_id = $1) AS direct_role,
       (SELECT o.role FROM {schema}.org_members o
        WHERE o.organization_id = w.organization_id AND o.user_id = $1) AS org_role,
       g.group_ids, g.group_roles
FROM {schema}.websites w
CROSS JOIN LATERAL (
    SELECT array_agg(gm.group_id ORDER BY gm.group_id) AS group_ids,
           array_agg(gm.role ORDER BY gm.group_id) AS group_roles
    FROM {schema}.group_websites gw
    JOIN {schema}.group_members gm ON gm.group_id = gw.group_id AND gm.user_id = $1
    WHERE gw.website_id = w.id
) g
WHERE w.id = $2";

/// The columns of one row of a page: its paths from user `{user}` to website `{website}`
/// in organization `{org}`, each read by probes. Scalar subqueries and an aggregate
/// `LATERAL`, never joins: a plan may not turn them into a hash or merge join that reads a
/// whole table (which generic plans did with `LEFT JOIN`s here, whatever the page size).
fn path_columns(user: &str, website: &str, org: &str) -> String {
    format!(
        "(SELECT d.role FROM {{schema}}.website_members d
         WHERE d.website_id = {website} AND d.user_id = {user}) AS direct_role,
        (SELECT o.role FROM {{schema}}.org_members o
         WHERE o.organization_id = {org} AND o.user_id = {user}) AS org_role,
        g.group_ids, g.group_roles"
    )
}

/// The group paths of user `{user}` to website `{website}`, as two arrays in group order
/// (NULL without any): an aggregate, so evaluated once per row of the page.
fn group_paths(user: &str, website: &str) -> String {
    format!(
        "CROSS JOIN LATERAL (
    SELECT array_agg(gm.group_id ORDER BY gm.group_id) AS group_ids,
           array_agg(gm.role ORDER BY gm.group_id) AS group_roles
    FROM {{schema}}.group_websites gw
    JOIN {{schema}}.group_members gm ON gm.group_id = gw.group_id AND gm.user_id = {user}
    WHERE gw.website_id = {website}
) g"
    )
}

/// A page of the members of website `$1` (of organization `$2`) after user `$3`, at most
/// `$4`: the first `$4` users after the cursor of each source (the website's memberships by
/// primary key, each containing group's memberships by primary key, the organization's
/// members by primary key), merged; then each user's email and paths, by probes. `{op}` is
/// `>` after a cursor and `>=` from the nil id on the first page, so every statement has the
/// cursor condition on the index's second column.
fn website_members_sql(op: &str) -> String {
    format!(
        "\
WITH page AS (
    SELECT c.user_id FROM (
        (SELECT m.user_id FROM {{schema}}.website_members m
         WHERE m.website_id = $1 AND m.user_id {op} $3 ORDER BY m.user_id LIMIT $4)
        UNION
        (SELECT x.user_id FROM {{schema}}.group_websites gw
         CROSS JOIN LATERAL (
             SELECT gm.user_id FROM {{schema}}.group_members gm
             WHERE gm.group_id = gw.group_id AND gm.user_id {op} $3
             ORDER BY gm.user_id LIMIT $4
         ) x
         WHERE gw.website_id = $1)
        UNION
        (SELECT o.user_id FROM {{schema}}.org_members o
         WHERE o.organization_id = $2 AND o.user_id {op} $3 ORDER BY o.user_id LIMIT $4)
    ) c
    ORDER BY c.user_id LIMIT $4
)
SELECT p.user_id AS id,
       (SELECT u.email FROM {{schema}}.users u WHERE u.id = p.user_id) AS email,
       {paths}
FROM page p
{groups}
ORDER BY p.user_id",
        paths = path_columns("p.user_id", "$1", "$2"),
        groups = group_paths("p.user_id", "$1")
    )
}

/// A page of the explicit members of group `$1` after user `$2`, at most `$3`: a range of
/// `group_members`' primary key, and each user's email by a probe.
fn group_members_sql(op: &str) -> String {
    format!(
        "\
SELECT gm.user_id AS id,
       (SELECT u.email FROM {{schema}}.users u WHERE u.id = gm.user_id) AS email,
       gm.role AS group_role
FROM {{schema}}.group_members gm
WHERE gm.group_id = $1 AND gm.user_id {op} $2
ORDER BY gm.user_id LIMIT $3"
    )
}

/// A page of the websites of organization `$1` that user `$2` reaches, after website `$3`,
/// at most `$4`, then each website's name and paths, by probes. The page is the first `$4`
/// after the cursor of three sources, merged:
///
/// - the user's website memberships in the organization: a walk along
///   `website_members_by_user` from the cursor, one `LIMIT 1` probe per step (a recursive
///   CTE, read only as far as the page needs), each website's organization checked by a
///   probe. Written as one range scan with the organization as a filter, a generic plan
///   expected the filter to keep almost nothing, and read and sorted every membership of the
///   user instead of stopping after the page;
/// - the websites of the user's groups in the organization: each group's range of
///   `group_websites`' primary key from the cursor;
/// - for an organization member, the organization's websites: a range of
///   `websites_by_organization` from the cursor.
const USER_WEBSITES: &str = "\
WITH RECURSIVE direct(website_id) AS (
    (SELECT m.website_id FROM {schema}.website_members m
     WHERE m.user_id = $2 AND m.website_id {op} $3 ORDER BY m.website_id LIMIT 1)
    UNION ALL
    SELECT (SELECT m.website_id FROM {schema}.website_members m
            WHERE m.user_id = $2 AND m.website_id > d.website_id
            ORDER BY m.website_id LIMIT 1)
    FROM direct d WHERE d.website_id IS NOT NULL
),
page AS (
    SELECT c.website_id FROM (
        (SELECT d.website_id FROM direct d
         WHERE d.website_id IS NOT NULL
           AND (SELECT w.organization_id FROM {schema}.websites w
                WHERE w.id = d.website_id) = $1
         LIMIT $4)
        UNION
        (SELECT x.website_id FROM {schema}.group_members gm
         CROSS JOIN LATERAL (
             SELECT gw.website_id FROM {schema}.group_websites gw
             WHERE gw.group_id = gm.group_id AND gw.website_id {op} $3
             ORDER BY gw.website_id LIMIT $4
         ) x
         WHERE gm.user_id = $2
           AND (SELECT gr.organization_id FROM {schema}.groups gr
                WHERE gr.id = gm.group_id) = $1)
        UNION
        (SELECT w.id FROM {schema}.websites w
         WHERE w.organization_id = $1 AND w.id {op} $3
           AND EXISTS (SELECT 1 FROM {schema}.org_members o
                       WHERE o.organization_id = $1 AND o.user_id = $2)
         ORDER BY w.id LIMIT $4)
    ) c
    ORDER BY c.website_id LIMIT $4
)
SELECT p.website_id AS id,
       (SELECT w.name FROM {schema}.websites w WHERE w.id = p.website_id) AS name,
       {paths}
FROM page p
{groups}
ORDER BY p.website_id";

/// [`USER_WEBSITES`] for a website-scoped key: the allowlist `$5` is the source. Each
/// allowed website after the cursor, in id order, is kept if it is in the organization and
/// the user reaches it by any path (a probe of each path kind), so a page costs at most the
/// allowlist, however many websites the user or the organization has.
const USER_WEBSITES_ALLOWED: &str = "\
WITH page AS (
    SELECT a.id AS website_id FROM unnest($5::uuid[]) AS a(id)
    WHERE a.id {op} $3
      AND (SELECT w.organization_id FROM {schema}.websites w WHERE w.id = a.id) = $1
      AND (EXISTS (SELECT 1 FROM {schema}.website_members m
                   WHERE m.website_id = a.id AND m.user_id = $2)
           OR EXISTS (SELECT 1 FROM {schema}.group_websites gw
                      JOIN {schema}.group_members gm
                        ON gm.group_id = gw.group_id AND gm.user_id = $2
                      WHERE gw.website_id = a.id)
           OR EXISTS (SELECT 1 FROM {schema}.org_members o
                      WHERE o.organization_id = $1 AND o.user_id = $2))
    ORDER BY a.id LIMIT $4
)
SELECT p.website_id AS id,
       (SELECT w.name FROM {schema}.websites w WHERE w.id = p.website_id) AS name,
       {paths}
FROM page p
{groups}
ORDER BY p.website_id";

fn user_websites_sql(op: &str, allow: bool) -> String {
    let sql = if allow {
        USER_WEBSITES_ALLOWED
    } else {
        USER_WEBSITES
    };
    sql.replace("{op}", op)
        .replace("{paths}", &path_columns("$2", "p.website_id", "$1"))
        .replace("{groups}", &group_paths("$2", "p.website_id"))
}

/// The cursor condition and its bound: `> after`, or `>= nil` (every id) on the first page.
fn cursor(after: Option<Uuid>) -> (&'static str, Uuid) {
    match after {
        Some(id) => (">", id),
        None => (">=", Uuid::nil()),
    }
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Every path a row of [`ACCESS_PATHS`] or a page query names: direct, the groups in id
/// order, the organization.
fn paths_from_row(row: &Row) -> Result<Vec<AccessPath>, Error> {
    let mut paths = Vec::new();
    if let Some(role) = opt_role(row, "direct_role")? {
        paths.push(AccessPath::Direct { role });
    }
    let groups: Option<Vec<Uuid>> = row.try_get("group_ids").map_err(|_| Error::Corrupt {
        column: "group_ids",
    })?;
    let roles: Option<Vec<String>> = row.try_get("group_roles").map_err(|_| Error::Corrupt {
        column: "group_roles",
    })?;
    let (groups, roles) = (groups.unwrap_or_default(), roles.unwrap_or_default());
    if groups.len() != roles.len() {
        return Err(Error::Corrupt {
            column: "group_roles",
        });
    }
    for (group, role) in groups.into_iter().zip(roles) {
        paths.push(AccessPath::Group {
            group: GroupId(group),
            role: Role::parse(&role).ok_or(Error::Corrupt {
                column: "group_members.role",
            })?,
        });
    }
    if let Some(tag) = opt_text(row, "org_role")? {
        paths.push(AccessPath::Organization {
            org_role: OrgRole::parse(&tag).ok_or(Error::Corrupt {
                column: "org_members.role",
            })?,
        });
    }
    Ok(paths)
}

pub(crate) async fn access_paths(
    store: &PgStore,
    user: UserId,
    website: WebsiteId,
) -> Result<Option<AccessFacts>, Error> {
    let client = store.client().await?;
    let rows = query(&client, &store.q(ACCESS_PATHS), &[&user.0, &website.0]).await?;
    rows.first()
        .map(|row| {
            Ok(AccessFacts {
                organization: OrganizationId(uuid(row, "organization_id")?),
                paths: paths_from_row(row)?,
            })
        })
        .transpose()
}

/// Runs the existence check of a target and the first page query together (pipelined: one
/// round trip).
async fn exists_and_page<C: deadpool_postgres::GenericClient + Sync>(
    client: &C,
    (exists_sql, exists_params): (&str, &Params<'_>),
    (page_sql, page_params): (&str, &Params<'_>),
) -> Result<(bool, Vec<Row>), Error> {
    let exists = client.prepare_cached(exists_sql).await?;
    let page = client.prepare_cached(page_sql).await?;
    let (found, rows) = tokio::try_join!(
        client.query(&exists, exists_params),
        client.query(&page, page_params)
    )?;
    Ok((!found.is_empty(), rows))
}

pub(crate) async fn list_members(
    store: &PgStore,
    q: &MemberQuery,
) -> Result<Option<Vec<MemberRecord>>, Error> {
    let (exists_sql, page_sql) = match q.target {
        TargetId::Website(_) => (
            "SELECT 1 FROM {schema}.websites WHERE id = $1 AND organization_id = $2",
            website_members_sql(cursor(q.after.map(|u| u.0)).0),
        ),
        TargetId::Group(_) => (
            "SELECT 1 FROM {schema}.groups WHERE id = $1 AND organization_id = $2",
            group_members_sql(cursor(q.after.map(|u| u.0)).0),
        ),
    };
    let (exists_sql, page_sql) = (store.q(exists_sql), store.q(&page_sql));
    // Later rounds (after a row this version cannot read) always resume after a user.
    let resume_sql = store.q(&match q.target {
        TargetId::Website(_) => website_members_sql(">"),
        TargetId::Group(_) => group_members_sql(">"),
    });
    let target = q.target.uuid();
    let client = store.client().await?;
    let mut after = cursor(q.after.map(|u| u.0)).1;
    let mut page = Vec::new();
    let mut first = true;
    // A row this version cannot decode (an email a hand wrote) is left out and reported, and
    // the page is filled up from the rows after it, so a short page still means the end.
    loop {
        let want = q.limit - page.len();
        let limit = sql_limit(want);
        let params: Vec<&(dyn ToSql + Sync)> = match q.target {
            TargetId::Website(_) => vec![&target, &q.organization.0, &after, &limit],
            TargetId::Group(_) => vec![&target, &after, &limit],
        };
        let rows = if first {
            first = false;
            let (exists, rows) = exists_and_page(
                &client,
                (&exists_sql, &[&target, &q.organization.0]),
                (&page_sql, &params),
            )
            .await?;
            if !exists {
                return Ok(None);
            }
            rows
        } else {
            query(&client, &resume_sql, &params).await?
        };
        for row in &rows {
            let decoded = decode("users", row, |row| {
                let paths = match q.target {
                    TargetId::Website(_) => paths_from_row(row)?,
                    TargetId::Group(group) => vec![AccessPath::Group {
                        group,
                        role: opt_role(row, "group_role")?.ok_or(Error::Corrupt {
                            column: "group_members.role",
                        })?,
                    }],
                };
                Ok(MemberRecord {
                    user: UserId(uuid(row, "id")?),
                    email: email(row, "email")?,
                    paths,
                })
            })?;
            match decoded {
                Ok(record) => page.push(record),
                Err(unreadable) => unreadable.report_skipped(),
            }
            after = uuid(row, "id")?;
        }
        if rows.len() < want || page.len() == q.limit {
            return Ok(Some(page));
        }
    }
}

pub(crate) async fn list_user_websites(
    store: &PgStore,
    q: &UserWebsitesQuery,
) -> Result<Vec<UserWebsiteRecord>, Error> {
    if q.websites.as_ref().is_some_and(|allow| allow.is_empty()) {
        return Ok(Vec::new());
    }
    let (op, after) = cursor(q.after.map(|w| w.0));
    let sql = store.q(&user_websites_sql(op, q.websites.is_some()));
    let limit = sql_limit(q.limit);
    let allow: Vec<Uuid> = q.websites.iter().flatten().map(|w| w.0).collect::<Vec<_>>();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&q.organization.0, &q.user.0, &after, &limit];
    if q.websites.is_some() {
        params.push(&allow);
    }
    let client = store.client().await?;
    let rows = query(&client, &sql, &params).await?;
    // Every column here is an id, a name or a role tag the table's CHECK allows: a row this
    // version cannot read fails the page rather than shortening it.
    rows.iter()
        .map(|row| {
            Ok(UserWebsiteRecord {
                website: WebsiteId(uuid(row, "id")?),
                name: text(row, "name")?,
                paths: paths_from_row(row)?,
            })
        })
        .collect()
}
