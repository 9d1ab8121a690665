//! The helpers every conformance check shares: seeding, requests, expectations, snapshots,
//! probing mailers, granting and reading access.

use crate::{Backend, Fault, FaultyStore, Harness, MailerMode, World, as_store};
use async_trait::async_trait;
use invites_core::*;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use uuid::Uuid;

pub(super) const DAY: Duration = Duration::from_secs(24 * 3600);
pub(super) const TTL: Duration = Duration::from_secs(7 * 24 * 3600);
pub(super) const MS: Duration = Duration::from_millis(1);
pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
pub(super) fn email(s: &str) -> Email {
    Email::parse(s).expect("a valid test address")
}
pub(super) fn web(id: WebsiteId) -> TargetId {
    TargetId::Website(id)
}
pub(super) fn grp(id: GroupId) -> TargetId {
    TargetId::Group(id)
}
pub(super) fn missing_website() -> WebsiteId {
    WebsiteId(Uuid::from_u128(0xdead_0001))
}
pub(super) fn missing_group() -> GroupId {
    GroupId(Uuid::from_u128(0xdead_0002))
}
pub(super) async fn setup(backend: &Arc<dyn Backend>, seed: u64) -> (World, Harness) {
    let world = World::seed(&**backend).await;
    let harness = Harness::with_seed(as_store(backend), seed);
    (world, harness)
}
/// A harness whose service runs over `backend` wrapped in a [`FaultyStore`] injecting `fault`;
/// the wrapper is returned too, so a test can clear or change the fault.
pub(super) fn faulty_harness(
    backend: &Arc<dyn Backend>,
    fault: Fault,
    seed: u64,
) -> (FaultyStore, Harness) {
    let faulty = FaultyStore::new(as_store(backend));
    faulty.set(fault);
    let h = Harness::with_seed(Arc::new(faulty.clone()), seed);
    (faulty, h)
}
pub(super) async fn snapshot(backend: &Arc<dyn Backend>) -> Snapshot {
    backend.snapshot().await.expect("snapshot")
}
pub(super) fn sites(method: InviteMethod, to: &str, ids: &[WebsiteId]) -> BulkInviteRequest {
    BulkInviteRequest::websites(method, to, ids.iter().copied())
}
pub(super) fn groups(method: InviteMethod, to: &str, ids: &[GroupId]) -> BulkInviteRequest {
    BulkInviteRequest::groups(method, to, ids.iter().copied())
}
pub(super) fn with_role(mut req: BulkInviteRequest, role: Role) -> BulkInviteRequest {
    req.role = Some(role);
    req
}
pub(super) fn with_names(mut req: BulkInviteRequest, first: &str, last: &str) -> BulkInviteRequest {
    req.first_name = Some(first.to_owned());
    req.last_name = Some(last.to_owned());
    req
}
pub(super) async fn run(h: &Harness, p: &Principal, req: BulkInviteRequest) -> BulkInviteResponse {
    h.service
        .bulk_invite(p, req)
        .await
        .expect("the request is processed")
}
pub(super) use InviteMethod::{Direct, Email as ByEmail};
pub(super) use OutcomeCode::{
    AlreadyInvited, AlreadyMember, HasOrgAccess, InternalError, Invited, TargetNotFound,
};
/// The golden texts of docs/contract.md §3 ("website" or "group"); `None` for codes the contract does not fix.
pub(super) fn golden_text(code: OutcomeCode, kind: TargetKind) -> Option<String> {
    let (noun, title) = match kind {
        TargetKind::Website => ("website", "Website"),
        TargetKind::Group => ("group", "Group"),
    };
    Some(match code {
        OutcomeCode::Added => format!("User added to {noun}"),
        OutcomeCode::Invited => format!("Invitation created for {noun}"),
        OutcomeCode::AlreadyMember => format!("User is already a member of this {noun}"),
        OutcomeCode::HasOrgAccess => "User already has access through the organization".into(),
        OutcomeCode::AlreadyInvited => {
            format!("User already has a pending invitation for this {noun}")
        }
        OutcomeCode::TargetNotFound => format!("{title} not found"),
        OutcomeCode::Forbidden => format!("API key does not have access to this {noun}"),
        OutcomeCode::InternalError => "Internal error; nothing was changed for this target".into(),
        _ => return None,
    })
}
/// Checks one result: its target, code, success flag and text.
#[track_caller]
pub(super) fn expect_result(r: &TargetResult, target: TargetId, code: OutcomeCode) {
    assert_eq!(r.code, code, "code of the result for {target:?}: {r:?}");
    match target {
        TargetId::Website(id) => {
            assert_eq!(r.website_id, Some(id), "{r:?}");
            assert_eq!(r.group_id, None, "{r:?}");
        }
        TargetId::Group(id) => {
            assert_eq!(r.group_id, Some(id), "{r:?}");
            assert_eq!(r.website_id, None, "{r:?}");
        }
    }
    let success = matches!(code, OutcomeCode::Added | OutcomeCode::Invited);
    assert_eq!(r.success, success, "{r:?}");
    let golden = golden_text(code, target.kind());
    if success {
        assert_eq!(r.error, None, "{r:?}");
        assert_eq!(r.message, golden, "{r:?}");
    } else {
        assert_eq!(r.message, None, "{r:?}");
        assert!(r.error.is_some(), "{r:?}");
        if golden.is_some() {
            assert_eq!(r.error, golden, "{r:?}");
        }
    }
}
/// Checks a whole response: one result per expected target, in order, and the summary.
#[track_caller]
pub(super) fn expect_codes(resp: &BulkInviteResponse, expected: &[(TargetId, OutcomeCode)]) {
    assert!(resp.success, "a processed request has success = true");
    assert_eq!(resp.results.len(), expected.len(), "{resp:?}");
    for (r, (t, c)) in resp.results.iter().zip(expected) {
        expect_result(r, *t, *c);
    }
    let succeeded = expected
        .iter()
        .filter(|(_, c)| matches!(c, OutcomeCode::Added | OutcomeCode::Invited))
        .count();
    assert_eq!(
        resp.summary,
        Summary {
            requested: expected.len(),
            succeeded,
            failed: expected.len() - succeeded,
        }
    );
    for r in &resp.results {
        match (resp.invite_method, r.code) {
            (Direct, OutcomeCode::Added) => {
                assert_eq!(r.user_id, resp.user_id, "{r:?}");
                assert!(r.user_id.is_some());
                assert_eq!(r.invite_id, None);
            }
            (ByEmail, OutcomeCode::Invited) => {
                assert!(r.invite_id.is_some(), "{r:?}");
                assert_eq!(r.user_id, None);
            }
            _ => {
                assert_eq!(r.user_id, None, "{r:?}");
                assert_eq!(r.invite_id, None, "{r:?}");
            }
        }
    }
    match resp.invite_method {
        Direct => assert!(resp.email.is_none(), "direct mode has no email report"),
        ByEmail => {
            let e = resp.email.expect("email mode has an email report");
            assert_eq!(e.batch_id.is_some(), succeeded > 0, "{e:?}");
            if succeeded == 0 {
                assert_eq!(e.status, EmailStatus::NotSent);
            }
        }
    }
}
#[track_caller]
pub(super) fn assert_code<T: std::fmt::Debug>(
    r: Result<T, InviteError>,
    code: ErrorCode,
) -> InviteError {
    match r {
        Ok(v) => panic!("expected error {code}, got {v:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e:?}");
            e
        }
    }
}
pub(super) fn user<'a>(s: &'a Snapshot, address: &str) -> Option<&'a User> {
    let e = email(address);
    let mut found = s.users.iter().filter(|u| u.email == e);
    let first = found.next();
    assert!(found.next().is_none(), "two users with {address}");
    first
}
pub(super) fn users_with(s: &Snapshot, address: &str) -> usize {
    let e = email(address);
    s.users.iter().filter(|u| u.email == e).count()
}
pub(super) fn memberships_of(s: &Snapshot, user: UserId) -> Vec<&MembershipRow> {
    s.memberships.iter().filter(|m| m.user == user).collect()
}
pub(super) fn membership(s: &Snapshot, target: TargetId, user: UserId) -> Option<&MembershipRow> {
    s.memberships
        .iter()
        .find(|m| m.target == target && m.user == user)
}
pub(super) fn invitation(s: &Snapshot, id: InvitationId) -> &InvitationRecord {
    s.invitations
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("invitation {id} is stored"))
}
pub(super) fn invitations_to<'a>(s: &'a Snapshot, address: &str) -> Vec<&'a InvitationRecord> {
    let e = email(address);
    s.invitations.iter().filter(|i| i.email == e).collect()
}
pub(super) fn stored_pending(s: &Snapshot, target: TargetId, address: &str) -> usize {
    let e = email(address);
    s.invitations
        .iter()
        .filter(|i| i.target == target && i.email == e && i.status == StoredStatus::Pending)
        .count()
}
pub(super) fn outbox_of(s: &Snapshot, batch: BatchId) -> Vec<&OutboxMessage> {
    s.outbox.iter().filter(|m| m.batch_id == batch).collect()
}
pub(super) fn invite_id(resp: &BulkInviteResponse, i: usize) -> InvitationId {
    resp.results[i].invite_id.expect("an invited result")
}
pub(super) fn batch_of(resp: &BulkInviteResponse) -> BatchId {
    resp.email
        .and_then(|e| e.batch_id)
        .expect("a batch was created")
}
/// The token of an accept link in `text` (the first one).
pub(super) fn token_in(text: &str) -> String {
    let start = text.find("token=").expect("an accept link") + "token=".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}
/// Checks the consolidated message: it lists every one of `listed` (name and role) in both
/// parts, none of `absent`, and holds exactly one accept link. The order of the list is the
/// renderer's choice and is not checked.
#[track_caller]
pub(super) fn assert_lists(m: &EmailMessage, listed: &[(&str, Role)], absent: &[&str]) {
    for (name, role) in listed {
        let line = m
            .text
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("the text part lists {name}:\n{}", m.text));
        assert!(
            line.contains(role.as_str()),
            "{name} with role {role}: {line}"
        );
        let line = m
            .html
            .lines()
            .find(|l| l.contains(&escape_html(name)))
            .unwrap_or_else(|| panic!("the HTML part lists {name}:\n{}", m.html));
        assert!(
            line.contains(role.as_str()),
            "{name} with role {role}: {line}"
        );
    }
    for name in absent {
        assert!(!m.text.contains(name), "{name} is not listed:\n{}", m.text);
        assert!(
            !m.html.contains(&escape_html(name)),
            "{name} is not listed:\n{}",
            m.html
        );
    }
    let link = format!("{}?token=", Harness::ACCEPT_URL_BASE);
    assert_eq!(m.text.matches(&link).count(), 1, "one link:\n{}", m.text);
    assert_eq!(m.html.matches(&link).count(), 1, "one link:\n{}", m.html);
    assert_eq!(token_in(&m.text), token_in(&m.html));
    assert!(token_in(&m.text).len() >= 22, "at least 128 bits");
    assert!(
        m.subject.contains(&listed.len().to_string()),
        "the subject counts the targets: {}",
        m.subject
    );
    assert!(!m.subject.contains(['\r', '\n']));
}
/// The response as JSON with the target ids removed (to compare outcomes of different ids).
pub(super) fn without_target_ids(resp: &BulkInviteResponse) -> Value {
    let mut v = serde_json::to_value(resp).expect("serializes");
    if let Some(results) = v.get_mut("results").and_then(Value::as_array_mut) {
        for r in results {
            if let Some(o) = r.as_object_mut() {
                o.remove("website_id");
                o.remove("group_id");
            }
        }
    }
    v
}
/// `serde_json::to_string` of anything serializable.
macro_rules! to_json {
    ($e:expr) => {
        serde_json::to_string($e).expect("serializes")
    };
}
pub(super) use to_json;
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
/// One delivery attempt seen by a [`ProbeMailer`]: the message, and the outbox row the store
/// held for it at that moment.
#[derive(Clone, Debug)]
pub(super) struct Attempt {
    pub(super) message: EmailMessage,
    pub(super) stored: Option<OutboxMessage>,
}
/// A mailer that records every attempt with the stored outbox row at that moment.
#[derive(Debug)]
pub(super) struct ProbeMailer {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) mode: Mutex<MailerMode>,
    pub(super) attempts: Mutex<Vec<Attempt>>,
}
impl ProbeMailer {
    pub(super) fn set_mode(&self, mode: MailerMode) {
        *lock(&self.mode) = mode;
    }

    pub(super) fn attempts(&self) -> Vec<Attempt> {
        lock(&self.attempts).clone()
    }
}
#[async_trait]
impl Mailer for ProbeMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let stored = self
            .backend
            .snapshot()
            .await
            .ok()
            .and_then(|s| s.outbox.into_iter().find(|o| o.id == message.id));
        let mode = *lock(&self.mode);
        lock(&self.attempts).push(Attempt {
            message: message.clone(),
            stored,
        });
        match mode {
            MailerMode::Ok => Ok(()),
            MailerMode::FailTransient => Err(MailError::transient("probe: transient")),
            MailerMode::FailPermanent => Err(MailError::permanent("probe: permanent")),
            MailerMode::FailMisconfigured => Err(MailError::misconfigured("probe: misconfigured")),
        }
    }
}
/// A service over `backend` whose mailer is a [`ProbeMailer`].
pub(super) fn probe_service(
    backend: &Arc<dyn Backend>,
    seed: u64,
    mode: MailerMode,
) -> (InviteService, Arc<ProbeMailer>, crate::ManualClock) {
    let clock = crate::ManualClock::standard();
    let probe = Arc::new(ProbeMailer {
        backend: backend.clone(),
        mode: Mutex::new(mode),
        attempts: Mutex::new(Vec::new()),
    });
    let service = InviteService::new(
        as_store(backend),
        probe.clone(),
        Harness::config(&clock, seed),
    );
    (service, probe, clock)
}
/// A mailer that announces each call and then waits until the test releases it, so a test
/// can hold a request in the middle of its delivery.
#[derive(Debug)]
pub(super) struct GateMailer {
    pub(super) entered: tokio::sync::Notify,
    pub(super) release: tokio::sync::Semaphore,
    pub(super) calls: Mutex<usize>,
}
impl GateMailer {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(GateMailer {
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
            calls: Mutex::new(0),
        })
    }

    pub(super) fn calls(&self) -> usize {
        *self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}
#[async_trait]
impl Mailer for GateMailer {
    async fn send(&self, _message: &EmailMessage) -> Result<(), MailError> {
        *self.calls.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.entered.notify_one();
        self.release.acquire().await.expect("gate open").forget();
        Ok(())
    }
}
pub(super) fn email_of(address: &str) -> Email {
    Email::parse(address).expect("valid address")
}
pub(super) fn must(r: Result<BulkInviteResponse, InviteError>) -> BulkInviteResponse {
    r.expect("the request is processed")
}

// ----- who has access (docs/contract.md §11) ---------------------------------------------------------

/// Adds `address` to the websites as `role` (direct mode); returns the user.
pub(super) async fn add_to_sites(
    h: &Harness,
    p: &Principal,
    address: &str,
    ids: &[WebsiteId],
    role: Role,
) -> UserId {
    let r = run(h, p, with_role(sites(Direct, address, ids), role)).await;
    assert!(
        r.results.iter().all(|r| r.code == OutcomeCode::Added),
        "{r:?}"
    );
    r.user_id.expect("the user added")
}

/// Adds `address` to the groups as `role` (direct mode, global key); returns the user.
pub(super) async fn add_to_groups(
    h: &Harness,
    w: &World,
    address: &str,
    ids: &[GroupId],
    role: Role,
) -> UserId {
    let r = run(
        h,
        &w.global_key(),
        with_role(groups(Direct, address, ids), role),
    )
    .await;
    assert!(
        r.results.iter().all(|r| r.code == OutcomeCode::Added),
        "{r:?}"
    );
    r.user_id.expect("the user added")
}

/// Makes the user with `address` (created with `id` if missing) a member of `org`.
pub(super) async fn org_member(
    backend: &Arc<dyn Backend>,
    org: OrganizationId,
    address: &str,
    id: u128,
    role: OrgRole,
) -> UserId {
    let user = backend
        .create_user(&User {
            id: UserId(Uuid::from_u128(id)),
            email: email(address),
            email_verified: true,
            first_name: None,
            last_name: None,
        })
        .await
        .expect("create user");
    backend
        .add_org_member(org, user, role)
        .await
        .expect("add org member");
    user
}

pub(super) fn reach(role: Role, paths: &[AccessPath]) -> Option<Access> {
    Some(Access {
        role,
        paths: paths.to_vec(),
    })
}

pub(super) fn direct(role: Role) -> AccessPath {
    AccessPath::Direct { role }
}

pub(super) fn via(group: GroupId, role: Role) -> AccessPath {
    AccessPath::Group { group, role }
}

pub(super) fn org(org_role: OrgRole) -> AccessPath {
    AccessPath::Organization { org_role }
}

pub(super) async fn access_of(h: &Harness, user: UserId, website: WebsiteId) -> Option<Access> {
    h.service.access(user, website).await.expect("access")
}
