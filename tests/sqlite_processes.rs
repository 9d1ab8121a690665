//! SQLite under real concurrency and real crashes (issue 3):
//!
//! - `eight_tasks_share_one_store`: 8 tokio tasks, overlapping bulk invites on one file.
//! - `two_processes_share_one_file`: 2 OS processes on one database file.
//! - `sigkill_loses_nothing_and_never_lies`: a child runs bulk invites in a loop and is killed
//!   with SIGKILL at random moments, 20 times; after each kill the database is checked, its
//!   event log included (every committed change has its event, no event lacks its change).
//!
//! The child processes are this test binary itself, re-run with `--ignored --exact
//! child_worker` and its instructions in environment variables.

use invites::core::*;
use invites::sqlite::SqliteStore;
use invites_testkit::processes::{
    LoggedResponse, check_events, child_command, child_var, kill_at_random, log_responses,
    read_logged, runtime,
};
use invites_testkit::workload;
use invites_testkit::{SeededRandom, World};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;

/// Overlap tests use 3 addresses and 3 websites (maximum contention); the crash loop uses
/// 1000 addresses and every website, so nearly every operation writes and a kill usually lands
/// inside a write.
fn random_request(rng: &SeededRandom, world: &World, pool: usize) -> BulkInviteRequest {
    let websites = if pool <= 3 { 3 } else { world.websites.len() };
    workload::random_request(rng, world, pool, websites)
}

fn service(store: SqliteStore) -> InviteService {
    // Real OS randomness and the system clock, as in production.
    let mailer = invites_testkit::RecordingMailer::new_ok();
    InviteService::new(
        Arc::new(store),
        Arc::new(mailer),
        InviteConfig::new("https://app.test/accept").unwrap(),
    )
}

/// The child: runs `INVITES_CHILD_OPS` random bulk invites, logging each response as one
/// JSON line after it returns. Ignored unless run by a parent test.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_worker() {
    let (Ok(db), Ok(log)) = (
        std::env::var("INVITES_CHILD_DB"),
        std::env::var("INVITES_CHILD_LOG"),
    ) else {
        return;
    };
    let seed: u64 = child_var("INVITES_CHILD_SEED").parse().unwrap();
    let ops: usize = child_var("INVITES_CHILD_OPS").parse().unwrap();
    let pool: usize = child_var("INVITES_CHILD_POOL").parse().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let store = SqliteStore::open(&db).await.expect("open");
        let world = World::seed(&store).await;
        let service = service(store);
        let rng = SeededRandom::new(seed);
        log_responses(&service, &world, Path::new(&log), ops, || {
            random_request(&rng, &world, pool)
        })
        .await;
    });
}

fn spawn_child(db: &Path, log: &Path, seed: u64, ops: usize, pool: usize) -> Child {
    child_command("child_worker")
        .env("INVITES_CHILD_DB", db)
        .env("INVITES_CHILD_LOG", log)
        .env("INVITES_CHILD_SEED", seed.to_string())
        .env("INVITES_CHILD_OPS", ops.to_string())
        .env("INVITES_CHILD_POOL", pool.to_string())
        .spawn()
        .unwrap()
}

fn one(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Everything that must hold of the file whatever happened to the processes.
fn check_database(db: &Path, logged: &[LoggedResponse], world: &World) {
    let conn = Connection::open(db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let fk_violations = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(
        fk_violations, 0,
        "a row points at nothing (membership without its user?)"
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count(*) FROM (SELECT email FROM users GROUP BY email HAVING count(*) > 1)"
        ),
        0
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count(*) FROM (SELECT 1 FROM invitations WHERE status = 'pending' GROUP BY target_kind, target_id, email HAVING count(*) > 1)"
        ),
        0
    );
    // Email mode is all or nothing per target, and the message is stored with the batch.
    assert_eq!(
        one(
            &conn,
            "SELECT count(*) FROM batches b WHERE NOT EXISTS (SELECT 1 FROM invitations i WHERE i.batch_id = b.id)"
        ),
        0
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count(*) FROM batches b WHERE (SELECT count(*) FROM outbox o WHERE o.batch_id = b.id) <> 1"
        ),
        0
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM invitations i WHERE i.batch_id = o.batch_id)"
        ),
        0
    );
    // A user is created only with a first membership (seeded users aside).
    let seeded = [world.org_admin, world.existing_user];
    let mut stmt = conn
        .prepare(
            "SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM website_members m WHERE m.user_id = u.id)
             AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.user_id = u.id)",
        )
        .unwrap();
    let lonely: Vec<Vec<u8>> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for id in lonely {
        let id = UserId(uuid::Uuid::from_slice(&id).unwrap());
        assert!(
            seeded.contains(&id),
            "user {id} exists without any membership"
        );
    }
    // Every response a process logged is true of the database.
    for entry in logged {
        let r = &entry.response;
        assert_eq!(r.results.len(), r.summary.requested);
        for result in &r.results {
            let (kind, target) = match result.target() {
                TargetId::Website(w) => ("website", w.0),
                TargetId::Group(g) => ("group", g.0),
            };
            match result.code {
                OutcomeCode::Added => {
                    let user = result.user_id.expect("added carries user_id");
                    let table = if kind == "website" {
                        "website_members"
                    } else {
                        "group_members"
                    };
                    let col = if kind == "website" {
                        "website_id"
                    } else {
                        "group_id"
                    };
                    let n: i64 = conn
                        .query_row(
                            &format!(
                                "SELECT count(*) FROM {table} WHERE {col} = ?1 AND user_id = ?2"
                            ),
                            (target.as_bytes().as_slice(), user.0.as_bytes().as_slice()),
                            |r| r.get(0),
                        )
                        .unwrap();
                    assert_eq!(
                        n, 1,
                        "logged added for {} on {target} is not in the database",
                        entry.email
                    );
                }
                OutcomeCode::Invited => {
                    let id = result.invite_id.expect("invited carries invite_id");
                    let n: i64 = conn
                        .query_row(
                            "SELECT count(*) FROM invitations WHERE id = ?1 AND target_id = ?2 AND target_kind = ?3",
                            (id.0.as_bytes().as_slice(), target.as_bytes().as_slice(), kind),
                            |r| r.get(0),
                        )
                        .unwrap();
                    assert_eq!(n, 1, "logged invitation {id} is not in the database");
                }
                OutcomeCode::AlreadyMember
                | OutcomeCode::AlreadyInvited
                | OutcomeCode::HasOrgAccess => {}
                other => {
                    panic!("a caller saw {other:?}, not a per-target outcome of a healthy store")
                }
            }
        }
    }
    // One user per email across every response.
    let emails: BTreeSet<String> = logged.iter().map(|l| l.email.to_lowercase()).collect();
    for email in emails {
        let ids: BTreeSet<UserId> = logged
            .iter()
            .filter(|l| {
                l.email.eq_ignore_ascii_case(&email)
                    && l.response.invite_method == InviteMethod::Direct
            })
            .filter_map(|l| l.response.user_id)
            .collect();
        assert!(ids.len() <= 1, "{email} got several user ids: {ids:?}");
    }
}

/// Invariant 11 on the file: every committed change has its event and no event lacks its
/// change, with the organization's positions 1..=counter and no gap.
async fn check_log(db: &Path, world: &World) {
    let store = SqliteStore::open(db).await.expect("open");
    let events = store
        .read_events(world.org, 0, 1_000_000)
        .await
        .expect("events");
    let counter: i64 = Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT event_seq FROM organizations WHERE id = ?1",
            [world.org.0.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    let snapshot = store.snapshot().await.expect("snapshot");
    check_events(
        &events,
        u64::try_from(counter).expect("a count"),
        &snapshot,
        &[world.org_admin, world.existing_user],
    );
}

fn fresh_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("invites.db");
    (dir, db)
}

async fn seed(db: &Path) -> World {
    let store = SqliteStore::open(db).await.unwrap();
    World::seed(&store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_share_one_store() {
    let (_dir, db) = fresh_db();
    let world = seed(&db).await;
    let service = service(SqliteStore::open(&db).await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (service, world) = (service.clone(), world.clone());
        tasks.push(tokio::spawn(async move {
            let rng = SeededRandom::new(t);
            let mut log = Vec::new();
            for _ in 0..25 {
                let request = random_request(&rng, &world, 3);
                let email = request.email.clone();
                let response = service
                    .bulk_invite(&world.global_key(), request)
                    .await
                    .expect("processed");
                log.push(LoggedResponse { email, response });
            }
            log
        }));
    }
    let mut logged = Vec::new();
    for t in tasks {
        logged.extend(t.await.unwrap());
    }
    assert_eq!(logged.len(), 200);
    check_database(&db, &logged, &world);
    check_log(&db, &world).await;
}

#[test]
fn two_processes_share_one_file() {
    let (dir, db) = fresh_db();
    let rt = runtime();
    let world = rt.block_on(seed(&db));
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    let children: Vec<Child> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| spawn_child(&db, log, 100 + i as u64, 80, 3))
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child failed");
    }
    let logged: Vec<LoggedResponse> = logs.iter().flat_map(|l| read_logged(l)).collect();
    assert_eq!(
        logged.len(),
        160,
        "every request of both processes completed"
    );
    check_database(&db, &logged, &world);
    rt.block_on(check_log(&db, &world));
}

#[test]
fn sigkill_loses_nothing_and_never_lies() {
    let (dir, db) = fresh_db();
    let rt = runtime();
    let world = rt.block_on(seed(&db));
    let rng = SeededRandom::new(0xC4A5);
    let mut kills = 0;
    let mut all_logged = Vec::new();
    for round in 0..20u64 {
        let log = dir.path().join(format!("round{round}.log"));
        let mut child = spawn_child(&db, &log, round, 100_000, 1000);
        // Kill after a random number (below 60) of logged responses (0 = during start-up).
        let status = kill_at_random(&mut child, &log, &rng, 60);
        assert!(
            !status.success(),
            "round {round}: the child should have been killed"
        );
        kills += 1;
        let logged = read_logged(&log);
        // Reopening (migrations, WAL recovery) works after every kill.
        rt.block_on(async { SqliteStore::open(&db).await.expect("reopen after SIGKILL") });
        check_database(&db, &logged, &world);
        rt.block_on(check_log(&db, &world));
        all_logged.extend(logged);
    }
    assert_eq!(kills, 20);
    let conn = Connection::open(&db).unwrap();
    eprintln!(
        "crash loop: {kills} kills, {} logged responses, {} memberships, {} invitations in the database",
        all_logged.len(),
        one(&conn, "SELECT count(*) FROM website_members")
            + one(&conn, "SELECT count(*) FROM group_members"),
        one(&conn, "SELECT count(*) FROM invitations")
    );
    // The logs of earlier rounds still hold at the end.
    check_database(&db, &all_logged, &world);
    assert!(
        !all_logged.is_empty(),
        "children made progress before being killed"
    );
}
