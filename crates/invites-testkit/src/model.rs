//! A plain reference model of what `InviteService` does, for differential tests (SPEC §9,
//! invariant 10).
//!
//! [`Model`] is deliberately simple: plain `Vec`s scanned linearly, no traits, no storage
//! contract, one method per service operation. It is written from SPEC.md and the public
//! documentation of the service, not from a backend, and it answers with the service's own
//! response types so that answers can be compared with `==`. [`Model::snapshot`] produces the
//! same canonical [`Snapshot`] a backend's `Inspect::snapshot` does.
//!
//! ```
//! use invites_core::*;
//! use invites_testkit::model::{Model, ModelSettings};
//! use invites_testkit::strategies::standard_world;
//!
//! let world = standard_world();
//! let mut model = Model::new(1, Timestamp::from_millis(1_795_683_600_000), ModelSettings::harness());
//! model.seed_world(&world);
//! let r = model
//!     .bulk_invite(
//!         &world.global_key(),
//!         &BulkInviteRequest::websites(InviteMethod::Email, "ann@example.com", [world.websites[0]]),
//!     )
//!     .unwrap();
//! assert_eq!(r.results[0].code, OutcomeCode::Invited);
//! assert_eq!(model.sent().len(), 1);
//! ```
//!
//! # Where ids come from
//!
//! Ids and tokens are drawn from a [`SeededRandom`] with the same seed the service's
//! [`Harness`] uses, in exactly the order `InviteService` draws them (a `uuid`
//! is 16 bytes, a token 32 bytes of the same stream):
//!
//! | operation | draws, in order, after every whole-request check passed |
//! |---|---|
//! | `bulk_invite`, direct | one user id (used only if a user is created; made time-ordered by `UserId::time_ordered` with the request time) |
//! | `bulk_invite`, email | the accept token; one invitation id per target the key reaches (a drawn `uuid` made time-ordered by `InvitationId::time_ordered` with the request time), given to those targets in request order *after sorting the ids ascending* (so a batch read back by `(created_at, id)` is in request order); the batch id; the message id |
//! | `bulk_invite_idempotent` | as `bulk_invite`, but nothing when the stored response is replayed or the key conflicts |
//! | `accept` | one user id, after the token and the signed-in user were checked |
//! | `resend` | the new token, then the message id, after the batch was found and the key reaches it (also when the resend is then refused as too soon or with nothing to resend) |
//! | everything else (`deliver_due`, `preview`, `revoke`, `list_invitations`, directory changes) | nothing |
//!
//! # Assumptions (where the contract is silent, taken from the service's documentation)
//!
//! - An invitation is *live* while its stored status is pending and `now < expires_at`.
//! - A batch lists its invitations ordered by `(created_at, id)` (the store contract of
//!   `BatchRecord`), which is the order of accept results and previews (request order, given
//!   how the ids are drawn). The email lists the
//!   live invitations by target name, then target id; its greeting uses the first name of the
//!   first of them that has one.
//! - A new invitation for a (target, email) whose pending invitation has expired marks the old
//!   one `Expired`; direct adds supersede only live invitations; resend renews invitations whose
//!   stored status is pending (live or expired by time).
//! - A resend checks the rate limit before it looks for something to resend.
//! - The mailer is the [`RecordingMailer`](invites_memory::RecordingMailer): the model
//!   records the messages it accepts and writes the same error text in the outbox.
//! - Emails are rendered with the [`DefaultRenderer`] (presentation, not semantics).
//! - A delivered, cancelled or failed outbox row keeps the `next_attempt_at` it had (the
//!   lease taken when it was claimed, or the due time it was stored with).
//! - A website-scoped key's list page leaves out rows of targets it does not reach *after*
//!   the page was cut, so such a page can be short and still carry a cursor.
//! - Idempotency records are compared by request equality (the service hashes the request's
//!   JSON, which is equal exactly when the requests are equal).

use crate::doubles::SeededRandom;
use crate::fixtures::{Harness, World};
use invites_core::mail::sanitize_header;
use invites_core::*;
use invites_memory::MailerMode;
use std::time::Duration;

/// The configuration the model mirrors (the service's `InviteConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSettings {
    /// The accept link base; links are `{base}?token={token}`.
    pub accept_url_base: String,
    /// How long an invitation can be accepted.
    pub invitation_ttl: Duration,
    /// How long an idempotency key remembers its response.
    pub idempotency_ttl: Duration,
    /// Least time between two sends of one batch.
    pub resend_interval: Duration,
    /// Wait after the first failed delivery; doubles with every failure.
    pub base_backoff: Duration,
    /// Longest wait between delivery attempts.
    pub max_backoff: Duration,
    /// Attempts before a message is given up.
    pub max_attempts: u32,
    /// How long a claimed or freshly stored message stays hidden from `deliver_due`.
    pub lease: Duration,
    /// Messages per `deliver_due` call.
    pub batch_size: usize,
}

impl ModelSettings {
    /// The settings of a [`Harness`]: [`Harness::ACCEPT_URL_BASE`] and the
    /// `InviteConfig` defaults (7 days, 24 hours, 60 seconds, 30 s to 1 h backoff, 8 attempts,
    /// 60 s lease, 100 per call).
    pub fn harness() -> Self {
        ModelSettings {
            accept_url_base: Harness::ACCEPT_URL_BASE.to_owned(),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            resend_interval: Duration::from_secs(60),
            base_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 8,
            lease: Duration::from_secs(60),
            batch_size: 100,
        }
    }
}

/// A batch as the model keeps it (with its current token in clear).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelBatch {
    id: BatchId,
    organization: OrganizationId,
    email: Email,
    token: String,
    created_at: Timestamp,
    last_sent_at: Timestamp,
}

/// A completed idempotent request.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IdempotencyRecord {
    organization: OrganizationId,
    key_id: ApiKeyId,
    key: String,
    request: BulkInviteRequest,
    response: BulkInviteResponse,
    created_at: Timestamp,
}

/// What one delivery attempt did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Delivery {
    Sent,
    Retry,
    Failed,
    Cancelled,
}

/// A validated request, as the model needs it.
#[derive(Clone, Debug)]
struct Valid {
    method: InviteMethod,
    email: Email,
    role: Role,
    targets: Vec<TargetId>,
    first_name: Option<PersonName>,
    last_name: Option<PersonName>,
}

/// The reference model. See the module docs.
#[derive(Clone, Debug)]
pub struct Model {
    settings: ModelSettings,
    now: Timestamp,
    random: SeededRandom,
    mailer: MailerMode,
    sent: Vec<EmailMessage>,
    websites: Vec<Website>,
    groups: Vec<Group>,
    users: Vec<User>,
    org_members: Vec<(OrganizationId, UserId, OrgRole)>,
    memberships: Vec<MembershipRow>,
    invitations: Vec<InvitationRecord>,
    batches: Vec<ModelBatch>,
    outbox: Vec<OutboxMessage>,
    idempotency: Vec<IdempotencyRecord>,
}

/// The websites [`World::seed`] creates (ours "Site 0".."Site 5", then the other
/// organization's "Elsewhere").
pub fn world_websites(world: &World) -> Vec<Website> {
    let mut v: Vec<Website> = world
        .websites
        .iter()
        .enumerate()
        .map(|(i, id)| Website {
            id: *id,
            organization: world.org,
            name: format!("Site {i}"),
            url: format!("https://site{i}.acme.test"),
        })
        .collect();
    v.push(Website {
        id: world.other_website,
        organization: world.other_org,
        name: "Elsewhere".into(),
        url: "https://elsewhere.test".into(),
    });
    v
}

/// The groups [`World::seed`] creates ("Group 0", "Group 1", then "Their group").
pub fn world_groups(world: &World) -> Vec<Group> {
    let mut v: Vec<Group> = world
        .groups
        .iter()
        .enumerate()
        .map(|(i, id)| Group {
            id: *id,
            organization: world.org,
            name: format!("Group {i}"),
        })
        .collect();
    v.push(Group {
        id: world.other_group,
        organization: world.other_org,
        name: "Their group".into(),
    });
    v
}

/// The display name of a target of the world, `None` for an unknown id.
pub fn world_target_name(world: &World, target: TargetId) -> Option<String> {
    match target {
        TargetId::Website(w) => world_websites(world)
            .into_iter()
            .find(|s| s.id == w)
            .map(|s| s.name),
        TargetId::Group(g) => world_groups(world)
            .into_iter()
            .find(|s| s.id == g)
            .map(|s| s.name),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(t.as_millis().saturating_add(millis(d)))
}

fn minus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(t.as_millis().saturating_sub(millis(d)))
}

fn reaches(p: &Principal, t: TargetId) -> bool {
    match (&p.scope, t) {
        (KeyScope::Global, _) => true,
        (KeyScope::Websites(allow), TargetId::Website(w)) => allow.contains(&w),
        (KeyScope::Websites(_), TargetId::Group(_)) => false,
    }
}

fn invalid(code: ErrorCode, field: &str, reason: &str) -> InviteError {
    InviteError::Validation {
        code,
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

fn forbidden(t: TargetId) -> InviteError {
    InviteError::Forbidden {
        code: ErrorCode::Forbidden,
        reason: format!("API key does not have access to this {}", t.kind().noun()),
    }
}

impl Model {
    /// An empty model at time `start`, drawing ids from `SeededRandom::new(seed)`, with a mailer
    /// that accepts everything.
    pub fn new(seed: u64, start: Timestamp, settings: ModelSettings) -> Self {
        Model {
            settings,
            now: start,
            random: SeededRandom::new(seed),
            mailer: MailerMode::Ok,
            sent: Vec::new(),
            websites: Vec::new(),
            groups: Vec::new(),
            users: Vec::new(),
            org_members: Vec::new(),
            memberships: Vec::new(),
            invitations: Vec::new(),
            batches: Vec::new(),
            outbox: Vec::new(),
            idempotency: Vec::new(),
        }
    }

    // ----- the world around the service -------------------------------------------------

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, d: Duration) {
        self.now = plus(self.now, d);
    }

    /// How the mailer answers from now on.
    pub fn set_mailer(&mut self, mode: MailerMode) {
        self.mailer = mode;
    }

    /// Every message the mailer accepted, in order.
    pub fn sent(&self) -> &[EmailMessage] {
        &self.sent
    }

    /// Adds what [`World::seed`] creates: the websites and groups, the org admin
    /// (`admin@acme.test`, verified, an admin of the organization) and the existing user
    /// (`existing@acme.test`, unverified, first name "Ex").
    ///
    /// # Panics
    /// Never (the fixture's emails and names are valid).
    pub fn seed_world(&mut self, world: &World) {
        for w in world_websites(world) {
            self.create_website(w);
        }
        for g in world_groups(world) {
            self.create_group(g);
        }
        let admin = self.create_user(User {
            id: world.org_admin,
            email: Email::parse("admin@acme.test").expect("valid"),
            email_verified: true,
            first_name: None,
            last_name: None,
        });
        self.add_org_member(world.org, admin, OrgRole::Admin);
        self.create_user(User {
            id: world.existing_user,
            email: Email::parse("existing@acme.test").expect("valid"),
            email_verified: false,
            first_name: PersonName::parse("Ex").expect("valid"),
            last_name: None,
        });
    }

    /// Creates a website.
    pub fn create_website(&mut self, website: Website) {
        if !self.websites.iter().any(|w| w.id == website.id) {
            self.websites.push(website);
        }
    }

    /// Creates a group.
    pub fn create_group(&mut self, group: Group) {
        if !self.groups.iter().any(|g| g.id == group.id) {
            self.groups.push(group);
        }
    }

    /// Creates a user unless one has the email; returns the id of the user with the email.
    pub fn create_user(&mut self, user: User) -> UserId {
        if let Some(u) = self.find_user(&user.email) {
            return u.id;
        }
        let id = user.id;
        self.users.push(user);
        id
    }

    /// Makes a user an organization member (or changes the role).
    pub fn add_org_member(&mut self, organization: OrganizationId, user: UserId, role: OrgRole) {
        self.org_members
            .retain(|(o, u, _)| !(*o == organization && *u == user));
        self.org_members.push((organization, user, role));
    }

    /// Deletes a website with its memberships and invitations (batches and outbox rows stay).
    pub fn delete_website(&mut self, id: WebsiteId) {
        let t = TargetId::Website(id);
        self.websites.retain(|w| w.id != id);
        self.memberships.retain(|m| m.target != t);
        self.invitations.retain(|i| i.target != t);
    }

    /// The user with this email.
    pub fn find_user(&self, email: &Email) -> Option<&User> {
        self.users.iter().find(|u| u.email == *email)
    }

    // ----- small helpers ----------------------------------------------------------------

    fn target_org(&self, t: TargetId) -> Option<OrganizationId> {
        match t {
            TargetId::Website(w) => self
                .websites
                .iter()
                .find(|x| x.id == w)
                .map(|x| x.organization),
            TargetId::Group(g) => self
                .groups
                .iter()
                .find(|x| x.id == g)
                .map(|x| x.organization),
        }
    }

    fn target_name(&self, t: TargetId) -> String {
        match t {
            TargetId::Website(w) => self
                .websites
                .iter()
                .find(|x| x.id == w)
                .map(|x| x.name.clone()),
            TargetId::Group(g) => self
                .groups
                .iter()
                .find(|x| x.id == g)
                .map(|x| x.name.clone()),
        }
        .unwrap_or_default()
    }

    fn is_org_member(&self, org: OrganizationId, user: UserId) -> bool {
        self.org_members
            .iter()
            .any(|(o, u, _)| *o == org && *u == user)
    }

    fn is_member(&self, t: TargetId, user: UserId) -> bool {
        self.memberships
            .iter()
            .any(|m| m.target == t && m.user == user)
    }

    fn is_live(&self, inv: &InvitationRecord) -> bool {
        inv.status == StoredStatus::Pending && self.now < inv.expires_at
    }

    /// Indices into `invitations` of a batch, ordered by (created_at, id).
    fn batch_invitations(&self, batch: BatchId) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.invitations.len())
            .filter(|i| self.invitations[*i].batch_id == batch)
            .collect();
        v.sort_by_key(|i| (self.invitations[*i].created_at, self.invitations[*i].id));
        v
    }

    fn batch_index(&self, id: BatchId) -> Option<usize> {
        self.batches.iter().position(|b| b.id == id)
    }

    fn accept_url(&self, token: &str) -> String {
        format!("{}?token={token}", self.settings.accept_url_base)
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let mut d = self.settings.base_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.settings.max_backoff {
                break;
            }
        }
        d.min(self.settings.max_backoff)
    }

    // ----- bulk invites -----------------------------------------------------------------

    fn check(&self, p: &Principal, req: &BulkInviteRequest) -> Result<Valid, InviteError> {
        if req.group_ids.is_some() && req.website_ids.is_none() && p.scope != KeyScope::Global {
            return Err(InviteError::Forbidden {
                code: ErrorCode::GlobalKeyRequired,
                reason: "group_ids require a global API key".into(),
            });
        }
        let targets: Vec<TargetId> = match (&req.website_ids, &req.group_ids) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    ErrorCode::MutuallyExclusiveTargets,
                    "website_ids",
                    "both lists",
                ));
            }
            (None, None) => return Err(invalid(ErrorCode::MissingTargets, "website_ids", "none")),
            (Some(w), None) => w.iter().map(|id| TargetId::Website(*id)).collect(),
            (None, Some(g)) => g.iter().map(|id| TargetId::Group(*id)).collect(),
        };
        if targets.is_empty() || targets.len() > 50 {
            return Err(invalid(ErrorCode::InvalidTargetCount, "targets", "count"));
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|s| s.uuid() == t.uuid()) {
                return Err(invalid(ErrorCode::DuplicateTarget, "targets", "repeat"));
            }
        }
        let email = Email::parse(&req.email)
            .map_err(|_| invalid(ErrorCode::InvalidEmail, "email", "invalid"))?;
        let name = |raw: &Option<String>, field: &str| match raw {
            None => Ok(None),
            Some(s) => PersonName::parse(s).map_err(|_| invalid(ErrorCode::InvalidName, field, "")),
        };
        Ok(Valid {
            method: req.invite_method,
            email,
            role: req.role.unwrap_or(Role::Viewer),
            targets,
            first_name: name(&req.first_name, "first_name")?,
            last_name: name(&req.last_name, "last_name")?,
        })
    }

    /// `InviteService::bulk_invite`.
    ///
    /// # Errors
    /// The whole-request errors of SPEC §2 (`global_key_required` first, then validation).
    pub fn bulk_invite(
        &mut self,
        principal: &Principal,
        request: &BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        let valid = self.check(principal, request)?;
        Ok(self.execute(principal, &valid))
    }

    /// `InviteService::bulk_invite_idempotent`.
    ///
    /// # Errors
    /// As [`Model::bulk_invite`], plus `invalid_idempotency_key` and `idempotency_conflict`.
    pub fn bulk_invite_idempotent(
        &mut self,
        principal: &Principal,
        key: &str,
        request: &BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(invalid(
                ErrorCode::InvalidIdempotencyKey,
                "idempotency_key",
                "",
            ));
        }
        let valid = self.check(principal, request)?;
        let oldest_live = minus(self.now, self.settings.idempotency_ttl);
        let same_key = |r: &IdempotencyRecord| {
            r.organization == principal.organization && r.key_id == principal.key_id && r.key == key
        };
        if let Some(r) = self
            .idempotency
            .iter()
            .find(|r| same_key(r) && r.created_at >= oldest_live)
        {
            if r.request != *request {
                return Err(InviteError::Conflict {
                    code: ErrorCode::IdempotencyConflict,
                    reason: "different request".into(),
                });
            }
            return Ok(r.response.clone());
        }
        self.idempotency.retain(|r| !same_key(r));
        let response = self.execute(principal, &valid);
        self.idempotency.push(IdempotencyRecord {
            organization: principal.organization,
            key_id: principal.key_id,
            key: key.to_owned(),
            request: request.clone(),
            response: response.clone(),
            created_at: self.now,
        });
        Ok(response)
    }

    fn execute(&mut self, p: &Principal, v: &Valid) -> BulkInviteResponse {
        match v.method {
            InviteMethod::Direct => self.direct(p, v),
            InviteMethod::Email => self.email(p, v),
        }
    }

    fn direct(&mut self, p: &Principal, v: &Valid) -> BulkInviteResponse {
        let now = self.now;
        let new_user_id = UserId::time_ordered(now, self.random.uuid());
        let mut user: Option<(UserId, bool)> = self.find_user(&v.email).map(|u| (u.id, false));
        let org_member = user.is_some_and(|(u, _)| self.is_org_member(p.organization, u));
        let mut results = Vec::new();
        for &t in &v.targets {
            let code = if !reaches(p, t) {
                OutcomeCode::Forbidden
            } else if self.target_org(t) != Some(p.organization) {
                OutcomeCode::TargetNotFound
            } else if user.is_some_and(|(u, _)| self.is_member(t, u)) {
                OutcomeCode::AlreadyMember
            } else if org_member {
                OutcomeCode::HasOrgAccess
            } else {
                let uid = match user {
                    Some((u, _)) => u,
                    None => {
                        self.users.push(User {
                            id: new_user_id,
                            email: v.email.clone(),
                            email_verified: false,
                            first_name: v.first_name.clone(),
                            last_name: v.last_name.clone(),
                        });
                        user = Some((new_user_id, true));
                        new_user_id
                    }
                };
                self.memberships.push(MembershipRow {
                    target: t,
                    user: uid,
                    role: v.role,
                    created_at: now,
                });
                for inv in &mut self.invitations {
                    // Live or expired: a pending invitation the add made moot.
                    if inv.target == t
                        && inv.email == v.email
                        && inv.status == StoredStatus::Pending
                    {
                        inv.status = StoredStatus::Superseded;
                    }
                }
                OutcomeCode::Added
            };
            let mut r = TargetResult::new(t, code);
            if code == OutcomeCode::Added {
                r = r.with_user(user.expect("set when added").0);
            }
            results.push(r);
        }
        BulkInviteResponse::new(
            InviteMethod::Direct,
            user.map(|u| u.0),
            user.is_some_and(|u| u.1),
            results,
            None,
        )
    }

    fn email(&mut self, p: &Principal, v: &Valid) -> BulkInviteResponse {
        let now = self.now;
        let token = AcceptToken::generate(&self.random).expose().to_owned();
        let allowed: Vec<TargetId> = v
            .targets
            .iter()
            .copied()
            .filter(|t| reaches(p, *t))
            .collect();
        let mut drawn: Vec<InvitationId> = allowed
            .iter()
            .map(|_| InvitationId::time_ordered(now, self.random.uuid()))
            .collect();
        drawn.sort();
        let ids: Vec<(TargetId, InvitationId)> = allowed.into_iter().zip(drawn).collect();
        let batch_id = BatchId(self.random.uuid());
        let message_id = MessageId(self.random.uuid());
        let expires_at = plus(now, self.settings.invitation_ttl);
        let user = self.find_user(&v.email).map(|u| u.id);
        let org_member = user.is_some_and(|u| self.is_org_member(p.organization, u));
        let mut results = Vec::new();
        let mut invited = 0;
        for &t in &v.targets {
            let Some(&(_, inv_id)) = ids.iter().find(|(x, _)| *x == t) else {
                results.push(TargetResult::new(t, OutcomeCode::Forbidden));
                continue;
            };
            let code = if self.target_org(t) != Some(p.organization) {
                OutcomeCode::TargetNotFound
            } else if user.is_some_and(|u| self.is_member(t, u)) {
                OutcomeCode::AlreadyMember
            } else if org_member {
                OutcomeCode::HasOrgAccess
            } else if self
                .invitations
                .iter()
                .any(|i| i.target == t && i.email == v.email && self.is_live(i))
            {
                OutcomeCode::AlreadyInvited
            } else {
                for old in &mut self.invitations {
                    if old.target == t
                        && old.email == v.email
                        && old.status == StoredStatus::Pending
                    {
                        old.status = StoredStatus::Replaced;
                    }
                }
                self.invitations.push(InvitationRecord {
                    id: inv_id,
                    batch_id,
                    organization: p.organization,
                    target: t,
                    target_name: self.target_name(t),
                    email: v.email.clone(),
                    role: v.role,
                    first_name: v.first_name.clone(),
                    last_name: v.last_name.clone(),
                    status: StoredStatus::Pending,
                    created_at: now,
                    expires_at,
                });
                invited += 1;
                OutcomeCode::Invited
            };
            let mut r = TargetResult::new(t, code);
            if code == OutcomeCode::Invited {
                r = r.with_invite(inv_id);
            }
            results.push(r);
        }
        let email = if invited == 0 {
            EmailReport {
                status: EmailStatus::NotSent,
                batch_id: None,
            }
        } else {
            self.batches.push(ModelBatch {
                id: batch_id,
                organization: p.organization,
                email: v.email.clone(),
                token: token.clone(),
                created_at: now,
                last_sent_at: now,
            });
            self.outbox.push(OutboxMessage {
                id: message_id,
                batch_id,
                organization: p.organization,
                recipient: v.email.clone(),
                accept_url: Some(self.accept_url(&token)),
                status: MessageStatus::Queued,
                attempts: 0,
                next_attempt_at: plus(now, self.settings.lease),
                created_at: now,
                last_error: None,
            });
            EmailReport {
                status: self.deliver_now(message_id),
                batch_id: Some(batch_id),
            }
        };
        BulkInviteResponse::new(InviteMethod::Email, user, false, results, Some(email))
    }

    // ----- the outbox -------------------------------------------------------------------

    fn deliver_now(&mut self, message: MessageId) -> EmailStatus {
        let i = self
            .outbox
            .iter()
            .position(|m| m.id == message)
            .expect("just stored");
        match self.deliver(i) {
            Delivery::Sent => EmailStatus::Sent,
            Delivery::Failed => EmailStatus::Failed,
            Delivery::Cancelled => EmailStatus::NotSent,
            Delivery::Retry => EmailStatus::Queued,
        }
    }

    /// The message announcing the live invitations of a batch, if it has any.
    fn render(&self, message: &OutboxMessage) -> Option<EmailMessage> {
        let batch = &self.batches[self.batch_index(message.batch_id)?];
        let url = message.accept_url.clone()?;
        let mut live: Vec<&InvitationRecord> = self
            .batch_invitations(batch.id)
            .into_iter()
            .map(|i| &self.invitations[i])
            .filter(|i| self.is_live(i))
            .collect();
        live.sort_by(|a, b| (&a.target_name, a.target).cmp(&(&b.target_name, b.target)));
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
            accept_url: url,
        };
        let r = DefaultRenderer::default().render(&email);
        Some(EmailMessage {
            id: message.id,
            batch_id: batch.id,
            to: batch.email.clone(),
            subject: sanitize_header(&r.subject),
            text: r.text,
            html: r.html,
        })
    }

    fn deliver(&mut self, index: usize) -> Delivery {
        let now = self.now;
        let Some(rendered) = self.render(&self.outbox[index]) else {
            let m = &mut self.outbox[index];
            m.status = MessageStatus::Cancelled;
            m.accept_url = None;
            return Delivery::Cancelled;
        };
        let attempts = self.outbox[index].attempts + 1;
        let retry_at = plus(now, self.backoff(attempts));
        let max_attempts = self.settings.max_attempts;
        let mode = self.mailer;
        let m = &mut self.outbox[index];
        m.attempts = attempts;
        match mode {
            MailerMode::Ok => {
                self.sent.push(rendered);
                m.status = MessageStatus::Sent;
                m.accept_url = None;
                Delivery::Sent
            }
            MailerMode::FailTransient if attempts < max_attempts => {
                m.next_attempt_at = retry_at;
                m.last_error = Some(
                    MailError::transient("recording mailer set to fail (transient)").to_string(),
                );
                Delivery::Retry
            }
            MailerMode::FailTransient => {
                m.status = MessageStatus::Failed;
                m.accept_url = None;
                m.last_error = Some(
                    MailError::transient("recording mailer set to fail (transient)").to_string(),
                );
                Delivery::Failed
            }
            MailerMode::FailPermanent => {
                m.status = MessageStatus::Failed;
                m.accept_url = None;
                m.last_error = Some(
                    MailError::permanent("recording mailer set to fail (permanent)").to_string(),
                );
                Delivery::Failed
            }
        }
    }

    /// `InviteService::deliver_due`: claims the queued messages that are due (oldest due
    /// first, at most `batch_size`, each leased), then tries each once.
    pub fn deliver_due(&mut self) -> DeliveryReport {
        let now = self.now;
        let mut due: Vec<usize> = (0..self.outbox.len())
            .filter(|i| {
                self.outbox[*i].status == MessageStatus::Queued
                    && self.outbox[*i].next_attempt_at <= now
            })
            .collect();
        due.sort_by_key(|i| {
            let m = &self.outbox[*i];
            (m.next_attempt_at, m.created_at, m.id)
        });
        due.truncate(self.settings.batch_size);
        for i in &due {
            self.outbox[*i].next_attempt_at = plus(now, self.settings.lease);
        }
        let mut report = DeliveryReport::default();
        for i in due {
            match self.deliver(i) {
                Delivery::Sent => report.sent += 1,
                Delivery::Retry => report.retried += 1,
                Delivery::Failed => report.failed += 1,
                Delivery::Cancelled => report.cancelled += 1,
            }
        }
        report
    }

    // ----- the lifecycle ----------------------------------------------------------------

    fn open(&self, token: &str) -> Result<usize, InviteError> {
        let token = token.trim();
        let b = self
            .batches
            .iter()
            .position(|b| b.token == token)
            .ok_or(InviteError::InvalidToken)?;
        let id = self.batches[b].id;
        if !self
            .batch_invitations(id)
            .into_iter()
            .any(|i| self.is_live(&self.invitations[i]))
        {
            return Err(InviteError::InvalidToken);
        }
        Ok(b)
    }

    /// `InviteService::preview`.
    ///
    /// # Errors
    /// `invalid_token` for an unknown or rotated token or a batch with no live invitation.
    pub fn preview(&self, token: &str) -> Result<InvitationPreview, InviteError> {
        let b = &self.batches[self.open(token)?];
        Ok(InvitationPreview {
            batch_id: b.id,
            email: b.email.clone(),
            invitations: self
                .batch_invitations(b.id)
                .into_iter()
                .map(|i| &self.invitations[i])
                .filter(|i| self.is_live(i))
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

    /// `InviteService::accept`.
    ///
    /// # Errors
    /// `invalid_token`, `not_found` (unknown signed-in user), `email_mismatch`.
    pub fn accept(
        &mut self,
        token: &str,
        signed_in: Option<UserId>,
    ) -> Result<AcceptResponse, InviteError> {
        let b = self.open(token)?;
        let batch = self.batches[b].clone();
        if let Some(uid) = signed_in {
            let user = self
                .users
                .iter()
                .find(|u| u.id == uid)
                .ok_or(InviteError::NotFound { what: "user" })?;
            if user.email != batch.email {
                return Err(InviteError::EmailMismatch);
            }
        }
        let invs = self.batch_invitations(batch.id);
        let named = invs
            .iter()
            .map(|i| &self.invitations[*i])
            .find(|i| i.first_name.is_some() || i.last_name.is_some())
            .map(|i| (i.first_name.clone(), i.last_name.clone()));
        let new_user_id = UserId(self.random.uuid());
        let (uid, created) = match self.find_user(&batch.email) {
            Some(u) => (u.id, false),
            None => {
                let (first_name, last_name) = named.unwrap_or((None, None));
                self.users.push(User {
                    id: new_user_id,
                    email: batch.email.clone(),
                    email_verified: true,
                    first_name,
                    last_name,
                });
                (new_user_id, true)
            }
        };
        for u in &mut self.users {
            if u.id == uid {
                u.email_verified = true;
            }
        }
        let org_member = self.is_org_member(batch.organization, uid);
        let now = self.now;
        let mut results = Vec::new();
        for i in invs {
            let inv = self.invitations[i].clone();
            let code = match inv.status {
                StoredStatus::Revoked => OutcomeCode::Revoked,
                StoredStatus::Superseded | StoredStatus::Accepted => OutcomeCode::AlreadyMember,
                StoredStatus::Replaced => OutcomeCode::Expired,
                StoredStatus::Pending if now >= inv.expires_at => OutcomeCode::Expired,
                StoredStatus::Pending
                    if self.target_org(inv.target) != Some(batch.organization) =>
                {
                    OutcomeCode::TargetNotFound
                }
                StoredStatus::Pending => {
                    let code = if self.is_member(inv.target, uid) {
                        OutcomeCode::AlreadyMember
                    } else if org_member {
                        OutcomeCode::HasOrgAccess
                    } else {
                        self.memberships.push(MembershipRow {
                            target: inv.target,
                            user: uid,
                            role: inv.role,
                            created_at: now,
                        });
                        OutcomeCode::Added
                    };
                    self.invitations[i].status = StoredStatus::Accepted;
                    code
                }
            };
            let mut result = TargetResult::new(inv.target, code);
            if code == OutcomeCode::Added {
                result = result.with_user(uid);
            }
            results.push(AcceptResult {
                invite_id: inv.id,
                result,
            });
        }
        Ok(AcceptResponse {
            user_id: uid,
            user_created: created,
            results,
        })
    }

    /// `InviteService::revoke`.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `already_accepted`.
    pub fn revoke(
        &mut self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<RevokeResponse, InviteError> {
        let inv = self
            .invitations
            .iter_mut()
            .find(|i| i.id == id && i.organization == principal.organization)
            .ok_or(InviteError::NotFound { what: "invitation" })?;
        if !reaches(principal, inv.target) {
            return Err(forbidden(inv.target));
        }
        let changed = match inv.status {
            StoredStatus::Pending => {
                inv.status = StoredStatus::Revoked;
                true
            }
            StoredStatus::Accepted => {
                return Err(InviteError::Conflict {
                    code: ErrorCode::AlreadyAccepted,
                    reason: "accepted".into(),
                });
            }
            StoredStatus::Revoked | StoredStatus::Superseded | StoredStatus::Replaced => false,
        };
        Ok(RevokeResponse {
            invite_id: id,
            changed,
        })
    }

    /// `InviteService::resend`.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `resend_too_soon` (with the seconds to wait, at least 1),
    /// `nothing_to_resend`.
    pub fn resend(
        &mut self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<ResendResponse, InviteError> {
        let b = self
            .batches
            .iter()
            .position(|b| b.id == batch_id && b.organization == principal.organization)
            .ok_or(InviteError::NotFound { what: "batch" })?;
        let invs = self.batch_invitations(batch_id);
        if let Some(i) = invs
            .iter()
            .find(|i| !reaches(principal, self.invitations[**i].target))
        {
            return Err(forbidden(self.invitations[*i].target));
        }
        let now = self.now;
        let token = AcceptToken::generate(&self.random).expose().to_owned();
        let message_id = MessageId(self.random.uuid());
        let last = self.batches[b].last_sent_at;
        if last > minus(now, self.settings.resend_interval) {
            let wait_ms = plus(last, self.settings.resend_interval).as_millis() - now.as_millis();
            let secs = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1);
            return Err(InviteError::ResendTooSoon {
                retry_after_secs: secs,
            });
        }
        let renew: Vec<usize> = invs
            .into_iter()
            .filter(|i| self.invitations[*i].status == StoredStatus::Pending)
            .collect();
        if renew.is_empty() {
            return Err(InviteError::Conflict {
                code: ErrorCode::NothingToResend,
                reason: "nothing".into(),
            });
        }
        let expires_at = plus(now, self.settings.invitation_ttl);
        for i in &renew {
            self.invitations[*i].expires_at = expires_at;
        }
        self.batches[b].token = token.clone();
        self.batches[b].last_sent_at = now;
        for m in &mut self.outbox {
            if m.batch_id == batch_id && m.status == MessageStatus::Queued {
                m.status = MessageStatus::Cancelled;
                m.accept_url = None;
            }
        }
        self.outbox.push(OutboxMessage {
            id: message_id,
            batch_id,
            organization: principal.organization,
            recipient: self.batches[b].email.clone(),
            accept_url: Some(self.accept_url(&token)),
            status: MessageStatus::Queued,
            attempts: 0,
            next_attempt_at: plus(now, self.settings.lease),
            created_at: now,
            last_error: None,
        });
        let status = self.deliver_now(message_id);
        Ok(ResendResponse {
            batch_id,
            renewed: renew.len(),
            email: EmailReport {
                status,
                batch_id: Some(batch_id),
            },
        })
    }

    /// `InviteService::list_invitations`: the caller's organization's invitations matching
    /// `filter` (statuses as seen now), ordered by (created_at, id), after the cursor, `limit`
    /// per page; then those the key does not reach are left out of the page. The cursor
    /// (`{created_at millis}.{id}` of the page's last row) is given when the page was full
    /// before that filtering.
    ///
    /// # Errors
    /// `invalid_query` (limit outside 1 to 500, or a cursor this API did not write),
    /// `forbidden` (a target filter the key does not reach).
    pub fn list_invitations(
        &self,
        principal: &Principal,
        filter: &InvitationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<InvitationPage, InviteError> {
        if limit == 0 || limit > 500 {
            return Err(invalid(ErrorCode::InvalidQuery, "limit", ""));
        }
        if let InvitationFilter::Target(t) = filter
            && !reaches(principal, *t)
        {
            return Err(forbidden(*t));
        }
        let after = match cursor {
            None => None,
            Some(c) => {
                let parsed = c.split_once('.').and_then(|(ms, id)| {
                    Some((
                        Timestamp::from_millis(ms.parse().ok()?),
                        InvitationId(uuid::Uuid::try_parse(id).ok()?),
                    ))
                });
                Some(parsed.ok_or_else(|| invalid(ErrorCode::InvalidQuery, "cursor", ""))?)
            }
        };
        // Written out here rather than taken from the core's rules: the model is the oracle.
        let status_now = |i: &InvitationRecord| match i.status {
            StoredStatus::Pending if self.is_live(i) => InvitationStatus::Pending,
            StoredStatus::Pending | StoredStatus::Replaced => InvitationStatus::Expired,
            StoredStatus::Accepted => InvitationStatus::Accepted,
            StoredStatus::Revoked => InvitationStatus::Revoked,
            StoredStatus::Superseded => InvitationStatus::Superseded,
        };
        let mut rows: Vec<&InvitationRecord> = self
            .invitations
            .iter()
            .filter(|i| i.organization == principal.organization)
            .filter(|i| match filter {
                InvitationFilter::Target(t) => i.target == *t,
                InvitationFilter::Email(e) => i.email == *e,
                InvitationFilter::Status(st) => status_now(i) == *st,
            })
            .filter(|i| after.is_none_or(|a| (i.created_at, i.id) > a))
            .collect();
        rows.sort_by_key(|i| (i.created_at, i.id));
        rows.truncate(limit);
        let next_cursor = if rows.len() == limit {
            rows.last()
                .map(|r| format!("{}.{}", r.created_at.as_millis(), r.id))
        } else {
            None
        };
        let items = rows
            .into_iter()
            .filter(|i| reaches(principal, i.target))
            .map(|i| InvitationView {
                id: i.id,
                batch_id: i.batch_id,
                target: i.target,
                target_name: i.target_name.clone(),
                email: i.email.clone(),
                role: i.role,
                status: status_now(i),
                created_at: i.created_at,
                expires_at: i.expires_at,
                // The status of the batch's latest message (by created_at, then id).
                delivery: self
                    .outbox
                    .iter()
                    .filter(|m| m.batch_id == i.batch_id)
                    .max_by_key(|m| (m.created_at, m.id))
                    .map(|m| m.status),
            })
            .collect();
        Ok(InvitationPage { items, next_cursor })
    }

    // ----- inspection -------------------------------------------------------------------

    /// The canonical snapshot, ordered like `Inspect::snapshot`: users by email, memberships
    /// by (target, user), org members by (organization, user), invitations and outbox rows by
    /// (created_at, id), batches by id.
    pub fn snapshot(&self) -> Snapshot {
        let mut users = self.users.clone();
        users.sort_by(|a, b| a.email.cmp(&b.email));
        let mut memberships = self.memberships.clone();
        memberships.sort_by_key(|m| (m.target, m.user));
        let mut org_members = self.org_members.clone();
        org_members.sort_by_key(|(o, u, _)| (*o, *u));
        let mut invitations = self.invitations.clone();
        invitations.sort_by_key(|i| (i.created_at, i.id));
        let mut batches: Vec<(BatchId, OrganizationId, Email, Timestamp)> = self
            .batches
            .iter()
            .map(|b| (b.id, b.organization, b.email.clone(), b.created_at))
            .collect();
        batches.sort_by_key(|b| b.0);
        let mut outbox = self.outbox.clone();
        outbox.sort_by_key(|m| (m.created_at, m.id));
        Snapshot {
            users,
            memberships,
            org_members,
            invitations,
            batches,
            outbox,
        }
    }
}
