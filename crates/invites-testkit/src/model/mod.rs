//! A plain reference model of what `InviteService` does, for differential tests (docs/contract.md §9,
//! invariant 10).
//!
//! [`Model`] is deliberately simple: plain `Vec`s scanned linearly, no traits, no storage
//! contract, one method per service operation. It is written from docs/contract.md and the public
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
//! | everything else (`deliver_due`, `preview`, `revoke`, `list_invitations`, `access`, `members_of`, `websites_of`, `set_member_role`, `remove_member`, `erase_person`, directory changes) | nothing |
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
//! - The mailer is the [`RecordingMailer`]: the model
//!   records the messages it accepts and writes the same error text in the outbox.
//! - Emails are rendered with the [`DefaultRenderer`] (presentation, not semantics).
//! - A delivered, cancelled or failed outbox row keeps the `next_attempt_at` it had (the
//!   lease taken when it was claimed, or the due time it was stored with).
//! - A website-scoped key's list page leaves out rows of targets it does not reach *after*
//!   the page was cut, so such a page can be short and still carry a cursor.
//! - Access (docs/contract.md §11, [`Model::access`]): the paths are the website membership, the
//!   memberships of the groups holding the website, and the membership of the website's
//!   organization (owner and admin reach every website as `admin`, viewer as `viewer`); the
//!   strongest path wins and every path is reported, in that order (groups by id). Member and
//!   website lists are pages by user id or website id after the cursor (the last id of the
//!   previous page, given when a page is full); a scoped key's website list holds only its
//!   websites, filtered before the page is cut.
//! - A removal revokes the live invitations to the same target for the user's email.
//!   Erasure deletes every invitation, batch and outbox message to the address, the user with
//!   all its memberships, and the idempotency records whose response names the user's id (as
//!   `user_id` of the response or of a result).
//! - Idempotency records are compared by request equality (the service hashes the request's
//!   JSON, which is equal exactly when the requests are equal).

use crate::deterministic::SeededRandom;
use crate::fixtures::{Harness, World};
use invites_core::MailerMode;
use invites_core::*;
use std::time::Duration;

mod access;
mod bulk;
mod delivery;
mod events;
mod lifecycle;
mod retention;

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
    /// How long finished history is kept before `purge_expired` deletes it.
    pub history: Duration,
}

impl ModelSettings {
    /// The settings of a [`Harness`]: [`Harness::ACCEPT_URL_BASE`] and the
    /// `InviteConfig` defaults (7 days, 24 hours, 60 seconds, 30 s to 1 h backoff, 8 attempts,
    /// 60 s lease, 100 per call, 30 days of history).
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
            history: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A batch as the model keeps it (with its current token in clear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ModelBatch {
    id: BatchId,
    organization: OrganizationId,
    email: Email,
    token: String,
    created_at: Timestamp,
    last_sent_at: Timestamp,
}

/// A completed idempotent request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IdempotencyRecord {
    organization: OrganizationId,
    key_id: ApiKeyId,
    key: String,
    request: BulkInviteRequest,
    response: BulkInviteResponse,
    created_at: Timestamp,
}

/// What one delivery attempt did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Delivery {
    Sent,
    Retry,
    Failed,
    Cancelled,
}

/// A validated request, as the model needs it.
#[derive(Clone, Debug)]
pub(super) struct Valid {
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
    group_websites: Vec<(GroupId, WebsiteId)>,
    users: Vec<User>,
    org_members: Vec<(OrganizationId, UserId, OrgRole)>,
    memberships: Vec<MembershipRow>,
    invitations: Vec<InvitationRecord>,
    batches: Vec<ModelBatch>,
    outbox: Vec<OutboxMessage>,
    idempotency: Vec<IdempotencyRecord>,
    events: Vec<Event>,
    event_seq: std::collections::BTreeMap<OrganizationId, u64>,
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

/// The group links [`World::seed`] creates: group `i` of the organization holds websites
/// `2i` and `2i + 1`; the other organization's group holds none.
pub fn world_group_websites(world: &World) -> Vec<(GroupId, WebsiteId)> {
    world
        .groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| {
            world.websites[i * 2..i * 2 + 2]
                .iter()
                .map(move |w| (*g, *w))
        })
        .collect()
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

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn plus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(t.as_millis().saturating_add(millis(d)))
}

pub(super) fn minus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(t.as_millis().saturating_sub(millis(d)))
}

pub(super) fn reaches(p: &Principal, t: TargetId) -> bool {
    match (&p.scope, t) {
        (KeyScope::Global, _) => true,
        (KeyScope::Websites(allow), TargetId::Website(w)) => allow.contains(&w),
        (KeyScope::Websites(_), TargetId::Group(_)) => false,
    }
}

pub(super) fn invalid(code: ErrorCode, field: &str, reason: &str) -> InviteError {
    InviteError::Validation {
        code,
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

pub(super) fn forbidden(t: TargetId) -> InviteError {
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
            group_websites: Vec::new(),
            users: Vec::new(),
            org_members: Vec::new(),
            memberships: Vec::new(),
            invitations: Vec::new(),
            batches: Vec::new(),
            outbox: Vec::new(),
            idempotency: Vec::new(),
            events: Vec::new(),
            event_seq: std::collections::BTreeMap::new(),
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

    /// Adds what [`World::seed`] creates: the websites and groups (each group holding two
    /// websites), the org admin
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
        for (g, w) in world_group_websites(world) {
            self.add_website_to_group(g, w);
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

    /// Deletes a website with its memberships, group links and invitations (batches and
    /// outbox rows stay).
    pub fn delete_website(&mut self, id: WebsiteId) {
        let t = TargetId::Website(id);
        if let Some(org) = self.target_org(t) {
            self.emit(org, None, NewEvent::website_deleted(id));
        }
        self.websites.retain(|w| w.id != id);
        self.group_websites.retain(|(_, w)| *w != id);
        self.memberships.retain(|m| m.target != t);
        self.invitations.retain(|i| i.target != t);
    }

    /// Every user, in the order created.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The user with this email.
    pub fn find_user(&self, email: &Email) -> Option<&User> {
        self.users.iter().find(|u| u.email == *email)
    }

    // ----- small helpers ----------------------------------------------------------------

    pub(super) fn target_org(&self, t: TargetId) -> Option<OrganizationId> {
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

    pub(super) fn target_name(&self, t: TargetId) -> String {
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

    pub(super) fn is_org_member(&self, org: OrganizationId, user: UserId) -> bool {
        self.org_members
            .iter()
            .any(|(o, u, _)| *o == org && *u == user)
    }

    pub(super) fn is_member(&self, t: TargetId, user: UserId) -> bool {
        self.memberships
            .iter()
            .any(|m| m.target == t && m.user == user)
    }

    pub(super) fn is_live(&self, inv: &InvitationRecord) -> bool {
        inv.status == StoredStatus::Pending && self.now < inv.expires_at
    }

    /// Indices into `invitations` of a batch, ordered by (created_at, id).
    pub(super) fn batch_invitations(&self, batch: BatchId) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.invitations.len())
            .filter(|i| self.invitations[*i].batch_id == batch)
            .collect();
        v.sort_by_key(|i| (self.invitations[*i].created_at, self.invitations[*i].id));
        v
    }

    pub(super) fn batch_index(&self, id: BatchId) -> Option<usize> {
        self.batches.iter().position(|b| b.id == id)
    }

    pub(super) fn accept_url(&self, token: &str) -> String {
        format!("{}?token={token}", self.settings.accept_url_base)
    }
}
