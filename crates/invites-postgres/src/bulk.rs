//! The batch-shaped writes: `add_members` (direct mode) and `create_invitations` (email
//! mode), set-based, with a savepoint-per-target slow path (see the crate docs).

use crate::error::Error;
use crate::events::{self, EventRows};
use crate::pipeline::{PipelinedTx, pipelined};
use crate::sql::{
    INSERT_QUEUED_MESSAGE, LOCK_EMAIL, execute, ids_of_kind, locked_query, name_param, opt_role,
    opt_ts, opt_uuid, target_arrays,
};
use crate::unanswered::{self, Commit, Written};
use crate::{PgStore, transaction};
use deadpool_postgres::{GenericClient, Transaction};
use invites_core::rules::{
    self, AddDecision, AddFacts, InviteDecision, InviteFacts, PendingInvitation, TargetAccess,
};
use invites_core::{
    AddFact, AddMembers, AddMembersOutcome, BatchId, CreateInvitations, CreateInvitationsOutcome,
    Email, EventContext, InvitationId, InviteFact, NewEvent, OrganizationId, StoreError,
    StoredStatus, TargetId, TargetKind, TargetSlot, UserId, UserRef,
};
use tokio_postgres::types::ToSql;

/// Everything that decides the facts of every target, in ONE query: one row per target, in
/// request order. What depends only on the email (the user, its organization membership, its
/// pending invitations) is read once, not once per target: an address usually has no pending
/// invitation, so one probe of `invitations_by_email` replaces one probe per target.
const FACTS: &str = "\
WITH u AS MATERIALIZED (
    SELECT u.id,
           EXISTS (SELECT 1 FROM {schema}.org_members o
                   WHERE o.organization_id = $3 AND o.user_id = u.id) AS org_member
    FROM {schema}.users u WHERE u.email = $4
),
p AS MATERIALIZED (
    SELECT i.id, i.batch_id, i.target_kind, i.target_id, i.expires_at
    FROM {schema}.invitations i WHERE i.email = $4 AND i.status = 'pending'
)
SELECT t.ord,
       CASE WHEN t.kind = 'website'
            THEN EXISTS (SELECT 1 FROM {schema}.websites w WHERE w.id = t.id AND w.organization_id = $3)
            ELSE EXISTS (SELECT 1 FROM {schema}.groups g WHERE g.id = t.id AND g.organization_id = $3)
       END AS target_exists,
       CASE WHEN u.id IS NULL THEN NULL
            WHEN t.kind = 'website'
            THEN (SELECT m.role FROM {schema}.website_members m WHERE m.website_id = t.id AND m.user_id = u.id)
            ELSE (SELECT m.role FROM {schema}.group_members m WHERE m.group_id = t.id AND m.user_id = u.id)
       END AS member_role,
       u.id AS user_id,
       COALESCE(u.org_member, false) AS org_member,
       p.id AS pending_id,
       p.expires_at AS pending_expires_at,
       p.batch_id AS pending_batch_id
FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS t(kind, id, ord)
LEFT JOIN u ON true
LEFT JOIN p ON p.target_kind = t.kind AND p.target_id = t.id
ORDER BY t.ord";

/// The facts of one target, as read.
struct TargetFacts {
    access: TargetAccess,
    pending: Option<PendingInvitation>,
    /// The batch of the pending invitation (for `invitation_superseded`).
    pending_batch: Option<BatchId>,
}

/// The user with the email (if any) and the facts of every target, in order.
struct Facts {
    user: Option<UserId>,
    targets: Vec<TargetFacts>,
}

/// Where the facts are read: in an open transaction (the slow paths), or as the first
/// statements of a pipelined one, together with its `BEGIN` (the fast paths).
enum Reader<'a, 'b> {
    Open(&'a Transaction<'b>),
    Begin(&'a PipelinedTx),
}

/// Takes the email lock, then reads the facts: two statements (three with `BEGIN`), one round
/// trip (pipelined; the read starts after the lock is granted, so it sees every write of the
/// lock's previous holder).
async fn read_facts(
    store: &PgStore,
    via: Reader<'_, '_>,
    organization: OrganizationId,
    email: &Email,
    targets: &[TargetId],
) -> Result<Facts, Error> {
    let (kinds, ids) = target_arrays(targets.iter().copied());
    let email = email.as_str();
    let facts = store.q(FACTS);
    let lock_params: [&(dyn ToSql + Sync); 1] = [&email];
    let params: [&(dyn ToSql + Sync); 4] = [&kinds, &ids, &organization.0, &email];
    let rows = match via {
        Reader::Open(tx) => {
            locked_query(tx, None, (LOCK_EMAIL, &lock_params), (&facts, &params)).await?
        }
        Reader::Begin(tx) => {
            tx.begin_locked_query((LOCK_EMAIL, &lock_params), (&facts, &params))
                .await?
        }
    };
    if rows.len() != targets.len() {
        return Err(Error::Corrupt {
            column: "invitations.status",
        });
    }
    let mut user = None;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        user = opt_uuid(row, "user_id")?.map(UserId);
        let pending = match (
            opt_uuid(row, "pending_id")?,
            opt_ts(row, "pending_expires_at")?,
        ) {
            (Some(id), Some(expires_at)) => Some(PendingInvitation {
                id: InvitationId(id),
                expires_at,
            }),
            _ => None,
        };
        out.push(TargetFacts {
            access: TargetAccess {
                exists: crate::sql::boolean(row, "target_exists")?,
                membership: opt_role(row, "member_role")?,
                org_member: crate::sql::boolean(row, "org_member")?,
            },
            pending,
            pending_batch: opt_uuid(row, "pending_batch_id")?.map(BatchId),
        });
    }
    Ok(Facts { user, targets: out })
}

/// Whether a failed fast path should be tried again target by target: a statement failed
/// (not the connection, and not a conflict, which the transaction retry handles).
fn needs_slow_path(e: &Error) -> bool {
    e.is_statement_error() && !e.is_conflict()
}

// ---------------------------------------------------------------------------------------------
// add_members

/// The superseded invitations are found by joining their ids (`FROM unnest(…)`), one primary
/// key probe each. Written as `id = ANY($10) AND status = 'pending'`, a plan made on a small
/// table intersected the primary key with a walk of the whole one-pending index (the
/// condition implies that partial index's predicate): 9 ms per request at 75,000 pending
/// invitations, even with nothing to supersede.
const ADD_FAST: &str = "\
WITH new_user AS (
    INSERT INTO {schema}.users (id, email, email_verified, first_name, last_name)
    SELECT $1, $2, false, $3, $4 WHERE $5
),
website_rows AS (
    INSERT INTO {schema}.website_members (website_id, user_id, role, created_at)
    SELECT w, $1, $6, $7 FROM unnest($8::uuid[]) AS w
),
group_rows AS (
    INSERT INTO {schema}.group_members (group_id, user_id, role, created_at)
    SELECT g, $1, $6, $7 FROM unnest($9::uuid[]) AS g
)
UPDATE {schema}.invitations i SET status = 'superseded'
FROM unnest($10::uuid[]) AS s(id)
WHERE i.id = s.id AND i.status = 'pending'";

pub(crate) const INSERT_USER: &str = "\
INSERT INTO {schema}.users (id, email, email_verified, first_name, last_name)
VALUES ($1, $2, $3, $4, $5)";

const INSERT_WEBSITE_MEMBER: &str = "INSERT INTO {schema}.website_members \
    (website_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)";
const INSERT_GROUP_MEMBER: &str = "INSERT INTO {schema}.group_members \
    (group_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)";

pub(crate) fn insert_member_sql(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Website => INSERT_WEBSITE_MEMBER,
        TargetKind::Group => INSERT_GROUP_MEMBER,
    }
}

pub(crate) const SET_STATUS: &str =
    "UPDATE {schema}.invitations SET status = $2 WHERE id = $1 AND status = 'pending'";

/// The decisions of every target.
fn decide_adds(facts: &Facts) -> Vec<AddDecision> {
    facts
        .targets
        .iter()
        .map(|t| {
            rules::decide_add(&AddFacts {
                access: t.access,
                pending: t.pending.map(|p| p.id),
            })
        })
        .collect()
}

fn add_slot(decision: &AddDecision) -> AddFact {
    match decision {
        AddDecision::Report(fact) => *fact,
        AddDecision::Add { .. } => AddFact::Added,
    }
}

/// The answer after a write-and-commit round trip `done`: `value`, unless it failed; if the
/// `COMMIT`'s answer was lost, `value` and what the write stored, for
/// [`unanswered::settle`] to check.
fn after_commit<T, R>(
    done: Result<R, Error>,
    commit_unanswered: bool,
    value: T,
    written: impl FnOnce() -> Written,
) -> Result<Commit<T>, Error> {
    match done {
        Ok(_) => Ok(Commit::Answered(value)),
        Err(error) if commit_unanswered => Ok(Commit::Unanswered {
            value,
            written: written(),
            error,
        }),
        Err(e) => Err(e),
    }
}

/// [`after_commit`] for a slow path's `COMMIT`.
fn after_slow_commit<T>(
    done: Result<(), tokio_postgres::Error>,
    value: T,
    written: impl FnOnce(&T) -> Written,
) -> Result<Commit<T>, Error> {
    let done = done.map_err(Error::from);
    let unanswered = done.as_ref().is_err_and(Error::may_have_committed);
    let written = written(&value);
    after_commit(done, unanswered, value, || written)
}

pub(crate) async fn add_members(
    store: &PgStore,
    cmd: &AddMembers,
) -> Result<AddMembersOutcome, Error> {
    let fast = pipelined!(store, |tx| add_fast(store, tx, cmd));
    let commit = match fast {
        Err(e) if needs_slow_path(&e) => {
            transaction!(store, |tx| {
                let outcome = add_slow(store, &tx, cmd).await?;
                after_slow_commit(tx.commit().await, outcome, |o| added_rows(cmd, o))
            })
        }
        other => other,
    }?;
    unanswered::settle(store, commit).await
}

/// What a slow add stored if it committed: the user it created, the memberships of the
/// targets whose unit succeeded.
fn added_rows(cmd: &AddMembers, outcome: &AddMembersOutcome) -> Written {
    let added: Vec<TargetId> = cmd
        .targets
        .iter()
        .zip(&outcome.targets)
        .filter(|(_, slot)| matches!(slot, Ok(AddFact::Added)))
        .map(|(t, _)| *t)
        .collect();
    let user = outcome.user.unwrap_or(UserRef {
        id: cmd.new_user.id,
        created: false,
    });
    Written::members(
        &cmd.email,
        user.id,
        user.created,
        cmd.role,
        cmd.now,
        ids_of_kind(&added, TargetKind::Website),
        ids_of_kind(&added, TargetKind::Group),
    )
}

/// The set-based add: `BEGIN` with the facts, then one statement with `COMMIT` (2 round
/// trips). It commits before returning [`Commit::Answered`], or sent a `COMMIT` whose answer
/// was lost.
async fn add_fast(
    store: &PgStore,
    tx: &mut PipelinedTx,
    cmd: &AddMembers,
) -> Result<Commit<AddMembersOutcome>, Error> {
    let facts = read_facts(
        store,
        Reader::Begin(tx),
        cmd.organization,
        &cmd.email,
        &cmd.targets,
    )
    .await?;
    let decisions = decide_adds(&facts);
    let mut added = Vec::new();
    let mut supersede = Vec::new();
    for (target, decision) in cmd.targets.iter().zip(&decisions) {
        if let AddDecision::Add { supersede: s } = decision {
            added.push(*target);
            supersede.extend(s.map(|id| id.0));
        }
    }
    let user = match facts.user {
        Some(id) => Some(UserRef { id, created: false }),
        None if added.is_empty() => None,
        None => Some(UserRef {
            id: cmd.new_user.id,
            created: true,
        }),
    };
    let outcome = AddMembersOutcome {
        user,
        targets: decisions.iter().map(|d| Ok(add_slot(d))).collect(),
    };
    let Some(user) = user.filter(|_| !added.is_empty()) else {
        tx.commit().await?;
        return Ok(Commit::Answered(outcome));
    };
    let mut new_events = Vec::new();
    if user.created {
        new_events.push(NewEvent::user_created(user.id));
    }
    for ((target, decision), target_facts) in cmd.targets.iter().zip(&decisions).zip(&facts.targets)
    {
        if let AddDecision::Add { supersede } = decision {
            new_events.extend(add_events(
                *target,
                user.id,
                cmd,
                supersede.zip(target_facts.pending_batch),
            ));
        }
    }
    let rows = EventRows::new(&add_context(cmd), &new_events);
    let event_params = rows.as_ref().map(EventRows::params);
    let insert = tx.prepare(&store.q(ADD_FAST)).await?;
    let append = tx.prepare(&store.q(events::APPEND)).await?;
    let (websites, groups) = (
        ids_of_kind(&added, TargetKind::Website),
        ids_of_kind(&added, TargetKind::Group),
    );
    let params: [&(dyn ToSql + Sync); 10] = [
        &user.id.0,
        &cmd.email.as_str(),
        &name_param(&cmd.new_user.first_name),
        &name_param(&cmd.new_user.last_name),
        &user.created,
        &cmd.role.as_str(),
        &cmd.now.as_millis(),
        &websites,
        &groups,
        &supersede,
    ];
    let done = tx
        .execute_all_and_commit([
            None,
            Some((&insert, &params)),
            event_params.as_ref().map(|p| (&append, &p[..])),
        ])
        .await;
    after_commit(done, tx.commit_unanswered(), outcome, || {
        Written::members(
            &cmd.email,
            user.id,
            user.created,
            cmd.role,
            cmd.now,
            websites,
            groups,
        )
    })
}

/// The context of an add's events: its organization, actor and time.
fn add_context(cmd: &AddMembers) -> EventContext {
    events::context(cmd.organization, cmd.actor, cmd.now)
}

/// The events of one added target (after `user_created`, when the call created the user):
/// `member_added`, then `invitation_superseded` for the pending invitation (and its batch) it
/// superseded.
fn add_events(
    target: TargetId,
    user: UserId,
    cmd: &AddMembers,
    superseded: Option<(InvitationId, BatchId)>,
) -> impl Iterator<Item = NewEvent> {
    std::iter::once(NewEvent::member_added(target, user, cmd.role)).chain(
        superseded
            .map(|(invitation, batch)| NewEvent::invitation_superseded(target, invitation, batch)),
    )
}

/// Runs `unit` in a savepoint: released on success; rolled back to on a statement error,
/// which becomes the target's slot. A conflict or a connection error fails the whole call.
pub(crate) async fn in_savepoint<T>(
    tx: &Transaction<'_>,
    unit: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<Result<T, StoreError>, Error> {
    tx.batch_execute("SAVEPOINT invites_target").await?;
    match unit.await {
        Ok(value) => {
            tx.batch_execute("RELEASE SAVEPOINT invites_target").await?;
            Ok(Ok(value))
        }
        Err(e) if e.is_statement_error() && !e.is_conflict() => {
            tx.batch_execute(
                "ROLLBACK TO SAVEPOINT invites_target; RELEASE SAVEPOINT invites_target",
            )
            .await?;
            Ok(Err(e.into()))
        }
        Err(e) => Err(e),
    }
}

async fn add_slow(
    store: &PgStore,
    tx: &Transaction<'_>,
    cmd: &AddMembers,
) -> Result<AddMembersOutcome, Error> {
    let facts = read_facts(
        store,
        Reader::Open(tx),
        cmd.organization,
        &cmd.email,
        &cmd.targets,
    )
    .await?;
    let decisions = decide_adds(&facts);
    let mut user = facts.user.map(|id| UserRef { id, created: false });
    let mut slots: Vec<TargetSlot<AddFact>> = Vec::with_capacity(decisions.len());
    let mut new_events = Vec::new();
    for ((target, decision), target_facts) in cmd.targets.iter().zip(&decisions).zip(&facts.targets)
    {
        let AddDecision::Add { supersede } = decision else {
            slots.push(Ok(add_slot(decision)));
            continue;
        };
        let create = user.is_none();
        let user_id = user.map_or(cmd.new_user.id, |u| u.id);
        let done = in_savepoint(tx, async {
            if create {
                execute(
                    tx,
                    &store.q(INSERT_USER),
                    &[
                        &user_id.0,
                        &cmd.email.as_str(),
                        &false,
                        &name_param(&cmd.new_user.first_name),
                        &name_param(&cmd.new_user.last_name),
                    ],
                )
                .await?;
            }
            execute(
                tx,
                &store.q(insert_member_sql(target.kind())),
                &[
                    &target.uuid(),
                    &user_id.0,
                    &cmd.role.as_str(),
                    &cmd.now.as_millis(),
                ],
            )
            .await?;
            if let Some(id) = supersede {
                execute(
                    tx,
                    &store.q(SET_STATUS),
                    &[&id.0, &StoredStatus::Superseded.as_str()],
                )
                .await?;
            }
            Ok(())
        })
        .await?;
        if done.is_ok() {
            if create {
                user = Some(UserRef {
                    id: user_id,
                    created: true,
                });
                new_events.push(NewEvent::user_created(user_id));
            }
            new_events.extend(add_events(
                *target,
                user_id,
                cmd,
                supersede.zip(target_facts.pending_batch),
            ));
        }
        slots.push(done.map(|()| AddFact::Added));
    }
    // After the last unit: only the units that succeeded contribute events.
    events::append(store, tx, &add_context(cmd), &new_events).await?;
    Ok(AddMembersOutcome {
        user,
        targets: slots,
    })
}

// ---------------------------------------------------------------------------------------------
// create_invitations

const REPLACE_EXPIRED: &str = "UPDATE {schema}.invitations i SET status = 'replaced' \
    FROM unnest($1::uuid[]) AS s(id) WHERE i.id = s.id AND i.status = 'pending'";

const INVITE_FAST: &str = "\
WITH batch AS (
    INSERT INTO {schema}.batches (id, organization_id, email, token_hash, created_at, last_sent_at)
    VALUES ($1, $2, $3, $4, $5, $5)
),
message AS (
    INSERT INTO {schema}.outbox (id, batch_id, organization_id, recipient, accept_url, status,
                                 attempts, next_attempt_at, created_at, last_error)
    VALUES ($6, $1, $2, $3, $7, 'queued', 0, $8, $5, NULL)
)
INSERT INTO {schema}.invitations (id, batch_id, organization_id, target_kind, target_id, email,
                                  role, first_name, last_name, status, created_at, expires_at)
SELECT t.invitation, $1, $2, t.kind, t.target, $3, $9, $10, $11, 'pending', $5, $12
FROM unnest($13::uuid[], $14::text[], $15::uuid[]) AS t(invitation, kind, target)";

const INSERT_BATCH: &str = "\
INSERT INTO {schema}.batches (id, organization_id, email, token_hash, created_at, last_sent_at)
VALUES ($1, $2, $3, $4, $5, $5)";

const INSERT_INVITATION: &str = "\
INSERT INTO {schema}.invitations (id, batch_id, organization_id, target_kind, target_id, email,
                                  role, first_name, last_name, status, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)";

fn decide_invites(facts: &Facts, cmd: &CreateInvitations) -> Vec<InviteDecision> {
    facts
        .targets
        .iter()
        .map(|t| {
            rules::decide_invite(&InviteFacts {
                access: t.access,
                pending: t.pending,
                now: cmd.now,
            })
        })
        .collect()
}

/// The context of an invite's events: its organization, actor and time.
fn invite_context(cmd: &CreateInvitations) -> EventContext {
    events::context(cmd.organization, cmd.actor, cmd.now)
}

/// The event of one invited target.
fn invite_event(cmd: &CreateInvitations, target: TargetId, invitation: InvitationId) -> NewEvent {
    NewEvent::invitation_created(target, invitation, cmd.batch.id, cmd.role)
}

fn invite_slot(decision: &InviteDecision) -> InviteFact {
    match decision {
        InviteDecision::Report(fact) => *fact,
        InviteDecision::Invite { .. } => InviteFact::Invited,
    }
}

pub(crate) async fn create_invitations(
    store: &PgStore,
    cmd: &CreateInvitations,
) -> Result<CreateInvitationsOutcome, Error> {
    let targets: Vec<TargetId> = cmd.targets.iter().map(|(t, _)| *t).collect();
    let fast = pipelined!(store, |tx| invite_fast(store, tx, cmd, &targets));
    let commit = match fast {
        Err(e) if needs_slow_path(&e) => {
            transaction!(store, |tx| {
                let outcome = invite_slow(store, &tx, cmd, &targets).await?;
                after_slow_commit(tx.commit().await, outcome, |o| invited_rows(cmd, o))
            })
        }
        other => other,
    }?;
    unanswered::settle(store, commit).await
}

/// What a slow invite stored if it committed: the batch (with its message) and the
/// invitations of the targets whose unit succeeded.
fn invited_rows(cmd: &CreateInvitations, outcome: &CreateInvitationsOutcome) -> Written {
    let invitations = cmd
        .targets
        .iter()
        .zip(&outcome.targets)
        .filter(|(_, slot)| matches!(slot, Ok(InviteFact::Invited)))
        .map(|((_, invitation), _)| invitation.0)
        .collect();
    Written::invitations(&cmd.email, cmd.batch.id, invitations)
}

/// The set-based invite: `BEGIN` with the facts, then the write with `COMMIT` (2 round
/// trips). It commits before returning [`Commit::Answered`], or sent a `COMMIT` whose answer
/// was lost.
async fn invite_fast(
    store: &PgStore,
    tx: &mut PipelinedTx,
    cmd: &CreateInvitations,
    targets: &[TargetId],
) -> Result<Commit<CreateInvitationsOutcome>, Error> {
    let facts = read_facts(
        store,
        Reader::Begin(tx),
        cmd.organization,
        &cmd.email,
        targets,
    )
    .await?;
    let decisions = decide_invites(&facts, cmd);
    let mut replace = Vec::new();
    let mut invitations = Vec::new();
    let mut kinds = Vec::new();
    let mut target_ids = Vec::new();
    let mut new_events = Vec::new();
    for (&(target, invitation), decision) in cmd.targets.iter().zip(&decisions) {
        if let InviteDecision::Invite { replace: r } = decision {
            replace.extend(r.map(|id| id.0));
            invitations.push(invitation.0);
            kinds.push(target.kind().as_str());
            target_ids.push(target.uuid());
            new_events.push(invite_event(cmd, target, invitation));
        }
    }
    let outcome = CreateInvitationsOutcome {
        existing_user: facts.user,
        targets: decisions.iter().map(|d| Ok(invite_slot(d))).collect(),
    };
    if invitations.is_empty() {
        tx.commit().await?;
        return Ok(Commit::Answered(outcome));
    }
    let insert = tx.prepare(&store.q(INVITE_FAST)).await?;
    let append = tx.prepare(&store.q(events::APPEND)).await?;
    let rows = EventRows::new(&invite_context(cmd), &new_events);
    let event_params = rows.as_ref().map(EventRows::params);
    let params: [&(dyn ToSql + Sync); 15] = [
        &cmd.batch.id.0,
        &cmd.organization.0,
        &cmd.email.as_str(),
        &&cmd.batch.token_hash.0[..],
        &cmd.now.as_millis(),
        &cmd.batch.message_id.0,
        &cmd.batch.accept_url,
        &cmd.batch.message_due_at.as_millis(),
        &cmd.role.as_str(),
        &name_param(&cmd.first_name),
        &name_param(&cmd.last_name),
        &cmd.expires_at.as_millis(),
        &invitations,
        &kinds,
        &target_ids,
    ];
    // The expired pending rows must be `replaced` before their successors are inserted (one
    // pending row per target and email); the events go last: up to three statements and the
    // commit, pipelined.
    let expire = if replace.is_empty() {
        None
    } else {
        Some(tx.prepare(&store.q(REPLACE_EXPIRED)).await?)
    };
    let expire_params: [&(dyn ToSql + Sync); 1] = [&replace];
    let done = tx
        .execute_all_and_commit([
            expire.as_ref().map(|e| (e, &expire_params[..])),
            Some((&insert, &params)),
            event_params.as_ref().map(|p| (&append, &p[..])),
        ])
        .await;
    after_commit(done, tx.commit_unanswered(), outcome, || {
        Written::invitations(&cmd.email, cmd.batch.id, invitations)
    })
}

async fn invite_slow(
    store: &PgStore,
    tx: &Transaction<'_>,
    cmd: &CreateInvitations,
    targets: &[TargetId],
) -> Result<CreateInvitationsOutcome, Error> {
    let facts = read_facts(
        store,
        Reader::Open(tx),
        cmd.organization,
        &cmd.email,
        targets,
    )
    .await?;
    let decisions = decide_invites(&facts, cmd);
    let mut batch_stored = false;
    let mut slots: Vec<TargetSlot<InviteFact>> = Vec::with_capacity(decisions.len());
    let mut new_events = Vec::new();
    for (&(target, invitation), decision) in cmd.targets.iter().zip(&decisions) {
        let InviteDecision::Invite { replace } = decision else {
            slots.push(Ok(invite_slot(decision)));
            continue;
        };
        let store_batch = !batch_stored;
        let done = in_savepoint(tx, async {
            if store_batch {
                execute(
                    tx,
                    &store.q(INSERT_BATCH),
                    &[
                        &cmd.batch.id.0,
                        &cmd.organization.0,
                        &cmd.email.as_str(),
                        &&cmd.batch.token_hash.0[..],
                        &cmd.now.as_millis(),
                    ],
                )
                .await?;
                execute(
                    tx,
                    &store.q(INSERT_QUEUED_MESSAGE),
                    &[
                        &cmd.batch.message_id.0,
                        &cmd.batch.id.0,
                        &cmd.organization.0,
                        &cmd.email.as_str(),
                        &cmd.batch.accept_url,
                        &cmd.batch.message_due_at.as_millis(),
                        &cmd.now.as_millis(),
                    ],
                )
                .await?;
            }
            if let Some(old) = replace {
                execute(
                    tx,
                    &store.q(SET_STATUS),
                    &[&old.0, &StoredStatus::Replaced.as_str()],
                )
                .await?;
            }
            execute(
                tx,
                &store.q(INSERT_INVITATION),
                &[
                    &invitation.0,
                    &cmd.batch.id.0,
                    &cmd.organization.0,
                    &target.kind().as_str(),
                    &target.uuid(),
                    &cmd.email.as_str(),
                    &cmd.role.as_str(),
                    &name_param(&cmd.first_name),
                    &name_param(&cmd.last_name),
                    &cmd.now.as_millis(),
                    &cmd.expires_at.as_millis(),
                ],
            )
            .await?;
            Ok(())
        })
        .await?;
        if done.is_ok() {
            batch_stored = true;
            new_events.push(invite_event(cmd, target, invitation));
        }
        slots.push(done.map(|()| InviteFact::Invited));
    }
    // After the last unit: only the units that succeeded contribute events.
    events::append(store, tx, &invite_context(cmd), &new_events).await?;
    Ok(CreateInvitationsOutcome {
        existing_user: facts.user,
        targets: slots,
    })
}
