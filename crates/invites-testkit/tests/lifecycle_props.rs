//! Properties of the invitation lifecycle (docs/contract.md §5–§7): tokens die with their batch's last
//! live invitation and on resend, accepting is one-shot, expiry is exact, retried deliveries
//! keep one message id per send, idempotent replays change nothing.

use invites_core::*;
use invites_memory::MemoryStore;
use invites_testkit::differential::{Driver, Op, token_of};
use invites_testkit::differential::{runtime, seeded_memory};
use invites_testkit::strategies::cases;
use invites_testkit::strategies::{
    bulk_request, clock_move, mailer_mode, principal, standard_world, start_state,
};
use invites_testkit::{Harness, MailerMode, ManualClock, RecordingMailer};
use proptest::prelude::*;
use proptest::sample::subsequence;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const SEED: u64 = 7;
const CASES: u32 = 256;

async fn start(setup: &[Op]) -> (MemoryStore, Driver) {
    seeded_memory(setup, SEED).await
}

async fn snapshot(store: &MemoryStore) -> Snapshot {
    store.snapshot().await.expect("snapshot")
}

/// A batch created (with the mailer accepting) for a fresh address on top of a random state.
struct Batch {
    id: BatchId,
    invitations: Vec<InvitationId>,
    targets: Vec<WebsiteId>,
    email: Email,
    token: String,
}

/// Invites `Life@Example.com` to `sites` by email; `None` if nothing was invited (the setup
/// may have deleted every site).
async fn create_batch(d: &Driver, sites: &[WebsiteId]) -> Option<Batch> {
    let req = BulkInviteRequest::websites(
        InviteMethod::Email,
        " Life@Example.com",
        sites.iter().copied(),
    );
    let resp = d
        .harness
        .service
        .bulk_invite(&d.world.global_key(), req)
        .await
        .expect("valid request");
    let id = resp.email?.batch_id?;
    let mut invitations = Vec::new();
    let mut targets = Vec::new();
    for r in &resp.results {
        if let (Some(inv), Some(w)) = (r.invite_id, r.website_id) {
            invitations.push(inv);
            targets.push(w);
        }
    }
    let mail = d.harness.mailer.sent().last().cloned().expect("sent");
    assert_eq!(mail.batch_id, id);
    Some(Batch {
        id,
        invitations,
        targets,
        email: Email::parse("life@example.com").expect("valid"),
        token: token_of(&mail).expect("a link"),
    })
}

/// The batch's invitations that are live now.
async fn live(store: &MemoryStore, batch: BatchId, now: Timestamp) -> Vec<InvitationRecord> {
    snapshot(store)
        .await
        .invitations
        .into_iter()
        .filter(|i| i.batch_id == batch && i.is_live(now))
        .collect()
}

/// Something that can happen to an invitation of a batch.
#[derive(Clone, Debug)]
enum Fate {
    /// Revoke the i-th invitation.
    Revoke(usize),
    /// Add the address directly to the i-th target (supersedes a live invitation).
    Supersede(usize),
    /// Accept the batch's token.
    Accept,
    /// Move the clock to the expiry plus this many milliseconds.
    Expire(u32),
    /// Move the clock forward a little.
    Wait(Duration),
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        3 => any::<usize>().prop_map(Fate::Revoke),
        3 => any::<usize>().prop_map(Fate::Supersede),
        1 => Just(Fate::Accept),
        1 => (0u32..5_000).prop_map(Fate::Expire),
        2 => (1u64..=3600).prop_map(|s| Fate::Wait(Duration::from_secs(s))),
    ]
}

fn sites() -> impl Strategy<Value = Vec<WebsiteId>> {
    let w = standard_world();
    subsequence(w.websites.clone(), 1..=4).prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(CASES)))]

    /// While a batch has a live invitation its token previews; once it has none (revoked,
    /// superseded, accepted, expired, in any order) preview and accept answer
    /// `invalid_token` and change nothing.
    #[test]
    fn token_is_useless_once_no_invitation_is_live(
        setup in start_state(&standard_world()),
        sites in sites(),
        fates in prop::collection::vec(fate(), 0..8),
        final_offset in 0u32..100_000,
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let Some(b) = create_batch(&d, &sites).await else { return Ok(()) };
            let svc = &d.harness.service;
            let key = d.world.global_key();
            let expires_at = snapshot(&store).await.invitations.iter()
                .find(|i| i.batch_id == b.id).expect("created").expires_at;
            let n = b.invitations.len();
            for fate in fates.iter().chain([Fate::Expire(final_offset)].iter()) {
                match fate {
                    Fate::Revoke(i) => {
                        let _ = svc.revoke(&key, b.invitations[i % n]).await;
                    }
                    Fate::Supersede(i) => {
                        let req = BulkInviteRequest::websites(
                            InviteMethod::Direct, b.email.as_str(), [b.targets[i % n]]);
                        svc.bulk_invite(&key, req).await.expect("valid");
                    }
                    Fate::Accept => {
                        let _ = svc.accept(&b.token, None).await;
                    }
                    Fate::Expire(ms) => {
                        if d.harness.clock.now() < expires_at {
                            d.harness.clock.set(Timestamp::from_millis(
                                expires_at.as_millis() + i64::from(*ms)));
                        }
                    }
                    Fate::Wait(dur) => d.harness.clock.advance(*dur),
                }
                let now = d.harness.clock.now();
                let live = live(&store, b.id, now).await;
                let preview = svc.preview(&b.token).await;
                if live.is_empty() {
                    prop_assert_eq!(preview.err().map(|e| e.code()), Some(ErrorCode::InvalidToken));
                    let before = snapshot(&store).await;
                    let r = svc.accept(&b.token, None).await;
                    prop_assert_eq!(r.err().map(|e| e.code()), Some(ErrorCode::InvalidToken));
                    prop_assert_eq!(&snapshot(&store).await, &before);
                } else {
                    let p = preview.expect("a live invitation previews");
                    let shown: BTreeSet<InvitationId> = p.invitations.iter().map(|i| i.invite_id).collect();
                    let expected: BTreeSet<InvitationId> = live.iter().map(|i| i.id).collect();
                    prop_assert_eq!(shown, expected);
                }
            }
            // The final fate moved the clock past the expiry: nothing is live any more.
            prop_assert!(live(&store, b.id, d.harness.clock.now()).await.is_empty());
            Ok(())
        })?;
    }

    /// A successful resend kills the old token at once and the new one works; a refused
    /// resend changes nothing about the old token.
    #[test]
    fn resend_kills_the_old_token(
        setup in start_state(&standard_world()),
        sites in sites(),
        revoke in prop::collection::vec(any::<bool>(), 4),
        wait in prop_oneof![(0u64..60).prop_map(Duration::from_secs), clock_move()],
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let Some(b) = create_batch(&d, &sites).await else { return Ok(()) };
            let svc = &d.harness.service;
            let key = d.world.global_key();
            for (inv, r) in b.invitations.iter().zip(&revoke) {
                if *r {
                    svc.revoke(&key, *inv).await.expect("revocable");
                }
            }
            d.harness.clock.advance(wait);
            let old_was_live = !live(&store, b.id, d.harness.clock.now()).await.is_empty();
            let mails = d.harness.mailer.sent().len();
            let before = snapshot(&store).await;
            match svc.resend(&key, b.id).await {
                Ok(r) => {
                    prop_assert!(wait >= Duration::from_secs(60));
                    prop_assert_eq!(r.email.status, EmailStatus::Sent);
                    let sent = d.harness.mailer.sent();
                    prop_assert_eq!(sent.len(), mails + 1);
                    let new_token = token_of(&sent[mails]).expect("a link");
                    prop_assert_ne!(&new_token, &b.token);
                    for e in [
                        svc.preview(&b.token).await.err(),
                        svc.accept(&b.token, None).await.err(),
                    ] {
                        prop_assert_eq!(e.map(|e| e.code()), Some(ErrorCode::InvalidToken));
                    }
                    let p = svc.preview(&new_token).await.expect("the new token works");
                    prop_assert_eq!(p.invitations.len(), r.renewed);
                }
                Err(e) => {
                    prop_assert!(matches!(
                        e.code(),
                        ErrorCode::ResendTooSoon | ErrorCode::NothingToResend
                    ), "{:?}", e);
                    prop_assert_eq!(e.code() == ErrorCode::ResendTooSoon, wait < Duration::from_secs(60));
                    prop_assert_eq!(&snapshot(&store).await, &before);
                    prop_assert_eq!(d.harness.mailer.sent().len(), mails);
                    prop_assert_eq!(svc.preview(&b.token).await.is_ok(), old_was_live);
                }
            }
            Ok(())
        })?;
    }

    /// Accepting a second time answers `invalid_token` and changes nothing.
    #[test]
    fn accepting_twice_changes_nothing_the_second_time(
        setup in start_state(&standard_world()),
        sites in sites(),
        signed_in in any::<bool>(),
        wait in prop::option::of(clock_move()),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let Some(b) = create_batch(&d, &sites).await else { return Ok(()) };
            let svc = &d.harness.service;
            let first = svc.accept(&b.token, None).await.expect("a fresh token accepts");
            prop_assert!(first.results.iter().all(|r| r.result.code == OutcomeCode::Added));
            prop_assert!(first.user_created);
            if let Some(w) = wait {
                d.harness.clock.advance(w);
            }
            let after_first = snapshot(&store).await;
            let user = signed_in.then_some(first.user_id);
            let second = svc.accept(&b.token, user).await;
            prop_assert_eq!(second.err().map(|e| e.code()), Some(ErrorCode::InvalidToken));
            prop_assert_eq!(svc.preview(&b.token).await.err().map(|e| e.code()), Some(ErrorCode::InvalidToken));
            prop_assert_eq!(&snapshot(&store).await, &after_first);
            Ok(())
        })?;
    }

    /// No clock value at or past the expiry lets an invitation be accepted (or previewed);
    /// any earlier one does. Expiry comes from a random time to live, possibly renewed by a
    /// resend.
    #[test]
    fn no_clock_value_at_or_past_expiry_accepts(
        ttl_secs in 1u64..=30 * 24 * 3600,
        resend_after in prop::option::of(60u64..=10 * 24 * 3600),
        offset_ms in prop_oneof![-3_000i64..=3_000, -100_000_000i64..=100_000_000],
        sites in sites(),
    ) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let world = invites_testkit::World::seed(&store).await;
            let clock = ManualClock::standard();
            let mailer = RecordingMailer::new_ok();
            let config = Harness::config(&clock, SEED)
                .with_invitation_ttl(Duration::from_secs(ttl_secs))
                .expect("a ttl within bounds");
            let svc = InviteService::new(Arc::new(store.clone()), Arc::new(mailer.clone()), config);
            let key = world.global_key();
            let req = BulkInviteRequest::websites(InviteMethod::Email, "late@example.com", sites.clone());
            let resp = svc.bulk_invite(&key, req).await.expect("valid");
            let batch = resp.email.and_then(|e| e.batch_id).expect("invited");
            let mut token = token_of(mailer.sent().last().expect("sent")).expect("link");
            let mut expires_at = clock.now().plus(Duration::from_secs(ttl_secs));
            if let Some(after) = resend_after {
                clock.advance(Duration::from_secs(after));
                if let Ok(r) = svc.resend(&key, batch).await {
                    prop_assert_eq!(r.renewed, sites.len());
                    token = token_of(mailer.sent().last().expect("sent")).expect("link");
                    expires_at = clock.now().plus(Duration::from_secs(ttl_secs));
                }
            }
            for inv in snapshot(&store).await.invitations {
                prop_assert_eq!(inv.expires_at, expires_at);
            }
            let at = expires_at.as_millis() + offset_ms;
            if at < clock.now().as_millis() {
                return Ok(()); // the clock never goes back
            }
            clock.set(Timestamp::from_millis(at));
            let before = snapshot(&store).await;
            let preview = svc.preview(&token).await;
            let accepted = svc.accept(&token, None).await;
            if offset_ms >= 0 {
                prop_assert_eq!(preview.err().map(|e| e.code()), Some(ErrorCode::InvalidToken));
                prop_assert_eq!(accepted.err().map(|e| e.code()), Some(ErrorCode::InvalidToken));
                prop_assert_eq!(&snapshot(&store).await, &before);
            } else {
                prop_assert_eq!(preview.expect("live").invitations.len(), sites.len());
                let a = accepted.expect("live");
                prop_assert!(a.results.iter().all(|r| r.result.code == OutcomeCode::Added));
                prop_assert_eq!(a.results.len(), sites.len());
            }
            Ok(())
        })?;
    }

    /// With a mailer failing at random across `deliver_due` calls, every message handed to
    /// the mailer carries the id of its batch's current send: one id per send, each delivered
    /// at most once, a new id only after a resend. Every mailer call is counted in the outbox.
    #[test]
    fn retried_delivery_keeps_one_message_id_per_send(
        setup in start_state(&standard_world()),
        sites in sites(),
        first_mode in mailer_mode(),
        steps in prop::collection::vec(prop_oneof![
            3 => mailer_mode().prop_map(Step::Mailer),
            3 => clock_move().prop_map(Step::Wait),
            4 => Just(Step::Deliver),
            1 => Just(Step::Resend),
            1 => any::<usize>().prop_map(Step::Revoke),
        ], 1..25),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let svc = &d.harness.service;
            let key = d.world.global_key();
            let mailer = &d.harness.mailer;
            mailer.set_mode(first_mode);
            let mails_before = mailer.sent().len();
            // The setup may have erased a person whose mails were sent: their rows are gone,
            // so attempts are counted from here on.
            let attempts_before = mailer.attempts()
                - snapshot(&store).await.outbox.iter().map(|m| m.attempts as usize).sum::<usize>();
            let req = BulkInviteRequest::websites(InviteMethod::Email, "retry@example.com", sites.clone());
            let resp = svc.bulk_invite(&key, req).await.expect("valid");
            let Some(batch) = resp.email.and_then(|e| e.batch_id) else { return Ok(()) };
            let invitations: Vec<InvitationId> = resp.results.iter().filter_map(|r| r.invite_id).collect();
            // The id of the batch's current send: its newest outbox row.
            let current = |s: &Snapshot| s.outbox.iter().filter(|m| m.batch_id == batch)
                .max_by_key(|m| (m.created_at, m.id)).map(|m| m.id).expect("a row");
            let mut send_id = current(&snapshot(&store).await);
            let mut checked = mails_before;
            let check = |sent: &[EmailMessage], from: usize, id: MessageId| -> Result<(), TestCaseError> {
                for m in &sent[from..] {
                    if m.batch_id == batch {
                        prop_assert_eq!(m.id, id, "a mail of an old send");
                    }
                }
                Ok(())
            };
            check(&mailer.sent(), checked, send_id)?;
            checked = mailer.sent().len();
            for step in &steps {
                match step {
                    Step::Mailer(m) => mailer.set_mode(*m),
                    Step::Wait(w) => d.harness.clock.advance(*w),
                    Step::Deliver => {
                        svc.deliver_due().await.expect("claims");
                    }
                    Step::Resend => {
                        if svc.resend(&key, batch).await.is_ok() {
                            let s = snapshot(&store).await;
                            let new_id = current(&s);
                            prop_assert_ne!(new_id, send_id);
                            // Every older send of the batch is no longer queued.
                            prop_assert!(s.outbox.iter().filter(|m| m.batch_id == batch && m.id != new_id)
                                .all(|m| m.status != MessageStatus::Queued));
                            send_id = new_id;
                        }
                    }
                    Step::Revoke(i) => {
                        let _ = svc.revoke(&key, invitations[i % invitations.len()]).await;
                    }
                }
                let sent = mailer.sent();
                check(&sent, checked, send_id)?;
                checked = sent.len();
                let s = snapshot(&store).await;
                // Each id delivered at most once, and only for a row marked sent.
                let mut seen: BTreeMap<MessageId, usize> = BTreeMap::new();
                for m in &sent[mails_before..] {
                    *seen.entry(m.id).or_default() += 1;
                }
                for (id, n) in &seen {
                    prop_assert_eq!(*n, 1, "message {:?} delivered {} times", id, n);
                    let row = s.outbox.iter().find(|r| r.id == *id).expect("an outbox row");
                    prop_assert_eq!(row.status, MessageStatus::Sent);
                    prop_assert_eq!(row.accept_url.as_ref(), None);
                }
                let attempts: u32 = s.outbox.iter().map(|m| m.attempts).sum();
                prop_assert_eq!(attempts as usize, mailer.attempts() - attempts_before);
            }
            Ok(())
        })?;
    }

    /// Replaying an idempotent request (same key, same request, within 24 hours) returns the
    /// first response and changes nothing, sends nothing; the key with another request is a
    /// conflict that changes nothing either.
    #[test]
    fn an_idempotent_replay_changes_nothing(
        setup in start_state(&standard_world()),
        req in bulk_request(&standard_world()),
        p in principal(&standard_world()),
        mode in mailer_mode(),
        wait_ms in prop_oneof![Just(0u64), Just(86_400_000u64), 0u64..=86_400_000],
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let svc = &d.harness.service;
            d.harness.mailer.set_mode(mode);
            let first = svc.bulk_invite_idempotent(&p, "replay-key", req.clone()).await;
            let state = snapshot(&store).await;
            let mails = d.harness.mailer.sent().len();
            let calls = d.harness.mailer.attempts();
            d.harness.clock.advance(Duration::from_millis(wait_ms));
            let again = svc.bulk_invite_idempotent(&p, "replay-key", req.clone()).await;
            match (&first, &again) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a.code(), b.code()),
                _ => prop_assert!(false, "{:?} then {:?}", first, again),
            }
            prop_assert_eq!(&snapshot(&store).await, &state);
            prop_assert_eq!(d.harness.mailer.sent().len(), mails);
            prop_assert_eq!(d.harness.mailer.attempts(), calls);
            if first.is_ok() {
                let mut other = req.clone();
                other.invite_method = match req.invite_method {
                    InviteMethod::Direct => InviteMethod::Email,
                    InviteMethod::Email => InviteMethod::Direct,
                };
                let conflict = svc.bulk_invite_idempotent(&p, "replay-key", other).await;
                prop_assert_eq!(conflict.err().map(|e| e.code()), Some(ErrorCode::IdempotencyConflict));
                prop_assert_eq!(&snapshot(&store).await, &state);
                prop_assert_eq!(d.harness.mailer.attempts(), calls);
            }
            Ok(())
        })?;
    }
}

/// A step of the delivery property.
#[derive(Clone, Debug)]
enum Step {
    Mailer(MailerMode),
    Wait(Duration),
    Deliver,
    Resend,
    Revoke(usize),
}
