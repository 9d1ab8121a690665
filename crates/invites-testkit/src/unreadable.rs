//! Rows a backend cannot read back (issue 9): an outbox row, a batch or an invitation that
//! this version cannot decode (written by an older version, by hand, or corrupted) must never
//! stop delivery for anyone else, nor fail a page, a snapshot or another batch.
//!
//! The memory backend never re-reads what it stored, so it cannot hold such a row: these checks
//! are for backends that decode rows (SQLite, PostgreSQL). Each backend's own test plants the
//! bad rows with raw SQL through a [`Planter`] and runs [`one_bad_row_blocks_nothing`]; a
//! backend on a file reopens it and runs [`after_reopen`].
//!
//! What each read does with such a row (the documented results checked here):
//!
//! | read | a row it cannot decode |
//! |---|---|
//! | `claim_due_messages` | set aside in the claim's transaction: marked `failed`, `last_error` = `stored row could not be read: column outbox.<column>`, link cleared; never returned |
//! | `deliver_due` | a message whose batch cannot be read is marked `failed` (`not sent: ...`) and counted `failed`; the others are delivered |
//! | `list_invitations` | the row is left out, the page filled from the rows after it (the cursor stays right) |
//! | `batch_messages` (batch view, listing) | the message is left out |
//! | `get_batch`, `find_batch_by_token` (batch view, preview, accept) | that batch only is `StoreError::Incompatible` naming the column |
//! | `snapshot` | the row is left out of its table |

use crate::differential::token_of;
use crate::{Backend, Harness, ManualClock, World, as_store};
use async_trait::async_trait;
use invites_core::*;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use uuid::Uuid;

/// The value planted where an address belongs: the schema takes it, `Email::parse` refuses
/// it. No error, log line or `last_error` may ever quote it.
pub const SPOILED_EMAIL: &str = "Spoiled Value, not an email";

/// How a backend's test plants rows its store cannot decode (raw SQL on the same database).
#[async_trait]
pub trait Planter: Send + Sync {
    /// Stores [`SPOILED_EMAIL`] as the recipient of outbox message `id`.
    async fn spoil_message_recipient(&self, id: MessageId);
    /// Stores [`SPOILED_EMAIL`] as the email of invitation `id`.
    async fn spoil_invitation_email(&self, id: InvitationId);
    /// Outbox message `id` as stored, read with raw SQL.
    async fn message_row(&self, id: MessageId) -> RawMessage;
    /// Stores [`SPOILED_NAME`] as the first name of user `id`.
    async fn spoil_user_first_name(&self, id: UserId);
}

/// The value planted where a name belongs: `PersonName::parse` would trim it, so it is not a
/// stored name.
pub const SPOILED_NAME: &str = " Spoiled name ";

/// An outbox row as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RawMessage {
    /// The status tag.
    pub status: String,
    /// The last error.
    pub last_error: Option<String>,
    /// Whether the accept link is still stored.
    pub has_link: bool,
}

/// A mailer that fails (transiently) until opened, and keeps every message it was given, so a
/// test has the token of a message that was never delivered.
#[derive(Clone, Debug, Default)]
struct GateMailer(Arc<Mutex<GateState>>);

#[derive(Debug, Default)]
struct GateState {
    open: bool,
    given: Vec<EmailMessage>,
    sent: Vec<EmailMessage>,
}

impl GateMailer {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Mailer for GateMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let mut s = self.lock();
        s.given.push(message.clone());
        if s.open {
            s.sent.push(message.clone());
            Ok(())
        } else {
            Err(MailError::transient("gate closed"))
        }
    }
}

/// One batch the scenario made.
#[derive(Clone, Debug)]
pub struct Made {
    /// Its organization's key.
    pub principal: Principal,
    /// The invited address.
    pub email: String,
    /// The batch.
    pub batch: BatchId,
    /// Its invitations.
    pub invitations: Vec<InvitationId>,
    /// Its (only) message.
    pub message: MessageId,
    /// Its accept token.
    pub token: String,
}

/// What [`one_bad_row_blocks_nothing`] planted, for [`after_reopen`].
#[derive(Clone, Debug)]
pub struct Planted {
    /// The batch whose message's recipient was spoiled (its batch and invitations are fine).
    pub bad_message: Made,
    /// The batch one of whose invitations' email was spoiled.
    pub bad_batch: Made,
    /// The spoiled invitation of `bad_batch`.
    pub bad_invitation: InvitationId,
    /// Healthy batches: two of the first organization, two of the other.
    pub healthy: Vec<Made>,
    /// The user whose first name was spoiled, and its email.
    pub bad_user: (UserId, Email),
    /// A healthy user.
    pub good_user: UserId,
    /// The time the scenario ended at.
    pub now: Timestamp,
}

struct Scenario {
    service: InviteService,
    mailer: GateMailer,
    clock: ManualClock,
}

fn scenario(backend: &Arc<dyn Backend>) -> Scenario {
    let mailer = GateMailer::default();
    let clock = ManualClock::standard();
    let service = InviteService::new(
        as_store(backend),
        Arc::new(mailer.clone()),
        Harness::config(&clock, 909),
    );
    Scenario {
        service,
        mailer,
        clock,
    }
}

async fn invite(s: &Scenario, principal: &Principal, email: &str, req: BulkInviteRequest) -> Made {
    let r = s
        .service
        .bulk_invite(principal, req)
        .await
        .expect("bulk invite");
    assert!(r.results.iter().all(|t| t.code == OutcomeCode::Invited));
    let report = r.email.expect("an email report");
    assert_eq!(report.status, EmailStatus::Queued, "the mailer is closed");
    let batch = report.batch_id.expect("a batch");
    let messages = s
        .service
        .store()
        .batch_messages(batch)
        .await
        .expect("messages");
    assert_eq!(messages.len(), 1);
    let token = token_of(s.mailer.lock().given.last().expect("an attempt")).expect("link in text");
    Made {
        principal: principal.clone(),
        email: email.to_owned(),
        batch,
        invitations: r.results.iter().filter_map(|t| t.invite_id).collect(),
        message: messages[0].id,
        token,
    }
}

fn other_key(world: &World) -> Principal {
    Principal::global(world.other_org, ApiKeyId(Uuid::from_u128(0x909)))
}

/// Two organizations; an outbox row whose recipient cannot be read and a batch one of whose
/// invitations cannot be read (both of the first organization) are queued AHEAD of four
/// healthy messages (two per organization). One `deliver_due` delivers all four healthy ones;
/// the unreadable message is set aside (failed, with the reason, never claimed again), the
/// message of the unreadable batch is marked failed; snapshot, listing, the batch view,
/// preview and accept keep working for everything else, and the bad batch's own view, preview
/// and accept give `Incompatible` for it alone.
///
/// # Panics
/// When the backend lets one bad row stop anything else.
pub async fn one_bad_row_blocks_nothing(
    backend: Arc<dyn Backend>,
    planter: &dyn Planter,
) -> Planted {
    let world = World::seed(&*backend).await;
    let s = scenario(&backend);
    let (a, b) = (world.global_key(), other_key(&world));
    let w = &world.websites;
    let second = Duration::from_secs(1);
    let mut made = Vec::new();
    for (p, email, req) in [
        (&a, "set-aside@acme.test", websites(&[w[0]])),
        (&a, "half-read@acme.test", websites(&[w[1], w[2]])),
        (&a, "ann@acme.test", websites(&[w[3]])),
        (&a, "bob@acme.test", websites(&[w[4]])),
        (&b, "cid@elsewhere.test", websites(&[world.other_website])),
        (
            &b,
            "dee@elsewhere.test",
            BulkInviteRequest::groups(InviteMethod::Email, "", [world.other_group]),
        ),
    ] {
        let req = BulkInviteRequest {
            email: email.to_owned(),
            ..req
        };
        made.push(invite(&s, p, email, req).await);
        // One second apart, so the claim order is the creation order.
        s.clock.advance(second);
    }
    let healthy = made.split_off(2);
    let bad_batch = made.pop().expect("two bad ones");
    let bad_message = made.pop().expect("two bad ones");
    let bad_invitation = bad_batch.invitations[0];
    planter.spoil_message_recipient(bad_message.message).await;
    planter.spoil_invitation_email(bad_invitation).await;

    // Past every backoff: all six are due, the two bad ones first.
    s.clock.advance(Duration::from_secs(3600));
    s.mailer.lock().open = true;
    let report = s
        .service
        .deliver_due()
        .await
        .expect("one unreadable row must not stop the outbox");
    let mut got: Vec<String> = s
        .mailer
        .lock()
        .sent
        .iter()
        .map(|m| m.to.as_str().to_owned())
        .collect();
    let mut want: Vec<String> = healthy.iter().map(|m| m.email.clone()).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "every healthy message, once, in one call");
    assert_eq!(
        (
            report.sent,
            report.failed,
            report.retried,
            report.store_errors
        ),
        (4, 1, 0, 0),
        "{report:?}"
    );

    assert_set_aside(planter, bad_message.message, "recipient").await;
    let raw = planter.message_row(bad_batch.message).await;
    assert_eq!((raw.status.as_str(), raw.has_link), ("failed", false));
    let reason = raw.last_error.expect("a reason");
    assert!(reason.contains("invitations.email"), "{reason}");
    assert!(!reason.contains(SPOILED_EMAIL), "{reason}");

    planter.spoil_user_first_name(world.existing_user).await;
    let planted = Planted {
        bad_message,
        bad_batch,
        bad_invitation,
        healthy,
        bad_user: (
            world.existing_user,
            Email::parse("existing@acme.test").expect("email"),
        ),
        good_user: world.org_admin,
        now: s.clock.now(),
    };
    nothing_comes_back(&s, &planted).await;
    reads_keep_working(&backend, &s, &planted, true).await;
    planted
}

/// The checks of [`one_bad_row_blocks_nothing`] after the store was reopened on the same data
/// (`backend`): nothing is claimed again and every read still works.
///
/// # Panics
/// As [`one_bad_row_blocks_nothing`].
pub async fn after_reopen(backend: Arc<dyn Backend>, planted: &Planted) {
    let s = scenario(&backend);
    s.clock.set(planted.now);
    s.mailer.lock().open = true;
    nothing_comes_back(&s, planted).await;
    reads_keep_working(&backend, &s, planted, false).await;
}

fn websites(ids: &[WebsiteId]) -> BulkInviteRequest {
    BulkInviteRequest::websites(InviteMethod::Email, "", ids.iter().copied())
}

/// Long after every lease, nothing is claimed: the set-aside row never comes back.
async fn nothing_comes_back(s: &Scenario, planted: &Planted) {
    s.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let report = s.service.deliver_due().await.expect("deliver_due");
    assert_eq!(report, DeliveryReport::default());
    let far = s.clock.now().plus(Duration::from_secs(400 * 24 * 3600));
    let claimed = s
        .service
        .store()
        .claim_due_messages(far, far, 100)
        .await
        .expect("claim");
    assert!(claimed.is_empty(), "{} claimed", claimed.len());
    s.clock.set(planted.now);
}

fn expect_incompatible<T: std::fmt::Debug>(r: Result<T, InviteError>, column: &str) {
    match r {
        Err(InviteError::Unavailable {
            source: StoreError::Incompatible { reason },
        }) => {
            assert!(reason.contains(column), "{reason}");
            assert!(!reason.contains(SPOILED_EMAIL), "{reason}");
        }
        other => panic!("expected Incompatible naming {column}, got {other:?}"),
    }
}

/// Every pending invitation `p` sees, page by page (`limit` per page), following the cursor
/// to its end.
///
/// # Panics
/// When a page fails, is longer than `limit`, or the cursor never ends.
pub async fn list_all(service: &InviteService, p: &Principal, limit: usize) -> Vec<InvitationId> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = service
            .list_invitations(
                p,
                InvitationFilter::Status(InvitationStatus::Pending),
                limit,
                cursor.as_deref(),
            )
            .await
            .expect("one bad row must not fail the page");
        assert!(page.items.len() <= limit);
        ids.extend(page.items.iter().map(|i| i.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return ids,
        }
    }
    panic!("the cursor never ended")
}

async fn reads_keep_working(
    backend: &Arc<dyn Backend>,
    s: &Scenario,
    planted: &Planted,
    accept: bool,
) {
    let bad_message = &planted.bad_message;
    let bad_batch = &planted.bad_batch;

    // The snapshot leaves out exactly the two unreadable rows.
    let snap = backend
        .snapshot()
        .await
        .expect("one bad row must not fail the snapshot");
    let outbox: BTreeSet<MessageId> = snap.outbox.iter().map(|m| m.id).collect();
    let mut want: BTreeSet<MessageId> = planted.healthy.iter().map(|m| m.message).collect();
    want.insert(bad_batch.message);
    assert_eq!(outbox, want);
    let invitations: BTreeSet<InvitationId> = snap.invitations.iter().map(|i| i.id).collect();
    assert!(!invitations.contains(&planted.bad_invitation));
    assert_eq!(invitations.len(), 7 - 1);

    // Listing: every readable invitation, whatever the page size, the cursor walking past the
    // unreadable one.
    let a = &bad_message.principal;
    let b = &planted.healthy[2].principal;
    let mut want_a: Vec<InvitationId> = bad_message.invitations.clone();
    want_a.extend(bad_batch.invitations[1..].iter().copied());
    want_a.extend(
        planted.healthy[..2]
            .iter()
            .flat_map(|m| m.invitations.clone()),
    );
    let want_b: Vec<InvitationId> = planted.healthy[2..]
        .iter()
        .flat_map(|m| m.invitations.clone())
        .collect();
    // On the run after the reopen, two of the healthy ones have been accepted: no longer
    // pending.
    let pending = |want: &[InvitationId], accepted: &[InvitationId]| -> Vec<InvitationId> {
        want.iter()
            .copied()
            .filter(|i| accept || !accepted.contains(i))
            .collect()
    };
    let want_a = pending(&want_a, &planted.healthy[0].invitations);
    let want_b = pending(&want_b, &planted.healthy[2].invitations);
    let limits: &[usize] = if accept {
        &[1, 2, 3, 500]
    } else {
        &[1, 2, 500]
    };
    for &limit in limits {
        assert_eq!(
            list_all(&s.service, a, limit).await,
            want_a,
            "limit {limit}"
        );
        assert_eq!(
            list_all(&s.service, b, limit).await,
            want_b,
            "limit {limit}"
        );
    }

    // Reads of one row: the unreadable one alone is an error naming its column, never the
    // value; the others read as usual.
    let incompatible = |what: &str, r: Result<_, StoreError>, column: &str| match r {
        Err(e @ StoreError::Incompatible { .. }) => {
            let e = e.to_string();
            assert!(e.contains(column), "{what}: {e}");
            assert!(
                !e.contains(SPOILED_EMAIL) && !e.contains(SPOILED_NAME.trim()),
                "{e}"
            );
        }
        other => panic!("{what}: {other:?}"),
    };
    let org = bad_batch.principal.organization;
    incompatible(
        "get_invitation",
        backend
            .get_invitation(org, planted.bad_invitation)
            .await
            .map(|_| ()),
        "email",
    );
    assert!(
        backend
            .get_invitation(org, bad_batch.invitations[1])
            .await
            .expect("a healthy invitation")
            .is_some()
    );
    let (bad_user, bad_email) = &planted.bad_user;
    incompatible(
        "get_user",
        backend.get_user(*bad_user).await.map(|_| ()),
        "first_name",
    );
    incompatible(
        "find_user",
        backend.find_user(bad_email).await.map(|_| ()),
        "first_name",
    );
    assert!(
        backend
            .get_user(planted.good_user)
            .await
            .expect("a healthy user")
            .is_some()
    );

    // Batch views: the healthy ones as usual; the one whose message is unreadable lists its
    // invitation without that message; the unreadable batch alone is an error.
    for m in &planted.healthy {
        let view = s
            .service
            .batch(&m.principal, m.batch)
            .await
            .expect("batch view");
        assert_eq!(view.messages.len(), 1);
        assert_eq!(view.messages[0].status, MessageStatus::Sent);
    }
    let view = s
        .service
        .batch(a, bad_message.batch)
        .await
        .expect("a batch whose message is unreadable still shows");
    assert_eq!(
        view.invitations.iter().map(|i| i.id).collect::<Vec<_>>(),
        bad_message.invitations
    );
    assert!(view.messages.is_empty(), "{:?}", view.messages);
    expect_incompatible(
        s.service.batch(a, bad_batch.batch).await,
        "invitations.email",
    );

    // Preview and accept: other batches work, the unreadable batch alone fails.
    // (Accepted before a reopen, the first of each organization's healthy batches has no
    // live invitation left, so its link no longer opens.)
    let open: Vec<&Made> = if accept {
        planted.healthy.iter().chain([bad_message]).collect()
    } else {
        vec![&planted.healthy[1], &planted.healthy[3], bad_message]
    };
    for m in open {
        let preview = s
            .service
            .preview(&m.token)
            .await
            .unwrap_or_else(|e| panic!("preview of {}: {e:?}", m.email));
        assert_eq!(preview.batch_id, m.batch);
    }
    expect_incompatible(
        s.service.preview(&bad_batch.token).await,
        "invitations.email",
    );
    expect_incompatible(
        s.service.accept(&bad_batch.token, None).await,
        "invitations.email",
    );
    if accept {
        for m in [&planted.healthy[0], &planted.healthy[2]] {
            let r = s.service.accept(&m.token, None).await.expect("accept");
            assert!(
                r.results
                    .iter()
                    .all(|x| x.result.code == OutcomeCode::Added)
            );
        }
    }
}

/// Due messages for a backend's own claim test, which spoils all but the last with raw SQL.
pub struct Queued {
    /// The service over the backend; its clock started these messages.
    pub harness: Harness,
    /// The key that sent them (the seeded world's global key).
    pub key: Principal,
    /// The messages, oldest first; the last one is left healthy.
    pub messages: Vec<MessageId>,
}

/// Queues `n` messages (at most one per website of the [`World`], which it seeds): an email
/// invite to one website each, to its own address, a second apart. The mailer fails
/// transiently, so every message stays queued.
pub async fn queue_messages(backend: Arc<dyn Backend>, n: usize) -> Queued {
    let world = World::seed(&*backend).await;
    let harness = Harness::with_seed(as_store(&backend), 7);
    harness.mailer.set_mode(crate::MailerMode::FailTransient);
    let key = world.global_key();
    let mut messages = Vec::new();
    for (i, site) in world.websites.iter().take(n).enumerate() {
        let r = harness
            .service
            .bulk_invite(
                &key,
                BulkInviteRequest::websites(
                    InviteMethod::Email,
                    &format!("user{i}@acme.test"),
                    [*site],
                ),
            )
            .await
            .expect("invite");
        let batch = r.email.and_then(|e| e.batch_id).expect("batch");
        messages.push(backend.batch_messages(batch).await.expect("messages")[0].id);
        harness.clock.advance(Duration::from_secs(1));
    }
    assert_eq!(
        messages.len(),
        n,
        "the world has fewer websites than messages asked for"
    );
    Queued {
        harness,
        key,
        messages,
    }
}

impl Queued {
    /// The healthy message (the last queued).
    pub fn healthy(&self) -> MessageId {
        *self.messages.last().expect("at least one message")
    }

    /// The messages the test spoiled (all but the last).
    pub fn spoiled(&self) -> &[MessageId] {
        &self.messages[..self.messages.len() - 1]
    }

    /// An hour later, claims every due message: only the healthy one comes back.
    ///
    /// # Panics
    /// When the claim fails or returns anything else.
    pub async fn claim_returns_only_the_healthy(&self, backend: &dyn Backend) -> Timestamp {
        self.harness.clock.advance(Duration::from_secs(3600));
        let now = self.harness.clock.now();
        let claimed = backend
            .claim_due_messages(now, now.plus(Duration::from_secs(60)), 100)
            .await
            .expect("the claim goes on past unreadable rows");
        assert_eq!(
            claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![self.healthy()]
        );
        now
    }

    /// Records the healthy message sent: a day after `now` nothing is due, so no set-aside
    /// row is ever claimed again.
    ///
    /// # Panics
    /// When a message is claimed again.
    pub async fn nothing_comes_back(&self, backend: &dyn Backend, now: Timestamp) {
        backend
            .record_delivery(self.healthy(), DeliveryUpdate::Sent { attempts: 2 }, now)
            .await
            .expect("record");
        let later = now.plus(Duration::from_secs(86_400));
        assert!(
            backend
                .claim_due_messages(later, later, 100)
                .await
                .expect("claim")
                .is_empty()
        );
    }
}

/// Outbox message `id`, read back through `planter` (raw SQL), was set aside: failed, its
/// reason naming the `column`, its link cleared.
///
/// # Panics
/// When it was not.
pub async fn assert_set_aside(planter: &dyn Planter, id: MessageId, column: &str) {
    let row = planter.message_row(id).await;
    assert_eq!(row.status, "failed", "{column}");
    assert_eq!(
        row.last_error.as_deref(),
        Some(format!("stored row could not be read: column outbox.{column}").as_str())
    );
    assert!(!row.has_link, "{column}: the link is cleared");
}
