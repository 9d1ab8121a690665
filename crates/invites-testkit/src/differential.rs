//! Random operation sequences run on backends and on the reference [`Model`] (docs/contract.md §9,
//! invariant 10).
//!
//! An [`Op`] names what to do; ids that only exist at run time (invitations, batches, accept
//! tokens) are named by an index into what the run has seen so far (see [`Context`]). A
//! [`Driver`] runs ops on one backend through `InviteService` (a [`Harness`] with a seeded
//! random source and a manual clock); a [`ModelDriver`] runs them on the model.
//! [`run_differential`] runs one sequence on the model and on every backend given and reports
//! the first [`Divergence`].
//!
//! A backend crate adds itself to the differential test with a few lines:
//!
//! ```
//! use invites_testkit::differential::{run_differential, Op};
//! use invites_testkit::Backend;
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let ops = [Op::DeliverDue, Op::Advance(std::time::Duration::from_secs(60))];
//! let backends: Vec<(&str, Arc<dyn Backend>)> =
//!     vec![("memory", Arc::new(invites_memory::MemoryStore::new()))];
//! run_differential(&ops, backends).await.unwrap();
//! # });
//! ```

use crate::fixtures::{Backend, Harness, World, as_store};
use crate::model::{Model, ModelSettings};
use crate::{MailerMode, ManualClock};
use invites_core::*;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The seed of the random source of every run of [`run_differential`].
pub const DIFFERENTIAL_SEED: u64 = 0x5eed;

/// Most pages one [`Op::List`] reads.
const MAX_PAGES: usize = 50;

/// An id no run ever creates, used when an op refers to something that does not exist.
pub const UNKNOWN: Uuid = Uuid::from_u128(0xdead_beef);

/// One operation of a random sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `bulk_invite`, or `bulk_invite_idempotent` with the key.
    Bulk {
        /// The caller.
        principal: Principal,
        /// The request.
        request: BulkInviteRequest,
        /// The idempotency key, if any.
        idempotency_key: Option<String>,
    },
    /// Repeats the last `Bulk` that had an idempotency key, exactly (nothing if none yet).
    Replay,
    /// Makes the user with `email` a member of `organization` (the user is created first,
    /// unverified, with [`directory_user_id`], if missing).
    AddOrgMember {
        /// The organization.
        organization: OrganizationId,
        /// The user's email.
        email: Email,
        /// The role.
        role: OrgRole,
    },
    /// Deletes a website with its memberships and invitations.
    DeleteWebsite(WebsiteId),
    /// `deliver_due`.
    DeliverDue,
    /// `purge_expired`.
    Purge,
    /// Changes how the mailer answers.
    SetMailer(MailerMode),
    /// Moves the clock forward.
    Advance(Duration),
    /// `revoke` of a seen invitation ([`Context::invitation`]).
    Revoke {
        /// The caller.
        principal: Principal,
        /// Index among the invitations seen.
        invitation: usize,
    },
    /// `resend` of a seen batch ([`Context::batch`]).
    Resend {
        /// The caller.
        principal: Principal,
        /// Index among the batches seen.
        batch: usize,
    },
    /// `preview` of a token seen in a delivered message or a queued outbox row
    /// ([`Context::token`]).
    Preview {
        /// Index among the tokens seen.
        token: usize,
    },
    /// `list_invitations`, page after page (at most 50 pages) until no cursor is returned.
    List {
        /// The caller.
        principal: Principal,
        /// The filter.
        filter: InvitationFilter,
        /// The page size (0 is refused with `invalid_query`).
        limit: usize,
    },
    /// `accept` of a token seen like for [`Op::Preview`].
    Accept {
        /// Index among the tokens seen.
        token: usize,
        /// Accept as the signed-in user with this email (an unknown user id if none has it).
        signed_in: Option<Email>,
    },
}

/// A whole-request error, reduced to what must agree between implementations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Failure {
    /// The stable code.
    pub code: ErrorCode,
    /// For `resend_too_soon`, the seconds to wait.
    pub retry_after_secs: Option<u64>,
}

impl From<&InviteError> for Failure {
    fn from(e: &InviteError) -> Self {
        Failure {
            code: e.code(),
            retry_after_secs: match e {
                InviteError::ResendTooSoon { retry_after_secs } => Some(*retry_after_secs),
                _ => None,
            },
        }
    }
}

fn reduce<T>(r: Result<T, InviteError>) -> Result<T, Failure> {
    r.map_err(|e| Failure::from(&e))
}

/// What one op answered.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// A bulk invite (or replay).
    Bulk(Result<BulkInviteResponse, Failure>),
    /// `deliver_due`.
    Deliver(Result<DeliveryReport, Failure>),
    /// `purge_expired`.
    Purge(Result<PurgeReport, Failure>),
    /// `preview`.
    Preview(Result<InvitationPreview, Failure>),
    /// `accept`.
    Accept(Result<AcceptResponse, Failure>),
    /// `revoke`.
    Revoke(Result<RevokeResponse, Failure>),
    /// `list_invitations`: the pages in order, ending with the first error if any.
    List(Vec<Result<InvitationPage, Failure>>),
    /// `resend`.
    Resend(Result<ResendResponse, Failure>),
    /// An op with no answer (directory change, clock, mailer mode, replay with nothing to
    /// replay).
    Done,
}

/// An op with its run-time references resolved.
#[derive(Clone, Debug)]
enum Step {
    Bulk {
        principal: Principal,
        request: BulkInviteRequest,
        key: Option<String>,
    },
    AddOrgMember {
        organization: OrganizationId,
        email: Email,
        role: OrgRole,
    },
    DeleteWebsite(WebsiteId),
    DeliverDue,
    Purge,
    SetMailer(MailerMode),
    Advance(Duration),
    Revoke {
        principal: Principal,
        id: InvitationId,
    },
    Resend {
        principal: Principal,
        batch: BatchId,
    },
    Preview {
        token: String,
    },
    List {
        principal: Principal,
        filter: InvitationFilter,
        limit: usize,
    },
    Accept {
        token: String,
        signed_in: Option<Email>,
    },
    Nothing,
}

/// What a run has seen so far, to resolve the indices of [`Op`]s. Every driver keeps its own,
/// built from its own answers; while the answers agree, so do the contexts.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Invitation ids seen in bulk results, first seen first.
    pub invitations: Vec<InvitationId>,
    /// Batch ids seen in bulk responses.
    pub batches: Vec<BatchId>,
    /// Accept tokens seen in delivered messages or in links still held by outbox rows.
    pub tokens: Vec<String>,
    /// The last idempotent bulk request: (principal, key, request).
    pub last_idempotent: Option<(Principal, String, BulkInviteRequest)>,
    mails_seen: usize,
}

fn pick<T: Clone>(items: &[T], index: usize, unknown: T) -> T {
    // One index in sixteen (and every index while nothing was seen) refers to something
    // unknown.
    if items.is_empty() || index % 16 == 15 {
        unknown
    } else {
        items[index % items.len()].clone()
    }
}

/// The accept token in a message's link, if any.
pub fn token_of(message: &EmailMessage) -> Option<String> {
    token_in(&message.text)
}

/// The accept token in a text holding an accept link (`…token=<token>`), if any.
pub fn token_in(text: &str) -> Option<String> {
    let start = text.find("token=")? + "token=".len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!token.is_empty()).then_some(token)
}

impl Context {
    /// The invitation seen at `index` (modulo), or an unknown id (nothing seen yet, or
    /// `index % 16 == 15`).
    pub fn invitation(&self, index: usize) -> InvitationId {
        pick(&self.invitations, index, InvitationId(UNKNOWN))
    }

    /// The batch seen at `index` (modulo), or an unknown id (as for invitations).
    pub fn batch(&self, index: usize) -> BatchId {
        pick(&self.batches, index, BatchId(UNKNOWN))
    }

    /// The token seen at `index` (modulo), or a token no batch has (as for invitations).
    pub fn token(&self, index: usize) -> String {
        pick(&self.tokens, index, "0".repeat(64))
    }

    fn resolve(&self, op: &Op) -> Step {
        match op {
            Op::Bulk {
                principal,
                request,
                idempotency_key,
            } => Step::Bulk {
                principal: principal.clone(),
                request: request.clone(),
                key: idempotency_key.clone(),
            },
            Op::Replay => match &self.last_idempotent {
                Some((principal, key, request)) => Step::Bulk {
                    principal: principal.clone(),
                    request: request.clone(),
                    key: Some(key.clone()),
                },
                None => Step::Nothing,
            },
            Op::AddOrgMember {
                organization,
                email,
                role,
            } => Step::AddOrgMember {
                organization: *organization,
                email: email.clone(),
                role: *role,
            },
            Op::DeleteWebsite(w) => Step::DeleteWebsite(*w),
            Op::DeliverDue => Step::DeliverDue,
            Op::Purge => Step::Purge,
            Op::SetMailer(m) => Step::SetMailer(*m),
            Op::Advance(d) => Step::Advance(*d),
            Op::Revoke {
                principal,
                invitation,
            } => Step::Revoke {
                principal: principal.clone(),
                id: self.invitation(*invitation),
            },
            Op::Resend { principal, batch } => Step::Resend {
                principal: principal.clone(),
                batch: self.batch(*batch),
            },
            Op::Preview { token } => Step::Preview {
                token: self.token(*token),
            },
            Op::List {
                principal,
                filter,
                limit,
            } => Step::List {
                principal: principal.clone(),
                filter: filter.clone(),
                limit: *limit,
            },
            Op::Accept { token, signed_in } => Step::Accept {
                token: self.token(*token),
                signed_in: signed_in.clone(),
            },
        }
    }

    fn observe(
        &mut self,
        step: &Step,
        outcome: &Outcome,
        sent: &[EmailMessage],
        outbox: &[OutboxMessage],
    ) {
        if let Step::Bulk {
            principal,
            request,
            key: Some(key),
        } = step
        {
            self.last_idempotent = Some((principal.clone(), key.clone(), request.clone()));
        }
        if let Outcome::Bulk(Ok(r)) = outcome {
            for id in r.results.iter().filter_map(|r| r.invite_id) {
                if !self.invitations.contains(&id) {
                    self.invitations.push(id);
                }
            }
            if let Some(b) = r.email.and_then(|e| e.batch_id)
                && !self.batches.contains(&b)
            {
                self.batches.push(b);
            }
        }
        let mailed = sent.iter().skip(self.mails_seen).filter_map(token_of);
        let queued = outbox
            .iter()
            .filter_map(|m| m.accept_url.as_deref())
            .filter_map(token_in);
        for t in mailed.chain(queued) {
            if !self.tokens.contains(&t) {
                self.tokens.push(t);
            }
        }
        self.mails_seen = sent.len();
    }
}

/// The id given to a user that [`Op::AddOrgMember`] has to create: a fixed function of the
/// email, so every backend and the model agree on it.
pub fn directory_user_id(email: &Email) -> UserId {
    // FNV-1a, 64 bits, under a fixed prefix no seeded or fixture id uses.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in email.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    UserId(Uuid::from_u128((0xd1u128 << 120) | u128::from(h)))
}

/// Runs ops on one backend through `InviteService`.
#[derive(Clone, Debug)]
pub struct Driver {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The service, its mailer and its clock.
    pub harness: Harness,
    /// The seeded world.
    pub world: World,
    /// What the run has seen.
    pub ctx: Context,
}

impl Driver {
    /// Seeds the [`World`] into `backend` and wires a [`Harness`] with `seed` to it.
    pub async fn new(backend: Arc<dyn Backend>, seed: u64) -> Self {
        let world = World::seed(&*backend).await;
        let harness = Harness::with_seed(as_store(&backend), seed);
        Driver {
            backend,
            harness,
            world,
            ctx: Context::default(),
        }
    }

    /// Runs one op.
    ///
    /// # Panics
    /// If a directory change the op asks for fails.
    pub async fn apply(&mut self, op: &Op) -> Outcome {
        let step = self.ctx.resolve(op);
        let outcome = self.run(&step).await;
        let sent = self.harness.mailer.sent();
        let outbox = self.snapshot().await.outbox;
        self.ctx.observe(&step, &outcome, &sent, &outbox);
        outcome
    }

    /// Runs ops in order.
    pub async fn apply_all(&mut self, ops: &[Op]) {
        for op in ops {
            self.apply(op).await;
        }
    }

    /// The backend's snapshot.
    ///
    /// # Panics
    /// If the backend cannot produce it.
    pub async fn snapshot(&self) -> Snapshot {
        self.backend.snapshot().await.expect("snapshot")
    }

    async fn run(&mut self, step: &Step) -> Outcome {
        let svc = &self.harness.service;
        match step {
            Step::Bulk {
                principal,
                request,
                key,
            } => Outcome::Bulk(reduce(match key {
                Some(k) => {
                    svc.bulk_invite_idempotent(principal, k, request.clone())
                        .await
                }
                None => svc.bulk_invite(principal, request.clone()).await,
            })),
            Step::AddOrgMember {
                organization,
                email,
                role,
            } => {
                let user = self
                    .backend
                    .create_user(&User {
                        id: directory_user_id(email),
                        email: email.clone(),
                        email_verified: false,
                        first_name: None,
                        last_name: None,
                    })
                    .await
                    .expect("create user");
                self.backend
                    .add_org_member(*organization, user, *role)
                    .await
                    .expect("add org member");
                Outcome::Done
            }
            Step::DeleteWebsite(w) => {
                self.backend.delete_website(*w).await.expect("delete");
                Outcome::Done
            }
            Step::DeliverDue => Outcome::Deliver(reduce(svc.deliver_due().await)),
            Step::Purge => Outcome::Purge(reduce(svc.purge_expired().await)),
            Step::SetMailer(m) => {
                self.harness.mailer.set_mode(*m);
                Outcome::Done
            }
            Step::Advance(d) => {
                self.harness.clock.advance(*d);
                Outcome::Done
            }
            Step::Revoke { principal, id } => {
                Outcome::Revoke(reduce(svc.revoke(principal, *id).await))
            }
            Step::Resend { principal, batch } => {
                Outcome::Resend(reduce(svc.resend(principal, *batch).await))
            }
            Step::Preview { token } => Outcome::Preview(reduce(svc.preview(token).await)),
            Step::List {
                principal,
                filter,
                limit,
            } => {
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                while pages.len() < MAX_PAGES {
                    let page = reduce(
                        svc.list_invitations(principal, filter.clone(), *limit, cursor.as_deref())
                            .await,
                    );
                    cursor = page.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(page);
                    if cursor.is_none() {
                        break;
                    }
                }
                Outcome::List(pages)
            }
            Step::Accept { token, signed_in } => {
                let uid = match signed_in {
                    Some(e) => Some(
                        self.backend
                            .find_user(e)
                            .await
                            .ok()
                            .flatten()
                            .map_or(UserId(UNKNOWN), |u| u.id),
                    ),
                    None => None,
                };
                Outcome::Accept(reduce(svc.accept(token, uid).await))
            }
            Step::Nothing => Outcome::Done,
        }
    }
}

/// Runs ops on the reference [`Model`].
#[derive(Clone, Debug)]
pub struct ModelDriver {
    /// The model.
    pub model: Model,
    /// What the run has seen.
    pub ctx: Context,
}

impl ModelDriver {
    /// A model of `world` seeded like a [`Harness`] with `seed`, at the harness's start time.
    pub fn new(world: &World, seed: u64) -> Self {
        let mut model = Model::new(
            seed,
            invites_core::Clock::now(&ManualClock::standard()),
            ModelSettings::harness(),
        );
        model.seed_world(world);
        ModelDriver {
            model,
            ctx: Context::default(),
        }
    }

    /// Runs one op.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        let step = self.ctx.resolve(op);
        let outcome = self.run(&step);
        let sent = self.model.sent().to_vec();
        let outbox = self.model.snapshot().outbox;
        self.ctx.observe(&step, &outcome, &sent, &outbox);
        outcome
    }

    fn run(&mut self, step: &Step) -> Outcome {
        let m = &mut self.model;
        match step {
            Step::Bulk {
                principal,
                request,
                key,
            } => Outcome::Bulk(reduce(match key {
                Some(k) => m.bulk_invite_idempotent(principal, k, request),
                None => m.bulk_invite(principal, request),
            })),
            Step::AddOrgMember {
                organization,
                email,
                role,
            } => {
                let user = m.create_user(User {
                    id: directory_user_id(email),
                    email: email.clone(),
                    email_verified: false,
                    first_name: None,
                    last_name: None,
                });
                m.add_org_member(*organization, user, *role);
                Outcome::Done
            }
            Step::DeleteWebsite(w) => {
                m.delete_website(*w);
                Outcome::Done
            }
            Step::DeliverDue => Outcome::Deliver(Ok(m.deliver_due())),
            Step::Purge => Outcome::Purge(Ok(m.purge_expired())),
            Step::SetMailer(mode) => {
                m.set_mailer(*mode);
                Outcome::Done
            }
            Step::Advance(d) => {
                m.advance(*d);
                Outcome::Done
            }
            Step::Revoke { principal, id } => Outcome::Revoke(reduce(m.revoke(principal, *id))),
            Step::Resend { principal, batch } => {
                Outcome::Resend(reduce(m.resend(principal, *batch)))
            }
            Step::Preview { token } => Outcome::Preview(reduce(m.preview(token))),
            Step::List {
                principal,
                filter,
                limit,
            } => {
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                while pages.len() < MAX_PAGES {
                    let page =
                        reduce(m.list_invitations(principal, filter, *limit, cursor.as_deref()));
                    cursor = page.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(page);
                    if cursor.is_none() {
                        break;
                    }
                }
                Outcome::List(pages)
            }
            Step::Accept { token, signed_in } => {
                let uid = signed_in
                    .as_ref()
                    .map(|e| m.find_user(e).map_or(UserId(UNKNOWN), |u| u.id));
                Outcome::Accept(reduce(m.accept(token, uid)))
            }
            Step::Nothing => Outcome::Done,
        }
    }
}

/// The first disagreement between a backend and the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The backend's name.
    pub backend: String,
    /// The index of the op after which they disagreed (`None`: right after seeding).
    pub step: Option<usize>,
    /// The op, printed.
    pub op: String,
    /// What disagreed: `"outcome"`, `"mail"` or `"snapshot"`.
    pub what: &'static str,
    /// The model's side, printed.
    pub expected: String,
    /// The backend's side, printed.
    pub actual: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backend {:?} disagrees with the model on the {} at step {:?} ({})\n--- model:\n{}\n--- backend:\n{}",
            self.backend, self.what, self.step, self.op, self.expected, self.actual
        )
    }
}

impl std::error::Error for Divergence {}

/// Runs `ops` on the model and on every backend (each must be empty; it is seeded with the
/// [`World`] here), with [`DIFFERENTIAL_SEED`]. After every op the answers, the messages the
/// mailer accepted and the snapshots must be equal (errors compared by code).
///
/// # Errors
/// The first [`Divergence`] (boxed: it holds both sides printed).
///
/// # Panics
/// If a backend cannot be seeded or snapshotted.
pub async fn run_differential(
    ops: &[Op],
    backends: Vec<(&str, Arc<dyn Backend>)>,
) -> Result<(), Box<Divergence>> {
    let mut drivers = Vec::with_capacity(backends.len());
    for (name, backend) in backends {
        drivers.push((name, Driver::new(backend, DIFFERENTIAL_SEED).await));
    }
    let Some(world) = drivers.first().map(|(_, d)| d.world.clone()) else {
        return Ok(());
    };
    let mut model = ModelDriver::new(&world, DIFFERENTIAL_SEED);
    for (name, d) in &drivers {
        compare(
            name,
            None,
            "",
            "snapshot",
            &model.model.snapshot(),
            &d.snapshot().await,
        )?;
    }
    for (i, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let op_text = format!("{op:?}");
        for (name, d) in &mut drivers {
            let actual = d.apply(op).await;
            compare(name, Some(i), &op_text, "outcome", &expected, &actual)?;
            compare(
                name,
                Some(i),
                &op_text,
                "mail",
                model.model.sent(),
                &d.harness.mailer.sent(),
            )?;
            compare(
                name,
                Some(i),
                &op_text,
                "snapshot",
                &model.model.snapshot(),
                &d.snapshot().await,
            )?;
        }
    }
    Ok(())
}

fn compare<T: PartialEq + fmt::Debug + ?Sized>(
    backend: &str,
    step: Option<usize>,
    op: &str,
    what: &'static str,
    expected: &T,
    actual: &T,
) -> Result<(), Box<Divergence>> {
    if expected == actual {
        return Ok(());
    }
    Err(Box::new(Divergence {
        backend: backend.to_owned(),
        step,
        op: op.to_owned(),
        what,
        expected: format!("{expected:#?}"),
        actual: format!("{actual:#?}"),
    }))
}

/// A current-thread tokio runtime, one per proptest case.
///
/// # Panics
/// If the runtime cannot be built.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// A fresh [`invites_memory::MemoryStore`] brought into the state `setup` leads to, by a
/// [`Driver`] seeded with `seed`; afterwards the driver's mailer accepts every message.
pub async fn seeded_memory(setup: &[Op], seed: u64) -> (invites_memory::MemoryStore, Driver) {
    let store = invites_memory::MemoryStore::new();
    let mut driver = Driver::new(Arc::new(store.clone()), seed).await;
    driver.apply_all(setup).await;
    driver.harness.mailer.set_mode(MailerMode::Ok);
    (store, driver)
}
