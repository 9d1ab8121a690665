//! The conformance suite: the one set of behaviour tests every storage backend passes.
//!
//! Each test is a plain `pub async fn name(backend: Arc<dyn Backend>)` that seeds a [`World`]
//! into the fresh backend it is given, drives an [`InviteService`] through a [`Harness`]
//! (manual clock, seeded randomness, recording mailer), and checks what the service answers
//! and what [`Inspect::snapshot`] shows afterwards. Tests match on outcome codes, error codes
//! and variants, never on message text, except the golden outcome texts SPEC §3 fixes.
//! Nothing sleeps: time moves only through the [`ManualClock`](crate::ManualClock).
//!
//! A backend runs the whole suite with one [`conformance_suite!`](crate::conformance_suite)
//! invocation in its tests, given an async factory that makes a fresh, empty store:
//!
//! ```ignore
//! use std::sync::Arc;
//! invites_testkit::conformance_suite!(async { Arc::new(invites_memory::MemoryStore::new()) });
//! ```
//!
//! The macro holds the single list of tests; adding a test here means adding its name there
//! (a unit test of this crate checks that every `pub async fn` is listed).

use crate::{Backend, Fault, FaultyStore, Harness, MailerMode, World, as_store};
use async_trait::async_trait;
use invites_core::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const DAY: Duration = Duration::from_secs(24 * 3600);
const TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const MS: Duration = Duration::from_millis(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("a valid test address")
}

fn web(id: WebsiteId) -> TargetId {
    TargetId::Website(id)
}

fn grp(id: GroupId) -> TargetId {
    TargetId::Group(id)
}

fn missing_website() -> WebsiteId {
    WebsiteId(Uuid::from_u128(0xdead_0001))
}

fn missing_group() -> GroupId {
    GroupId(Uuid::from_u128(0xdead_0002))
}

async fn setup(backend: &Arc<dyn Backend>, seed: u64) -> (World, Harness) {
    let world = World::seed(&**backend).await;
    let harness = Harness::with_seed(as_store(backend), seed);
    (world, harness)
}

/// A harness whose service runs over `backend` wrapped in a [`FaultyStore`] injecting `fault`;
/// the wrapper is returned too, so a test can clear or change the fault.
fn faulty_harness(backend: &Arc<dyn Backend>, fault: Fault, seed: u64) -> (FaultyStore, Harness) {
    let faulty = FaultyStore::new(as_store(backend));
    faulty.set(fault);
    let h = Harness::with_seed(Arc::new(faulty.clone()), seed);
    (faulty, h)
}

async fn snapshot(backend: &Arc<dyn Backend>) -> Snapshot {
    backend.snapshot().await.expect("snapshot")
}

fn sites(method: InviteMethod, to: &str, ids: &[WebsiteId]) -> BulkInviteRequest {
    BulkInviteRequest::websites(method, to, ids.iter().copied())
}

fn groups(method: InviteMethod, to: &str, ids: &[GroupId]) -> BulkInviteRequest {
    BulkInviteRequest::groups(method, to, ids.iter().copied())
}

fn with_role(mut req: BulkInviteRequest, role: Role) -> BulkInviteRequest {
    req.role = Some(role);
    req
}

fn with_names(mut req: BulkInviteRequest, first: &str, last: &str) -> BulkInviteRequest {
    req.first_name = Some(first.to_owned());
    req.last_name = Some(last.to_owned());
    req
}

async fn run(h: &Harness, p: &Principal, req: BulkInviteRequest) -> BulkInviteResponse {
    h.service
        .bulk_invite(p, req)
        .await
        .expect("the request is processed")
}

use InviteMethod::{Direct, Email as ByEmail};
use OutcomeCode::{
    AlreadyInvited, AlreadyMember, HasOrgAccess, InternalError, Invited, TargetNotFound,
};

/// The golden texts of SPEC §3 ("website" or "group"); `None` for codes the SPEC does not fix.
fn golden_text(code: OutcomeCode, kind: TargetKind) -> Option<String> {
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
fn expect_result(r: &TargetResult, target: TargetId, code: OutcomeCode) {
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
fn expect_codes(resp: &BulkInviteResponse, expected: &[(TargetId, OutcomeCode)]) {
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
fn assert_code<T: std::fmt::Debug>(r: Result<T, InviteError>, code: ErrorCode) -> InviteError {
    match r {
        Ok(v) => panic!("expected error {code}, got {v:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e:?}");
            e
        }
    }
}

fn user<'a>(s: &'a Snapshot, address: &str) -> Option<&'a User> {
    let e = email(address);
    let mut found = s.users.iter().filter(|u| u.email == e);
    let first = found.next();
    assert!(found.next().is_none(), "two users with {address}");
    first
}

fn users_with(s: &Snapshot, address: &str) -> usize {
    let e = email(address);
    s.users.iter().filter(|u| u.email == e).count()
}

fn memberships_of(s: &Snapshot, user: UserId) -> Vec<&MembershipRow> {
    s.memberships.iter().filter(|m| m.user == user).collect()
}

fn membership(s: &Snapshot, target: TargetId, user: UserId) -> Option<&MembershipRow> {
    s.memberships
        .iter()
        .find(|m| m.target == target && m.user == user)
}

fn invitation(s: &Snapshot, id: InvitationId) -> &InvitationRecord {
    s.invitations
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("invitation {id} is stored"))
}

fn invitations_to<'a>(s: &'a Snapshot, address: &str) -> Vec<&'a InvitationRecord> {
    let e = email(address);
    s.invitations.iter().filter(|i| i.email == e).collect()
}

fn stored_pending(s: &Snapshot, target: TargetId, address: &str) -> usize {
    let e = email(address);
    s.invitations
        .iter()
        .filter(|i| i.target == target && i.email == e && i.status == StoredStatus::Pending)
        .count()
}

fn outbox_of(s: &Snapshot, batch: BatchId) -> Vec<&OutboxMessage> {
    s.outbox.iter().filter(|m| m.batch_id == batch).collect()
}

fn invite_id(resp: &BulkInviteResponse, i: usize) -> InvitationId {
    resp.results[i].invite_id.expect("an invited result")
}

fn batch_of(resp: &BulkInviteResponse) -> BatchId {
    resp.email
        .and_then(|e| e.batch_id)
        .expect("a batch was created")
}

/// The token of an accept link in `text` (the first one).
fn token_in(text: &str) -> String {
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
fn assert_lists(m: &EmailMessage, listed: &[(&str, Role)], absent: &[&str]) {
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
fn without_target_ids(resp: &BulkInviteResponse) -> Value {
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One delivery attempt seen by a [`ProbeMailer`]: the message, and the outbox row the store
/// held for it at that moment.
#[derive(Clone, Debug)]
struct Attempt {
    message: EmailMessage,
    stored: Option<OutboxMessage>,
}

/// A mailer that records every attempt with the stored outbox row at that moment.
#[derive(Debug)]
struct ProbeMailer {
    backend: Arc<dyn Backend>,
    mode: Mutex<MailerMode>,
    attempts: Mutex<Vec<Attempt>>,
}

impl ProbeMailer {
    fn set_mode(&self, mode: MailerMode) {
        *lock(&self.mode) = mode;
    }

    fn attempts(&self) -> Vec<Attempt> {
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
        }
    }
}

/// A service over `backend` whose mailer is a [`ProbeMailer`].
fn probe_service(
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

// ---------------------------------------------------------------------------------------------
// 1. Per-target outcomes
// ---------------------------------------------------------------------------------------------

/// Direct mode adds the user to each target and creates the user (unverified, with the
/// request's trimmed names) in the same request; a later direct add reuses the user and does
/// not overwrite its names. No email, no invitation.
pub async fn direct_adds_and_creates_unverified_user(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 101).await;
    let (w0, w1, w2) = (w.websites[0], w.websites[1], w.websites[2]);
    let req = with_names(
        with_role(sites(Direct, "ann@new.test", &[w0, w1]), Role::Admin),
        "  Ann ",
        "Lee",
    );
    let r = run(&h, &w.global_key(), req).await;
    expect_codes(
        &r,
        &[(web(w0), OutcomeCode::Added), (web(w1), OutcomeCode::Added)],
    );
    assert_eq!(r.invite_method, Direct);
    assert!(r.user_created);
    let uid = r.user_id.expect("the created user");

    let s = snapshot(&backend).await;
    let u = user(&s, "ann@new.test").expect("the user was created");
    assert_eq!(u.id, uid);
    assert!(!u.email_verified, "direct mode creates unverified users");
    assert_eq!(u.first_name.as_ref().map(PersonName::as_str), Some("Ann"));
    assert_eq!(u.last_name.as_ref().map(PersonName::as_str), Some("Lee"));
    let rows = memberships_of(&s, uid);
    assert_eq!(rows.len(), 2);
    for t in [web(w0), web(w1)] {
        let m = membership(&s, t, uid).expect("membership");
        assert_eq!(m.role, Role::Admin);
        assert_eq!(m.created_at, h.clock.now());
    }
    assert!(s.invitations.is_empty() && s.batches.is_empty() && s.outbox.is_empty());

    h.clock.advance(secs(5));
    let req = with_names(sites(Direct, "ann@new.test", &[w2]), "Changed", "Name");
    let r = run(&h, &w.global_key(), req).await;
    expect_codes(&r, &[(web(w2), OutcomeCode::Added)]);
    assert!(!r.user_created);
    assert_eq!(r.user_id, Some(uid));
    let s = snapshot(&backend).await;
    let u = user(&s, "ann@new.test").expect("user");
    assert_eq!(u.first_name.as_ref().map(PersonName::as_str), Some("Ann"));
    assert_eq!(u.last_name.as_ref().map(PersonName::as_str), Some("Lee"));
    assert_eq!(
        membership(&s, web(w2), uid).map(|m| m.role),
        Some(Role::Viewer),
        "the default role is viewer"
    );
    assert_eq!(h.mailer.attempts(), 0, "direct mode sends no email");
}

/// Direct mode with an existing user adds memberships for that user and leaves its names
/// and verification state untouched.
pub async fn direct_keeps_existing_user_untouched(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 102).await;
    let before = snapshot(&backend).await;
    let old = user(&before, "existing@acme.test").expect("seeded").clone();
    let req = with_names(
        sites(Direct, "Existing@Acme.test", &[w.websites[0]]),
        "New",
        "Name",
    );
    let r = run(&h, &w.global_key(), req).await;
    expect_codes(&r, &[(web(w.websites[0]), OutcomeCode::Added)]);
    assert!(!r.user_created);
    assert_eq!(r.user_id, Some(w.existing_user));
    let s = snapshot(&backend).await;
    assert_eq!(user(&s, "existing@acme.test"), Some(&old));
    assert_eq!(s.users.len(), before.users.len());
    assert!(membership(&s, web(w.websites[0]), w.existing_user).is_some());
}

/// `already_member`: an explicit membership exists, in direct and in email mode; the
/// existing membership (role, time) is not changed and nothing else is written.
pub async fn already_member_keeps_role(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 103).await;
    let (w0, w1) = (w.websites[0], w.websites[1]);
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        with_role(sites(Direct, "existing@acme.test", &[w0]), Role::Admin),
    )
    .await;
    expect_codes(&r, &[(web(w0), OutcomeCode::Added)]);
    let t0 = h.clock.now();
    h.clock.advance(secs(10));

    let r = run(
        &h,
        &p,
        with_role(sites(Direct, "existing@acme.test", &[w0, w1]), Role::Viewer),
    )
    .await;
    expect_codes(
        &r,
        &[(web(w0), AlreadyMember), (web(w1), OutcomeCode::Added)],
    );
    assert_eq!(r.user_id, Some(w.existing_user));

    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &p,
        with_role(sites(ByEmail, "existing@acme.test", &[w0]), Role::Viewer),
    )
    .await;
    expect_codes(&r, &[(web(w0), AlreadyMember)]);
    assert_eq!(r.user_id, Some(w.existing_user));
    assert_eq!(snapshot(&backend).await, before);

    let s = snapshot(&backend).await;
    let m = membership(&s, web(w0), w.existing_user).expect("membership");
    assert_eq!(m.role, Role::Admin, "the role is not changed");
    assert_eq!(m.created_at, t0);
    assert_eq!(memberships_of(&s, w.existing_user).len(), 2);
    assert!(s.invitations.is_empty());
    assert_eq!(h.mailer.attempts(), 0);
}

/// `has_org_access`: an organization member is neither added nor invited, for websites and
/// groups, in both modes, whatever the case of the address. Nothing changes.
pub async fn org_member_has_org_access(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 104).await;
    let before = snapshot(&backend).await;
    for method in [Direct, ByEmail] {
        let r = run(
            &h,
            &w.global_key(),
            sites(method, "Admin@ACME.test", &[w.websites[0], w.websites[5]]),
        )
        .await;
        expect_codes(
            &r,
            &[
                (web(w.websites[0]), HasOrgAccess),
                (web(w.websites[5]), HasOrgAccess),
            ],
        );
        assert_eq!(r.user_id, Some(w.org_admin));
        assert!(!r.user_created);
        let r = run(
            &h,
            &w.global_key(),
            groups(method, "admin@acme.test", &[w.groups[0]]),
        )
        .await;
        expect_codes(&r, &[(grp(w.groups[0]), HasOrgAccess)]);
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);
}

/// `already_invited`: a live invitation for (target, email) blocks a second one; the other
/// targets of the request are still invited, and the new email lists only those.
pub async fn already_invited_blocks_second_invitation(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 105).await;
    let (w0, w1) = (w.websites[0], w.websites[1]);
    let p = w.global_key();
    let r1 = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    expect_codes(&r1, &[(web(w0), Invited)]);
    let first = invite_id(&r1, 0);
    let s1 = snapshot(&backend).await;

    h.clock.advance(secs(60));
    let r2 = run(&h, &p, sites(ByEmail, "ANN@new.test", &[w0, w1])).await;
    expect_codes(&r2, &[(web(w0), AlreadyInvited), (web(w1), Invited)]);
    assert_ne!(batch_of(&r2), batch_of(&r1));
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 2);
    assert_lists(&sent[1], &[("Site 1", Role::Viewer)], &["Site 0"]);

    let s = snapshot(&backend).await;
    assert_eq!(invitation(&s, first), invitation(&s1, first), "unchanged");
    assert_eq!(invitations_to(&s, "ann@new.test").len(), 2);
    assert_eq!(stored_pending(&s, web(w0), "ann@new.test"), 1);

    let r = run(&h, &p, groups(ByEmail, "ann@new.test", &[w.groups[0]])).await;
    expect_codes(&r, &[(grp(w.groups[0]), Invited)]);
    let r = run(&h, &p, groups(ByEmail, "ann@new.test", &[w.groups[0]])).await;
    expect_codes(&r, &[(grp(w.groups[0]), AlreadyInvited)]);
}

/// `target_not_found`: a missing id and another organization's website or group give
/// identical results (apart from the id), in both modes, and change nothing.
pub async fn target_not_found_is_uniform(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 106).await;
    let p = w.global_key();
    let before = snapshot(&backend).await;
    for method in [Direct, ByEmail] {
        for to in ["ann@new.test", "existing@acme.test"] {
            let missing = run(&h, &p, sites(method, to, &[missing_website()])).await;
            let other = run(&h, &p, sites(method, to, &[w.other_website])).await;
            expect_codes(&missing, &[(web(missing_website()), TargetNotFound)]);
            expect_codes(&other, &[(web(w.other_website), TargetNotFound)]);
            assert_eq!(without_target_ids(&missing), without_target_ids(&other));

            let both = run(
                &h,
                &p,
                sites(method, to, &[missing_website(), w.other_website]),
            )
            .await;
            expect_codes(
                &both,
                &[
                    (web(missing_website()), TargetNotFound),
                    (web(w.other_website), TargetNotFound),
                ],
            );

            let missing = run(&h, &p, groups(method, to, &[missing_group()])).await;
            let other = run(&h, &p, groups(method, to, &[w.other_group])).await;
            expect_codes(&missing, &[(grp(missing_group()), TargetNotFound)]);
            expect_codes(&other, &[(grp(w.other_group), TargetNotFound)]);
            assert_eq!(without_target_ids(&missing), without_target_ids(&other));
        }
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);
}

/// `forbidden`: a website-scoped key gets `forbidden` for websites outside its allowlist, and
/// the other targets of the request are still processed. A scoped key that lists another
/// organization's website gets `target_not_found` for it. When every target is forbidden,
/// no user is created.
pub async fn scoped_key_forbidden_per_target(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 107).await;
    let ws = &w.websites;
    let scoped = w.scoped_key(&[ws[0], ws[2], w.other_website]);
    let r = run(
        &h,
        &scoped,
        sites(Direct, "ann@new.test", &[ws[1], ws[0], ws[3], ws[2]]),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(ws[1]), OutcomeCode::Forbidden),
            (web(ws[0]), OutcomeCode::Added),
            (web(ws[3]), OutcomeCode::Forbidden),
            (web(ws[2]), OutcomeCode::Added),
        ],
    );
    let uid = r.user_id.expect("user");
    let s = snapshot(&backend).await;
    let targets: BTreeSet<TargetId> = memberships_of(&s, uid).iter().map(|m| m.target).collect();
    assert_eq!(targets, BTreeSet::from([web(ws[0]), web(ws[2])]));

    let r = run(
        &h,
        &scoped,
        sites(
            ByEmail,
            "bob@new.test",
            &[ws[1], ws[0], w.other_website, ws[2]],
        ),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(ws[1]), OutcomeCode::Forbidden),
            (web(ws[0]), Invited),
            (web(w.other_website), TargetNotFound),
            (web(ws[2]), Invited),
        ],
    );
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_lists(
        &sent[0],
        &[("Site 0", Role::Viewer), ("Site 2", Role::Viewer)],
        &["Site 1", "Elsewhere"],
    );

    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &scoped,
        sites(Direct, "carol@new.test", &[ws[1], ws[4]]),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(ws[1]), OutcomeCode::Forbidden),
            (web(ws[4]), OutcomeCode::Forbidden),
        ],
    );
    assert_eq!(r.user_id, None);
    assert!(!r.user_created);
    assert_eq!(snapshot(&backend).await, before);
}

/// `internal_error`: targets whose unit fails in the store are reported `internal_error` and
/// leave no trace; the other targets of the request succeed as if nothing had failed.
pub async fn failing_target_is_internal_error_only(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let w = world.websites.clone();
    let failing = Fault {
        failing_targets: BTreeSet::from([web(w[1]), web(w[3])]),
        ..Fault::default()
    };
    let (_faulty, h) = faulty_harness(&backend, failing, 108);
    let p = world.global_key();

    let r = run(&h, &p, sites(Direct, "ann@new.test", &[w[1], w[0], w[2]])).await;
    expect_codes(
        &r,
        &[
            (web(w[1]), InternalError),
            (web(w[0]), OutcomeCode::Added),
            (web(w[2]), OutcomeCode::Added),
        ],
    );
    assert!(r.user_created);
    let uid = r.user_id.expect("user");
    let s = snapshot(&backend).await;
    let targets: BTreeSet<TargetId> = memberships_of(&s, uid).iter().map(|m| m.target).collect();
    assert_eq!(targets, BTreeSet::from([web(w[0]), web(w[2])]));

    let r = run(&h, &p, sites(ByEmail, "bob@new.test", &[w[3], w[4], w[1]])).await;
    expect_codes(
        &r,
        &[
            (web(w[3]), InternalError),
            (web(w[4]), Invited),
            (web(w[1]), InternalError),
        ],
    );
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Sent));
    let s = snapshot(&backend).await;
    let bob = invitations_to(&s, "bob@new.test");
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].target, web(w[4]));
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_lists(&sent[0], &[("Site 4", Role::Viewer)], &["Site 3", "Site 1"]);

    let before = snapshot(&backend).await;
    let r = run(&h, &p, sites(Direct, "carol@new.test", &[w[1], w[3]])).await;
    expect_codes(
        &r,
        &[(web(w[1]), InternalError), (web(w[3]), InternalError)],
    );
    assert_eq!(r.user_id, None, "no target succeeded, so no user");
    assert!(!r.user_created);
    assert_eq!(snapshot(&backend).await, before);
}

/// A batch that fails as a whole makes every target `internal_error` and stores nothing (no
/// user, no invitation, no batch, no message); after the fault clears, the same request works.
pub async fn failing_batch_is_all_internal_error(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let w = world.websites.clone();
    let (faulty, h) = faulty_harness(
        &backend,
        Fault {
            fail_batches: true,
            ..Fault::default()
        },
        109,
    );
    let p = world.global_key();
    let before = snapshot(&backend).await;

    let r = run(&h, &p, sites(Direct, "ann@new.test", &[w[0], w[1]])).await;
    expect_codes(
        &r,
        &[(web(w[0]), InternalError), (web(w[1]), InternalError)],
    );
    assert_eq!(r.user_id, None);
    assert!(!r.user_created);

    let r = run(&h, &p, sites(Direct, "existing@acme.test", &[w[0]])).await;
    expect_codes(&r, &[(web(w[0]), InternalError)]);
    assert!(!r.user_created);

    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[w[0], w[1]])).await;
    expect_codes(
        &r,
        &[(web(w[0]), InternalError), (web(w[1]), InternalError)],
    );
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::NotSent));

    let r = run(&h, &p, groups(ByEmail, "ann@new.test", &[world.groups[0]])).await;
    expect_codes(&r, &[(grp(world.groups[0]), InternalError)]);

    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);

    faulty.set(Fault::default());
    let r = run(&h, &p, sites(Direct, "ann@new.test", &[w[0]])).await;
    expect_codes(&r, &[(web(w[0]), OutcomeCode::Added)]);
    assert!(r.user_created);
}

/// Groups are targets like websites: memberships and invitations name the group, results
/// carry `group_id`, texts say "group", the email lists group names.
pub async fn groups_are_targets(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 110).await;
    let (g0, g1) = (w.groups[0], w.groups[1]);
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        with_role(groups(Direct, "ann@new.test", &[g0, g1]), Role::Admin),
    )
    .await;
    expect_codes(
        &r,
        &[(grp(g0), OutcomeCode::Added), (grp(g1), OutcomeCode::Added)],
    );
    let uid = r.user_id.expect("user");
    let s = snapshot(&backend).await;
    assert_eq!(
        membership(&s, grp(g0), uid).map(|m| m.role),
        Some(Role::Admin)
    );
    assert!(membership(&s, grp(g1), uid).is_some());
    assert_eq!(
        memberships_of(&s, uid).len(),
        2,
        "only the groups themselves"
    );

    let r = run(&h, &p, groups(Direct, "ann@new.test", &[g1])).await;
    expect_codes(&r, &[(grp(g1), AlreadyMember)]);

    let r = run(&h, &p, groups(ByEmail, "bob@new.test", &[g1, g0])).await;
    expect_codes(&r, &[(grp(g1), Invited), (grp(g0), Invited)]);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_lists(
        &sent[0],
        &[("Group 1", Role::Viewer), ("Group 0", Role::Viewer)],
        &["Site 0"],
    );
    let s = snapshot(&backend).await;
    let targets: BTreeSet<TargetId> = invitations_to(&s, "bob@new.test")
        .iter()
        .map(|i| i.target)
        .collect();
    assert_eq!(targets, BTreeSet::from([grp(g0), grp(g1)]));
    let names: BTreeSet<&str> = invitations_to(&s, "bob@new.test")
        .iter()
        .map(|i| i.target_name.as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["Group 0", "Group 1"]));
}

// ---------------------------------------------------------------------------------------------
// 2. Whole-request rejections
// ---------------------------------------------------------------------------------------------

/// Validation failures (a sample of every value rule) are whole-request rejections with a
/// stable code naming the field: nothing is written and no email is sent, with or without an
/// idempotency key.
pub async fn validation_rejections_change_nothing(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 111).await;
    let ws = &w.websites;
    let p = w.global_key();
    let before = snapshot(&backend).await;
    let fifty_one: Vec<WebsiteId> = (0..51)
        .map(|i| WebsiteId(Uuid::from_u128(0x9000 + i)))
        .collect();
    for method in [Direct, ByEmail] {
        let mut both = sites(method, "ann@new.test", &[ws[0]]);
        both.group_ids = Some(Vec::new());
        let mut neither = sites(method, "ann@new.test", &[]);
        neither.website_ids = None;
        let cases: Vec<(BulkInviteRequest, ErrorCode, Option<&str>)> = vec![
            (both, ErrorCode::MutuallyExclusiveTargets, None),
            (neither, ErrorCode::MissingTargets, None),
            (
                sites(method, "ann@new.test", &[]),
                ErrorCode::InvalidTargetCount,
                Some("website_ids"),
            ),
            (
                sites(method, "ann@new.test", &fifty_one),
                ErrorCode::InvalidTargetCount,
                Some("website_ids"),
            ),
            (
                groups(method, "ann@new.test", &[]),
                ErrorCode::InvalidTargetCount,
                Some("group_ids"),
            ),
            (
                sites(method, "ann@new.test", &[ws[0], ws[1], ws[0]]),
                ErrorCode::DuplicateTarget,
                Some("website_ids[2]"),
            ),
            (
                groups(method, "ann@new.test", &[w.groups[0], w.groups[0]]),
                ErrorCode::DuplicateTarget,
                Some("group_ids[1]"),
            ),
            (
                sites(method, "not-an-address", &[ws[0]]),
                ErrorCode::InvalidEmail,
                Some("email"),
            ),
            (
                sites(method, "   ", &[ws[0]]),
                ErrorCode::InvalidEmail,
                Some("email"),
            ),
            (
                with_names(
                    sites(method, "ann@new.test", &[ws[0]]),
                    "Ann\r\nBcc: x",
                    "Lee",
                ),
                ErrorCode::InvalidName,
                Some("first_name"),
            ),
            (
                with_names(
                    sites(method, "ann@new.test", &[ws[0]]),
                    "Ann",
                    &"x".repeat(101),
                ),
                ErrorCode::InvalidName,
                Some("last_name"),
            ),
        ];
        for (req, code, field) in cases {
            for idempotent in [false, true] {
                let result = if idempotent {
                    h.service
                        .bulk_invite_idempotent(&p, "validation-key", req.clone())
                        .await
                } else {
                    h.service.bulk_invite(&p, req.clone()).await
                };
                let e = assert_code(result, code);
                assert!(
                    matches!(e, InviteError::Validation { .. }),
                    "a validation error: {e:?}"
                );
                let named = e.field().expect("the error names a field");
                assert!(!named.is_empty());
                if let Some(f) = field {
                    assert_eq!(named, f, "{code}");
                }
            }
        }
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);
}

/// `group_ids` with a website-scoped key is `global_key_required` (a permission error, before
/// any value check), in both modes, and changes nothing; a global key may use groups.
pub async fn group_ids_need_global_key(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 112).await;
    let scoped = w.scoped_key(&[w.websites[0], w.websites[1]]);
    let before = snapshot(&backend).await;
    for method in [Direct, ByEmail] {
        for to in ["ann@new.test", "not-an-address"] {
            let req = groups(method, to, &[w.groups[0]]);
            let e = assert_code(
                h.service.bulk_invite(&scoped, req.clone()).await,
                ErrorCode::GlobalKeyRequired,
            );
            assert!(matches!(e, InviteError::Forbidden { .. }), "{e:?}");
            assert_code(
                h.service
                    .bulk_invite_idempotent(&scoped, "groups-key", req)
                    .await,
                ErrorCode::GlobalKeyRequired,
            );
        }
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);

    let r = run(
        &h,
        &w.global_key(),
        groups(Direct, "ann@new.test", &[w.groups[0]]),
    )
    .await;
    expect_codes(&r, &[(grp(w.groups[0]), OutcomeCode::Added)]);
}

// ---------------------------------------------------------------------------------------------
// 3. Results
// ---------------------------------------------------------------------------------------------

/// One result per requested id, in request order, naming `website_id` or `group_id` as the
/// request did, with the JSON shape of SPEC §4 and summary counts; 50 ids are processed.
pub async fn results_follow_request_order(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 113).await;
    let ws = &w.websites;
    let p = w.global_key();
    let ids = [ws[3], missing_website(), ws[0], w.other_website, ws[5]];
    let r = run(&h, &p, sites(Direct, "ann@new.test", &ids)).await;
    expect_codes(
        &r,
        &[
            (web(ws[3]), OutcomeCode::Added),
            (web(missing_website()), TargetNotFound),
            (web(ws[0]), OutcomeCode::Added),
            (web(w.other_website), TargetNotFound),
            (web(ws[5]), OutcomeCode::Added),
        ],
    );
    assert_eq!(r.summary.requested, 5);
    assert_eq!(r.summary.succeeded, 3);
    assert_eq!(r.summary.failed, 2);
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["success"], Value::Bool(true));
    assert_eq!(json["invite_method"], "direct");
    assert!(
        json.get("email").is_none(),
        "no email member in direct mode"
    );
    let results = json["results"].as_array().expect("results");
    for (res, id) in results.iter().zip(ids) {
        assert_eq!(res["website_id"], id.to_string());
        assert!(res.get("group_id").is_none());
        if res["success"] == Value::Bool(true) {
            assert!(res.get("message").is_some() && res.get("error").is_none());
            assert_eq!(res["user_id"], json["user_id"]);
        } else {
            assert!(res.get("error").is_some() && res.get("message").is_none());
        }
    }

    let gids = [w.groups[1], missing_group(), w.groups[0]];
    let r = run(&h, &p, groups(ByEmail, "bob@new.test", &gids)).await;
    expect_codes(
        &r,
        &[
            (grp(w.groups[1]), Invited),
            (grp(missing_group()), TargetNotFound),
            (grp(w.groups[0]), Invited),
        ],
    );
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["invite_method"], "email");
    assert_eq!(json["user_id"], Value::Null);
    assert_eq!(json["user_created"], Value::Bool(false));
    assert_eq!(json["email"]["status"], "sent");
    assert_eq!(json["email"]["batch_id"], batch_of(&r).to_string());
    assert_eq!(json["summary"]["requested"], 3);
    assert_eq!(json["summary"]["succeeded"], 2);
    assert_eq!(json["summary"]["failed"], 1);
    for (res, id) in json["results"]
        .as_array()
        .expect("results")
        .iter()
        .zip(gids)
    {
        assert_eq!(res["group_id"], id.to_string());
        assert!(res.get("website_id").is_none());
    }
    assert!(json["results"][0]["invite_id"].is_string());

    let mut fifty: Vec<WebsiteId> = ws.clone();
    fifty.extend((0..44).map(|i| WebsiteId(Uuid::from_u128(0x7000 + i))));
    fifty.reverse();
    let r = run(&h, &p, sites(Direct, "carol@new.test", &fifty)).await;
    assert_eq!(r.results.len(), 50);
    for (res, id) in r.results.iter().zip(&fifty) {
        let code = if ws.contains(id) {
            OutcomeCode::Added
        } else {
            TargetNotFound
        };
        expect_result(res, web(*id), code);
    }
    assert_eq!(r.summary.succeeded, 6);
}

// ---------------------------------------------------------------------------------------------
// 4. Direct mode
// ---------------------------------------------------------------------------------------------

/// Direct mode creates no user when no target succeeds (missing, foreign or forbidden
/// targets only).
pub async fn direct_creates_no_user_without_success(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 114).await;
    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &w.global_key(),
        sites(
            Direct,
            "ann@new.test",
            &[missing_website(), w.other_website],
        ),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(missing_website()), TargetNotFound),
            (web(w.other_website), TargetNotFound),
        ],
    );
    assert_eq!(r.user_id, None);
    assert!(!r.user_created);
    let r = run(
        &h,
        &w.global_key(),
        groups(Direct, "ann@new.test", &[w.other_group]),
    )
    .await;
    assert_eq!(r.user_id, None);
    let r = run(
        &h,
        &w.scoped_key(&[w.websites[0]]),
        sites(Direct, "ann@new.test", &[w.websites[1]]),
    )
    .await;
    expect_codes(&r, &[(web(w.websites[1]), OutcomeCode::Forbidden)]);
    assert_eq!(r.user_id, None);
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@new.test"), 0);
    assert_eq!(s, before);
}

/// Direct mode creates the user once, however many targets succeed.
pub async fn direct_creates_user_once(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 115).await;
    let p = w.global_key();
    let r = run(&h, &p, sites(Direct, "ann@new.test", &w.websites)).await;
    let expected: Vec<_> = w
        .websites
        .iter()
        .map(|id| (web(*id), OutcomeCode::Added))
        .collect();
    expect_codes(&r, &expected);
    assert!(r.user_created);
    let uid = r.user_id.expect("user");
    let r = run(&h, &p, groups(Direct, "Ann@New.test", &w.groups)).await;
    assert!(!r.user_created);
    assert_eq!(r.user_id, Some(uid));
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@new.test"), 1);
    assert_eq!(memberships_of(&s, uid).len(), 8);
}

/// A direct add supersedes the live invitation for the same target and email: its status
/// becomes `superseded`, a batch with no live invitation left can no longer be previewed or
/// accepted, a batch with others left still can. Other addresses' invitations are untouched.
pub async fn direct_add_supersedes_live_invitation(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 116).await;
    let ws = &w.websites;
    let p = w.global_key();
    let a = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[0]])).await;
    let token_a = h.last_token();
    let b = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[1], ws[2]])).await;
    let token_b = h.last_token();
    let bob = run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[0]])).await;
    h.clock.advance(secs(30));

    let r = run(&h, &p, sites(Direct, "ann@new.test", &[ws[0], ws[1]])).await;
    expect_codes(
        &r,
        &[
            (web(ws[0]), OutcomeCode::Added),
            (web(ws[1]), OutcomeCode::Added),
        ],
    );
    let uid = r.user_id.expect("user");
    let s = snapshot(&backend).await;
    assert_eq!(
        invitation(&s, invite_id(&a, 0)).status,
        StoredStatus::Superseded
    );
    assert_eq!(
        invitation(&s, invite_id(&b, 0)).status,
        StoredStatus::Superseded
    );
    assert_eq!(
        invitation(&s, invite_id(&b, 1)).status,
        StoredStatus::Pending
    );
    assert_eq!(
        invitation(&s, invite_id(&bob, 0)).status,
        StoredStatus::Pending
    );
    assert_eq!(stored_pending(&s, web(ws[0]), "ann@new.test"), 0);

    let before = snapshot(&backend).await;
    assert_code(h.service.preview(&token_a).await, ErrorCode::InvalidToken);
    assert_code(
        h.service.accept(&token_a, None).await,
        ErrorCode::InvalidToken,
    );
    assert_eq!(snapshot(&backend).await, before);

    let preview = h.service.preview(&token_b).await.expect("b is still live");
    let targets: Vec<TargetId> = preview.invitations.iter().map(|i| i.target).collect();
    assert_eq!(targets, vec![web(ws[2])]);
    let accepted = h.service.accept(&token_b, None).await.expect("accept");
    assert_eq!(accepted.user_id, uid);
    assert!(!accepted.user_created);
    let codes: BTreeMap<TargetId, OutcomeCode> = accepted
        .results
        .iter()
        .map(|r| (r.result.target(), r.result.code))
        .collect();
    assert_eq!(codes[&web(ws[1])], AlreadyMember);
    assert_eq!(codes[&web(ws[2])], OutcomeCode::Added);
    assert_eq!(
        h.mailer.attempts(),
        3,
        "only the email-mode requests sent mail"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Email mode
// ---------------------------------------------------------------------------------------------

/// Email mode: one consolidated message per request with at least one invitation, listing
/// exactly the invited targets (names and roles, in request order, text and HTML) with one
/// accept link; the batch, invitations and outbox row are stored; no user is created.
pub async fn email_sends_one_consolidated_message(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 117).await;
    let ws = &w.websites;
    let p = w.global_key();
    run(&h, &p, sites(Direct, "existing@acme.test", &[ws[2]])).await;
    let t0 = h.clock.now();
    let r = run(
        &h,
        &p,
        with_role(
            sites(ByEmail, "Existing@acme.test", &[ws[4], ws[2], ws[1]]),
            Role::Admin,
        ),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(ws[4]), Invited),
            (web(ws[2]), AlreadyMember),
            (web(ws[1]), Invited),
        ],
    );
    assert_eq!(r.user_id, Some(w.existing_user));
    assert!(!r.user_created);
    let report = r.email.expect("email report");
    assert_eq!(report.status, EmailStatus::Sent);
    let batch = batch_of(&r);

    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1, "exactly one message");
    assert_eq!(h.mailer.attempts(), 1);
    let m = &sent[0];
    assert_eq!(m.to, email("existing@acme.test"));
    assert_eq!(m.batch_id, batch);
    assert_lists(
        m,
        &[("Site 4", Role::Admin), ("Site 1", Role::Admin)],
        &["Site 0", "Site 2", "Site 3", "Site 5"],
    );

    let s = snapshot(&backend).await;
    assert!(
        s.batches.iter().any(|b| b.0 == batch
            && b.1 == w.org
            && b.2 == email("existing@acme.test")
            && b.3 == t0)
    );
    let invs: Vec<&InvitationRecord> = s
        .invitations
        .iter()
        .filter(|i| i.batch_id == batch)
        .collect();
    assert_eq!(invs.len(), 2);
    for (i, target) in [(0, ws[4]), (2, ws[1])] {
        let inv = invitation(&s, invite_id(&r, i));
        assert_eq!(inv.batch_id, batch);
        assert_eq!(inv.target, web(target));
        assert_eq!(inv.organization, w.org);
        assert_eq!(inv.role, Role::Admin);
        assert_eq!(inv.email, email("existing@acme.test"));
        assert_eq!(inv.status, StoredStatus::Pending);
        assert_eq!(inv.created_at, t0);
        assert_eq!(inv.expires_at, t0.plus(TTL), "default time to live 7 days");
    }
    let out = outbox_of(&s, batch);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, m.id);
    assert_eq!(out[0].status, MessageStatus::Sent);
    assert_eq!(out[0].attempts, 1);
    assert_eq!(out[0].accept_url, None, "the body is cleared once sent");
    assert_eq!(out[0].recipient, email("existing@acme.test"));
}

/// No message (and no batch or outbox row) when nothing was invited: `email.status` is
/// `not_sent`.
pub async fn email_not_sent_when_nothing_invited(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 118).await;
    let p = w.global_key();
    run(
        &h,
        &p,
        sites(Direct, "existing@acme.test", &[w.websites[0]]),
    )
    .await;
    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &p,
        sites(
            ByEmail,
            "existing@acme.test",
            &[w.websites[0], missing_website()],
        ),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(w.websites[0]), AlreadyMember),
            (web(missing_website()), TargetNotFound),
        ],
    );
    let report = r.email.expect("report");
    assert_eq!(report.status, EmailStatus::NotSent);
    assert_eq!(report.batch_id, None);
    assert_eq!(h.mailer.attempts(), 0);
    let s = snapshot(&backend).await;
    assert_eq!(s, before);
    assert!(s.batches.is_empty() && s.outbox.is_empty());
}

/// Email mode never creates a user; `user_id` is the existing user, if any.
pub async fn email_mode_creates_no_user(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 119).await;
    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    expect_codes(
        &r,
        &[(web(w.websites[0]), Invited), (web(w.websites[1]), Invited)],
    );
    assert_eq!(r.user_id, None);
    assert!(!r.user_created);
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@new.test"), 0);
    assert_eq!(s.users, before.users);
    assert!(s.memberships.is_empty());
}

/// The outbox row is stored (queued, with the accept link) before the mailer is called, and
/// marked sent with its body cleared afterwards.
pub async fn outbox_is_stored_before_delivery(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let (service, probe, _clock) = probe_service(&backend, 120, MailerMode::Ok);
    let r = service
        .bulk_invite(
            &w.global_key(),
            sites(ByEmail, "ann@new.test", &[w.websites[0]]),
        )
        .await
        .expect("processed");
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Sent));
    let attempts = probe.attempts();
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    let stored = a
        .stored
        .as_ref()
        .expect("the outbox row exists while the mailer runs");
    assert_eq!(stored.status, MessageStatus::Queued);
    assert_eq!(stored.batch_id, a.message.batch_id);
    assert_eq!(stored.recipient, email("ann@new.test"));
    let url = stored.accept_url.as_deref().expect("the link is stored");
    assert_eq!(token_in(url), token_in(&a.message.text));
    let s = snapshot(&backend).await;
    let row = s.outbox.iter().find(|o| o.id == a.message.id).expect("row");
    assert_eq!(row.status, MessageStatus::Sent);
    assert_eq!(row.accept_url, None);
    assert_eq!(row.attempts, 1);
}

/// With a failing mailer the response says `queued`; the row stays queued with its link
/// (and the error) until a later `deliver_due` sends it, then its body is cleared; the link
/// delivered is the one stored, and it works.
pub async fn email_queued_when_mailer_fails(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 121).await;
    h.mailer.set_mode(MailerMode::FailTransient);
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    expect_codes(
        &r,
        &[(web(w.websites[0]), Invited), (web(w.websites[1]), Invited)],
    );
    let report = r.email.expect("report");
    assert_eq!(report.status, EmailStatus::Queued);
    let batch = batch_of(&r);
    assert!(h.mailer.sent().is_empty());
    assert_eq!(h.mailer.attempts(), 1);
    let s = snapshot(&backend).await;
    let out = outbox_of(&s, batch);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, MessageStatus::Queued);
    assert_eq!(out[0].attempts, 1);
    assert!(out[0].last_error.is_some());
    let url = out[0]
        .accept_url
        .clone()
        .expect("queued rows keep the link");
    assert!(url.starts_with(Harness::ACCEPT_URL_BASE));
    assert_eq!(invitations_to(&s, "ann@new.test").len(), 2);

    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery.backoff(1));
    let report = h.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_lists(
        &sent[0],
        &[("Site 0", Role::Viewer), ("Site 1", Role::Viewer)],
        &["Site 2"],
    );
    assert_eq!(token_in(&sent[0].text), token_in(&url));
    let s = snapshot(&backend).await;
    let out = outbox_of(&s, batch);
    assert_eq!(out[0].status, MessageStatus::Sent);
    assert_eq!(out[0].accept_url, None);
    assert_eq!(out[0].attempts, 2);
    let accepted = h
        .service
        .accept(&token_in(&url), None)
        .await
        .expect("the link works");
    assert!(
        accepted
            .results
            .iter()
            .all(|r| r.result.code == OutcomeCode::Added)
    );
}

/// An expired invitation (at exactly 7 days) or a revoked one does not block a new one; a
/// live one does until the last millisecond. At most one pending row per (target, email).
pub async fn expired_or_revoked_invitation_does_not_block(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 122).await;
    let w0 = w.websites[0];
    let p = w.global_key();
    let r1 = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    let token1 = h.last_token();
    let first = invite_id(&r1, 0);

    h.clock.advance(TTL - MS);
    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    expect_codes(&r, &[(web(w0), AlreadyInvited)]);

    h.clock.advance(MS);
    let r2 = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    expect_codes(&r2, &[(web(w0), Invited)]);
    let second = invite_id(&r2, 0);
    assert_ne!(first, second);
    let s = snapshot(&backend).await;
    assert_eq!(
        invitation(&s, first).status_at(h.clock.now()),
        InvitationStatus::Expired
    );
    assert_eq!(stored_pending(&s, web(w0), "ann@new.test"), 1);
    assert_code(h.service.preview(&token1).await, ErrorCode::InvalidToken);

    h.service.revoke(&p, second).await.expect("revoke");
    let r3 = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    expect_codes(&r3, &[(web(w0), Invited)]);
    let third = invite_id(&r3, 0);
    let s = snapshot(&backend).await;
    assert_eq!(invitation(&s, second).status, StoredStatus::Revoked);
    assert_eq!(invitation(&s, third).status, StoredStatus::Pending);
    assert_eq!(stored_pending(&s, web(w0), "ann@new.test"), 1);
    assert_eq!(invitations_to(&s, "ann@new.test").len(), 3);
    assert_eq!(h.mailer.sent().len(), 3);
    let accepted = h.service.accept(&h.last_token(), None).await.expect("ok");
    assert_eq!(accepted.results.len(), 1);
    assert_eq!(accepted.results[0].invite_id, third);
    assert_eq!(accepted.results[0].result.code, OutcomeCode::Added);
}

/// Addresses are compared case-insensitively after trimming everywhere: lookup, uniqueness,
/// dedupe, listing and acceptance.
pub async fn email_is_case_insensitive(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 123).await;
    let (w0, w1) = (w.websites[0], w.websites[1]);
    let p = w.global_key();
    let r = run(&h, &p, sites(Direct, "Ann@X.test", &[w0])).await;
    expect_codes(&r, &[(web(w0), OutcomeCode::Added)]);
    let uid = r.user_id.expect("user");
    let r = run(&h, &p, sites(Direct, "ann@x.test", &[w0])).await;
    expect_codes(&r, &[(web(w0), AlreadyMember)]);
    assert_eq!(r.user_id, Some(uid));
    let r = run(&h, &p, sites(ByEmail, "  ANN@x.TEST ", &[w0, w1])).await;
    expect_codes(&r, &[(web(w0), AlreadyMember), (web(w1), Invited)]);
    assert_eq!(r.user_id, Some(uid));
    let r = run(&h, &p, sites(ByEmail, "ann@X.TEST", &[w1])).await;
    expect_codes(&r, &[(web(w1), AlreadyInvited)]);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to.as_str(), "ann@x.test");

    let page = h
        .service
        .list_invitations(&p, InvitationFilter::Email(email("ANN@x.Test")), 10, None)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].email.as_str(), "ann@x.test");

    let accepted = h
        .service
        .accept(&h.last_token(), Some(uid))
        .await
        .expect("accept");
    assert_eq!(accepted.user_id, uid);
    assert!(!accepted.user_created);
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@x.test"), 1);
    let u = user(&s, "ann@x.test").expect("user");
    assert_eq!(u.email.as_str(), "ann@x.test");
    assert!(u.email_verified);
    assert_eq!(memberships_of(&s, uid).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 6. Tokens
// ---------------------------------------------------------------------------------------------

/// Only token hashes are stored: a token never appears in a snapshot (except inside a queued
/// outbox row's link before delivery), in a response, a preview or a listing.
pub async fn tokens_are_never_stored_or_listed(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 124).await;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    let token = h.last_token();
    assert!(token.len() >= 22);
    let assert_absent = |what: &str, text: &str, token: &str| {
        assert!(!text.contains(token), "the token leaks into {what}: {text}");
    };
    assert_absent("the response", &to_json!(&r), &token);
    assert_absent("the snapshot", &to_json!(&snapshot(&backend).await), &token);
    let preview = h.service.preview(&token).await.expect("preview");
    assert_absent("the preview", &to_json!(&preview), &token);
    let lists = [
        InvitationFilter::Email(email("ann@new.test")),
        InvitationFilter::Target(web(w.websites[0])),
        InvitationFilter::Status(InvitationStatus::Pending),
    ];
    for f in &lists {
        let page = h
            .service
            .list_invitations(&p, f.clone(), 100, None)
            .await
            .expect("list");
        assert!(!page.items.is_empty());
        assert_absent("a listing", &to_json!(&page), &token);
    }

    h.mailer.set_mode(MailerMode::FailTransient);
    let r = run(&h, &p, sites(ByEmail, "bob@new.test", &[w.websites[2]])).await;
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    assert_absent("the response", &to_json!(&r), "token=");
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch_of(&r))[0].clone();
    let queued = token_in(row.accept_url.as_deref().expect("queued link"));
    let mut scrubbed = s.clone();
    for m in &mut scrubbed.outbox {
        m.accept_url = None;
    }
    assert!(
        to_json!(&s).contains(&queued),
        "the queued row holds the link"
    );
    assert_absent(
        "the snapshot outside the queued link",
        &to_json!(&scrubbed),
        &queued,
    );
    for f in &lists {
        let page = h
            .service
            .list_invitations(&p, f.clone(), 100, None)
            .await
            .expect("list");
        assert_absent("a listing", &to_json!(&page), &queued);
    }

    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery.max_backoff);
    h.service.deliver_due().await.expect("deliver");
    assert_eq!(h.last_token(), queued);
    assert_absent(
        "the snapshot after delivery",
        &to_json!(&snapshot(&backend).await),
        &queued,
    );
    h.service.accept(&token, None).await.expect("accept");
    assert_absent(
        "the snapshot after accepting",
        &to_json!(&snapshot(&backend).await),
        &token,
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Delivery
// ---------------------------------------------------------------------------------------------

/// `deliver_due` retries a queued message with exponential backoff: not due a millisecond
/// before the backoff, due at it; attempts are counted; every attempt carries the same
/// message id and link; once sent the body is cleared and nothing is sent again.
pub async fn delivery_retries_with_exponential_backoff(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let (service, probe, clock) = probe_service(&backend, 125, MailerMode::FailTransient);
    let policy = service.config().delivery;
    assert_eq!(policy.backoff(2), policy.backoff(1) * 2);
    assert_eq!(policy.backoff(3), policy.backoff(1) * 4);
    let r = service
        .bulk_invite(
            &w.global_key(),
            sites(ByEmail, "ann@new.test", &[w.websites[0]]),
        )
        .await
        .expect("processed");
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    let batch = batch_of(&r);
    let row = |s: &Snapshot| outbox_of(s, batch)[0].clone();
    let s = snapshot(&backend).await;
    assert_eq!(row(&s).attempts, 1);
    assert_eq!(row(&s).next_attempt_at, clock.now().plus(policy.backoff(1)));

    let nothing = DeliveryReport::default();
    assert_eq!(service.deliver_due().await.expect("deliver"), nothing);
    for attempt in 1..=2u32 {
        clock.advance(policy.backoff(attempt) - MS);
        assert_eq!(
            service.deliver_due().await.expect("deliver"),
            nothing,
            "not due before the backoff"
        );
        assert_eq!(row(&snapshot(&backend).await).attempts, attempt);
        clock.advance(MS);
        let report = service.deliver_due().await.expect("deliver");
        assert_eq!(report.retried, 1, "due at the backoff");
        let s = snapshot(&backend).await;
        assert_eq!(row(&s).attempts, attempt + 1);
        assert_eq!(row(&s).status, MessageStatus::Queued);
        assert!(row(&s).accept_url.is_some());
        assert_eq!(
            row(&s).next_attempt_at,
            clock.now().plus(policy.backoff(attempt + 1))
        );
    }
    probe.set_mode(MailerMode::Ok);
    clock.advance(policy.backoff(3));
    let report = service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let s = snapshot(&backend).await;
    let final_row = row(&s);
    assert_eq!(final_row.status, MessageStatus::Sent);
    assert_eq!(final_row.attempts, 4);
    assert_eq!(final_row.accept_url, None);
    let attempts = probe.attempts();
    assert_eq!(attempts.len(), 4);
    for a in &attempts {
        assert_eq!(a.message.id, final_row.id, "a stable message id");
        assert_eq!(a.message.batch_id, batch);
        assert_eq!(a.message.text, attempts[0].message.text);
    }
    clock.advance(DAY);
    assert_eq!(service.deliver_due().await.expect("deliver"), nothing);
    assert_eq!(probe.attempts().len(), 4);
}

/// A permanent mailer error marks the message failed at once (body cleared, no retry), both
/// on the first attempt and on a retry; the invitations stand.
pub async fn permanent_mail_error_marks_failed(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let (service, probe, clock) = probe_service(&backend, 126, MailerMode::FailPermanent);
    let p = w.global_key();
    let r = service
        .bulk_invite(&p, sites(ByEmail, "ann@new.test", &[w.websites[0]]))
        .await
        .expect("processed");
    expect_codes(&r, &[(web(w.websites[0]), Invited)]);
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Failed));
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch_of(&r))[0].clone();
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.accept_url, None);
    assert!(row.last_error.is_some());
    assert_eq!(
        invitation(&s, invite_id(&r, 0)).status,
        StoredStatus::Pending
    );
    clock.advance(DAY);
    assert_eq!(
        service.deliver_due().await.expect("deliver"),
        DeliveryReport::default()
    );
    assert_eq!(probe.attempts().len(), 1);

    probe.set_mode(MailerMode::FailTransient);
    let r = service
        .bulk_invite(&p, sites(ByEmail, "bob@new.test", &[w.websites[1]]))
        .await
        .expect("processed");
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    probe.set_mode(MailerMode::FailPermanent);
    clock.advance(service.config().delivery.max_backoff);
    let report = service.deliver_due().await.expect("deliver");
    assert_eq!(report.failed, 1);
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch_of(&r))[0].clone();
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.accept_url, None);
}

/// After `max_attempts` transient failures the message is marked failed, its body cleared,
/// and it is never tried again.
pub async fn too_many_attempts_marks_failed(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 127).await;
    h.mailer.set_mode(MailerMode::FailTransient);
    let policy = h.service.config().delivery;
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0]]),
    )
    .await;
    let batch = batch_of(&r);
    let mut total = DeliveryReport::default();
    for _ in 0..policy.max_attempts + 3 {
        h.clock.advance(policy.max_backoff);
        let rep = h.service.deliver_due().await.expect("deliver");
        total.retried += rep.retried;
        total.failed += rep.failed;
        total.sent += rep.sent;
    }
    assert_eq!(h.mailer.attempts(), policy.max_attempts as usize);
    assert_eq!(total.retried, policy.max_attempts as usize - 2);
    assert_eq!(total.failed, 1);
    assert_eq!(total.sent, 0);
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch)[0].clone();
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.attempts, policy.max_attempts);
    assert_eq!(row.accept_url, None);
}

/// A queued message whose batch has no live invitation left (all revoked) is cancelled, never
/// sent; one with some left lists only those.
pub async fn revoked_batch_is_cancelled_not_sent(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 128).await;
    let ws = &w.websites;
    let p = w.global_key();
    h.mailer.set_mode(MailerMode::FailTransient);
    let a = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[0], ws[1]])).await;
    let b = run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[2], ws[3]])).await;
    for i in 0..2 {
        let rev = h
            .service
            .revoke(&p, invite_id(&a, i))
            .await
            .expect("revoke");
        assert!(rev.changed);
    }
    h.service
        .revoke(&p, invite_id(&b, 0))
        .await
        .expect("revoke");
    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery.max_backoff);
    let report = h.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    assert_eq!(report.cancelled, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, email("bob@new.test"));
    assert_lists(&sent[0], &[("Site 3", Role::Viewer)], &["Site 2"]);
    let s = snapshot(&backend).await;
    let row_a = outbox_of(&s, batch_of(&a))[0].clone();
    assert_eq!(row_a.status, MessageStatus::Cancelled);
    assert_eq!(row_a.accept_url, None);
    assert_eq!(outbox_of(&s, batch_of(&b))[0].status, MessageStatus::Sent);
    h.clock.advance(DAY);
    assert_eq!(
        h.service.deliver_due().await.expect("deliver"),
        DeliveryReport::default()
    );
}

/// A message stored with its invitations is not lost when the store fails right after the
/// commit (the immediate delivery cannot run): the response says `queued`, and `deliver_due`
/// sends it once its lease has passed.
pub async fn queued_message_survives_store_error(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let (faulty, h) = faulty_harness(
        &backend,
        Fault {
            fail_everything_else: true,
            ..Fault::default()
        },
        129,
    );
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0]]),
    )
    .await;
    expect_codes(&r, &[(web(w.websites[0]), Invited)]);
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    assert_code(h.service.deliver_due().await, ErrorCode::StorageUnavailable);
    assert_eq!(h.mailer.attempts(), 0);
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch_of(&r))[0].clone();
    assert_eq!(row.status, MessageStatus::Queued);
    assert_eq!(row.attempts, 0);
    assert!(row.accept_url.is_some());

    faulty.set(Fault::default());
    assert_eq!(
        h.service.deliver_due().await.expect("deliver"),
        DeliveryReport::default(),
        "not due before its lease ends"
    );
    h.clock.advance(h.service.config().delivery.lease);
    let report = h.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, row.id);
    assert_lists(&sent[0], &[("Site 0", Role::Viewer)], &["Site 1"]);
}

// ---------------------------------------------------------------------------------------------
// 8. Lifecycle
// ---------------------------------------------------------------------------------------------

/// Preview is read-only (state unchanged, repeatable) and shows the live invitations in
/// request order with names, roles and expiry; afterwards the token still accepts.
pub async fn preview_is_read_only(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 130).await;
    let ws = &w.websites;
    let r = run(
        &h,
        &w.global_key(),
        with_role(
            sites(ByEmail, "ann@new.test", &[ws[2], ws[0], ws[1]]),
            Role::Admin,
        ),
    )
    .await;
    let token = h.last_token();
    let t0 = h.clock.now();
    h.clock.advance(secs(5));
    let before = snapshot(&backend).await;
    let p1 = h.service.preview(&token).await.expect("preview");
    let p2 = h
        .service
        .preview(&format!(" {token} "))
        .await
        .expect("again");
    assert_eq!(p1, p2);
    assert_eq!(snapshot(&backend).await, before, "preview writes nothing");
    assert_eq!(p1.batch_id, batch_of(&r));
    assert_eq!(p1.email, email("ann@new.test"));
    let shown: Vec<(TargetId, &str, Role, Timestamp, InvitationId)> = p1
        .invitations
        .iter()
        .map(|i| {
            (
                i.target,
                i.target_name.as_str(),
                i.role,
                i.expires_at,
                i.invite_id,
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                web(ws[2]),
                "Site 2",
                Role::Admin,
                t0.plus(TTL),
                invite_id(&r, 0)
            ),
            (
                web(ws[0]),
                "Site 0",
                Role::Admin,
                t0.plus(TTL),
                invite_id(&r, 1)
            ),
            (
                web(ws[1]),
                "Site 1",
                Role::Admin,
                t0.plus(TTL),
                invite_id(&r, 2)
            ),
        ]
    );
    assert_code(h.service.preview("garbage").await, ErrorCode::InvalidToken);
    let accepted = h.service.accept(&token, None).await.expect("accept");
    assert_eq!(accepted.results.len(), 3);
    assert_code(h.service.preview(&token).await, ErrorCode::InvalidToken);
}

/// Accepting anonymously creates the user, verified, with the invitation's names, and turns
/// each live invitation into a membership with its role; revoked ones are reported `revoked`.
pub async fn accept_creates_verified_user_and_memberships(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 131).await;
    let ws = &w.websites;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        with_names(
            with_role(
                sites(ByEmail, "ann@new.test", &[ws[0], ws[1], ws[2]]),
                Role::Admin,
            ),
            "Ann",
            "Lee",
        ),
    )
    .await;
    let token = h.last_token();
    h.service
        .revoke(&p, invite_id(&r, 2))
        .await
        .expect("revoke");
    h.clock.advance(Duration::from_secs(3600));
    let a = h.service.accept(&token, None).await.expect("accept");
    assert!(a.user_created);
    let uid = a.user_id;
    assert_eq!(a.results.len(), 3);
    let by_invite: BTreeMap<InvitationId, &AcceptResult> =
        a.results.iter().map(|x| (x.invite_id, x)).collect();
    for (i, target, code) in [
        (0, ws[0], OutcomeCode::Added),
        (1, ws[1], OutcomeCode::Added),
        (2, ws[2], OutcomeCode::Revoked),
    ] {
        let res = &by_invite[&invite_id(&r, i)].result;
        expect_result(res, web(target), code);
        if code == OutcomeCode::Added {
            assert_eq!(res.user_id, Some(uid));
        }
    }
    let s = snapshot(&backend).await;
    let u = user(&s, "ann@new.test").expect("created");
    assert_eq!(u.id, uid);
    assert!(u.email_verified, "a token proves the mailbox");
    assert_eq!(u.first_name.as_ref().map(PersonName::as_str), Some("Ann"));
    assert_eq!(u.last_name.as_ref().map(PersonName::as_str), Some("Lee"));
    for t in [ws[0], ws[1]] {
        let m = membership(&s, web(t), uid).expect("membership");
        assert_eq!(m.role, Role::Admin);
        assert_eq!(m.created_at, h.clock.now());
    }
    assert!(membership(&s, web(ws[2]), uid).is_none());
    assert_eq!(
        invitation(&s, invite_id(&r, 0)).status,
        StoredStatus::Accepted
    );
    assert_eq!(
        invitation(&s, invite_id(&r, 1)).status,
        StoredStatus::Accepted
    );
    assert_eq!(
        invitation(&s, invite_id(&r, 2)).status,
        StoredStatus::Revoked
    );
}

/// Accept reports each invitation on its own: `added`, `already_member` (the user became a
/// member meanwhile), `revoked`, and `expired` (an invitation replaced after expiry is not
/// renewed by a resend).
pub async fn accept_reports_per_invitation_codes(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 132).await;
    let ws = &w.websites;
    let p = w.global_key();
    let to = "existing@acme.test";
    let a = run(&h, &p, sites(ByEmail, to, &[ws[0], ws[1], ws[2], ws[3]])).await;
    let batch = batch_of(&a);
    h.clock.advance(TTL + DAY);
    let b = run(&h, &p, sites(ByEmail, to, &[ws[3]])).await;
    expect_codes(&b, &[(web(ws[3]), Invited)]);
    let d = run(&h, &p, sites(Direct, to, &[ws[1]])).await;
    expect_codes(&d, &[(web(ws[1]), OutcomeCode::Added)]);
    h.service.resend(&p, batch).await.expect("resend");
    let token = h.last_token();
    h.service
        .revoke(&p, invite_id(&a, 2))
        .await
        .expect("revoke");

    let acc = h.service.accept(&token, None).await.expect("accept");
    assert_eq!(acc.user_id, w.existing_user);
    assert!(!acc.user_created);
    assert_eq!(acc.results.len(), 4);
    let by_invite: BTreeMap<InvitationId, &AcceptResult> =
        acc.results.iter().map(|x| (x.invite_id, x)).collect();
    for (i, code) in [
        (0, OutcomeCode::Added),
        (1, AlreadyMember),
        (2, OutcomeCode::Revoked),
        (3, OutcomeCode::Expired),
    ] {
        expect_result(&by_invite[&invite_id(&a, i)].result, web(ws[i]), code);
    }
    let s = snapshot(&backend).await;
    assert!(user(&s, to).expect("user").email_verified);
    assert_eq!(
        invitation(&s, invite_id(&a, 0)).status,
        StoredStatus::Accepted
    );
    assert_eq!(
        invitation(&s, invite_id(&a, 3)).status_at(h.clock.now()),
        InvitationStatus::Expired
    );
    assert_eq!(
        invitation(&s, invite_id(&b, 0)).status,
        StoredStatus::Pending,
        "the newer invitation is not touched"
    );
    assert!(membership(&s, web(ws[3]), w.existing_user).is_none());
    assert!(membership(&s, web(ws[2]), w.existing_user).is_none());
}

/// Accept reports `has_org_access` for a user who became an organization member after being
/// invited; no explicit membership is created, and the invitations are used up.
pub async fn accept_reports_org_access(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 133).await;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        sites(
            ByEmail,
            "existing@acme.test",
            &[w.websites[0], w.websites[1]],
        ),
    )
    .await;
    let token = h.last_token();
    backend
        .add_org_member(w.org, w.existing_user, OrgRole::Viewer)
        .await
        .expect("org member");
    let acc = h.service.accept(&token, None).await.expect("accept");
    for (i, res) in acc.results.iter().enumerate() {
        assert_eq!(res.invite_id, invite_id(&r, i));
        expect_result(&res.result, web(w.websites[i]), HasOrgAccess);
    }
    let s = snapshot(&backend).await;
    assert!(memberships_of(&s, w.existing_user).is_empty());
    assert!(user(&s, "existing@acme.test").expect("user").email_verified);
    for i in 0..2 {
        assert_eq!(
            invitation(&s, invite_id(&r, i)).status,
            StoredStatus::Accepted
        );
    }
    assert_code(
        h.service.accept(&token, None).await,
        ErrorCode::InvalidToken,
    );
}

/// Accepting verifies an existing unverified user without changing its names, anonymously
/// or signed in as that user.
pub async fn accept_verifies_existing_user(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 134).await;
    let p = w.global_key();
    let before = snapshot(&backend).await;
    let old = user(&before, "existing@acme.test").expect("seeded").clone();
    assert!(!old.email_verified);
    run(
        &h,
        &p,
        with_names(
            sites(ByEmail, "existing@acme.test", &[w.websites[0]]),
            "Other",
            "Name",
        ),
    )
    .await;
    let acc = h
        .service
        .accept(&h.last_token(), None)
        .await
        .expect("accept");
    assert_eq!(acc.user_id, w.existing_user);
    assert!(!acc.user_created);
    expect_result(
        &acc.results[0].result,
        web(w.websites[0]),
        OutcomeCode::Added,
    );
    let s = snapshot(&backend).await;
    let u = user(&s, "existing@acme.test").expect("user");
    assert!(u.email_verified);
    assert_eq!(u.first_name, old.first_name);
    assert_eq!(u.last_name, old.last_name);
    assert_eq!(s.users.len(), before.users.len());

    run(
        &h,
        &p,
        sites(ByEmail, "existing@acme.test", &[w.websites[1]]),
    )
    .await;
    let acc = h
        .service
        .accept(&h.last_token(), Some(w.existing_user))
        .await
        .expect("signed in as the invited user");
    expect_result(
        &acc.results[0].result,
        web(w.websites[1]),
        OutcomeCode::Added,
    );
}

/// Accepting while signed in as a user with another email is `email_mismatch` (an unknown
/// signed-in user is `not_found`), and changes nothing; the token still works afterwards.
pub async fn accept_with_other_signed_in_email_is_mismatch(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 135).await;
    run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0]]),
    )
    .await;
    let token = h.last_token();
    let before = snapshot(&backend).await;
    let e = assert_code(
        h.service.accept(&token, Some(w.existing_user)).await,
        ErrorCode::EmailMismatch,
    );
    assert!(matches!(e, InviteError::EmailMismatch));
    assert_code(
        h.service.accept(&token, Some(w.org_admin)).await,
        ErrorCode::EmailMismatch,
    );
    assert_code(
        h.service
            .accept(&token, Some(UserId(Uuid::from_u128(0xbad))))
            .await,
        ErrorCode::NotFound,
    );
    assert_eq!(snapshot(&backend).await, before);
    let acc = h.service.accept(&token, None).await.expect("still valid");
    assert!(acc.user_created);
}

/// A token works once: a second accept, a preview after it, and unknown or altered tokens all
/// get the same `invalid_token`, and change nothing.
pub async fn token_is_single_use(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 136).await;
    run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    let token = h.last_token();
    let before = snapshot(&backend).await;
    for bad in [
        String::new(),
        "0".repeat(64),
        "not-a-token".to_owned(),
        token.to_uppercase(),
        token[..token.len() - 1].to_owned(),
    ] {
        let e = assert_code(h.service.accept(&bad, None).await, ErrorCode::InvalidToken);
        assert!(matches!(e, InviteError::InvalidToken));
        assert_code(h.service.preview(&bad).await, ErrorCode::InvalidToken);
    }
    assert_eq!(snapshot(&backend).await, before);
    h.service.accept(&token, None).await.expect("first accept");
    let after = snapshot(&backend).await;
    assert_code(
        h.service.accept(&token, None).await,
        ErrorCode::InvalidToken,
    );
    assert_code(h.service.preview(&token).await, ErrorCode::InvalidToken);
    assert_eq!(snapshot(&backend).await, after);
}

/// A batch whose invitations expired (7 days, exactly) cannot be previewed or accepted; a
/// millisecond before it can.
pub async fn expired_batch_token_is_invalid(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 137).await;
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0]]),
    )
    .await;
    let token = h.last_token();
    h.clock.advance(TTL - MS);
    h.service.preview(&token).await.expect("still live");
    h.clock.advance(MS);
    let before = snapshot(&backend).await;
    assert_code(h.service.preview(&token).await, ErrorCode::InvalidToken);
    assert_code(
        h.service.accept(&token, None).await,
        ErrorCode::InvalidToken,
    );
    let s = snapshot(&backend).await;
    assert_eq!(s, before);
    assert_eq!(users_with(&s, "ann@new.test"), 0);
    assert_eq!(
        invitation(&s, invite_id(&r, 0)).status_at(h.clock.now()),
        InvitationStatus::Expired
    );
}

/// Revoke: a scoped key can only revoke invitations to its websites (`forbidden`), revoking
/// twice is harmless, accepted invitations cannot be revoked (`already_accepted`), another
/// organization's key gets `not_found`, and superseded ones report no change.
pub async fn revoke_rules(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 138).await;
    let ws = &w.websites;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[ws[0], ws[1], ws[2]]),
    )
    .await;
    let token = h.last_token();
    let scoped = w.scoped_key(&[ws[0]]);
    let before = snapshot(&backend).await;
    let e = assert_code(
        h.service.revoke(&scoped, invite_id(&r, 1)).await,
        ErrorCode::Forbidden,
    );
    assert!(matches!(e, InviteError::Forbidden { .. }));
    let other = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x999)));
    assert_code(
        h.service.revoke(&other, invite_id(&r, 1)).await,
        ErrorCode::NotFound,
    );
    assert_code(
        h.service
            .revoke(&p, InvitationId(Uuid::from_u128(0xabc)))
            .await,
        ErrorCode::NotFound,
    );
    assert_eq!(snapshot(&backend).await, before);

    let first = h
        .service
        .revoke(&scoped, invite_id(&r, 0))
        .await
        .expect("revoke");
    assert_eq!(first.invite_id, invite_id(&r, 0));
    assert!(first.changed);
    let s1 = snapshot(&backend).await;
    assert_eq!(
        invitation(&s1, invite_id(&r, 0)).status,
        StoredStatus::Revoked
    );
    let again = h.service.revoke(&p, invite_id(&r, 0)).await.expect("again");
    assert!(!again.changed);
    assert_eq!(snapshot(&backend).await, s1);

    h.service.accept(&token, None).await.expect("accept");
    let s2 = snapshot(&backend).await;
    let e = assert_code(
        h.service.revoke(&p, invite_id(&r, 1)).await,
        ErrorCode::AlreadyAccepted,
    );
    assert!(matches!(e, InviteError::Conflict { .. }));
    assert_eq!(snapshot(&backend).await, s2);
    assert_eq!(
        invitation(&s2, invite_id(&r, 1)).status,
        StoredStatus::Accepted
    );

    let b = run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[3]])).await;
    run(&h, &p, sites(Direct, "bob@new.test", &[ws[3]])).await;
    let rev = h
        .service
        .revoke(&p, invite_id(&b, 0))
        .await
        .expect("revoke");
    assert!(!rev.changed);
    assert_eq!(
        invitation(&snapshot(&backend).await, invite_id(&b, 0)).status,
        StoredStatus::Superseded
    );
}

/// Resend rotates the token (the old one dies, the new one works), renews the expiry of the
/// pending invitations only, sends a new message listing exactly those, and is limited to once
/// a minute per batch (`resend_too_soon` with the seconds to wait, changing nothing).
pub async fn resend_rotates_token_and_renews(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 139).await;
    let ws = &w.websites;
    let p = w.global_key();
    let t0 = h.clock.now();
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[ws[0], ws[1], ws[2]]),
    )
    .await;
    let batch = batch_of(&r);
    let old_token = h.last_token();
    h.service
        .revoke(&p, invite_id(&r, 2))
        .await
        .expect("revoke");

    h.clock.advance(secs(30));
    let before = snapshot(&backend).await;
    match h.service.resend(&p, batch).await {
        Err(InviteError::ResendTooSoon { retry_after_secs }) => assert_eq!(retry_after_secs, 30),
        other => panic!("expected resend_too_soon, got {other:?}"),
    }
    assert_eq!(snapshot(&backend).await, before);
    h.service
        .preview(&old_token)
        .await
        .expect("the old token still works");

    h.clock.advance(secs(30));
    let t1 = h.clock.now();
    let resent = h
        .service
        .resend(&p, batch)
        .await
        .expect("resend after 60 s");
    assert_eq!(resent.batch_id, batch);
    assert_eq!(resent.renewed, 2);
    assert_eq!(resent.email.status, EmailStatus::Sent);
    assert_eq!(resent.email.batch_id, Some(batch));
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].batch_id, batch);
    assert_ne!(sent[1].id, sent[0].id, "a new message");
    assert_lists(
        &sent[1],
        &[("Site 0", Role::Viewer), ("Site 1", Role::Viewer)],
        &["Site 2"],
    );
    let new_token = h.last_token();
    assert_ne!(new_token, old_token);
    assert_code(h.service.preview(&old_token).await, ErrorCode::InvalidToken);
    assert_code(
        h.service.accept(&old_token, None).await,
        ErrorCode::InvalidToken,
    );

    let s = snapshot(&backend).await;
    assert_eq!(invitation(&s, invite_id(&r, 0)).expires_at, t1.plus(TTL));
    assert_eq!(invitation(&s, invite_id(&r, 1)).expires_at, t1.plus(TTL));
    assert_eq!(invitation(&s, invite_id(&r, 2)).expires_at, t0.plus(TTL));
    assert_eq!(
        invitation(&s, invite_id(&r, 2)).status,
        StoredStatus::Revoked
    );
    let out = outbox_of(&s, batch);
    assert_eq!(out.len(), 2);
    assert!(
        out.iter()
            .all(|m| m.status == MessageStatus::Sent && m.accept_url.is_none())
    );

    match h.service.resend(&p, batch).await {
        Err(InviteError::ResendTooSoon { retry_after_secs }) => assert_eq!(retry_after_secs, 60),
        other => panic!("expected resend_too_soon, got {other:?}"),
    }
    h.clock.advance(secs(59));
    assert_code(h.service.resend(&p, batch).await, ErrorCode::ResendTooSoon);

    let acc = h.service.accept(&new_token, None).await.expect("new token");
    let codes: Vec<OutcomeCode> = acc.results.iter().map(|x| x.result.code).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == OutcomeCode::Added).count(),
        2
    );
    assert!(codes.contains(&OutcomeCode::Revoked));
}

/// Resend renews expired invitations too: the dead link comes back to life under a new token
/// with a fresh expiry.
pub async fn resend_renews_expired_invitations(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 140).await;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    let old = h.last_token();
    h.clock.advance(TTL + DAY);
    assert_code(h.service.preview(&old).await, ErrorCode::InvalidToken);
    let resent = h.service.resend(&p, batch_of(&r)).await.expect("resend");
    assert_eq!(resent.renewed, 2);
    let token = h.last_token();
    let preview = h.service.preview(&token).await.expect("renewed");
    assert_eq!(preview.invitations.len(), 2);
    for i in &preview.invitations {
        assert_eq!(i.expires_at, h.clock.now().plus(TTL));
    }
    assert_lists(
        &h.mailer.sent()[1],
        &[("Site 0", Role::Viewer), ("Site 1", Role::Viewer)],
        &[],
    );
    let acc = h.service.accept(&token, None).await.expect("accept");
    assert!(
        acc.results
            .iter()
            .all(|x| x.result.code == OutcomeCode::Added)
    );
}

/// Resend cancels the batch's queued message (clearing its link) and queues a new one;
/// delivery then sends only the new message, with the new token.
pub async fn resend_cancels_queued_message(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 141).await;
    let p = w.global_key();
    h.mailer.set_mode(MailerMode::FailTransient);
    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[w.websites[0]])).await;
    let batch = batch_of(&r);
    let s = snapshot(&backend).await;
    let first = outbox_of(&s, batch)[0].clone();
    let old_token = token_in(first.accept_url.as_deref().expect("queued link"));

    h.clock.advance(secs(60));
    let resent = h.service.resend(&p, batch).await.expect("resend");
    assert_eq!(resent.email.status, EmailStatus::Queued);
    let s = snapshot(&backend).await;
    let out = outbox_of(&s, batch);
    assert_eq!(out.len(), 2);
    let old_row = out.iter().find(|m| m.id == first.id).expect("old row");
    assert_eq!(old_row.status, MessageStatus::Cancelled);
    assert_eq!(old_row.accept_url, None);
    let new_row = out.iter().find(|m| m.id != first.id).expect("new row");
    assert_eq!(new_row.status, MessageStatus::Queued);
    let new_token = token_in(new_row.accept_url.as_deref().expect("queued link"));
    assert_ne!(new_token, old_token);

    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery.max_backoff);
    let report = h.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, new_row.id);
    assert_eq!(h.last_token(), new_token);
    assert_code(
        h.service.accept(&old_token, None).await,
        ErrorCode::InvalidToken,
    );
    h.service.accept(&new_token, None).await.expect("new token");
}

/// Resend needs a key reaching every target of the batch (`forbidden`), the caller's
/// organization (`not_found`), and something left to resend (`nothing_to_resend`).
pub async fn resend_permissions_and_nothing_to_resend(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 142).await;
    let ws = &w.websites;
    let p = w.global_key();
    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[0], ws[1]])).await;
    let batch = batch_of(&r);
    h.clock.advance(secs(60));
    let before = snapshot(&backend).await;
    assert_code(
        h.service.resend(&w.scoped_key(&[ws[0]]), batch).await,
        ErrorCode::Forbidden,
    );
    let other = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x998)));
    assert_code(h.service.resend(&other, batch).await, ErrorCode::NotFound);
    assert_code(
        h.service.resend(&p, BatchId(Uuid::from_u128(0xbbb))).await,
        ErrorCode::NotFound,
    );
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 1);

    h.service
        .resend(&w.scoped_key(&[ws[0], ws[1]]), batch)
        .await
        .expect("a key reaching every target may resend");
    h.service
        .accept(&h.last_token(), None)
        .await
        .expect("accept");
    h.clock.advance(secs(60));
    let s = snapshot(&backend).await;
    assert_code(
        h.service.resend(&p, batch).await,
        ErrorCode::NothingToResend,
    );
    assert_eq!(snapshot(&backend).await, s);
}

/// Listing by target, email and status: oldest first, paginated with a cursor, `expired`
/// derived from the clock, scoped keys see only their websites, other organizations see
/// nothing, bad queries are `invalid_query`.
pub async fn list_invitations_filters_and_pages(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 143).await;
    let ws = &w.websites;
    let p = w.global_key();
    let ann = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[ws[0], ws[1], ws[2]]),
    )
    .await;
    h.clock.advance(secs(1));
    let bob = run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[0], ws[3]])).await;
    h.clock.advance(secs(1));
    let carol = run(&h, &p, sites(ByEmail, "carol@new.test", &[ws[4]])).await;
    h.service
        .revoke(&p, invite_id(&carol, 0))
        .await
        .expect("revoke");

    let list = |f: InvitationFilter, limit: usize, cursor: Option<String>| {
        let service = h.service.clone();
        let p = p.clone();
        async move {
            service
                .list_invitations(&p, f, limit, cursor.as_deref())
                .await
                .expect("list")
        }
    };
    let ids = |page: &InvitationPage| page.items.iter().map(|i| i.id).collect::<Vec<_>>();

    let by_target = list(InvitationFilter::Target(web(ws[0])), 100, None).await;
    assert_eq!(
        ids(&by_target),
        vec![invite_id(&ann, 0), invite_id(&bob, 0)]
    );
    assert_eq!(by_target.next_cursor, None);
    let v = &by_target.items[0];
    assert_eq!(v.target, web(ws[0]));
    assert_eq!(v.target_name, "Site 0");
    assert_eq!(v.email, email("ann@new.test"));
    assert_eq!(v.role, Role::Viewer);
    assert_eq!(v.batch_id, batch_of(&ann));
    assert_eq!(v.status, InvitationStatus::Pending);

    let by_email = list(InvitationFilter::Email(email("ann@new.test")), 100, None).await;
    let got: BTreeSet<InvitationId> = ids(&by_email).into_iter().collect();
    assert_eq!(
        got,
        (0..3).map(|i| invite_id(&ann, i)).collect::<BTreeSet<_>>()
    );
    let revoked = list(
        InvitationFilter::Status(InvitationStatus::Revoked),
        100,
        None,
    )
    .await;
    assert_eq!(ids(&revoked), vec![invite_id(&carol, 0)]);
    assert_eq!(revoked.items[0].status, InvitationStatus::Revoked);

    let all_pending = list(
        InvitationFilter::Status(InvitationStatus::Pending),
        500,
        None,
    )
    .await;
    assert_eq!(all_pending.items.len(), 5);
    let mut paged = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = list(
            InvitationFilter::Status(InvitationStatus::Pending),
            2,
            cursor,
        )
        .await;
        pages += 1;
        assert!(page.items.len() <= 2);
        paged.extend(ids(&page));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination ends");
    }
    assert_eq!(
        paged,
        ids(&all_pending),
        "pages concatenate to the full list"
    );
    let keys: Vec<(Timestamp, InvitationId)> = all_pending
        .items
        .iter()
        .map(|i| (i.created_at, i.id))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "oldest first");

    // Ann's invitations expire exactly now; Bob's one second later.
    h.clock.advance(TTL - secs(2));
    let expired = list(
        InvitationFilter::Status(InvitationStatus::Expired),
        100,
        None,
    )
    .await;
    let got: BTreeSet<InvitationId> = ids(&expired).into_iter().collect();
    assert_eq!(
        got,
        (0..3).map(|i| invite_id(&ann, i)).collect::<BTreeSet<_>>()
    );
    assert!(
        expired
            .items
            .iter()
            .all(|i| i.status == InvitationStatus::Expired)
    );
    let pending = list(
        InvitationFilter::Status(InvitationStatus::Pending),
        100,
        None,
    )
    .await;
    let got: BTreeSet<InvitationId> = ids(&pending).into_iter().collect();
    assert_eq!(
        got,
        (0..2).map(|i| invite_id(&bob, i)).collect::<BTreeSet<_>>()
    );
    let by_email = list(InvitationFilter::Email(email("ann@new.test")), 100, None).await;
    assert!(
        by_email
            .items
            .iter()
            .all(|i| i.status == InvitationStatus::Expired)
    );

    let scoped = w.scoped_key(&[ws[0]]);
    assert_code(
        h.service
            .list_invitations(&scoped, InvitationFilter::Target(web(ws[1])), 10, None)
            .await,
        ErrorCode::Forbidden,
    );
    let mine = h
        .service
        .list_invitations(
            &scoped,
            InvitationFilter::Email(email("ann@new.test")),
            10,
            None,
        )
        .await
        .expect("list");
    assert_eq!(ids(&mine), vec![invite_id(&ann, 0)]);
    let other = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x997)));
    let theirs = h
        .service
        .list_invitations(
            &other,
            InvitationFilter::Email(email("ann@new.test")),
            10,
            None,
        )
        .await
        .expect("list");
    assert!(theirs.items.is_empty());
    for (limit, cursor) in [(0, None), (501, None), (10, Some("bogus"))] {
        assert_code(
            h.service
                .list_invitations(
                    &p,
                    InvitationFilter::Email(email("ann@new.test")),
                    limit,
                    cursor,
                )
                .await,
            ErrorCode::InvalidQuery,
        );
    }
    let json = serde_json::to_string(&by_email).expect("json");
    for m in h.mailer.sent() {
        assert!(!json.contains(&token_in(&m.text)), "no token in listings");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Idempotency
// ---------------------------------------------------------------------------------------------

/// The same key and request return the stored response without changing anything or sending
/// a second email; the same key with another request is `idempotency_conflict`; another API
/// key's idempotency keys are independent.
pub async fn idempotent_repeat_returns_stored_response(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 144).await;
    let p = w.global_key();
    let req = sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]);
    let r1 = h
        .service
        .bulk_invite_idempotent(&p, "order-1", req.clone())
        .await
        .expect("first");
    expect_codes(
        &r1,
        &[(web(w.websites[0]), Invited), (web(w.websites[1]), Invited)],
    );
    let s1 = snapshot(&backend).await;
    assert_eq!(h.mailer.attempts(), 1);

    h.clock.advance(Duration::from_secs(3600));
    let r2 = h
        .service
        .bulk_invite_idempotent(&p, "order-1", req.clone())
        .await
        .expect("repeat");
    assert_eq!(r2, r1, "the stored response");
    assert_eq!(snapshot(&backend).await, s1);
    assert_eq!(h.mailer.attempts(), 1, "no second email");

    let other_req = sites(ByEmail, "bob@new.test", &[w.websites[0]]);
    let e = assert_code(
        h.service
            .bulk_invite_idempotent(&p, "order-1", other_req)
            .await,
        ErrorCode::IdempotencyConflict,
    );
    assert!(matches!(e, InviteError::Conflict { .. }));
    assert_eq!(snapshot(&backend).await, s1);

    let other_key = Principal::global(w.org, ApiKeyId(Uuid::from_u128(0x996)));
    let r3 = h
        .service
        .bulk_invite_idempotent(&other_key, "order-1", req)
        .await
        .expect("another key");
    expect_codes(
        &r3,
        &[
            (web(w.websites[0]), AlreadyInvited),
            (web(w.websites[1]), AlreadyInvited),
        ],
    );

    let long = "k".repeat(256);
    for bad in ["", "has space", long.as_str()] {
        assert_code(
            h.service
                .bulk_invite_idempotent(&p, bad, sites(Direct, "carol@new.test", &[w.websites[2]]))
                .await,
            ErrorCode::InvalidIdempotencyKey,
        );
    }
    assert_eq!(users_with(&snapshot(&backend).await, "carol@new.test"), 0);
}

/// An idempotency key is remembered for 24 hours: within them the stored response comes back
/// (even though the state moved on), after them the request executes again.
pub async fn idempotency_key_expires(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 145).await;
    let p = w.global_key();
    let req = sites(Direct, "ann@new.test", &[w.websites[0]]);
    let r1 = h
        .service
        .bulk_invite_idempotent(&p, "order-2", req.clone())
        .await
        .expect("first");
    expect_codes(&r1, &[(web(w.websites[0]), OutcomeCode::Added)]);
    assert!(r1.user_created);
    h.clock.advance(DAY - secs(1));
    let r2 = h
        .service
        .bulk_invite_idempotent(&p, "order-2", req.clone())
        .await
        .expect("repeat");
    assert_eq!(r2, r1);
    h.clock.advance(secs(2));
    let r3 = h
        .service
        .bulk_invite_idempotent(&p, "order-2", req)
        .await
        .expect("after the ttl");
    expect_codes(&r3, &[(web(w.websites[0]), AlreadyMember)]);
    assert!(!r3.user_created);
    assert_eq!(r3.user_id, r1.user_id);
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@new.test"), 1);
}

/// A request that fails validation is not recorded under its idempotency key: the key can be
/// used for a valid request right after.
pub async fn idempotency_ignores_invalid_requests(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 146).await;
    let p = w.global_key();
    assert_code(
        h.service
            .bulk_invite_idempotent(
                &p,
                "order-3",
                sites(Direct, "not-an-address", &[w.websites[0]]),
            )
            .await,
        ErrorCode::InvalidEmail,
    );
    assert_code(
        h.service
            .bulk_invite_idempotent(
                &w.scoped_key(&[w.websites[0]]),
                "order-3",
                groups(Direct, "ann@new.test", &[w.groups[0]]),
            )
            .await,
        ErrorCode::GlobalKeyRequired,
    );
    let r = h
        .service
        .bulk_invite_idempotent(
            &p,
            "order-3",
            sites(Direct, "ann@new.test", &[w.websites[0]]),
        )
        .await
        .expect("the key is free");
    expect_codes(&r, &[(web(w.websites[0]), OutcomeCode::Added)]);
}

// ---------------------------------------------------------------------------------------------
// 10. Concurrency
// ---------------------------------------------------------------------------------------------

/// Overlapping direct and email requests for the same addresses and websites, run
/// concurrently on one service, keep the uniqueness rules: one user per email, one membership
/// per (target, user), one pending invitation per (target, email), no pending invitation
/// beside a membership, and every `added`/`invited` result is a stored row (and vice versa).
pub async fn concurrent_invites_keep_uniqueness(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 147).await;
    let p = w.global_key();
    let ws: Vec<WebsiteId> = w.websites[0..3].to_vec();
    let spellings = [
        ["race@one.test", "Race@One.test", " RACE@one.test "],
        ["race@two.test", "Race@Two.Test", "race@TWO.test "],
    ];
    let mut tasks = Vec::new();
    for i in 0..8usize {
        let service = h.service.clone();
        let p = p.clone();
        let ws = ws.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for round in 0..3usize {
                // Tasks 2k and 2k+1 share an address; each alternates direct and email
                // mode out of step with its partner, so both modes race on every pair.
                let who = (i / 2) % 2;
                let (method, n) = if (i + round) % 2 == 0 {
                    (ByEmail, 2)
                } else {
                    (Direct, 3)
                };
                let targets: Vec<WebsiteId> = (0..n).map(|k| ws[(i + round + k) % 3]).collect();
                let to = spellings[who][(i + round) % 3];
                let resp = service
                    .bulk_invite(&p, sites(method, to, &targets))
                    .await
                    .expect("processed");
                out.push((spellings[who][0], resp));
                tokio::task::yield_now().await;
            }
            out
        }));
    }
    let mut responses = Vec::new();
    for t in tasks {
        responses.extend(t.await.expect("task"));
    }
    let s = snapshot(&backend).await;

    let mut added: BTreeMap<(TargetId, &str), usize> = BTreeMap::new();
    let mut invited: BTreeMap<(TargetId, &str), usize> = BTreeMap::new();
    let mut added_count = 0;
    let mut invited_count = 0;
    let mut mails = 0;
    for (to, resp) in &responses {
        let u = user(&s, to);
        // A message is sent for every batch, unless a concurrent direct add superseded all
        // of its invitations before delivery: then it is cancelled and reported `not_sent`.
        match resp.email {
            Some(e) if e.status == EmailStatus::Sent => mails += 1,
            Some(EmailReport {
                status: EmailStatus::NotSent,
                batch_id: Some(b),
            }) => {
                assert!(
                    s.invitations
                        .iter()
                        .filter(|i| i.batch_id == b)
                        .all(|i| i.status == StoredStatus::Superseded),
                    "batch {b} was not mailed although an invitation of it is alive"
                );
            }
            _ => {}
        }
        for r in &resp.results {
            assert!(
                matches!(
                    r.code,
                    OutcomeCode::Added | Invited | AlreadyMember | AlreadyInvited
                ),
                "{r:?}"
            );
            match r.code {
                OutcomeCode::Added => {
                    added_count += 1;
                    *added.entry((r.target(), to)).or_default() += 1;
                    let u = u.expect("an added user exists");
                    assert_eq!(r.user_id, Some(u.id));
                    assert!(membership(&s, r.target(), u.id).is_some(), "{r:?}");
                }
                OutcomeCode::Invited => {
                    invited_count += 1;
                    *invited.entry((r.target(), to)).or_default() += 1;
                    let inv = invitation(&s, r.invite_id.expect("id"));
                    assert_eq!(inv.target, r.target());
                    assert_eq!(inv.email, email(to));
                }
                _ => {}
            }
        }
    }
    assert!(
        added.values().all(|n| *n == 1),
        "one add per pair: {added:?}"
    );
    assert!(
        invited.values().all(|n| *n == 1),
        "one invitation per pair: {invited:?}"
    );
    assert_eq!(s.memberships.len(), added_count, "no unreported membership");
    assert_eq!(
        s.invitations.len(),
        invited_count,
        "no unreported invitation"
    );
    assert_eq!(h.mailer.sent().len(), mails);

    for to in ["race@one.test", "race@two.test"] {
        assert_eq!(users_with(&s, to), 1, "exactly one user for {to}");
        let uid = user(&s, to).expect("user").id;
        for t in &ws {
            assert!(membership(&s, web(*t), uid).is_some());
            assert_eq!(
                stored_pending(&s, web(*t), to),
                0,
                "a membership supersedes or prevents the invitation"
            );
        }
    }
    let pairs: BTreeSet<(TargetId, UserId)> =
        s.memberships.iter().map(|m| (m.target, m.user)).collect();
    assert_eq!(pairs.len(), s.memberships.len(), "one membership per pair");
    let mut pending: BTreeMap<(TargetId, &Email), usize> = BTreeMap::new();
    for i in &s.invitations {
        if i.status == StoredStatus::Pending {
            *pending.entry((i.target, &i.email)).or_default() += 1;
        }
    }
    assert!(pending.values().all(|n| *n <= 1), "{pending:?}");
}

// ---------------------------------------------------------------------------------------------
// The macro
// ---------------------------------------------------------------------------------------------

/// A mailer that announces each call and then waits until the test releases it, so a test
/// can hold a request in the middle of its delivery.
#[derive(Debug)]
struct GateMailer {
    entered: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
    calls: Mutex<usize>,
}

impl GateMailer {
    fn new() -> Arc<Self> {
        Arc::new(GateMailer {
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
            calls: Mutex::new(0),
        })
    }

    fn calls(&self) -> usize {
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

/// Two requests with one idempotency key while the first is still running: the second gets
/// `idempotency_in_progress` (a different request gets `idempotency_conflict`) and changes
/// nothing; once the first finishes, repeats get its stored response. One execution, one mail.
pub async fn concurrent_idempotent_requests_execute_once(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let clock = crate::ManualClock::standard();
    let gate = GateMailer::new();
    let service = InviteService::new(
        as_store(&backend),
        gate.clone(),
        Harness::config(&clock, 150),
    );
    let p = world.global_key();
    let req = sites(
        ByEmail,
        "ann@new.test",
        &[world.websites[0], world.websites[1]],
    );

    let first = {
        let (service, p, req) = (service.clone(), p.clone(), req.clone());
        tokio::spawn(async move { service.bulk_invite_idempotent(&p, "order-7", req).await })
    };
    gate.entered.notified().await; // the first request is inside its delivery
    let during = snapshot(&backend).await;

    assert_code(
        service
            .bulk_invite_idempotent(&p, "order-7", req.clone())
            .await,
        ErrorCode::IdempotencyInProgress,
    );
    assert_code(
        service
            .bulk_invite_idempotent(
                &p,
                "order-7",
                sites(Direct, "ann@new.test", &[world.websites[2]]),
            )
            .await,
        ErrorCode::IdempotencyConflict,
    );
    assert_eq!(
        snapshot(&backend).await,
        during,
        "the refused repeats changed nothing"
    );

    gate.release.add_permits(1);
    let r1 = first.await.expect("task").expect("first request");
    expect_codes(
        &r1,
        &[
            (web(world.websites[0]), Invited),
            (web(world.websites[1]), Invited),
        ],
    );
    let after = snapshot(&backend).await;
    let r2 = service
        .bulk_invite_idempotent(&p, "order-7", req)
        .await
        .expect("replay");
    assert_eq!(r2, r1, "the stored response");
    assert_eq!(snapshot(&backend).await, after);
    assert_eq!(gate.calls(), 1, "one execution, one email");
    assert_eq!(after.invitations.len(), 2);
}

/// A request that died while holding its idempotency key (its future dropped mid-delivery)
/// blocks repeats with `idempotency_in_progress` until the key is stale (60 s); then a repeat
/// executes again — safely, since every per-target operation is idempotent in effect — and its
/// response is stored. The dead request's message stays in the outbox for `deliver_due`.
pub async fn stale_in_progress_key_is_taken_over(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let clock = crate::ManualClock::standard();
    let gate = GateMailer::new();
    let service = InviteService::new(
        as_store(&backend),
        gate.clone(),
        Harness::config(&clock, 151),
    );
    let p = world.global_key();
    let req = sites(ByEmail, "ann@new.test", &[world.websites[0]]);

    let dying = {
        let (service, p, req) = (service.clone(), p.clone(), req.clone());
        tokio::spawn(async move { service.bulk_invite_idempotent(&p, "order-8", req).await })
    };
    gate.entered.notified().await;
    dying.abort(); // the process "crashes" inside the delivery
    assert!(dying.await.expect_err("aborted").is_cancelled());

    assert_code(
        service
            .bulk_invite_idempotent(&p, "order-8", req.clone())
            .await,
        ErrorCode::IdempotencyInProgress,
    );
    clock.advance(Duration::from_secs(59));
    assert_code(
        service
            .bulk_invite_idempotent(&p, "order-8", req.clone())
            .await,
        ErrorCode::IdempotencyInProgress,
    );

    clock.advance(Duration::from_secs(2));
    let retried = service
        .bulk_invite_idempotent(&p, "order-8", req.clone())
        .await
        .expect("taken over");
    expect_codes(&retried, &[(web(world.websites[0]), AlreadyInvited)]);
    let replay = service
        .bulk_invite_idempotent(&p, "order-8", req)
        .await
        .expect("replay");
    assert_eq!(replay, retried);

    // The dead request's invitation and queued message survived; delivery picks it up.
    let s = snapshot(&backend).await;
    assert_eq!(s.invitations.len(), 1);
    assert_eq!(s.outbox.len(), 1);
    assert_eq!(s.outbox[0].status, MessageStatus::Queued);
    gate.release.add_permits(1);
    let report = service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(
        snapshot(&backend).await.outbox[0].status,
        MessageStatus::Sent
    );
}

/// A message the mailer refused permanently shows as `failed` (with its error and attempts)
/// in the batch view and in every listed invitation of the batch; a delivered one as `sent`.
pub async fn failed_delivery_shows_in_batch_and_list(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 152).await;
    let p = w.global_key();
    h.mailer.set_mode(MailerMode::FailPermanent);
    let r = must(
        h.service
            .bulk_invite(
                &p,
                sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
            )
            .await,
    );
    let email = r.email.expect("email report");
    assert_eq!(email.status, EmailStatus::Failed);
    let batch_id = email.batch_id.expect("a batch");

    let view = h.service.batch(&p, batch_id).await.expect("batch view");
    assert_eq!(view.invitations.len(), 2);
    assert_eq!(view.messages.len(), 1);
    assert_eq!(view.messages[0].status, MessageStatus::Failed);
    assert_eq!(view.messages[0].attempts, 1);
    assert!(view.messages[0].last_error.is_some());
    assert!(
        view.invitations
            .iter()
            .all(|i| i.delivery == Some(MessageStatus::Failed))
    );
    let listed = h
        .service
        .list_invitations(
            &p,
            InvitationFilter::Email(email_of("ann@new.test")),
            10,
            None,
        )
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    assert!(
        listed
            .items
            .iter()
            .all(|i| i.delivery == Some(MessageStatus::Failed))
    );

    h.mailer.set_mode(MailerMode::Ok);
    let ok = must(
        h.service
            .bulk_invite(&p, sites(ByEmail, "bob@new.test", &[w.websites[2]]))
            .await,
    );
    let listed = h
        .service
        .list_invitations(
            &p,
            InvitationFilter::Email(email_of("bob@new.test")),
            10,
            None,
        )
        .await
        .expect("list");
    assert_eq!(listed.items[0].delivery, Some(MessageStatus::Sent));
    let view = h
        .service
        .batch(&p, ok.email.unwrap().batch_id.unwrap())
        .await
        .expect("view");
    assert_eq!(view.messages[0].status, MessageStatus::Sent);

    // The batch view follows the same access rules as a resend.
    assert_code(
        h.service
            .batch(&w.scoped_key(&[w.websites[0]]), batch_id)
            .await,
        ErrorCode::Forbidden,
    );
    let other = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x997)));
    assert_code(h.service.batch(&other, batch_id).await, ErrorCode::NotFound);
}

fn email_of(address: &str) -> Email {
    Email::parse(address).expect("valid address")
}

fn must(r: Result<BulkInviteResponse, InviteError>) -> BulkInviteResponse {
    r.expect("the request is processed")
}

/// Expands to the whole conformance suite for one backend: one `#[tokio::test]` per suite
/// function of [`conformance`](crate::conformance), each with a fresh store.
///
/// The argument is an async factory expression: it is evaluated and awaited once per test and
/// must yield something that coerces to `Arc<dyn Backend>` (an `Arc` of any type implementing
/// `MembershipStore + Directory + Inspect`). A temp-file backend can keep its directory alive
/// inside the store, or leak it. The calling crate needs `tokio` (with the `macros`, `rt` and
/// `rt-multi-thread` features) as a dev-dependency; the concurrency test runs on a
/// multi-threaded runtime with two workers.
///
/// ```ignore
/// // crates/my-backend/tests/conformance.rs
/// use std::sync::Arc;
/// invites_testkit::conformance_suite!(async { Arc::new(my_backend::Store::open_temp().await.unwrap()) });
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr $(,)?) => {
        $crate::__conformance_tests! {
            $factory;
            direct_adds_and_creates_unverified_user,
            direct_keeps_existing_user_untouched,
            already_member_keeps_role,
            org_member_has_org_access,
            already_invited_blocks_second_invitation,
            target_not_found_is_uniform,
            scoped_key_forbidden_per_target,
            failing_target_is_internal_error_only,
            failing_batch_is_all_internal_error,
            groups_are_targets,
            validation_rejections_change_nothing,
            group_ids_need_global_key,
            results_follow_request_order,
            direct_creates_no_user_without_success,
            direct_creates_user_once,
            direct_add_supersedes_live_invitation,
            email_sends_one_consolidated_message,
            email_not_sent_when_nothing_invited,
            email_mode_creates_no_user,
            outbox_is_stored_before_delivery,
            email_queued_when_mailer_fails,
            expired_or_revoked_invitation_does_not_block,
            email_is_case_insensitive,
            tokens_are_never_stored_or_listed,
            delivery_retries_with_exponential_backoff,
            permanent_mail_error_marks_failed,
            too_many_attempts_marks_failed,
            revoked_batch_is_cancelled_not_sent,
            queued_message_survives_store_error,
            preview_is_read_only,
            accept_creates_verified_user_and_memberships,
            accept_reports_per_invitation_codes,
            accept_reports_org_access,
            accept_verifies_existing_user,
            accept_with_other_signed_in_email_is_mismatch,
            token_is_single_use,
            expired_batch_token_is_invalid,
            revoke_rules,
            resend_rotates_token_and_renews,
            resend_renews_expired_invitations,
            resend_cancels_queued_message,
            resend_permissions_and_nothing_to_resend,
            list_invitations_filters_and_pages,
            idempotent_repeat_returns_stored_response,
            idempotency_key_expires,
            idempotency_ignores_invalid_requests,
            concurrent_idempotent_requests_execute_once,
            stale_in_progress_key_is_taken_over,
            failed_delivery_shows_in_batch_and_list,
        }

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_invites_keep_uniqueness() {
            let backend: ::std::sync::Arc<dyn $crate::Backend> = ($factory).await;
            $crate::conformance::concurrent_invites_keep_uniqueness(backend).await;
        }
    };
}

/// Implementation detail of [`conformance_suite!`]: one `#[tokio::test]` per name.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let backend: ::std::sync::Arc<dyn $crate::Backend> = ($factory).await;
                $crate::conformance::$name(backend).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every suite function is listed in the macro (and nothing else is).
    #[test]
    fn the_macro_lists_every_suite_function() {
        let src = include_str!("conformance.rs");
        let macro_start = src
            .find("macro_rules! conformance_suite")
            .expect("the macro");
        let (functions, macro_text) = src.split_at(macro_start);
        let names: Vec<&str> = functions
            .match_indices("\npub async fn ")
            .map(|(i, m)| {
                let rest = &functions[i + m.len()..];
                &rest[..rest.find('(').expect("a signature")]
            })
            .collect();
        assert!(names.len() >= 40, "{names:?}");
        for name in &names {
            let listed = macro_text.contains(&format!("            {name},\n"))
                || macro_text.contains(&format!("conformance::{name}(backend)"));
            assert!(listed, "{name} is not in conformance_suite!");
        }
        let listed = macro_text
            .lines()
            .filter(|l| {
                let t = l.trim();
                t.ends_with(',')
                    && t[..t.len() - 1]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_')
            })
            .count();
        assert_eq!(listed + 1, names.len(), "no stale names in the macro");
    }
}
