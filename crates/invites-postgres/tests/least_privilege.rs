//! A least-privilege role: production app servers log in as a role that does not own the
//! schema and may not create anything (no CREATE on the database or the schema), with USAGE
//! on the schema and SELECT, INSERT, UPDATE and DELETE on its tables. The owner migrates
//! first; the app role then connects and serves every operation. Each test skips (one line)
//! without `INVITES_PG_URL`; the test server's role needs CREATEROLE (as
//! `scripts/pg-test-server.sh` sets it up) to make the app role.

mod support;

use invites_core::StoreError;
use invites_postgres::testing::{TestDatabase, empty_database, server_url};
use invites_postgres::{ConnectError, Migrated, PgOptions, PgStore};
use invites_testkit::{Backend, conformance};
use std::sync::Arc;
use support::{Via, pool};
use tokio_postgres::NoTls;

macro_rules! server {
    ($test:literal) => {
        match server_url(concat!("postgres test ", $test)) {
            Some(url) => url,
            None => return,
        }
    };
}

const PASSWORD: &str = "app-role-password";

/// A database owned by the test server's role, and a login role that owns nothing in it.
/// Dropping it drops the database, then the role (roles are server-wide).
struct AppRole {
    db: Option<TestDatabase>,
    admin_url: String,
    role: String,
}

impl AppRole {
    async fn new(url: &str) -> AppRole {
        let db = empty_database(url).await;
        let role = format!("{}_app", db.name);
        db.connect()
            .await
            .batch_execute(&format!(
                "CREATE ROLE \"{role}\" LOGIN PASSWORD '{PASSWORD}' \
                     NOSUPERUSER NOCREATEDB NOCREATEROLE;
                 -- The owner may end the role's sessions (dropping the database does).
                 GRANT \"{role}\" TO CURRENT_USER;"
            ))
            .await
            .expect("create the app role (the test server's role needs CREATEROLE)");
        AppRole {
            db: Some(db),
            admin_url: url.to_owned(),
            role,
        }
    }

    fn db(&self) -> &TestDatabase {
        self.db
            .as_ref()
            .expect("the database lives as long as the role")
    }

    /// The options for `schema`.
    fn options(schema: &str) -> PgOptions {
        PgOptions::default()
            .schema(schema)
            .expect("a valid schema name")
    }

    /// Migrates `schema` as the owner (the separate deployment step), and grants the app role
    /// what the crate docs list, no more.
    async fn migrate_and_grant(&self, schema: &str) {
        let known = u32::try_from(PgStore::migrations().len()).expect("few");
        let done = PgStore::migrate(&self.db().url, &Self::options(schema))
            .await
            .expect("the owner migrates");
        assert_eq!(done, Migrated { from: 0, to: known });
        let role = &self.role;
        let owner = self.db().connect().await;
        owner
            .batch_execute(&format!(
                "GRANT USAGE ON SCHEMA {schema} TO \"{role}\";
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO \"{role}\";"
            ))
            .await
            .expect("grant");
        // What the role may not do, and that the docs' grants leave nothing out.
        let row = owner
            .query_one(
                "SELECT has_database_privilege($1, current_database(), 'CREATE'),
                        has_schema_privilege($1, $2, 'CREATE'),
                        (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $2),
                        (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = $2 AND c.relkind = 'S')",
                &[&role, &schema],
            )
            .await
            .expect("privileges");
        assert!(!row.get::<_, bool>(0), "no CREATE on the database");
        assert!(!row.get::<_, bool>(1), "no CREATE on the schema");
        assert_ne!(&row.get::<_, String>(2), role, "not the schema's owner");
        assert_eq!(row.get::<_, i64>(3), 0, "no sequences to grant");
    }

    /// A store on the database, logged in as the app role.
    async fn connect(&self, options: PgOptions) -> Result<PgStore, ConnectError> {
        let via = Via {
            login: Some((&self.role, PASSWORD)),
            ..Via::default()
        };
        PgStore::from_pool_with(pool(&self.db().url, via, 4), options).await
    }

    /// A freshly migrated `schema` and a store on it as the app role, connected without
    /// migrating.
    async fn fresh_store(&self, schema: &str) -> Arc<dyn Backend> {
        self.migrate_and_grant(schema).await;
        let store = self
            .connect(Self::options(schema).migrate(false))
            .await
            .expect("the app role connects without migrating");
        Arc::new(store)
    }

    /// Runs `sql` as the owner.
    async fn owner(&self, sql: &str) {
        self.db()
            .connect()
            .await
            .batch_execute(sql)
            .await
            .expect(sql);
    }
}

impl Drop for AppRole {
    fn drop(&mut self) {
        // The database first (it holds the role's grants), then the role.
        drop(self.db.take());
        let (url, sql) = (
            self.admin_url.clone(),
            format!("DROP ROLE IF EXISTS \"{}\"", self.role),
        );
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, NoTls).await.ok()?;
                let task = tokio::spawn(connection);
                let done = client.batch_execute(&sql).await.ok();
                drop(client);
                let _ = task.await;
                done
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop the test role {}", self.role);
        }
    }
}

/// The role serves a whole round through the service, each in its own freshly migrated
/// schema: bulk invites by email and direct, delivery and its retries, accept, revoke,
/// resend, lists, idempotent replays and purges. The store connects without migrating, and
/// also with the default connect (which on an up-to-date schema only reads its version:
/// before, every connect issued `CREATE SCHEMA IF NOT EXISTS`, refused with 42501 for this
/// role).
#[tokio::test]
async fn a_role_that_owns_nothing_serves_every_operation() {
    let url = server!("a_role_that_owns_nothing_serves_every_operation");
    let app = AppRole::new(&url).await;
    conformance::accept_creates_verified_user_and_memberships(app.fresh_store("s_accept").await)
        .await;
    conformance::delivery_retries_with_exponential_backoff(app.fresh_store("s_deliver").await)
        .await;
    conformance::direct_add_supersedes_live_invitation(app.fresh_store("s_direct").await).await;
    conformance::resend_rotates_token_and_renews(app.fresh_store("s_resend").await).await;
    conformance::list_invitations_filters_and_pages(app.fresh_store("s_list").await).await;
    conformance::idempotent_repeat_returns_stored_response(app.fresh_store("s_idem").await).await;
    conformance::purge_keeps_what_hosts_see_and_drops_dead_batches(
        app.fresh_store("s_purge").await,
    )
    .await;

    // The default connect, as the app role, on a migrated schema.
    app.migrate_and_grant("s_default").await;
    let store = app
        .connect(AppRole::options("s_default"))
        .await
        .expect("the default connect only reads an up-to-date schema's version");
    conformance::email_sends_one_consolidated_message(Arc::new(store)).await;
}

/// Without migrating, connecting reads the version and refuses any other with a typed
/// error, and never creates anything, even as a role that could.
#[tokio::test]
async fn connecting_without_migrating_refuses_another_version_and_creates_nothing() {
    let url = server!("connecting_without_migrating_refuses_another_version_and_creates_nothing");
    let app = AppRole::new(&url).await;
    let known = u32::try_from(PgStore::migrations().len()).expect("few");
    let verify = |schema| AppRole::options(schema).migrate(false);
    let schema_error = |result: Result<PgStore, ConnectError>| match result {
        Err(ConnectError::Schema(m)) => m,
        other => panic!("expected a schema mismatch, got {other:?}"),
    };

    // Missing: refused, for the app role and for the owner, and the owner's attempt created
    // no schema.
    let m = schema_error(app.connect(verify("nothing")).await);
    assert!(m.is_missing() && m.is_older(), "{m:?}");
    assert_eq!(
        (m.schema.as_str(), m.found, m.expected),
        ("nothing", 0, known)
    );
    let m = schema_error(PgStore::connect_with(&app.db().url, verify("nothing")).await);
    assert!(m.is_missing(), "{m:?}");
    let client = app.db().connect().await;
    let schemas: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'nothing'",
            &[],
        )
        .await
        .expect("schemas")
        .get(0);
    assert_eq!(schemas, 0, "connecting without migrating created nothing");

    // Older: refused without migrating; a migrating connect must create, which the app role
    // may not (the server's permission error).
    app.migrate_and_grant("app").await;
    app.owner(&format!(
        "DELETE FROM app.invites_schema_migrations WHERE version = {known}"
    ))
    .await;
    let m = schema_error(app.connect(verify("app")).await);
    assert!(m.is_older() && !m.is_missing() && !m.is_newer(), "{m:?}");
    assert_eq!((m.found, m.expected), (known - 1, known));
    match app.connect(AppRole::options("app")).await {
        Err(ConnectError::Store(e @ StoreError::Backend { .. })) => {
            assert!(e.to_string().contains("42501"), "permission denied: {e}");
        }
        other => panic!("expected the server's permission error, got {other:?}"),
    }

    // Newer: refused.
    app.owner(&format!(
        "INSERT INTO app.invites_schema_migrations (version) VALUES ({known}), ({})",
        known + 1
    ))
    .await;
    let m = schema_error(app.connect(verify("app")).await);
    assert!(m.is_newer() && !m.is_older(), "{m:?}");
    assert_eq!((m.found, m.expected), (known + 1, known));

    // The same version: connects, and migrating again as the owner has nothing to do.
    app.owner(&format!(
        "DELETE FROM app.invites_schema_migrations WHERE version = {}",
        known + 1
    ))
    .await;
    app.connect(verify("app")).await.expect("the right version");
    let again = PgStore::migrate(&app.db().url, &AppRole::options("app"))
        .await
        .expect("migrate again");
    assert_eq!(
        again,
        Migrated {
            from: known,
            to: known
        }
    );
}
