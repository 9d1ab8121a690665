//! The shared conformance suite (`invites_testkit::conformance`) run against [`SqliteStore`]:
//! a fresh database file per test, in cargo's per-target temporary directory.

mod common;

use invites_sqlite::SqliteStore;
use std::sync::Arc;

/// A store on a new database file.
async fn fresh() -> SqliteStore {
    SqliteStore::open(&common::fresh_path("conformance"))
        .await
        .expect("open a fresh file")
}

invites_testkit::conformance_suite!(async { Arc::new(fresh().await) });
