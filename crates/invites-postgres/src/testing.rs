//! Throwaway databases for tests (feature `test-util`): each test gets its own database,
//! copied from a migrated template (`CREATE DATABASE … TEMPLATE`, much faster than migrating),
//! and dropped when the last handle of its store goes.
//!
//! The server comes from the environment, as every server-dependent test of the workspace:
//! `INVITES_PG_URL` names a database on it whose role may create databases, and roles for the
//! least-privilege test (see `scripts/pg-test-server.sh`). Without it, [`server_url`] prints one `skipped:` line and
//! returns `None`, unless `INVITES_REQUIRE_SERVERS=1` is set, when it panics instead.

use crate::{PgOptions, PgStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

/// The variable that names the test server's database.
pub const URL_VAR: &str = "INVITES_PG_URL";

/// The URL of the test server, or `None` after printing why the caller skips.
///
/// # Panics
/// When `INVITES_REQUIRE_SERVERS=1` and `INVITES_PG_URL` is not set.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("INVITES_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("{test} needs PostgreSQL and INVITES_REQUIRE_SERVERS=1; set {URL_VAR}");
            }
            // Straight to the process's stderr: the test harness captures `println!` of a
            // passing test, and this line must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {test} needs a PostgreSQL server; set {URL_VAR}"
            );
            None
        }
    }
}

/// Drops its database when dropped (with `WITH (FORCE)`, so open connections do not stop it).
#[derive(Debug)]
pub struct DropGuard {
    admin_url: String,
    database: String,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database);
        // Its own thread and runtime: this may run inside (or outside) any runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                let task = tokio::spawn(connection);
                let done = client.batch_execute(&sql).await.ok();
                drop(client);
                let _ = task.await;
                done
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.database);
        }
    }
}

/// A throwaway database on the test server.
#[derive(Clone, Debug)]
pub struct TestDatabase {
    /// Its connection URL.
    pub url: String,
    /// Its name.
    pub name: String,
    guard: Arc<DropGuard>,
}

impl TestDatabase {
    /// A store on this database (migrated already, with `options`), that keeps the database
    /// alive as long as it (or a clone) lives.
    ///
    /// # Panics
    /// When the store cannot connect.
    pub async fn store_with(&self, options: PgOptions) -> PgStore {
        let mut store = PgStore::connect_with(&self.url, options)
            .await
            .expect("connect to the test database");
        store.guard = Some(self.guard.clone());
        store
    }

    /// [`TestDatabase::store_with`] with the default options.
    pub async fn store(&self) -> PgStore {
        self.store_with(PgOptions::default()).await
    }
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    // postgresql://user@host:port/db?params
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let base = match head.find("://").map(|i| i + 3) {
        Some(start) => match head[start..].find('/') {
            Some(slash) => &head[..start + slash],
            None => head,
        },
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(connection);
    client
}

/// The migrated template database (once per process; shared across processes by name: its
/// name holds a hash of the migrations, and it is built under an advisory lock).
async fn template(url: &str) -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for sql in crate::migrate::MIGRATIONS {
                for b in sql.bytes() {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
            }
            let name = format!("invites_template_{:012x}", hash >> 16);
            let client = admin(url).await;
            client
                .execute("SELECT pg_advisory_lock(1769170277)", &[])
                .await
                .expect("template lock");
            let exists = !client
                .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .expect("list databases")
                .is_empty();
            if !exists {
                let building = format!("{name}_building");
                for sql in [
                    format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
                    format!("CREATE DATABASE \"{building}\""),
                ] {
                    client
                        .batch_execute(&sql)
                        .await
                        .expect("create the template");
                }
                {
                    let store = PgStore::connect(&with_database(url, &building))
                        .await
                        .expect("migrate the template");
                    store.pool().close();
                }
                client
                    .batch_execute(&format!(
                        "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
                    ))
                    .await
                    .expect("publish the template");
            }
            client
                .execute("SELECT pg_advisory_unlock(1769170277)", &[])
                .await
                .expect("template unlock");
            name
        })
        .await
}

/// A new empty, migrated database on the server at `url`.
///
/// # Panics
/// When the server refuses (the role needs `CREATEDB`).
pub async fn fresh_database(url: &str) -> TestDatabase {
    let template = template(url).await;
    new_database(url, Some(template)).await
}

/// A new database with nothing in it (not even the schema), for migration tests.
///
/// # Panics
/// When the server refuses (the role needs `CREATEDB`).
pub async fn empty_database(url: &str) -> TestDatabase {
    new_database(url, None).await
}

async fn new_database(url: &str, template: Option<&str>) -> TestDatabase {
    let name = format!(
        "invites_t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let client = admin(url).await;
    let create = match template {
        Some(template) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        None => format!("CREATE DATABASE \"{name}\""),
    };
    let mut attempt = 0;
    loop {
        match client.batch_execute(&create).await {
            Ok(()) => break,
            // 55006: the template is in use by a concurrent copy; try again shortly.
            Err(e) if attempt < 50 && e.code().is_some_and(|c| c.code() == "55006") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("create test database: {e}"),
        }
    }
    TestDatabase {
        url: with_database(url, &name),
        name: name.clone(),
        guard: Arc::new(DropGuard {
            admin_url: url.to_owned(),
            database: name,
        }),
    }
}

impl TestDatabase {
    /// A plain connection to this database (for tests that look at or change it directly).
    ///
    /// # Panics
    /// When it cannot connect.
    pub async fn connect(&self) -> tokio_postgres::Client {
        admin(&self.url).await
    }
}

/// A store on a fresh database, or `None` (after one `skipped:` line) without a server.
pub async fn fresh_store(test: &str) -> Option<PgStore> {
    let url = server_url(test)?;
    Some(fresh_database(&url).await.store().await)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgresql://u@h:5/a", "b"),
            "postgresql://u@h:5/b"
        );
        assert_eq!(
            with_database("postgresql://u@h:5/a?sslmode=disable", "b"),
            "postgresql://u@h:5/b?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://u@h", "b"), "postgresql://u@h/b");
    }
}
