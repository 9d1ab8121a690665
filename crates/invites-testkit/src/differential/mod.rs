//! Random operation sequences run on backends and on the reference [`Model`] (docs/contract.md §9,
//! invariants 10 and 14).
//!
//! An [`Op`] names what to do; ids that only exist at run time (invitations, batches, accept
//! tokens, memberships) are named by an index into what the run has seen so far (see
//! [`Context`]). A
//! [`Driver`] runs ops on one backend through `InviteService` (a [`Harness`] with a seeded
//! random source and a manual clock); a [`ModelDriver`] runs them on the model.
//! [`run_differential`] runs one sequence on the model and on every backend given and reports
//! the first [`Divergence`]: in an answer, a mail, the snapshot, or the access of a user to a
//! website (every pair of the small world, after every step that could change one).
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

mod context;
mod driver;

pub use context::{Context, directory_user_id, token_in, token_of};
pub use driver::{Driver, ModelDriver};

/// The seed of the random source of every run of [`run_differential`].
pub const DIFFERENTIAL_SEED: u64 = 0x5eed;

/// Most pages one [`Op::List`], [`Op::MembersOf`] or [`Op::WebsitesOf`] reads.
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
    /// `set_member_role`.
    SetMemberRole {
        /// The caller.
        principal: Principal,
        /// Whose membership of what.
        member: Member,
        /// The new role.
        role: Role,
    },
    /// `remove_member`.
    RemoveMember {
        /// The caller.
        principal: Principal,
        /// Whose membership of what.
        member: Member,
    },
    /// `Directory::remove_org_member` of the user with `email` (an unknown id if none).
    RemoveOrgMember {
        /// The organization.
        organization: OrganizationId,
        /// The user's email.
        email: Email,
    },
    /// `Directory::set_org_role` of the user with `email` (an unknown id if none).
    SetOrgRole {
        /// The organization.
        organization: OrganizationId,
        /// The user's email.
        email: Email,
        /// The new role.
        role: OrgRole,
    },
    /// `Directory::add_website_to_group` (refused for an unknown or deleted group or
    /// website, or two organizations).
    AddWebsiteToGroup {
        /// The group.
        group: GroupId,
        /// The website.
        website: WebsiteId,
    },
    /// `Directory::remove_website_from_group`.
    RemoveWebsiteFromGroup {
        /// The group.
        group: GroupId,
        /// The website.
        website: WebsiteId,
    },
    /// `Directory::delete_group`.
    DeleteGroup(GroupId),
    /// `erase_person` of the address as written (any spelling, or not an address).
    Erase(String),
    /// `members_of`, page after page (at most 50 pages) until no cursor is returned.
    MembersOf {
        /// The caller.
        principal: Principal,
        /// The website or group.
        target: TargetId,
        /// The page size (0 and 501 are refused with `invalid_query`).
        limit: usize,
    },
    /// `websites_of` the user with `email` (an unknown id if none), page after page.
    WebsitesOf {
        /// The caller.
        principal: Principal,
        /// The user's email.
        email: Email,
        /// The page size.
        limit: usize,
    },
}

/// The (target, user) a membership change names: a membership the run has seen
/// ([`Context::memberships`], present or gone since) when `seen` is given and the run has
/// seen one, else `target` and the user with `email` (an unknown user id if none has it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Index (modulo) among the memberships seen.
    pub seen: Option<usize>,
    /// The website or group otherwise.
    pub target: TargetId,
    /// The user's email otherwise.
    pub email: Email,
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
    /// `set_member_role` or `remove_member`.
    Member(Result<MemberChangeResponse, Failure>),
    /// A directory change that answers whether it changed something (`None`: refused with
    /// an error).
    Directory(Option<bool>),
    /// `erase_person`.
    Erase(Result<ErasureReport, Failure>),
    /// `members_of`: the pages in order, ending with the first error if any.
    Members(Vec<Result<MemberPage, Failure>>),
    /// `websites_of`: the pages in order, ending with the first error if any.
    Websites(Vec<Result<WebsiteAccessPage, Failure>>),
    /// An op with no answer (directory change, clock, mailer mode, replay with nothing to
    /// replay).
    Done,
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
    /// What disagreed: `"outcome"`, `"mail"`, `"snapshot"`, `"events"` or `"access"`.
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
/// mailer accepted, the snapshots and the event logs (read by cursor) must be equal (errors
/// compared by code; invariant 11), and so must
/// `access` of every user and website of the world: all of them after seeding, after every
/// directory change and after the last op, the ones an op changed after any other op
/// (invariant 14).
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
    let mut sweep = AccessSweep::new(&world);
    let expected = sweep.model_answers(&model);
    for (name, d) in &mut drivers {
        compare(
            name,
            None,
            "",
            "snapshot",
            &model.model.snapshot(),
            &d.snapshot().await,
        )?;
        compare(
            name,
            None,
            "",
            "access",
            &expected,
            &d.access(&sweep.pairs).await,
        )?;
    }
    for (i, op) in ops.iter().enumerate() {
        let directory = model.ctx.resolve(op).changes_directory();
        let expected = model.apply(op);
        let op_text = format!("{op:?}");
        let before = sweep.answers.clone();
        let all = sweep.model_answers(&model);
        // Every pair after a directory change and after the last op; otherwise the pairs
        // whose answer the op changed (or that are new).
        let access: Vec<AccessAnswer> = if directory || i + 1 == ops.len() {
            all
        } else {
            all.into_iter().filter(|a| !before.contains(a)).collect()
        };
        let pairs: Vec<(UserId, WebsiteId)> = access.iter().map(|(pair, _)| *pair).collect();
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
            compare(
                name,
                Some(i),
                &op_text,
                "events",
                &model.events(&world),
                &d.events().await,
            )?;
            if !pairs.is_empty() {
                let actual = d.access(&pairs).await;
                compare(name, Some(i), &op_text, "access", &access, &actual)?;
            }
        }
    }
    Ok(())
}

/// One answer of `access(user, website)`.
pub type AccessAnswer = ((UserId, WebsiteId), Result<Option<Access>, Failure>);

/// Invariant 14 inside the differential run: `access` of every (user, website) pair of the
/// small world (every user the model ever held, erased ones included, and an unknown one;
/// the world's websites, the other organization's and an unknown one) agrees with the
/// model's. The backends are asked for every pair after seeding, after every directory
/// change (group links and organization members are not in the snapshot) and after the
/// last step; after any other step for the pairs whose model answer it changed. Between
/// those, the memberships the answers derive from are compared in the snapshot.
struct AccessSweep {
    websites: Vec<WebsiteId>,
    users: Vec<UserId>,
    pairs: Vec<(UserId, WebsiteId)>,
    answers: Vec<AccessAnswer>,
}

impl AccessSweep {
    fn new(world: &World) -> Self {
        let mut websites = world.websites.clone();
        websites.push(world.other_website);
        websites.push(WebsiteId(UNKNOWN));
        AccessSweep {
            websites,
            users: vec![UserId(UNKNOWN)],
            pairs: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// The model's answers for every pair, after adding the users it holds now.
    fn model_answers(&mut self, model: &ModelDriver) -> Vec<AccessAnswer> {
        for u in model.model.users() {
            if !self.users.contains(&u.id) {
                self.users.push(u.id);
            }
        }
        self.pairs = self
            .users
            .iter()
            .flat_map(|u| self.websites.iter().map(move |w| (*u, *w)))
            .collect();
        self.answers = model.access(&self.pairs);
        self.answers.clone()
    }
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
