//! `erase_person`: everything of one address, deleted in one transaction that holds the
//! address's email lock (the lock every write about that person takes first), so a request
//! for the same person racing the erasure runs wholly before it (and is erased) or wholly
//! after it (and starts clean).
//!
//! What is found how:
//!
//! - the user by `users_one_per_email`; its website, group and organization memberships by
//!   `website_members_by_user`, `group_members_by_user` and `org_members_by_user`
//!   (migration 6);
//! - the address's batches by `batches_by_email` (led by the email since migration 6), in
//!   every organization; their invitations by `invitations_by_batch`. That is every
//!   invitation to the address: an invitation's foreign key names its batch's email
//!   (migration 5);
//! - the outbox messages of those batches, and any other message to the address (a row
//!   written outside this crate): a scan of the outbox, which has no index on the
//!   recipient (each message the crate writes is to its batch's email, and an index would
//!   cost every request a write for an operation this rare);
//! - the idempotency records whose stored response names the user's id: a scan of the
//!   idempotency table (responses are text), which the purge keeps to the retention window;
//! - the events naming the user, by `events_by_user` (migration 7): their user id is
//!   cleared, the events stay.
//!
//! Every delete returns the organization of what it deleted; each of those organizations
//! gets a `person_erased` event (naming no one), appended last: their rows locked in
//! ascending id order, then one statement (`crate::events`).

use crate::error::Error;
use crate::events;
use crate::sql::{LOCK_EMAIL, Params, execute, locked_query, opt_uuid, query, uuid};
use crate::{PgStore, transaction};
use invites_core::access::ErasureReport;
use invites_core::{Email, Timestamp, UserId};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Each returns the organization of the target of every membership it deleted.
const DELETE_MEMBERSHIPS: [&str; 2] = [
    "DELETE FROM {schema}.website_members m WHERE m.user_id = $1 RETURNING \
     (SELECT w.organization_id FROM {schema}.websites w WHERE w.id = m.website_id) \
     AS organization_id",
    "DELETE FROM {schema}.group_members m WHERE m.user_id = $1 RETURNING \
     (SELECT g.organization_id FROM {schema}.groups g WHERE g.id = m.group_id) \
     AS organization_id",
];
const DELETE_ORG_MEMBERSHIPS: &str =
    "DELETE FROM {schema}.org_members WHERE user_id = $1 RETURNING organization_id";
/// The stored responses naming the user: its id as the core writes it (hyphenated,
/// lowercase).
const DELETE_IDEMPOTENCY: &str =
    "DELETE FROM {schema}.idempotency WHERE strpos(response, $1::text) > 0";
const DELETE_USER: &str = "DELETE FROM {schema}.users WHERE id = $1";
/// The address's batches in every organization, locked (an accept or a resend of one, which
/// locks it after the same email lock, has finished or has not begun).
const BATCHES: &str = "SELECT id FROM {schema}.batches WHERE email = $1 FOR UPDATE";
const DELETE_MESSAGES: &str = "DELETE FROM {schema}.outbox \
    WHERE recipient = $1 OR batch_id = ANY($2::uuid[]) RETURNING organization_id";
const DELETE_INVITATIONS: &str = "DELETE FROM {schema}.invitations i \
    USING unnest($1::uuid[]) AS b(id) WHERE i.batch_id = b.id RETURNING i.organization_id";
const DELETE_BATCHES: &str = "DELETE FROM {schema}.batches x \
    USING unnest($1::uuid[]) AS b(id) WHERE x.id = b.id RETURNING x.organization_id";

/// Runs a `DELETE … RETURNING organization_id`: the number of rows deleted, their
/// organizations added to `touched`.
async fn delete_in(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &Params<'_>,
    touched: &mut BTreeSet<Uuid>,
) -> Result<u64, Error> {
    let rows = query(tx, sql, params).await?;
    for row in &rows {
        // A membership's target exists (foreign key): its organization is never NULL.
        touched.extend(opt_uuid(row, "organization_id")?);
    }
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}

pub(crate) async fn erase_person(
    store: &PgStore,
    address: &Email,
    now: Timestamp,
) -> Result<ErasureReport, Error> {
    let address = address.as_str();
    transaction!(store, |tx| {
        let mut report = ErasureReport::default();
        // The organizations the erasure deletes something of.
        let mut touched = BTreeSet::new();
        let rows = locked_query(
            &tx,
            None,
            (LOCK_EMAIL, &[&address]),
            (
                &store.q("SELECT id FROM {schema}.users WHERE email = $1 FOR UPDATE"),
                &[&address],
            ),
        )
        .await?;
        if let Some(row) = rows.first() {
            let user = uuid(row, "id")?;
            for sql in DELETE_MEMBERSHIPS {
                report.memberships += delete_in(&tx, &store.q(sql), &[&user], &mut touched).await?;
            }
            report.org_memberships = delete_in(
                &tx,
                &store.q(DELETE_ORG_MEMBERSHIPS),
                &[&user],
                &mut touched,
            )
            .await?;
            report.idempotency_records =
                execute(&tx, &store.q(DELETE_IDEMPOTENCY), &[&user.to_string()]).await?;
            execute(&tx, &store.q(DELETE_USER), &[&user]).await?;
            execute(&tx, &store.q(events::SCRUB_USER), &[&user]).await?;
            report.user = Some(UserId(user));
        }
        let batches: Vec<Uuid> = query(&tx, &store.q(BATCHES), &[&address])
            .await?
            .iter()
            .map(|row| uuid(row, "id"))
            .collect::<Result<_, _>>()?;
        report.messages = delete_in(
            &tx,
            &store.q(DELETE_MESSAGES),
            &[&address, &batches],
            &mut touched,
        )
        .await?;
        if !batches.is_empty() {
            report.invitations =
                delete_in(&tx, &store.q(DELETE_INVITATIONS), &[&batches], &mut touched).await?;
            report.batches =
                delete_in(&tx, &store.q(DELETE_BATCHES), &[&batches], &mut touched).await?;
        }
        if !touched.is_empty() {
            // Last: the organizations' rows in ascending id order (two erasures never
            // deadlock), then `person_erased` in each.
            let organizations: Vec<Uuid> = touched.iter().copied().collect();
            query(&tx, &store.q(events::LOCK_ORGANIZATIONS), &[&organizations]).await?;
            execute(
                &tx,
                &store.q(events::ERASED),
                &[&organizations, &now.as_millis()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(report)
    })
}
