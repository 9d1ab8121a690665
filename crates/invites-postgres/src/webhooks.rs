//! Webhook endpoints and their progress (`invites_core::endpoints`, migration 8): every
//! method is ONE statement, so each is atomic on its own (autocommit, `READ COMMITTED`).
//!
//! - **Creating** reads the organization's `event_seq` (the last position given out,
//!   migration 7) in the statement that inserts the endpoint, so [`StartAt::Latest`] starts
//!   after the last committed event: an event a concurrent writer has not committed yet gets
//!   a later position, and is delivered.
//! - **Claiming** mirrors the outbox's claim ([`CLAIM`]): the due rows are picked and locked
//!   by an inner `SELECT … FOR UPDATE SKIP LOCKED` (a row another deliverer is claiming right
//!   now is skipped, not waited for; a row another claim leased and committed meanwhile is
//!   re-checked against the new lease and dropped) and leased by the `UPDATE`.
//! - **Recording** is one conditional `UPDATE` that writes only when
//!   [`invites_core::webhook_record_applies`] would say so: the row still holds the claim's lease, and an
//!   `Advanced` does not move progress back.
//!
//! # Rows this version cannot read
//!
//! An endpoint whose stored kinds, reason or numbers this version cannot decode (a kind a
//! newer version wrote, for one) is left out of `list_endpoints` and `claim_due_endpoints`
//! with a `tracing` warning (table, column, row id), and never fails the call. A claim still
//! leases such a row (the statement cannot tell), which puts it behind every endpoint that is
//! due before its lease ends: it never holds back the others, and is tried (and reported)
//! again at most once per lease.

use crate::PgStore;
use crate::error::Error;
use crate::sql::{Params, decode, decode_all, execute, opt_text, query, text, ts, u32_col, uuid};
use async_trait::async_trait;
use invites_core::{
    DisabledReason, EndpointId, EndpointState, EventKind, OrganizationId, StartAt, StoreError,
    Timestamp, WebhookEndpoint, WebhookStore, WebhookUpdate,
};
use std::collections::BTreeSet;
use tokio_postgres::Row;

/// The table, as unreadable rows name it.
const TABLE: &str = "webhook_endpoints";

/// The columns [`endpoint_from_row`] reads, with `next_attempt_at` last (the claim reports
/// it as found, from its sub-select).
const COLUMNS: &str = "id, organization_id, url, secrets, event_types, delivered_through, \
    failed_attempts, disabled, last_error, next_attempt_at";

/// Inserts endpoint `$1` of organization `$2`, due at `$7`, after position `$6` (NULL: the
/// organization's current `event_seq`, read in this statement). Returns whether the
/// organization exists and whether the row was inserted (an existing id is left as it is).
const CREATE: &str = "\
WITH org AS (
    SELECT id, event_seq FROM {schema}.organizations WHERE id = $2
), ins AS (
    INSERT INTO {schema}.webhook_endpoints (id, organization_id, url, secrets, event_types,
                                            delivered_through, failed_attempts,
                                            next_attempt_at, disabled, last_error)
    SELECT $1::uuid, org.id, $3::text, $4::text[], $5::text[],
           COALESCE($6::bigint, org.event_seq), 0, $7::bigint, NULL, NULL
    FROM org
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM org) AS organization_exists,
       EXISTS (SELECT 1 FROM ins) AS inserted";

/// Replaces the URL, secrets and kinds of endpoint `$1` in organization `$2`.
const UPDATE: &str = "\
UPDATE {schema}.webhook_endpoints SET url = $3, secrets = $4::text[], event_types = $5::text[]
WHERE id = $1 AND organization_id = $2";

/// Enables endpoint `$1` of organization `$2`: failures reset, due at `$3`, progress kept.
const ENABLE: &str = "\
UPDATE {schema}.webhook_endpoints SET disabled = NULL, failed_attempts = 0, next_attempt_at = $3
WHERE id = $1 AND organization_id = $2";

/// Disables endpoint `$1` of organization `$2` with the reason `$3`.
const DISABLE: &str = "\
UPDATE {schema}.webhook_endpoints SET disabled = $3 WHERE id = $1 AND organization_id = $2";

/// Deletes endpoint `$1` of organization `$2`.
const DELETE: &str =
    "DELETE FROM {schema}.webhook_endpoints WHERE id = $1 AND organization_id = $2";

/// Claims due endpoints in ONE statement, as the outbox's claim: the inner `SELECT … FOR
/// UPDATE SKIP LOCKED` picks and locks the enabled endpoints due at `$1` whose organization
/// has an event after their progress (one probe of the primary key of `events`), in
/// (next_attempt_at, id) order, at most `$3`; the `UPDATE` leases them (`next_attempt_at` =
/// `$2`, the lease's end). `RETURNING` reports each with its `next_attempt_at` as it was
/// found.
const CLAIM: &str = "\
UPDATE {schema}.webhook_endpoints w SET next_attempt_at = $2
FROM (SELECT e.id, e.next_attempt_at AS due_at FROM {schema}.webhook_endpoints e
      WHERE e.disabled IS NULL AND e.next_attempt_at <= $1
        AND EXISTS (SELECT 1 FROM {schema}.events v
                    WHERE v.organization_id = e.organization_id
                      AND v.position > e.delivered_through)
      ORDER BY e.next_attempt_at, e.id
      LIMIT $3
      FOR UPDATE OF e SKIP LOCKED) due
WHERE w.id = due.id
RETURNING w.id, w.organization_id, w.url, w.secrets, w.event_types, w.delivered_through,
          w.failed_attempts, w.disabled, w.last_error, due.due_at AS next_attempt_at";

/// `Advanced` of endpoint `$1`: progress to `$2`, due at `$3`, under the lease `$4`; never
/// back, and failures (with the last error) reset only when progress moved. The `SET`
/// expressions read the row as it was.
const ADVANCED: &str = "\
UPDATE {schema}.webhook_endpoints SET
    delivered_through = $2,
    failed_attempts = CASE WHEN $2 > delivered_through THEN 0 ELSE failed_attempts END,
    last_error = CASE WHEN $2 > delivered_through THEN NULL ELSE last_error END,
    next_attempt_at = $3
WHERE id = $1 AND next_attempt_at = $4 AND $2 >= delivered_through";

/// `Failed` of endpoint `$1`: `$2` failures, due at `$3`, last error `$4`, under the lease
/// `$5`.
const FAILED: &str = "\
UPDATE {schema}.webhook_endpoints SET failed_attempts = $2, next_attempt_at = $3, last_error = $4
WHERE id = $1 AND next_attempt_at = $5";

/// `Disabled` of endpoint `$1`: reason `$2`, `$3` failures, last error `$4`, under the lease
/// `$5` (progress and due time kept).
const DISABLED: &str = "\
UPDATE {schema}.webhook_endpoints SET disabled = $2, failed_attempts = $3, last_error = $4
WHERE id = $1 AND next_attempt_at = $5";

fn corrupt(column: &'static str) -> Error {
    Error::Corrupt { column }
}

/// A position as stored: positions are at most `i64::MAX` (a `bigint`), so a larger one is
/// the largest.
fn position_param(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn attempts_param(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

/// The kinds as stored: their names, `None` for every kind.
fn kinds_param(kinds: &Option<BTreeSet<EventKind>>) -> Option<Vec<&'static str>> {
    kinds
        .as_ref()
        .map(|kinds| kinds.iter().map(EventKind::as_str).collect())
}

/// An endpoint row of [`COLUMNS`] (or of the claim's `RETURNING`).
fn endpoint_from_row(row: &Row) -> Result<EndpointState, Error> {
    let event_types = row
        .try_get::<_, Option<Vec<String>>>("event_types")
        .map_err(|_| corrupt("event_types"))?
        .map(|names| {
            names
                .iter()
                .map(|name| EventKind::parse(name).ok_or_else(|| corrupt("event_types")))
                .collect::<Result<BTreeSet<_>, _>>()
        })
        .transpose()?;
    let delivered_through: i64 = row
        .try_get("delivered_through")
        .map_err(|_| corrupt("delivered_through"))?;
    let disabled = opt_text(row, "disabled")?
        .map(|reason| DisabledReason::parse(&reason).ok_or_else(|| corrupt("disabled")))
        .transpose()?;
    Ok(EndpointState {
        endpoint: WebhookEndpoint {
            id: EndpointId(uuid(row, "id")?),
            organization: OrganizationId(uuid(row, "organization_id")?),
            url: text(row, "url")?,
            secrets: row
                .try_get::<_, Vec<String>>("secrets")
                .map_err(|_| corrupt("secrets"))?,
            event_types,
        },
        delivered_through: u64::try_from(delivered_through)
            .map_err(|_| corrupt("delivered_through"))?,
        failed_attempts: u32_col(row, "failed_attempts")?,
        next_attempt_at: ts(row, "next_attempt_at")?,
        disabled,
        last_error: opt_text(row, "last_error")?,
    })
}

async fn create_endpoint(
    store: &PgStore,
    endpoint: &WebhookEndpoint,
    start: StartAt,
    now: Timestamp,
) -> Result<bool, Error> {
    let client = store.client().await?;
    let after = match start {
        StartAt::Latest => None,
        StartAt::After(position) => Some(position_param(position)),
    };
    let rows = query(
        &client,
        &store.q(CREATE),
        &[
            &endpoint.id.0,
            &endpoint.organization.0,
            &endpoint.url,
            &endpoint.secrets,
            &kinds_param(&endpoint.event_types),
            &after,
            &now.as_millis(),
        ],
    )
    .await?;
    let row = rows.first().ok_or_else(|| corrupt("organization_exists"))?;
    if !row.try_get::<_, bool>("organization_exists")? {
        return Err(Error::Missing(format!(
            "no organization {}",
            endpoint.organization
        )));
    }
    Ok(row.try_get("inserted")?)
}

async fn update_endpoint(store: &PgStore, endpoint: &WebhookEndpoint) -> Result<bool, Error> {
    let client = store.client().await?;
    let changed = execute(
        &client,
        &store.q(UPDATE),
        &[
            &endpoint.id.0,
            &endpoint.organization.0,
            &endpoint.url,
            &endpoint.secrets,
            &kinds_param(&endpoint.event_types),
        ],
    )
    .await?;
    Ok(changed > 0)
}

async fn set_endpoint_enabled(
    store: &PgStore,
    organization: OrganizationId,
    id: EndpointId,
    enabled: bool,
    now: Timestamp,
) -> Result<bool, Error> {
    let client = store.client().await?;
    let changed = if enabled {
        execute(
            &client,
            &store.q(ENABLE),
            &[&id.0, &organization.0, &now.as_millis()],
        )
        .await?
    } else {
        execute(
            &client,
            &store.q(DISABLE),
            &[&id.0, &organization.0, &DisabledReason::ByHost.as_str()],
        )
        .await?
    };
    Ok(changed > 0)
}

async fn delete_endpoint(
    store: &PgStore,
    organization: OrganizationId,
    id: EndpointId,
) -> Result<bool, Error> {
    let client = store.client().await?;
    Ok(execute(&client, &store.q(DELETE), &[&id.0, &organization.0]).await? > 0)
}

/// The endpoints of `organization` by id; a row this version cannot decode is left out (and
/// reported).
async fn list_endpoints(
    store: &PgStore,
    organization: OrganizationId,
) -> Result<Vec<EndpointState>, Error> {
    let client = store.client().await?;
    let rows = query(
        &client,
        &store.q(&format!(
            "SELECT {COLUMNS} FROM {{schema}}.webhook_endpoints \
             WHERE organization_id = $1 ORDER BY id"
        )),
        &[&organization.0],
    )
    .await?;
    decode_all(TABLE, &rows, endpoint_from_row)
}

/// [`CLAIM`]; the claimed rows this version cannot decode are left out (and reported), the
/// others returned in (next_attempt_at, id) order.
async fn claim_due_endpoints(
    store: &PgStore,
    now: Timestamp,
    lease_until: Timestamp,
    limit: usize,
) -> Result<Vec<EndpointState>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let client = store.client().await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(
        &client,
        &store.q(CLAIM),
        &[&now.as_millis(), &lease_until.as_millis(), &limit],
    )
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        match decode(TABLE, row, endpoint_from_row)? {
            Ok(endpoint) => claimed.push(endpoint),
            Err(unreadable) => unreadable.report_skipped(),
        }
    }
    claimed.sort_by_key(|e| (e.next_attempt_at, e.endpoint.id));
    Ok(claimed)
}

/// One conditional statement per kind of update; whether it applied.
async fn record_webhook(
    store: &PgStore,
    id: EndpointId,
    update: &WebhookUpdate,
) -> Result<bool, Error> {
    let client = store.client().await?;
    let (sql, params): (&str, &Params<'_>) = match update {
        WebhookUpdate::Advanced {
            through,
            next_attempt_at,
            leased_until,
        } => (
            ADVANCED,
            &[
                &id.0,
                &position_param(*through),
                &next_attempt_at.as_millis(),
                &leased_until.as_millis(),
            ],
        ),
        WebhookUpdate::Failed {
            failed_attempts,
            next_attempt_at,
            error,
            leased_until,
        } => (
            FAILED,
            &[
                &id.0,
                &attempts_param(*failed_attempts),
                &next_attempt_at.as_millis(),
                error,
                &leased_until.as_millis(),
            ],
        ),
        WebhookUpdate::Disabled {
            reason,
            failed_attempts,
            error,
            leased_until,
        } => (
            DISABLED,
            &[
                &id.0,
                &reason.as_str(),
                &attempts_param(*failed_attempts),
                error,
                &leased_until.as_millis(),
            ],
        ),
    };
    Ok(execute(&client, &store.q(sql), params).await? > 0)
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl WebhookStore for PgStore {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        start: StartAt,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(create_endpoint(self, endpoint, start, now).await?)
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        Ok(update_endpoint(self, endpoint).await?)
    }

    async fn set_endpoint_enabled(
        &self,
        organization: OrganizationId,
        id: EndpointId,
        enabled: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(set_endpoint_enabled(self, organization, id, enabled, now).await?)
    }

    async fn delete_endpoint(
        &self,
        organization: OrganizationId,
        id: EndpointId,
    ) -> Result<bool, StoreError> {
        Ok(delete_endpoint(self, organization, id).await?)
    }

    async fn list_endpoints(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<EndpointState>, StoreError> {
        Ok(list_endpoints(self, organization).await?)
    }

    async fn claim_due_endpoints(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<EndpointState>, StoreError> {
        Ok(claim_due_endpoints(self, now, lease_until, limit).await?)
    }

    async fn record_webhook(
        &self,
        id: EndpointId,
        update: &WebhookUpdate,
    ) -> Result<bool, StoreError> {
        Ok(record_webhook(self, id, update).await?)
    }
}
