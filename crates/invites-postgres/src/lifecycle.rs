//! Accept, revoke, resend (rotate), the reads of invitations, batches and users, and
//! idempotency records.

use crate::error::Error;
use crate::events;
use crate::sql::{
    INVITATION_SELECT, LOCK_EMAIL, USER_COLUMNS, batch_invitations, batch_where, boolean, bytes32,
    decode, decode_one, email, execute, invitation_from_row, locked_query, name_param, opt_text,
    query, tag, ts, user_from_row, uuid,
};
use crate::{PgStore, transaction};
use deadpool_postgres::Transaction;
use invites_core::rules::{
    self, AcceptDecision, AcceptFacts, ExpiryBound, IdempotencyDecision, RevokeDecision,
    RotateDecision, RotateFacts, StoredIdempotency, TargetAccess,
};
use invites_core::{
    AcceptBatch, AcceptFact, AcceptOutcome, ApiKeyId, BatchId, BatchRecord, Email,
    IdempotencyBegin, IdempotencyState, InvitationFilter, InvitationId, InvitationQuery,
    InvitationRecord, NewEvent, OrganizationId, RevokeFact, RevokeInvitation, Role, RotateBatch,
    RotateFact, StoredStatus, TargetId, TargetKind, TargetSlot, Timestamp, TokenHash, User, UserId,
    UserRef,
};
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// users

pub(crate) async fn find_user(store: &PgStore, email: &Email) -> Result<Option<User>, Error> {
    let client = store.client().await?;
    query(
        &client,
        &store.q(&format!(
            "SELECT {USER_COLUMNS} FROM {{schema}}.users WHERE email = $1"
        )),
        &[&email.as_str()],
    )
    .await?
    .first()
    .map(|row| decode_one("users", row, user_from_row))
    .transpose()
}

pub(crate) async fn get_user(store: &PgStore, id: UserId) -> Result<Option<User>, Error> {
    let client = store.client().await?;
    query(
        &client,
        &store.q(&format!(
            "SELECT {USER_COLUMNS} FROM {{schema}}.users WHERE id = $1"
        )),
        &[&id.0],
    )
    .await?
    .first()
    .map(|row| decode_one("users", row, user_from_row))
    .transpose()
}

// ---------------------------------------------------------------------------------------------
// batches and invitations

pub(crate) async fn find_batch_by_token(
    store: &PgStore,
    hash: &TokenHash,
) -> Result<Option<BatchRecord>, Error> {
    let client = store.client().await?;
    batch_where(store, &client, "b.token_hash = $1", &[&&hash.0[..]]).await
}

pub(crate) async fn get_batch(
    store: &PgStore,
    organization: OrganizationId,
    batch: BatchId,
) -> Result<Option<BatchRecord>, Error> {
    let client = store.client().await?;
    batch_where(
        store,
        &client,
        "b.id = $1 AND b.organization_id = $2",
        &[&batch.0, &organization.0],
    )
    .await
}

pub(crate) async fn get_invitation(
    store: &PgStore,
    organization: OrganizationId,
    id: InvitationId,
) -> Result<Option<InvitationRecord>, Error> {
    let client = store.client().await?;
    query(
        &client,
        &store.q(&format!(
            "{INVITATION_SELECT} WHERE i.id = $1 AND i.organization_id = $2"
        )),
        &[&id.0, &organization.0],
    )
    .await?
    .first()
    .map(|row| decode_one("invitations", row, invitation_from_row).map(|(r, _)| r))
    .transpose()
}

pub(crate) async fn list_invitations(
    store: &PgStore,
    q: &InvitationQuery,
) -> Result<Vec<InvitationRecord>, Error> {
    use tokio_postgres::types::ToSql;
    // Parameters 1 to 4 are fixed; the filter's follow. One statement text per filter shape,
    // so each is prepared once per connection. Page one starts after the smallest cursor.
    let (mut after_ts, mut after_id) = match q.after {
        Some((t, id)) => (t.as_millis(), id.0),
        None => (i64::MIN, uuid::Uuid::nil()),
    };
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![
        Box::new(q.organization.0),
        Box::new(after_ts),
        Box::new(after_id),
        Box::new(limit),
    ];
    let status_filter;
    let filter: &str = match &q.filter {
        InvitationFilter::Target(t) => {
            params.push(Box::new(t.kind().as_str()));
            params.push(Box::new(t.uuid()));
            "i.target_kind = $5 AND i.target_id = $6"
        }
        InvitationFilter::Email(e) => {
            params.push(Box::new(e.as_str().to_owned()));
            // Read through the email's batches (see `by_email` below).
            "eb.organization_id = $1 AND eb.email = $5"
        }
        // The status as seen at `now`, in the stored forms the core gives for it (an
        // expired invitation is derived from the clock, never stored).
        InvitationFilter::Status(view) => {
            params.push(Box::new(q.now.as_millis()));
            let forms = rules::stored_forms(*view)
                .iter()
                .map(|(stored, bound)| {
                    let expiry = match bound {
                        ExpiryBound::Any => "",
                        ExpiryBound::After => " AND i.expires_at > $5",
                        ExpiryBound::AtOrBefore => " AND i.expires_at <= $5",
                    };
                    // Stored tags are fixed ASCII words (`StoredStatus::as_str`).
                    format!("(i.status = '{}'{expiry})", stored.as_str())
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            status_filter = format!("({forms}) AND $5::bigint IS NOT NULL");
            &status_filter
        }
    };
    // A website-scoped caller sees only invitations to its websites, filtered before paging.
    let scope = match &q.websites {
        None => String::new(),
        Some(allowed) => {
            params.push(Box::new(allowed.iter().map(|w| w.0).collect::<Vec<_>>()));
            format!(
                " AND i.target_kind = 'website' AND i.target_id = ANY(${}::uuid[])",
                params.len()
            )
        }
    };
    let sql = if matches!(q.filter, InvitationFilter::Email(_)) {
        // One email's invitations, found through its batches (`batches_by_email`; an
        // invitation's foreign key names its batch's email): each batch contributes its first
        // rows after the cursor (`invitations_by_batch`), and the page is the first of those.
        // Written as a LATERAL join so no plan can walk the organization's invitations
        // instead, whatever statistics it was made with.
        let by_email = format!(
            "FROM {{schema}}.batches eb CROSS JOIN LATERAL (\
             SELECT i.* FROM {{schema}}.invitations i WHERE i.batch_id = eb.id \
             AND (i.created_at, i.id) > ($2, $3){scope} ORDER BY i.created_at, i.id LIMIT $4) i"
        );
        store.q(&format!(
            "{} WHERE i.organization_id = $1 AND {filter} ORDER BY i.created_at, i.id LIMIT $4",
            INVITATION_SELECT.replace("FROM {schema}.invitations i", &by_email)
        ))
    } else {
        store.q(&format!(
            "{INVITATION_SELECT} WHERE i.organization_id = $1 AND (i.created_at, i.id) > ($2, $3) \
             AND {filter}{scope} ORDER BY i.created_at, i.id LIMIT $4"
        ))
    };
    let client = store.client().await?;
    // A row this version cannot decode is left out (and reported) and the page is filled up
    // from the rows after it, so a page holds `limit` rows unless the list ends: the core's
    // cursor (made from the last row returned) stays right, and a short page still means the
    // end. `created_at` and `id` are `bigint` and `uuid` columns, always readable, so the
    // rows after a left-out one are found from its position.
    let mut page = Vec::new();
    loop {
        let want = q.limit - page.len();
        params[1] = Box::new(after_ts);
        params[2] = Box::new(after_id);
        params[3] = Box::new(i64::try_from(want).unwrap_or(i64::MAX));
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = query(&client, &sql, &refs).await?;
        for row in &rows {
            match decode("invitations", row, invitation_from_row)? {
                Ok((record, _)) => page.push(record),
                Err(unreadable) => unreadable.report_skipped(),
            }
            after_ts = row.try_get("created_at")?;
            after_id = row.try_get("id")?;
        }
        // Done when the list ended or the page is full (every row read was kept).
        if rows.len() < want || page.len() == q.limit {
            return Ok(page);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// accept

/// The explicit memberships of a user among some targets.
async fn memberships_among(
    store: &PgStore,
    tx: &Transaction<'_>,
    user: UserId,
    targets: &[TargetId],
) -> Result<HashMap<TargetId, Role>, Error> {
    let websites = crate::sql::ids_of_kind(targets, TargetKind::Website);
    let groups = crate::sql::ids_of_kind(targets, TargetKind::Group);
    let rows = query(
        tx,
        &store.q(
            "SELECT 'website' AS kind, website_id AS target, role FROM {schema}.website_members \
               WHERE user_id = $1 AND website_id = ANY($2::uuid[]) \
             UNION ALL \
             SELECT 'group', group_id, role FROM {schema}.group_members \
               WHERE user_id = $1 AND group_id = ANY($3::uuid[])",
        ),
        &[&user.0, &websites, &groups],
    )
    .await?;
    let mut found = HashMap::new();
    for row in &rows {
        let kind = tag(row, "kind", TargetKind::parse)?;
        found.insert(
            kind.with_id(uuid(row, "target")?),
            tag(row, "role", Role::parse)?,
        );
    }
    Ok(found)
}

const ACCEPT_FAST: &str = "\
WITH website_rows AS (
    INSERT INTO {schema}.website_members (website_id, user_id, role, created_at)
    SELECT t.target, $1, t.role, $2 FROM unnest($3::uuid[], $4::text[]) AS t(target, role)
),
group_rows AS (
    INSERT INTO {schema}.group_members (group_id, user_id, role, created_at)
    SELECT t.target, $1, t.role, $2 FROM unnest($5::uuid[], $6::text[]) AS t(target, role)
)
UPDATE {schema}.invitations i SET status = 'accepted'
FROM unnest($7::uuid[]) AS s(id)
WHERE i.id = s.id AND i.status = 'pending'";

pub(crate) async fn accept_batch(
    store: &PgStore,
    cmd: &AcceptBatch,
) -> Result<Option<AcceptOutcome>, Error> {
    let fast = transaction!(store, |tx| {
        let outcome = accept(store, &tx, cmd, false).await?;
        tx.commit().await?;
        Ok(outcome)
    });
    match fast {
        Err(e) if e.is_statement_error() && !e.is_conflict() => {
            transaction!(store, |tx| {
                let outcome = accept(store, &tx, cmd, true).await?;
                tx.commit().await?;
                Ok(outcome)
            })
        }
        other => other,
    }
}

async fn accept(
    store: &PgStore,
    tx: &Transaction<'_>,
    cmd: &AcceptBatch,
    slow: bool,
) -> Result<Option<AcceptOutcome>, Error> {
    // The batch's email never changes: read it, then take its lock and re-read the batch
    // (locked against a concurrent resend) with the token check.
    let rows = query(
        tx,
        &store.q("SELECT email FROM {schema}.batches WHERE id = $1"),
        &[&cmd.batch_id.0],
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let batch_email = email(row, "email")?;
    let rows = locked_query(
        tx,
        None,
        (LOCK_EMAIL, &[&batch_email.as_str()]),
        (
            &store.q(
                "SELECT organization_id, token_hash FROM {schema}.batches WHERE id = $1 FOR UPDATE",
            ),
            &[&cmd.batch_id.0],
        ),
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let organization = OrganizationId(uuid(row, "organization_id")?);
    if bytes32(row, "token_hash")? != cmd.token_hash.0 {
        // Rotated (or never this batch's token): nothing changes.
        return Ok(None);
    }

    let found = query(
        tx,
        &store.q("SELECT u.id, EXISTS (SELECT 1 FROM {schema}.org_members o \
                                  WHERE o.organization_id = $2 AND o.user_id = u.id) AS org_member \
             FROM {schema}.users u WHERE u.email = $1"),
        &[&batch_email.as_str(), &organization.0],
    )
    .await?;
    let (user, org_member) = match found.first() {
        Some(row) => {
            let id = UserId(uuid(row, "id")?);
            execute(
                tx,
                &store.q("UPDATE {schema}.users SET email_verified = true \
                     WHERE id = $1 AND NOT email_verified"),
                &[&id.0],
            )
            .await?;
            (UserRef { id, created: false }, boolean(row, "org_member")?)
        }
        None => {
            execute(
                tx,
                &store.q(crate::bulk::INSERT_USER),
                &[
                    &cmd.new_user.id.0,
                    &batch_email.as_str(),
                    &true,
                    &name_param(&cmd.new_user.first_name),
                    &name_param(&cmd.new_user.last_name),
                ],
            )
            .await?;
            (
                UserRef {
                    id: cmd.new_user.id,
                    created: true,
                },
                false,
            )
        }
    };
    let invitations = batch_invitations(store, tx, cmd.batch_id, true).await?;
    let targets: Vec<TargetId> = invitations.iter().map(|(r, _)| r.target).collect();
    let memberships = if user.created {
        HashMap::new()
    } else {
        memberships_among(store, tx, user.id, &targets).await?
    };

    let decisions: Vec<AcceptDecision> = invitations
        .iter()
        .map(|(record, exists)| {
            rules::decide_accept(&AcceptFacts {
                status: record.status,
                expires_at: record.expires_at,
                now: cmd.now,
                access: TargetAccess {
                    exists: *exists,
                    membership: memberships.get(&record.target).copied(),
                    org_member,
                },
            })
        })
        .collect();

    let mut results = Vec::with_capacity(invitations.len());
    // `user_created` when created, then per accepted invitation `invitation_accepted` and
    // `member_added` when it created the membership (the slow path: of the units that
    // succeeded), appended after the writes.
    let mut new_events = Vec::new();
    if user.created {
        new_events.push(NewEvent::user_created(user.id));
    }
    let accept_events = |record: &InvitationRecord, create_membership: bool| {
        std::iter::once(NewEvent::invitation_accepted(
            record.target,
            record.id,
            record.batch_id,
            user.id,
        ))
        .chain(
            create_membership.then(|| NewEvent::member_added(record.target, user.id, record.role)),
        )
    };
    if !slow {
        let mut accepted = Vec::new();
        let (mut w_ids, mut w_roles, mut g_ids, mut g_roles) = (vec![], vec![], vec![], vec![]);
        for ((record, _), decision) in invitations.iter().zip(&decisions) {
            if let AcceptDecision::Accept {
                create_membership, ..
            } = decision
            {
                accepted.push(record.id.0);
                new_events.extend(accept_events(record, *create_membership));
                if *create_membership {
                    let (ids, roles) = match record.target.kind() {
                        TargetKind::Website => (&mut w_ids, &mut w_roles),
                        TargetKind::Group => (&mut g_ids, &mut g_roles),
                    };
                    ids.push(record.target.uuid());
                    roles.push(record.role.as_str());
                }
            }
        }
        if !accepted.is_empty() {
            execute(
                tx,
                &store.q(ACCEPT_FAST),
                &[
                    &user.id.0,
                    &cmd.now.as_millis(),
                    &w_ids,
                    &w_roles,
                    &g_ids,
                    &g_roles,
                    &accepted,
                ],
            )
            .await?;
        }
        for ((mut record, _), decision) in invitations.into_iter().zip(decisions) {
            let fact = match decision {
                AcceptDecision::Report(fact) => fact,
                AcceptDecision::Accept { fact, .. } => {
                    record.status = StoredStatus::Accepted;
                    fact
                }
            };
            results.push((record, Ok(fact)));
        }
    } else {
        for ((mut record, _), decision) in invitations.into_iter().zip(decisions) {
            let slot: TargetSlot<AcceptFact> = match decision {
                AcceptDecision::Report(fact) => Ok(fact),
                AcceptDecision::Accept {
                    fact,
                    create_membership,
                } => {
                    let target = record.target;
                    let role = record.role;
                    let id = record.id;
                    let done = crate::bulk::in_savepoint(tx, async {
                        if create_membership {
                            execute(
                                tx,
                                &store.q(crate::bulk::insert_member_sql(target.kind())),
                                &[
                                    &target.uuid(),
                                    &user.id.0,
                                    &role.as_str(),
                                    &cmd.now.as_millis(),
                                ],
                            )
                            .await?;
                        }
                        execute(
                            tx,
                            &store.q(crate::bulk::SET_STATUS),
                            &[&id.0, &StoredStatus::Accepted.as_str()],
                        )
                        .await?;
                        Ok(())
                    })
                    .await?;
                    if done.is_ok() {
                        record.status = StoredStatus::Accepted;
                        new_events.extend(accept_events(&record, create_membership));
                    }
                    done.map(|()| fact)
                }
            };
            results.push((record, slot));
        }
    }
    // A token is not a key: no actor.
    let ctx = events::context(organization, None, cmd.now);
    events::append(store, tx, &ctx, &new_events).await?;
    Ok(Some(AcceptOutcome {
        user,
        invitations: results,
    }))
}

// ---------------------------------------------------------------------------------------------
// revoke, rotate

pub(crate) async fn revoke_invitation(
    store: &PgStore,
    cmd: &RevokeInvitation,
) -> Result<RevokeFact, Error> {
    let id = cmd.id;
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q(
                "SELECT status, target_kind, target_id, batch_id FROM {schema}.invitations \
                 WHERE id = $1 AND organization_id = $2 FOR UPDATE",
            ),
            &[&id.0, &cmd.organization.0],
        )
        .await?;
        let status = rows
            .first()
            .map(|row| tag(row, "status", StoredStatus::parse))
            .transpose()?;
        let fact = match rules::decide_revoke(status) {
            RevokeDecision::Report(fact) => fact,
            RevokeDecision::Revoke => {
                let row = rows.first().ok_or(Error::Corrupt { column: "status" })?;
                let target =
                    tag(row, "target_kind", TargetKind::parse)?.with_id(uuid(row, "target_id")?);
                let batch = BatchId(uuid(row, "batch_id")?);
                execute(
                    &tx,
                    &store.q(crate::bulk::SET_STATUS),
                    &[&id.0, &StoredStatus::Revoked.as_str()],
                )
                .await?;
                events::append(
                    store,
                    &tx,
                    &events::context(cmd.organization, cmd.actor, cmd.now),
                    &[NewEvent::invitation_revoked(target, id, batch)],
                )
                .await?;
                RevokeFact::Revoked
            }
        };
        tx.commit().await?;
        Ok(fact)
    })
}

const ROTATE: &str = "\
WITH renewed AS (
    UPDATE {schema}.invitations SET expires_at = $2
    WHERE batch_id = $1 AND status = ANY($10::text[])
    RETURNING 1
),
batch AS (
    UPDATE {schema}.batches SET token_hash = $3, last_sent_at = $4 WHERE id = $1
),
cancelled AS (
    UPDATE {schema}.outbox SET status = 'cancelled', accept_url = NULL
    WHERE batch_id = $1 AND status = 'queued'
),
message AS (
    INSERT INTO {schema}.outbox (id, batch_id, organization_id, recipient, accept_url, status,
                                 attempts, next_attempt_at, created_at, last_error)
    VALUES ($5, $1, $6, $7, $8, 'queued', 0, $9, $4, NULL)
)
SELECT count(*) AS renewed FROM renewed";

pub(crate) async fn rotate_batch(store: &PgStore, cmd: &RotateBatch) -> Result<RotateFact, Error> {
    transaction!(store, |tx| {
        let rows = query(
            &tx,
            &store.q("SELECT email FROM {schema}.batches WHERE id = $1 AND organization_id = $2"),
            &[&cmd.batch_id.0, &cmd.organization.0],
        )
        .await?;
        let Some(row) = rows.first() else {
            return Ok(RotateFact::NotFound);
        };
        let batch_email = email(row, "email")?;
        // The stored statuses a resend renews, as the core defines them.
        let renewable_tags: Vec<&str> = StoredStatus::ALL
            .into_iter()
            .filter(StoredStatus::is_renewable)
            .map(|s| s.as_str())
            .collect();
        let rows = locked_query(
            &tx,
            None,
            (LOCK_EMAIL, &[&batch_email.as_str()]),
            (
                &store.q("SELECT b.last_sent_at, \
                        (SELECT count(*) FROM {schema}.invitations i \
                         WHERE i.batch_id = b.id AND i.status = ANY($2::text[])) AS renewable \
                 FROM {schema}.batches b WHERE b.id = $1 FOR UPDATE"),
                &[&cmd.batch_id.0, &renewable_tags],
            ),
        )
        .await?;
        let facts = rows
            .first()
            .map(|row| -> Result<RotateFacts, Error> {
                let renewable: i64 = row.try_get("renewable")?;
                Ok(RotateFacts {
                    last_sent_at: ts(row, "last_sent_at")?,
                    renewable: usize::try_from(renewable).unwrap_or(0),
                    not_sent_after: cmd.not_sent_after,
                })
            })
            .transpose()?;
        let fact = match rules::decide_rotate(facts.as_ref()) {
            RotateDecision::Report(fact) => fact,
            RotateDecision::Rotate => {
                let rows = query(
                    &tx,
                    &store.q(ROTATE),
                    &[
                        &cmd.batch_id.0,
                        &cmd.expires_at.as_millis(),
                        &&cmd.new_token_hash.0[..],
                        &cmd.now.as_millis(),
                        &cmd.message_id.0,
                        &cmd.organization.0,
                        &batch_email.as_str(),
                        &cmd.accept_url,
                        &cmd.message_due_at.as_millis(),
                        &renewable_tags,
                    ],
                )
                .await?;
                let renewed: i64 = rows.first().map_or(Ok(0), |r| r.try_get("renewed"))?;
                events::append(
                    store,
                    &tx,
                    &events::context(cmd.organization, cmd.actor, cmd.now),
                    &[NewEvent::batch_resent(cmd.batch_id, cmd.message_id)],
                )
                .await?;
                RotateFact::Rotated {
                    renewed: usize::try_from(renewed).unwrap_or(0),
                }
            }
        };
        tx.commit().await?;
        Ok(fact)
    })
}

// ---------------------------------------------------------------------------------------------
// idempotency

/// The lock on one idempotency key: two requests with the same key begin one at a time.
const LOCK_IDEMPOTENCY: &str =
    "SELECT pg_advisory_xact_lock(1769170276, hashtext($1::text || '/' || $2::text || '/' || $3))";

pub(crate) async fn idempotency_begin(
    store: &PgStore,
    begin: &IdempotencyBegin,
) -> Result<IdempotencyState, Error> {
    let org = begin.organization.0.to_string();
    let key_id = begin.key_id.0.to_string();
    transaction!(store, |tx| {
        let rows = locked_query(
            &tx,
            None,
            (LOCK_IDEMPOTENCY, &[&org, &key_id, &begin.key]),
            (
                &store.q(
                    "SELECT fingerprint, response, created_at FROM {schema}.idempotency \
                 WHERE organization_id = $1 AND key_id = $2 AND key = $3",
                ),
                &[&begin.organization.0, &begin.key_id.0, &begin.key],
            ),
        )
        .await?;
        let found = rows
            .first()
            .map(|row| -> Result<StoredIdempotency, Error> {
                Ok(StoredIdempotency {
                    fingerprint: bytes32(row, "fingerprint")?,
                    response: opt_text(row, "response")?,
                    created_at: ts(row, "created_at")?,
                })
            })
            .transpose()?;
        let state = match rules::decide_idempotency(found, begin) {
            IdempotencyDecision::Report(state) => state,
            IdempotencyDecision::Start => {
                execute(
                    &tx,
                    &store.q("INSERT INTO {schema}.idempotency \
                             (organization_id, key_id, key, fingerprint, response, created_at) \
                         VALUES ($1, $2, $3, $4, NULL, $5) \
                         ON CONFLICT (organization_id, key_id, key) DO UPDATE \
                         SET fingerprint = excluded.fingerprint, response = NULL, \
                             created_at = excluded.created_at"),
                    &[
                        &begin.organization.0,
                        &begin.key_id.0,
                        &begin.key,
                        &&begin.fingerprint[..],
                        &begin.now.as_millis(),
                    ],
                )
                .await?;
                IdempotencyState::Started
            }
        };
        tx.commit().await?;
        Ok(state)
    })
}

pub(crate) async fn idempotency_finish(
    store: &PgStore,
    organization: OrganizationId,
    key_id: ApiKeyId,
    key: &str,
    started_at: Timestamp,
    response: Option<&str>,
    names_user: Option<UserId>,
) -> Result<(), Error> {
    let client = store.client().await?;
    // Fenced by `created_at` (rules::idempotency_finish_applies): only this run's record.
    let at = started_at.as_millis();
    let names = names_user.map(|u| u.0);
    match response {
        None => {
            execute(
                &client,
                &store.q("DELETE FROM {schema}.idempotency \
                     WHERE organization_id = $1 AND key_id = $2 AND key = $3 AND created_at = $4"),
                &[&organization.0, &key_id.0, &key, &at],
            )
            .await?
        }
        // One statement: the named user's row is read FOR SHARE, so an erasure deleting it
        // either committed before (the user is gone: the record is deleted) or waits for this
        // commit (and then deletes the response that names the user).
        Some(response) => {
            execute(
                &client,
                &store.q("WITH named AS ( \
                       SELECT ($6::uuid IS NULL \
                           OR EXISTS (SELECT 1 FROM {schema}.users WHERE id = $6 FOR SHARE)) AS alive), \
                     stored AS ( \
                       UPDATE {schema}.idempotency SET response = $5 \
                       WHERE organization_id = $1 AND key_id = $2 AND key = $3 AND created_at = $4 \
                         AND (SELECT alive FROM named) RETURNING 1) \
                     DELETE FROM {schema}.idempotency \
                     WHERE organization_id = $1 AND key_id = $2 AND key = $3 AND created_at = $4 \
                       AND NOT (SELECT alive FROM named)"),
                &[&organization.0, &key_id.0, &key, &at, &response, &names],
            )
            .await?
        }
    };
    Ok(())
}
