//! The store suite (`invites_testkit::store_suite`) against [`PgStore`] on a real server, a
//! fresh database per test, including the fault checks: [`TriggerFaults`] makes PostgreSQL
//! itself fail from inside, with PL/pgSQL triggers installed over a second connection (as
//! another server or the host's own migration could). Each test skips (one line) without
//! `INVITES_PG_URL`.
//!
//! [`PgStore`]: invites_postgres::PgStore

use async_trait::async_trait;
use invites_core::{Email, TargetId, TargetKind};
use invites_postgres::testing::{TestDatabase, fresh_database, server_url};
use invites_testkit::store_suite::FaultInjector;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Injects faults into one database with triggers.
#[derive(Debug)]
struct TriggerFaults {
    db: TestDatabase,
    next: AtomicUsize,
}

impl TriggerFaults {
    async fn exec(&self, sql: &str) {
        self.db
            .connect()
            .await
            .batch_execute(sql)
            .await
            .expect("install the fault");
    }

    /// A trigger function raising for rows of `target`, attached to its membership table and
    /// to `invitations` (`constraint`: a deferred constraint trigger, raising at COMMIT).
    async fn on_target_rows(&self, target: TargetId, constraint: bool) {
        let id = target.uuid();
        let (table, column) = match target.kind() {
            TargetKind::Website => ("website_members", "website_id"),
            TargetKind::Group => ("group_members", "group_id"),
        };
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let (kind, timing) = if constraint {
            (
                "CONSTRAINT TRIGGER",
                "AFTER INSERT ON {t} DEFERRABLE INITIALLY DEFERRED",
            )
        } else {
            ("TRIGGER", "BEFORE INSERT ON {t}")
        };
        let mut sql = String::new();
        for (t, c) in [(table, column), ("invitations", "target_id")] {
            sql.push_str(&format!(
                "CREATE FUNCTION fault_{n}_{t}() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     IF NEW.{c} = '{id}' THEN RAISE EXCEPTION 'injected'; END IF;
                     RETURN NEW;
                 END $$;
                 CREATE {kind} fault_{n} {} FOR EACH ROW EXECUTE FUNCTION fault_{n}_{t}();",
                timing.replace("{t}", t)
            ));
        }
        self.exec(&sql).await;
    }
}

#[async_trait]
impl FaultInjector for TriggerFaults {
    async fn fail_unit(&self, target: TargetId) {
        self.on_target_rows(target, false).await;
    }

    async fn fail_outbox(&self, recipient: &Email) {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.exec(&format!(
            "CREATE FUNCTION fault_{n}_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.recipient = '{}' THEN RAISE EXCEPTION 'injected'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fault_{n} BEFORE INSERT ON outbox
                 FOR EACH ROW EXECUTE FUNCTION fault_{n}_outbox();",
            recipient.as_str().replace('\'', "''")
        ))
        .await;
    }

    async fn fail_commit(&self, target: TargetId) {
        self.on_target_rows(target, true).await;
    }
}

invites_testkit::store_suite!({
    let Some(url) = server_url("postgres store suite") else {
        return;
    };
    async move { Arc::new(fresh_database(&url).await.store().await) }
});

invites_testkit::store_fault_suite!({
    let Some(url) = server_url("postgres store fault suite") else {
        return;
    };
    async move {
        let db = fresh_database(&url).await;
        let store = db.store().await;
        let faults = TriggerFaults {
            db,
            next: AtomicUsize::new(0),
        };
        (
            Arc::new(store) as Arc<dyn invites_testkit::Backend>,
            Arc::new(faults) as Arc<dyn FaultInjector>,
        )
    }
});
