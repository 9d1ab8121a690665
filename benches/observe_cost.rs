//! What the observability costs with nothing installed (issue 21), counted in instructions:
//! a fixed number of 50-target bulk invites, with no `tracing` subscriber and no `metrics`
//! recorder, so that callgrind (or `perf stat -e instructions:u` where the VM exposes the
//! counter; these do not) over this process, every thread (the caller's, the runtime's,
//! SQLite's writer and checkpoint threads), counts the work of exactly that many requests,
//! plus a fixed setup that a run with zero requests measures.
//!
//! Criterion's wall-clock medians of `direct_50` move by ±20 % between processes on these
//! shared VMs, too much to see a 3 % difference between two builds; the instruction count of a
//! fixed workload moves by well under 1 %. The file uses only what the service had before the
//! observability merge (`2d1c2e1`), so the same file builds there and at any later commit:
//!
//! ```sh
//! cargo bench --features memory,sqlite --bench observe_cost --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/observe_cost-* sqlite-direct 300
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/observe_cost-* sqlite-direct 0
//! ```
//!
//! Modes: `memory-direct`, `sqlite-direct`, `sqlite-email`. The database is a fresh file in
//! `target/bench-data/`, deleted at the end. To build it at an older commit, copy this file,
//! `support/fixture.rs` and the `[[bench]]` entry there.

use invites::memory::MemoryStore;
use invites::prelude::*;
use invites::sqlite::SqliteStore;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

#[path = "support/fixture.rs"]
mod fixture;
use fixture::NullMailer;

const SITES: u128 = 50;

fn org() -> OrganizationId {
    OrganizationId(Uuid::from_u128(0xB0))
}

fn sites() -> Vec<WebsiteId> {
    (0..SITES)
        .map(|i| WebsiteId(Uuid::from_u128(0x1_0000 + i)))
        .collect()
}

async fn seed(dir: &dyn Directory) {
    fixture::seed_websites(dir, org(), sites()).await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; this file runs only when given its own arguments.
    let (Some(mode), Some(count)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: observe_cost memory-direct|sqlite-direct|sqlite-email COUNT");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let path = fixture::bench_dir().join(format!("observe-cost-{}.db", std::process::id()));
    let (store, method): (Arc<dyn MembershipStore>, _) = match mode.as_str() {
        "memory-direct" => {
            let store = MemoryStore::new();
            rt.block_on(seed(&store));
            (Arc::new(store), InviteMethod::Direct)
        }
        "sqlite-direct" | "sqlite-email" => {
            let store = rt.block_on(SqliteStore::open(&path)).unwrap();
            rt.block_on(seed(&store));
            let method = if mode == "sqlite-email" {
                InviteMethod::Email
            } else {
                InviteMethod::Direct
            };
            (Arc::new(store), method)
        }
        other => panic!("unknown mode {other}"),
    };
    let svc = InviteService::new(
        store,
        Arc::new(NullMailer),
        InviteConfig::new("https://bench.test/accept").unwrap(),
    );
    let principal = Principal::global(org(), ApiKeyId(Uuid::from_u128(0xC1)));
    let start = Instant::now();
    for n in 0..count {
        let request =
            BulkInviteRequest::websites(method, &format!("cost-{n}@example.test"), sites());
        let response = rt.block_on(svc.bulk_invite(&principal, request)).unwrap();
        assert_eq!(response.summary.succeeded, SITES as usize);
        black_box(response);
    }
    let elapsed = start.elapsed();
    if count > 0 {
        println!(
            "{mode}: {count} requests, {:.1} µs each (wall clock)",
            elapsed.as_secs_f64() * 1e6 / count as f64
        );
    }
    drop(svc);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
