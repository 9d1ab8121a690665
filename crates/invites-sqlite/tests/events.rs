//! The event log on a real SQLite file (issue 19), checked from outside the store where it
//! matters: the events of a write are in its transaction (a unit that fails, an event that
//! cannot be stored and a commit that fails each leave none, and take no position), positions
//! are gap-free across connections and survive the purge, an erasure leaves the user's id in
//! no event (raw SQL, inside the stored bytes too), and a group of events this version cannot
//! read is left out of a page. The events of one call are one `event_groups` row.

mod common;

use invites_core::access::ChangeMember;
use invites_core::*;
use invites_sqlite::SqliteStore;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0100));
const OTHER: OrganizationId = OrganizationId(Uuid::from_u128(0x0200));
const A: WebsiteId = WebsiteId(Uuid::from_u128(0x0a));
const B: WebsiteId = WebsiteId(Uuid::from_u128(0x0b));
const C: WebsiteId = WebsiteId(Uuid::from_u128(0x0c));
const FOREIGN: WebsiteId = WebsiteId(Uuid::from_u128(0x0e));
const KEY: ApiKeyId = ApiKeyId(Uuid::from_u128(0x4e));

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + seconds * 1000)
}

fn web(w: WebsiteId) -> TargetId {
    TargetId::Website(w)
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("email")
}

/// A store on a new file with organizations `ORG` (websites A, B, C) and `OTHER` (FOREIGN).
async fn open(prefix: &str) -> (SqliteStore, PathBuf) {
    let path = common::fresh_path(prefix);
    let store = SqliteStore::open(&path).await.expect("open");
    store.create_organization(ORG, "Acme").await.expect("org");
    store
        .create_organization(OTHER, "Other")
        .await
        .expect("org");
    for (id, organization) in [(A, ORG), (B, ORG), (C, ORG), (FOREIGN, OTHER)] {
        let website = Website {
            id,
            organization,
            name: format!("site {}", id.0),
            url: "https://site.example".into(),
        };
        store.create_website(&website).await.expect("website");
    }
    (store, path)
}

fn add(
    address: &str,
    user: u128,
    organization: OrganizationId,
    targets: &[TargetId],
) -> AddMembers {
    AddMembers {
        organization,
        email: email(address),
        new_user: NewUser {
            id: UserId(Uuid::from_u128(user)),
            first_name: PersonName::parse("Pat").expect("name"),
            last_name: None,
        },
        role: Role::Viewer,
        targets: targets.to_vec(),
        now: T0,
        actor: Some(KEY),
    }
}

fn invite(address: &str, seed: u128, targets: &[TargetId], now: Timestamp) -> CreateInvitations {
    CreateInvitations {
        organization: ORG,
        email: email(address),
        role: Role::Admin,
        first_name: None,
        last_name: None,
        targets: targets
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, InvitationId(Uuid::from_u128(seed * 1000 + i as u128))))
            .collect(),
        batch: NewBatch {
            id: BatchId(Uuid::from_u128(seed)),
            token_hash: AcceptToken::from_user(&format!("token-{seed}")).hash(),
            message_id: MessageId(Uuid::from_u128(seed + 500_000)),
            accept_url: format!("https://app.example/accept/{seed}"),
            message_due_at: now,
        },
        expires_at: now.plus(Duration::from_secs(7 * 86_400)),
        now,
        actor: Some(KEY),
    }
}

/// The whole log of `organization`, read with the cursor in pages of 3.
async fn log(store: &SqliteStore, organization: OrganizationId) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.position);
        let page = store
            .read_events(organization, after, 3)
            .await
            .expect("read");
        let full = page.len() == 3;
        events.extend(page);
        if !full {
            return events;
        }
    }
}

fn kinds(events: &[Event]) -> Vec<(u64, EventKind)> {
    events.iter().map(|e| (e.position, e.kind)).collect()
}

/// A second, plain connection to the file (as another process could have).
fn raw(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("raw connection");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    conn
}

fn counter(path: &Path, organization: OrganizationId) -> i64 {
    raw(path)
        .query_row(
            "SELECT event_seq FROM organizations WHERE id = ?1",
            [organization.0.as_bytes()],
            |r| r.get(0),
        )
        .expect("counter")
}

#[tokio::test]
async fn a_unit_that_fails_leaves_none_of_its_events() {
    let (store, path) = open("events-unit").await;
    raw(&path)
        .execute_batch(&format!(
            "CREATE TRIGGER fail_b BEFORE INSERT ON website_members WHEN NEW.website_id = X'{b}' \
             BEGIN SELECT RAISE(ABORT, 'injected'); END;
             CREATE TRIGGER fail_b_i BEFORE INSERT ON invitations WHEN NEW.target_id = X'{b}' \
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
            b = B.0.simple()
        ))
        .expect("trigger");
    let outcome = store
        .add_members(&add("ann@example.com", 1, ORG, &[web(B), web(A), web(C)]))
        .await
        .expect("add");
    assert!(outcome.targets[0].is_err());
    assert!(outcome.targets[1..].iter().all(Result::is_ok));
    let ann = UserId(Uuid::from_u128(1));
    let events = log(&store, ORG).await;
    assert_eq!(
        events,
        [
            NewEvent::user_created(ann),
            NewEvent::member_added(web(A), ann, Role::Viewer),
            NewEvent::member_added(web(C), ann, Role::Viewer),
        ]
        .iter()
        .zip(1..)
        .map(|(e, position)| e.at_position(
            &EventContext {
                organization: ORG,
                actor: Some(KEY),
                at: T0,
            },
            position
        ))
        .collect::<Vec<_>>(),
        "the failed unit (B) wrote no event, and took no position"
    );
    let outcome = store
        .create_invitations(&invite("bo@example.com", 7, &[web(A), web(B), web(C)], T0))
        .await
        .expect("invite");
    assert!(outcome.targets[1].is_err());
    assert_eq!(
        kinds(&log(&store, ORG).await[3..]),
        [
            (4, EventKind::InvitationCreated),
            (5, EventKind::InvitationCreated)
        ]
    );
    assert_eq!(counter(&path, ORG), 5);
}

#[tokio::test]
async fn an_event_that_cannot_be_stored_undoes_its_change() {
    let (store, path) = open("events-undo").await;
    store
        .create_invitations(&invite("bo@example.com", 7, &[web(A)], T0))
        .await
        .expect("invite");
    let invitation = InvitationId(Uuid::from_u128(7000));
    let message = MessageId(Uuid::from_u128(500_007));
    raw(&path)
        .execute_batch(
            "CREATE TRIGGER no_events BEFORE INSERT ON event_groups \
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .expect("trigger");
    let revoke = RevokeInvitation {
        organization: ORG,
        id: invitation,
        now: at(1),
        actor: Some(KEY),
    };
    // Its own transaction (lifecycle) and a shared one (group commit): both undone whole.
    assert!(store.revoke_invitation(&revoke).await.is_err());
    let sent = DeliveryUpdate::Sent { attempts: 1 };
    assert!(
        store
            .record_delivery(message, sent.clone(), at(1))
            .await
            .is_err()
    );
    let stored = store
        .get_invitation(ORG, invitation)
        .await
        .expect("read")
        .expect("invitation");
    assert_eq!(
        stored.status,
        StoredStatus::Pending,
        "the revocation was undone"
    );
    let messages = store
        .batch_messages(BatchId(Uuid::from_u128(7)))
        .await
        .expect("messages");
    assert_eq!(
        messages[0].status,
        MessageStatus::Queued,
        "the record was undone"
    );
    assert_eq!(
        kinds(&log(&store, ORG).await),
        [(1, EventKind::InvitationCreated)]
    );
    assert_eq!(counter(&path, ORG), 1, "no position was taken");

    raw(&path)
        .execute_batch("DROP TRIGGER no_events")
        .expect("drop");
    assert_eq!(
        store.revoke_invitation(&revoke).await.expect("revoke"),
        RevokeFact::Revoked
    );
    store
        .record_delivery(message, sent, at(2))
        .await
        .expect("record");
    let events = log(&store, ORG).await;
    assert_eq!(
        kinds(&events),
        [
            (1, EventKind::InvitationCreated),
            (2, EventKind::InvitationRevoked),
            (3, EventKind::EmailSent)
        ]
    );
    assert_eq!(events[1].actor, Some(KEY));
    assert_eq!(events[1].at, at(1));
    assert_eq!((events[2].actor, events[2].at), (None, at(2)));
    assert_eq!(events[2].message, Some(message));
}

#[tokio::test]
async fn a_commit_that_fails_leaves_no_event_and_takes_no_position() {
    let (store, path) = open("events-commit").await;
    // A row with a dangling, deferred foreign key: every statement succeeds and SQLite
    // refuses the COMMIT.
    raw(&path)
        .execute_batch(&format!(
            "CREATE TABLE fault_commit (organization_id BLOB REFERENCES organizations (id) \
                 DEFERRABLE INITIALLY DEFERRED);
             CREATE TRIGGER fail_commit AFTER INSERT ON website_members \
             WHEN NEW.website_id = X'{}' \
             BEGIN INSERT INTO fault_commit (organization_id) VALUES (X'00'); END;",
            C.0.simple()
        ))
        .expect("fault");
    assert!(
        store
            .add_members(&add("ann@example.com", 1, ORG, &[web(A), web(C)]))
            .await
            .is_err()
    );
    assert!(log(&store, ORG).await.is_empty());
    assert_eq!(counter(&path, ORG), 0);
    raw(&path)
        .execute_batch("DROP TRIGGER fail_commit")
        .expect("drop");
    store
        .add_members(&add("ann@example.com", 1, ORG, &[web(A), web(C)]))
        .await
        .expect("add");
    assert_eq!(
        kinds(&log(&store, ORG).await),
        [
            (1, EventKind::UserCreated),
            (2, EventKind::MemberAdded),
            (3, EventKind::MemberAdded)
        ]
    );
}

#[tokio::test]
async fn a_call_that_changes_nothing_writes_no_event() {
    let (store, path) = open("events-nothing").await;
    let cmd = add("ann@example.com", 1, ORG, &[web(A)]);
    store.add_members(&cmd).await.expect("add");
    assert_eq!(counter(&path, ORG), 2);
    let ann = UserId(Uuid::from_u128(1));
    store.add_members(&cmd).await.expect("already a member");
    store
        .add_org_member(ORG, ann, OrgRole::Viewer)
        .await
        .expect("seed: no event");
    assert!(
        store
            .set_org_role(ORG, ann, OrgRole::Viewer, at(1))
            .await
            .expect("same role")
    );
    assert!(
        !store
            .remove_org_member(OTHER, ann, at(1))
            .await
            .expect("not a member")
    );
    store
        .delete_website(WebsiteId(Uuid::from_u128(0xbad)), at(1))
        .await
        .expect("none");
    let unchanged = ChangeMember {
        organization: ORG,
        target: web(A),
        user: ann,
        change: access::MemberChange::SetRole(Role::Viewer),
        now: at(1),
        actor: Some(KEY),
    };
    store.change_member(&unchanged).await.expect("unchanged");
    assert_eq!(counter(&path, ORG), 2);
    assert_eq!(counter(&path, OTHER), 0);
    // And the ones that change something write theirs.
    assert!(
        store
            .set_org_role(ORG, ann, OrgRole::Admin, at(2))
            .await
            .expect("role")
    );
    assert!(
        store
            .remove_org_member(ORG, ann, at(3))
            .await
            .expect("remove")
    );
    store.delete_website(C, at(4)).await.expect("delete");
    let events = log(&store, ORG).await;
    assert_eq!(
        kinds(&events[2..]),
        [
            (3, EventKind::OrgMemberRoleChanged),
            (4, EventKind::OrgMemberRemoved),
            (5, EventKind::WebsiteDeleted)
        ]
    );
    assert_eq!(events[2].role.as_deref(), Some("admin"));
    assert_eq!(events[4].target, Some(web(C)));
    assert!(events[2..].iter().all(|e| e.actor.is_none()));
}

#[tokio::test]
async fn positions_are_gap_free_across_connections_and_survive_the_purge() {
    let (first, path) = open("events-positions").await;
    let second = SqliteStore::open(&path).await.expect("second store");
    // Concurrent writers on two connections (each with its group commit), in two
    // organizations.
    let mut tasks = Vec::new();
    for i in 0..24u128 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let (organization, target) = if i % 3 == 0 {
            (OTHER, FOREIGN)
        } else {
            (ORG, A)
        };
        let mut cmd = add(
            &format!("u{i}@example.com"),
            100 + i,
            organization,
            &[web(target)],
        );
        cmd.now = at(i as i64);
        tasks.push(tokio::spawn(async move { store.add_members(&cmd).await }));
    }
    for task in tasks {
        task.await.expect("task").expect("add");
    }
    for (organization, calls) in [(ORG, 16), (OTHER, 8)] {
        let events = log(&first, organization).await;
        assert_eq!(events, log(&second, organization).await);
        assert_eq!(
            events.iter().map(|e| e.position).collect::<Vec<_>>(),
            (1..=2 * calls).collect::<Vec<u64>>(),
            "gap-free, each call's two events next to each other"
        );
        for pair in events.chunks(2) {
            assert_eq!(pair[0].kind, EventKind::UserCreated);
            assert_eq!(pair[1].kind, EventKind::MemberAdded);
            assert_eq!(pair[0].user, pair[1].user);
            assert_eq!(pair[0].at, pair[1].at);
        }
    }

    // The purge: oldest first, whole calls (two events each here) until at least `limit`
    // went, positions kept and never given out again.
    let old = log(&first, ORG).await;
    let cutoff = at(12);
    let mut older: Vec<(Timestamp, OrganizationId, u64)> = Vec::new();
    for organization in [ORG, OTHER] {
        older.extend(
            log(&first, organization)
                .await
                .iter()
                .filter(|e| e.at < cutoff)
                .map(|e| (e.at, organization, e.position)),
        );
    }
    older.sort();
    assert_eq!(first.purge_events(cutoff, 0).await.expect("none"), 0);
    assert_eq!(
        first.purge_events(cutoff, 5).await.expect("purge"),
        6,
        "three calls: the third takes it past the limit"
    );
    let gone = &older[..6];
    for organization in [ORG, OTHER] {
        for e in log(&first, organization).await {
            assert!(
                !gone.contains(&(e.at, organization, e.position)),
                "the oldest went first"
            );
        }
    }
    let rest = second.purge_events(cutoff, 1000).await.expect("purge");
    assert_eq!(rest as usize, older.len() - 6);
    let kept = log(&first, ORG).await;
    assert_eq!(
        kept,
        old.iter()
            .filter(|e| e.at >= cutoff)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(
        kept[0].position > 1,
        "a reader from the start sees the gap of the purge"
    );
    let last = old.last().expect("events").position;
    first
        .add_members(&add("late@example.com", 999, ORG, &[web(B)]))
        .await
        .expect("add");
    let after = first.read_events(ORG, last, 10).await.expect("read");
    assert_eq!(
        after.iter().map(|e| e.position).collect::<Vec<_>>(),
        [last + 1, last + 2],
        "the counter survived the purge"
    );
}

#[tokio::test]
async fn an_erasure_leaves_the_user_id_in_no_event() {
    let (store, path) = open("events-erasure").await;
    let erin = UserId(Uuid::from_u128(1));
    store
        .add_members(&add("erin@example.com", 1, ORG, &[web(A)]))
        .await
        .expect("add");
    store
        .add_members(&add("erin@example.com", 2, OTHER, &[web(FOREIGN)]))
        .await
        .expect("add");
    store
        .add_members(&add("keeper@example.com", 3, ORG, &[web(A)]))
        .await
        .expect("add");
    // Every column of both tables, as bytes: her 16 bytes and her id as text.
    let named = |path: &Path| -> i64 {
        let mut hits = 0;
        for (table, columns) in [
            (
                "event_groups",
                &["organization_id", "actor", "user_id", "data"][..],
            ),
            ("event_users", &["user_id", "organization_id"][..]),
        ] {
            for column in columns {
                for needle in [
                    erin.0.as_bytes().to_vec(),
                    erin.0.hyphenated().to_string().into_bytes(),
                    erin.0.simple().to_string().into_bytes(),
                ] {
                    hits += raw(path)
                        .query_row(
                            &format!(
                                "SELECT COUNT(*) FROM {table} \
                                 WHERE instr(CAST({column} AS BLOB), ?1) > 0"
                            ),
                            [needle],
                            |r| r.get::<_, i64>(0),
                        )
                        .expect("scan");
                }
            }
        }
        hits
    };
    assert_eq!(
        named(&path),
        4,
        "two calls' groups (user_created and member_added, member_added) name her, in their \
         data and as their one user"
    );
    let report = store
        .erase_person(&email("erin@example.com"), at(60))
        .await
        .expect("erase");
    assert_eq!(report.user, Some(erin));
    assert_eq!(named(&path), 0, "no event names her any more");
    // Her events stay (naming no one), the others' keep their user, and each organization
    // she was erased from has its `person_erased`, naming no one.
    let org_log = log(&store, ORG).await;
    assert_eq!(
        org_log
            .iter()
            .map(|e| (e.position, e.kind, e.user))
            .collect::<Vec<_>>(),
        [
            (1, EventKind::UserCreated, None),
            (2, EventKind::MemberAdded, None),
            (3, EventKind::UserCreated, Some(UserId(Uuid::from_u128(3)))),
            (4, EventKind::MemberAdded, Some(UserId(Uuid::from_u128(3)))),
            (5, EventKind::PersonErased, None),
        ]
    );
    let erased = &org_log[4];
    assert_eq!(
        (erased.at, erased.actor, erased.target, erased.role.clone()),
        (at(60), None, None, None)
    );
    assert_eq!(
        kinds(&log(&store, OTHER).await),
        [(1, EventKind::MemberAdded), (2, EventKind::PersonErased)]
    );
    // Nothing left to erase: no event.
    store
        .erase_person(&email("erin@example.com"), at(61))
        .await
        .expect("again");
    assert_eq!(counter(&path, ORG), 5);
}

#[tokio::test]
async fn a_group_this_version_cannot_read_is_left_out_and_the_page_filled_up() {
    let (store, path) = open("events-unreadable").await;
    for i in 0..4u128 {
        store
            .add_members(&add(&format!("u{i}@example.com"), 10 + i, ORG, &[web(A)]))
            .await
            .expect("add");
    }
    // Positions 1..8, two per call; the second call's group gets a version byte no version
    // writes, the third's data is cut short.
    let conn = raw(&path);
    conn.execute(
        "UPDATE event_groups SET data = X'ee' || substr(data, 2) \
         WHERE organization_id = ?1 AND last_position = 4",
        [ORG.0.as_bytes()],
    )
    .expect("plant");
    conn.execute(
        "UPDATE event_groups SET data = substr(data, 1, length(data) - 3) \
         WHERE organization_id = ?1 AND last_position = 6",
        [ORG.0.as_bytes()],
    )
    .expect("plant");
    let page = store.read_events(ORG, 0, 3).await.expect("read");
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 7],
        "left out, and the page filled up from the groups after them"
    );
    let rest = store.read_events(ORG, 7, 3).await.expect("read");
    assert_eq!(rest.iter().map(|e| e.position).collect::<Vec<_>>(), [8]);
    // A cursor inside an unreadable group moves on past it too.
    let inside = store.read_events(ORG, 3, 3).await.expect("read");
    assert_eq!(
        inside.iter().map(|e| e.position).collect::<Vec<_>>(),
        [7, 8]
    );
    // A cursor inside a readable group gets the rest of it.
    let half = store.read_events(ORG, 7, 1).await.expect("read");
    assert_eq!(half.iter().map(|e| e.position).collect::<Vec<_>>(), [8]);
    assert!(store.read_events(ORG, 0, 0).await.expect("none").is_empty());
    assert!(
        store
            .read_events(OrganizationId(Uuid::from_u128(0xbad)), 0, 10)
            .await
            .expect("unknown organization")
            .is_empty()
    );
    // Erasing a user named by an unreadable group: its id cannot be cleared inside it, so
    // the group goes; the readable groups stay.
    let report = store
        .erase_person(&email("u1@example.com"), at(60))
        .await
        .expect("erase");
    assert_eq!(report.user, Some(UserId(Uuid::from_u128(11))));
    let u1 = Uuid::from_u128(11);
    let left: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM event_groups \
                     WHERE instr(data, ?1) > 0 OR user_id = ?1) \
                  + (SELECT COUNT(*) FROM event_users WHERE user_id = ?1)",
            [u1.as_bytes()],
            |r| r.get(0),
        )
        .expect("scan");
    assert_eq!(left, 0);
    assert_eq!(
        kinds(&log(&store, ORG).await),
        [
            (1, EventKind::UserCreated),
            (2, EventKind::MemberAdded),
            (7, EventKind::UserCreated),
            (8, EventKind::MemberAdded),
            (9, EventKind::PersonErased)
        ]
    );
}

#[tokio::test]
async fn a_large_call_appends_every_event_in_order() {
    let (store, path) = open("events-large").await;
    let sites: Vec<TargetId> = (0..20u128)
        .map(|i| WebsiteId(Uuid::from_u128(0x1000 + i)))
        .map(TargetId::Website)
        .collect();
    for t in &sites {
        let website = Website {
            id: WebsiteId(t.uuid()),
            organization: ORG,
            name: "site".into(),
            url: "https://site.example".into(),
        };
        store.create_website(&website).await.expect("website");
    }
    store
        .add_members(&add("ann@example.com", 1, ORG, &sites))
        .await
        .expect("add");
    let ann = UserId(Uuid::from_u128(1));
    let ctx = EventContext {
        organization: ORG,
        actor: Some(KEY),
        at: T0,
    };
    let expected: Vec<Event> = std::iter::once(NewEvent::user_created(ann))
        .chain(
            sites
                .iter()
                .map(|t| NewEvent::member_added(*t, ann, Role::Viewer)),
        )
        .zip(1..)
        .map(|(e, position)| e.at_position(&ctx, position))
        .collect();
    assert_eq!(log(&store, ORG).await, expected);
    // Stored as one row, naming its one user once, in the row.
    let conn = raw(&path);
    let (groups, first, last, size): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), MIN(first_position), MAX(last_position), SUM(length(data)) \
             FROM event_groups",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("groups");
    assert_eq!((groups, first, last), (1, 1, 21));
    assert!(size < 21 * 16 + 21 * 6, "each id once: {size} bytes");
    let user: Option<[u8; 16]> = conn
        .query_row("SELECT user_id FROM event_groups", [], |r| r.get(0))
        .expect("user");
    assert_eq!(user, Some(*ann.0.as_bytes()));
    let users: i64 = conn
        .query_row("SELECT COUNT(*) FROM event_users", [], |r| r.get(0))
        .expect("users");
    assert_eq!(users, 0);
    // A page that ends inside the group, and the next one from there.
    let page = store.read_events(ORG, 5, 4).await.expect("read");
    assert_eq!(page, expected[5..9].to_vec());
}
