//! The shared conformance suite (`invites_testkit::conformance`) against [`PgStore`] on a real
//! server: a fresh database per test, dropped afterwards. Each test skips (one line) without
//! `INVITES_PG_URL`: the factory is expanded inside each test function, so its `return` ends
//! the test before any backend exists.
//!
//! [`PgStore`]: invites_postgres::PgStore

invites_testkit::conformance_suite!({
    let Some(url) = invites_postgres::testing::server_url("postgres conformance") else {
        return;
    };
    async move {
        let db = invites_postgres::testing::fresh_database(&url).await;
        std::sync::Arc::new(db.store().await)
    }
});
