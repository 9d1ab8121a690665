//! Many app servers on one PostgreSQL database, and crashes (issue 10):
//!
//! - `four_servers_and_two_deliverers_share_one_database`: 4 OS processes, each with its own
//!   pool, run 400 overlapping bulk requests (both modes, 8 emails, 4 websites and 2 groups)
//!   while 2 more processes run delivery loops. Afterwards: one user per email, no duplicate
//!   membership or live invitation, every logged `added`/`invited` is a row, and every sent
//!   outbox message was handed to a mailer exactly once (each process logs what its mailer
//!   accepted to its own file).
//! - `sigkill_loses_nothing_and_never_lies`: a writer process is killed with SIGKILL at random
//!   moments, 20 times; after each kill the invariants of the SQLite crash test hold, the
//!   event log's included (every committed change has its event, no event lacks its change).
//!
//! The children are this test binary itself, re-run with `--ignored --exact child_process`
//! and their instructions in environment variables. Skips (one line) without
//! `INVITES_PG_URL`.

use async_trait::async_trait;
use invites_core::{
    BulkInviteRequest, DeliveryPolicy, EmailMessage, EventStore, Inspect, InviteConfig,
    InviteMethod, InviteService, MailError, Mailer, OutcomeCode, TargetId, UserId,
};
use invites_postgres::PgStore;
use invites_postgres::testing::{TestDatabase, fresh_database, server_url};
use invites_testkit::processes::{
    LoggedResponse, check_events, child_command, child_var, kill_at_random, log_responses,
    read_lines, read_logged, runtime,
};
use invites_testkit::workload;
use invites_testkit::{SeededRandom, World};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Overlap runs use a small pool of addresses and the first 4 websites; larger pools use
/// every website.
fn random_request(rng: &SeededRandom, world: &World, pool: usize) -> BulkInviteRequest {
    let websites = if pool <= 10 { 4 } else { world.websites.len() };
    workload::random_request(rng, world, pool, websites)
}

/// A mailer whose "send" is a line with the message id appended to a file; or one that always
/// fails transiently (the message stays queued for the deliverers).
#[derive(Debug)]
struct FileMailer {
    log: Option<PathBuf>,
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let Some(log) = &self.log else {
            return Err(MailError::transient("this server's mail relay is down"));
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(MailError::transient)?;
        f.write_all(format!("{}\n", message.id).as_bytes())
            .map_err(MailError::transient)?;
        Ok(())
    }
}

fn service(store: PgStore, mailer: FileMailer) -> InviteService {
    // Fast retries, a lease far longer than any delivery, as many attempts as the policy allows.
    let policy = DeliveryPolicy::default()
        .with_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .and_then(|p| p.with_lease(Duration::from_secs(60)))
        .and_then(|p| p.with_max_attempts(100))
        .expect("policy");
    let config = InviteConfig::new("https://app.test/accept")
        .expect("config")
        .with_delivery_policy(policy);
    InviteService::new(Arc::new(store), Arc::new(mailer), config)
}

/// A child: a writer (`INVITES_CHILD_ROLE=writer`: `INVITES_CHILD_OPS` random requests, each
/// response logged as one JSON line after it returned) or a deliverer (`deliverer`: delivery
/// passes until the stop file exists and nothing is due). Ignored unless run by a parent.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_process() {
    let Ok(role) = std::env::var("INVITES_CHILD_ROLE") else {
        return;
    };
    let url = child_var("INVITES_CHILD_PG");
    let rt = runtime();
    rt.block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let world = World::seed(&store).await;
        let sends = std::env::var("INVITES_CHILD_SENDS").ok().map(PathBuf::from);
        let service = service(store, FileMailer { log: sends });
        if role == "deliverer" {
            let stop = PathBuf::from(child_var("INVITES_CHILD_STOP"));
            loop {
                let report = service.deliver_due().await.expect("deliver");
                if report.sent + report.retried + report.cancelled == 0 {
                    if stop.exists() {
                        break;
                    }
                    // Idle: poll the outbox again shortly, as a real delivery loop does.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            return;
        }
        let seed: u64 = child_var("INVITES_CHILD_SEED").parse().expect("seed");
        let ops: usize = child_var("INVITES_CHILD_OPS").parse().expect("ops");
        let pool: usize = child_var("INVITES_CHILD_POOL").parse().expect("pool");
        let rng = SeededRandom::new(seed);
        let log = PathBuf::from(child_var("INVITES_CHILD_LOG"));
        log_responses(&service, &world, &log, ops, || {
            random_request(&rng, &world, pool)
        })
        .await;
    });
}

struct ChildSpec<'a> {
    role: &'a str,
    url: &'a str,
    log: Option<&'a Path>,
    sends: Option<&'a Path>,
    stop: Option<&'a Path>,
    seed: u64,
    ops: usize,
    pool: usize,
}

fn spawn(spec: &ChildSpec<'_>) -> Child {
    let mut cmd = child_command("child_process");
    cmd.env("INVITES_CHILD_ROLE", spec.role)
        .env("INVITES_CHILD_PG", spec.url)
        .env("INVITES_CHILD_SEED", spec.seed.to_string())
        .env("INVITES_CHILD_OPS", spec.ops.to_string())
        .env("INVITES_CHILD_POOL", spec.pool.to_string());
    for (name, path) in [
        ("INVITES_CHILD_LOG", spec.log),
        ("INVITES_CHILD_SENDS", spec.sends),
        ("INVITES_CHILD_STOP", spec.stop),
    ] {
        if let Some(path) = path {
            cmd.env(name, path);
        }
    }
    cmd.spawn().expect("spawn a child")
}

async fn one(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Everything that must hold of the database whatever happened to the processes.
async fn check_database(db: &TestDatabase, logged: &[LoggedResponse], world: &World) {
    let c = db.connect().await;
    let zero = [
        (
            "two users with one email",
            "SELECT count(*) FROM (SELECT email FROM users GROUP BY email HAVING count(*) > 1) d",
        ),
        (
            "two memberships of one (website, user)",
            "SELECT count(*) FROM (SELECT 1 FROM website_members GROUP BY website_id, user_id HAVING count(*) > 1) d",
        ),
        (
            "two pending invitations of one (target, email)",
            "SELECT count(*) FROM (SELECT 1 FROM invitations WHERE status = 'pending' \
             GROUP BY target_kind, target_id, email HAVING count(*) > 1) d",
        ),
        (
            "a batch without invitations",
            "SELECT count(*) FROM batches b WHERE NOT EXISTS (SELECT 1 FROM invitations i WHERE i.batch_id = b.id)",
        ),
        (
            "a batch without exactly one message",
            "SELECT count(*) FROM batches b WHERE (SELECT count(*) FROM outbox o WHERE o.batch_id = b.id) <> 1",
        ),
        (
            "a message without invitations",
            "SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM invitations i WHERE i.batch_id = o.batch_id)",
        ),
    ];
    for (what, sql) in zero {
        assert_eq!(one(&c, sql).await, 0, "{what}");
    }
    // A user is created only with a first membership (seeded users aside).
    let seeded = [world.org_admin.0, world.existing_user.0];
    for row in c
        .query(
            "SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM website_members m WHERE m.user_id = u.id) \
             AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.user_id = u.id)",
            &[],
        )
        .await
        .expect("lonely users")
    {
        let id: uuid::Uuid = row.get(0);
        assert!(seeded.contains(&id), "user {id} exists without any membership");
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
                    let sql = if kind == "website" {
                        "SELECT count(*) FROM website_members WHERE website_id = $1 AND user_id = $2"
                    } else {
                        "SELECT count(*) FROM group_members WHERE group_id = $1 AND user_id = $2"
                    };
                    let n: i64 = c
                        .query_one(sql, &[&target, &user.0])
                        .await
                        .expect("count")
                        .get(0);
                    assert_eq!(n, 1, "a logged `added` on {target} is not in the database");
                }
                OutcomeCode::Invited => {
                    let id = result.invite_id.expect("invited carries invite_id");
                    let n: i64 = c
                        .query_one(
                            "SELECT count(*) FROM invitations WHERE id = $1 AND target_id = $2 AND target_kind = $3",
                            &[&id.0, &target, &kind],
                        )
                        .await
                        .expect("count")
                        .get(0);
                    assert_eq!(n, 1, "logged invitation {id} is not in the database");
                }
                OutcomeCode::AlreadyMember
                | OutcomeCode::AlreadyInvited
                | OutcomeCode::HasOrgAccess => {}
                other => panic!("a caller saw {other:?}, not an outcome of a healthy store"),
            }
        }
    }
    // One user per email across every response.
    let mut ids: BTreeMap<String, BTreeSet<UserId>> = BTreeMap::new();
    for l in logged {
        if l.response.invite_method == InviteMethod::Direct {
            if let Some(id) = l.response.user_id {
                ids.entry(l.email.to_lowercase()).or_default().insert(id);
            }
        }
    }
    for (email, ids) in ids {
        assert_eq!(ids.len(), 1, "{email} got several user ids: {ids:?}");
    }
    // Invariant 11: every committed change has its event, and no event lacks its change.
    let store = db.store().await;
    let events = store
        .read_events(world.org, 0, 1_000_000)
        .await
        .expect("events");
    let counter: i64 = c
        .query_one(
            "SELECT event_seq FROM organizations WHERE id = $1",
            &[&world.org.0],
        )
        .await
        .expect("counter")
        .get(0);
    let snapshot = store.snapshot().await.expect("snapshot");
    check_events(
        &events,
        u64::try_from(counter).expect("a count"),
        &snapshot,
        &[world.org_admin, world.existing_user],
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn four_servers_and_two_deliverers_share_one_database() {
    let Some(url) = server_url("postgres four_servers_and_two_deliverers_share_one_database")
    else {
        return;
    };
    let rt = runtime();
    let db = rt.block_on(fresh_database(&url));
    let world = rt.block_on(async { World::seed(&db.store().await).await });
    let dir = temp_dir("pg-four-servers");
    let stop = dir.join("stop");
    let logs: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("writer{i}.log"))).collect();
    let sends: Vec<PathBuf> = (0..6).map(|i| dir.join(format!("sends{i}.log"))).collect();
    let mut writers = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        writers.push(spawn(&ChildSpec {
            role: "writer",
            url: &db.url,
            log: Some(log),
            // Writers 0 and 1 deliver their own mail; 2 and 3 have a relay that is down, so
            // their messages wait in the outbox for the deliverers.
            sends: (i < 2).then_some(sends[i].as_path()),
            stop: None,
            seed: 500 + i as u64,
            ops: 100,
            pool: 8,
        }));
    }
    let mut deliverers = Vec::new();
    for deliverer_sends in &sends[4..] {
        deliverers.push(spawn(&ChildSpec {
            role: "deliverer",
            url: &db.url,
            log: None,
            sends: Some(deliverer_sends),
            stop: Some(&stop),
            seed: 0,
            ops: 0,
            pool: 0,
        }));
    }
    for mut w in writers {
        assert!(w.wait().expect("wait").success(), "a writer failed");
    }
    // Let the deliverers drain the outbox, then stop them.
    let client = rt.block_on(db.connect());
    let deadline = Instant::now() + Duration::from_secs(120);
    while rt.block_on(one(
        &client,
        "SELECT count(*) FROM outbox WHERE status = 'queued'",
    )) > 0
    {
        assert!(
            Instant::now() < deadline,
            "the deliverers did not drain the outbox"
        );
        std::thread::sleep(Duration::from_millis(50)); // polling the children's progress
    }
    std::fs::write(&stop, b"stop").expect("stop file");
    for mut d in deliverers {
        assert!(d.wait().expect("wait").success(), "a deliverer failed");
    }

    let logged: Vec<LoggedResponse> = logs.iter().flat_map(|l| read_logged(l)).collect();
    assert_eq!(logged.len(), 400, "every request of every server completed");
    rt.block_on(check_database(&db, &logged, &world));

    // Every sent message was handed to a mailer exactly once; no other message was.
    let mut handed: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sends {
        for id in read_lines(s) {
            *handed.entry(id).or_default() += 1;
        }
    }
    let rows = rt
        .block_on(client.query("SELECT id, status FROM outbox", &[]))
        .expect("outbox");
    let mut sent = 0;
    for row in &rows {
        let id: uuid::Uuid = row.get(0);
        let status: String = row.get(1);
        let times = handed.remove(&id.to_string()).unwrap_or(0);
        match status.as_str() {
            "sent" => {
                sent += 1;
                assert_eq!(times, 1, "message {id} was handed over {times} times");
            }
            "cancelled" => assert_eq!(times, 0, "cancelled message {id} was sent"),
            other => panic!("message {id} ended {other}"),
        }
    }
    assert!(handed.is_empty(), "sends of unknown messages: {handed:?}");
    let by_deliverers: usize = sends[4..].iter().map(|s| read_lines(s).len()).sum();
    eprintln!(
        "4 servers: {} responses, {} messages ({sent} sent, {by_deliverers} by the deliverers)",
        logged.len(),
        rows.len()
    );
    assert!(
        by_deliverers > 0,
        "the deliverers delivered the queued mail"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_loses_nothing_and_never_lies() {
    let Some(url) = server_url("postgres sigkill_loses_nothing_and_never_lies") else {
        return;
    };
    let rt = runtime();
    let db = rt.block_on(fresh_database(&url));
    let world = rt.block_on(async { World::seed(&db.store().await).await });
    let dir = temp_dir("pg-sigkill");
    let rng = SeededRandom::new(0x5EED);
    let mut all_logged = Vec::new();
    let mut kills = 0;
    for round in 0..20u64 {
        let log = dir.join(format!("round{round}.log"));
        let mut child = spawn(&ChildSpec {
            role: "writer",
            url: &db.url,
            log: Some(&log),
            sends: Some(&dir.join("sends.log")),
            stop: None,
            seed: round,
            ops: 100_000,
            pool: 1000,
        });
        // Kill after a random number (below 40) of logged responses (0: during start-up).
        let status = kill_at_random(&mut child, &log, &rng, 40);
        assert!(
            !status.success(),
            "round {round}: the child should have been killed"
        );
        kills += 1;
        let logged = read_logged(&log);
        // A new server starts (and migrates) on the database after every kill.
        rt.block_on(async {
            PgStore::connect(&db.url)
                .await
                .expect("start after SIGKILL")
        });
        rt.block_on(check_database(&db, &logged, &world));
        all_logged.extend(logged);
    }
    assert_eq!(kills, 20);
    rt.block_on(check_database(&db, &all_logged, &world));
    let client = rt.block_on(db.connect());
    eprintln!(
        "crash loop: {kills} kills, {} logged responses, {} memberships, {} invitations",
        all_logged.len(),
        rt.block_on(one(&client, "SELECT count(*) FROM website_members"))
            + rt.block_on(one(&client, "SELECT count(*) FROM group_members")),
        rt.block_on(one(&client, "SELECT count(*) FROM invitations")),
    );
    assert!(
        !all_logged.is_empty(),
        "children made progress before being killed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The event log across processes (issue 19): 4 writer processes (each its own pool, each
/// delivering its own mail: `email_sent` events from `record_delivery`) write overlapping bulk
/// requests in one organization while this process follows `read_events` by cursor, in small
/// pages. The reader receives every event exactly once, at positions 1..N with no gap; N is
/// the organization's counter and the number of stored events; every logged `added` is one
/// `member_added`, every logged `invited` one `invitation_created`, every sent message one
/// `email_sent`.
#[test]
fn four_writer_processes_and_a_cursor_reader_see_every_event_once() {
    use invites_core::{Event, EventKind, EventStore};
    let Some(url) =
        server_url("postgres four_writer_processes_and_a_cursor_reader_see_every_event_once")
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(fresh_database(&url));
    let store = rt.block_on(db.store());
    let world = rt.block_on(World::seed(&store));
    let dir = temp_dir("pg-event-readers");
    let logs: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("writer{i}.log"))).collect();
    let sends: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("sends{i}.log"))).collect();
    let mut writers: Vec<Child> = logs
        .iter()
        .zip(&sends)
        .enumerate()
        .map(|(i, (log, sends))| {
            spawn(&ChildSpec {
                role: "writer",
                url: &db.url,
                log: Some(log),
                sends: Some(sends),
                stop: None,
                seed: 900 + i as u64,
                ops: 60,
                pool: 8,
            })
        })
        .collect();
    let mut seen: Vec<Event> = Vec::new();
    let read = |seen: &mut Vec<Event>| {
        let cursor = seen.last().map_or(0, |e| e.position);
        let page = rt
            .block_on(store.read_events(world.org, cursor, 9))
            .expect("read_events");
        for (i, e) in page.iter().enumerate() {
            assert_eq!(
                e.position,
                cursor + 1 + i as u64,
                "gap or repeat after {cursor}"
            );
        }
        let n = page.len();
        seen.extend(page);
        n
    };
    let mut reads = 0;
    loop {
        let running = writers
            .iter_mut()
            .map(|w| w.try_wait().expect("try_wait"))
            .filter(Option::is_none)
            .count();
        if running == 0 {
            break;
        }
        read(&mut seen);
        reads += 1;
        std::thread::sleep(Duration::from_millis(3)); // polling the children's progress
    }
    for mut w in writers {
        assert!(w.wait().expect("wait").success(), "a writer failed");
    }
    let during = seen.len();
    while read(&mut seen) > 0 {}

    let n = seen.len() as u64;
    let positions: Vec<u64> = seen.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=n).collect::<Vec<_>>());
    let client = rt.block_on(db.connect());
    let org = world.org.0;
    let counter: i64 = rt
        .block_on(client.query_one("SELECT event_seq FROM organizations WHERE id = $1", &[&org]))
        .expect("counter")
        .get(0);
    let stored: i64 = rt
        .block_on(client.query_one(
            "SELECT count(*) FROM events WHERE organization_id = $1",
            &[&org],
        ))
        .expect("count")
        .get(0);
    assert_eq!((counter, stored), (n as i64, n as i64));
    assert_eq!(
        seen,
        rt.block_on(store.read_events(world.org, 0, 1_000_000))
            .expect("all")
    );

    let logged: Vec<LoggedResponse> = logs.iter().flat_map(|l| read_logged(l)).collect();
    assert_eq!(logged.len(), 240, "every request completed");
    let count = |kind: EventKind, pred: &dyn Fn(&Event) -> bool| {
        seen.iter().filter(|e| e.kind == kind && pred(e)).count()
    };
    let (mut added, mut invited) = (0, 0);
    for result in logged.iter().flat_map(|l| &l.response.results) {
        match result.code {
            OutcomeCode::Added => {
                added += 1;
                let user = result.user_id.expect("user");
                let n = count(EventKind::MemberAdded, &|e| {
                    e.target == Some(result.target()) && e.user == Some(user)
                });
                assert_eq!(n, 1, "added {:?} for {user}: {n} events", result.target());
            }
            OutcomeCode::Invited => {
                invited += 1;
                let id = result.invite_id.expect("invite id");
                let n = count(EventKind::InvitationCreated, &|e| e.invitation == Some(id));
                assert_eq!(n, 1, "invitation {id}: {n} events");
            }
            _ => {}
        }
    }
    assert_eq!(count(EventKind::MemberAdded, &|_| true), added);
    assert_eq!(count(EventKind::InvitationCreated, &|_| true), invited);
    let sent: i64 = rt
        .block_on(client.query_one("SELECT count(*) FROM outbox WHERE status = 'sent'", &[]))
        .expect("sent")
        .get(0);
    assert_eq!(count(EventKind::EmailSent, &|_| true) as i64, sent);
    eprintln!(
        "4 writer processes: {n} events ({during} read during the writes, in {reads} reads), \
         {added} added, {invited} invited, {sent} sent"
    );
    assert!(during > 0, "the reader read nothing while the writers ran");
}
