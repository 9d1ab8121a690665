//! The event log ([`EventStore`], `invites_core::events`): appending a call's events in its
//! transaction, reading an organization's log by position, purging old events and clearing
//! an erased user's id.
//!
//! # Storage: one row per call
//!
//! The events of one store call share their organization, time and actor and have
//! consecutive positions, so they are stored together: one `event_groups` row per call
//! (migration 5) with the positions `first_position..=last_position`, the time, the actor and
//! the events in `data` ([`event_codec`]), plus one `event_users` row per
//! distinct user the call's events name. A 50-target request writes two rows, not 51 events
//! with three index entries each.
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
     (organization_id, last_position, first_position, at, actor, data) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
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
/// The groups naming a user (erasure).
const GROUPS_NAMING: &str =
    "SELECT organization_id, last_position FROM event_users WHERE user_id = ?1";
const REWRITE_GROUP: &str =
    "UPDATE event_groups SET data = ?3 WHERE organization_id = ?1 AND last_position = ?2";
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
    conn.prepare_cached(INSERT_GROUP)?.execute(params![
        organization,
        last,
        last - n + 1,
        ctx.at.as_millis(),
        ctx.actor.as_ref().map(|a| a.0.as_bytes()),
        data
    ])?;
    let users = event_codec::users_of(events);
    if !users.is_empty() {
        let mut insert = conn.prepare_cached(INSERT_USER)?;
        for user in users {
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
/// names the user is decoded, the user cleared and the group encoded again, and its
/// `event_users` rows for the user go. A group naming the user that this version cannot
/// decode cannot be cleared: it is deleted (and reported), as no reader of this version can
/// see its events anyway and no row may hold an erased id. How many groups changed.
pub(crate) fn scrub_user(conn: &Connection, user: UserId) -> Result<u64, Error> {
    let id = user.0.as_bytes();
    let groups: Vec<([u8; 16], i64)> = conn
        .prepare_cached(GROUPS_NAMING)?
        .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
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
}
