//! Criterion benchmarks of issue 5: a 50-target bulk invite against the raw SQLite floor.
//!
//! Run: `cargo bench --bench bulk` (results and the machine go into BENCHMARKS.md).
//! Seeding, including the 1,000,000-membership database of `direct_50_big` (cached in
//! `target/bench-data/`), happens outside the timed loops; every timed iteration invites a new
//! email, so it really inserts.

use criterion::{Criterion, criterion_group, criterion_main};
use invites::core::{
    AcceptToken, Clock, Email, InvitationId, OrgRole, OsRandom, RandomSource, SystemClock, User,
};
use invites::memory::MemoryStore;
use invites::prelude::*;
use invites::sqlite::SqliteStore;
use rusqlite::{Connection, OptionalExtension};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[path = "support/fixture.rs"]
mod fixture;
use fixture::{NullMailer, bench_dir};

const ORG: u128 = 0xB0;
const SITES: usize = 50;

fn org() -> OrganizationId {
    OrganizationId(Uuid::from_u128(ORG))
}

fn site(i: usize) -> WebsiteId {
    WebsiteId(Uuid::from_u128(0x1_0000 + i as u128))
}

/// A never-seen email.
fn fresh_email() -> String {
    fixture::fresh_email("bench")
}

async fn seed_sites(dir: &dyn Directory, count: usize) {
    fixture::seed_websites(dir, org(), (0..count).map(site)).await;
}

fn service(store: Arc<dyn MembershipStore>) -> InviteService {
    InviteService::new(
        store,
        Arc::new(NullMailer),
        InviteConfig::new("https://bench.test/accept").unwrap(),
    )
}

fn key() -> Principal {
    Principal::global(org(), ApiKeyId(Uuid::from_u128(0xC1)))
}

fn request(
    method: InviteMethod,
    email: &str,
    sites: impl IntoIterator<Item = WebsiteId>,
) -> BulkInviteRequest {
    BulkInviteRequest::websites(method, email, sites)
}

/// The timed work of most benches: one request inviting a new email to `sites`, every target
/// succeeding.
async fn invite_all(
    svc: &InviteService,
    method: InviteMethod,
    sites: &[WebsiteId],
) -> BulkInviteResponse {
    let r = svc
        .bulk_invite(
            &key(),
            request(method, &fresh_email(), sites.iter().copied()),
        )
        .await
        .unwrap();
    debug_assert_eq!(r.summary.succeeded, sites.len());
    r
}

fn all_sites() -> Vec<WebsiteId> {
    (0..SITES).map(site).collect()
}

/// A fresh database file with the bench organization and its websites.
fn fresh_db(rt: &tokio::runtime::Runtime, name: &str) -> (SqliteStore, PathBuf) {
    let path = bench_dir().join(format!("{name}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = rt.block_on(async {
        let store = SqliteStore::open(&path).await.unwrap();
        seed_sites(&store, SITES).await;
        store
    });
    (store, path)
}

/// A plain rusqlite connection to a bench database, configured as the store configures its
/// own (WAL, `synchronous = NORMAL`, foreign keys, page cache, in-memory temp store), with
/// SQLite's own automatic checkpoint (every 1,000 pages of log, inside the commit that reaches
/// them), as a hand-written application has it. Checkpoints are part of the cost of a write in
/// WAL mode (every page in the log is copied back once), so the floors pay them on the timed
/// path, and the store pays them too (on its background thread, which shares the machine's
/// cores with the request).
struct Floor {
    conn: Connection,
    sites: Vec<[u8; 16]>,
}

impl Floor {
    fn open(rt: &tokio::runtime::Runtime, name: &str) -> Floor {
        let (store, path) = fresh_db(rt, name);
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.pragma_update(None, "temp_store", "MEMORY").unwrap();
        conn.pragma_update(None, "cache_size", -16 * 1024).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 1000)
            .unwrap();
        let sites = all_sites().iter().map(|s| *s.0.as_bytes()).collect();
        Floor { conn, sites }
    }

    /// Times `work` once per iteration.
    fn iterate(
        &mut self,
        iters: u64,
        mut work: impl FnMut(&mut Connection, &[[u8; 16]]),
    ) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            work(&mut self.conn, &self.sites);
        }
        start.elapsed()
    }
}

/// What the hand-written code reads before it writes, for both floors: which of the targets
/// are in the organization (one query), and the user with the email and his organization
/// membership (one query); a new email has neither memberships nor invitations, which one
/// look at the invitations by email confirms. The same facts the store reads, as cheaply.
fn floor_reads(tx: &rusqlite::Transaction<'_>, sites: &[[u8; 16]], email: &str) {
    let placeholders = vec!["?"; sites.len()].join(", ");
    let found = tx
        .prepare_cached(&format!(
            "SELECT id, organization_id FROM websites WHERE id IN ({placeholders})"
        ))
        .unwrap()
        .query_map(
            rusqlite::params_from_iter(sites.iter().map(|s| &s[..])),
            |r| r.get::<_, Vec<u8>>(1),
        )
        .unwrap()
        .filter(|o| o.as_deref().unwrap() == org().0.as_bytes())
        .count();
    debug_assert_eq!(found, sites.len());
    let user: Option<Vec<u8>> = tx
        .prepare_cached(
            "SELECT u.id, EXISTS (SELECT 1 FROM org_members m WHERE m.organization_id = ?2 AND m.user_id = u.id) \
             FROM users u WHERE u.email = ?1",
        )
        .unwrap()
        .query_row((email, &org().0.as_bytes()[..]), |r| r.get(0))
        .optional()
        .unwrap();
    debug_assert!(user.is_none());
    let invited: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM invitations WHERE email = ?1 AND status = 'pending')",
        )
        .unwrap()
        .query_row([email], |r| r.get(0))
        .unwrap();
    debug_assert!(!invited);
}

/// The floors: the best hand-written rusqlite code doing the work of one 50-target request,
/// on the same schema, in one `BEGIN IMMEDIATE` transaction, without per-target savepoints
/// (the product pays those for per-target isolation), checkpoints included (see [`Floor`]).
///
/// The email floor does what the product must do for an email-mode request and no more: the
/// transaction that stores the batch, its queued message and the invitations (reading the
/// target names the email lists), the email rendered, and once the (null) mailer has taken
/// it, the message recorded as sent in a second transaction. That record is part of the
/// guarantee: without it the delivery worker would send the message again after its lease.
fn raw_floors(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut direct = Floor::open(rt, "raw-direct");
    c.bench_function("raw_floor_50", |b| {
        b.iter_custom(|iters| {
            direct.iterate(iters, |conn, sites| {
                let email = fresh_email();
                let now = SystemClock.now();
                // The product's id scheme for new users (time-ordered, random tail).
                let user = *UserId::time_ordered(now, OsRandom.uuid()).0.as_bytes();
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                floor_reads(&tx, sites, &email);
                tx.prepare_cached(
                    "INSERT INTO users (id, email, email_verified, first_name, last_name) VALUES (?1, ?2, 0, NULL, NULL)",
                )
                .unwrap()
                .execute((&user[..], &email))
                .unwrap();
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO website_members (website_id, user_id, role, created_at) VALUES (?1, ?2, 'viewer', ?3)",
                        )
                        .unwrap();
                    for s in sites {
                        stmt.execute((&s[..], &user[..], now.as_millis())).unwrap();
                    }
                }
                tx.commit().unwrap();
            })
        })
    });
    let mut email_floor = Floor::open(rt, "raw-email");
    c.bench_function("raw_floor_email_50", |b| {
        b.iter_custom(|iters| {
            email_floor.iterate(iters, |conn, sites| {
                let email = fresh_email();
                let now = SystemClock.now();
                let expires = now.as_millis() + 7 * 86_400_000;
                let rng = OsRandom;
                let batch = *rng.uuid().as_bytes();
                let message = *rng.uuid().as_bytes();
                let token_hash = AcceptToken::generate(&rng).hash();
                let accept_url = format!("https://bench.test/accept?token={}", rng.uuid());
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                floor_reads(&tx, sites, &email);
                let names = floor_names(&tx, sites);
                tx.prepare_cached(
                    "INSERT INTO batches (id, organization_id, email, token_hash, created_at, last_sent_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )
                .unwrap()
                .execute((&batch[..], &org().0.as_bytes()[..], &email, &token_hash.0[..], now.as_millis()))
                .unwrap();
                tx.prepare_cached(
                    "INSERT INTO outbox (id, batch_id, organization_id, recipient, accept_url, status, attempts, \
                                         next_attempt_at, created_at, last_error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?6, NULL)",
                )
                .unwrap()
                .execute((&message[..], &batch[..], &org().0.as_bytes()[..], &email, &accept_url, now.as_millis()))
                .unwrap();
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO invitations (id, batch_id, organization_id, target_kind, target_id, email, role, \
                                                      first_name, last_name, status, created_at, expires_at) \
                             VALUES (?1, ?2, ?3, 'website', ?4, ?5, 'viewer', NULL, NULL, 'pending', ?6, ?7)",
                        )
                        .unwrap();
                    for s in sites {
                        let id = *InvitationId::time_ordered(now, rng.uuid()).0.as_bytes();
                        stmt.execute(rusqlite::params![
                            &id[..],
                            &batch[..],
                            &org().0.as_bytes()[..],
                            &s[..],
                            &email,
                            now.as_millis(),
                            expires
                        ])
                        .unwrap();
                    }
                }
                tx.commit().unwrap();
                black_box(floor_render(&email, &names, &accept_url));
                conn.prepare_cached(
                    "UPDATE outbox SET status = 'sent', attempts = 1, accept_url = NULL WHERE id = ?1 AND status = 'queued'",
                )
                .unwrap()
                .execute([&message[..]])
                .unwrap();
            })
        })
    });
}

/// The names of the targets, which the email lists (one query).
fn floor_names(tx: &rusqlite::Transaction<'_>, sites: &[[u8; 16]]) -> Vec<String> {
    let placeholders = vec!["?"; sites.len()].join(", ");
    let mut names: Vec<String> = tx
        .prepare_cached(&format!(
            "SELECT name FROM websites WHERE id IN ({placeholders})"
        ))
        .unwrap()
        .query_map(
            rusqlite::params_from_iter(sites.iter().map(|s| &s[..])),
            |r| r.get(0),
        )
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names.sort_unstable();
    names
}

/// The least an email needs: a subject, and a text and an HTML body listing the targets and
/// the link.
fn floor_render(email: &str, names: &[String], accept_url: &str) -> (String, String, String) {
    use std::fmt::Write;
    let subject = format!("You are invited to {} websites", names.len());
    let mut text = format!("Hello {email},\n\nYou are invited to:\n");
    let mut html = String::from("<p>You are invited to:</p><ul>");
    for name in names {
        let _ = writeln!(text, "- {name} (viewer)");
        let _ = write!(html, "<li>{name} (viewer)</li>");
    }
    let _ = write!(text, "\nAccept: {accept_url}\n");
    let _ = write!(html, "</ul><p><a href=\"{accept_url}\">Accept</a></p>");
    (subject, text, html)
}

fn sqlite_modes(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let (store, _) = fresh_db(rt, "modes");
    let svc = service(Arc::new(store.clone()));
    let sites = all_sites();
    c.bench_function("direct_50", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(invite_all(&svc, InviteMethod::Direct, &sites).await) })
    });
    c.bench_function("email_50", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(invite_all(&svc, InviteMethod::Email, &sites).await) })
    });
    c.bench_function("mixed_50", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (svc, sites) = (svc.clone(), sites.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Untimed: the user becomes a member of half the sites.
                    let email = fresh_email();
                    svc.bulk_invite(
                        &key(),
                        request(
                            InviteMethod::Direct,
                            &email,
                            sites.iter().step_by(2).copied(),
                        ),
                    )
                    .await
                    .unwrap();
                    let start = Instant::now();
                    let r = svc
                        .bulk_invite(&key(), request(InviteMethod::Direct, &email, sites.clone()))
                        .await
                        .unwrap();
                    total += start.elapsed();
                    debug_assert_eq!(r.summary.succeeded, SITES / 2);
                    black_box(r);
                }
                total
            }
        })
    });
    c.bench_function("concurrent_4", |b| {
        b.to_async(rt).iter(|| {
            let svc = svc.clone();
            let sites = sites.clone();
            async move {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        let (svc, sites) = (svc.clone(), sites.clone());
                        tokio::spawn(async move {
                            svc.bulk_invite(
                                &key(),
                                request(InviteMethod::Direct, &fresh_email(), sites),
                            )
                            .await
                            .unwrap()
                        })
                    })
                    .collect();
                for t in tasks {
                    black_box(t.await.unwrap());
                }
            }
        })
    });
}

/// The big database: 1,000 websites, 100,000 users, 1,000,000 memberships (10 per user),
/// written once with plain SQL and cached between runs.
fn big_db(rt: &tokio::runtime::Runtime) -> PathBuf {
    let path = bench_dir().join("big-v1.db");
    if path.exists() {
        return path;
    }
    let tmp = bench_dir().join("big-v1.db.partial");
    let _ = std::fs::remove_file(&tmp);
    rt.block_on(async {
        let store = SqliteStore::open(&tmp).await.unwrap();
        seed_sites(&store, 1000).await;
        // An org member too, so the org-membership lookup has something to search.
        let admin = store
            .create_user(&User {
                id: UserId(Uuid::from_u128(0xAD)),
                email: Email::parse("admin@bench.test").unwrap(),
                email_verified: true,
                first_name: None,
                last_name: None,
            })
            .await
            .unwrap();
        store
            .add_org_member(org(), admin, OrgRole::Admin)
            .await
            .unwrap();
    });
    let mut conn = Connection::open(&tmp).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut user = tx
            .prepare("INSERT INTO users (id, email, email_verified) VALUES (?1, ?2, 1)")
            .unwrap();
        let mut member = tx
            .prepare("INSERT INTO website_members (website_id, user_id, role, created_at) VALUES (?1, ?2, 'viewer', 0)")
            .unwrap();
        for u in 0..100_000u128 {
            let uid = *Uuid::from_u128(0x5_0000_0000 + u).as_bytes();
            user.execute((&uid[..], format!("seeded{u}@bench.test")))
                .unwrap();
            for k in 0..10u128 {
                let w = *site(((u * 7 + k * 101) % 1000) as usize).0.as_bytes();
                member.execute((&w[..], &uid[..])).unwrap();
            }
        }
    }
    tx.commit().unwrap();
    drop(conn);
    std::fs::rename(&tmp, &path).unwrap();
    let _ = std::fs::remove_file(bench_dir().join("big-v1.db.partial-wal"));
    let _ = std::fs::remove_file(bench_dir().join("big-v1.db.partial-shm"));
    path
}

fn sqlite_big(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let path = big_db(rt);
    let store = rt.block_on(SqliteStore::open(&path)).unwrap();
    let svc = service(Arc::new(store));
    let sites = all_sites();
    c.bench_function("direct_50_big", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(invite_all(&svc, InviteMethod::Direct, &sites).await) })
    });
}

fn memory(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let store = MemoryStore::new();
    rt.block_on(seed_sites(&store, SITES));
    let svc = service(Arc::new(store));
    let sites = all_sites();
    c.bench_function("direct_50_memory", |b| {
        b.to_async(rt).iter(|| async {
            black_box(
                svc.bulk_invite(
                    &key(),
                    request(InviteMethod::Direct, &fresh_email(), sites.clone()),
                )
                .await
                .unwrap(),
            )
        })
    });
}

fn parse_validate(c: &mut Criterion) {
    let ids: Vec<String> = all_sites().iter().map(|s| format!("\"{s}\"")).collect();
    let body = format!(
        r#"{{"invite_method":"email","email":" New.User@Example.COM ","role":"admin","first_name":"Ann","website_ids":[{}]}}"#,
        ids.join(",")
    );
    c.bench_function("parse_validate_50", |b| {
        b.iter(|| {
            let req = BulkInviteRequest::from_json(black_box(body.as_bytes())).unwrap();
            black_box(req.validate().unwrap())
        })
    });
}

/// Installs what an operator runs (once per process): a `tracing-subscriber` registry with an
/// `info` filter and the fmt layer (writing to a sink, so the terminal is not the cost), and the
/// Prometheus recorder as the global `metrics` recorder.
fn install_operator_view() {
    use tracing_subscriber::layer::SubscriberExt;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).unwrap();
    });
}

/// `direct_50`, `email_50` and `direct_50_memory` again with a subscriber at `info` and a metrics recorder
/// (issue 21: within 10 % of the same benches without them, from one run). The subscriber is
/// installed only when one of these benches is selected, and these run after every other bench.
fn sqlite_observed(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let (store, _) = fresh_db(rt, "observed");
    let svc = service(Arc::new(store.clone()));
    let sites = all_sites();
    let memory = {
        let store = MemoryStore::new();
        rt.block_on(seed_sites(&store, SITES));
        service(Arc::new(store))
    };
    c.bench_function("direct_50_observed", |b| {
        static INTERLEAVED: std::sync::Once = std::sync::Once::new();
        // Only when measuring: `cargo test` runs each bench once, without `--bench`.
        if std::env::args().any(|a| a == "--bench") {
            INTERLEAVED.call_once(|| observed_interleaved(rt, &svc, &memory, &sites));
        }
        install_operator_view();
        b.to_async(rt)
            .iter(|| async { black_box(invite_all(&svc, InviteMethod::Direct, &sites).await) })
    });
    c.bench_function("email_50_observed", |b| {
        install_operator_view();
        b.to_async(rt)
            .iter(|| async { black_box(invite_all(&svc, InviteMethod::Email, &sites).await) })
    });
    c.bench_function("direct_50_memory_observed", |b| {
        install_operator_view();
        b.to_async(rt)
            .iter(|| async { black_box(invite_all(&memory, InviteMethod::Direct, &sites).await) })
    });
}

/// The same requests without and with the operator's view (the subscriber and recorder of
/// [`install_operator_view`], made current for one request at a time on the thread that polls
/// it), taken in turn, the order swapping every round, so a slow minute of this VM slows both
/// sides alike. Medians. Printed when `direct_50_observed` is selected, before anything is
/// installed globally.
fn observed_interleaved(
    rt: &tokio::runtime::Runtime,
    sqlite: &InviteService,
    memory: &InviteService,
    sites: &[WebsiteId],
) {
    use tracing_subscriber::layer::SubscriberExt;
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
    );
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let cases = [
        ("direct_50", sqlite, InviteMethod::Direct, 1000),
        ("email_50", sqlite, InviteMethod::Email, 500),
        ("direct_50_memory", memory, InviteMethod::Direct, 5000),
    ];
    for (name, svc, method, rounds) in cases {
        let (mut bare, mut observed) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for k in 0..2 {
                let start = Instant::now();
                if (round + k) % 2 == 0 {
                    black_box(rt.block_on(invite_all(svc, method, sites)));
                    bare.push(start.elapsed());
                } else {
                    tracing::dispatcher::with_default(&dispatch, || {
                        metrics::with_local_recorder(&recorder, || {
                            black_box(rt.block_on(invite_all(svc, method, sites)))
                        })
                    });
                    observed.push(start.elapsed());
                }
            }
        }
        let (bare, observed) = (median(bare), median(observed));
        println!(
            "{name} interleaved, {rounds} rounds (medians): without a subscriber or recorder {:.1} µs; \
             with an info subscriber and the Prometheus recorder {:.1} µs = {:.3}x",
            bare.as_secs_f64() * 1e6,
            observed.as_secs_f64() * 1e6,
            observed.as_secs_f64() / bare.as_secs_f64()
        );
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn all(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    raw_floors(c, &rt);
    sqlite_modes(c, &rt);
    sqlite_big(c, &rt);
    memory(c, &rt);
    parse_validate(c);
    // Last: once installed, the subscriber and the recorder stay for the rest of the process.
    sqlite_observed(c, &rt);
    // Clean up the per-run files (the big database stays cached).
    for entry in std::fs::read_dir(bench_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(&format!("-{}.db", std::process::id())) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = all
}
criterion_main!(benches);
