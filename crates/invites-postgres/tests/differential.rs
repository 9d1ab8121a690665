//! docs/contract.md §9 invariant 10 with PostgreSQL: random sequences of operations (bulk invites in both
//! modes, directory changes, deliveries with a failing mailer, clock moves, revoke, resend,
//! accept, idempotent replays, listing) give the same responses, mails and final state on the
//! reference model, the memory backend and PostgreSQL (a fresh database per sequence).
//! Skips (one line) without `INVITES_PG_URL`.

use invites_postgres::testing::{fresh_database, server_url};
use invites_testkit::Backend;
use invites_testkit::differential::run_differential;
use invites_testkit::strategies::{cases, ops, standard_world};
use proptest::prelude::*;
use std::sync::Arc;

#[test]
fn invariant_10_postgres_agrees_with_model_and_memory() {
    let Some(url) = server_url("postgres differential") else {
        return;
    };
    proptest!(ProptestConfig::with_cases(cases(64)), |(ops in ops(&standard_world(), 30))| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let result = rt.block_on(async {
            let db = fresh_database(&url).await;
            let backends: Vec<(&str, Arc<dyn Backend>)> = vec![
                ("memory", Arc::new(invites_memory::MemoryStore::new())),
                ("postgres", Arc::new(db.store().await)),
            ];
            run_differential(&ops, backends).await
        });
        if let Err(d) = result {
            return Err(TestCaseError::fail(d.to_string()));
        }
    });
}
