//! SPEC §9 invariant 10 with SQLite: random sequences of operations (bulk invites in both
//! modes, directory changes, deliveries with a failing mailer, clock moves, revoke, resend,
//! accept, idempotent replays, listing) give the same responses, mails and final state on the
//! reference model, the memory backend and the SQLite backend (a fresh file per sequence).

use invites_sqlite::SqliteStore;
use invites_testkit::Backend;
use invites_testkit::differential::run_differential;
use invites_testkit::strategies::{cases, ops, standard_world};
use proptest::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

async fn fresh_file() -> SqliteStore {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("differential-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("db-{}.sqlite", NEXT.fetch_add(1, Ordering::SeqCst)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqliteStore::open(&path).await.expect("open")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn invariant_10_sqlite_agrees_with_model_and_memory(ops in ops(&standard_world(), 30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let result = rt.block_on(async {
            let sqlite = fresh_file().await;
            let backends: Vec<(&str, Arc<dyn Backend>)> =
                vec![("memory", Arc::new(invites_memory::MemoryStore::new())), ("sqlite", Arc::new(sqlite))];
            run_differential(&ops, backends).await
        });
        if let Err(d) = result {
            return Err(TestCaseError::fail(d.to_string()));
        }
    }
}
