//! The event log ([`EventStore`], `invites_core::events`): appending a call's events in its
//! transaction, reading an organization's log by position, purging old events and clearing
//! an erased user's id.
//!
//! # Storage: one row per call
//!
//! The events of one store call share their organization, time and actor and have
//! consecutive positions, so they are stored together: one `event_groups` row per call
//! (migration 5) with the positions `first_position..=last_position`, the time, the actor,
//! the events in `data` ([`event_codec`]) and, when they name exactly one user, that user in
//! `user_id` (indexed by `event_groups_by_user`, partial: only the groups naming one). A group
//! naming two or more users (rare: a call names its invitee or the member it changes) has a
//! NULL `user_id` and one `event_users` row per distinct user instead. A 50-target request
//! writes one row, not 51 events with three index entries each.
//!
//! # Erasure
//!
//! The groups naming a user are those of `event_groups_by_user` and of `event_users` for the
//! user: two index searches, never a scan of the log. Each is decoded, the user cleared and
//! the group encoded again with a NULL `user_id`, and the user's `event_users` rows go.
//!
//! # Appending
//!
//! A write collects its events ([`NewEvent`]) as it goes and appends them with [`append`] as
//! its last step, in its own transaction (or its job's savepoint, group commit): one
//! `UPDATE … RETURNING` moves the organization's counter (`organizations.event_seq`) on by
//! the number of events, then one `INSERT` stores the group at the positions just given out.
//! The counter is on the organization's row, so the writer that moves it holds the write
//! lock until its commit: positions are gap-free and in commit order per organization (the
//! store has one writer at a time, whatever the number of connections or processes). A
//! per-target unit that fails collects no event, and a write that fails or rolls back takes
//! its counter update and its rows back with it.
//!
//! # Reading
//!
//! A page after position `p` walks the groups with `last_position > p` in order (a range of
//! the unique index), expands them, skips the positions `<= p` of the first and stops at
//! `limit` events. A group this version cannot decode is left out (and reported), as
//! `list_invitations` does with its rows: a reader sees a gap in positions there, as after a
//! purge, and is never stuck behind it.

use crate::SqliteStore;
use crate::columns::{corrupt, decode, get_ts, get_uuid};
use crate::error::Error;
use crate::event_codec::{self, Item, Malformed};
use async_trait::async_trait;
use invites_core::{
    ApiKeyId, Event, EventContext, EventStore, NewEvent, OrganizationId, StoreError, Timestamp,
    UserId,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

const BUMP_COUNTER: &str =
    "UPDATE organizations SET event_seq = event_seq + ?2 WHERE id = ?1 RETURNING event_seq";
const INSERT_GROUP: &str = "INSERT INTO event_groups \
     (organization_id, last_position, first_position, at, actor, user_id, data) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_USER: &str =
    "INSERT INTO event_users (user_id, organization_id, last_position) VALUES (?1, ?2, ?3)";

/// The columns of a group, in the order [`group_from_row`] reads them.
macro_rules! group_columns {
    () => {
        "organization_id, last_position, first_position, at, actor, data"
    };
}
/// The column index of `data` in `group_columns!`.
const DATA: usize = 5;

/// The groups of an organization whose last position is after `?2`, by position: a range of
/// the unique index, stepped through only as far as a page needs.
pub(crate) const GROUPS_AFTER: &str = concat!(
    "SELECT ",
    group_columns!(),
    " FROM event_groups WHERE organization_id = ?1 AND last_position > ?2 ORDER BY last_position"
);
/// One group, by its key.
const GROUP_AT: &str = concat!(
    "SELECT ",
    group_columns!(),
    " FROM event_groups WHERE organization_id = ?1 AND last_position = ?2"
);
/// The groups naming a user (erasure): those naming only the user (`event_groups_by_user`)
/// and those naming two or more (`event_users`). A group is in one or the other, never both.
const GROUPS_NAMING: &str = "SELECT organization_id, last_position FROM event_groups \
     WHERE user_id = ?1 \
     UNION ALL SELECT organization_id, last_position FROM event_users WHERE user_id = ?1";
/// A group with an erased user cleared: its `data` encoded again, and no single user.
const REWRITE_GROUP: &str = "UPDATE event_groups SET data = ?3, user_id = NULL \
     WHERE organization_id = ?1 AND last_position = ?2";
pub(crate) const DELETE_GROUP: &str =
    "DELETE FROM event_groups WHERE organization_id = ?1 AND last_position = ?2";
pub(crate) const DELETE_GROUP_USERS: &str =
    "DELETE FROM event_users WHERE organization_id = ?1 AND last_position = ?2";
const FORGET_USER: &str = "DELETE FROM event_users WHERE user_id = ?1";
/// Whether the organization of the webhook endpoint `e` has an event after the endpoint's
/// `delivered_through` (a predicate for the claim of `webhooks`): one seek of the groups'
/// unique index. Exact after a purge, unlike a comparison with the counter.
pub(crate) const HAS_EVENTS_AFTER_SQL: &str = "EXISTS (SELECT 1 FROM event_groups g \
     WHERE g.organization_id = e.organization_id AND g.last_position > e.delivered_through)";

/// Appends `events` at the next positions of `ctx.organization`, in the open transaction, as
/// one group. Nothing to append writes nothing (the counter is not touched).
///
/// # Errors
/// [`Error::Missing`] when the organization has no row (a write names only targets,
/// batches and messages of an existing organization, so this is a fault); SQLite errors.
pub(crate) fn append(
    conn: &Connection,
    ctx: &EventContext,
    events: &[NewEvent],
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let organization = ctx.organization.0.as_bytes();
    let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let last: i64 = conn
        .prepare_cached(BUMP_COUNTER)?
        .query_row(params![organization, n], |row| row.get(0))
        .optional()?
        .ok_or_else(|| {
            Error::Missing(format!("organization {} does not exist", ctx.organization))
        })?;
    let data = event_codec::encode(events.iter().map(Item::from));
    // The one user in the group's row (the common case: no second B-tree insert), or, for
    // two or more, one `event_users` row each.
    let users = event_codec::users_of(events);
    let single = match users.as_slice() {
        [user] => Some(user.0.as_bytes()),
        _ => None,
    };
    conn.prepare_cached(INSERT_GROUP)?.execute(params![
        organization,
        last,
        last - n + 1,
        ctx.at.as_millis(),
        ctx.actor.as_ref().map(|a| a.0.as_bytes()),
        single,
        data
    ])?;
    if users.len() > 1 {
        let mut insert = conn.prepare_cached(INSERT_USER)?;
        for user in &users {
            insert.execute(params![user.0.as_bytes(), organization, last])?;
        }
    }
    Ok(())
}

/// A group as stored.
struct Group {
    organization: OrganizationId,
    first: u64,
    at: Timestamp,
    actor: Option<ApiKeyId>,
    items: Vec<Item<'static>>,
}

fn get_position(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let n: i64 = row.get(index)?;
    u64::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, n))
}

fn malformed(Malformed(what): Malformed) -> rusqlite::Error {
    corrupt(DATA, Type::Blob, what.into())
}

/// Decodes a row of `group_columns!`: a bad column or `data` this version cannot decode
/// (another version, truncated, or not the positions' number of events) is a decoding error
/// (an unreadable row).
fn group_from_row(row: &Row<'_>) -> rusqlite::Result<Group> {
    let last = get_position(row, 1)?;
    let first = get_position(row, 2)?;
    let data = row
        .get_ref(DATA)?
        .as_blob()
        .map_err(|_| corrupt(DATA, Type::Blob, "not a blob".into()))?;
    let items = event_codec::decode(data).map_err(malformed)?;
    if first == 0
        || last.checked_sub(first).and_then(|d| d.checked_add(1)) != Some(items.len() as u64)
    {
        return Err(malformed(Malformed(
            "not as many events as the group's positions",
        )));
    }
    Ok(Group {
        organization: OrganizationId(get_uuid(row, 0)?),
        first,
        at: get_ts(row, 3)?,
        actor: row
            .get::<_, Option<[u8; 16]>>(4)?
            .map(|b| ApiKeyId(uuid::Uuid::from_bytes(b))),
        items,
    })
}

impl Group {
    /// Its events, by position.
    fn events(self) -> impl Iterator<Item = Event> {
        let Group {
            organization,
            first,
            at,
            actor,
            items,
        } = self;
        items
            .into_iter()
            .zip(first..)
            .map(move |(item, position)| Event {
                position,
                organization,
                kind: item.kind,
                at,
                actor,
                target: item.target,
                user: item.user,
                invitation: item.invitation,
                batch: item.batch,
                message: item.message,
                group: item.group,
                role: item.role.map(std::borrow::Cow::into_owned),
            })
    }
}

/// The events of `organization` after `after`, by position, at most `limit`: the groups
/// after `after` are stepped through until the page is full. A group this version cannot
/// decode is left out (and reported) and the page filled up from the groups after it.
pub(crate) fn read_events(
    conn: &Connection,
    organization: OrganizationId,
    after: u64,
    limit: usize,
) -> Result<Vec<Event>, Error> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut stmt = conn.prepare_cached(GROUPS_AFTER)?;
    let from = i64::try_from(after).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![organization.0.as_bytes(), from])?;
    while let Some(row) = rows.next()? {
        match decode("event_groups", row, group_from_row)? {
            Ok(group) => {
                for event in group.events().filter(|e| e.position > after) {
                    out.push(event);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            Err(unreadable) => unreadable.report_skipped(),
        }
    }
    Ok(out)
}

/// Clears `user` from every stored event (the events stay, naming no one): each group that
/// names the user (its `user_id`, or its `event_users` rows) is decoded, the user cleared
/// and the group encoded again with no `user_id`, and the user's `event_users` rows go. A group naming the user that this version cannot
/// decode cannot be cleared: it is deleted (and reported), as no reader of this version can
/// see its events anyway and no row may hold an erased id. How many groups changed.
pub(crate) fn scrub_user(conn: &Connection, user: UserId) -> Result<u64, Error> {
    let id = user.0.as_bytes();
    let mut groups: Vec<([u8; 16], i64)> = conn
        .prepare_cached(GROUPS_NAMING)?
        .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // A group is found once (by one index or the other); a hand-made row in both is
    // rewritten once all the same.
    groups.sort_unstable();
    groups.dedup();
    let mut changed = 0;
    for (organization, last) in &groups {
        let key = params![organization, last];
        let group = conn
            .prepare_cached(GROUP_AT)?
            .query_row(key, |row| decode("event_groups", row, group_from_row))
            .optional()?;
        match group {
            // Its row went with the group (purged): nothing to clear.
            None => {}
            Some(Ok(group)) => {
                let items = group.items.into_iter().map(|mut item| {
                    if item.user == Some(user) {
                        item.user = None;
                    }
                    item
                });
                let data = event_codec::encode(items);
                conn.prepare_cached(REWRITE_GROUP)?
                    .execute(params![organization, last, data])?;
                changed += 1;
            }
            Some(Err(unreadable)) => {
                tracing::warn!(
                    table = unreadable.table,
                    column = %unreadable.column,
                    row = ?unreadable.row,
                    "erasure: deleted a group of events this version cannot read that names the erased user"
                );
                conn.prepare_cached(DELETE_GROUP)?.execute(key)?;
                conn.prepare_cached(DELETE_GROUP_USERS)?.execute(key)?;
                changed += 1;
            }
        }
    }
    conn.prepare_cached(FORGET_USER)?.execute([id])?;
    Ok(changed)
}

/// Reads go to the read connections on the calling thread for a store on a file (as
/// `access_paths` does: a page is one range of an index), else to the connection thread.
#[async_trait]
impl EventStore for SqliteStore {
    async fn read_events(
        &self,
        organization: OrganizationId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match &self.readers {
            Some(readers) => readers
                .read(|c| read_events(c, organization, after, limit))
                .map_err(StoreError::from),
            None => {
                self.run(move |c| read_events(c, organization, after, limit))
                    .await
            }
        }
    }

    async fn purge_events(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.run(move |c| crate::purge::purge_events(c, before, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::assert_searches;

    #[test]
    fn every_event_statement_searches_an_index() {
        assert_searches(&[
            GROUPS_AFTER,
            GROUP_AT,
            GROUPS_NAMING,
            REWRITE_GROUP,
            DELETE_GROUP,
            DELETE_GROUP_USERS,
            FORGET_USER,
            BUMP_COUNTER,
        ]);
    }

    /// Per group: its last position, its `user_id` and its `event_users` rows.
    fn stored(conn: &Connection) -> Vec<(i64, Option<UserId>, Vec<UserId>)> {
        let user = |b: Option<[u8; 16]>| b.map(|b| UserId(uuid::Uuid::from_bytes(b)));
        conn.prepare("SELECT last_position, user_id FROM event_groups ORDER BY last_position")
            .expect("prepare")
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, user(r.get(1)?))))
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows")
            .into_iter()
            .map(|(last, single)| {
                let users = conn
                    .prepare(
                        "SELECT user_id FROM event_users WHERE last_position = ?1 \
                         ORDER BY user_id",
                    )
                    .expect("prepare")
                    .query_map([last], |r| Ok(user(Some(r.get(0)?)).expect("some")))
                    .expect("query")
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .expect("rows");
                (last, single, users)
            })
            .collect()
    }

    /// A group naming one user keeps it in its row; one naming two or more (no call does
    /// today) has an `event_users` row per user, which the erasure finds and the purge
    /// deletes with the group.
    #[test]
    fn a_group_naming_several_users_is_found_by_event_users() {
        use invites_core::{Role, TargetId, WebsiteId};
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(&mut conn).expect("migrate");
        let org = OrganizationId(uuid::Uuid::from_u128(1));
        conn.execute(
            "INSERT INTO organizations (id, name) VALUES (?1, 'Acme')",
            [org.0.as_bytes()],
        )
        .expect("organization");
        let (ann, bob) = (
            UserId(uuid::Uuid::from_u128(2)),
            UserId(uuid::Uuid::from_u128(3)),
        );
        let site = TargetId::Website(WebsiteId(uuid::Uuid::from_u128(4)));
        let ctx = |ms| EventContext {
            organization: org,
            actor: None,
            at: Timestamp::from_millis(ms),
        };
        append(&conn, &ctx(10), &[NewEvent::person_erased()]).expect("none");
        append(
            &conn,
            &ctx(10),
            &[
                NewEvent::user_created(ann),
                NewEvent::member_added(site, ann, Role::Viewer),
            ],
        )
        .expect("one");
        append(
            &conn,
            &ctx(20),
            &[
                NewEvent::member_removed(site, bob),
                NewEvent::member_added(site, ann, Role::Admin),
                NewEvent::member_removed(site, bob),
            ],
        )
        .expect("two");
        assert_eq!(
            stored(&conn),
            [
                (1, None, vec![]),
                (3, Some(ann), vec![]),
                (6, None, vec![ann, bob]),
            ]
        );
        assert_eq!(scrub_user(&conn, ann).expect("erase ann"), 2);
        assert_eq!(
            stored(&conn),
            [(1, None, vec![]), (3, None, vec![]), (6, None, vec![bob])]
        );
        let users = |position: u64| -> Vec<Option<UserId>> {
            read_events(&conn, org, position - 1, 1)
                .expect("read")
                .into_iter()
                .map(|e| e.user)
                .collect()
        };
        assert_eq!(users(3), [None]);
        assert_eq!(users(4), [Some(bob)]);
        assert_eq!(users(5), [None]);
        // Found again by its remaining user.
        assert_eq!(scrub_user(&conn, bob).expect("erase bob"), 1);
        assert_eq!(users(4), [None]);
        assert_eq!(scrub_user(&conn, bob).expect("nothing left"), 0);
        // The purge takes a multi-user group's rows with it.
        append(
            &conn,
            &ctx(20),
            &[
                NewEvent::member_removed(site, ann),
                NewEvent::member_removed(site, bob),
            ],
        )
        .expect("two again");
        assert_eq!(stored(&conn)[3], (8, None, vec![ann, bob]));
        assert_eq!(
            crate::purge::purge_events(&mut conn, Timestamp::from_millis(30), 100).expect("purge"),
            8
        );
        assert_eq!(stored(&conn), []);
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM event_users", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 0);
    }
}
