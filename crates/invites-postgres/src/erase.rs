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
//!   idempotency table (responses are text), which the purge keeps to the retention window.

use crate::error::Error;
use crate::sql::{LOCK_EMAIL, execute, locked_query, query, uuid};
use crate::{PgStore, transaction};
use invites_core::access::ErasureReport;
use invites_core::{Email, UserId};
use uuid::Uuid;

const DELETE_MEMBERSHIPS: [&str; 2] = [
    "DELETE FROM {schema}.website_members WHERE user_id = $1",
    "DELETE FROM {schema}.group_members WHERE user_id = $1",
];
const DELETE_ORG_MEMBERSHIPS: &str = "DELETE FROM {schema}.org_members WHERE user_id = $1";
/// The stored responses naming the user: its id as the core writes it (hyphenated,
/// lowercase).
const DELETE_IDEMPOTENCY: &str =
    "DELETE FROM {schema}.idempotency WHERE strpos(response, $1::text) > 0";
const DELETE_USER: &str = "DELETE FROM {schema}.users WHERE id = $1";
/// The address's batches in every organization, locked (an accept or a resend of one, which
/// locks it after the same email lock, has finished or has not begun).
const BATCHES: &str = "SELECT id FROM {schema}.batches WHERE email = $1 FOR UPDATE";
const DELETE_MESSAGES: &str =
    "DELETE FROM {schema}.outbox WHERE recipient = $1 OR batch_id = ANY($2::uuid[])";
const DELETE_INVITATIONS: &str = "DELETE FROM {schema}.invitations i \
    USING unnest($1::uuid[]) AS b(id) WHERE i.batch_id = b.id";
const DELETE_BATCHES: &str = "DELETE FROM {schema}.batches x \
    USING unnest($1::uuid[]) AS b(id) WHERE x.id = b.id";

pub(crate) async fn erase_person(store: &PgStore, address: &Email) -> Result<ErasureReport, Error> {
    let address = address.as_str();
    transaction!(store, |tx| {
        let mut report = ErasureReport::default();
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
                report.memberships += execute(&tx, &store.q(sql), &[&user]).await?;
            }
            report.org_memberships =
                execute(&tx, &store.q(DELETE_ORG_MEMBERSHIPS), &[&user]).await?;
            report.idempotency_records =
                execute(&tx, &store.q(DELETE_IDEMPOTENCY), &[&user.to_string()]).await?;
            execute(&tx, &store.q(DELETE_USER), &[&user]).await?;
            report.user = Some(UserId(user));
        }
        let batches: Vec<Uuid> = query(&tx, &store.q(BATCHES), &[&address])
            .await?
            .iter()
            .map(|row| uuid(row, "id"))
            .collect::<Result<_, _>>()?;
        report.messages = execute(&tx, &store.q(DELETE_MESSAGES), &[&address, &batches]).await?;
        if !batches.is_empty() {
            report.invitations = execute(&tx, &store.q(DELETE_INVITATIONS), &[&batches]).await?;
            report.batches = execute(&tx, &store.q(DELETE_BATCHES), &[&batches]).await?;
        }
        tx.commit().await?;
        Ok(report)
    })
}
