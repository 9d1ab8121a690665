//! The event log on PostgreSQL (issue 19), on a real server (each test skips with one
//! `skipped:` line without `INVITES_PG_URL`):
//!
//! - `a_cursor_reader_never_sees_a_later_commit_before_an_earlier_one`: THE ORDERING PROOF.
//!   Two interleaved transactions on two connections in one organization; the first holds its
//!   transaction open after taking its positions, the second is started and reaches its
//!   append; a reader following the cursor reads between every step. The second waits for
//!   the first's commit (it cannot take a position before the first one's commit), every read
//!   is a gap-free prefix, and the union of the reads is every event exactly once, in
//!   position order.
//! - `four_writers_and_a_cursor_reader`: 4 stores (4 pools, as 4 app servers) write adds,
//!   invitations and membership changes in one organization while a reader follows the
//!   cursor in small pages: it receives every event exactly once, positions 1..N.
//! - `a_failed_unit_a_refused_commit_and_a_failed_append_leave_no_event`: a savepoint unit
//!   that fails leaves none of its events, a `COMMIT` PostgreSQL refuses leaves none (and the
//!   next call takes the next position: no gap), an append that fails fails the call.
//! - `an_erasure_leaves_no_user_id_in_the_events`: raw SQL finds the erased user's id in no
//!   column of `events`; `person_erased` is written in each organization touched.
//! - `directory_changes_write_their_events_and_purge_keeps_positions`: the Directory's
//!   changes write one event each when they change something; purged events are gone, the
//!   counter is kept; an unreadable event is left out and the page filled up.

use invites_core::access::{ChangeFact, ChangeMember};
use invites_core::{AccessStore, BatchId, BulkStore};
use invites_core::{
    AddFact, AddMembers, CreateInvitations, Directory, Email, Event, EventKind, EventStore,
    InvitationId, InviteFact, LifecycleStore, MemberChange, MessageId, NewBatch, NewUser, OrgRole,
    OrganizationId, ReadStore, RevokeInvitation, Role, TargetId, Timestamp, TokenHash, UserId,
    WebsiteId,
};
use invites_postgres::PgStore;
use invites_postgres::testing::{TestDatabase, fresh_database, server_url};
use invites_testkit::World;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use uuid::Uuid;

macro_rules! server {
    ($test:literal) => {
        match server_url(concat!("postgres test ", $test)) {
            Some(url) => url,
            None => return,
        }
    };
}

const NOW: i64 = 1_700_000_000_000;

/// Fresh ids for the commands.
static NEXT_ID: AtomicU64 = AtomicU64::new(0x1_0000);

fn fresh() -> Uuid {
    Uuid::from_u128(u128::from(NEXT_ID.fetch_add(1, Ordering::SeqCst)))
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("email")
}

fn add(org: OrganizationId, address: &str, targets: &[TargetId]) -> AddMembers {
    AddMembers {
        organization: org,
        email: email(address),
        new_user: NewUser {
            id: UserId(fresh()),
            first_name: None,
            last_name: None,
        },
        role: Role::Viewer,
        targets: targets.to_vec(),
        now: Timestamp::from_millis(NOW),
        actor: None,
    }
}

fn invite(org: OrganizationId, address: &str, targets: &[TargetId]) -> CreateInvitations {
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(fresh().as_bytes());
    CreateInvitations {
        organization: org,
        email: email(address),
        role: Role::Admin,
        first_name: None,
        last_name: None,
        targets: targets
            .iter()
            .map(|t| (*t, InvitationId(fresh())))
            .collect(),
        batch: NewBatch {
            id: BatchId(fresh()),
            token_hash: TokenHash(hash),
            message_id: MessageId(fresh()),
            accept_url: "https://app.test/accept#t".to_owned(),
            message_due_at: Timestamp::from_millis(NOW + 60_000),
        },
        expires_at: Timestamp::from_millis(NOW + 86_400_000),
        now: Timestamp::from_millis(NOW),
        actor: Some(invites_core::ApiKeyId(Uuid::from_u128(0xa11))),
    }
}

fn sites(world: &World, range: std::ops::Range<usize>) -> Vec<TargetId> {
    world.websites[range]
        .iter()
        .map(|w| TargetId::Website(*w))
        .collect()
}

/// One page after `cursor`, checked to be the gap-free continuation of what was read.
async fn read_step(store: &PgStore, org: OrganizationId, seen: &mut Vec<Event>, limit: usize) {
    let cursor = seen.last().map_or(0, |e| e.position);
    let page = store
        .read_events(org, cursor, limit)
        .await
        .expect("read_events");
    assert!(page.len() <= limit);
    for (i, e) in page.iter().enumerate() {
        assert_eq!(
            e.position,
            cursor + 1 + i as u64,
            "the reader after {cursor} got a gap or a repeat: {page:?}"
        );
        assert_eq!(e.organization, org);
    }
    seen.extend(page);
}

/// Polls until `n` sessions of this database wait on a lock of one of `events`.
async fn wait_for_waiters(control: &Client, events: &[&str], n: i64) {
    let events: Vec<String> = events.iter().map(|s| (*s).to_owned()).collect();
    let started = Instant::now();
    loop {
        let waiting = scalar(
            control,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event = ANY($1)",
            &[&events],
        )
        .await;
        if waiting >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no session waits on {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn counter(control: &Client, org: OrganizationId) -> i64 {
    scalar(
        control,
        "SELECT event_seq FROM organizations WHERE id = $1",
        &[&org.0],
    )
    .await
}

/// The one `bigint` a query returns.
async fn scalar(
    control: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    control
        .query_one(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

async fn seeded() -> Option<(TestDatabase, PgStore, World, Client)> {
    let url = server_url("postgres events test")?;
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    let control = db.connect().await;
    Some((db, store, world, control))
}

#[tokio::test]
async fn a_cursor_reader_never_sees_a_later_commit_before_an_earlier_one() {
    let _ = server!("a_cursor_reader_never_sees_a_later_commit_before_an_earlier_one");
    let Some((_db, store, world, control)) = seeded().await else {
        return;
    };
    let org = world.org;
    // Every insert into `events` first takes advisory lock 77019, which the control session
    // holds: a transaction that reaches its event insert has taken its positions (the
    // counter's update runs first, in the same statement) and stays open, uncommitted.
    control
        .batch_execute(
            "CREATE FUNCTION hold_events() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_advisory_xact_lock(77019); RETURN NEW; END $$;
             CREATE TRIGGER hold_events BEFORE INSERT ON events
             FOR EACH ROW EXECUTE FUNCTION hold_events();
             SELECT pg_advisory_lock(77019);",
        )
        .await
        .expect("install the hold");
    let mut seen = Vec::new();

    // T1 (connection 1, the pipelined bulk path): a new user on 3 websites: 4 events.
    let t1 = tokio::spawn({
        let store = store.clone();
        let cmd = add(org, "first@acme.test", &sites(&world, 0..3));
        async move { store.add_members(&cmd).await }
    });
    wait_for_waiters(&control, &["advisory"], 1).await;
    // T1 holds positions 1..4, uncommitted: the reader sees nothing, the counter is 0.
    read_step(&store, org, &mut seen, 100).await;
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(counter(&control, org).await, 0);

    // T2 (connection 2, another path): invitations to 2 other websites. Its writes are done;
    // its append waits for T1's lock on the organization row: it cannot take position 5
    // (and commit it) before T1 has committed 1..4.
    let t2 = tokio::spawn({
        let store = store.clone();
        let cmd = invite(org, "second@acme.test", &sites(&world, 3..5));
        async move { store.create_invitations(&cmd).await }
    });
    wait_for_waiters(&control, &["transactionid", "tuple"], 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !t2.is_finished(),
        "T2 committed while T1 held its positions"
    );
    assert!(!t1.is_finished());
    read_step(&store, org, &mut seen, 100).await;
    assert!(seen.is_empty(), "{seen:?}");

    // T1 commits (after T2 started); then T2 takes 5..6 and commits. The reader follows the
    // cursor the whole time.
    control
        .execute("SELECT pg_advisory_unlock(77019)", &[])
        .await
        .expect("release");
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 6 {
        assert!(Instant::now() < deadline, "the events never came: {seen:?}");
        read_step(&store, org, &mut seen, 100).await;
        // What the reader holds is always T1's events first, never T2's alone.
        if let Some(first) = seen.first() {
            assert_eq!(first.kind, EventKind::UserCreated);
        }
    }
    let added = t1.await.expect("t1").expect("add");
    assert!(
        added
            .targets
            .iter()
            .all(|t| matches!(t, Ok(AddFact::Added)))
    );
    let invited = t2.await.expect("t2").expect("invite");
    assert!(
        invited
            .targets
            .iter()
            .all(|t| matches!(t, Ok(InviteFact::Invited)))
    );
    read_step(&store, org, &mut seen, 100).await;

    // The union of the reads: every event exactly once, by position, T1's before T2's.
    let all = store.read_events(org, 0, 100).await.expect("read all");
    assert_eq!(seen, all);
    let kinds: Vec<EventKind> = all.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::UserCreated,
            EventKind::MemberAdded,
            EventKind::MemberAdded,
            EventKind::MemberAdded,
            EventKind::InvitationCreated,
            EventKind::InvitationCreated,
        ]
    );
    let user = added.user.expect("user").id;
    assert!(
        all[..4]
            .iter()
            .all(|e| e.user == Some(user) && e.actor.is_none())
    );
    assert!(
        all[4..]
            .iter()
            .all(|e| e.actor.is_some() && e.user.is_none())
    );
    assert_eq!(counter(&control, org).await, 6);
}

#[tokio::test]
async fn four_writers_and_a_cursor_reader() {
    let _ = server!("four_writers_and_a_cursor_reader");
    let Some((db, store, world, control)) = seeded().await else {
        return;
    };
    let org = world.org;
    let world = Arc::new(world);
    const OPS: usize = 40;
    let mut writers = Vec::new();
    for w in 0..4u64 {
        // Its own pool: another app server.
        let store = db.store().await;
        let world = world.clone();
        writers.push(tokio::spawn(async move {
            let mut expected: BTreeMap<EventKind, usize> = BTreeMap::new();
            let mut members: Vec<(TargetId, UserId)> = Vec::new();
            for i in 0..OPS {
                // 6 addresses shared by the 4 writers, so they race on the same people.
                let address = format!("p{}@acme.test", (i as u64 * 7 + w) % 6);
                let first = (i + w as usize) % 5;
                let targets = sites(&world, first..first + 2);
                match i % 4 {
                    0 | 2 => {
                        let out = store
                            .add_members(&add(world.org, &address, &targets))
                            .await
                            .expect("add");
                        if out.user.is_some_and(|u| u.created) {
                            *expected.entry(EventKind::UserCreated).or_default() += 1;
                        }
                        for (t, slot) in targets.iter().zip(&out.targets) {
                            if matches!(slot, Ok(AddFact::Added)) {
                                *expected.entry(EventKind::MemberAdded).or_default() += 1;
                                members.push((*t, out.user.expect("user").id));
                            }
                        }
                    }
                    1 => {
                        let out = store
                            .create_invitations(&invite(world.org, &address, &targets))
                            .await
                            .expect("invite");
                        let n = out
                            .targets
                            .iter()
                            .filter(|s| matches!(s, Ok(InviteFact::Invited)))
                            .count();
                        *expected.entry(EventKind::InvitationCreated).or_default() += n;
                    }
                    _ => {
                        let Some((target, user)) = members.pop() else {
                            continue;
                        };
                        let change = if i % 8 == 3 {
                            MemberChange::Remove
                        } else {
                            MemberChange::SetRole(Role::Admin)
                        };
                        let fact = store
                            .change_member(&ChangeMember {
                                organization: world.org,
                                target,
                                user,
                                change,
                                now: Timestamp::from_millis(NOW),
                                actor: None,
                            })
                            .await
                            .expect("change");
                        match fact {
                            ChangeFact::Updated { .. } => {
                                *expected.entry(EventKind::MemberRoleChanged).or_default() += 1;
                            }
                            ChangeFact::Removed { revoked, .. } => {
                                *expected.entry(EventKind::MemberRemoved).or_default() += 1;
                                *expected.entry(EventKind::InvitationRevoked).or_default() +=
                                    revoked;
                            }
                            _ => {}
                        }
                    }
                }
            }
            expected
        }));
    }
    // The reader: small pages, while the writers run.
    let mut seen = Vec::new();
    while !writers.iter().all(|w| w.is_finished()) {
        read_step(&store, org, &mut seen, 7).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut expected: BTreeMap<EventKind, usize> = BTreeMap::new();
    for w in writers {
        for (kind, n) in w.await.expect("writer") {
            *expected.entry(kind).or_default() += n;
        }
    }
    // Drain what committed after the last read.
    loop {
        let before = seen.len();
        read_step(&store, org, &mut seen, 7).await;
        if seen.len() == before {
            break;
        }
    }
    let n = seen.len() as u64;
    assert!(n > 100, "too few events to prove anything: {n}");
    let positions: Vec<u64> = seen.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=n).collect::<Vec<_>>());
    assert_eq!(counter(&control, org).await, n as i64);
    let stored = scalar(
        &control,
        "SELECT count(*) FROM events WHERE organization_id = $1",
        &[&org.0],
    )
    .await;
    assert_eq!(stored, n as i64);
    assert_eq!(seen, store.read_events(org, 0, 10_000).await.expect("all"));
    // Every change the writers were told of is one event; superseding adds are extra.
    let mut got: BTreeMap<EventKind, usize> = BTreeMap::new();
    for e in &seen {
        *got.entry(e.kind).or_default() += 1;
    }
    got.remove(&EventKind::InvitationSuperseded);
    expected.retain(|_, n| *n > 0);
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_failed_unit_a_refused_commit_and_a_failed_append_leave_no_event() {
    let _ = server!("a_failed_unit_a_refused_commit_and_a_failed_append_leave_no_event");
    let Some((_db, store, world, control)) = seeded().await else {
        return;
    };
    let org = world.org;
    let bad = world.websites[1].0;
    // A unit that fails: inserting a membership of website 1 raises.
    control
        .batch_execute(&format!(
            "CREATE FUNCTION fail_site() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.website_id = '{bad}' THEN RAISE EXCEPTION 'injected'; END IF;
             RETURN NEW; END $$;
             CREATE TRIGGER fail_site BEFORE INSERT ON website_members
             FOR EACH ROW EXECUTE FUNCTION fail_site();"
        ))
        .await
        .expect("fault");
    let out = store
        .add_members(&add(org, "unit@acme.test", &sites(&world, 0..3)))
        .await
        .expect("add");
    assert!(out.targets[1].is_err());
    let user = out.user.expect("user").id;
    let events = store.read_events(org, 0, 100).await.expect("read");
    let got: Vec<(EventKind, Option<TargetId>)> =
        events.iter().map(|e| (e.kind, e.target)).collect();
    assert_eq!(
        got,
        [
            (EventKind::UserCreated, None),
            (
                EventKind::MemberAdded,
                Some(TargetId::Website(world.websites[0]))
            ),
            (
                EventKind::MemberAdded,
                Some(TargetId::Website(world.websites[2]))
            ),
        ]
    );
    assert!(events.iter().all(|e| e.user == Some(user)));

    // A COMMIT PostgreSQL refuses (a deferred constraint trigger): the call fails, no event,
    // and the counter stays where it was.
    control
        .batch_execute(
            "CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
             CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON group_members
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit();",
        )
        .await
        .expect("fault");
    let group = [TargetId::Group(world.groups[0])];
    store
        .add_members(&add(org, "commit@acme.test", &group))
        .await
        .expect_err("the commit is refused");
    assert_eq!(counter(&control, org).await, 3);
    assert_eq!(store.read_events(org, 3, 100).await.expect("read"), []);
    assert!(
        store
            .find_user(&email("commit@acme.test"))
            .await
            .expect("find")
            .is_none()
    );

    // An append that fails fails the call, and nothing of it is stored.
    control
        .batch_execute(
            "CREATE FUNCTION fail_events() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'no events'; END $$;
             CREATE TRIGGER fail_events BEFORE INSERT ON events
             FOR EACH ROW EXECUTE FUNCTION fail_events();",
        )
        .await
        .expect("fault");
    let out = store
        .add_members(&add(org, "append@acme.test", &sites(&world, 3..5)))
        .await;
    assert!(out.is_err(), "{out:?}");
    assert!(
        store
            .find_user(&email("append@acme.test"))
            .await
            .expect("find")
            .is_none()
    );
    control
        .batch_execute(
            "DROP TRIGGER fail_events ON events; DROP TRIGGER fail_commit ON group_members",
        )
        .await
        .expect("drop the faults");
    assert_eq!(counter(&control, org).await, 3);

    // The next call takes position 4: no gap where the failures were.
    let invitations = invite(org, "next@acme.test", &sites(&world, 3..4));
    let invitation = invitations.targets[0].1;
    store
        .create_invitations(&invitations)
        .await
        .expect("invite");
    let fact = store
        .revoke_invitation(&RevokeInvitation {
            organization: org,
            id: invitation,
            now: Timestamp::from_millis(NOW + 5),
            actor: None,
        })
        .await
        .expect("revoke");
    assert_eq!(fact, invites_core::RevokeFact::Revoked);
    let events = store.read_events(org, 3, 100).await.expect("read");
    let got: Vec<(u64, EventKind)> = events.iter().map(|e| (e.position, e.kind)).collect();
    assert_eq!(
        got,
        [
            (4, EventKind::InvitationCreated),
            (5, EventKind::InvitationRevoked)
        ]
    );
    assert_eq!(events[1].invitation, Some(invitation));
    assert_eq!(events[1].at, Timestamp::from_millis(NOW + 5));
}

#[tokio::test]
async fn an_erasure_leaves_no_user_id_in_the_events() {
    let _ = server!("an_erasure_leaves_no_user_id_in_the_events");
    let Some((_db, store, world, control)) = seeded().await else {
        return;
    };
    let address = "erase.me@acme.test";
    // Events naming the user in both organizations: adds, a role change, an organization
    // membership changed and removed.
    let out = store
        .add_members(&add(world.org, address, &sites(&world, 0..2)))
        .await
        .expect("add");
    let user = out.user.expect("user").id;
    store
        .add_members(&add(
            world.other_org,
            address,
            &[TargetId::Website(world.other_website)],
        ))
        .await
        .expect("add elsewhere");
    store
        .change_member(&ChangeMember {
            organization: world.org,
            target: TargetId::Website(world.websites[0]),
            user,
            change: MemberChange::SetRole(Role::Admin),
            now: Timestamp::from_millis(NOW),
            actor: None,
        })
        .await
        .expect("change");
    store
        .add_org_member(world.other_org, user, OrgRole::Viewer)
        .await
        .expect("org member");
    let at = Timestamp::from_millis(NOW + 1);
    assert!(
        store
            .set_org_role(world.other_org, user, OrgRole::Admin, at)
            .await
            .expect("role")
    );
    // The same role again: a member, but no change and no event.
    assert!(
        store
            .set_org_role(world.other_org, user, OrgRole::Admin, at)
            .await
            .expect("role")
    );
    store
        .create_invitations(&invite(world.org, address, &sites(&world, 3..4)))
        .await
        .expect("invite");
    let named = scalar(
        &control,
        "SELECT count(*) FROM events WHERE user_id = $1",
        &[&user.0],
    )
    .await;
    // user_created, 2 + 1 member_added, member_role_changed, org_member_role_changed.
    assert_eq!(named, 6);
    let before = scalar(&control, "SELECT count(*) FROM events", &[]).await;

    let report = store
        .erase_person(&email(address), Timestamp::from_millis(NOW + 9))
        .await
        .expect("erase");
    assert_eq!(report.user, Some(user));

    // Raw SQL: no column of any event holds the id, as a uuid or as text.
    let columns: Vec<String> = control
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = 'events'",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(columns.len() >= 13, "{columns:?}");
    for column in &columns {
        for needle in [user.0.hyphenated().to_string(), user.0.simple().to_string()] {
            let n: i64 = control
                .query_one(
                    &format!(
                        "SELECT count(*) FROM events WHERE strpos(lower(\"{column}\"::text), $1) > 0"
                    ),
                    &[&needle],
                )
                .await
                .expect("scan")
                .get(0);
            assert_eq!(n, 0, "events.{column} still holds the erased user");
        }
    }
    // The events stay (naming no one), and each organization got `person_erased`, the
    // organizations in ascending id order.
    let after = scalar(&control, "SELECT count(*) FROM events", &[]).await;
    assert_eq!(after, before + 2);
    for org in [world.org, world.other_org] {
        let events = store.read_events(org, 0, 100).await.expect("read");
        let last = events.last().expect("events");
        assert_eq!(last.kind, EventKind::PersonErased);
        assert_eq!(last.at, Timestamp::from_millis(NOW + 9));
        assert!(last.user.is_none() && last.target.is_none() && last.actor.is_none());
        assert!(events.iter().all(|e| e.user.is_none()));
    }
    // The erasure again: nothing deleted, no event.
    store
        .erase_person(&email(address), Timestamp::from_millis(NOW + 10))
        .await
        .expect("erase again");
    let again = scalar(&control, "SELECT count(*) FROM events", &[]).await;
    assert_eq!(again, after);
}

#[tokio::test]
async fn directory_changes_write_their_events_and_purge_keeps_positions() {
    let _ = server!("directory_changes_write_their_events_and_purge_keeps_positions");
    let Some((_db, store, world, control)) = seeded().await else {
        return;
    };
    let org = world.org;
    let at = |ms: i64| Timestamp::from_millis(NOW + ms);
    let site = world.websites[5];
    store
        .add_website_to_group(world.groups[0], site)
        .await
        .expect("link");
    assert!(
        store
            .remove_website_from_group(world.groups[0], site, at(1))
            .await
            .expect("unlink")
    );
    assert!(
        !store
            .remove_website_from_group(world.groups[0], site, at(2))
            .await
            .expect("unlink again")
    );
    store.delete_website(site, at(3)).await.expect("delete");
    store
        .delete_website(site, at(4))
        .await
        .expect("delete again");
    store
        .delete_website(WebsiteId(Uuid::from_u128(0xdead)), at(4))
        .await
        .expect("delete unknown");
    assert!(
        store
            .delete_group(world.groups[1], at(5))
            .await
            .expect("delete group")
    );
    assert!(
        !store
            .delete_group(world.groups[1], at(6))
            .await
            .expect("again")
    );
    assert!(
        store
            .remove_org_member(org, world.org_admin, at(7))
            .await
            .expect("leave")
    );
    assert!(
        !store
            .set_org_role(org, world.org_admin, OrgRole::Admin, at(8))
            .await
            .expect("not a member")
    );
    let events = store.read_events(org, 0, 100).await.expect("read");
    let got: Vec<(u64, EventKind, i64)> = events
        .iter()
        .map(|e| (e.position, e.kind, e.at.as_millis() - NOW))
        .collect();
    assert_eq!(
        got,
        [
            (1, EventKind::WebsiteRemovedFromGroup, 1),
            (2, EventKind::WebsiteDeleted, 3),
            (3, EventKind::GroupDeleted, 5),
            (4, EventKind::OrgMemberRemoved, 7),
        ]
    );
    assert_eq!(events[0].group, Some(world.groups[0]));
    assert_eq!(events[0].target, Some(TargetId::Website(site)));
    assert_eq!(events[3].user, Some(world.org_admin));
    assert_eq!(
        store.read_events(org, 2, 1).await.expect("page")[0].position,
        3
    );
    assert_eq!(store.read_events(org, 4, 10).await.expect("end"), []);
    assert_eq!(store.read_events(org, 0, 0).await.expect("none"), []);

    // The purge: oldest first, at most `limit`; the counter stays, positions go on.
    assert_eq!(store.purge_events(at(4), 1).await.expect("purge"), 1);
    assert_eq!(store.purge_events(at(4), 10).await.expect("purge"), 1);
    assert_eq!(store.purge_events(at(4), 10).await.expect("purge"), 0);
    let left: Vec<u64> = store
        .read_events(org, 0, 100)
        .await
        .expect("read")
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(left, [3, 4]);
    assert_eq!(counter(&control, org).await, 4);
    assert!(
        store
            .delete_group(world.groups[0], at(9))
            .await
            .expect("delete")
    );
    let last = store.read_events(org, 4, 10).await.expect("read");
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].position, 5);

    // A row this version cannot read (a kind from a newer version) is left out, and the
    // page is filled up from the rows after it.
    control
        .execute(
            "UPDATE events SET kind = 'from_the_future' WHERE organization_id = $1 AND position = 3",
            &[&org.0],
        )
        .await
        .expect("corrupt");
    let page: Vec<u64> = store
        .read_events(org, 0, 2)
        .await
        .expect("read")
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(page, [4, 5]);
}
