//! Group commit isolation: a write that shares a transaction with others (see `worker`) gets
//! an outcome that depends only on its own targets (docs/contract.md §3). A write that fails after
//! writing leaves nothing and gets its own error; the others of its group commit. When SQLite
//! rolls the whole transaction back during one write, the writes undone with it run again.
//!
//! Every test holds the connection thread with a plain job (`hold`) while its writes queue up
//! behind it, so that they are all taken into one group, in spawn order.

use super::*;
use crate::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const BROKEN_ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0300));
const COUNTED_ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0400));

/// Stores an email-mode batch for `mo@example.com` and claims its message, as a deliverer
/// would before sending it; returns the message's id.
async fn claimed_message(store: &SqliteStore) -> MessageId {
    store
        .create_invitations(&invite("mo@example.com", 9, &[web(X)], T0))
        .await
        .unwrap();
    let due = T0.plus(Duration::from_secs(60));
    let claimed = store
        .claim_due_messages(due, due.plus(Duration::from_secs(30)), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    claimed[0].id
}

fn organization_count(path: &Path) -> i64 {
    raw(path)
        .query_row("SELECT count(*) FROM organizations", [], |r| r.get(0))
        .unwrap()
}

/// What the store holds for the message: its status, and whether a deliverer would claim it
/// again (long after every lease ran out).
async fn delivery_state(store: &SqliteStore, message: MessageId) -> (MessageStatus, bool) {
    let snap = store.snapshot().await.unwrap();
    let stored = snap.outbox.iter().find(|m| m.id == message).unwrap();
    let later = T0.plus(Duration::from_secs(30 * 86_400));
    let due = store
        .claim_due_messages(later, later.plus(Duration::from_secs(30)), 100)
        .await
        .unwrap();
    (stored.status, due.iter().any(|m| m.id == message))
}

fn emails(snap: &Snapshot) -> Vec<&str> {
    snap.users.iter().map(|u| u.email.as_str()).collect()
}

/// Makes SQLite roll back the whole transaction when a membership of `website` is inserted
/// (as it does itself on some errors, e.g. disk full).
fn install_rollback(path: &Path, website: WebsiteId) {
    raw(path)
        .execute_batch(&format!(
            "CREATE TRIGGER inject_rollback BEFORE INSERT ON website_members \
             WHEN NEW.website_id = X'{}' BEGIN SELECT RAISE(ROLLBACK, 'injected'); END;",
            website.0.simple()
        ))
        .unwrap();
}

#[tokio::test]
async fn a_write_that_fails_after_writing_leaves_nothing_and_the_rest_of_its_group_commits() {
    let f = fixture().await;
    let message = claimed_message(&f.store).await;
    let (release, held) = hold(&f.store).await;

    let s = f.store.clone();
    let ann = tokio::spawn(async move {
        s.add_members(&add("ann@example.com", 1, &[web(A), web(B)], T0))
            .await
    });
    let s = f.store.clone();
    let sent = tokio::spawn(async move {
        s.record_delivery(message, DeliveryUpdate::Sent { attempts: 1 }, T0)
            .await
    });
    // Writes a row, then a statement of it fails (a duplicate primary key): the first row
    // must go with it.
    let worker = f.store.worker.clone();
    let broken = tokio::spawn(async move {
        worker
            .write(|c| {
                for org in [BROKEN_ORG, ORG] {
                    c.execute(
                        "INSERT INTO organizations (id, name) VALUES (?1, 'Broken')",
                        [org.0.as_bytes()],
                    )?;
                }
                Ok(())
            })
            .await
    });
    // Writes a row, then returns an error of its own.
    let worker = f.store.worker.clone();
    let refused = tokio::spawn(async move {
        worker
            .write(|c| {
                c.execute(
                    "INSERT INTO organizations (id, name) VALUES (?1, 'Refused')",
                    [BROKEN_ORG.0.as_bytes()],
                )?;
                Err::<(), _>(Error::Missing("half-way".into()))
            })
            .await
    });
    let s = f.store.clone();
    let bo = tokio::spawn(async move {
        s.create_invitations(&invite("bo@example.com", 2, &[web(A)], T0))
            .await
    });
    let_queue().await;
    release.send(()).unwrap();
    held.await.unwrap();

    // The healthy writes, before and after the failures, got their own outcomes.
    let ann = ann.await.unwrap().unwrap();
    assert_eq!(ok(&ann.targets), vec![AddFact::Added, AddFact::Added]);
    assert!(ann.user.is_some_and(|u| u.created));
    sent.await.unwrap().unwrap();
    let bo = bo.await.unwrap().unwrap();
    assert_eq!(ok(&bo.targets), vec![InviteFact::Invited]);
    // Each failing write got its own error, and only it.
    match broken.await.unwrap() {
        Err(Error::Sqlite(e)) => assert_eq!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation),
            "{e}"
        ),
        other => panic!("expected the duplicate key, got {other:?}"),
    }
    assert!(
        matches!(refused.await.unwrap(), Err(Error::Missing(m)) if m == "half-way"),
        "its own error"
    );

    let snap = f.store.snapshot().await.unwrap();
    assert_eq!(emails(&snap), vec!["ann@example.com"]);
    assert_eq!(snap.memberships.len(), 2);
    let mut invited: Vec<&str> = snap.invitations.iter().map(|i| i.email.as_str()).collect();
    invited.sort_unstable();
    assert_eq!(invited, vec!["bo@example.com", "mo@example.com"]);
    assert_eq!(
        organization_count(&f.path),
        2,
        "the failing writes left nothing"
    );
    // The delivery record stayed: the message is not sent a second time.
    assert_eq!(
        delivery_state(&f.store, message).await,
        (MessageStatus::Sent, false)
    );
}

#[tokio::test]
async fn a_write_that_panics_after_writing_leaves_nothing_and_the_rest_of_its_group_commits() {
    let f = fixture().await;
    let (release, held) = hold(&f.store).await;
    let s = f.store.clone();
    let ann = tokio::spawn(async move {
        s.add_members(&add("ann@example.com", 1, &[web(A)], T0))
            .await
    });
    let worker = f.store.worker.clone();
    let panicked = tokio::spawn(async move {
        worker
            .write(|c| -> Result<(), Error> {
                c.execute(
                    "INSERT INTO organizations (id, name) VALUES (?1, 'Panicked')",
                    [BROKEN_ORG.0.as_bytes()],
                )?;
                panic!("injected panic after a write");
            })
            .await
    });
    let s = f.store.clone();
    let bo = tokio::spawn(async move {
        s.add_members(&add("bo@example.com", 2, &[web(B)], T0))
            .await
    });
    let_queue().await;
    release.send(()).unwrap();
    held.await.unwrap();

    assert_eq!(
        ok(&ann.await.unwrap().unwrap().targets),
        vec![AddFact::Added]
    );
    assert!(matches!(panicked.await.unwrap(), Err(Error::Panicked)));
    assert_eq!(
        ok(&bo.await.unwrap().unwrap().targets),
        vec![AddFact::Added]
    );
    let snap = f.store.snapshot().await.unwrap();
    assert_eq!(emails(&snap), vec!["ann@example.com", "bo@example.com"]);
    assert_eq!(
        organization_count(&f.path),
        2,
        "the panicked write left nothing"
    );
}

#[tokio::test]
async fn writes_undone_when_sqlite_rolls_back_their_transaction_run_again_and_commit() {
    let f = fixture().await;
    let message = claimed_message(&f.store).await;
    // Dee's and Eve's memberships of X make SQLite roll back the whole transaction.
    install_rollback(&f.path, X);
    let (release, held) = hold(&f.store).await;

    // Counts its runs: the first two transactions are lost after it ran, so it runs three
    // times, and its row is stored once.
    let runs = Arc::new(AtomicUsize::new(0));
    let worker = f.store.worker.clone();
    let counter = runs.clone();
    let counted = tokio::spawn(async move {
        worker
            .write(move |c| {
                counter.fetch_add(1, Ordering::SeqCst);
                c.execute(
                    "INSERT INTO organizations (id, name) VALUES (?1, 'Counted')",
                    [COUNTED_ORG.0.as_bytes()],
                )?;
                Ok(())
            })
            .await
    });
    let s = f.store.clone();
    let ann = tokio::spawn(async move {
        s.add_members(&add("ann@example.com", 1, &[web(A), web(B)], T0))
            .await
    });
    let s = f.store.clone();
    let dee = tokio::spawn(async move {
        s.add_members(&add("dee@example.com", 4, &[web(A), web(X)], T0))
            .await
    });
    let s = f.store.clone();
    let sent = tokio::spawn(async move {
        s.record_delivery(message, DeliveryUpdate::Sent { attempts: 1 }, T0)
            .await
    });
    let s = f.store.clone();
    let eve = tokio::spawn(async move {
        s.add_members(&add("eve@example.com", 5, &[web(X)], T0))
            .await
    });
    let s = f.store.clone();
    let bo = tokio::spawn(async move {
        s.create_invitations(&invite("bo@example.com", 2, &[web(A)], T0))
            .await
    });
    let_queue().await;
    release.send(()).unwrap();
    held.await.unwrap();

    // The writes that lost the transaction got an error and stored nothing...
    assert!(dee.await.unwrap().is_err());
    assert!(eve.await.unwrap().is_err());
    // ... and every other write of the group was kept, as if it had run alone.
    counted.await.unwrap().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let ann = ann.await.unwrap().unwrap();
    assert_eq!(ok(&ann.targets), vec![AddFact::Added, AddFact::Added]);
    assert!(ann.user.is_some_and(|u| u.created));
    sent.await.unwrap().unwrap();
    let bo = bo.await.unwrap().unwrap();
    assert_eq!(ok(&bo.targets), vec![InviteFact::Invited]);

    let snap = f.store.snapshot().await.unwrap();
    assert_eq!(emails(&snap), vec!["ann@example.com"]);
    assert_eq!(snap.memberships.len(), 2);
    let mut invited: Vec<&str> = snap.invitations.iter().map(|i| i.email.as_str()).collect();
    invited.sort_unstable();
    assert_eq!(invited, vec!["bo@example.com", "mo@example.com"]);
    assert_eq!(organization_count(&f.path), 3, "the counted row, once");
    assert_eq!(
        delivery_state(&f.store, message).await,
        (MessageStatus::Sent, false)
    );
}
