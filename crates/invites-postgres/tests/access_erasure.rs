//! Erasing a person on PostgreSQL (issue 18): after `erase_person`, raw SQL reads every
//! column of every table of the store's schema and finds neither the address (as typed and
//! normalised), nor the names, nor the user id; the same after a race with 8 tasks inviting
//! and accepting the address while it is erased, which also leaves no orphan row. Each test
//! skips (one line) without `INVITES_PG_URL`.

use invites_core::{
    BulkInviteRequest, Clock, Directory, Email, InvitationFilter, InviteMethod, MailerMode,
    OrgRole, OutcomeCode, Principal, Role, TargetId,
};
use invites_postgres::testing::{fresh_database, server_url};
use invites_testkit::{Harness, World};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

/// The address as a person types it, and the names they give.
const TYPED: &str = "  Zebulon.QUARTERMAIN@Example.TEST ";
const FIRST: &str = "Zebulonius";
const LAST: &str = "Quartermaine-Vexley";

/// What the scan looks for.
struct Needles {
    /// Text, matched case-insensitively inside every column cast to text, and as bytes inside
    /// every `bytea` column.
    texts: Vec<String>,
    /// Ids, matched as `uuid` values, as text (hyphenated and simple) and as their 16 bytes.
    ids: Vec<Uuid>,
}

impl Needles {
    fn person(ids: impl IntoIterator<Item = Uuid>) -> Needles {
        Needles {
            texts: vec![
                TYPED.to_owned(),
                TYPED.trim().to_owned(),
                Email::parse(TYPED).expect("email").as_str().to_owned(),
                FIRST.to_owned(),
                LAST.to_owned(),
            ],
            ids: ids.into_iter().collect(),
        }
    }
}

/// Every `table.column: needle` where a row of schema `public` holds a needle: each column of
/// each table (`information_schema.columns`) cast to text and searched, `bytea` columns also
/// searched for the raw bytes, `uuid` columns also compared.
async fn scan(client: &Client, needles: &Needles) -> Vec<String> {
    let columns = client
        .query(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text \
             FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' \
             ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("columns");
    let tables: BTreeSet<String> = columns.iter().map(|r| r.get(0)).collect();
    for expected in [
        "users",
        "website_members",
        "group_members",
        "org_members",
        "invitations",
        "batches",
        "outbox",
        "idempotency",
        "events",
    ] {
        assert!(tables.contains(expected), "the scan misses {expected}");
    }
    let mut found = Vec::new();
    for row in &columns {
        let (table, column, data_type): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let from = format!("FROM public.\"{table}\"");
        let col = format!("\"{column}\"");
        let mut texts: Vec<String> = needles.texts.clone();
        for id in &needles.ids {
            texts.push(id.hyphenated().to_string());
            texts.push(id.simple().to_string());
        }
        for needle in &texts {
            let mut sql = format!(
                "SELECT count(*) {from} WHERE strpos(lower({col}::text), lower($1::text)) > 0"
            );
            if data_type == "bytea" {
                sql.push_str(&format!(
                    " OR position(convert_to($1::text, 'UTF8') in {col}) > 0"
                ));
            }
            let n: i64 = client.query_one(&sql, &[needle]).await.expect(&sql).get(0);
            if n > 0 {
                found.push(format!("{table}.{column}: {needle:?} in {n} rows"));
            }
        }
        for id in &needles.ids {
            let sql = match data_type.as_str() {
                "uuid" => format!("SELECT count(*) {from} WHERE {col} = $1::uuid"),
                "bytea" => {
                    format!(
                        "SELECT count(*) {from} WHERE position($1::uuid::text::bytea in {col}) > 0 OR position(decode(replace($1::uuid::text, '-', ''), 'hex') in {col}) > 0"
                    )
                }
                _ => continue,
            };
            let n: i64 = client.query_one(&sql, &[id]).await.expect(&sql).get(0);
            if n > 0 {
                found.push(format!("{table}.{column}: id {id} in {n} rows"));
            }
        }
    }
    found
}

fn request(method: InviteMethod, world: &World, sites: &[usize]) -> BulkInviteRequest {
    let mut r =
        BulkInviteRequest::websites(method, TYPED, sites.iter().map(|&i| world.websites[i]));
    r.first_name = Some(FIRST.to_owned());
    r.last_name = Some(LAST.to_owned());
    r
}

#[tokio::test]
async fn after_erasure_no_column_of_any_table_holds_the_person() {
    let url = server!("after_erasure_no_column_of_any_table_holds_the_person");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    let h = Harness::new(store.clone());
    let key = world.global_key();
    let other_key = Principal::global(world.other_org, key.key_id);

    // Email invitations first (the user does not exist yet, so they carry the names):
    // site 1 stays pending (its message sent), site 2 is revoked, site 3 is accepted.
    for site in [1, 2, 3] {
        let r = h
            .service
            .bulk_invite(&key, request(InviteMethod::Email, &world, &[site]))
            .await
            .expect("invite");
        assert_eq!(r.results[0].code, OutcomeCode::Invited, "{r:?}");
    }
    let invitations = h
        .service
        .list_invitations(
            &key,
            InvitationFilter::Email(Email::parse(TYPED).expect("email")),
            10,
            None,
        )
        .await
        .expect("list")
        .items;
    let to_site = |site: usize| {
        invitations
            .iter()
            .find(|i| i.target == TargetId::Website(world.websites[site]))
            .expect("invitation")
            .id
    };
    h.service
        .revoke(&key, to_site(2))
        .await
        .expect("revoke site 2");
    let accepted = h
        .service
        .accept(&h.last_token(), None)
        .await
        .expect("accept");
    let user = accepted.user_id;
    // A direct add with an idempotency key: the stored response names the user. It
    // supersedes nothing (site 0 had no invitation) and adds the website membership.
    let r = h
        .service
        .bulk_invite_idempotent(
            &key,
            "erase-me-1",
            request(InviteMethod::Direct, &world, &[0]),
        )
        .await
        .expect("direct");
    assert_eq!(r.user_id, Some(user), "{r:?}");
    // A group membership, organization memberships in both organizations.
    let mut group = BulkInviteRequest::groups(InviteMethod::Direct, TYPED, [world.groups[1]]);
    group.role = Some(Role::Admin);
    h.service.bulk_invite(&key, group).await.expect("group");
    store
        .add_org_member(world.org, user, OrgRole::Viewer)
        .await
        .expect("org member");
    store
        .add_org_member(world.other_org, user, OrgRole::Admin)
        .await
        .expect("org member");
    // In the other organization: an invitation whose message stays queued (the mailer
    // fails) ... after the user left it again, so the invitation can be made.
    store
        .remove_org_member(world.other_org, user, h.clock.now())
        .await
        .expect("leave");
    h.mailer.set_mode(MailerMode::FailTransient);
    let mut elsewhere =
        BulkInviteRequest::websites(InviteMethod::Email, TYPED, [world.other_website]);
    elsewhere.first_name = Some(FIRST.to_owned());
    let r = h
        .service
        .bulk_invite(&other_key, elsewhere)
        .await
        .expect("invite elsewhere");
    assert_eq!(r.results[0].code, OutcomeCode::Invited, "{r:?}");
    h.mailer.set_mode(MailerMode::Ok);
    store
        .add_org_member(world.other_org, user, OrgRole::Admin)
        .await
        .expect("org member again");

    let client = db.connect().await;
    let statuses: Vec<(String, i64)> = client
        .query(
            "SELECT status, count(*) FROM invitations GROUP BY status ORDER BY status",
            &[],
        )
        .await
        .expect("statuses")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        statuses,
        [
            ("accepted".to_owned(), 1),
            ("pending".to_owned(), 2),
            ("revoked".to_owned(), 1)
        ]
    );
    let messages: Vec<String> = client
        .query("SELECT DISTINCT status FROM outbox ORDER BY status", &[])
        .await
        .expect("outbox")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(messages, ["queued", "sent"]);

    // The scan sees the person everywhere it is stored (so it is not blind).
    let needles = Needles::person([user.0]);
    let before = scan(&client, &needles).await.join("\n");
    for place in [
        "users.email",
        "users.first_name",
        "users.last_name",
        "users.id",
        "website_members.user_id",
        "group_members.user_id",
        "org_members.user_id",
        "invitations.email",
        "invitations.first_name",
        "invitations.last_name",
        "batches.email",
        "outbox.recipient",
        "idempotency.response",
    ] {
        assert!(before.contains(place), "the scan missed {place}:\n{before}");
    }

    let report = h.service.erase_person(TYPED).await.expect("erase");
    assert_eq!(report.user, Some(user));
    assert_eq!(report.memberships, 3, "sites 0 and 3, group 1: {report:?}");
    assert_eq!(report.org_memberships, 2, "{report:?}");
    assert_eq!(report.invitations, 4, "{report:?}");
    assert_eq!(report.batches, 4, "{report:?}");
    assert_eq!(report.messages, 4, "{report:?}");
    assert_eq!(report.idempotency_records, 1, "{report:?}");

    let after = scan(&client, &needles).await;
    assert!(after.is_empty(), "still stored:\n{}", after.join("\n"));
    // The others are untouched.
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("users")
        .get(0);
    assert_eq!(
        users, 2,
        "the organization admin and the existing user stay"
    );
    // Erasing again finds nothing, and the address can be invited afresh.
    let again = h.service.erase_person(TYPED).await.expect("erase again");
    assert_eq!(again, invites_core::ErasureReport::default());
    let r = h
        .service
        .bulk_invite(&key, request(InviteMethod::Direct, &world, &[0]))
        .await
        .expect("afresh");
    assert!(r.user_created, "{r:?}");
}

/// Rows left without what they belong to, by kind (the foreign keys forbid them; this
/// checks that erasure never leaves a half-deleted person behind).
async fn orphans(client: &Client) -> Vec<(String, i64)> {
    let mut found = Vec::new();
    for (what, sql) in [
        (
            "website membership without user",
            "SELECT count(*) FROM website_members m WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = m.user_id)",
        ),
        (
            "group membership without user",
            "SELECT count(*) FROM group_members m WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = m.user_id)",
        ),
        (
            "org membership without user",
            "SELECT count(*) FROM org_members m WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = m.user_id)",
        ),
        (
            "invitation without batch",
            "SELECT count(*) FROM invitations i WHERE NOT EXISTS \
             (SELECT 1 FROM batches b WHERE b.id = i.batch_id)",
        ),
        (
            "message without batch",
            "SELECT count(*) FROM outbox o WHERE NOT EXISTS \
             (SELECT 1 FROM batches b WHERE b.id = o.batch_id)",
        ),
        (
            "batch without invitation",
            "SELECT count(*) FROM batches b WHERE NOT EXISTS \
             (SELECT 1 FROM invitations i WHERE i.batch_id = b.id)",
        ),
        (
            "batch without message",
            "SELECT count(*) FROM batches b WHERE NOT EXISTS \
             (SELECT 1 FROM outbox o WHERE o.batch_id = b.id)",
        ),
    ] {
        let n: i64 = client.query_one(sql, &[]).await.expect(sql).get(0);
        if n > 0 {
            found.push((what.to_owned(), n));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_racing_invites_and_accepts_leaves_nothing_half_done() {
    let url = server!("erasure_racing_invites_and_accepts_leaves_nothing_half_done");
    let started = Instant::now();
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    let h = Harness::new(store.clone());
    let key = world.global_key();
    let stop = Arc::new(AtomicBool::new(false));
    let users = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..8usize {
        let (h, world, key) = (h.clone(), world.clone(), key.clone());
        let (stop, users, done) = (stop.clone(), users.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut step = task;
            while !stop.load(Ordering::Relaxed) {
                step += 1;
                let sites = [step % 6, (step + 1 + task % 5) % 6];
                let user = match step % 3 {
                    0 | 1 => {
                        let method = if step % 3 == 0 {
                            InviteMethod::Email
                        } else {
                            InviteMethod::Direct
                        };
                        let r = h
                            .service
                            .bulk_invite(&key, request(method, &world, &sites))
                            .await
                            .expect("bulk invite");
                        // A racing erasure is wholly before or after: never a failed target.
                        for result in &r.results {
                            assert_ne!(result.code, OutcomeCode::InternalError, "{r:?}");
                        }
                        r.user_id
                    }
                    // The newest link; one an erasure killed is refused, which is right.
                    _ => match h.mailer.sent().last() {
                        Some(m) => {
                            let at = m.text.find("token=").expect("link") + "token=".len();
                            h.service
                                .accept(&m.text[at..at + 64], None)
                                .await
                                .ok()
                                .map(|a| a.user_id)
                        }
                        None => None,
                    },
                };
                if let Some(user) = user {
                    users.lock().expect("users").insert(user.0);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut erased_users = 0;
    let mut erased_invitations = 0;
    let race = Instant::now();
    while race.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let report = h.service.erase_person(TYPED).await.expect("erase");
        if let Some(user) = report.user {
            erased_users += 1;
            users.lock().expect("users").insert(user.0);
        }
        erased_invitations += report.invitations;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("task");
    }
    let ops = done.load(Ordering::Relaxed);
    assert!(ops > 50, "only {ops} requests ran during the race");
    assert!(
        erased_users > 3 && erased_invitations > 3,
        "the erasures raced nothing: {erased_users} users, {erased_invitations} invitations"
    );
    let client = db.connect().await;
    assert_eq!(orphans(&client).await, []);
    h.service
        .erase_person(TYPED)
        .await
        .expect("erase at the end");
    assert_eq!(orphans(&client).await, []);
    let ids: Vec<Uuid> = users.lock().expect("users").iter().copied().collect();
    let found = scan(&client, &Needles::person(ids.clone())).await;
    assert!(found.is_empty(), "still stored:\n{}", found.join("\n"));
    println!(
        "{ops} requests and {erased_users} erasures of a user ({} user ids) in {:?}",
        ids.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}
