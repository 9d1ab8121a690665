//! The store suite (`invites_testkit::store_suite`) run against [`SqliteStore`], including the
//! fault checks: a [`TriggerFaults`] makes SQLite itself fail from inside, with triggers
//! installed by a second connection to the file (as another process could).

mod common;

use async_trait::async_trait;
use invites_core::{Email, TargetId, TargetKind};
use invites_sqlite::SqliteStore;
use invites_testkit::store_suite::FaultInjector;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A store on a new database file, and the file.
async fn fresh() -> (SqliteStore, PathBuf) {
    let path = common::fresh_path("store-suite");
    let store = SqliteStore::open(&path).await.expect("open a fresh file");
    (store, path)
}

/// Injects faults into one database file with triggers.
#[derive(Debug)]
struct TriggerFaults {
    path: PathBuf,
    next: AtomicUsize,
}

impl TriggerFaults {
    fn exec(&self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.path).expect("second connection");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn.execute_batch(sql).expect("install the fault");
    }

    /// One trigger per table that holds rows of `target`, running `action` for them.
    fn on_target_rows(&self, target: TargetId, when: &str, action: &str) {
        let id = target.uuid().simple();
        let member_table = match target.kind() {
            TargetKind::Website => ("website_members", "website_id"),
            TargetKind::Group => ("group_members", "group_id"),
        };
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.exec(&format!(
            "CREATE TRIGGER fault_{n}_m {when} INSERT ON {table} WHEN NEW.{column} = X'{id}' \
             BEGIN {action}; END;
             CREATE TRIGGER fault_{n}_i {when} INSERT ON invitations WHEN NEW.target_id = X'{id}' \
             BEGIN {action}; END;",
            table = member_table.0,
            column = member_table.1,
        ));
    }
}

#[async_trait]
impl FaultInjector for TriggerFaults {
    async fn fail_unit(&self, target: TargetId) {
        self.on_target_rows(target, "BEFORE", "SELECT RAISE(ABORT, 'injected')");
    }

    async fn fail_outbox(&self, recipient: &Email) {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.exec(&format!(
            "CREATE TRIGGER fault_{n}_o BEFORE INSERT ON outbox WHEN NEW.recipient = '{}' \
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
            recipient.as_str().replace('\'', "''")
        ));
    }

    async fn fail_commit(&self, target: TargetId) {
        // A row with a dangling, deferred foreign key: the statement and its savepoint
        // succeed, and SQLite refuses the COMMIT.
        self.exec(
            "CREATE TABLE IF NOT EXISTS fault_commit ( \
                 organization_id BLOB REFERENCES organizations (id) DEFERRABLE INITIALLY DEFERRED)",
        );
        self.on_target_rows(
            target,
            "AFTER",
            "INSERT INTO fault_commit (organization_id) VALUES (X'00')",
        );
    }
}

invites_testkit::store_suite!(async { Arc::new(fresh().await.0) });

invites_testkit::store_fault_suite!(async {
    let (store, path) = fresh().await;
    let faults = TriggerFaults {
        path,
        next: AtomicUsize::new(0),
    };
    (
        Arc::new(store) as Arc<dyn invites_testkit::Backend>,
        Arc::new(faults) as Arc<dyn FaultInjector>,
    )
});
