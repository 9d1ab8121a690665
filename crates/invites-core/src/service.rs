//! [`InviteService`]: the rules of bulk invites over the ports.

use crate::error::{ErrorCode, InviteError, StoreError};
use crate::ids::{BatchId, InvitationId, MessageId, TargetId, UserId};
use crate::mail::{
    BatchEmail, DefaultRenderer, EmailMessage, EmailRenderer, EmailTarget, Mailer, sanitize_header,
};
use crate::principal::Principal;
use crate::random::{AcceptToken, OsRandom, RandomSource};
use crate::request::{BulkInviteRequest, InviteMethod, ValidatedRequest};
use crate::response::{BulkInviteResponse, EmailReport, EmailStatus, OutcomeCode, TargetResult};
use crate::store::{
    AcceptBatch, AcceptFact, AddFact, AddMembers, BatchRecord, CreateInvitations, DeliveryUpdate,
    IdempotencyBegin, IdempotencyState, InvitationFilter, InvitationQuery, InvitationRecord,
    InvitationStatus, InviteFact, MembershipStore, MessageStatus, NewBatch, NewUser, OutboxMessage,
    RevokeFact, RotateBatch, RotateFact,
};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::values::{Email, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How the outbox retries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeliveryPolicy {
    /// Wait after the first failed attempt; doubles each time.
    pub base_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
    /// How long a claimed message is hidden from other deliverers (and how long after a crash
    /// an undelivered message waits before `deliver_due` picks it up).
    pub lease: Duration,
    /// Messages per `deliver_due` call.
    pub batch_size: usize,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            base_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 8,
            lease: Duration::from_secs(60),
            batch_size: 100,
        }
    }
}

impl DeliveryPolicy {
    /// The wait after the `attempts`-th failed attempt: `base * 2^(attempts-1)`, capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The wait after the `attempts`-th failed attempt when the mailer hinted `retry_after`:
    /// the [`backoff`](DeliveryPolicy::backoff), or the hint if that is longer, but never
    /// more than `max_backoff` (a hint cannot park a message beyond the policy).
    pub fn retry_wait(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(attempts);
        retry_after.map_or(backoff, |hint| backoff.max(hint.min(self.max_backoff)))
    }
}

/// A configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(&'static str);

/// Configuration of an [`InviteService`].
#[derive(Clone)]
pub struct InviteConfig {
    accept_url_base: String,
    /// How long an invitation can be accepted. Default 7 days.
    pub invitation_ttl: Duration,
    /// How long an idempotency key remembers its response. Default 24 hours.
    pub idempotency_ttl: Duration,
    /// After how long an in-progress idempotency record (a crashed request) can be taken over.
    /// Default 60 seconds.
    pub idempotency_stale_after: Duration,
    /// Least time between two sends of one batch. Default 60 seconds.
    pub resend_interval: Duration,
    /// Outbox retry policy.
    pub delivery: DeliveryPolicy,
    /// The clock. Default [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// The random source for ids and tokens. Default [`OsRandom`].
    pub random: Arc<dyn RandomSource>,
    /// The email renderer. Default [`DefaultRenderer`].
    pub renderer: Arc<dyn EmailRenderer>,
}

impl fmt::Debug for InviteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteConfig")
            .field("accept_url_base", &self.accept_url_base)
            .field("invitation_ttl", &self.invitation_ttl)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("resend_interval", &self.resend_interval)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl InviteConfig {
    /// Defaults, with accept links `"{accept_url_base}?token=…"` (or `&token=` when the base
    /// already has a query).
    ///
    /// # Errors
    /// [`ConfigError`] unless the base is an `http://` or `https://` URL without spaces,
    /// control characters or a fragment.
    pub fn new(accept_url_base: impl Into<String>) -> Result<Self, ConfigError> {
        let base = accept_url_base.into();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ConfigError(
                "accept_url_base must start with https:// or http://",
            ));
        }
        if base.chars().any(|c| c.is_control() || c.is_whitespace()) || base.contains('#') {
            return Err(ConfigError(
                "accept_url_base must not hold spaces, control characters or '#'",
            ));
        }
        Ok(InviteConfig {
            accept_url_base: base,
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_stale_after: Duration::from_secs(60),
            resend_interval: Duration::from_secs(60),
            delivery: DeliveryPolicy::default(),
            clock: Arc::new(SystemClock),
            random: Arc::new(OsRandom),
            renderer: Arc::new(DefaultRenderer::default()),
        })
    }

    /// With another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// With another random source.
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// With another renderer.
    pub fn with_renderer(mut self, renderer: Arc<dyn EmailRenderer>) -> Self {
        self.renderer = renderer;
        self
    }

    /// With another invitation time to live.
    pub fn with_invitation_ttl(mut self, ttl: Duration) -> Self {
        self.invitation_ttl = ttl;
        self
    }

    /// The accept link for a token.
    pub fn accept_url(&self, token: &AcceptToken) -> String {
        let sep = if self.accept_url_base.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}token={}", self.accept_url_base, token.expose())
    }
}

/// The bulk invite service. Cheap to share (`Arc` it, or clone the ports into several).
///
/// See the crate docs for an end-to-end example.
#[derive(Clone)]
pub struct InviteService {
    store: Arc<dyn MembershipStore>,
    mailer: Arc<dyn Mailer>,
    config: InviteConfig,
}

impl fmt::Debug for InviteService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteService")
            .field("store", &self.store)
            .field("mailer", &self.mailer)
            .field("config", &self.config)
            .finish()
    }
}

/// What one `deliver_due` call did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Messages handed to the mailer.
    pub sent: usize,
    /// Transient failures, rescheduled.
    pub retried: usize,
    /// Given up.
    pub failed: usize,
    /// Not sent: no live invitation left.
    pub cancelled: usize,
    /// Messages skipped because the store failed; they are retried once their lease ends.
    pub store_errors: usize,
}

/// One invitation as shown on an accept page.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PreviewItem {
    /// The invitation.
    pub invite_id: InvitationId,
    /// Its target.
    pub target: TargetId,
    /// The target's name.
    pub target_name: String,
    /// Role to be granted.
    pub role: Role,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// What a token opens (read-only).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvitationPreview {
    /// The batch.
    pub batch_id: BatchId,
    /// The invited address.
    pub email: Email,
    /// The live invitations, in request order.
    pub invitations: Vec<PreviewItem>,
}

/// One invitation's result of accepting.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AcceptResult {
    /// The invitation.
    pub invite_id: InvitationId,
    /// The target, named like in bulk results.
    #[serde(flatten)]
    pub result: TargetResult,
}

/// The result of accepting a token.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AcceptResponse {
    /// The user (found or created), now verified.
    pub user_id: UserId,
    /// Whether accepting created the user.
    pub user_created: bool,
    /// One result per invitation of the batch.
    pub results: Vec<AcceptResult>,
}

/// The result of revoking.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The invitation.
    pub invite_id: InvitationId,
    /// False when it was already revoked, superseded or replaced (revoking is harmless twice).
    pub changed: bool,
}

/// The result of a resend.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ResendResponse {
    /// The batch.
    pub batch_id: BatchId,
    /// Invitations whose expiry was reset.
    pub renewed: usize,
    /// The new message.
    pub email: EmailReport,
}

/// An invitation as listed (never with a token or hash).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvitationView {
    /// Id.
    pub id: InvitationId,
    /// Batch.
    pub batch_id: BatchId,
    /// Target.
    pub target: TargetId,
    /// Target name.
    pub target_name: String,
    /// Address.
    pub email: Email,
    /// Role.
    pub role: Role,
    /// Status at the time of listing (`expired` derived from the clock).
    pub status: InvitationStatus,
    /// Created.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Status of the batch's latest email (`failed` when delivery was given up); `None` if
    /// the batch has no message.
    pub delivery: Option<MessageStatus>,
}

/// One outbox message of a batch, as shown to the host (never with its link).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MessageView {
    /// The stable message id.
    pub id: MessageId,
    /// Queued, sent, failed or cancelled.
    pub status: MessageStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, as text.
    pub last_error: Option<String>,
    /// When the message was stored.
    pub created_at: Timestamp,
}

/// A batch with its invitations and its messages.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BatchView {
    /// The batch.
    pub batch_id: BatchId,
    /// The invited address.
    pub email: Email,
    /// Created.
    pub created_at: Timestamp,
    /// Last (re)sent.
    pub last_sent_at: Timestamp,
    /// Its invitations, status as of now.
    pub invitations: Vec<InvitationView>,
    /// Its messages, oldest first (a resend adds one).
    pub messages: Vec<MessageView>,
}

/// A page of invitations.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvitationPage {
    /// The items.
    pub items: Vec<InvitationView>,
    /// Pass to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

const MAX_PAGE: usize = 500;

impl InviteService {
    /// A service over a store and a mailer.
    pub fn new(
        store: Arc<dyn MembershipStore>,
        mailer: Arc<dyn Mailer>,
        config: InviteConfig,
    ) -> Self {
        InviteService {
            store,
            mailer,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InviteConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MembershipStore> {
        &self.store
    }

    fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    /// Invites one user to many websites or groups (SPEC §2–§5).
    ///
    /// Each target is its own atomic unit; the response has one result per requested id, in
    /// request order. In email mode one consolidated message is stored in the outbox with the
    /// invitations and delivered at once; on a mailer error it stays queued for
    /// [`InviteService::deliver_due`].
    ///
    /// The permission check (`group_ids` need a global key) comes before the value checks,
    /// so a scoped key learns nothing from group requests.
    ///
    /// # Errors
    /// [`InviteError::Validation`] with the codes of SPEC §2, or [`InviteError::Forbidden`]
    /// with `global_key_required`. Nothing is written in either case. Store failures are
    /// per-target `internal_error` results, not errors.
    pub async fn bulk_invite(
        &self,
        principal: &Principal,
        request: BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        let valid = self.check(principal, &request)?;
        Ok(self.execute(principal, &valid).await)
    }

    /// [`InviteService::bulk_invite`] with an idempotency key (the `Idempotency-Key` header).
    ///
    /// For the same principal (organization and key id) and key within the idempotency time
    /// to live, the same request returns the stored response and changes nothing; another
    /// request gets `idempotency_conflict`; while the first is still running, a repeat gets
    /// `idempotency_in_progress`. "The same request" means the same request as sent (before
    /// normalisation): `" Ann@x.com"` and `"ann@x.com"` under one key are a conflict, which is
    /// the safe reading of a client reusing a key. Requests that fail validation are not
    /// recorded. A request
    /// that crashed mid-way leaves its key in progress until `idempotency_stale_after`, after
    /// which a retry executes again (every per-target operation is safe to repeat).
    ///
    /// # Errors
    /// As `bulk_invite`, plus `invalid_idempotency_key` (empty, over 255 characters, or not
    /// printable ASCII), `idempotency_conflict`, `idempotency_in_progress`, and
    /// [`InviteError::Unavailable`] if the idempotency record cannot be read or written.
    pub async fn bulk_invite_idempotent(
        &self,
        principal: &Principal,
        idempotency_key: &str,
        request: BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        if idempotency_key.is_empty()
            || idempotency_key.len() > 255
            || !idempotency_key.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(InviteError::validation(
                ErrorCode::InvalidIdempotencyKey,
                "idempotency_key",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        let valid = self.check(principal, &request)?;
        let body = serde_json::to_vec(&request).expect("a request always serializes");
        let fingerprint: [u8; 32] = Sha256::digest(&body).into();
        let now = self.now();
        let begin = IdempotencyBegin {
            organization: principal.organization,
            key_id: principal.key_id,
            key: idempotency_key.to_owned(),
            fingerprint,
            expired_before: minus(now, self.config.idempotency_ttl),
            stale_before: minus(now, self.config.idempotency_stale_after),
            now,
        };
        match self.store.idempotency_begin(&begin).await? {
            IdempotencyState::Started => {}
            IdempotencyState::InProgress { fingerprint: f }
            | IdempotencyState::Completed { fingerprint: f, .. }
                if f != fingerprint =>
            {
                return Err(InviteError::Conflict {
                    code: ErrorCode::IdempotencyConflict,
                    reason: "the idempotency key was already used with a different request".into(),
                });
            }
            IdempotencyState::InProgress { .. } => {
                return Err(InviteError::Conflict {
                    code: ErrorCode::IdempotencyInProgress,
                    reason: "a request with this idempotency key is still being processed".into(),
                });
            }
            IdempotencyState::Completed { response, .. } => {
                return serde_json::from_str(&response).map_err(|e| InviteError::Unavailable {
                    source: StoreError::backend(e),
                });
            }
        }
        let response = self.execute(principal, &valid).await;
        let json = serde_json::to_string(&response).expect("a response always serializes");
        // If this write fails the key stays in progress until it is stale; the response is
        // still true, so return it.
        let _ = self
            .store
            .idempotency_finish(
                principal.organization,
                principal.key_id,
                idempotency_key,
                Some(&json),
            )
            .await;
        Ok(response)
    }

    fn check(
        &self,
        principal: &Principal,
        request: &BulkInviteRequest,
    ) -> Result<ValidatedRequest, InviteError> {
        if request.group_ids.is_some() && request.website_ids.is_none() && !principal.is_global() {
            return Err(InviteError::Forbidden {
                code: ErrorCode::GlobalKeyRequired,
                reason: "group_ids require a global API key".into(),
            });
        }
        request.validate()
    }

    async fn execute(&self, principal: &Principal, req: &ValidatedRequest) -> BulkInviteResponse {
        // Authorization is decided here, before the store sees anything.
        let allowed: Vec<TargetId> = req
            .targets
            .iter()
            .copied()
            .filter(|t| principal.reaches(*t))
            .collect();
        match req.method {
            InviteMethod::Direct => self.direct(principal, req, allowed).await,
            InviteMethod::Email => self.email(principal, req, allowed).await,
        }
    }

    /// Places per-target results for the allowed targets back into request order, with
    /// `forbidden` for the others.
    fn assemble(
        req: &ValidatedRequest,
        mut allowed_results: Vec<(TargetId, TargetResult)>,
    ) -> Vec<TargetResult> {
        allowed_results.reverse();
        req.targets
            .iter()
            .map(|t| match allowed_results.last() {
                Some((id, _)) if id == t => {
                    allowed_results.pop().map(|(_, r)| r).expect("just checked")
                }
                _ => TargetResult::new(*t, OutcomeCode::Forbidden),
            })
            .collect()
    }

    async fn direct(
        &self,
        principal: &Principal,
        req: &ValidatedRequest,
        allowed: Vec<TargetId>,
    ) -> BulkInviteResponse {
        let now = self.now();
        let cmd = AddMembers {
            organization: principal.organization,
            email: req.email.clone(),
            new_user: NewUser {
                // Time-ordered, so the memberships of new users append in the store's indexes.
                id: UserId::time_ordered(now, self.config.random.uuid()),
                first_name: req.first_name.clone(),
                last_name: req.last_name.clone(),
            },
            role: req.role,
            targets: allowed,
            now,
        };
        let (user, results) = if cmd.targets.is_empty() {
            (
                self.store
                    .find_user(&req.email)
                    .await
                    .ok()
                    .flatten()
                    .map(|u| (u.id, false)),
                Vec::new(),
            )
        } else {
            match self.store.add_members(&cmd).await {
                Ok(out) => {
                    let user = out.user.map(|u| (u.id, u.created));
                    let results = cmd
                        .targets
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let code = match out.targets.get(i) {
                                Some(Ok(AddFact::Added)) => OutcomeCode::Added,
                                Some(Ok(AddFact::AlreadyMember { .. })) => {
                                    OutcomeCode::AlreadyMember
                                }
                                Some(Ok(AddFact::OrgMember)) => OutcomeCode::HasOrgAccess,
                                Some(Ok(AddFact::TargetNotFound)) => OutcomeCode::TargetNotFound,
                                Some(Err(_)) | None => OutcomeCode::InternalError,
                            };
                            let mut r = TargetResult::new(*t, code);
                            if let (true, Some((id, _))) = (code == OutcomeCode::Added, user) {
                                r = r.with_user(id);
                            }
                            (*t, r)
                        })
                        .collect();
                    (user, results)
                }
                Err(_) => {
                    // Nothing of the batch is stored: every allowed target failed.
                    let user = self
                        .store
                        .find_user(&req.email)
                        .await
                        .ok()
                        .flatten()
                        .map(|u| (u.id, false));
                    let results = cmd
                        .targets
                        .iter()
                        .map(|t| (*t, TargetResult::new(*t, OutcomeCode::InternalError)))
                        .collect();
                    (user, results)
                }
            }
        };
        let results = Self::assemble(req, results);
        BulkInviteResponse::new(
            InviteMethod::Direct,
            user.map(|u| u.0),
            user.is_some_and(|u| u.1),
            results,
            None,
        )
    }

    async fn email(
        &self,
        principal: &Principal,
        req: &ValidatedRequest,
        allowed: Vec<TargetId>,
    ) -> BulkInviteResponse {
        let now = self.now();
        let rng = &self.config.random;
        let token = AcceptToken::generate(rng.as_ref());
        // Batches are read back ordered by (created_at, id) and every invitation of a batch
        // shares `created_at`, so ascending ids keep previews and accept results in request
        // order (as `InvitationPreview` documents). The ids are time-ordered (see
        // `InvitationId::time_ordered`), so a batch's invitations sit together in a store.
        let mut invitation_ids: Vec<InvitationId> = allowed
            .iter()
            .map(|_| InvitationId::time_ordered(now, rng.uuid()))
            .collect();
        invitation_ids.sort_unstable();
        let cmd = CreateInvitations {
            organization: principal.organization,
            email: req.email.clone(),
            role: req.role,
            first_name: req.first_name.clone(),
            last_name: req.last_name.clone(),
            targets: allowed.iter().copied().zip(invitation_ids).collect(),
            batch: NewBatch {
                id: BatchId(rng.uuid()),
                token_hash: token.hash(),
                message_id: MessageId(rng.uuid()),
                accept_url: self.config.accept_url(&token),
                message_due_at: now.plus(self.config.delivery.lease),
            },
            expires_at: now.plus(self.config.invitation_ttl),
            now,
        };
        let (user, results, invited) = if cmd.targets.is_empty() {
            (
                self.store
                    .find_user(&req.email)
                    .await
                    .ok()
                    .flatten()
                    .map(|u| u.id),
                Vec::new(),
                0,
            )
        } else {
            match self.store.create_invitations(&cmd).await {
                Ok(out) => {
                    let mut invited = 0;
                    let results = cmd
                        .targets
                        .iter()
                        .enumerate()
                        .map(|(i, (t, inv))| {
                            let code = match out.targets.get(i) {
                                Some(Ok(InviteFact::Invited)) => OutcomeCode::Invited,
                                Some(Ok(InviteFact::AlreadyMember { .. })) => {
                                    OutcomeCode::AlreadyMember
                                }
                                Some(Ok(InviteFact::OrgMember)) => OutcomeCode::HasOrgAccess,
                                Some(Ok(InviteFact::AlreadyInvited { .. })) => {
                                    OutcomeCode::AlreadyInvited
                                }
                                Some(Ok(InviteFact::TargetNotFound)) => OutcomeCode::TargetNotFound,
                                Some(Err(_)) | None => OutcomeCode::InternalError,
                            };
                            let mut r = TargetResult::new(*t, code);
                            if code == OutcomeCode::Invited {
                                invited += 1;
                                r = r.with_invite(*inv);
                            }
                            (*t, r)
                        })
                        .collect();
                    (out.existing_user, results, invited)
                }
                Err(_) => {
                    let user = self
                        .store
                        .find_user(&req.email)
                        .await
                        .ok()
                        .flatten()
                        .map(|u| u.id);
                    let results = cmd
                        .targets
                        .iter()
                        .map(|(t, _)| (*t, TargetResult::new(*t, OutcomeCode::InternalError)))
                        .collect();
                    (user, results, 0)
                }
            }
        };
        let email = if invited == 0 {
            EmailReport {
                status: EmailStatus::NotSent,
                batch_id: None,
            }
        } else {
            let message = OutboxMessage {
                id: cmd.batch.message_id,
                batch_id: cmd.batch.id,
                organization: principal.organization,
                recipient: req.email.clone(),
                accept_url: Some(cmd.batch.accept_url.clone()),
                status: crate::store::MessageStatus::Queued,
                attempts: 0,
                next_attempt_at: cmd.batch.message_due_at,
                created_at: now,
                last_error: None,
            };
            let status = self.deliver_now(&message).await;
            EmailReport {
                status,
                batch_id: Some(cmd.batch.id),
            }
        };
        let results = Self::assemble(req, results);
        BulkInviteResponse::new(InviteMethod::Email, user, false, results, Some(email))
    }

    /// Delivers a freshly stored message; the response reports `sent` only when the mailer
    /// accepted it.
    async fn deliver_now(&self, message: &OutboxMessage) -> EmailStatus {
        match self.deliver(message, self.now()).await {
            Ok(Delivered::Sent) => EmailStatus::Sent,
            Ok(Delivered::Failed) => EmailStatus::Failed,
            Ok(Delivered::Cancelled) => EmailStatus::NotSent,
            Ok(Delivered::Retry) | Err(_) => EmailStatus::Queued,
        }
    }

    /// Renders the message of a batch from its live invitations.
    fn render(
        &self,
        batch: &BatchRecord,
        message: &OutboxMessage,
        now: Timestamp,
    ) -> Option<EmailMessage> {
        let mut live: Vec<&InvitationRecord> = batch
            .invitations
            .iter()
            .filter(|i| i.is_live(now))
            .collect();
        // Listed by name (then id), so the email reads the same whatever the ids are.
        live.sort_by(|a, b| (&a.target_name, a.target).cmp(&(&b.target_name, b.target)));
        let accept_url = message.accept_url.clone()?;
        let expires_at = live.iter().map(|i| i.expires_at).min()?;
        let email = BatchEmail {
            to: batch.email.clone(),
            first_name: live.iter().find_map(|i| i.first_name.clone()),
            targets: live
                .iter()
                .map(|i| EmailTarget {
                    kind: i.target.kind(),
                    name: i.target_name.clone(),
                    role: i.role,
                })
                .collect(),
            expires_at,
            accept_url,
        };
        let rendered = self.config.renderer.render(&email);
        Some(EmailMessage {
            id: message.id,
            batch_id: batch.id,
            to: batch.email.clone(),
            subject: sanitize_header(&rendered.subject),
            text: rendered.text,
            html: rendered.html,
        })
    }

    async fn deliver(
        &self,
        message: &OutboxMessage,
        now: Timestamp,
    ) -> Result<Delivered, StoreError> {
        let batch = self
            .store
            .get_batch(message.organization, message.batch_id)
            .await?;
        let rendered = batch.as_ref().and_then(|b| self.render(b, message, now));
        let Some(rendered) = rendered else {
            self.store
                .record_delivery(message.id, DeliveryUpdate::Cancelled)
                .await?;
            return Ok(Delivered::Cancelled);
        };
        let attempts = message.attempts + 1;
        match self.mailer.send(&rendered).await {
            Ok(()) => {
                self.store
                    .record_delivery(message.id, DeliveryUpdate::Sent { attempts })
                    .await?;
                Ok(Delivered::Sent)
            }
            Err(e) if e.is_retryable() && attempts < self.config.delivery.max_attempts => {
                let next_attempt_at =
                    now.plus(self.config.delivery.retry_wait(attempts, e.retry_after()));
                self.store
                    .record_delivery(
                        message.id,
                        DeliveryUpdate::Retry {
                            attempts,
                            next_attempt_at,
                            error: e.to_string(),
                        },
                    )
                    .await?;
                Ok(Delivered::Retry)
            }
            Err(e) => {
                self.store
                    .record_delivery(
                        message.id,
                        DeliveryUpdate::Failed {
                            attempts,
                            error: e.to_string(),
                        },
                    )
                    .await?;
                Ok(Delivered::Failed)
            }
        }
    }

    /// Delivers queued messages that are due: renders each from its batch's live invitations
    /// (a batch with none left is cancelled, never sent), hands it to the mailer, and records
    /// the outcome; transient errors back off exponentially (or wait out the mailer's
    /// [`retry_after`](crate::MailError::retry_after) hint when it is longer, never beyond
    /// `max_backoff`), permanent ones or too many attempts mark the message failed.
    ///
    /// # Errors
    /// [`InviteError::Unavailable`] if the due messages cannot be claimed. Failures on single
    /// messages are counted in the report; those messages come back after their lease.
    pub async fn deliver_due(&self) -> Result<DeliveryReport, InviteError> {
        let now = self.now();
        let policy = &self.config.delivery;
        let due = self
            .store
            .claim_due_messages(now, now.plus(policy.lease), policy.batch_size)
            .await?;
        let mut report = DeliveryReport::default();
        for message in &due {
            match self.deliver(message, now).await {
                Ok(Delivered::Sent) => report.sent += 1,
                Ok(Delivered::Retry) => report.retried += 1,
                Ok(Delivered::Failed) => report.failed += 1,
                Ok(Delivered::Cancelled) => report.cancelled += 1,
                Err(_) => report.store_errors += 1,
            }
        }
        Ok(report)
    }

    async fn open_token(&self, token: &str) -> Result<(AcceptToken, BatchRecord), InviteError> {
        let token = AcceptToken::from_user(token);
        let batch = self
            .store
            .find_batch_by_token(&token.hash())
            .await?
            .ok_or(InviteError::InvalidToken)?;
        let now = self.now();
        if !batch.invitations.iter().any(|i| i.is_live(now)) {
            return Err(InviteError::InvalidToken);
        }
        Ok((token, batch))
    }

    /// What an accept link offers: its live invitations. Read-only, so link scanners that
    /// follow the link change nothing.
    ///
    /// # Errors
    /// [`InviteError::InvalidToken`] for an unknown, rotated or used-up token, or one whose
    /// invitations all expired; [`InviteError::Unavailable`] on store failure.
    pub async fn preview(&self, token: &str) -> Result<InvitationPreview, InviteError> {
        let (_, batch) = self.open_token(token).await?;
        let now = self.now();
        Ok(InvitationPreview {
            batch_id: batch.id,
            email: batch.email.clone(),
            invitations: batch
                .invitations
                .iter()
                .filter(|i| i.is_live(now))
                .map(|i| PreviewItem {
                    invite_id: i.id,
                    target: i.target,
                    target_name: i.target_name.clone(),
                    role: i.role,
                    expires_at: i.expires_at,
                })
                .collect(),
        })
    }

    /// Accepts a token: finds or creates the user for the invited email (verified, since the
    /// token proves the mailbox) and turns every live invitation of the batch into a
    /// membership, each on its own. With `signed_in`, that user's email must be the invited
    /// one.
    ///
    /// Per-invitation codes: `added`, `already_member` (also for invitations a direct add
    /// superseded or an earlier accept took), `has_org_access`, `revoked`, `expired`,
    /// `target_not_found`, `internal_error`.
    ///
    /// # Errors
    /// [`InviteError::InvalidToken`] (unknown, used, rotated, all expired),
    /// [`InviteError::EmailMismatch`], [`InviteError::NotFound`] for an unknown signed-in
    /// user, [`InviteError::Unavailable`].
    pub async fn accept(
        &self,
        token: &str,
        signed_in: Option<UserId>,
    ) -> Result<AcceptResponse, InviteError> {
        let (token, batch) = self.open_token(token).await?;
        if let Some(uid) = signed_in {
            let user = self
                .store
                .get_user(uid)
                .await?
                .ok_or(InviteError::NotFound { what: "user" })?;
            if user.email != batch.email {
                return Err(InviteError::EmailMismatch);
            }
        }
        let first = batch
            .invitations
            .iter()
            .find(|i| i.first_name.is_some() || i.last_name.is_some());
        let cmd = AcceptBatch {
            batch_id: batch.id,
            token_hash: token.hash(),
            new_user: NewUser {
                id: UserId(self.config.random.uuid()),
                first_name: first.and_then(|i| i.first_name.clone()),
                last_name: first.and_then(|i| i.last_name.clone()),
            },
            now: self.now(),
        };
        let out = self
            .store
            .accept_batch(&cmd)
            .await?
            .ok_or(InviteError::InvalidToken)?;
        let results = out
            .invitations
            .iter()
            .map(|(inv, slot)| {
                let code = match slot {
                    Ok(AcceptFact::Added) => OutcomeCode::Added,
                    Ok(
                        AcceptFact::AlreadyMember
                        | AcceptFact::Superseded
                        | AcceptFact::AlreadyAccepted,
                    ) => OutcomeCode::AlreadyMember,
                    Ok(AcceptFact::OrgMember) => OutcomeCode::HasOrgAccess,
                    Ok(AcceptFact::Revoked) => OutcomeCode::Revoked,
                    Ok(AcceptFact::Expired) => OutcomeCode::Expired,
                    Ok(AcceptFact::TargetNotFound) => OutcomeCode::TargetNotFound,
                    Err(_) => OutcomeCode::InternalError,
                };
                let mut result = TargetResult::new(inv.target, code);
                if code == OutcomeCode::Added {
                    result = result.with_user(out.user.id);
                }
                AcceptResult {
                    invite_id: inv.id,
                    result,
                }
            })
            .collect();
        Ok(AcceptResponse {
            user_id: out.user.id,
            user_created: out.user.created,
            results,
        })
    }

    /// Revokes one invitation. Revoking twice is harmless (`changed: false`).
    ///
    /// # Errors
    /// [`InviteError::NotFound`] (not in the caller's organization), [`InviteError::Forbidden`]
    /// (a scoped key that does not reach the target), `already_accepted`,
    /// [`InviteError::Unavailable`].
    pub async fn revoke(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<RevokeResponse, InviteError> {
        let inv = self
            .store
            .get_invitation(principal.organization, id)
            .await?
            .ok_or(InviteError::NotFound { what: "invitation" })?;
        if !principal.reaches(inv.target) {
            return Err(forbidden(inv.target));
        }
        match self
            .store
            .revoke_invitation(principal.organization, id, self.now())
            .await?
        {
            RevokeFact::Revoked => Ok(RevokeResponse {
                invite_id: id,
                changed: true,
            }),
            RevokeFact::AlreadyRevoked | RevokeFact::AlreadyDead => Ok(RevokeResponse {
                invite_id: id,
                changed: false,
            }),
            RevokeFact::AlreadyAccepted => Err(InviteError::Conflict {
                code: ErrorCode::AlreadyAccepted,
                reason: "the invitation was accepted and cannot be revoked".into(),
            }),
            RevokeFact::NotFound => Err(InviteError::NotFound { what: "invitation" }),
        }
    }

    /// The batch, if it is in the caller's organization and the key reaches every target of it.
    async fn reachable_batch(
        &self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<BatchRecord, InviteError> {
        let batch = self
            .store
            .get_batch(principal.organization, batch_id)
            .await?
            .ok_or(InviteError::NotFound { what: "batch" })?;
        match batch
            .invitations
            .iter()
            .find(|i| !principal.reaches(i.target))
        {
            Some(i) => Err(forbidden(i.target)),
            None => Ok(batch),
        }
    }

    /// Resends a batch: a new token (the old link dies at once), a new expiry for its pending
    /// and expired invitations, and a new consolidated email listing exactly those. At most
    /// once per `resend_interval` (one minute) per batch.
    ///
    /// # Errors
    /// [`InviteError::NotFound`], [`InviteError::Forbidden`] (a scoped key must reach every
    /// target of the batch), [`InviteError::ResendTooSoon`], `nothing_to_resend` (no pending
    /// or expired invitation left), [`InviteError::Unavailable`].
    pub async fn resend(
        &self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<ResendResponse, InviteError> {
        let batch = self.reachable_batch(principal, batch_id).await?;
        let now = self.now();
        let token = AcceptToken::generate(self.config.random.as_ref());
        let cmd = RotateBatch {
            organization: principal.organization,
            batch_id,
            new_token_hash: token.hash(),
            expires_at: now.plus(self.config.invitation_ttl),
            message_id: MessageId(self.config.random.uuid()),
            accept_url: self.config.accept_url(&token),
            message_due_at: now.plus(self.config.delivery.lease),
            not_sent_after: minus(now, self.config.resend_interval),
            now,
        };
        match self.store.rotate_batch(&cmd).await? {
            RotateFact::Rotated { renewed } => {
                let message = OutboxMessage {
                    id: cmd.message_id,
                    batch_id,
                    organization: principal.organization,
                    recipient: batch.email.clone(),
                    accept_url: Some(cmd.accept_url.clone()),
                    status: crate::store::MessageStatus::Queued,
                    attempts: 0,
                    next_attempt_at: cmd.message_due_at,
                    created_at: now,
                    last_error: None,
                };
                let status = self.deliver_now(&message).await;
                Ok(ResendResponse {
                    batch_id,
                    renewed,
                    email: EmailReport {
                        status,
                        batch_id: Some(batch_id),
                    },
                })
            }
            RotateFact::TooSoon { last_sent_at } => Err(InviteError::ResendTooSoon {
                retry_after_secs: now
                    .seconds_until(last_sent_at.plus(self.config.resend_interval))
                    .max(1),
            }),
            RotateFact::NothingToResend => Err(InviteError::Conflict {
                code: ErrorCode::NothingToResend,
                reason: "the batch has no pending or expired invitation to resend".into(),
            }),
            RotateFact::NotFound => Err(InviteError::NotFound { what: "batch" }),
        }
    }

    /// A batch with its invitations and the delivery state of its messages (a message given up
    /// after a permanent error or too many attempts shows as `failed` with its last error).
    ///
    /// # Errors
    /// [`InviteError::NotFound`] (not in the caller's organization), [`InviteError::Forbidden`]
    /// (a scoped key must reach every target of the batch), [`InviteError::Unavailable`].
    pub async fn batch(
        &self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<BatchView, InviteError> {
        let batch = self.reachable_batch(principal, batch_id).await?;
        let messages = self.store.batch_messages(batch_id).await?;
        let latest = messages.last().map(|m| m.status);
        let now = self.now();
        Ok(BatchView {
            batch_id,
            email: batch.email,
            created_at: batch.created_at,
            last_sent_at: batch.last_sent_at,
            invitations: batch
                .invitations
                .into_iter()
                .map(|r| view(r, now, latest))
                .collect(),
            messages: messages
                .into_iter()
                .map(|m| MessageView {
                    id: m.id,
                    status: m.status,
                    attempts: m.attempts,
                    last_error: m.last_error,
                    created_at: m.created_at,
                })
                .collect(),
        })
    }

    /// Lists invitations by target, email or status, oldest first, `limit` (1 to 500) per
    /// page. Never shows a token or its hash. A website-scoped key sees only invitations to
    /// its websites.
    ///
    /// # Errors
    /// `invalid_query` for a bad limit or cursor, [`InviteError::Forbidden`] for a target the
    /// key does not reach, [`InviteError::Unavailable`].
    pub async fn list_invitations(
        &self,
        principal: &Principal,
        filter: InvitationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<InvitationPage, InviteError> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(InviteError::validation(
                ErrorCode::InvalidQuery,
                "limit",
                "must be 1 to 500",
            ));
        }
        if let InvitationFilter::Target(t) = filter
            && !principal.reaches(t)
        {
            return Err(forbidden(t));
        }
        let after = cursor
            .map(|c| {
                parse_cursor(c).ok_or_else(|| {
                    InviteError::validation(
                        ErrorCode::InvalidQuery,
                        "cursor",
                        "is not a cursor this API returned",
                    )
                })
            })
            .transpose()?;
        let now = self.now();
        let query = InvitationQuery {
            organization: principal.organization,
            filter,
            after,
            limit,
            now,
        };
        let records = self.store.list_invitations(&query).await?;
        let next_cursor = (records.len() == limit)
            .then(|| {
                records
                    .last()
                    .map(|r| format!("{}.{}", r.created_at.as_millis(), r.id))
            })
            .flatten();
        let records: Vec<InvitationRecord> = records
            .into_iter()
            .filter(|r| principal.reaches(r.target))
            .collect();
        let mut delivery: Vec<(BatchId, Option<MessageStatus>)> = Vec::new();
        for r in &records {
            if !delivery.iter().any(|(b, _)| *b == r.batch_id) {
                let latest = self
                    .store
                    .batch_messages(r.batch_id)
                    .await?
                    .last()
                    .map(|m| m.status);
                delivery.push((r.batch_id, latest));
            }
        }
        let items = records
            .into_iter()
            .map(|r| {
                let d = delivery
                    .iter()
                    .find(|(b, _)| *b == r.batch_id)
                    .and_then(|(_, d)| *d);
                view(r, now, d)
            })
            .collect();
        Ok(InvitationPage { items, next_cursor })
    }
}

fn view(r: InvitationRecord, now: Timestamp, delivery: Option<MessageStatus>) -> InvitationView {
    InvitationView {
        id: r.id,
        batch_id: r.batch_id,
        target: r.target,
        status: r.status_at(now),
        target_name: r.target_name,
        email: r.email,
        role: r.role,
        created_at: r.created_at,
        expires_at: r.expires_at,
        delivery,
    }
}

enum Delivered {
    Sent,
    Retry,
    Failed,
    Cancelled,
}

fn forbidden(target: TargetId) -> InviteError {
    InviteError::Forbidden {
        code: ErrorCode::Forbidden,
        reason: format!(
            "API key does not have access to this {}",
            target.kind().noun()
        ),
    }
}

fn minus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(
        t.as_millis()
            .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    )
}

fn parse_cursor(c: &str) -> Option<(Timestamp, InvitationId)> {
    let (ms, id) = c.split_once('.')?;
    Some((
        Timestamp::from_millis(ms.parse().ok()?),
        InvitationId(uuid::Uuid::try_parse(id).ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        fn check(s: &InviteService, p: &Principal, r: BulkInviteRequest) {
            is_send(&s.bulk_invite(p, r));
            is_send(&s.deliver_due());
            is_send(&s.accept("t", None));
        }
        let _ = check;
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = DeliveryPolicy {
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(100),
            ..DeliveryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_secs(10));
        assert_eq!(p.backoff(2), Duration::from_secs(20));
        assert_eq!(p.backoff(4), Duration::from_secs(80));
        assert_eq!(p.backoff(5), Duration::from_secs(100));
        assert_eq!(p.backoff(60), Duration::from_secs(100));
    }

    #[test]
    fn accept_url_and_config_checks() {
        let c = InviteConfig::new("https://a.test/accept").unwrap();
        let t = AcceptToken::from_user("abc");
        assert_eq!(c.accept_url(&t), "https://a.test/accept?token=abc");
        let c = InviteConfig::new("https://a.test/accept?lang=en").unwrap();
        assert_eq!(c.accept_url(&t), "https://a.test/accept?lang=en&token=abc");
        for bad in [
            "ftp://x",
            "https://a b",
            "https://a.test/#x",
            "javascript:alert(1)",
        ] {
            assert!(InviteConfig::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let id = InvitationId(uuid::Uuid::from_u128(5));
        let c = format!("{}.{}", 42, id);
        assert_eq!(parse_cursor(&c), Some((Timestamp::from_millis(42), id)));
        assert_eq!(parse_cursor("nope"), None);
    }
}
