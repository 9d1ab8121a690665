//! Stored rows this version cannot decode (issue 9), planted with a second, plain connection to
//! the file (as an older version, another tool or a hand would write them): the shared
//! scenario of `invites_testkit::unreadable`, again after reopening the file, and the claim's
//! handling of every kind of bad value SQLite lets through.

mod common;

use async_trait::async_trait;
use invites_core::*;
use invites_sqlite::SqliteStore;
use invites_testkit::Backend;
use invites_testkit::unreadable::{self, Planter, RawMessage, SPOILED_EMAIL, SPOILED_NAME};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Every `tracing` event of this test process, formatted with its fields (a plain subscriber:
/// the backend warns from its connection thread, so it must be the global one).
fn captured() -> &'static Mutex<Vec<String>> {
    static EVENTS: OnceLock<&'static Mutex<Vec<String>>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let events: &'static Mutex<Vec<String>> = Box::leak(Box::default());
        tracing::subscriber::set_global_default(Capture(events)).expect("the only subscriber");
        events
    })
}

struct Capture(&'static Mutex<Vec<String>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(format!(
            "{} {}",
            event.metadata().level(),
            event.metadata().target()
        ));
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A new database file.
fn fresh_path() -> PathBuf {
    common::fresh_path("unreadable")
}

/// A plain connection to the file, as another process would have.
fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("raw connection");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn
}

struct RawPlanter(PathBuf);

#[async_trait]
impl Planter for RawPlanter {
    async fn spoil_message_recipient(&self, id: MessageId) {
        let n = raw(&self.0)
            .execute(
                "UPDATE outbox SET recipient = ?2 WHERE id = ?1",
                rusqlite::params![id.0.as_bytes(), SPOILED_EMAIL],
            )
            .expect("update");
        assert_eq!(n, 1);
    }

    async fn spoil_invitation_email(&self, id: InvitationId) {
        let n = raw(&self.0)
            .execute(
                "UPDATE invitations SET email = ?2 WHERE id = ?1",
                rusqlite::params![id.0.as_bytes(), SPOILED_EMAIL],
            )
            .expect("update");
        assert_eq!(n, 1);
    }

    async fn spoil_user_first_name(&self, id: UserId) {
        let n = raw(&self.0)
            .execute(
                "UPDATE users SET first_name = ?2 WHERE id = ?1",
                rusqlite::params![id.0.as_bytes(), SPOILED_NAME],
            )
            .expect("spoil");
        assert_eq!(n, 1);
    }

    async fn message_row(&self, id: MessageId) -> RawMessage {
        raw(&self.0)
            .query_row(
                "SELECT status, last_error, accept_url IS NOT NULL FROM outbox WHERE id = ?1",
                [id.0.as_bytes()],
                |row| {
                    Ok(RawMessage {
                        status: row.get(0)?,
                        last_error: row.get(1)?,
                        has_link: row.get(2)?,
                    })
                },
            )
            .expect("the row")
    }
}

#[tokio::test]
async fn one_unreadable_row_blocks_nothing_even_after_reopening() {
    let events = captured();
    let path = fresh_path();
    let store = SqliteStore::open(&path).await.expect("open");
    let planter = RawPlanter(path.clone());
    let planted = unreadable::one_bad_row_blocks_nothing(
        Arc::new(store.clone()) as Arc<dyn Backend>,
        &planter,
    )
    .await;
    drop(store);

    let reopened = SqliteStore::open(&path).await.expect("reopen");
    unreadable::after_reopen(Arc::new(reopened) as Arc<dyn Backend>, &planted).await;
    // The set-aside row is still there as it was planted, now failed: nothing was deleted.
    let recipient: String = raw(&path)
        .query_row(
            "SELECT recipient FROM outbox WHERE id = ?1",
            [planted.bad_message.message.0.as_bytes()],
            |row| row.get(0),
        )
        .expect("row");
    assert_eq!(recipient, SPOILED_EMAIL);

    // Reported: the set-aside and every row left out, by table, column and id; never with a
    // value (neither the planted one nor any address).
    let events = events.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let set_aside = format!("row=Some({})", planted.bad_message.message.0);
    assert!(
        events.iter().any(|e| e.contains("set aside")
            && e.contains("column=recipient")
            && e.contains(&set_aside)),
        "{events:#?}"
    );
    let left_out = format!("row=Some({})", planted.bad_invitation.0);
    assert!(
        events.iter().any(|e| e.contains("left out")
            && e.contains("table=\"invitations\"")
            && e.contains(&left_out)),
        "{events:#?}"
    );
    for e in &events {
        assert!(!e.contains(SPOILED_EMAIL) && !e.contains('@'), "{e}");
    }
}

/// Every kind of value SQLite stores that this version cannot decode, one per due message,
/// ahead of a healthy one: the claim returns only the healthy one and sets each bad one
/// aside, naming its column.
#[tokio::test]
async fn the_claim_sets_aside_every_kind_of_unreadable_row() {
    let path = fresh_path();
    let store = SqliteStore::open(&path).await.expect("open");
    let queued = unreadable::queue_messages(Arc::new(store.clone()), 6).await;
    // Ignoring CHECK constraints as a foreign writer might; NOT NULL still holds.
    let conn = raw(&path);
    conn.pragma_update(None, "foreign_keys", false)
        .expect("pragma");
    conn.pragma_update(None, "ignore_check_constraints", true)
        .expect("pragma");
    let spoil = [
        ("recipient", "'NOT@normalised.TEST'"),
        ("attempts", "5000000000"),
        ("created_at", "'yesterday'"),
        ("organization_id", "x'0102'"),
        ("accept_url", "x'00ff'"),
    ];
    for ((column, value), id) in spoil.iter().zip(queued.spoiled()) {
        let n = conn
            .execute(
                &format!("UPDATE outbox SET {column} = {value} WHERE id = ?1"),
                [id.0.as_bytes()],
            )
            .expect("spoil");
        assert_eq!(n, 1, "{column}");
    }

    let now = queued.claim_returns_only_the_healthy(&store).await;
    let planter = RawPlanter(path.clone());
    for ((column, _), id) in spoil.iter().zip(queued.spoiled()) {
        unreadable::assert_set_aside(&planter, *id, column).await;
    }
    // Never returned again.
    queued.nothing_comes_back(&store, now).await;
    // The snapshot leaves out the rows it still cannot read; the one whose only bad value was
    // its link reads again once set aside (the link is cleared), as failed with its reason.
    let snapshot = store.snapshot().await.expect("snapshot");
    let mut shown: Vec<MessageId> = snapshot.outbox.iter().map(|m| m.id).collect();
    shown.sort();
    let messages = queued.spoiled();
    let mut want = vec![queued.healthy(), messages[4]];
    want.sort();
    assert_eq!(shown, want);
    let relinked = snapshot
        .outbox
        .iter()
        .find(|m| m.id == messages[4])
        .expect("shown");
    assert_eq!(relinked.status, MessageStatus::Failed);
    assert_eq!(
        relinked.last_error.as_deref(),
        Some("stored row could not be read: column outbox.accept_url")
    );
}

/// A row left out of a list whose own position cannot be decoded (a text `created_at`, which
/// SQLite sorts after every number) does not stop the page refill: every other invitation is
/// listed once, whatever the page size, and the cursor ends.
#[tokio::test]
async fn a_list_walks_past_a_row_whose_position_cannot_be_decoded() {
    let path = fresh_path();
    let store = SqliteStore::open(&path).await.expect("open");
    let queued = unreadable::queue_messages(Arc::new(store.clone()), 4).await;
    let ids: Vec<InvitationId> = store
        .snapshot()
        .await
        .expect("snapshot")
        .invitations
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids.len(), 4);
    let conn = raw(&path);
    conn.pragma_update(None, "ignore_check_constraints", true)
        .expect("pragma");
    let n = conn
        .execute(
            "UPDATE invitations SET created_at = 'yesterday' WHERE id = ?1",
            [ids[1].0.as_bytes()],
        )
        .expect("spoil");
    assert_eq!(n, 1);
    let want: Vec<InvitationId> = ids.iter().copied().filter(|i| *i != ids[1]).collect();
    for limit in [1, 2, 3, 500] {
        assert_eq!(
            unreadable::list_all(&queued.harness.service, &queued.key, limit).await,
            want,
            "limit {limit}"
        );
    }
}
