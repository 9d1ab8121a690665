//! What the SQLite integration tests share: a fresh database file per test.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A new database file path, unique within this run (a counter) and across runs (the process
/// id), in cargo's per-target temporary directory under `prefix`; any file left there by an
/// earlier run with the same name is removed.
pub(crate) fn fresh_path(prefix: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("db-{}.sqlite", NEXT.fetch_add(1, Ordering::SeqCst)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}
