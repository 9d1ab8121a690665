//! docs/contract.md §9 invariant 10 with SQLite: random sequences of operations (bulk invites in both
//! modes, directory changes, deliveries with a failing mailer, clock moves, revoke, resend,
//! accept, idempotent replays, listing) give the same responses, mails and final state on the
//! reference model, the memory backend and the SQLite backend (a fresh file per sequence).

mod common;

use invites_sqlite::SqliteStore;
use invites_testkit::Backend;
use invites_testkit::differential::run_differential;
use invites_testkit::strategies::{cases, ops, standard_world};
use proptest::prelude::*;
use std::sync::Arc;

async fn fresh_file() -> SqliteStore {
    SqliteStore::open(&common::fresh_path("differential"))
        .await
        .expect("open")
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
