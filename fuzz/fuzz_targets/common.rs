//! Shared by the targets: one SQLite store (in memory) on one runtime for the whole run.

use invites_core::{Directory, Email, ReadStore, User, UserId};
use invites_sqlite::SqliteStore;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Sqlite {
    runtime: tokio::runtime::Runtime,
    store: SqliteStore,
}

fn sqlite() -> &'static Sqlite {
    static STORE: OnceLock<Sqlite> = OnceLock::new();
    STORE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let store = runtime
            .block_on(SqliteStore::open_in_memory())
            .expect("an in-memory SQLite store");
        Sqlite { runtime, store }
    })
}

/// Asserts what every accepted `Email` must satisfy: it parses again to itself, stays within
/// its limits, and survives a trip through the SQLite backend (stored as a user, found by the
/// address, read back equal).
pub(crate) fn check_email(e: &Email) {
    assert_eq!(Email::parse(e.as_str()).as_ref(), Ok(e), "not idempotent");
    assert!(e.as_str().len() <= Email::MAX_LEN);
    assert!(e.local_part().len() <= Email::MAX_LOCAL_LEN);
    assert!(e.domain().is_ascii() && e.domain().contains('.'));

    static NEXT: AtomicU64 = AtomicU64::new(1);
    let s = sqlite();
    let id = UserId(uuid::Uuid::from_u64_pair(0xf022, NEXT.fetch_add(1, Ordering::Relaxed)));
    let user = User {
        id,
        email: e.clone(),
        email_verified: false,
        first_name: None,
        last_name: None,
    };
    let (created, found, by_id) = s.runtime.block_on(async {
        let created = s.store.create_user(&user).await.expect("create_user");
        let found = s.store.find_user(e).await.expect("find_user");
        let by_id = s.store.get_user(created).await.expect("get_user");
        (created, found, by_id)
    });
    let found = found.expect("the user is found by its address");
    assert_eq!(found.id, created);
    assert_eq!(&found.email, e, "the address read back differs");
    assert_eq!(by_id.as_ref(), Some(&found));
}
