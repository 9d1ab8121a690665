//! Erasing a person (issue 18) on a real SQLite file, checked from outside the store: every
//! column of every table (enumerated from `sqlite_master` and `PRAGMA table_info`) is searched
//! with raw SQL, as text (case-insensitive) and as bytes, for the address as typed and
//! normalised, the names and the user id (as text and as its 16 bytes).

mod common;

use invites_core::*;
use invites_sqlite::SqliteStore;
use invites_testkit::{Backend, Harness, World};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

const TYPED: &str = "  Erin.Erased@Example.COM ";
const NORMAL: &str = "erin.erased@example.com";
const FIRST: &str = "Erinnelda";
const LAST: &str = "Vanderbeek-Erased";

/// What the scan looks for.
#[derive(Clone, Debug)]
enum Needle {
    /// Text, found as text in any case, or as its exact bytes.
    Text(String),
    /// Bytes, found as bytes.
    Bytes(Vec<u8>),
}

/// The person's needles: the address (as typed, trimmed, normalised), the names and the ids.
fn needles(users: &[UserId]) -> Vec<Needle> {
    let mut out: Vec<Needle> = [TYPED, TYPED.trim(), NORMAL, FIRST, LAST]
        .into_iter()
        .map(|t| Needle::Text(t.to_owned()))
        .collect();
    out.extend(id_needles(users));
    out
}

/// User ids as text (with and without hyphens) and as their 16 bytes.
fn id_needles(users: &[UserId]) -> Vec<Needle> {
    users
        .iter()
        .flat_map(|user| {
            [
                Needle::Text(user.0.hyphenated().to_string()),
                Needle::Text(user.0.simple().to_string()),
                Needle::Bytes(user.0.as_bytes().to_vec()),
            ]
        })
        .collect()
}

/// Every `table.column` of the file holding one of `needles`, with the row count.
fn scan(path: &Path, needles: &[Needle]) -> Vec<String> {
    let conn = Connection::open(path).expect("raw connection");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    assert!(tables.len() >= 10, "every table is searched: {tables:?}");
    let mut hits = Vec::new();
    for table in &tables {
        let columns: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info(\"{table}\")"))
            .expect("columns")
            .query_map([], |r| r.get(1))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns");
        for column in &columns {
            for needle in needles {
                let count: i64 = match needle {
                    Needle::Text(text) => conn.query_row(
                        &format!(
                            "SELECT COUNT(*) FROM \"{table}\" \
                             WHERE instr(lower(CAST(\"{column}\" AS TEXT)), ?1) > 0 \
                                OR instr(CAST(\"{column}\" AS BLOB), ?2) > 0"
                        ),
                        rusqlite::params![text.to_lowercase(), text.as_bytes()],
                        |r| r.get(0),
                    ),
                    Needle::Bytes(bytes) => conn.query_row(
                        &format!(
                            "SELECT COUNT(*) FROM \"{table}\" \
                             WHERE instr(CAST(\"{column}\" AS BLOB), ?1) > 0"
                        ),
                        [bytes],
                        |r| r.get(0),
                    ),
                }
                .expect("search");
                if count > 0 {
                    hits.push(format!("{table}.{column}: {count} rows hold {needle:?}"));
                }
            }
        }
    }
    hits
}

/// The tables named in `hits`.
fn tables_of(hits: &[String]) -> BTreeSet<String> {
    hits.iter()
        .filter_map(|h| h.split('.').next())
        .map(str::to_owned)
        .collect()
}

async fn open(prefix: &str) -> (Arc<dyn Backend>, std::path::PathBuf) {
    let path = common::fresh_path(prefix);
    let store = SqliteStore::open(&path).await.expect("open");
    (Arc::new(store), path)
}

fn named(mut request: BulkInviteRequest) -> BulkInviteRequest {
    request.first_name = Some(FIRST.to_owned());
    request.last_name = Some(LAST.to_owned());
    request
}

fn invite_id(response: &BulkInviteResponse, website: WebsiteId) -> InvitationId {
    response
        .results
        .iter()
        .find(|r| r.website_id == Some(website))
        .and_then(|r| r.invite_id)
        .expect("invited")
}

#[tokio::test]
async fn after_erasure_no_row_of_any_table_holds_the_person() {
    let (backend, path) = open("erasure").await;
    let world = World::seed(&*backend).await;
    let h = Harness::with_seed(invites_testkit::as_store(&backend), 3);
    let svc = &h.service;
    let key = world.global_key();
    let w = &world.websites;

    // Email mode, sent, then accepted: the user (with the names) and two website memberships.
    let first = svc
        .bulk_invite(
            &key,
            named(BulkInviteRequest::websites(
                InviteMethod::Email,
                TYPED,
                [w[0], w[2]],
            )),
        )
        .await
        .expect("invite");
    assert_eq!(first.summary.succeeded, 2);
    let accepted = svc.accept(&h.last_token(), None).await.expect("accept");
    let user = accepted.user_id;
    // A group invitation superseded by a direct add: a group membership.
    svc.bulk_invite(
        &key,
        named(BulkInviteRequest::groups(
            InviteMethod::Email,
            TYPED,
            [world.groups[1]],
        )),
    )
    .await
    .expect("invite");
    svc.bulk_invite(
        &key,
        BulkInviteRequest::groups(InviteMethod::Direct, TYPED, [world.groups[1]]),
    )
    .await
    .expect("direct");
    // A message left queued (the mailer fails), one invitation of it revoked.
    h.mailer.set_mode(MailerMode::FailTransient);
    let queued = svc
        .bulk_invite(
            &key,
            named(BulkInviteRequest::websites(
                InviteMethod::Email,
                TYPED,
                [w[1], w[3]],
            )),
        )
        .await
        .expect("invite");
    svc.revoke(&key, invite_id(&queued, w[3]))
        .await
        .expect("revoke");
    // Past the expiry: the expired invitation is replaced by a new one, whose mail is sent.
    h.clock.advance(Duration::from_secs(8 * 86_400));
    h.mailer.set_mode(MailerMode::Ok);
    svc.bulk_invite(
        &key,
        named(BulkInviteRequest::websites(
            InviteMethod::Email,
            TYPED,
            [w[1]],
        )),
    )
    .await
    .expect("invite");
    let live_token = h.last_token();
    // An idempotent request whose stored response names the user.
    let replayable = svc
        .bulk_invite_idempotent(
            &key,
            "erase-me-1",
            BulkInviteRequest::websites(InviteMethod::Direct, TYPED, [w[4]]),
        )
        .await
        .expect("idempotent");
    assert_eq!(replayable.results[0].user_id, Some(user));
    // The second organization: an invitation there, then an organization membership in each.
    let other_key = Principal::global(world.other_org, ApiKeyId(Uuid::from_u128(0x777)));
    svc.bulk_invite(
        &other_key,
        named(BulkInviteRequest::websites(
            InviteMethod::Email,
            TYPED,
            [world.other_website],
        )),
    )
    .await
    .expect("invite");
    backend
        .add_org_member(world.other_org, user, OrgRole::Viewer)
        .await
        .expect("org member");
    backend
        .add_org_member(world.org, user, OrgRole::Admin)
        .await
        .expect("org member");
    // A bystander who must keep everything.
    svc.bulk_invite(
        &key,
        BulkInviteRequest::websites(InviteMethod::Direct, "keeper@keep.test", [w[0], w[1]]),
    )
    .await
    .expect("bystander");
    svc.bulk_invite(
        &key,
        BulkInviteRequest::websites(InviteMethod::Email, "keeper@keep.test", [w[2]]),
    )
    .await
    .expect("bystander");

    let before = backend.snapshot().await.expect("snapshot");
    let person = Email::parse(TYPED).expect("email");
    assert_eq!(person.as_str(), NORMAL);
    let statuses: BTreeSet<StoredStatus> = before
        .invitations
        .iter()
        .filter(|i| i.email == person)
        .map(|i| i.status)
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from([
            StoredStatus::Pending,
            StoredStatus::Accepted,
            StoredStatus::Revoked,
            StoredStatus::Superseded,
            StoredStatus::Replaced,
        ]),
        "invitations in every status"
    );
    let message_statuses: BTreeSet<MessageStatus> = before
        .outbox
        .iter()
        .filter(|m| m.recipient == person)
        .map(|m| m.status)
        .collect();
    assert!(message_statuses.contains(&MessageStatus::Queued));
    assert!(message_statuses.contains(&MessageStatus::Sent));

    // The scan sees the person everywhere before (so it is not blind).
    let hits = scan(&path, &needles(&[user]));
    let expected: BTreeSet<String> = [
        "users",
        "website_members",
        "group_members",
        "org_members",
        "invitations",
        "batches",
        "outbox",
        "idempotency",
        // The user id in `user_created`, `member_added`, ... (never the address or a name):
        // as bytes inside a group's `data`, and as the `user_id` of each group naming only
        // her (no call names two users, so nothing in `event_users`).
        "event_groups",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(tables_of(&hits), expected, "{hits:#?}");

    let report = svc.erase_person(TYPED).await.expect("erase");

    let hits = scan(&path, &needles(&[user]));
    assert!(hits.is_empty(), "the person is still stored: {hits:#?}");
    let count = |n: usize| n as u64;
    assert_eq!(
        report,
        access::ErasureReport {
            user: Some(user),
            memberships: count(before.memberships.iter().filter(|m| m.user == user).count()),
            org_memberships: 2,
            invitations: count(
                before
                    .invitations
                    .iter()
                    .filter(|i| i.email == person)
                    .count()
            ),
            batches: count(before.batches.iter().filter(|b| b.2 == person).count()),
            messages: count(
                before
                    .outbox
                    .iter()
                    .filter(|m| m.recipient == person)
                    .count()
            ),
            idempotency_records: 1,
        }
    );
    assert_eq!(report.memberships, 4, "websites 0, 2 and 4, group 1");

    // Everything else is as it was.
    let after = backend.snapshot().await.expect("snapshot");
    let mut expected = before.clone();
    expected.users.retain(|u| u.id != user);
    expected.memberships.retain(|m| m.user != user);
    expected.org_members.retain(|m| m.1 != user);
    expected.invitations.retain(|i| i.email != person);
    expected.batches.retain(|b| b.2 != person);
    expected.outbox.retain(|m| m.recipient != person);
    assert_eq!(after, expected);
    assert!(
        after
            .users
            .iter()
            .any(|u| u.email.as_str() == "keeper@keep.test")
    );

    // The accept link died with its batch, and a second erasure finds nothing.
    assert!(svc.accept(&live_token, None).await.is_err());
    let again = svc.erase_person(NORMAL).await.expect("erase again");
    assert_eq!(again, access::ErasureReport::default());
}

/// Invites (email and direct, some idempotent) and accepts for the address, until `stop`;
/// returns how many calls succeeded.
async fn keep_inviting(h: Harness, world: World, task: usize, stop: Arc<AtomicBool>) -> usize {
    let key = world.global_key();
    let mut calls = 0;
    let mut i = task;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let sites = [world.websites[i % 6], world.websites[(i * 7 + 1) % 6]];
        let method = if i % 2 == 0 {
            InviteMethod::Email
        } else {
            InviteMethod::Direct
        };
        let request = named(BulkInviteRequest::websites(method, TYPED, sites));
        // Errors are allowed (a batch erased between a request's steps); panics are not.
        let ok = match i % 5 {
            0 => {
                let key_name = format!("race-{task}-{i}");
                let r = h.service.bulk_invite_idempotent(&key, &key_name, request);
                r.await.is_ok()
            }
            1 if !h.mailer.sent().is_empty() => {
                h.service.accept(&h.last_token(), None).await.is_ok()
            }
            _ => h.service.bulk_invite(&key, request).await.is_ok(),
        };
        calls += usize::from(ok);
        tokio::task::yield_now().await;
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_racing_invites_and_accepts_leaves_only_whole_later_requests() {
    let (backend, path) = open("erasure-race").await;
    let world = World::seed(&*backend).await;
    let h = Harness::with_seed(invites_testkit::as_store(&backend), 5);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..8)
        .map(|t| tokio::spawn(keep_inviting(h.clone(), world.clone(), t, stop.clone())))
        .collect();
    let started = Instant::now();
    // Let the person accumulate rows, then erase while the tasks keep going.
    let person = Email::parse(TYPED).expect("email");
    let erased = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if h.store.find_user(&person).await.expect("find").is_some()
            || started.elapsed() > Duration::from_secs(3)
        {
            break h.service.erase_person(TYPED).await.expect("erase");
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut calls = 0;
    for t in tasks {
        calls += t.await.expect("a task panicked");
    }
    assert!(calls > 16, "the tasks ran ({calls} successful calls)");
    let erased_user = erased
        .user
        .expect("the person had become a user before the erasure");
    assert!(erased.invitations > 0 && erased.batches > 0, "{erased:?}");

    // Nothing of the erased user is left: his id appears nowhere.
    let hits = scan(&path, &id_needles(&[erased_user]));
    assert!(
        hits.is_empty(),
        "the erased user is still referenced: {hits:#?}"
    );

    // What is left of the address came from requests after the erasure, whole: one user at
    // most, every row referencing existing rows, every invitation and message in a batch to
    // the address.
    let conn = Connection::open(&path).expect("raw");
    let violations: i64 = conn
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign keys");
    assert_eq!(violations, 0, "orphan rows");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    let strays: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM invitations i LEFT JOIN batches b ON b.id = i.batch_id \
                     WHERE i.email = ?1 AND (b.id IS NULL OR b.email <> ?1)) \
                  + (SELECT COUNT(*) FROM outbox o LEFT JOIN batches b ON b.id = o.batch_id \
                     WHERE o.recipient = ?1 AND (b.id IS NULL OR b.email <> ?1)) \
                  + (SELECT COUNT(*) FROM website_members m LEFT JOIN users u ON u.id = m.user_id \
                     WHERE u.id IS NULL) \
                  + (SELECT COUNT(*) FROM group_members m LEFT JOIN users u ON u.id = m.user_id \
                     WHERE u.id IS NULL)",
            [NORMAL],
            |r| r.get(0),
        )
        .expect("strays");
    assert_eq!(strays, 0, "rows of the address outside a whole request");
    drop(conn);

    // Erasing again leaves nothing of the person at all.
    let later = h.store.find_user(&person).await.expect("find");
    let mut users = vec![erased_user];
    users.extend(later.map(|u| u.id));
    h.service.erase_person(TYPED).await.expect("erase again");
    let hits = scan(&path, &needles(&users));
    assert!(hits.is_empty(), "the person is still stored: {hits:#?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The race the test above found, step by step: a request whose idempotency record is still
/// in progress when the person is erased finishes afterwards with a response naming the
/// erased user. Its record went with the erasure, so the response is never stored and a retry
/// of the key runs again.
#[tokio::test]
async fn a_request_in_flight_across_the_erasure_stores_no_response_naming_the_user() {
    let (backend, path) = open("erasure-in-flight").await;
    let world = World::seed(&*backend).await;
    let h = Harness::with_seed(invites_testkit::as_store(&backend), 9);
    let now = h.clock.now();
    let begin = IdempotencyBegin {
        organization: world.org,
        key_id: ApiKeyId(Uuid::from_u128(0x140)),
        key: "in-flight".into(),
        fingerprint: [7; 32],
        expired_before: now.minus(Duration::from_secs(86_400)),
        stale_before: now.minus(Duration::from_secs(60)),
        now,
    };
    assert_eq!(
        backend.idempotency_begin(&begin).await.expect("begin"),
        IdempotencyState::Started
    );
    // The request's work: the person becomes a member.
    let added = h
        .service
        .bulk_invite(
            &world.global_key(),
            named(BulkInviteRequest::websites(
                InviteMethod::Direct,
                TYPED,
                [world.websites[0]],
            )),
        )
        .await
        .expect("direct");
    let user = added.results[0].user_id.expect("added");
    let report = h.service.erase_person(TYPED).await.expect("erase");
    assert_eq!(report.user, Some(user));
    assert_eq!(
        report.idempotency_records, 0,
        "an unfinished record names nobody"
    );
    // The request finishes after the erasure.
    // (The store keeps the response as text; its shape is the core's business.)
    let response = format!(r#"{{"results":[{{"user_id":"{}"}}]}}"#, user.0.hyphenated());
    backend
        .idempotency_finish(
            begin.organization,
            begin.key_id,
            &begin.key,
            now,
            Some(&response),
            Some(user),
        )
        .await
        .expect("finish");
    let hits = scan(&path, &needles(&[user]));
    assert!(hits.is_empty(), "the person is still stored: {hits:#?}");
    assert_eq!(
        backend.idempotency_begin(&begin).await.expect("retry"),
        IdempotencyState::Started,
        "a retry runs again"
    );
}
