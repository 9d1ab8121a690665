//! The adapter's own tests, for what only SQLite has: migrations, pragmas, checkpoints, the
//! connection thread and its group commit, database-enforced uniqueness across connections
//! and processes, busy handling. The port's contract (flows, per-target faults, commit
//! failure, claims, concurrency) is checked by the store suite of `invites-testkit`
//! (`tests/store_suite.rs`), the service's by the conformance suite.

use crate::{SqliteOptions, SqliteStore, Synchronous};
use invites_core::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;
use uuid::Uuid;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const DAY: i64 = 86_400_000;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0100));
const OTHER_ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0200));
const A: WebsiteId = WebsiteId(Uuid::from_u128(0x0a));
const B: WebsiteId = WebsiteId(Uuid::from_u128(0x0b));
const X: WebsiteId = WebsiteId(Uuid::from_u128(0x0f));
const FOREIGN: WebsiteId = WebsiteId(Uuid::from_u128(0x0e));
const G: GroupId = GroupId(Uuid::from_u128(0x0c));

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn name(s: &str) -> Option<PersonName> {
    PersonName::parse(s).unwrap()
}

fn web(w: WebsiteId) -> TargetId {
    TargetId::Website(w)
}

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    store: SqliteStore,
}

async fn fixture() -> Fixture {
    fixture_with(SqliteOptions::default()).await
}

async fn fixture_with(options: SqliteOptions) -> Fixture {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("invites.db");
    let store = SqliteStore::open_with(&path, options).await.unwrap();
    seed(&store).await;
    Fixture {
        _dir: dir,
        path,
        store,
    }
}

async fn seed(store: &SqliteStore) {
    store.create_organization(ORG, "Acme").await.unwrap();
    store.create_organization(OTHER_ORG, "Other").await.unwrap();
    for (w, n, org) in [
        (A, "Alpha", ORG),
        (B, "Beta", ORG),
        (X, "Xray", ORG),
        (FOREIGN, "Foreign", OTHER_ORG),
    ] {
        let site = Website {
            id: w,
            organization: org,
            name: n.into(),
            url: format!("https://{n}.example"),
        };
        store.create_website(&site).await.unwrap();
    }
    store
        .create_group(&Group {
            id: G,
            organization: ORG,
            name: "Gamma".into(),
        })
        .await
        .unwrap();
    store.add_website_to_group(G, A).await.unwrap();
}

/// A second, plain connection to the same file (as another process would have).
fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

fn add(email_: &str, user: u128, targets: &[TargetId], now: Timestamp) -> AddMembers {
    AddMembers {
        organization: ORG,
        email: email(email_),
        new_user: NewUser {
            id: UserId(id(user)),
            first_name: name("Ann"),
            last_name: name("Lee"),
        },
        role: Role::Admin,
        targets: targets.to_vec(),
        now,
        actor: None,
    }
}

/// An email-mode command; ids derive from `seed` so every call can be distinct.
fn invite(email_: &str, seed: u128, targets: &[TargetId], now: Timestamp) -> CreateInvitations {
    CreateInvitations {
        organization: ORG,
        email: email(email_),
        role: Role::Viewer,
        first_name: name("Bo"),
        last_name: None,
        targets: targets
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, InvitationId(id(seed * 1000 + i as u128))))
            .collect(),
        batch: NewBatch {
            id: BatchId(id(seed)),
            token_hash: token(seed),
            message_id: MessageId(id(seed + 500_000)),
            accept_url: format!("https://app.example/accept/{seed}"),
            message_due_at: now.plus(Duration::from_secs(60)),
        },
        expires_at: Timestamp::from_millis(now.as_millis() + 7 * DAY),
        now,
        actor: None,
    }
}

fn token(seed: u128) -> TokenHash {
    AcceptToken::from_user(&format!("token-{seed}")).hash()
}

fn ok<F: Copy>(slots: &[TargetSlot<F>]) -> Vec<F> {
    slots
        .iter()
        .map(|s| *s.as_ref().expect("slot is Ok"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Migrations and pragmas

#[tokio::test]
async fn migrations_run_on_a_fresh_file_and_are_kept_on_reopen() {
    let f = fixture().await;
    let version: i64 = raw(&f.path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SqliteStore::SCHEMA_VERSION);
    assert_eq!(version, crate::schema::MIGRATIONS.len() as i64);
    let out = f
        .store
        .add_members(&add("ann@example.com", 1, &[web(A)], T0))
        .await
        .unwrap();
    assert_eq!(ok(&out.targets), vec![AddFact::Added]);
    drop(f.store);

    // Reopening migrates nothing and keeps the data.
    let store = SqliteStore::open(&f.path).await.unwrap();
    let version: i64 = raw(&f.path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SqliteStore::SCHEMA_VERSION);
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.users.len(), 1);
    assert_eq!(snap.memberships.len(), 1);
    // Seeding again is a no-op (idempotent directory).
    seed(&store).await;
}

/// Migration 2 rewrites the stored tag `expired` (an invitation replaced after it expired) to
/// `replaced`, keeps every row, index and the one-pending rule, and the store reads the rows.
#[tokio::test]
async fn migration_2_stores_replaced_instead_of_expired() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(crate::schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let org = ORG.0.as_bytes().to_vec();
        conn.execute(
            "INSERT INTO organizations (id, name) VALUES (?1, 'Acme')",
            [&org],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO websites (id, organization_id, name, url) VALUES (?1, ?2, 'A', 'https://a.example')",
            [A.0.as_bytes().to_vec(), org.clone()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO batches (id, organization_id, email, token_hash, created_at, last_sent_at) \
             VALUES (?1, ?2, 'ann@example.com', zeroblob(32), 0, 0)",
            [id(0xba).as_bytes().to_vec(), org.clone()],
        )
        .unwrap();
        for (n, status) in [(1u128, "expired"), (2, "pending"), (3, "accepted")] {
            conn.execute(
                "INSERT INTO invitations (id, batch_id, organization_id, target_kind, target_id, email, role, \
                                          first_name, last_name, status, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, 'website', ?4, 'ann@example.com', 'viewer', NULL, NULL, ?5, ?6, 10)",
                rusqlite::params![
                    id(n).as_bytes().to_vec(),
                    id(0xba).as_bytes().to_vec(),
                    org,
                    A.0.as_bytes().to_vec(),
                    status,
                    i64::try_from(n).unwrap()
                ],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let snap = store.snapshot().await.unwrap();
    let statuses: Vec<StoredStatus> = snap.invitations.iter().map(|i| i.status).collect();
    assert_eq!(
        statuses,
        vec![
            StoredStatus::Replaced,
            StoredStatus::Pending,
            StoredStatus::Accepted
        ]
    );
    let conn = raw(&path);
    let tags: Vec<String> = conn
        .prepare("SELECT status FROM invitations ORDER BY created_at")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tags, ["replaced", "pending", "accepted"]);
    // The one-pending index came back with the table.
    let second_pending = conn.execute(
        "UPDATE invitations SET status = 'pending' WHERE created_at = 1",
        [],
    );
    assert!(
        second_pending.is_err(),
        "a second pending row must be refused"
    );
    // And 'expired' is no longer a storable tag.
    assert!(
        conn.execute(
            "UPDATE invitations SET status = 'expired' WHERE created_at = 3",
            []
        )
        .is_err()
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused_naming_both_versions() {
    let f = fixture().await;
    drop(f.store);
    let newer = SqliteStore::SCHEMA_VERSION + 7;
    raw(&f.path)
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let err = SqliteStore::open(&f.path).await.unwrap_err();
    match &err {
        StoreError::Incompatible { reason } => {
            assert!(reason.contains(&newer.to_string()), "{reason}");
            assert!(
                reason.contains(&SqliteStore::SCHEMA_VERSION.to_string()),
                "{reason}"
            );
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
    assert!(!err.is_retryable());

    // A negative version is no version of ours either.
    raw(&f.path)
        .pragma_update(None, "user_version", -1)
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&f.path).await,
        Err(StoreError::Incompatible { .. })
    ));
}

#[tokio::test]
async fn pragmas_are_set_on_the_store_connection() {
    let options = SqliteOptions::default()
        .with_synchronous(Synchronous::Full)
        .with_busy_timeout(Duration::from_millis(1234));
    let f = fixture_with(options).await;
    let (journal, synchronous, busy, fk): (String, i64, i64, i64) = f
        .store
        .run(|c| {
            let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0));
            let text = |v| match v {
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            };
            let int = |v| match v {
                rusqlite::types::Value::Integer(i) => i,
                _ => -1,
            };
            Ok((
                text(q("PRAGMA journal_mode")?),
                int(q("PRAGMA synchronous")?),
                int(q("PRAGMA busy_timeout")?),
                int(q("PRAGMA foreign_keys")?),
            ))
        })
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(synchronous, 2, "FULL");
    assert_eq!(busy, 1234);
    assert_eq!(fk, 1);

    // The default is NORMAL with a 5 s timeout.
    let g = fixture().await;
    let (synchronous, busy): (i64, i64) = g
        .store
        .run(|c| {
            Ok((
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((synchronous, busy), (1, 5000));

    // Memory settings, defaults then as set; SQLite's own automatic checkpoint is replaced
    // by the store's WAL hook (see `checkpoint`).
    let read = |store: SqliteStore| async move {
        store
            .run(|c| {
                let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
                Ok((
                    q("PRAGMA cache_size")?,
                    q("PRAGMA wal_autocheckpoint")?,
                    q("PRAGMA temp_store")?,
                ))
            })
            .await
            .unwrap()
    };
    assert_eq!(read(g.store.clone()).await, (-16 * 1024, 0, 2));
    let h = fixture_with(
        SqliteOptions::default()
            .with_cache_size_kib(512)
            .with_checkpoint_after_pages(100),
    )
    .await;
    assert_eq!(read(h.store.clone()).await, (-512, 0, 2));
}

/// The number of frames in the write-ahead log now (not the file size: the file is reused
/// from its start when the log starts over, never shrunk), read from the WAL-index header in
/// the `-shm` file (`mxFrame`, a native-endian u32 at byte 16), so that reading it changes
/// nothing.
fn wal_frames(path: &Path) -> u32 {
    let shm = std::fs::read(format!("{}-shm", path.display())).unwrap();
    u32::from_ne_bytes(shm[16..20].try_into().unwrap())
}

#[tokio::test]
async fn checkpoints_run_and_the_write_ahead_log_starts_over() {
    let f = fixture_with(SqliteOptions::default().with_checkpoint_after_pages(20)).await;
    let mut n = 0u128;
    let mut add_one = async || {
        n += 1;
        let out = f
            .store
            .add_members(&add(
                &format!("u{n}@example.com"),
                1000 + n,
                &[web(A), web(B)],
                T0,
            ))
            .await
            .unwrap();
        assert_eq!(ok(&out.targets), vec![AddFact::Added, AddFact::Added]);
    };
    for _ in 0..200 {
        add_one().await;
    }
    assert!(wal_frames(&f.path) > 0);
    // 200 commits wrote well over 1,000 frames. Once a background pass is over, the commit
    // that finds the log at four times the setting (80) or more copies the rest back itself,
    // and the next write starts the log over. How long a background pass takes depends on
    // the machine, so give it time.
    let mut short = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        add_one().await;
        add_one().await;
        if wal_frames(&f.path) < 80 {
            short = true;
            break;
        }
    }
    assert!(short, "the log never started over");
    // Everything is there, from the database file and the log alike.
    let expected = usize::try_from(2 * n).unwrap();
    assert_eq!(
        f.store.snapshot().await.unwrap().memberships.len(),
        expected
    );
    let rows: i64 = raw(&f.path)
        .query_row("SELECT count(*) FROM website_members", [], |r| r.get(0))
        .unwrap();
    assert_eq!(usize::try_from(rows).unwrap(), expected);
}

#[tokio::test]
async fn in_memory_store_works_and_clones_share_it() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    seed(&store).await;
    let clone = store.clone();
    clone
        .add_members(&add("ann@example.com", 1, &[web(A)], T0))
        .await
        .unwrap();
    assert_eq!(store.snapshot().await.unwrap().memberships.len(), 1);
    assert!(format!("{store:?}").contains("SqliteStore"));
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>(_: &T) {}
    assert_traits(&store);
    let _as_dyn: std::sync::Arc<dyn MembershipStore> = std::sync::Arc::new(store);
}

// ---------------------------------------------------------------------------------------------
// Fault injection by triggers (the fault tests themselves are in the store suite)

fn install_fault(path: &Path, website: WebsiteId) {
    let conn = raw(path);
    conn.execute_batch(&format!(
        "CREATE TRIGGER inject_fault BEFORE INSERT ON website_members \
         WHEN NEW.website_id = X'{}' BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        website.0.simple()
    ))
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Group commit: queued writes share one transaction, each in its own savepoint (isolation of
// a failing write: `group_commit`)

mod group_commit;

/// Makes the outbox refuse the message to `recipient` (so an email-mode batch fails after its
/// invitations were written).
fn install_outbox_fault(path: &Path, recipient: &str) {
    raw(path)
        .execute_batch(&format!(
            "CREATE TRIGGER outbox_fault BEFORE INSERT ON outbox \
             WHEN NEW.recipient = '{recipient}' BEGIN SELECT RAISE(ABORT, 'injected'); END;"
        ))
        .unwrap();
}

/// Holds the connection thread until the returned sender is used, so that writes sent in the
/// meantime are queued and then taken into one transaction.
async fn hold(store: &SqliteStore) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let worker = store.worker.clone();
    let held = tokio::spawn(async move {
        worker
            .call(move |_| {
                let _ = gate.recv();
                Ok(())
            })
            .await
            .unwrap();
    });
    tokio::task::yield_now().await;
    (release, held)
}

async fn let_queue() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn queued_writes_share_a_transaction_and_each_keeps_its_own_outcome() {
    let f = fixture().await;
    install_fault(&f.path, X);
    install_outbox_fault(&f.path, "cy@example.com");
    // Every write below is queued before the connection thread runs any: it takes them all
    // into one transaction.
    let (release, held) = hold(&f.store).await;
    let s = f.store.clone();
    let ann = tokio::spawn(async move {
        s.add_members(&add("ann@example.com", 1, &[web(A), web(B)], T0))
            .await
    });
    let s = f.store.clone();
    let bo = tokio::spawn(async move {
        s.create_invitations(&invite("bo@example.com", 2, &[web(A), web(B)], T0))
            .await
    });
    // Every unit fails (the outbox refuses its message), so nothing of it is stored.
    let s = f.store.clone();
    let cy = tokio::spawn(async move {
        s.create_invitations(&invite("cy@example.com", 3, &[web(A), web(B)], T0))
            .await
    });
    // Fails without writing (no such message).
    let s = f.store.clone();
    let unknown = tokio::spawn(async move {
        s.record_delivery(
            MessageId(id(0xbad)),
            DeliveryUpdate::Sent { attempts: 1 },
            T0,
        )
        .await
    });
    // One target fails (the trigger), the request itself succeeds.
    let s = f.store.clone();
    let dee = tokio::spawn(async move {
        s.add_members(&add("dee@example.com", 4, &[web(X)], T0))
            .await
    });
    let_queue().await;
    release.send(()).unwrap();
    held.await.unwrap();

    let ann = ann.await.unwrap().unwrap();
    assert_eq!(ok(&ann.targets), vec![AddFact::Added, AddFact::Added]);
    let bo = bo.await.unwrap().unwrap();
    assert_eq!(
        ok(&bo.targets),
        vec![InviteFact::Invited, InviteFact::Invited]
    );
    let cy = cy.await.unwrap().unwrap();
    assert!(cy.targets.iter().all(Result::is_err), "{cy:?}");
    assert!(unknown.await.unwrap().is_err());
    let dee = dee.await.unwrap().unwrap();
    assert!(dee.targets[0].is_err());
    assert_eq!(dee.user, None);

    let snap = f.store.snapshot().await.unwrap();
    let emails: Vec<&str> = snap.users.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(emails, vec!["ann@example.com"]);
    assert_eq!(snap.memberships.len(), 2);
    assert!(
        snap.invitations
            .iter()
            .all(|i| i.email.as_str() == "bo@example.com")
    );
    assert_eq!(snap.invitations.len(), 2);
    assert_eq!(snap.batches.len(), 1);
    assert_eq!(snap.outbox.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Uniqueness enforced by the database

#[tokio::test]
async fn the_database_refuses_a_second_pending_invitation_and_a_duplicate_user() {
    let f = fixture().await;
    let out = f
        .store
        .create_invitations(&invite("bo@example.com", 7, &[web(A)], T0))
        .await
        .unwrap();
    assert_eq!(ok(&out.targets), vec![InviteFact::Invited]);
    let conn = raw(&f.path);
    let dup = conn.execute(
        "INSERT INTO invitations (id, batch_id, organization_id, target_kind, target_id, email, role, \
                                  status, created_at, expires_at) \
         SELECT ?1, batch_id, organization_id, target_kind, target_id, email, role, 'pending', created_at, \
                expires_at FROM invitations",
        [id(99).as_bytes()],
    );
    let err = dup.unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation),
        "{err}"
    );
    // A non-pending duplicate is allowed (history).
    conn.execute(
        "INSERT INTO invitations (id, batch_id, organization_id, target_kind, target_id, email, role, \
                                  status, created_at, expires_at) \
         SELECT ?1, batch_id, organization_id, target_kind, target_id, email, role, 'revoked', created_at, \
                expires_at FROM invitations",
        [id(99).as_bytes()],
    )
    .unwrap();

    f.store
        .add_members(&add("ann@example.com", 1, &[web(A)], T0))
        .await
        .unwrap();
    let err = conn
        .execute(
            "INSERT INTO users (id, email, email_verified) VALUES (?1, 'ann@example.com', 0)",
            [id(2).as_bytes()],
        )
        .unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    );
    let err = conn
        .execute(
            "INSERT INTO website_members (website_id, user_id, role, created_at) VALUES (?1, ?2, 'viewer', 0)",
            [A.0.as_bytes(), id(1).as_bytes()],
        )
        .unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    );
}

#[tokio::test]
async fn uniqueness_holds_between_two_connections_on_one_file() {
    let f = fixture().await;
    let other = SqliteStore::open(&f.path).await.unwrap();
    for round in 0..20u128 {
        let address = format!("user{round}@example.com");
        let one = invite(&address, 10 + 2 * round, &[web(A), web(B)], T0);
        let two = invite(&address, 11 + 2 * round, &[web(B), web(A)], T0);
        let (r1, r2) = tokio::join!(
            f.store.create_invitations(&one),
            other.create_invitations(&two)
        );
        let facts: Vec<InviteFact> = ok(&r1.unwrap().targets)
            .into_iter()
            .chain(ok(&r2.unwrap().targets))
            .collect();
        let invited = facts.iter().filter(|f| **f == InviteFact::Invited).count();
        let already = facts
            .iter()
            .filter(|f| matches!(f, InviteFact::AlreadyInvited { .. }))
            .count();
        assert_eq!((invited, already), (2, 2), "round {round}: {facts:?}");

        let direct = format!("direct{round}@example.com");
        let (one, two) = (
            add(&direct, 1000 + 2 * round, &[web(A)], T0),
            add(&direct, 1001 + 2 * round, &[web(A)], T0),
        );
        let (r1, r2) = tokio::join!(f.store.add_members(&one), other.add_members(&two));
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        let created = [r1.user.unwrap(), r2.user.unwrap()];
        assert_eq!(created.iter().filter(|u| u.created).count(), 1);
        assert_eq!(created[0].id, created[1].id);
        let mut facts = vec![
            *r1.targets[0].as_ref().unwrap(),
            *r2.targets[0].as_ref().unwrap(),
        ];
        facts.sort_by_key(|f| format!("{f:?}"));
        assert_eq!(
            facts,
            vec![AddFact::Added, AddFact::AlreadyMember { role: Role::Admin }]
        );
    }
    let snap = other.snapshot().await.unwrap();
    assert_eq!(snap.users.len(), 20);
    assert_eq!(snap.invitations.len(), 40);
    assert_eq!(snap.outbox.len(), 20, "one message per batch that invited");
}

#[tokio::test]
async fn a_held_write_lock_gives_a_retryable_error_after_the_busy_timeout() {
    let f =
        fixture_with(SqliteOptions::default().with_busy_timeout(Duration::from_millis(50))).await;
    let holder = raw(&f.path);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = f
        .store
        .add_members(&add("ann@example.com", 1, &[web(A)], T0))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(matches!(err, StoreError::Unavailable { .. }));
    let err = f
        .store
        .create_organization(OrganizationId(id(9)), "Nine")
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    holder.execute_batch("COMMIT").unwrap();
    // Nothing of the failed call was stored; the store works again.
    assert!(f.store.snapshot().await.unwrap().users.is_empty());
    f.store
        .add_members(&add("ann@example.com", 1, &[web(A)], T0))
        .await
        .unwrap();
}

/// The environment variable that turns [`child_process_writer`] on (set only by
/// [`uniqueness_holds_between_two_processes_on_one_file`]).
const CHILD_DB: &str = "INVITES_SQLITE_TEST_CHILD_DB";
const PROCESS_ROUNDS: u128 = 150;

/// Invites the same addresses to the same targets as the parent, with the parent's ids offset.
async fn compete(store: &SqliteStore, offset: u128) {
    for round in 0..PROCESS_ROUNDS {
        let address = format!("p{round}@example.com");
        let out = store
            .create_invitations(&invite(&address, offset + round, &[web(A), web(B)], T0))
            .await
            .unwrap();
        for slot in &out.targets {
            assert!(
                matches!(
                    slot,
                    Ok(InviteFact::Invited | InviteFact::AlreadyInvited { .. })
                ),
                "round {round}: {slot:?}"
            );
        }
        let direct = format!("d{round}@example.com");
        let out = store
            .add_members(&add(&direct, offset + 10_000 + round, &[web(A)], T0))
            .await
            .unwrap();
        assert!(matches!(
            out.targets[0],
            Ok(AddFact::Added | AddFact::AlreadyMember { .. })
        ));
    }
}

/// Not a test on its own: the second process of the two-process test.
#[tokio::test]
#[ignore = "run as a child process by uniqueness_holds_between_two_processes_on_one_file"]
async fn child_process_writer() {
    #[allow(clippy::disallowed_methods)] // test-only: the parent passes the file's path
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let store = SqliteStore::open(PathBuf::from(path)).await.unwrap();
    compete(&store, 2_000_000).await;
    // Proof for the parent that this process ran to the end.
    store
        .create_organization(CHILD_MARKER, "child was here")
        .await
        .unwrap();
}

const CHILD_MARKER: OrganizationId = OrganizationId(Uuid::from_u128(0xC41D));

#[tokio::test]
async fn uniqueness_holds_between_two_processes_on_one_file() {
    let f = fixture().await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "tests::child_process_writer",
            "--exact",
            "--ignored",
            "--quiet",
        ])
        .env(CHILD_DB, &f.path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    compete(&f.store, 1_000_000).await;
    assert!(child.wait().unwrap().success(), "the child process failed");
    let marker: i64 = raw(&f.path)
        .query_row(
            "SELECT count(*) FROM organizations WHERE id = ?1",
            [CHILD_MARKER.0.as_bytes()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(marker, 1, "the child process ran");

    let snap = f.store.snapshot().await.unwrap();
    let rounds = PROCESS_ROUNDS as usize;
    assert_eq!(
        snap.invitations.len(),
        2 * rounds,
        "one pending invitation per (target, email)"
    );
    assert_eq!(snap.users.len(), rounds, "one user per email");
    assert_eq!(
        snap.memberships.len(),
        rounds,
        "one membership per (target, user)"
    );
    // Every batch that invited something has exactly one message.
    assert_eq!(snap.outbox.len(), snap.batches.len());
}

// ---------------------------------------------------------------------------------------------
// The access check reads on the caller's thread (`readers`)

/// A check made after a write returned sees it, and a check does not wait for the connection
/// thread: it answers while that thread is held inside a write transaction.
#[tokio::test]
async fn the_access_check_sees_every_returned_write_and_does_not_wait_for_the_writer() {
    let f = fixture().await;
    let ann = add("ann@example.com", 1, &[web(A)], T0);
    let out = f.store.add_members(&ann).await.unwrap();
    let user = out.user.unwrap().id;
    let facts = f.store.access_paths(user, A).await.unwrap().unwrap();
    assert_eq!(facts.organization, ORG);
    assert_eq!(
        facts.paths.len(),
        1,
        "the direct membership just added: {facts:?}"
    );
    assert!(
        f.store
            .access_paths(user, B)
            .await
            .unwrap()
            .unwrap()
            .paths
            .is_empty()
    );

    // The connection thread holds the write lock until released.
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let worker = f.store.worker.clone();
    let (locked_tx, locked) = tokio::sync::oneshot::channel();
    let held = tokio::spawn(async move {
        worker
            .call(move |c| {
                c.execute_batch("BEGIN IMMEDIATE")?;
                let _ = locked_tx.send(());
                let _ = gate.recv();
                c.execute_batch("ROLLBACK")?;
                Ok(())
            })
            .await
            .unwrap();
    });
    locked.await.unwrap();
    let during = tokio::time::timeout(Duration::from_secs(2), f.store.access_paths(user, A))
        .await
        .expect("the check waited for the held connection thread")
        .unwrap()
        .unwrap();
    assert_eq!(during.paths, facts.paths);
    release.send(()).unwrap();
    held.await.unwrap();
}

/// The removal's revocation, on a state the port never produces but a host's own writes can:
/// a membership (written straight into the table) beside a live invitation to the same target
/// for the member's email. Removing the membership revokes that invitation, and only it.
#[tokio::test]
async fn removing_a_membership_revokes_the_live_invitation_to_the_same_target() {
    use invites_core::access::{ChangeFact, ChangeMember, MemberChange};
    let f = fixture().await;
    let out = f
        .store
        .add_members(&add("ann@example.com", 1, &[web(B)], T0))
        .await
        .unwrap();
    let ann = out.user.unwrap().id;
    let invited = f
        .store
        .create_invitations(&invite("ann@example.com", 2, &[web(A), web(X)], T0))
        .await
        .unwrap();
    assert_eq!(
        ok(&invited.targets),
        vec![InviteFact::Invited, InviteFact::Invited]
    );
    raw(&f.path)
        .execute(
            "INSERT INTO website_members (website_id, user_id, role, created_at) VALUES (?1, ?2, 'viewer', ?3)",
            rusqlite::params![A.0.as_bytes(), ann.0.as_bytes(), T0.as_millis()],
        )
        .unwrap();

    let fact = f
        .store
        .change_member(&ChangeMember {
            organization: ORG,
            target: web(A),
            user: ann,
            change: MemberChange::Remove,
            now: T0,
            actor: None,
        })
        .await
        .unwrap();
    assert_eq!(
        fact,
        ChangeFact::Removed {
            role: Role::Viewer,
            revoked: 1
        }
    );
    let snap = f.store.snapshot().await.unwrap();
    let status = |target: TargetId| {
        snap.invitations
            .iter()
            .find(|i| i.target == target)
            .map(|i| i.status)
    };
    assert_eq!(status(web(A)), Some(StoredStatus::Revoked));
    assert_eq!(
        status(web(X)),
        Some(StoredStatus::Pending),
        "another target"
    );
    assert!(
        f.store
            .access_paths(ann, A)
            .await
            .unwrap()
            .unwrap()
            .paths
            .is_empty()
    );
}
