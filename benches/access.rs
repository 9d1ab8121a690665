//! Criterion benchmarks of issue 18 on SQLite: the access check a host makes on every request
//! (`AccessStore::access_paths` through the store, and `InviteService::access`) beside a
//! hand-written rusqlite floor doing the same lookups, and the first and the last page of the
//! member list of a website with about 10,000 members (direct, through groups and through the
//! organization).
//!
//! Run: `cargo bench --bench access` (results and the machine go into BENCHMARKS.md). The
//! database (1,000 websites, 100 groups, 100,000 users, about 1,000,000 website, group and
//! organization memberships) is built once with plain SQL and cached in
//! `target/bench-data/access-v1.db`. Under `cargo test --bench access` (criterion's test mode,
//! one iteration each) a tenth of it is built instead, in `access-v1-small.db`.

use criterion::{Criterion, criterion_group, criterion_main};
use invites::core::{AccessStore, TargetId};
use invites::prelude::*;
use invites::sqlite::SqliteStore;
use rusqlite::{Connection, OptionalExtension};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

#[path = "support/fixture.rs"]
mod fixture;
use fixture::{NullMailer, bench_dir};

const ORG: u128 = 0xA0;
const SITES: u128 = 1000;
const GROUPS: u128 = 100;
/// Each group holds this many consecutive websites.
const SITES_PER_GROUP: u128 = SITES / GROUPS;
/// Direct memberships per user, and group memberships per user.
const DIRECT_PER_USER: u128 = 7;
const GROUPS_PER_USER: u128 = 3;
/// One user in this many is an organization member (viewer, every third an admin).
const ORG_EVERY: u128 = 33;
/// One user in this many is a direct member of the crowded website.
const CROWDED_DIRECT_EVERY: u128 = 50;
/// The groups that contain the crowded website (besides their own ten).
const CROWDED_GROUPS: [u128; 2] = [1, 2];
/// Members per page of the member list.
const PAGE: usize = 100;

fn org() -> OrganizationId {
    OrganizationId(Uuid::from_u128(ORG))
}

fn site(i: u128) -> WebsiteId {
    WebsiteId(Uuid::from_u128(0x2_0000 + i))
}

/// The website with about 10,000 members.
fn crowded() -> WebsiteId {
    site(SITES)
}

fn group(i: u128) -> GroupId {
    GroupId(Uuid::from_u128(0x3_0000 + i))
}

fn user(u: u128) -> UserId {
    UserId(Uuid::from_u128(0x6_0000_0000 + u))
}

/// The websites user `u` is a direct member of.
fn direct_sites(u: u128) -> impl Iterator<Item = u128> {
    (0..DIRECT_PER_USER).map(move |k| (u * 13 + k * 101) % SITES)
}

/// The groups user `u` is a member of.
fn groups_of(u: u128) -> impl Iterator<Item = u128> {
    (0..GROUPS_PER_USER).map(move |k| (u * 7 + k * 31) % GROUPS)
}

/// The database with `users` users, written once with plain SQL (after the store created the
/// schema and the directory) and cached between runs.
fn access_db(rt: &tokio::runtime::Runtime, name: &str, users: u128) -> PathBuf {
    let path = bench_dir().join(format!("{name}.db"));
    if path.exists() {
        return path;
    }
    let tmp = bench_dir().join(format!("{name}.db.partial"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    rt.block_on(async {
        let store = SqliteStore::open(&tmp).await.unwrap();
        store.create_organization(org(), "Bench").await.unwrap();
        for i in 0..=SITES {
            store
                .create_website(&Website {
                    id: site(i),
                    organization: org(),
                    name: format!("Site {i}"),
                    url: format!("https://s{i}.bench.test"),
                })
                .await
                .unwrap();
        }
        for g in 0..GROUPS {
            store
                .create_group(&invites::core::Group {
                    id: group(g),
                    organization: org(),
                    name: format!("Group {g}"),
                })
                .await
                .unwrap();
            for s in g * SITES_PER_GROUP..(g + 1) * SITES_PER_GROUP {
                store.add_website_to_group(group(g), site(s)).await.unwrap();
            }
        }
        for g in CROWDED_GROUPS {
            store
                .add_website_to_group(group(g), crowded())
                .await
                .unwrap();
        }
    });
    let mut conn = Connection::open(&tmp).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert_user = tx
            .prepare("INSERT INTO users (id, email, email_verified) VALUES (?1, ?2, 1)")
            .unwrap();
        let mut website_member = tx
            .prepare(
                "INSERT INTO website_members (website_id, user_id, role, created_at) \
                 VALUES (?1, ?2, ?3, 0)",
            )
            .unwrap();
        let mut group_member = tx
            .prepare(
                "INSERT INTO group_members (group_id, user_id, role, created_at) \
                 VALUES (?1, ?2, ?3, 0)",
            )
            .unwrap();
        let mut org_member = tx
            .prepare("INSERT INTO org_members (organization_id, user_id, role) VALUES (?1, ?2, ?3)")
            .unwrap();
        let role = |n: u128| if n % 4 == 0 { "admin" } else { "viewer" };
        for u in 0..users {
            let uid = *user(u).0.as_bytes();
            insert_user
                .execute((&uid[..], format!("member{u}@bench.test")))
                .unwrap();
            for s in direct_sites(u) {
                let w = *site(s).0.as_bytes();
                website_member
                    .execute((&w[..], &uid[..], role(u + s)))
                    .unwrap();
            }
            if u % CROWDED_DIRECT_EVERY == 1 {
                let w = *crowded().0.as_bytes();
                website_member.execute((&w[..], &uid[..], role(u))).unwrap();
            }
            for g in groups_of(u) {
                let gid = *group(g).0.as_bytes();
                group_member
                    .execute((&gid[..], &uid[..], role(u + g)))
                    .unwrap();
            }
            if u % ORG_EVERY == 0 {
                let org_role = if u % (3 * ORG_EVERY) == 0 {
                    "admin"
                } else {
                    "viewer"
                };
                org_member
                    .execute((&org().0.as_bytes()[..], &uid[..], org_role))
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    let memberships: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM website_members) + (SELECT COUNT(*) FROM group_members) \
                  + (SELECT COUNT(*) FROM org_members)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    eprintln!("built {name}: {users} users, {memberships} memberships");
    drop(conn);
    std::fs::rename(&tmp, &path).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    path
}

/// The (user, website) pairs the access checks cycle through: half of them a direct
/// membership (often with a group or organization path too), half a website picked without
/// regard to the user (mostly no path, or only the organization's).
fn pairs(users: u128) -> Vec<(UserId, WebsiteId)> {
    (0..1024u128)
        .map(|i| {
            let u = (i * 7919) % users;
            let w = if i % 2 == 0 {
                direct_sites(u).next().unwrap()
            } else {
                (i * 613) % SITES
            };
            (user(u), site(w))
        })
        .collect()
}

/// What the floor reads for one check.
#[derive(Debug)]
#[allow(dead_code)]
struct FloorAccess {
    organization: Vec<u8>,
    direct: Option<String>,
    groups: Vec<(Vec<u8>, String)>,
    org_role: Option<String>,
}

/// The hand-written floor: the same four lookups as the store (the website by its primary
/// key, the website membership by its primary key, the memberships of the website's groups,
/// the organization membership by its primary key), four cached statements, no decoding into
/// the core's types.
fn floor_access(conn: &Connection, user: &[u8; 16], website: &[u8; 16]) -> Option<FloorAccess> {
    let organization: Vec<u8> = conn
        .prepare_cached("SELECT organization_id FROM websites WHERE id = ?1")
        .unwrap()
        .query_row([&website[..]], |r| r.get(0))
        .optional()
        .unwrap()?;
    let direct = conn
        .prepare_cached("SELECT role FROM website_members WHERE website_id = ?1 AND user_id = ?2")
        .unwrap()
        .query_row((&website[..], &user[..]), |r| r.get(0))
        .optional()
        .unwrap();
    let groups = conn
        .prepare_cached(
            "SELECT gm.group_id, gm.role FROM group_websites gw \
             JOIN group_members gm ON gm.group_id = gw.group_id AND gm.user_id = ?2 \
             WHERE gw.website_id = ?1",
        )
        .unwrap()
        .query_map((&website[..], &user[..]), |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let org_role = conn
        .prepare_cached("SELECT role FROM org_members WHERE organization_id = ?1 AND user_id = ?2")
        .unwrap()
        .query_row((&organization[..], &user[..]), |r| r.get(0))
        .optional()
        .unwrap();
    Some(FloorAccess {
        organization,
        direct,
        groups,
        org_role,
    })
}

/// A plain connection configured as the store configures its own.
fn floor_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.pragma_update(None, "temp_store", "MEMORY").unwrap();
    conn.pragma_update(None, "cache_size", -16 * 1024).unwrap();
    conn
}

fn service(store: SqliteStore) -> InviteService {
    InviteService::new(
        Arc::new(store),
        Arc::new(NullMailer),
        InviteConfig::new("https://bench.test/accept").unwrap(),
    )
}

fn key() -> Principal {
    Principal::global(org(), ApiKeyId(Uuid::from_u128(0xC1)))
}

fn access_checks(c: &mut Criterion, rt: &tokio::runtime::Runtime, path: &Path, users: u128) {
    let pairs = pairs(users);
    let store = rt.block_on(SqliteStore::open(path)).unwrap();
    let svc = service(store.clone());
    // Every variant sees the same pairs, and the pages they touch warmed once.
    let reached = rt.block_on(async {
        let mut reached = 0;
        for (u, w) in &pairs {
            reached += usize::from(svc.access(*u, *w).await.unwrap().is_some());
        }
        reached
    });
    eprintln!(
        "access pairs: {} of {} reach their website",
        reached,
        pairs.len()
    );

    let mut i = 0;
    c.bench_function("access_check_store", |b| {
        b.to_async(rt).iter(|| {
            let (u, w) = pairs[i % pairs.len()];
            i += 1;
            let store = &store;
            async move { black_box(store.access_paths(u, w).await.unwrap()) }
        })
    });
    let mut i = 0;
    c.bench_function("access_check_service", |b| {
        b.to_async(rt).iter(|| {
            let (u, w) = pairs[i % pairs.len()];
            i += 1;
            let svc = &svc;
            async move { black_box(svc.access(u, w).await.unwrap()) }
        })
    });
    let raw: Vec<([u8; 16], [u8; 16])> = pairs
        .iter()
        .map(|(u, w)| (*u.0.as_bytes(), *w.0.as_bytes()))
        .collect();
    let conn = floor_connection(path);
    let mut i = 0;
    c.bench_function("access_check_floor_inline", |b| {
        b.iter(|| {
            let (u, w) = &raw[i % raw.len()];
            i += 1;
            black_box(floor_access(&conn, u, w))
        })
    });
    // The same floor as async code must run it: off the executor, on tokio's blocking pool.
    let shared = Arc::new(Mutex::new(floor_connection(path)));
    let mut i = 0;
    c.bench_function("access_check_floor_blocking", |b| {
        b.to_async(rt).iter(|| {
            let (u, w) = raw[i % raw.len()];
            i += 1;
            let shared = shared.clone();
            async move {
                black_box(
                    tokio::task::spawn_blocking(move || {
                        floor_access(&shared.lock().unwrap(), &u, &w)
                    })
                    .await
                    .unwrap(),
                )
            }
        })
    });
}

fn member_pages(c: &mut Criterion, rt: &tokio::runtime::Runtime, path: &Path) {
    let store = rt.block_on(SqliteStore::open(path)).unwrap();
    let svc = service(store);
    let target = TargetId::Website(crowded());
    // Untimed: walk the whole list once, for its size and the last page's cursor.
    let (members, last_cursor) = rt.block_on(async {
        let mut members = 0;
        let mut cursor: Option<String> = None;
        let mut last = None;
        loop {
            let page = svc
                .members_of(&key(), target, cursor.as_deref(), PAGE)
                .await
                .unwrap();
            if !page.items.is_empty() {
                last = cursor.clone();
            }
            members += page.items.len();
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        (members, last)
    });
    eprintln!("crowded website: {members} members, pages of {PAGE}");
    c.bench_function("members_of_first_page", |b| {
        b.to_async(rt).iter(|| async {
            let page = svc.members_of(&key(), target, None, PAGE).await.unwrap();
            debug_assert_eq!(page.items.len(), PAGE);
            black_box(page)
        })
    });
    c.bench_function("members_of_last_page", |b| {
        b.to_async(rt).iter(|| async {
            black_box(
                svc.members_of(&key(), target, last_cursor.as_deref(), PAGE)
                    .await
                    .unwrap(),
            )
        })
    });
}

fn all(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `cargo bench` passes `--bench`; criterion's test mode (`cargo test --bench`) does not,
    // and gets a tenth of the database.
    let full = std::env::args().any(|a| a == "--bench");
    let (name, users) = if full {
        ("access-v1", 100_000)
    } else {
        ("access-v1-small", 10_000)
    };
    let path = access_db(&rt, name, users);
    access_checks(c, &rt, &path, users);
    member_pages(c, &rt, &path);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = all
}
criterion_main!(benches);
