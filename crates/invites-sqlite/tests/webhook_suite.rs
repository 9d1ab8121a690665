//! The webhook store checks of `invites-testkit` on SQLite (a fresh file per test).

mod common;

use invites_sqlite::SqliteStore;
use std::sync::Arc;

invites_testkit::webhook_suite!(async {
    Arc::new(
        SqliteStore::open(common::fresh_path("webhooks"))
            .await
            .expect("open"),
    )
});
