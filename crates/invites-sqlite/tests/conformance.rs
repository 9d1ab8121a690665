//! The shared conformance suite (`invites_testkit::conformance`) run against [`SqliteStore`]:
//! a fresh database file per test, in cargo's per-target temporary directory.

use invites_sqlite::SqliteStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A new database file, unique within this run and across runs.
async fn fresh() -> SqliteStore {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("db-{}.sqlite", NEXT.fetch_add(1, Ordering::SeqCst)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqliteStore::open(&path).await.expect("open a fresh file")
}

invites_testkit::conformance_suite!(async { Arc::new(fresh().await) });
