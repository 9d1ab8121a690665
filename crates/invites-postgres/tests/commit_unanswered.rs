//! A COMMIT whose answer never arrives: the connection drops after PostgreSQL committed, or
//! before the COMMIT reached it. The store must answer what the database holds (docs/contract.md §4: a
//! target reported `added` or `invited` is stored, one reported failed left no trace), so it
//! checks the rows it wrote on another connection before answering. A [`CommitProxy`]
//! between the store and the server cuts the connection on the wire. Each test skips (one
//! line) without `INVITES_PG_URL`.

#[path = "support/commit_proxy.rs"]
mod commit_proxy;
mod support;

use commit_proxy::{CommitProxy, Cut};
use invites_core::{
    AddMembers, BulkInviteRequest, BulkStore, Email, EmailStatus, Inspect, InviteMethod,
    MessageStatus, NewUser, OutcomeCode, Role, Snapshot, StoreError, StoredStatus, TargetId,
    Timestamp, UserId,
};
use invites_postgres::testing::{TestDatabase, fresh_database, server_url};
use invites_postgres::{PgOptions, PgStore};
use invites_testkit::{Harness, World};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{Via, pool};

macro_rules! server {
    ($test:literal) => {
        match server_url(concat!("postgres test ", $test)) {
            Some(url) => url,
            None => return,
        }
    };
}

/// A fresh database, a store that reaches it through a proxy, the seeded world, and a
/// harness over that store (the world is seeded before any cut is armed).
async fn through_proxy(url: &str) -> (TestDatabase, CommitProxy, PgStore, World, Harness) {
    let db = fresh_database(url).await;
    let proxy = CommitProxy::start(support::server_addr(&db.url));
    let via = Via {
        addr: Some(proxy.addr),
        ..Via::default()
    };
    let store = PgStore::from_pool_with(pool(&db.url, via, 4), PgOptions::default())
        .await
        .expect("connect through the proxy");
    let world = World::seed(&store).await;
    let h = Harness::new(store.clone());
    (db, proxy, store, world, h)
}

fn request(method: InviteMethod, email: &str, world: &World, sites: &[usize]) -> BulkInviteRequest {
    BulkInviteRequest::websites(method, email, sites.iter().map(|&i| world.websites[i]))
}

/// The snapshot as another connection, straight to the server, sees it.
async fn stored(db: &TestDatabase) -> Snapshot {
    let direct = db.store().await;
    direct.snapshot().await.expect("snapshot")
}

#[tokio::test]
async fn direct_adds_whose_commit_answer_was_lost_are_reported_added() {
    let url = server!("direct_adds_whose_commit_answer_was_lost_are_reported_added");
    let (db, proxy, _store, world, h) = through_proxy(&url).await;
    proxy.arm(Cut::AnswerLost);
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            request(InviteMethod::Direct, "lost@example.com", &world, &[0, 1, 2]),
        )
        .await
        .expect("processed");
    assert_eq!(proxy.fired(), 1, "the proxy cut the COMMIT's answer");

    // The response matches the database: the user and the three memberships are stored.
    let snap = stored(&db).await;
    let user = snap
        .users
        .iter()
        .find(|u| u.email.as_str() == "lost@example.com")
        .expect("the user is stored");
    let codes: Vec<OutcomeCode> = r.results.iter().map(|x| x.code).collect();
    assert_eq!(codes, [OutcomeCode::Added; 3], "{r:?}");
    assert!(r.user_created);
    assert_eq!(r.user_id, Some(user.id));
    let targets: BTreeSet<TargetId> = snap
        .memberships
        .iter()
        .filter(|m| m.user == user.id)
        .map(|m| m.target)
        .collect();
    assert_eq!(
        targets,
        world.websites[..3]
            .iter()
            .map(|w| TargetId::Website(*w))
            .collect::<BTreeSet<_>>()
    );
}

#[tokio::test]
async fn invitations_whose_commit_answer_was_lost_are_reported_invited() {
    let url = server!("invitations_whose_commit_answer_was_lost_are_reported_invited");
    let (db, proxy, _store, world, h) = through_proxy(&url).await;
    proxy.arm(Cut::AnswerLost);
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            request(InviteMethod::Email, "lost@example.com", &world, &[3, 4]),
        )
        .await
        .expect("processed");
    assert_eq!(proxy.fired(), 1, "the proxy cut the COMMIT's answer");

    let codes: Vec<OutcomeCode> = r.results.iter().map(|x| x.code).collect();
    assert_eq!(codes, [OutcomeCode::Invited; 2], "{r:?}");
    let email = r.email.as_ref().expect("an email report");
    let batch = email.batch_id.expect("the batch is named");
    // The invitations and their batch's one message are stored, and the message went out.
    let snap = stored(&db).await;
    let invited: Vec<_> = snap
        .invitations
        .iter()
        .filter(|i| i.batch_id == batch)
        .collect();
    assert!(invited.iter().all(|i| i.status == StoredStatus::Pending));
    let stored_ids: BTreeSet<_> = invited.iter().map(|i| Some(i.id)).collect();
    let reported: BTreeSet<_> = r.results.iter().map(|x| x.invite_id).collect();
    assert_eq!(stored_ids.len(), 2);
    assert_eq!(reported, stored_ids);
    let messages: Vec<_> = snap.outbox.iter().filter(|m| m.batch_id == batch).collect();
    assert_eq!(messages.len(), 1, "one queued message for the batch");
    assert_eq!(email.status, EmailStatus::Sent);
    assert_eq!(messages[0].status, MessageStatus::Sent);
    assert_eq!(h.mailer.sent().len(), 1);
}

#[tokio::test]
async fn a_commit_that_never_reached_the_server_is_internal_error_and_stores_nothing() {
    let url =
        server!("a_commit_that_never_reached_the_server_is_internal_error_and_stores_nothing");
    let (db, proxy, _store, world, h) = through_proxy(&url).await;
    let before = stored(&db).await;
    for (n, method) in [InviteMethod::Direct, InviteMethod::Email]
        .into_iter()
        .enumerate()
    {
        proxy.arm(Cut::CommitLost);
        let r = h
            .service
            .bulk_invite(
                &world.global_key(),
                request(method, "never@example.com", &world, &[0, 1, 2]),
            )
            .await
            .expect("processed");
        assert_eq!(proxy.fired(), n + 1, "the proxy cut the COMMIT");
        let codes: Vec<OutcomeCode> = r.results.iter().map(|x| x.code).collect();
        assert_eq!(codes, [OutcomeCode::InternalError; 3], "{r:?}");
        assert!(!r.user_created);
        assert_eq!(r.user_id, None::<UserId>);
        assert_eq!(stored(&db).await, before, "nothing of {method:?} is stored");
    }
    assert!(h.mailer.sent().is_empty());
}

/// The slow path (one target's write fails, so each target runs in its own savepoint) loses
/// its `COMMIT`'s answer too: the targets that were written are `added` / `invited` and
/// stored, the failed one is `internal_error` and left no trace.
#[tokio::test]
async fn the_savepoint_path_whose_commit_answer_was_lost_reports_what_is_stored() {
    let url = server!("the_savepoint_path_whose_commit_answer_was_lost_reports_what_is_stored");
    let (db, proxy, _store, world, h) = through_proxy(&url).await;
    let failing = world.websites[1].0;
    db.connect()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION fail_one() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF (to_jsonb(NEW) ->> CASE TG_TABLE_NAME WHEN 'invitations' THEN 'target_id'
                                      ELSE 'website_id' END) = '{failing}'
                 THEN RAISE EXCEPTION 'injected failure'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fail_one BEFORE INSERT ON website_members
                 FOR EACH ROW EXECUTE FUNCTION fail_one();
             CREATE TRIGGER fail_one BEFORE INSERT ON invitations
                 FOR EACH ROW EXECUTE FUNCTION fail_one();"
        ))
        .await
        .expect("install the trigger");
    let expected = [
        OutcomeCode::Added,
        OutcomeCode::InternalError,
        OutcomeCode::Added,
    ];
    for (n, (method, email, good)) in [
        (InviteMethod::Direct, "slow@example.com", OutcomeCode::Added),
        (
            InviteMethod::Email,
            "slower@example.com",
            OutcomeCode::Invited,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        proxy.arm(Cut::AnswerLost);
        let r = h
            .service
            .bulk_invite(
                &world.global_key(),
                request(method, email, &world, &[0, 1, 2]),
            )
            .await
            .expect("processed");
        assert_eq!(proxy.fired(), n + 1, "the proxy cut the COMMIT's answer");
        let codes: Vec<OutcomeCode> = r.results.iter().map(|x| x.code).collect();
        let want: Vec<OutcomeCode> = expected
            .iter()
            .map(|&c| if c == OutcomeCode::Added { good } else { c })
            .collect();
        assert_eq!(codes, want, "{r:?}");
        let snap = stored(&db).await;
        let stored_targets: BTreeSet<TargetId> = match method {
            InviteMethod::Direct => {
                let user = r.user_id.expect("the user is named");
                snap.memberships
                    .iter()
                    .filter(|m| m.user == user)
                    .map(|m| m.target)
                    .collect()
            }
            InviteMethod::Email => snap
                .invitations
                .iter()
                .filter(|i| i.email.as_str() == email)
                .map(|i| i.target)
                .collect(),
        };
        let want_targets: BTreeSet<TargetId> = [0, 2]
            .iter()
            .map(|&i| TargetId::Website(world.websites[i]))
            .collect();
        assert_eq!(stored_targets, want_targets, "{method:?}");
    }
}

/// The `COMMIT` reaches the server 300 ms after the store lost the connection: the check
/// waits for the transaction to end (it takes the email's lock), so it sees the commit and
/// answers `added`. A check that read at once would find nothing and answer
/// `internal_error` for stored memberships.
#[tokio::test]
async fn a_commit_that_reaches_the_server_late_is_waited_for() {
    let url = server!("a_commit_that_reaches_the_server_late_is_waited_for");
    let (db, proxy, _store, world, h) = through_proxy(&url).await;
    proxy.arm(Cut::CommitLate(Duration::from_millis(300)));
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            request(InviteMethod::Direct, "late@example.com", &world, &[4, 5]),
        )
        .await
        .expect("processed");
    assert_eq!(proxy.fired(), 1, "the proxy delayed the COMMIT");
    let codes: Vec<OutcomeCode> = r.results.iter().map(|x| x.code).collect();
    assert_eq!(codes, [OutcomeCode::Added; 2], "{r:?}");
    let snap = stored(&db).await;
    let user = r.user_id.expect("the user is named");
    assert_eq!(
        snap.memberships.iter().filter(|m| m.user == user).count(),
        2
    );
}

/// The server never receives the `COMMIT` and never hears the connection close: its
/// transaction stays open with the email's lock, so the check cannot tell within its 5 s
/// wait. The call fails (the core reports `internal_error`), retryable, and the error says
/// the outcome is unknown. It does not hang.
#[tokio::test]
async fn a_commit_still_in_doubt_after_the_wait_is_an_unknown_outcome() {
    let url = server!("a_commit_still_in_doubt_after_the_wait_is_an_unknown_outcome");
    let (_db, proxy, store, world, _h) = through_proxy(&url).await;
    proxy.arm(Cut::ServerHeld);
    let cmd = AddMembers {
        organization: world.org,
        email: Email::parse("held@example.com").expect("email"),
        new_user: NewUser {
            id: UserId(uuid::Uuid::from_u128(0x4e1d)),
            first_name: None,
            last_name: None,
        },
        role: Role::Viewer,
        targets: vec![TargetId::Website(world.websites[0])],
        now: Timestamp::from_millis(1_700_000_000_000),
        actor: None,
    };
    let started = Instant::now();
    let result = store.add_members(&cmd).await;
    assert_eq!(proxy.fired(), 1, "the proxy held the transaction");
    match result {
        Err(e @ StoreError::Unavailable { .. }) => {
            assert!(e.is_retryable());
            assert!(
                e.to_string().contains("outcome of a commit is unknown"),
                "{e}"
            );
        }
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(30),
        "waited {waited:?} for the lock, then gave up"
    );
}
