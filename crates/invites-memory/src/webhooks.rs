//! [`WebhookStore`] for [`MemoryStore`]: endpoints with their progress in one map.

use crate::MemoryStore;
use async_trait::async_trait;
use invites_core::{
    DisabledReason, EndpointId, EndpointState, OrganizationId, StartAt, StoreError, Timestamp,
    WebhookEndpoint, WebhookStore, WebhookUpdate, webhook_record_applies,
};

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        start: StartAt,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if !s.orgs.contains_key(&endpoint.organization) {
            return Err(StoreError::backend(format!(
                "no organization {}",
                endpoint.organization
            )));
        }
        if s.endpoints.contains_key(&endpoint.id) {
            return Ok(false);
        }
        let delivered_through = match start {
            StartAt::Latest => s
                .event_seq
                .get(&endpoint.organization)
                .copied()
                .unwrap_or(0),
            StartAt::After(p) => p,
        };
        s.endpoints.insert(
            endpoint.id,
            EndpointState {
                endpoint: endpoint.clone(),
                delivered_through,
                failed_attempts: 0,
                next_attempt_at: now,
                disabled: None,
                last_error: None,
            },
        );
        Ok(true)
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        let mut s = self.lock();
        Ok(match s.endpoints.get_mut(&endpoint.id) {
            Some(e) if e.endpoint.organization == endpoint.organization => {
                e.endpoint = endpoint.clone();
                true
            }
            _ => false,
        })
    }

    async fn set_endpoint_enabled(
        &self,
        organization: OrganizationId,
        id: EndpointId,
        enabled: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let Some(e) = s
            .endpoints
            .get_mut(&id)
            .filter(|e| e.endpoint.organization == organization)
        else {
            return Ok(false);
        };
        if enabled {
            e.disabled = None;
            e.failed_attempts = 0;
            e.next_attempt_at = now;
        } else {
            e.disabled = Some(DisabledReason::ByHost);
        }
        Ok(true)
    }

    async fn delete_endpoint(
        &self,
        organization: OrganizationId,
        id: EndpointId,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let found = s
            .endpoints
            .get(&id)
            .is_some_and(|e| e.endpoint.organization == organization);
        if found {
            s.endpoints.remove(&id);
        }
        Ok(found)
    }

    async fn list_endpoints(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<EndpointState>, StoreError> {
        let s = self.lock();
        Ok(s.endpoints
            .values()
            .filter(|e| e.endpoint.organization == organization)
            .cloned()
            .collect())
    }

    async fn claim_due_endpoints(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<EndpointState>, StoreError> {
        let mut s = self.lock();
        let mut due: Vec<(Timestamp, EndpointId)> = s
            .endpoints
            .values()
            .filter(|e| e.disabled.is_none() && e.next_attempt_at <= now)
            .filter(|e| {
                let org = e.endpoint.organization;
                s.events
                    .range((org, e.delivered_through.saturating_add(1))..=(org, u64::MAX))
                    .next()
                    .is_some()
            })
            .map(|e| (e.next_attempt_at, e.endpoint.id))
            .collect();
        due.sort_unstable();
        due.truncate(limit);
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            let e = s.endpoints.get_mut(&id).expect("just listed");
            out.push(e.clone());
            e.next_attempt_at = lease_until;
        }
        Ok(out)
    }

    async fn record_webhook(
        &self,
        id: EndpointId,
        update: &WebhookUpdate,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let Some(e) = s.endpoints.get_mut(&id) else {
            return Ok(false);
        };
        if !webhook_record_applies(update, e.next_attempt_at, e.delivered_through) {
            return Ok(false);
        }
        match update {
            WebhookUpdate::Advanced {
                through,
                next_attempt_at,
                ..
            } => {
                if *through > e.delivered_through {
                    e.delivered_through = *through;
                    e.failed_attempts = 0;
                    e.last_error = None;
                }
                e.next_attempt_at = *next_attempt_at;
            }
            WebhookUpdate::Failed {
                failed_attempts,
                next_attempt_at,
                error,
                ..
            } => {
                e.failed_attempts = *failed_attempts;
                e.next_attempt_at = *next_attempt_at;
                e.last_error = Some(error.clone());
            }
            WebhookUpdate::Disabled {
                reason,
                failed_attempts,
                error,
                ..
            } => {
                e.disabled = Some(*reason);
                e.failed_attempts = *failed_attempts;
                e.last_error = Some(error.clone());
            }
        }
        Ok(true)
    }
}
