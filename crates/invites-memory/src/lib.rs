//! In-memory backend of the invites library: [`MemoryStore`] implements the whole storage
//! contract (bulk operations, outbox, lifecycle, idempotency, directory) behind one lock. (The
//! recording mailer of the examples is `invites_core::RecordingMailer`, feature `test-util`.)
//!
//! Clones of a `MemoryStore` share state; [`MemoryStore::fork`] makes an independent copy
//! (handy for "what would happen from this state" tests).
//!
//! It keeps typed values and never decodes what it stored, so it cannot hold a row it cannot
//! read: the handling of undecodable rows that the SQLite and PostgreSQL backends document
//! (set aside by the claim, left out of lists, an error for that batch only) never arises
//! here, and `invites_testkit::unreadable` checks it only on those backends.
//!
//! ```
//! use invites_core::*;
//! use invites_core::RecordingMailer;
//! use invites_memory::MemoryStore;
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let org = OrganizationId(uuid::Uuid::from_u128(1));
//! let site = WebsiteId(uuid::Uuid::from_u128(2));
//! store.create_organization(org, "Acme").await.unwrap();
//! store.create_website(&Website { id: site, organization: org, name: "Shop".into(), url: "https://shop.example".into() }).await.unwrap();
//!
//! let mailer = RecordingMailer::new_ok();
//! let service = InviteService::new(
//!     Arc::new(store.clone()),
//!     Arc::new(mailer.clone()),
//!     InviteConfig::new("https://app.example/accept").unwrap(),
//! );
//! let principal = Principal::global(org, ApiKeyId(uuid::Uuid::from_u128(3)));
//! let response = service
//!     .bulk_invite(&principal, BulkInviteRequest::websites(InviteMethod::Email, "ann@example.com", [site]))
//!     .await
//!     .unwrap();
//! assert_eq!(response.results[0].code, OutcomeCode::Invited);
//! assert_eq!(mailer.sent().len(), 1);
//! # });
//! ```

use async_trait::async_trait;
use invites_core::observe::OutboxBacklog;
use invites_core::rules::{
    self, AcceptDecision, AcceptFacts, AddDecision, AddFacts, IdempotencyDecision, InviteDecision,
    InviteFacts, PendingInvitation, RevokeDecision, RotateDecision, RotateFacts, StoredIdempotency,
    TargetAccess,
};
use invites_core::{
    AcceptBatch, AcceptOutcome, AddFact, AddMembers, AddMembersOutcome, ApiKeyId, BatchId,
    BatchRecord, CreateInvitations, CreateInvitationsOutcome, DeliveryUpdate, Email, Event,
    EventContext, Group, GroupId, IdempotencyBegin, IdempotencyState, InvitationFilter,
    InvitationId, InvitationQuery, InvitationRecord, InviteFact, MessageId, MessageStatus,
    NewEvent, OrgRole, OrganizationId, OutboxMessage, PurgedBatches, RevokeFact, RevokeInvitation,
    Role, RotateBatch, RotateFact, StoreError, StoredStatus, TargetId, Timestamp, TokenHash, User,
    UserId, UserRef, Website, WebsiteId,
};
use invites_core::{BulkStore, IdempotencyStore, LifecycleStore, OutboxStore, ReadStore};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

mod access;
mod directory;
mod events;
mod retention;
mod webhooks;

#[derive(Clone, Debug)]
struct Batch {
    organization: OrganizationId,
    email: Email,
    token_hash: TokenHash,
    created_at: Timestamp,
    last_sent_at: Timestamp,
}

#[derive(Clone, Debug, Default)]
struct State {
    orgs: BTreeMap<OrganizationId, String>,
    websites: BTreeMap<WebsiteId, Website>,
    groups: BTreeMap<GroupId, Group>,
    group_websites: BTreeSet<(GroupId, WebsiteId)>,
    users: BTreeMap<UserId, User>,
    users_by_email: HashMap<Email, UserId>,
    org_members: BTreeMap<(OrganizationId, UserId), OrgRole>,
    memberships: BTreeMap<(TargetId, UserId), (Role, Timestamp)>,
    /// Invitations without the derived `target_name` (filled on read).
    invitations: BTreeMap<InvitationId, InvitationRecord>,
    /// (target, email) of every stored-`Pending` invitation: at most one each.
    pending: HashMap<(TargetId, Email), InvitationId>,
    batches: BTreeMap<BatchId, Batch>,
    batch_invitations: BTreeMap<BatchId, Vec<InvitationId>>,
    tokens: HashMap<TokenHash, BatchId>,
    outbox: BTreeMap<MessageId, OutboxMessage>,
    idempotency: HashMap<(OrganizationId, ApiKeyId, String), StoredIdempotency>,
    /// The last event position given out per organization (kept when events are purged).
    event_seq: BTreeMap<OrganizationId, u64>,
    /// The event log by (organization, position).
    events: BTreeMap<(OrganizationId, u64), Event>,
    /// Webhook endpoints with their progress.
    endpoints: BTreeMap<invites_core::EndpointId, invites_core::EndpointState>,
}

impl State {
    /// Appends a call's events at the organization's next positions.
    fn append_events(&mut self, ctx: EventContext, events: &[NewEvent]) {
        let seq = self.event_seq.entry(ctx.organization).or_insert(0);
        for e in events {
            *seq += 1;
            self.events
                .insert((ctx.organization, *seq), e.at_position(&ctx, *seq));
        }
    }

    fn target_org(&self, t: TargetId) -> Option<OrganizationId> {
        match t {
            TargetId::Website(w) => self.websites.get(&w).map(|w| w.organization),
            TargetId::Group(g) => self.groups.get(&g).map(|g| g.organization),
        }
    }

    fn target_name(&self, t: TargetId) -> String {
        match t {
            TargetId::Website(w) => self.websites.get(&w).map(|w| w.name.clone()),
            TargetId::Group(g) => self.groups.get(&g).map(|g| g.name.clone()),
        }
        .unwrap_or_default()
    }

    fn invitation(&self, id: InvitationId) -> Option<InvitationRecord> {
        let mut r = self.invitations.get(&id)?.clone();
        r.target_name = self.target_name(r.target);
        Some(r)
    }

    fn set_status(&mut self, id: InvitationId, status: StoredStatus) {
        if let Some(inv) = self.invitations.get_mut(&id) {
            if inv.status == StoredStatus::Pending {
                self.pending.remove(&(inv.target, inv.email.clone()));
            }
            inv.status = status;
        }
    }

    fn batch_record(&self, id: BatchId) -> Option<BatchRecord> {
        let b = self.batches.get(&id)?;
        let mut invitations: Vec<InvitationRecord> = self
            .batch_invitations
            .get(&id)
            .map(|ids| ids.iter().filter_map(|i| self.invitation(*i)).collect())
            .unwrap_or_default();
        invitations.sort_by_key(|i| (i.created_at, i.id));
        Some(BatchRecord {
            id,
            organization: b.organization,
            email: b.email.clone(),
            created_at: b.created_at,
            last_sent_at: b.last_sent_at,
            invitations,
        })
    }

    fn insert_user(&mut self, user: User) {
        self.users_by_email.insert(user.email.clone(), user.id);
        self.users.insert(user.id, user);
    }

    fn insert_message(&mut self, m: OutboxMessage) {
        self.outbox.insert(m.id, m);
    }
}

/// The in-memory store. Clones share state.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent deep copy of the current state.
    pub fn fork(&self) -> Self {
        MemoryStore {
            state: Arc::new(Mutex::new(self.lock().clone())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied target (each target's
        // changes are applied by infallible code), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn conflict(what: &str) -> StoreError {
    StoreError::backend(format!("conflict: {what}"))
}

impl State {
    /// What the store knows about `user` and target `t` of `organization`.
    /// `org_member` is read once per call ([`State::is_org_member`]): no batch operation
    /// changes organization memberships.
    fn access(
        &self,
        organization: OrganizationId,
        user: Option<UserId>,
        org_member: bool,
        t: TargetId,
    ) -> TargetAccess {
        TargetAccess {
            exists: self.target_org(t) == Some(organization),
            membership: user.and_then(|u| self.memberships.get(&(t, u)).map(|(role, _)| *role)),
            org_member,
        }
    }

    fn is_org_member(&self, organization: OrganizationId, user: Option<UserId>) -> bool {
        user.is_some_and(|u| self.org_members.contains_key(&(organization, u)))
    }

    fn new_batch(&mut self, cmd: &CreateInvitations) {
        self.batches.insert(
            cmd.batch.id,
            Batch {
                organization: cmd.organization,
                email: cmd.email.clone(),
                token_hash: cmd.batch.token_hash,
                created_at: cmd.now,
                last_sent_at: cmd.now,
            },
        );
        self.tokens.insert(cmd.batch.token_hash, cmd.batch.id);
    }
}

fn queued_message(
    id: MessageId,
    batch_id: BatchId,
    organization: OrganizationId,
    recipient: Email,
    accept_url: &str,
    due_at: Timestamp,
    now: Timestamp,
) -> OutboxMessage {
    OutboxMessage {
        id,
        batch_id,
        organization,
        recipient,
        accept_url: Some(accept_url.to_owned()),
        status: MessageStatus::Queued,
        attempts: 0,
        next_attempt_at: due_at,
        created_at: now,
        last_error: None,
    }
}

// Every change of a target's unit below is applied by infallible code after its facts were
// read, so a unit never fails half-way and no slot is ever `Err`.

#[async_trait]
impl BulkStore for MemoryStore {
    async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError> {
        let mut s = self.lock();
        let mut user = s.users_by_email.get(&cmd.email).map(|id| UserRef {
            id: *id,
            created: false,
        });
        let org_member = s.is_org_member(cmd.organization, user.map(|u| u.id));
        let mut targets = Vec::with_capacity(cmd.targets.len());
        let mut events = Vec::new();
        for &t in &cmd.targets {
            // A user this call created has no membership among the other (distinct) targets.
            let known = user.filter(|u| !u.created).map(|u| u.id);
            let facts = AddFacts {
                access: s.access(cmd.organization, known, org_member, t),
                pending: s.pending.get(&(t, cmd.email.clone())).copied(),
            };
            let fact = match rules::decide_add(&facts) {
                AddDecision::Report(fact) => fact,
                AddDecision::Add { supersede } => {
                    let first_user = user.is_none();
                    let u = *user.get_or_insert(UserRef {
                        id: cmd.new_user.id,
                        created: true,
                    });
                    if first_user {
                        s.insert_user(User {
                            id: u.id,
                            email: cmd.email.clone(),
                            email_verified: false,
                            first_name: cmd.new_user.first_name.clone(),
                            last_name: cmd.new_user.last_name.clone(),
                        });
                        events.push(NewEvent::user_created(u.id));
                    }
                    s.memberships.insert((t, u.id), (cmd.role, cmd.now));
                    events.push(NewEvent::member_added(t, u.id, cmd.role));
                    if let Some(inv) = supersede {
                        s.set_status(inv, StoredStatus::Superseded);
                        let batch = s.invitations[&inv].batch_id;
                        events.push(NewEvent::invitation_superseded(t, inv, batch));
                    }
                    AddFact::Added
                }
            };
            targets.push(Ok(fact));
        }
        s.append_events(
            EventContext {
                organization: cmd.organization,
                actor: cmd.actor,
                at: cmd.now,
            },
            &events,
        );
        Ok(AddMembersOutcome { user, targets })
    }

    async fn create_invitations(
        &self,
        cmd: &CreateInvitations,
    ) -> Result<CreateInvitationsOutcome, StoreError> {
        let mut s = self.lock();
        let user = s.users_by_email.get(&cmd.email).copied();
        let org_member = s.is_org_member(cmd.organization, user);
        let mut batch_created = false;
        let mut targets = Vec::with_capacity(cmd.targets.len());
        let mut events = Vec::new();
        for &(t, inv_id) in &cmd.targets {
            let facts = InviteFacts {
                access: s.access(cmd.organization, user, org_member, t),
                pending: s
                    .pending
                    .get(&(t, cmd.email.clone()))
                    .map(|id| PendingInvitation {
                        id: *id,
                        expires_at: s.invitations[id].expires_at,
                    }),
                now: cmd.now,
            };
            let fact = match rules::decide_invite(&facts) {
                InviteDecision::Report(fact) => fact,
                InviteDecision::Invite { replace } => {
                    if let Some(old) = replace {
                        s.set_status(old, StoredStatus::Replaced);
                    }
                    if !batch_created {
                        batch_created = true;
                        s.new_batch(cmd);
                    }
                    s.invitations.insert(
                        inv_id,
                        InvitationRecord {
                            id: inv_id,
                            batch_id: cmd.batch.id,
                            organization: cmd.organization,
                            target: t,
                            target_name: String::new(),
                            email: cmd.email.clone(),
                            role: cmd.role,
                            first_name: cmd.first_name.clone(),
                            last_name: cmd.last_name.clone(),
                            status: StoredStatus::Pending,
                            created_at: cmd.now,
                            expires_at: cmd.expires_at,
                        },
                    );
                    s.pending.insert((t, cmd.email.clone()), inv_id);
                    events.push(NewEvent::invitation_created(
                        t,
                        inv_id,
                        cmd.batch.id,
                        cmd.role,
                    ));
                    s.batch_invitations
                        .entry(cmd.batch.id)
                        .or_default()
                        .push(inv_id);
                    InviteFact::Invited
                }
            };
            targets.push(Ok(fact));
        }
        if batch_created {
            s.insert_message(queued_message(
                cmd.batch.message_id,
                cmd.batch.id,
                cmd.organization,
                cmd.email.clone(),
                &cmd.batch.accept_url,
                cmd.batch.message_due_at,
                cmd.now,
            ));
        }
        s.append_events(
            EventContext {
                organization: cmd.organization,
                actor: cmd.actor,
                at: cmd.now,
            },
            &events,
        );
        Ok(CreateInvitationsOutcome {
            existing_user: user,
            targets,
        })
    }
}

#[async_trait]
impl LifecycleStore for MemoryStore {
    async fn accept_batch(&self, cmd: &AcceptBatch) -> Result<Option<AcceptOutcome>, StoreError> {
        let mut s = self.lock();
        let Some(batch) = s.batches.get(&cmd.batch_id).cloned() else {
            return Ok(None);
        };
        if batch.token_hash != cmd.token_hash {
            return Ok(None);
        }
        let mut events = Vec::new();
        let user = match s.users_by_email.get(&batch.email).copied() {
            Some(id) => UserRef { id, created: false },
            None => {
                events.push(NewEvent::user_created(cmd.new_user.id));
                s.insert_user(User {
                    id: cmd.new_user.id,
                    email: batch.email.clone(),
                    email_verified: true,
                    first_name: cmd.new_user.first_name.clone(),
                    last_name: cmd.new_user.last_name.clone(),
                });
                UserRef {
                    id: cmd.new_user.id,
                    created: true,
                }
            }
        };
        if let Some(u) = s.users.get_mut(&user.id) {
            u.email_verified = true;
        }
        let org_member = s.is_org_member(batch.organization, Some(user.id));
        let record = s.batch_record(cmd.batch_id).expect("batch exists");
        let mut invitations = Vec::with_capacity(record.invitations.len());
        for inv in record.invitations {
            let facts = AcceptFacts {
                status: inv.status,
                expires_at: inv.expires_at,
                now: cmd.now,
                access: s.access(batch.organization, Some(user.id), org_member, inv.target),
            };
            let fact = match rules::decide_accept(&facts) {
                AcceptDecision::Report(fact) => fact,
                AcceptDecision::Accept {
                    fact,
                    create_membership,
                } => {
                    events.push(NewEvent::invitation_accepted(
                        inv.target,
                        inv.id,
                        inv.batch_id,
                        user.id,
                    ));
                    if create_membership {
                        s.memberships
                            .insert((inv.target, user.id), (inv.role, cmd.now));
                        events.push(NewEvent::member_added(inv.target, user.id, inv.role));
                    }
                    s.set_status(inv.id, StoredStatus::Accepted);
                    fact
                }
            };
            let current = s.invitation(inv.id).expect("exists");
            invitations.push((current, Ok(fact)));
        }
        s.append_events(
            EventContext {
                organization: batch.organization,
                actor: None,
                at: cmd.now,
            },
            &events,
        );
        Ok(Some(AcceptOutcome { user, invitations }))
    }

    async fn revoke_invitation(&self, cmd: &RevokeInvitation) -> Result<RevokeFact, StoreError> {
        let mut s = self.lock();
        let found = s
            .invitations
            .get(&cmd.id)
            .filter(|i| i.organization == cmd.organization)
            .map(|i| (i.status, i.target, i.batch_id));
        Ok(match rules::decide_revoke(found.map(|f| f.0)) {
            RevokeDecision::Report(fact) => fact,
            RevokeDecision::Revoke => {
                s.set_status(cmd.id, StoredStatus::Revoked);
                if let Some((_, target, batch)) = found {
                    s.append_events(
                        EventContext {
                            organization: cmd.organization,
                            actor: cmd.actor,
                            at: cmd.now,
                        },
                        &[NewEvent::invitation_revoked(target, cmd.id, batch)],
                    );
                }
                RevokeFact::Revoked
            }
        })
    }

    async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError> {
        let mut s = self.lock();
        let batch = s
            .batches
            .get(&cmd.batch_id)
            .filter(|b| b.organization == cmd.organization)
            .cloned();
        let renew: Vec<InvitationId> = s
            .batch_invitations
            .get(&cmd.batch_id)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|i| s.invitations[i].status.is_renewable())
                    .collect()
            })
            .unwrap_or_default();
        let facts = batch.as_ref().map(|b| RotateFacts {
            last_sent_at: b.last_sent_at,
            renewable: renew.len(),
            not_sent_after: cmd.not_sent_after,
        });
        if let RotateDecision::Report(fact) = rules::decide_rotate(facts.as_ref()) {
            return Ok(fact);
        }
        let batch = batch.expect("decided to rotate an existing batch");
        for id in &renew {
            s.invitations.get_mut(id).expect("listed").expires_at = cmd.expires_at;
        }
        s.tokens.remove(&batch.token_hash);
        s.tokens.insert(cmd.new_token_hash, cmd.batch_id);
        let b = s.batches.get_mut(&cmd.batch_id).expect("exists");
        b.token_hash = cmd.new_token_hash;
        b.last_sent_at = cmd.now;
        for m in s.outbox.values_mut() {
            if m.batch_id == cmd.batch_id && m.status == MessageStatus::Queued {
                m.status = MessageStatus::Cancelled;
                m.accept_url = None;
            }
        }
        s.insert_message(queued_message(
            cmd.message_id,
            cmd.batch_id,
            cmd.organization,
            batch.email,
            &cmd.accept_url,
            cmd.message_due_at,
            cmd.now,
        ));
        s.append_events(
            EventContext {
                organization: cmd.organization,
                actor: cmd.actor,
                at: cmd.now,
            },
            &[NewEvent::batch_resent(cmd.batch_id, cmd.message_id)],
        );
        Ok(RotateFact::Rotated {
            renewed: renew.len(),
        })
    }

    async fn purge_batches(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<PurgedBatches, StoreError> {
        Ok(self.lock().purge_batches(before, limit))
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut s = self.lock();
        let mut due: Vec<&OutboxMessage> = s
            .outbox
            .values()
            .filter(|m| m.status == MessageStatus::Queued && m.next_attempt_at <= now)
            .collect();
        due.sort_by_key(|m| (m.next_attempt_at, m.created_at, m.id));
        let ids: Vec<MessageId> = due.iter().take(limit).map(|m| m.id).collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let m = s.outbox.get_mut(&id).expect("just listed");
            m.attempts = m.attempts.saturating_add(1);
            out.push(m.clone());
            m.next_attempt_at = lease_until;
        }
        Ok(out)
    }

    async fn record_delivery(
        &self,
        id: MessageId,
        update: DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        let Some(m) = s.outbox.get_mut(&id) else {
            return Err(StoreError::backend(format!("no outbox message {id}")));
        };
        if !rules::delivery_record_applies(m.status) {
            return Ok(());
        }
        let ctx = EventContext {
            organization: m.organization,
            actor: None,
            at: now,
        };
        let event = match update {
            DeliveryUpdate::Sent { .. } => Some(NewEvent::email_sent(m.batch_id, id)),
            DeliveryUpdate::Failed { .. } => Some(NewEvent::email_failed(m.batch_id, id)),
            _ => None,
        };
        match update {
            DeliveryUpdate::Deferred {
                attempts,
                next_attempt_at,
                leased_until,
            } => {
                if rules::deferral_applies(m.status, m.next_attempt_at, leased_until) {
                    m.attempts = attempts;
                    m.next_attempt_at = next_attempt_at;
                }
            }
            DeliveryUpdate::Sent { attempts } => {
                m.status = MessageStatus::Sent;
                m.attempts = attempts;
                m.accept_url = None;
            }
            DeliveryUpdate::Retry {
                attempts,
                next_attempt_at,
                error,
            } => {
                m.attempts = attempts;
                m.next_attempt_at = next_attempt_at;
                m.last_error = Some(error);
            }
            DeliveryUpdate::Failed { attempts, error } => {
                m.status = MessageStatus::Failed;
                m.attempts = attempts;
                m.last_error = Some(error);
                m.accept_url = None;
            }
            DeliveryUpdate::Cancelled { attempts } => {
                m.status = MessageStatus::Cancelled;
                m.attempts = attempts;
                m.accept_url = None;
            }
        }
        if let Some(event) = event {
            s.append_events(ctx, &[event]);
        }
        Ok(())
    }

    async fn batch_messages(&self, batch: BatchId) -> Result<Vec<OutboxMessage>, StoreError> {
        let s = self.lock();
        let mut v: Vec<OutboxMessage> = s
            .outbox
            .values()
            .filter(|m| m.batch_id == batch)
            .cloned()
            .collect();
        v.sort_by_key(|m| (m.created_at, m.id));
        Ok(v)
    }

    async fn failed_messages(
        &self,
        created_from: Timestamp,
        created_until: Timestamp,
        after: Option<(Timestamp, MessageId)>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let s = self.lock();
        let mut v: Vec<OutboxMessage> = s
            .outbox
            .values()
            .filter(|m| {
                m.status == MessageStatus::Failed
                    && created_from <= m.created_at
                    && m.created_at < created_until
                    && after.is_none_or(|a| (m.created_at, m.id) > a)
            })
            .cloned()
            .collect();
        v.sort_by_key(|m| (m.created_at, m.id));
        v.truncate(limit);
        Ok(v)
    }

    async fn purge_messages(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        Ok(self.lock().purge_messages(before, limit))
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn idempotency_begin(
        &self,
        b: &IdempotencyBegin,
    ) -> Result<IdempotencyState, StoreError> {
        let mut s = self.lock();
        let key = (b.organization, b.key_id, b.key.clone());
        let found = s.idempotency.get(&key).cloned();
        Ok(match rules::decide_idempotency(found, b) {
            IdempotencyDecision::Report(state) => state,
            IdempotencyDecision::Start => {
                s.idempotency.insert(
                    key,
                    StoredIdempotency {
                        fingerprint: b.fingerprint,
                        response: None,
                        created_at: b.now,
                    },
                );
                IdempotencyState::Started
            }
        })
    }

    async fn idempotency_finish(
        &self,
        organization: OrganizationId,
        key_id: ApiKeyId,
        key: &str,
        started_at: Timestamp,
        response: Option<&str>,
        names_user: Option<UserId>,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        let k = (organization, key_id, key.to_owned());
        // The named user was erased meanwhile: the record goes, so a replay starts clean.
        let erased = names_user.is_some_and(|u| !s.users.contains_key(&u));
        let response = if erased { None } else { response };
        let ours = s
            .idempotency
            .get(&k)
            .is_some_and(|r| rules::idempotency_finish_applies(r.created_at, started_at));
        if !ours {
            return Ok(());
        }
        match response {
            None => {
                s.idempotency.remove(&k);
            }
            Some(resp) => {
                if let Some(r) = s.idempotency.get_mut(&k) {
                    r.response = Some(resp.to_owned());
                }
            }
        }
        Ok(())
    }

    async fn purge_idempotency(
        &self,
        expired_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        Ok(self.lock().purge_idempotency(expired_before, limit))
    }
}

#[async_trait]
impl ReadStore for MemoryStore {
    async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let s = self.lock();
        Ok(s.users_by_email
            .get(email)
            .and_then(|id| s.users.get(id))
            .cloned())
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn find_batch_by_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let s = self.lock();
        Ok(s.tokens.get(hash).and_then(|b| s.batch_record(*b)))
    }

    async fn get_batch(
        &self,
        organization: OrganizationId,
        batch: BatchId,
    ) -> Result<Option<BatchRecord>, StoreError> {
        Ok(self
            .lock()
            .batch_record(batch)
            .filter(|b| b.organization == organization))
    }

    async fn get_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        Ok(self
            .lock()
            .invitation(id)
            .filter(|i| i.organization == organization))
    }

    async fn list_invitations(
        &self,
        q: &InvitationQuery,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        let s = self.lock();
        let mut v: Vec<&InvitationRecord> = s
            .invitations
            .values()
            .filter(|i| i.organization == q.organization)
            .filter(|i| match &q.filter {
                InvitationFilter::Target(t) => i.target == *t,
                InvitationFilter::Email(e) => i.email == *e,
                InvitationFilter::Status(st) => i.status_at(q.now) == *st,
            })
            .filter(|i| q.after.is_none_or(|a| (i.created_at, i.id) > a))
            .filter(|i| {
                q.websites.as_ref().is_none_or(
                    |allow| matches!(i.target, TargetId::Website(w) if allow.contains(&w)),
                )
            })
            .collect();
        v.sort_by_key(|i| (i.created_at, i.id));
        Ok(v.into_iter()
            .take(q.limit)
            .filter_map(|i| s.invitation(i.id))
            .collect())
    }

    async fn outbox_backlog(&self) -> Result<Option<OutboxBacklog>, StoreError> {
        let s = self.lock();
        let queued = s
            .outbox
            .values()
            .filter(|m| m.status == MessageStatus::Queued);
        Ok(Some(queued.fold(OutboxBacklog::default(), |b, m| {
            OutboxBacklog {
                queued: b.queued + 1,
                oldest_created_at: Some(
                    b.oldest_created_at
                        .map_or(m.created_at, |t| t.min(m.created_at)),
                ),
            }
        })))
    }

    fn db_system_name(&self) -> &'static str {
        "memory"
    }
}
