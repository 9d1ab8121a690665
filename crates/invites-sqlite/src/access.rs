//! The reads of [`AccessStore`](invites_core::AccessStore): the paths by which a user reaches a
//! website, and the two member lists as keyset pages.
//!
//! # Pages that cost the page
//!
//! A list is the union of a few *streams*, each a range of one index in key order starting
//! after the cursor: a website's direct members (`website_members` by its primary key), the
//! members of each group that contains it (`group_members`, one range per group) and the
//! organization's members (`org_members`); or a user's direct memberships
//! (`website_members_by_user`), the websites of each of his groups (`group_websites`) and, for
//! an organization member, the organization's websites (`websites_by_organization_id`). Each
//! stream is read `LIMIT n`, and the first `n` keys of the union are the page: a key among the
//! first `n` of the union is among the first `n` of every stream that holds it (the stream's
//! smaller keys are all in the union before it), so each page key has all its paths. No read
//! goes past `n` rows of a stream, whatever the size of the organization.
//!
//! A key whose row this version cannot decode (a user's email) is left out with a warning and
//! the page is filled up from the keys after it, so a page is short only at the end of the
//! list (as `list_invitations` does).

use crate::columns::Unreadable;
use crate::columns::{decode, get_email, get_org_role, get_role, get_uuid, sql_limit};
use crate::error::Error;
use invites_core::access::{
    AccessFacts, MemberQuery, MemberRecord, UserWebsiteRecord, UserWebsitesQuery,
};
use invites_core::{AccessPath, GroupId, OrganizationId, TargetId, UserId, WebsiteId};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::BTreeMap;
use std::ops::Bound;
use uuid::Uuid;

/// The website (kind 0: its organization and name) and every path of user `?1` to website
/// `?2`, one indexed read per path kind: the website membership by its primary key (kind 1),
/// the memberships of the groups that contain the website (kind 2: `group_websites` by
/// website, then `group_members` by primary key), the organization membership by its primary
/// key (kind 3).
const PATHS: &str = "\
SELECT 0, w.organization_id, w.name FROM websites w WHERE w.id = ?2
UNION ALL
SELECT 1, NULL, m.role FROM website_members m WHERE m.website_id = ?2 AND m.user_id = ?1
UNION ALL
SELECT 2, gm.group_id, gm.role FROM group_websites gw
    JOIN group_members gm ON gm.group_id = gw.group_id AND gm.user_id = ?1
    WHERE gw.website_id = ?2
UNION ALL
SELECT 3, NULL, om.role FROM websites w
    JOIN org_members om ON om.organization_id = w.organization_id AND om.user_id = ?1
    WHERE w.id = ?2";

/// A website as [`website_paths`] reads it.
pub(crate) struct WebsitePaths {
    pub(crate) organization: OrganizationId,
    pub(crate) name: String,
    /// Direct, then groups by id, then organization.
    pub(crate) paths: Vec<AccessPath>,
}

/// The website `website`, with every path of `user` to it; `None` without the website.
pub(crate) fn website_paths(
    conn: &Connection,
    user: UserId,
    website: WebsiteId,
) -> Result<Option<WebsitePaths>, Error> {
    let mut stmt = conn.prepare_cached(PATHS)?;
    let mut rows = stmt.query(params![user.0.as_bytes(), website.0.as_bytes()])?;
    let mut site = None;
    let (mut direct, mut groups, mut org) = (None, Vec::new(), None);
    while let Some(row) = rows.next()? {
        match row.get::<_, i64>(0)? {
            0 => site = Some((OrganizationId(get_uuid(row, 1)?), row.get::<_, String>(2)?)),
            1 => {
                direct = Some(AccessPath::Direct {
                    role: get_role(row, 2)?,
                })
            }
            2 => groups.push(AccessPath::Group {
                group: GroupId(get_uuid(row, 1)?),
                role: get_role(row, 2)?,
            }),
            _ => {
                org = Some(AccessPath::Organization {
                    org_role: get_org_role(row, 2)?,
                });
            }
        }
    }
    let Some((organization, name)) = site else {
        return Ok(None);
    };
    groups.sort();
    let paths = direct.into_iter().chain(groups).chain(org).collect();
    Ok(Some(WebsitePaths {
        organization,
        name,
        paths,
    }))
}

pub(crate) fn access_paths(
    conn: &Connection,
    user: UserId,
    website: WebsiteId,
) -> Result<Option<AccessFacts>, Error> {
    Ok(website_paths(conn, user, website)?.map(|w| AccessFacts {
        organization: w.organization,
        paths: w.paths,
    }))
}

/// A read transaction, so that the statements of one page see one state.
fn read(conn: &mut Connection) -> Result<Transaction<'_>, Error> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Deferred)?)
}

/// The keyset position of a stream: `> after`, where no cursor is the empty BLOB (smaller
/// than every 16-byte id).
fn position(after: Option<Uuid>) -> Vec<u8> {
    after.map_or_else(Vec::new, |a| a.as_bytes().to_vec())
}

/// Paths gathered from the streams of one page, by key.
type Gathered = BTreeMap<Uuid, Vec<AccessPath>>;

/// Reads one stream: `sql` selects `(key, ...)` with parameters `fixed`, then the position and
/// the limit, and `path` makes the row's path; each row's path is appended to its key's.
fn stream(
    conn: &Connection,
    sql: &str,
    fixed: &[u8],
    after: &[u8],
    need: usize,
    gathered: &mut Gathered,
    path: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<AccessPath>,
) -> Result<(), Error> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![fixed, after, sql_limit(need)])?;
    while let Some(row) = rows.next()? {
        gathered
            .entry(get_uuid(row, 0)?)
            .or_default()
            .push(path(row)?);
    }
    Ok(())
}

/// Fills a page of at most `limit` entries after `after`: `gather(after, need)` reads the
/// streams (each at most `need` rows past `after`), `finish` turns one of the first `need`
/// keys into its record (or the row it could not read). Unreadable keys are left out and the
/// page filled up from the keys after them.
fn fill_page<R>(
    limit: usize,
    mut after: Option<Uuid>,
    mut gather: impl FnMut(Option<Uuid>, usize) -> Result<Gathered, Error>,
    mut finish: impl FnMut(Uuid, Vec<AccessPath>) -> Result<Option<Result<R, Unreadable>>, Error>,
) -> Result<Vec<R>, Error> {
    let mut out = Vec::new();
    while out.len() < limit {
        let need = limit - out.len();
        let gathered = gather(after, need)?;
        // A stream's keys are distinct, so fewer than `need` keys means every stream ended.
        let more = gathered.len() >= need;
        for (key, paths) in gathered.into_iter().take(need) {
            after = Some(key);
            match finish(key, paths)? {
                Some(Ok(record)) => out.push(record),
                Some(Err(unreadable)) => unreadable.report_skipped(),
                None => {}
            }
        }
        if !more {
            break;
        }
    }
    Ok(out)
}

/// The organization of a target; `None` without it.
pub(crate) fn target_organization(
    conn: &Connection,
    target: TargetId,
) -> Result<Option<OrganizationId>, Error> {
    let sql = match target {
        TargetId::Website(_) => "SELECT organization_id FROM websites WHERE id = ?1",
        TargetId::Group(_) => "SELECT organization_id FROM groups WHERE id = ?1",
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([target.uuid().as_bytes()], |row| {
            Ok(OrganizationId(get_uuid(row, 0)?))
        })
        .optional()?)
}

const WEBSITE_MEMBERS_AFTER: &str = "SELECT user_id, role FROM website_members \
     WHERE website_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3";
const GROUP_MEMBERS_AFTER: &str = "SELECT user_id, role FROM group_members \
     WHERE group_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3";
const ORG_MEMBERS_AFTER: &str = "SELECT user_id, role FROM org_members \
     WHERE organization_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3";

const GROUPS_OF_WEBSITE: &str =
    "SELECT group_id FROM group_websites WHERE website_id = ?1 ORDER BY group_id";
const MEMBER_EMAIL: &str = "SELECT id, email FROM users WHERE id = ?1";

/// The groups that contain a website, by id.
fn groups_of_website(conn: &Connection, website: Uuid) -> Result<Vec<Uuid>, Error> {
    let mut stmt = conn.prepare_cached(GROUPS_OF_WEBSITE)?;
    let ids = stmt
        .query_map([website.as_bytes()], |row| get_uuid(row, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// A member's email, or the row that could not be read; `None` without the user.
fn member_email(
    conn: &Connection,
    user: Uuid,
) -> Result<Option<Result<invites_core::Email, Unreadable>>, Error> {
    Ok(conn
        .prepare_cached(MEMBER_EMAIL)?
        .query_row([user.as_bytes()], |row| {
            decode("users", row, |row| get_email(row, 1))
        })
        .optional()?)
}

pub(crate) fn list_members(
    conn: &mut Connection,
    q: &MemberQuery,
) -> Result<Option<Vec<MemberRecord>>, Error> {
    let tx = read(conn)?;
    if target_organization(&tx, q.target)? != Some(q.organization) {
        return Ok(None);
    }
    let target = q.target.uuid();
    let groups = match q.target {
        TargetId::Website(_) => groups_of_website(&tx, target)?,
        TargetId::Group(_) => Vec::new(),
    };
    let gather = |after: Option<Uuid>, need: usize| -> Result<Gathered, Error> {
        let after = position(after);
        let mut gathered = Gathered::new();
        let role_path = |row: &rusqlite::Row<'_>| {
            Ok(AccessPath::Direct {
                role: get_role(row, 1)?,
            })
        };
        match q.target {
            TargetId::Group(group) => {
                stream(
                    &tx,
                    GROUP_MEMBERS_AFTER,
                    target.as_bytes(),
                    &after,
                    need,
                    &mut gathered,
                    |row| {
                        Ok(AccessPath::Group {
                            group,
                            role: get_role(row, 1)?,
                        })
                    },
                )?;
            }
            TargetId::Website(_) => {
                stream(
                    &tx,
                    WEBSITE_MEMBERS_AFTER,
                    target.as_bytes(),
                    &after,
                    need,
                    &mut gathered,
                    role_path,
                )?;
                for group in &groups {
                    stream(
                        &tx,
                        GROUP_MEMBERS_AFTER,
                        group.as_bytes(),
                        &after,
                        need,
                        &mut gathered,
                        |row| {
                            Ok(AccessPath::Group {
                                group: GroupId(*group),
                                role: get_role(row, 1)?,
                            })
                        },
                    )?;
                }
                stream(
                    &tx,
                    ORG_MEMBERS_AFTER,
                    q.organization.0.as_bytes(),
                    &after,
                    need,
                    &mut gathered,
                    |row| {
                        Ok(AccessPath::Organization {
                            org_role: get_org_role(row, 1)?,
                        })
                    },
                )?;
            }
        }
        Ok(gathered)
    };
    let finish = |user: Uuid, paths: Vec<AccessPath>| {
        Ok(member_email(&tx, user)?.map(|email| {
            email.map(|email| MemberRecord {
                user: UserId(user),
                email,
                paths,
            })
        }))
    };
    let page = fill_page(q.limit, q.after.map(|u| u.0), gather, finish)?;
    Ok(Some(page))
}

const USER_WEBSITES_AFTER: &str = "SELECT m.website_id, m.role FROM website_members m \
     JOIN websites w ON w.id = m.website_id \
     WHERE m.user_id = ?1 AND m.website_id > ?2 AND w.organization_id = ?4 \
     ORDER BY m.website_id LIMIT ?3";
const GROUP_WEBSITES_AFTER: &str = "SELECT website_id FROM group_websites \
     WHERE group_id = ?1 AND website_id > ?2 ORDER BY website_id LIMIT ?3";
const ORG_WEBSITES_AFTER: &str = "SELECT id FROM websites \
     WHERE organization_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3";

const GROUPS_OF_USER: &str = "SELECT gm.group_id, gm.role FROM group_members gm \
     JOIN groups g ON g.id = gm.group_id \
     WHERE gm.user_id = ?1 AND g.organization_id = ?2 ORDER BY gm.group_id";
const ORG_ROLE: &str = "SELECT role FROM org_members WHERE organization_id = ?1 AND user_id = ?2";
const WEBSITE_NAME: &str = "SELECT name FROM websites WHERE id = ?1";

/// The groups of `organization` that `user` is a member of, by id, with the roles.
fn groups_of_user(
    conn: &Connection,
    user: UserId,
    organization: OrganizationId,
) -> Result<Vec<(GroupId, invites_core::Role)>, Error> {
    let mut stmt = conn.prepare_cached(GROUPS_OF_USER)?;
    let groups = stmt
        .query_map(
            params![user.0.as_bytes(), organization.0.as_bytes()],
            |row| Ok((GroupId(get_uuid(row, 0)?), get_role(row, 1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(groups)
}

pub(crate) fn list_user_websites(
    conn: &mut Connection,
    q: &UserWebsitesQuery,
) -> Result<Vec<UserWebsiteRecord>, Error> {
    let tx = read(conn)?;
    if let Some(allow) = &q.websites {
        return allowed_websites(&tx, q, allow);
    }
    let org_role = tx
        .prepare_cached(ORG_ROLE)?
        .query_row(
            params![q.organization.0.as_bytes(), q.user.0.as_bytes()],
            |row| get_org_role(row, 0),
        )
        .optional()?;
    let groups = groups_of_user(&tx, q.user, q.organization)?;
    let gather = |after: Option<Uuid>, need: usize| -> Result<Gathered, Error> {
        let after = position(after);
        let mut gathered = Gathered::new();
        let mut direct = tx.prepare_cached(USER_WEBSITES_AFTER)?;
        let mut rows = direct.query(params![
            q.user.0.as_bytes(),
            after,
            sql_limit(need),
            q.organization.0.as_bytes()
        ])?;
        while let Some(row) = rows.next()? {
            gathered
                .entry(get_uuid(row, 0)?)
                .or_default()
                .push(AccessPath::Direct {
                    role: get_role(row, 1)?,
                });
        }
        for (group, role) in &groups {
            let (group, role) = (*group, *role);
            stream(
                &tx,
                GROUP_WEBSITES_AFTER,
                group.0.as_bytes(),
                &after,
                need,
                &mut gathered,
                |_| Ok(AccessPath::Group { group, role }),
            )?;
        }
        if let Some(org_role) = org_role {
            stream(
                &tx,
                ORG_WEBSITES_AFTER,
                q.organization.0.as_bytes(),
                &after,
                need,
                &mut gathered,
                |_| Ok(AccessPath::Organization { org_role }),
            )?;
        }
        Ok(gathered)
    };
    let finish = |website: Uuid, paths: Vec<AccessPath>| {
        let name = tx
            .prepare_cached(WEBSITE_NAME)?
            .query_row([website.as_bytes()], |row| row.get::<_, String>(0))
            .optional()?;
        Ok(name.map(|name| {
            Ok(UserWebsiteRecord {
                website: WebsiteId(website),
                name,
                paths,
            })
        }))
    };
    fill_page(q.limit, q.after.map(|w| w.0), gather, finish)
}

/// A website-scoped key's list: the allowlisted websites after the cursor, in id order, each
/// read with [`website_paths`] (the allowlist bounds the work, never the organization's size).
fn allowed_websites(
    conn: &Connection,
    q: &UserWebsitesQuery,
    allow: &std::collections::BTreeSet<WebsiteId>,
) -> Result<Vec<UserWebsiteRecord>, Error> {
    let from = q.after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = Vec::new();
    for website in allow.range((from, Bound::Unbounded)) {
        if out.len() == q.limit {
            break;
        }
        let Some(w) = website_paths(conn, q.user, *website)? else {
            continue;
        };
        if w.organization == q.organization && !w.paths.is_empty() {
            out.push(UserWebsiteRecord {
                website: *website,
                name: w.name,
                paths: w.paths,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Asserts that each statement only searches indexes: no full scan, no sort of a whole
    /// range (on the schema as migrated, without statistics, as a new database has it).
    pub(crate) fn assert_searches(statements: &[&str]) {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(&mut conn).expect("migrate");
        for sql in statements {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let steps: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |row| {
                    row.get::<_, String>(3)
                })
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("rows");
            for step in &steps {
                let fine = step.starts_with("SEARCH")
                    || step == "COMPOUND QUERY"
                    || step == "LEFT-MOST SUBQUERY"
                    || step == "UNION ALL";
                assert!(fine, "{sql}\n{steps:#?}");
            }
        }
    }

    #[test]
    fn every_access_read_is_an_index_search_from_the_cursor() {
        assert_searches(&[
            PATHS,
            WEBSITE_MEMBERS_AFTER,
            GROUP_MEMBERS_AFTER,
            ORG_MEMBERS_AFTER,
            GROUPS_OF_WEBSITE,
            MEMBER_EMAIL,
            USER_WEBSITES_AFTER,
            GROUP_WEBSITES_AFTER,
            ORG_WEBSITES_AFTER,
            GROUPS_OF_USER,
            ORG_ROLE,
            WEBSITE_NAME,
        ]);
    }
}
