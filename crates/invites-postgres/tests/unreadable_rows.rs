//! Stored rows this version cannot decode (issue 9), planted with a plain `tokio_postgres`
//! client on the same database (as an older version, another tool or a hand would write
//! them): the shared scenario of `invites_testkit::unreadable`, again on a new store (a
//! restarted server), and the claim's handling of bad values the schema's types let through
//! (a NULL included, once its NOT NULL is dropped).
//! Each test skips (one line) without `INVITES_PG_URL`.

use async_trait::async_trait;
use invites_core::*;
use invites_postgres::testing::{TestDatabase, fresh_database, server_url};
use invites_testkit::Backend;
use invites_testkit::unreadable::{self, Planter, RawMessage, SPOILED_EMAIL, SPOILED_NAME};
use std::sync::Arc;

macro_rules! server {
    ($test:literal) => {
        match server_url(concat!("postgres test ", $test)) {
            Some(url) => url,
            None => return,
        }
    };
}

struct RawPlanter(TestDatabase);

impl RawPlanter {
    async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) {
        let n = self
            .0
            .connect()
            .await
            .execute(sql, params)
            .await
            .expect(sql);
        assert_eq!(n, 1, "{sql}");
    }
}

#[async_trait]
impl Planter for RawPlanter {
    async fn spoil_message_recipient(&self, id: MessageId) {
        self.execute(
            "UPDATE outbox SET recipient = $2 WHERE id = $1",
            &[&id.0, &SPOILED_EMAIL],
        )
        .await;
    }

    async fn spoil_invitation_email(&self, id: InvitationId) {
        // The foreign key names the batch's email (migration 5), so the database refuses
        // this row; it is planted as one written before that key was, which `NOT VALID`
        // leaves in place while every new row is checked again.
        let client = self.0.connect().await;
        client
            .batch_execute("ALTER TABLE invitations DROP CONSTRAINT invitations_batch_fkey")
            .await
            .expect("drop the key");
        self.execute(
            "UPDATE invitations SET email = $2 WHERE id = $1",
            &[&id.0, &SPOILED_EMAIL],
        )
        .await;
        client
            .batch_execute(
                "ALTER TABLE invitations ADD CONSTRAINT invitations_batch_fkey \
                 FOREIGN KEY (batch_id, organization_id, email) \
                 REFERENCES batches (id, organization_id, email) ON DELETE CASCADE NOT VALID",
            )
            .await
            .expect("restore the key");
    }

    async fn spoil_user_first_name(&self, id: UserId) {
        self.execute(
            "UPDATE users SET first_name = $2 WHERE id = $1",
            &[&id.0, &SPOILED_NAME],
        )
        .await;
    }

    async fn message_row(&self, id: MessageId) -> RawMessage {
        let row = self
            .0
            .connect()
            .await
            .query_one(
                "SELECT status, last_error, accept_url IS NOT NULL AS has_link \
                 FROM outbox WHERE id = $1",
                &[&id.0],
            )
            .await
            .expect("the row");
        RawMessage {
            status: row.get("status"),
            last_error: row.get("last_error"),
            has_link: row.get("has_link"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unreadable_row_blocks_nothing_even_on_a_new_store() {
    let url = server!("one_unreadable_row_blocks_nothing_even_on_a_new_store");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let planter = RawPlanter(db.clone());
    let planted = unreadable::one_bad_row_blocks_nothing(
        Arc::new(store.clone()) as Arc<dyn Backend>,
        &planter,
    )
    .await;
    drop(store);
    let again = db.store().await;
    unreadable::after_reopen(Arc::new(again) as Arc<dyn Backend>, &planted).await;
}

/// Bad values the column types let through, one per due message, ahead of a healthy one: the
/// claim returns only the healthy one and sets each bad one aside, naming its column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_sets_aside_every_kind_of_unreadable_row() {
    let url = server!("the_claim_sets_aside_every_kind_of_unreadable_row");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let queued = unreadable::queue_messages(Arc::new(store.clone()), 5).await;
    let client = db.connect().await;
    // A foreign writer that dropped the CHECK on attempts and a NOT NULL.
    client
        .batch_execute(
            "ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_attempts_check; \
             ALTER TABLE outbox ALTER COLUMN created_at DROP NOT NULL",
        )
        .await
        .expect("drop constraints");
    let spoil = [
        ("recipient", "'NOT@normalised.TEST'"),
        ("attempts", "-3"),
        ("recipient", "'two@@ats.test'"),
        ("created_at", "NULL"),
    ];
    for ((column, value), id) in spoil.iter().zip(queued.spoiled()) {
        let n = client
            .execute(
                &format!("UPDATE outbox SET {column} = {value} WHERE id = $1"),
                &[&id.0],
            )
            .await
            .expect("spoil");
        assert_eq!(n, 1, "{column}");
    }

    let now = queued.claim_returns_only_the_healthy(&store).await;
    let planter = RawPlanter(db.clone());
    for ((column, _), id) in spoil.iter().zip(queued.spoiled()) {
        unreadable::assert_set_aside(&planter, *id, column).await;
    }
    queued.nothing_comes_back(&store, now).await;
    let snapshot = store.snapshot().await.expect("snapshot");
    assert_eq!(
        snapshot.outbox.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![queued.healthy()]
    );
}
