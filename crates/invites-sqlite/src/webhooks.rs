//! [`WebhookStore`] for [`SqliteStore`]: one row per endpoint in `webhook_endpoints`, with its
//! progress through the organization's event log (`invites_core::endpoints`).
//!
//! Every change goes through the single writer, so a claim (select the due endpoints, lease
//! them) is atomic without row locks, and a record's lease check and update are one
//! statement. Secrets are stored one per line, kinds comma-separated by their wire names. A row
//! this version cannot decode (a kind or a disabled reason it does not know) is left out of
//! lists and claims with a warning; the claim leases it anyway, so it moves behind the others
//! and never blocks them.

use crate::SqliteStore;
use crate::columns::{Unreadable, blob, corrupt, decode, get_ts, get_u32, get_uuid, sql_limit};
use crate::error::Error;
use async_trait::async_trait;
use invites_core::{
    DisabledReason, EndpointId, EndpointState, EventKind, OrganizationId, StartAt, StoreError,
    Timestamp, WebhookEndpoint, WebhookStore, WebhookUpdate,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::BTreeSet;

const COLUMNS: &str = "id, organization_id, url, secrets, event_types, delivered_through, \
     failed_attempts, next_attempt_at, disabled, last_error";

fn kinds_text(kinds: &Option<BTreeSet<EventKind>>) -> Option<String> {
    kinds.as_ref().map(|k| {
        k.iter()
            .map(EventKind::as_str)
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn state_from_row(row: &Row<'_>) -> rusqlite::Result<EndpointState> {
    let secrets: String = row.get(3)?;
    let kinds: Option<String> = row.get(4)?;
    let event_types = match kinds {
        None => None,
        Some(text) => Some(
            text.split(',')
                .map(|k| {
                    EventKind::parse(k)
                        .ok_or_else(|| corrupt(4, Type::Text, "an event kind".into()))
                })
                .collect::<rusqlite::Result<BTreeSet<_>>>()?,
        ),
    };
    let disabled: Option<String> = row.get(8)?;
    let disabled = disabled
        .map(|d| {
            DisabledReason::parse(&d)
                .ok_or_else(|| corrupt(8, Type::Text, "a disabled reason".into()))
        })
        .transpose()?;
    let through: i64 = row.get(5)?;
    Ok(EndpointState {
        endpoint: WebhookEndpoint {
            id: EndpointId(get_uuid(row, 0)?),
            organization: OrganizationId(get_uuid(row, 1)?),
            url: row.get(2)?,
            secrets: secrets.lines().map(str::to_owned).collect(),
            event_types,
        },
        delivered_through: u64::try_from(through)
            .map_err(|_| corrupt(5, Type::Integer, "a position".into()))?,
        failed_attempts: get_u32(row, 6)?,
        next_attempt_at: get_ts(row, 7)?,
        disabled,
        last_error: row.get(9)?,
    })
}

fn create(
    conn: &Connection,
    e: &WebhookEndpoint,
    start: StartAt,
    now: Timestamp,
) -> Result<bool, Error> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT event_seq FROM organizations WHERE id = ?1")?
        .query_row(params![blob(e.organization.0)], |r| r.get(0))
        .optional()?;
    let Some(seq) = seq else {
        return Err(Error::Missing(format!(
            "no organization {}",
            e.organization
        )));
    };
    let through = match start {
        StartAt::Latest => seq,
        StartAt::After(p) => i64::try_from(p).unwrap_or(i64::MAX),
    };
    let n = conn
        .prepare_cached(&format!(
            "INSERT INTO webhook_endpoints ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, NULL, NULL) ON CONFLICT (id) DO NOTHING"
        ))?
        .execute(params![
            blob(e.id.0),
            blob(e.organization.0),
            e.url,
            e.secrets.join("\n"),
            kinds_text(&e.event_types),
            through,
            now.as_millis(),
        ])?;
    Ok(n == 1)
}

fn update(conn: &Connection, e: &WebhookEndpoint) -> Result<bool, Error> {
    let n = conn
        .prepare_cached(
            "UPDATE webhook_endpoints SET url = ?3, secrets = ?4, event_types = ?5 \
             WHERE id = ?1 AND organization_id = ?2",
        )?
        .execute(params![
            blob(e.id.0),
            blob(e.organization.0),
            e.url,
            e.secrets.join("\n"),
            kinds_text(&e.event_types),
        ])?;
    Ok(n == 1)
}

fn set_enabled(
    conn: &Connection,
    organization: OrganizationId,
    id: EndpointId,
    enabled: bool,
    now: Timestamp,
) -> Result<bool, Error> {
    let n = if enabled {
        conn.prepare_cached(
            "UPDATE webhook_endpoints SET disabled = NULL, failed_attempts = 0, \
             next_attempt_at = ?3 WHERE id = ?1 AND organization_id = ?2",
        )?
        .execute(params![blob(id.0), blob(organization.0), now.as_millis()])?
    } else {
        conn.prepare_cached(
            "UPDATE webhook_endpoints SET disabled = ?3 WHERE id = ?1 AND organization_id = ?2",
        )?
        .execute(params![
            blob(id.0),
            blob(organization.0),
            DisabledReason::ByHost.as_str()
        ])?
    };
    Ok(n == 1)
}

fn delete(conn: &Connection, organization: OrganizationId, id: EndpointId) -> Result<bool, Error> {
    let n = conn
        .prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?1 AND organization_id = ?2")?
        .execute(params![blob(id.0), blob(organization.0)])?;
    Ok(n == 1)
}

fn list(conn: &Connection, organization: OrganizationId) -> Result<Vec<EndpointState>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE organization_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query(params![blob(organization.0)])?;
    Ok(crate::columns::decode_all(
        "webhook_endpoints",
        rows,
        state_from_row,
    )?)
}

fn claim(
    conn: &Connection,
    now: Timestamp,
    lease_until: Timestamp,
    limit: usize,
) -> Result<Vec<EndpointState>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut found: Vec<(Vec<u8>, Result<EndpointState, Unreadable>)> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM webhook_endpoints e \
             WHERE disabled IS NULL AND next_attempt_at <= ?1 \
             AND {has_events} \
             ORDER BY next_attempt_at, id LIMIT ?2",
            has_events = crate::events::HAS_EVENTS_AFTER_SQL,
        ))?;
        let mut rows = stmt.query(params![now.as_millis(), sql_limit(limit)])?;
        while let Some(row) = rows.next()? {
            let id: Vec<u8> = row.get(0)?;
            found.push((id, decode("webhook_endpoints", row, state_from_row)?));
        }
    }
    let mut lease =
        conn.prepare_cached("UPDATE webhook_endpoints SET next_attempt_at = ?2 WHERE id = ?1")?;
    let mut out = Vec::with_capacity(found.len());
    for (id, state) in found {
        lease.execute(params![id, lease_until.as_millis()])?;
        match state {
            Ok(s) => out.push(s),
            Err(unreadable) => unreadable.report_skipped(),
        }
    }
    Ok(out)
}

fn record(conn: &Connection, id: EndpointId, update: &WebhookUpdate) -> Result<bool, Error> {
    let n = match update {
        WebhookUpdate::Advanced {
            through,
            next_attempt_at,
            leased_until,
        } => conn
            .prepare_cached(
                "UPDATE webhook_endpoints SET \
                 failed_attempts = CASE WHEN ?2 > delivered_through THEN 0 ELSE failed_attempts END, \
                 last_error = CASE WHEN ?2 > delivered_through THEN NULL ELSE last_error END, \
                 delivered_through = ?2, next_attempt_at = ?3 \
                 WHERE id = ?1 AND next_attempt_at = ?4 AND ?2 >= delivered_through",
            )?
            .execute(params![
                blob(id.0),
                i64::try_from(*through).unwrap_or(i64::MAX),
                next_attempt_at.as_millis(),
                leased_until.as_millis(),
            ])?,
        WebhookUpdate::Failed {
            failed_attempts,
            next_attempt_at,
            error,
            leased_until,
        } => conn
            .prepare_cached(
                "UPDATE webhook_endpoints SET failed_attempts = ?2, next_attempt_at = ?3, \
                 last_error = ?4 WHERE id = ?1 AND next_attempt_at = ?5",
            )?
            .execute(params![
                blob(id.0),
                failed_attempts,
                next_attempt_at.as_millis(),
                error,
                leased_until.as_millis(),
            ])?,
        WebhookUpdate::Disabled {
            reason,
            failed_attempts,
            error,
            leased_until,
        } => conn
            .prepare_cached(
                "UPDATE webhook_endpoints SET disabled = ?2, failed_attempts = ?3, \
                 last_error = ?4 WHERE id = ?1 AND next_attempt_at = ?5",
            )?
            .execute(params![
                blob(id.0),
                reason.as_str(),
                failed_attempts,
                error,
                leased_until.as_millis(),
            ])?,
    };
    Ok(n == 1)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        start: StartAt,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let endpoint = endpoint.clone();
        self.write(move |c| create(c, &endpoint, start, now)).await
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        let endpoint = endpoint.clone();
        self.write(move |c| update(c, &endpoint)).await
    }

    async fn set_endpoint_enabled(
        &self,
        organization: OrganizationId,
        id: EndpointId,
        enabled: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write(move |c| set_enabled(c, organization, id, enabled, now))
            .await
    }

    async fn delete_endpoint(
        &self,
        organization: OrganizationId,
        id: EndpointId,
    ) -> Result<bool, StoreError> {
        self.write(move |c| delete(c, organization, id)).await
    }

    async fn list_endpoints(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<EndpointState>, StoreError> {
        self.run(move |c| list(c, organization)).await
    }

    async fn claim_due_endpoints(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<EndpointState>, StoreError> {
        self.write(move |c| claim(c, now, lease_until, limit)).await
    }

    async fn record_webhook(
        &self,
        id: EndpointId,
        update: &WebhookUpdate,
    ) -> Result<bool, StoreError> {
        let update = update.clone();
        self.write(move |c| record(c, id, &update)).await
    }
}
