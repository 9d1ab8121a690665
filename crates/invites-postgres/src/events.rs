//! The event log (`invites_core::events`): a call's events appended in its own transaction,
//! read back by a per-organization cursor, purged when old.
//!
//! # Appending
//!
//! Every write builds its events (`NewEvent`) while it decides, and appends them with ONE
//! statement ([`APPEND`]) after its other writes, right before its `COMMIT`: the statement
//! increments `organizations.event_seq` by the number of events (the row's lock is held from
//! there until the commit) and inserts the events at the positions it returned. Under
//! `READ COMMITTED`, an `UPDATE` that waited for the lock re-reads the row as the holder
//! committed it, so:
//!
//! - positions are gap-free: a transaction that rolls back gives its positions back with its
//!   update of the counter;
//! - positions are in commit order: the transaction that took position 10 has committed (or
//!   rolled back) before another can take 11, so a reader of `position > cursor` that sees 11
//!   also sees 10, and never skips one.
//!
//! The lock is held for the insert of the events and the `COMMIT` only (the bulk paths send
//! both in the same round trip as the writes, see `crate::pipeline`). An erasure, the only
//! write that appends to several organizations, locks their rows in ascending id order
//! first ([`ERASED`]), so two erasures never deadlock; every other write locks one
//! organization row as its last step and waits for nothing after it.
//!
//! A call that changes nothing sends no statement (no lock); a savepoint unit that fails
//! contributes no event (the slow paths collect the events of the units that succeeded and
//! append them after the last unit).

use crate::PgStore;
use crate::error::Error;
use crate::sql::{Params, Unreadable, execute, opt_text, opt_uuid, query, text, ts, uuid};
use deadpool_postgres::GenericClient;
use invites_core::{
    ApiKeyId, BatchId, Event, EventContext, EventKind, GroupId, InvitationId, MessageId, NewEvent,
    OrganizationId, TargetKind, Timestamp, UserId,
};
use tokio_postgres::Row;
use uuid::Uuid;

/// Appends events to one organization (`$1`) at its next positions: `$2` the kinds (one per
/// event, in order), `$3` the time, `$4` the actor, `$5`..`$12` the other columns, one array
/// element per event. The counter is incremented and read in the same statement, under the
/// organization row's lock until the transaction ends.
pub(crate) const APPEND: &str = "\
WITH seq AS (
    UPDATE {schema}.organizations SET event_seq = event_seq + cardinality($2::text[])
    WHERE id = $1
    RETURNING event_seq - cardinality($2::text[]) AS base
)
INSERT INTO {schema}.events (organization_id, position, kind, at, actor, target_kind, target_id,
                             user_id, invitation_id, batch_id, message_id, group_id, role)
SELECT $1, seq.base + e.ord, e.kind, $3, $4, e.target_kind, e.target_id, e.user_id,
       e.invitation_id, e.batch_id, e.message_id, e.group_id, e.role
FROM seq, unnest($2::text[], $5::text[], $6::uuid[], $7::uuid[], $8::uuid[], $9::uuid[],
                 $10::uuid[], $11::uuid[], $12::text[])
     WITH ORDINALITY AS e(kind, target_kind, target_id, user_id, invitation_id, batch_id,
                          message_id, group_id, role, ord)";

/// A call's events as the parameters of [`APPEND`].
pub(crate) struct EventRows {
    organization: Uuid,
    at: i64,
    actor: Option<Uuid>,
    kinds: Vec<&'static str>,
    target_kinds: Vec<Option<&'static str>>,
    target_ids: Vec<Option<Uuid>>,
    users: Vec<Option<Uuid>>,
    invitations: Vec<Option<Uuid>>,
    batches: Vec<Option<Uuid>>,
    messages: Vec<Option<Uuid>>,
    groups: Vec<Option<Uuid>>,
    roles: Vec<Option<&'static str>>,
}

impl EventRows {
    /// The rows of `events` for `ctx`; `None` when there are none (nothing to append, no lock
    /// to take).
    pub(crate) fn new(ctx: &EventContext, events: &[NewEvent]) -> Option<EventRows> {
        if events.is_empty() {
            return None;
        }
        Some(EventRows {
            organization: ctx.organization.0,
            at: ctx.at.as_millis(),
            actor: ctx.actor.map(|a| a.0),
            kinds: events.iter().map(|e| e.kind.as_str()).collect(),
            target_kinds: events
                .iter()
                .map(|e| e.target.map(|t| t.kind().as_str()))
                .collect(),
            target_ids: events.iter().map(|e| e.target.map(|t| t.uuid())).collect(),
            users: events.iter().map(|e| e.user.map(|u| u.0)).collect(),
            invitations: events.iter().map(|e| e.invitation.map(|i| i.0)).collect(),
            batches: events.iter().map(|e| e.batch.map(|b| b.0)).collect(),
            messages: events.iter().map(|e| e.message.map(|m| m.0)).collect(),
            groups: events.iter().map(|e| e.group.map(|g| g.0)).collect(),
            roles: events.iter().map(|e| e.role).collect(),
        })
    }

    /// The parameters of [`APPEND`].
    pub(crate) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 12] {
        [
            &self.organization,
            &self.kinds,
            &self.at,
            &self.actor,
            &self.target_kinds,
            &self.target_ids,
            &self.users,
            &self.invitations,
            &self.batches,
            &self.messages,
            &self.groups,
            &self.roles,
        ]
    }
}

/// Appends `events` for `ctx` in the open transaction of `client`, as its last statement
/// before the `COMMIT`; nothing (no statement, no lock) when there are none.
pub(crate) async fn append<C: GenericClient + Sync>(
    store: &PgStore,
    client: &C,
    ctx: &EventContext,
    events: &[NewEvent],
) -> Result<(), Error> {
    if let Some(rows) = EventRows::new(ctx, events) {
        execute(client, &store.q(APPEND), &rows.params()).await?;
    }
    Ok(())
}

/// The context of a call's events.
pub(crate) fn context(
    organization: OrganizationId,
    actor: Option<ApiKeyId>,
    at: Timestamp,
) -> EventContext {
    EventContext {
        organization,
        actor,
        at,
    }
}

// ---------------------------------------------------------------------------------------------
// erasure

/// Clears the erased user `$1` from every event naming it (`events_by_user`).
pub(crate) const SCRUB_USER: &str = "UPDATE {schema}.events SET user_id = NULL WHERE user_id = $1";

/// Locks the organizations `$1` in ascending id order, as the erasure's last statements
/// before [`ERASED`]: `FOR NO KEY UPDATE` is the lock [`APPEND`]'s update takes (so it does
/// not block foreign key checks), taken row by row in the sort order.
pub(crate) const LOCK_ORGANIZATIONS: &str = "SELECT id FROM {schema}.organizations \
    WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE";

/// `person_erased` (naming no one) at `$2` in each organization of `$1`.
pub(crate) const ERASED: &str = "\
WITH seq AS (
    UPDATE {schema}.organizations SET event_seq = event_seq + 1
    WHERE id = ANY($1::uuid[])
    RETURNING id, event_seq
)
INSERT INTO {schema}.events (organization_id, position, kind, at)
SELECT id, event_seq, 'person_erased', $2 FROM seq";

// ---------------------------------------------------------------------------------------------
// reading and purging

const EVENT_COLUMNS: &str = "organization_id, position, kind, at, actor, target_kind, \
    target_id, user_id, invitation_id, batch_id, message_id, group_id, role";

fn corrupt(column: &'static str) -> Error {
    Error::Corrupt { column }
}

fn event_from_row(row: &Row) -> Result<Event, Error> {
    let position: i64 = row.try_get("position").map_err(|_| corrupt("position"))?;
    let target = match opt_text(row, "target_kind")? {
        None => None,
        Some(kind) => {
            let kind = TargetKind::parse(&kind).ok_or_else(|| corrupt("target_kind"))?;
            let id = opt_uuid(row, "target_id")?.ok_or_else(|| corrupt("target_id"))?;
            Some(kind.with_id(id))
        }
    };
    Ok(Event {
        position: u64::try_from(position).map_err(|_| corrupt("position"))?,
        organization: OrganizationId(uuid(row, "organization_id")?),
        kind: EventKind::parse(&text(row, "kind")?).ok_or_else(|| corrupt("kind"))?,
        at: ts(row, "at")?,
        actor: opt_uuid(row, "actor")?.map(ApiKeyId),
        target,
        user: opt_uuid(row, "user_id")?.map(UserId),
        invitation: opt_uuid(row, "invitation_id")?.map(InvitationId),
        batch: opt_uuid(row, "batch_id")?.map(BatchId),
        message: opt_uuid(row, "message_id")?.map(MessageId),
        group: opt_uuid(row, "group_id")?.map(GroupId),
        role: opt_text(row, "role")?,
    })
}

/// The committed events of `organization` after `after`, by position, at most `limit`: index
/// ranges of the primary key. A row this version cannot decode (a kind a newer version wrote)
/// is left out and reported (its organization as the row id), and the page is filled up from
/// the rows after it, as `list_invitations` does: a page is short only at the end of the log,
/// so a reader never takes a page of left-out rows for the end and stops there.
pub(crate) async fn read_events(
    store: &PgStore,
    organization: OrganizationId,
    after: u64,
    limit: usize,
) -> Result<Vec<Event>, Error> {
    let mut page = Vec::new();
    if limit == 0 {
        return Ok(page);
    }
    let client = store.client().await?;
    let sql = store.q(&format!(
        "SELECT {EVENT_COLUMNS} FROM {{schema}}.events \
         WHERE organization_id = $1 AND position > $2 ORDER BY position LIMIT $3"
    ));
    // Positions are at most i64::MAX; a cursor beyond has nothing after it.
    let Ok(mut after) = i64::try_from(after) else {
        return Ok(page);
    };
    loop {
        let want = limit - page.len();
        let rows = query(
            &client,
            &sql,
            &[
                &organization.0,
                &after,
                &i64::try_from(want).unwrap_or(i64::MAX),
            ],
        )
        .await?;
        for row in &rows {
            match event_from_row(row) {
                Ok(event) => page.push(event),
                Err(Error::Corrupt { column }) => Unreadable {
                    table: "events",
                    column: column.to_owned(),
                    row: Some(organization.0),
                }
                .report_skipped(),
                Err(e) => return Err(e),
            }
            // The key columns are always readable: the next rows are found from here.
            after = row.try_get("position")?;
        }
        if rows.len() < want || page.len() == limit {
            return Ok(page);
        }
    }
}

/// Deletes at most `$2` events older than `$1`, oldest first (by time, organization and
/// position, along `events_by_at`), in one statement. An event an erasure is scrubbing right
/// now is skipped, not waited for.
const PURGE: &str = "\
WITH old AS (
    SELECT organization_id, position FROM {schema}.events
    WHERE at < $1
    ORDER BY at, organization_id, position
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.events e USING old
WHERE e.organization_id = old.organization_id AND e.position = old.position";

pub(crate) async fn purge_events(
    store: &PgStore,
    before: Timestamp,
    limit: usize,
) -> Result<u64, Error> {
    if limit == 0 {
        return Ok(0);
    }
    let client = store.client().await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let params: &Params<'_> = &[&before.as_millis(), &limit];
    execute(&client, &store.q(PURGE), params).await
}
