//! The storage port of webhook delivery (contract §12): the endpoints an organization
//! registered and each endpoint's progress through the organization's event log.
//!
//! The delivery loop lives in the `invites-webhooks` crate; it needs a store that implements
//! [`WebhookStore`] (every backend of the workspace does) and reads events through
//! [`EventStore`](crate::EventStore). The contract is shaped like the outbox's:
//!
//! - **Progress is a position.** An endpoint has handled the organization's events up to
//!   `delivered_through` (delivered, or skipped because it does not subscribe to their kind).
//!   Delivery is in position order, one event at a time, so a receiver never sees
//!   `member_added` after the `member_removed` that followed it; one endpoint's failures hold
//!   back only that endpoint.
//! - **Claims are leases.** [`claim_due_endpoints`](WebhookStore::claim_due_endpoints) sets
//!   `next_attempt_at` to the lease end; a deliverer that crashes leaves the lease to run out
//!   and the endpoint is claimed again, resuming at `delivered_through` (so an event whose
//!   delivery was not recorded is sent again: at least once, with the same `webhook-id`).
//! - **Records are fenced by the lease.** [`record_webhook`](WebhookStore::record_webhook)
//!   applies only while the endpoint still holds that claim's lease, so a deliverer whose lease
//!   ran out cannot move another's progress.

use crate::error::StoreError;
use crate::events::EventKind;
use crate::ids::{EndpointId, OrganizationId};
use crate::time::Timestamp;
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// A registered endpoint.
///
/// `Debug` shows the number of secrets, never a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id (chosen by the host).
    pub id: EndpointId,
    /// The organization whose events it receives.
    pub organization: OrganizationId,
    /// Where to `POST` (checked by the webhooks crate before it is stored).
    pub url: String,
    /// The signing secrets (`whsec_…`), newest first; every delivery is signed with each, so
    /// a host can rotate without a gap. Secrets are stored as given: the signature needs them.
    pub secrets: Vec<String>,
    /// The kinds it subscribes to; `None` for every kind.
    pub event_types: Option<BTreeSet<EventKind>>,
}

impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("organization", &self.organization)
            .field("url", &self.url)
            .field("secrets", &self.secrets.len())
            .field("event_types", &self.event_types)
            .finish()
    }
}

impl WebhookEndpoint {
    /// Whether the endpoint receives events of `kind`.
    pub fn subscribes(&self, kind: EventKind) -> bool {
        self.event_types.as_ref().is_none_or(|t| t.contains(&kind))
    }
}

/// Why an endpoint receives nothing until the host enables it again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DisabledReason {
    /// The receiver answered `410 Gone`.
    Gone,
    /// Every attempt of the retry schedule failed for one event.
    Exhausted,
    /// The host disabled it.
    ByHost,
}

impl DisabledReason {
    /// The stable storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DisabledReason::Gone => "gone",
            DisabledReason::Exhausted => "exhausted",
            DisabledReason::ByHost => "by_host",
        }
    }

    /// Parses [`DisabledReason::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            DisabledReason::Gone,
            DisabledReason::Exhausted,
            DisabledReason::ByHost,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// An endpoint with its progress.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EndpointState {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// The last position of the organization's log it has handled.
    pub delivered_through: u64,
    /// Failed attempts at the next event (0 after a success).
    pub failed_attempts: u32,
    /// When it is due (or, while claimed, when the claim's lease ends).
    pub next_attempt_at: Timestamp,
    /// Set while it is disabled.
    pub disabled: Option<DisabledReason>,
    /// The last failure, as text (a status, a timeout; never a body).
    pub last_error: Option<String>,
}

/// How a claimed endpoint's turn ended. Each applies only while the endpoint still holds the
/// claim's lease (`next_attempt_at == leased_until`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum WebhookUpdate {
    /// Events up to `through` were delivered or skipped: progress moves there (never back;
    /// `through` equal to the stored progress is allowed), failures reset if it moved, due
    /// again at `next_attempt_at` (the lease end, to keep the claim; a time before it, to
    /// give it back).
    Advanced {
        /// The new `delivered_through`.
        through: u64,
        /// When it is due again.
        next_attempt_at: Timestamp,
        /// The claim's lease end.
        leased_until: Timestamp,
    },
    /// An attempt at the event after `delivered_through` failed: count it, try again at
    /// `next_attempt_at`.
    Failed {
        /// Failed attempts at that event, this one included.
        failed_attempts: u32,
        /// When to try again.
        next_attempt_at: Timestamp,
        /// What went wrong.
        error: String,
        /// The claim's lease end.
        leased_until: Timestamp,
    },
    /// Stop sending until the host enables it again (progress is kept).
    Disabled {
        /// Why.
        reason: DisabledReason,
        /// Failed attempts at the event it stopped at.
        failed_attempts: u32,
        /// What went wrong.
        error: String,
        /// The claim's lease end.
        leased_until: Timestamp,
    },
}

/// Where a new endpoint starts in the organization's log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StartAt {
    /// After the organization's latest event: only what happens from now on.
    Latest,
    /// After this position (`0`: every event still kept).
    After(u64),
}

/// Storing webhook endpoints and their progress. See the [module docs](self).
///
/// # Contract
///
/// Every method is one atomic operation; an endpoint of another organization looks missing.
#[async_trait]
pub trait WebhookStore: Send + Sync + fmt::Debug + 'static {
    /// Store a new endpoint, enabled, due at `now`, starting at `start`. Returns `false` (and
    /// changes nothing) when the id exists.
    ///
    /// # Errors
    /// Storage failure; an unknown organization (`Backend`).
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        start: StartAt,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Replace an endpoint's URL, secrets and kinds (its progress stays). Returns whether it
    /// exists in `endpoint.organization`.
    ///
    /// # Errors
    /// Storage failure.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError>;

    /// Enable an endpoint (failures reset, due at `now`, progress kept) or disable it
    /// ([`DisabledReason::ByHost`]). Returns whether it exists.
    ///
    /// # Errors
    /// Storage failure.
    async fn set_endpoint_enabled(
        &self,
        organization: OrganizationId,
        id: EndpointId,
        enabled: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Delete an endpoint with its progress. Returns whether it existed.
    ///
    /// # Errors
    /// Storage failure.
    async fn delete_endpoint(
        &self,
        organization: OrganizationId,
        id: EndpointId,
    ) -> Result<bool, StoreError>;

    /// The endpoints of an organization, by id.
    ///
    /// # Errors
    /// Storage failure.
    async fn list_endpoints(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<EndpointState>, StoreError>;

    /// Atomically select the enabled endpoints with `next_attempt_at <= now` whose
    /// organization has an event after their `delivered_through`, ordered by
    /// (next_attempt_at, id), at most `limit`, and lease them (`next_attempt_at =
    /// lease_until`). Returns them as they were found. Concurrent claims never return the same
    /// endpoint while its lease holds.
    ///
    /// # Errors
    /// Storage failure; nothing claimed.
    async fn claim_due_endpoints(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<EndpointState>, StoreError>;

    /// Record how a claimed endpoint's turn went ([`WebhookUpdate`]). Returns whether it
    /// applied (the endpoint exists, still holds the lease, and `Advanced` does not move
    /// progress back; [`webhook_record_applies`]).
    ///
    /// # Errors
    /// Storage failure.
    async fn record_webhook(
        &self,
        id: EndpointId,
        update: &WebhookUpdate,
    ) -> Result<bool, StoreError>;
}

macro_rules! forward_webhooks {
    ($ty:ty) => {
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: WebhookStore + ?Sized> WebhookStore for $ty {
            async fn create_endpoint(
                &self,
                endpoint: &WebhookEndpoint,
                start: StartAt,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                (**self).create_endpoint(endpoint, start, now).await
            }
            async fn update_endpoint(
                &self,
                endpoint: &WebhookEndpoint,
            ) -> Result<bool, StoreError> {
                (**self).update_endpoint(endpoint).await
            }
            async fn set_endpoint_enabled(
                &self,
                organization: OrganizationId,
                id: EndpointId,
                enabled: bool,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                (**self)
                    .set_endpoint_enabled(organization, id, enabled, now)
                    .await
            }
            async fn delete_endpoint(
                &self,
                organization: OrganizationId,
                id: EndpointId,
            ) -> Result<bool, StoreError> {
                (**self).delete_endpoint(organization, id).await
            }
            async fn list_endpoints(
                &self,
                organization: OrganizationId,
            ) -> Result<Vec<EndpointState>, StoreError> {
                (**self).list_endpoints(organization).await
            }
            async fn claim_due_endpoints(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: usize,
            ) -> Result<Vec<EndpointState>, StoreError> {
                (**self).claim_due_endpoints(now, lease_until, limit).await
            }
            async fn record_webhook(
                &self,
                id: EndpointId,
                update: &WebhookUpdate,
            ) -> Result<bool, StoreError> {
                (**self).record_webhook(id, update).await
            }
        }
    };
}

forward_webhooks!(Arc<T>);
forward_webhooks!(Box<T>);

/// Whether a [`WebhookUpdate`] applies to an endpoint now holding `next_attempt_at` with
/// progress `delivered_through`: the claim's lease must still be held, and `Advanced` must
/// not move back. Every backend applies this rule.
pub fn webhook_record_applies(
    update: &WebhookUpdate,
    next_attempt_at: Timestamp,
    delivered_through: u64,
) -> bool {
    match update {
        WebhookUpdate::Advanced {
            through,
            leased_until,
            ..
        } => next_attempt_at == *leased_until && *through >= delivered_through,
        WebhookUpdate::Failed { leased_until, .. }
        | WebhookUpdate::Disabled { leased_until, .. } => next_attempt_at == *leased_until,
    }
}
