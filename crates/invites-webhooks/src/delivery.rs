//! The delivery loop: each endpoint walks its organization's event log in position order,
//! one signed `POST` per event it subscribes to, its progress stored after every delivery so
//! a crash resumes where it stopped (contract §12).
//!
//! - **At least once, in order.** An endpoint's progress is a position; the next event is
//!   sent only after the one before it was delivered. A crash between a delivery and its
//!   record sends that event again with the same `webhook-id` (the event's id), which a
//!   receiver uses to drop the duplicate.
//! - **One endpoint's failures hold back only that endpoint.** A failed attempt schedules the
//!   endpoint again on the specification's schedule ([`next_delay`]: 5 s, 5 min, 30 min, 2 h,
//!   5 h, 10 h, 10 h), never sooner than the receiver's `Retry-After`; after the last attempt
//!   fails, the endpoint is disabled ([`DisabledReason::Exhausted`]) with its progress kept,
//!   so enabling it again resumes at the event it stopped at. `410 Gone` disables it at once.
//! - **Several deliverers share the work** (tasks, processes, machines): an endpoint is
//!   claimed with a lease ([`WebhookStore::claim_due_endpoints`]) and every record is fenced
//!   by it.
//! - **Times.** Scheduling follows the deliverer's [`Clock`]; the `webhook-timestamp` header is
//!   always the wall clock at the attempt, which is what a receiver compares with its own.

use crate::WebhookError;
use crate::destination::{EndpointUrl, Reach};
use crate::sender::{Attempt, Failure, WebhookSender, next_delay};
use crate::signing::WebhookSecret;
use invites_core::{
    Clock, DisabledReason, EndpointId, EndpointState, Event, EventKind, EventStore, OrganizationId,
    StartAt, StoreError, SystemClock, Timestamp, WebhookEndpoint, WebhookStore, WebhookUpdate,
};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A store the deliverer can use: the endpoints and the event log.
pub trait WebhookBackend: WebhookStore + EventStore {}
impl<T: WebhookStore + EventStore + ?Sized> WebhookBackend for T {}

/// How the deliverer works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// What endpoints may point at.
    pub reach: Reach,
    /// How long one attempt may take, connecting included. Default 15 s.
    pub timeout: Duration,
    /// How long a claimed endpoint is the deliverer's; it stops starting new attempts when
    /// less than `timeout` of it is left. Default 60 s.
    pub lease: Duration,
    /// Endpoints per [`WebhookDeliverer::deliver_due`] call. Default 50.
    pub endpoints_per_call: usize,
    /// Events read per endpoint and turn. Default 100.
    pub events_per_turn: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            reach: Reach::PublicOnly,
            timeout: Duration::from_secs(15),
            lease: Duration::from_secs(60),
            endpoints_per_call: 50,
            events_per_turn: 100,
        }
    }
}

/// What went wrong registering or delivering.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A value the deliverer refuses (the field and the reason).
    #[error(transparent)]
    Invalid(#[from] WebhookError),
    /// The store failed.
    #[error("webhook store: {0}")]
    Store(#[from] StoreError),
}

/// What one [`WebhookDeliverer::deliver_due`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookReport {
    /// Endpoints claimed.
    pub endpoints: u64,
    /// Events delivered (a `2xx` answer).
    pub delivered: u64,
    /// Events passed over (the endpoint does not subscribe to their kind).
    pub skipped: u64,
    /// Attempts that failed and will be tried again.
    pub failed: u64,
    /// Endpoints disabled (`410`, or the schedule exhausted).
    pub disabled: u64,
}

/// Registers endpoints and delivers events to them.
#[derive(Clone)]
pub struct WebhookDeliverer {
    store: Arc<dyn WebhookBackend>,
    sender: WebhookSender,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
}

impl fmt::Debug for WebhookDeliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookDeliverer")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WebhookDeliverer {
    /// A deliverer over `store`, scheduling by `clock`.
    ///
    /// # Errors
    /// [`WebhookError`] (field `timeout`) for a zero timeout, (field `lease`) for a lease not
    /// longer than the timeout, (field `endpoints_per_call` / `events_per_turn`) for zero.
    pub fn new(
        store: Arc<dyn WebhookBackend>,
        clock: Arc<dyn Clock>,
        config: DeliveryConfig,
    ) -> Result<Self, WebhookError> {
        if config.lease <= config.timeout {
            return Err(WebhookError::new(
                "lease",
                "must be longer than the timeout",
            ));
        }
        if config.endpoints_per_call == 0 {
            return Err(WebhookError::new(
                "endpoints_per_call",
                "must be at least 1",
            ));
        }
        if config.events_per_turn == 0 {
            return Err(WebhookError::new("events_per_turn", "must be at least 1"));
        }
        let sender = WebhookSender::new(config.reach, config.timeout)?;
        Ok(WebhookDeliverer {
            store,
            sender,
            clock,
            config,
        })
    }

    /// Registers an endpoint of `organization` (id chosen by the host): its URL is checked
    /// against the deliverer's reach, it needs one to ten secrets (newest first; every
    /// delivery is signed with each), and `event_types` `None` subscribes to every kind. It
    /// starts at `start` ([`StartAt::Latest`]: only what happens from now on). Returns `false`
    /// when the id exists (nothing changed).
    ///
    /// # Errors
    /// [`DeliveryError::Invalid`] (field `url`, `secrets` or `event_types`; nothing stored),
    /// [`DeliveryError::Store`].
    pub async fn register(
        &self,
        organization: OrganizationId,
        id: EndpointId,
        url: &str,
        secrets: &[WebhookSecret],
        event_types: Option<BTreeSet<EventKind>>,
        start: StartAt,
    ) -> Result<bool, DeliveryError> {
        let endpoint = self.endpoint(organization, id, url, secrets, event_types)?;
        Ok(self
            .store
            .create_endpoint(&endpoint, start, self.clock.now())
            .await?)
    }

    /// Replaces an endpoint's URL, secrets (a rotation: pass the new secret first and the old
    /// one after it until receivers moved on) and kinds; its progress stays. Returns whether
    /// it exists.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub async fn update(
        &self,
        organization: OrganizationId,
        id: EndpointId,
        url: &str,
        secrets: &[WebhookSecret],
        event_types: Option<BTreeSet<EventKind>>,
    ) -> Result<bool, DeliveryError> {
        let endpoint = self.endpoint(organization, id, url, secrets, event_types)?;
        Ok(self.store.update_endpoint(&endpoint).await?)
    }

    fn endpoint(
        &self,
        organization: OrganizationId,
        id: EndpointId,
        url: &str,
        secrets: &[WebhookSecret],
        event_types: Option<BTreeSet<EventKind>>,
    ) -> Result<WebhookEndpoint, WebhookError> {
        let url = EndpointUrl::parse(url, self.config.reach)?;
        if secrets.is_empty() || secrets.len() > 10 {
            return Err(WebhookError::new("secrets", "must hold 1 to 10 secrets"));
        }
        if event_types.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(WebhookError::new(
                "event_types",
                "must name at least one kind (or none, for every kind)",
            ));
        }
        Ok(WebhookEndpoint {
            id,
            organization,
            url: url.as_str().to_owned(),
            secrets: secrets.iter().map(WebhookSecret::expose).collect(),
            event_types,
        })
    }

    /// One pass: claims the endpoints that are due and have events to send, and walks each
    /// through its events until it is done, fails, or its lease runs short.
    ///
    /// # Errors
    /// [`DeliveryError::Store`] when the claim fails; a failure recording one endpoint's
    /// progress is given back after the others were served (that endpoint's lease runs out and
    /// it is claimed again).
    pub async fn deliver_due(&self) -> Result<WebhookReport, DeliveryError> {
        let now = self.clock.now();
        let lease_until = now.plus(self.config.lease);
        let claimed = self
            .store
            .claim_due_endpoints(now, lease_until, self.config.endpoints_per_call)
            .await?;
        let mut report = WebhookReport {
            endpoints: claimed.len() as u64,
            ..WebhookReport::default()
        };
        let mut first_error = None;
        for state in claimed {
            if let Err(e) = self.turn(&state, lease_until, &mut report).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    }

    /// One endpoint's turn, under the lease ending at `lease_until`.
    async fn turn(
        &self,
        state: &EndpointState,
        lease_until: Timestamp,
        report: &mut WebhookReport,
    ) -> Result<(), StoreError> {
        let ep = &state.endpoint;
        let id = ep.id;
        let usable = EndpointUrl::parse(&ep.url, self.config.reach).ok().zip(
            ep.secrets
                .iter()
                .map(|s| WebhookSecret::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .filter(|s| !s.is_empty()),
        );
        let Some((url, secrets)) = usable else {
            report.disabled += 1;
            let update = WebhookUpdate::Disabled {
                reason: DisabledReason::Exhausted,
                failed_attempts: state.failed_attempts,
                error: "the stored URL or secrets cannot be used".into(),
                leased_until: lease_until,
            };
            self.store.record_webhook(id, &update).await?;
            return Ok(());
        };
        let events = self
            .store
            .read_events(
                ep.organization,
                state.delivered_through,
                self.config.events_per_turn,
            )
            .await?;
        let mut through = state.delivered_through;
        let mut failed_attempts = state.failed_attempts;
        for event in &events {
            if !ep.subscribes(event.kind) {
                through = event.position;
                report.skipped += 1;
                continue;
            }
            if self.clock.now().plus(self.config.timeout) > lease_until {
                break;
            }
            let attempt = self
                .sender
                .send(&url, &secrets, &event.id(), wall_secs(), payload(event))
                .await;
            let (cause, retry_after) = match attempt {
                Ok(Attempt::Delivered { .. }) => {
                    report.delivered += 1;
                    through = event.position;
                    failed_attempts = 0;
                    // Progress is stored after every delivery, the lease kept.
                    self.advance(id, through, lease_until, lease_until).await?;
                    continue;
                }
                Ok(Attempt::Gone) => {
                    report.disabled += 1;
                    self.advance(id, through, lease_until, lease_until).await?;
                    let update = WebhookUpdate::Disabled {
                        reason: DisabledReason::Gone,
                        failed_attempts: failed_attempts + 1,
                        error: "the receiver answered 410 Gone".into(),
                        leased_until: lease_until,
                    };
                    self.store.record_webhook(id, &update).await?;
                    return Ok(());
                }
                Ok(Attempt::Failed { cause, retry_after }) => (describe(cause), retry_after),
                Err(e) => (e.to_string(), None),
            };
            self.advance(id, through, lease_until, lease_until).await?;
            let failed = failed_attempts + 1;
            let update = match next_delay(failed, retry_after) {
                Some(wait) => {
                    report.failed += 1;
                    WebhookUpdate::Failed {
                        failed_attempts: failed,
                        next_attempt_at: self.clock.now().plus(wait),
                        error: cause,
                        leased_until: lease_until,
                    }
                }
                None => {
                    report.disabled += 1;
                    WebhookUpdate::Disabled {
                        reason: DisabledReason::Exhausted,
                        failed_attempts: failed,
                        error: cause,
                        leased_until: lease_until,
                    }
                }
            };
            self.store.record_webhook(id, &update).await?;
            return Ok(());
        }
        // Done for this turn: the lease given back, due again at once (more events may be
        // waiting; a claim returns the endpoint only when there are).
        self.advance(id, through, self.clock.now(), lease_until)
            .await
    }

    /// Stores progress up to `through` (failures reset only if it moved), due at `due`.
    async fn advance(
        &self,
        id: EndpointId,
        through: u64,
        due: Timestamp,
        lease_until: Timestamp,
    ) -> Result<(), StoreError> {
        let update = WebhookUpdate::Advanced {
            through,
            next_attempt_at: due,
            leased_until: lease_until,
        };
        self.store.record_webhook(id, &update).await.map(|_| ())
    }
}

/// Seconds since the Unix epoch on the wall clock.
fn wall_secs() -> u64 {
    u64::try_from(SystemClock.now().as_millis() / 1000).unwrap_or(0)
}

/// The error text of a failed attempt: the cause, never a body.
fn describe(cause: Failure) -> String {
    match cause {
        Failure::Status(s) => format!("the receiver answered {s}"),
        Failure::Redirect(s) => {
            format!("the receiver redirected ({s}); redirects are not followed")
        }
        Failure::Timeout => "no answer within the timeout".into(),
        Failure::Unreachable => "the receiver could not be reached".into(),
        Failure::AddressRefused => "the receiver's address is out of reach".into(),
    }
}

/// The JSON body of one event, in the Standard Webhooks shape: `type`, `timestamp` (the
/// event's time) and `data` (the event's ids; never an address or a name).
pub fn payload(event: &Event) -> Vec<u8> {
    let mut data = serde_json::Map::new();
    data.insert("id".into(), event.id().into());
    data.insert("position".into(), event.position.into());
    data.insert(
        "organization_id".into(),
        event.organization.to_string().into(),
    );
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            data.insert(key.into(), v.into());
        }
    };
    put("api_key_id", event.actor.map(|k| k.to_string()));
    put(
        "target_kind",
        event.target.map(|t| t.kind().as_str().to_owned()),
    );
    put("target_id", event.target.map(|t| t.uuid().to_string()));
    put("user_id", event.user.map(|u| u.to_string()));
    put("invitation_id", event.invitation.map(|i| i.to_string()));
    put("batch_id", event.batch.map(|b| b.to_string()));
    put("message_id", event.message.map(|m| m.to_string()));
    put("group_id", event.group.map(|g| g.to_string()));
    put("role", event.role.clone());
    let body = serde_json::json!({
        "type": event.kind.as_str(),
        "timestamp": event.at.to_rfc3339(),
        "data": data,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}
