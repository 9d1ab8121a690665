//! What only PostgreSQL has: migrations under an advisory lock, the schema option, the
//! database's own uniqueness rules, the savepoint slow path when one target's write fails,
//! a failed commit, and concurrent outbox claims. Each test skips (one line) without
//! `INVITES_PG_URL`.

use invites_core::{
    BulkInviteRequest, Directory, Email, Inspect, InvitationFilter, InviteMethod, OutboxStore,
    OutcomeCode, ReadStore, StoreError, TargetId, Timestamp, User, UserId,
};
use invites_postgres::testing::{empty_database, fresh_database, server_url};
use invites_postgres::{ConnectError, PgOptions, PgStore};
use invites_testkit::{Harness, World};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

macro_rules! server {
    ($test:literal) => {
        match server_url(concat!("postgres test ", $test)) {
            Some(url) => url,
            None => return,
        }
    };
}

fn direct(email: &str, world: &World, sites: &[usize]) -> BulkInviteRequest {
    BulkInviteRequest::websites(
        InviteMethod::Direct,
        email,
        sites.iter().map(|&i| world.websites[i]),
    )
}

fn email_mode(email: &str, world: &World, sites: &[usize]) -> BulkInviteRequest {
    BulkInviteRequest::websites(
        InviteMethod::Email,
        email,
        sites.iter().map(|&i| world.websites[i]),
    )
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_migrate_once() {
    let url = server!("servers_starting_together_migrate_once");
    let db = empty_database(&url).await;
    // Eight servers start at once on an empty database.
    let mut starts = Vec::new();
    for _ in 0..8 {
        let url = db.url.clone();
        starts.push(tokio::spawn(async move { PgStore::connect(&url).await }));
    }
    for start in starts {
        start.await.expect("task").expect("every server starts");
    }
    let client = db.connect().await;
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM invites_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("migrations table")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known = i32::try_from(PgStore::migrations().len()).expect("few");
    assert_eq!(versions, (1..=known).collect::<Vec<_>>());
    // Starting again changes nothing.
    PgStore::connect(&db.url).await.expect("restart");
    assert_eq!(
        count(&client, "SELECT count(*) FROM invites_schema_migrations").await,
        i64::from(known)
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = server!("a_newer_schema_is_refused");
    let db = fresh_database(&url).await;
    db.connect()
        .await
        .batch_execute("INSERT INTO invites_schema_migrations (version) VALUES (999)")
        .await
        .expect("pretend a newer version migrated");
    let known = u32::try_from(PgStore::migrations().len()).expect("few");
    // Refused whether connecting may migrate or not.
    for migrate in [true, false] {
        match PgStore::connect_with(&db.url, PgOptions::default().migrate(migrate)).await {
            Err(ConnectError::Schema(m)) => {
                assert!(m.is_newer(), "{m:?}");
                assert_eq!((m.found, m.expected), (999, known));
            }
            other => panic!("expected a newer schema, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_bad_url_is_a_typed_error_without_the_url() {
    match PgStore::connect("postgresql://user:s3cret@host:notaport/db").await {
        Err(e @ ConnectError::InvalidUrl(_)) => assert!(!e.to_string().contains("s3cret")),
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
}

#[test]
fn schema_names_are_checked() {
    for bad in [
        "",
        "Invites",
        "1abc",
        "pg_invites",
        "a-b",
        "a.b",
        "a\"b",
        &"x".repeat(64),
    ] {
        let e = PgOptions::default().schema(bad).expect_err(bad);
        assert_eq!(e.field, "schema");
    }
    assert_eq!(
        PgOptions::default()
            .schema("tenant_1")
            .expect("valid")
            .schema_name(),
        "tenant_1"
    );
    assert_eq!(
        PgOptions::default().pool_size(0).unwrap_err().field,
        "pool_size"
    );
    assert_eq!(
        PgOptions::default().max_attempts(0).unwrap_err().field,
        "max_attempts"
    );
}

#[tokio::test]
async fn two_schemas_in_one_database_are_independent() {
    let url = server!("two_schemas_in_one_database_are_independent");
    let db = fresh_database(&url).await;
    let a = db
        .store_with(PgOptions::default().schema("tenant_a").expect("name"))
        .await;
    let b = db
        .store_with(PgOptions::default().schema("tenant_b").expect("name"))
        .await;
    let world = World::seed(&a).await;
    let h = Harness::new(a.clone());
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            direct("ann@example.com", &world, &[0, 1]),
        )
        .await
        .expect("bulk");
    assert!(r.results.iter().all(|r| r.code == OutcomeCode::Added));
    assert_eq!(a.snapshot().await.expect("a").memberships.len(), 2);
    assert_eq!(b.snapshot().await.expect("b"), Default::default());
    // The same ids seed the second schema without conflict.
    World::seed(&b).await;
    let client = db.connect().await;
    for schema in ["tenant_a", "tenant_b"] {
        let tables = count(
            &client,
            &format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"),
        )
        .await;
        assert!(tables >= 12, "{schema}: {tables} tables");
    }
    // Nothing landed in `public` except the default store's own (the template's) tables.
    assert_eq!(count(&client, "SELECT count(*) FROM public.users").await, 0);
}

#[tokio::test]
async fn the_database_itself_refuses_duplicates() {
    let url = server!("the_database_itself_refuses_duplicates");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    let h = Harness::new(store.clone());
    h.service
        .bulk_invite(
            &world.global_key(),
            email_mode("bo@example.com", &world, &[0]),
        )
        .await
        .expect("invite");
    h.service
        .bulk_invite(&world.global_key(), direct("cy@example.com", &world, &[1]))
        .await
        .expect("add");
    let client = db.connect().await;
    let attempts = [
        // A second user with the same email.
        "INSERT INTO users (id, email, email_verified) VALUES (gen_random_uuid(), 'cy@example.com', false)",
        // A second membership for (website, user).
        "INSERT INTO website_members SELECT website_id, user_id, 'admin', 0 FROM website_members",
        // A second pending invitation for (target, email).
        "INSERT INTO invitations SELECT gen_random_uuid(), batch_id, organization_id, target_kind, \
         target_id, email, role, first_name, last_name, 'pending', created_at, expires_at FROM invitations",
        // A second batch with the same token hash.
        "INSERT INTO batches SELECT gen_random_uuid(), organization_id, email, token_hash, created_at, \
         last_sent_at FROM batches",
    ];
    for sql in attempts {
        let e = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(e.code().map(|c| c.code()), Some("23505"), "{sql}: {e}");
    }
    // An invitation or a message must belong to its batch's organization (migration 3), and
    // an invitation to its batch's email (migration 5: lists by email go through batches).
    let foreign = [
        "INSERT INTO invitations SELECT gen_random_uuid(), batch_id, organization_id, target_kind, \
         target_id, 'someone-else@example.com', role, first_name, last_name, 'revoked', \
         created_at, expires_at FROM invitations i",
        "INSERT INTO invitations SELECT gen_random_uuid(), batch_id, (SELECT id FROM organizations          WHERE id <> i.organization_id LIMIT 1), target_kind, target_id, 'dee@example.com', role,          first_name, last_name, 'revoked', created_at, expires_at FROM invitations i",
        "INSERT INTO outbox SELECT gen_random_uuid(), batch_id, (SELECT id FROM organizations          WHERE id <> o.organization_id LIMIT 1), recipient, NULL, 'sent', 1, next_attempt_at,          created_at, NULL FROM outbox o",
    ];
    for sql in foreign {
        let e = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(e.code().map(|c| c.code()), Some("23503"), "{sql}: {e}");
    }
}

/// A trigger that fails every write of a membership or invitation for one target, as a
/// host's own check or a full disk for one row would.
async fn fail_writes_for(db: &invites_postgres::testing::TestDatabase, target: uuid::Uuid) {
    db.connect()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION fail_member() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.website_id = '{target}' THEN RAISE EXCEPTION 'injected failure'; END IF;
                 RETURN NEW;
             END $$;
             CREATE FUNCTION fail_invitation() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.target_id = '{target}' THEN RAISE EXCEPTION 'injected failure'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fail_one BEFORE INSERT ON website_members
                 FOR EACH ROW EXECUTE FUNCTION fail_member();
             CREATE TRIGGER fail_one BEFORE INSERT ON invitations
                 FOR EACH ROW EXECUTE FUNCTION fail_invitation();"
        ))
        .await
        .expect("install the trigger");
}

#[tokio::test]
async fn a_failing_target_is_internal_error_and_the_others_commit() {
    let url = server!("a_failing_target_is_internal_error_and_the_others_commit");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    // The FIRST target fails: the user is created in the second target's unit.
    fail_writes_for(&db, world.websites[0].0).await;
    let h = Harness::new(store.clone());

    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            direct("dee@example.com", &world, &[0, 1, 2]),
        )
        .await
        .expect("bulk");
    let codes: Vec<_> = r.results.iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        [
            OutcomeCode::InternalError,
            OutcomeCode::Added,
            OutcomeCode::Added
        ]
    );
    assert!(r.user_created);
    let snap = store.snapshot().await.expect("snapshot");
    let user = snap
        .users
        .iter()
        .find(|u| u.email.as_str() == "dee@example.com")
        .expect("user created");
    let targets: HashSet<_> = snap
        .memberships
        .iter()
        .filter(|m| m.user == user.id)
        .map(|m| m.target)
        .collect();
    assert_eq!(
        targets,
        HashSet::from([
            TargetId::Website(world.websites[1]),
            TargetId::Website(world.websites[2])
        ])
    );

    // Only the failing target: nothing at all, not even the user.
    let r = h
        .service
        .bulk_invite(&world.global_key(), direct("eve@example.com", &world, &[0]))
        .await
        .expect("bulk");
    assert_eq!(r.results[0].code, OutcomeCode::InternalError);
    assert!(!r.user_created && r.user_id.is_none());
    assert!(
        store
            .find_user(&Email::parse("eve@example.com").expect("email"))
            .await
            .expect("read")
            .is_none()
    );

    // Email mode: the batch, its message and the other invitations commit; one mail.
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            email_mode("fay@example.com", &world, &[3, 0, 4]),
        )
        .await
        .expect("bulk");
    let codes: Vec<_> = r.results.iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        [
            OutcomeCode::Invited,
            OutcomeCode::InternalError,
            OutcomeCode::Invited
        ]
    );
    let snap = store.snapshot().await.expect("snapshot");
    let fay: Vec<_> = snap
        .invitations
        .iter()
        .filter(|i| i.email.as_str() == "fay@example.com")
        .map(|i| i.target)
        .collect();
    assert_eq!(
        fay,
        [
            TargetId::Website(world.websites[3]),
            TargetId::Website(world.websites[4])
        ]
    );
    assert_eq!(h.mailer.sent().len(), 1);
    assert_eq!(snap.outbox.len(), 1);
}

#[tokio::test]
async fn a_failed_commit_stores_nothing() {
    let url = server!("a_failed_commit_stores_nothing");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    let target = world.websites[2].0;
    // A deferred constraint trigger fails at COMMIT, after every statement succeeded.
    db.connect()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.website_id = '{target}' THEN RAISE EXCEPTION 'commit refused'; END IF;
                 RETURN NEW;
             END $$;
             CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON website_members
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit();"
        ))
        .await
        .expect("install the trigger");
    let before = store.snapshot().await.expect("snapshot");
    let h = Harness::new(store.clone());
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            direct("gus@example.com", &world, &[1, 2, 3]),
        )
        .await
        .expect("processed");
    assert!(
        r.results
            .iter()
            .all(|r| r.code == OutcomeCode::InternalError),
        "{r:?}"
    );
    assert!(!r.user_created);
    assert_eq!(store.snapshot().await.expect("snapshot"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_hand_out_a_message_twice() {
    let url = server!("concurrent_claims_never_hand_out_a_message_twice");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    // 30 queued messages, all due (the service's own delivery is held back by a failing
    // mailer: each stays queued for a retry).
    let h = Harness::new(store.clone());
    h.mailer
        .set_mode(invites_testkit::MailerMode::FailTransient);
    for i in 0..30 {
        h.service
            .bulk_invite(
                &world.global_key(),
                email_mode(&format!("q{i}@example.com"), &world, &[i % 6]),
            )
            .await
            .expect("invite");
    }
    let far = Timestamp::from_millis(i64::MAX / 4);
    let lease = Timestamp::from_millis(i64::MAX / 2);
    // Four deliverers on their own pools claim at once.
    let mut claims = Vec::new();
    for _ in 0..4 {
        let s = db.store().await;
        claims.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = s.claim_due_messages(far, lease, 3).await.expect("claim");
                if batch.is_empty() {
                    break got;
                }
                got.extend(batch.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claims {
        all.extend(c.await.expect("task"));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 30, "every message claimed");
    assert_eq!(distinct.len(), 30, "none twice");
    // While the leases hold, nothing is due; once they run out, the claims come back.
    assert!(
        store
            .claim_due_messages(far, lease, 100)
            .await
            .expect("claim")
            .is_empty()
    );
    let after_lease = Timestamp::from_millis(i64::MAX / 2);
    assert_eq!(
        store
            .claim_due_messages(after_lease, after_lease, 100)
            .await
            .expect("claim")
            .len(),
        30
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_users_race_bulk_adds_for_one_email() {
    let url = server!("directory_users_race_bulk_adds_for_one_email");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    let email = Email::parse("race@example.com").expect("email");
    let mut tasks = Vec::new();
    for i in 0..8u128 {
        let s = db.store().await;
        let world = world.clone();
        let email = email.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                s.create_user(&User {
                    id: UserId(uuid::Uuid::from_u128(0xabc0 + i)),
                    email,
                    email_verified: false,
                    first_name: None,
                    last_name: None,
                })
                .await
                .map(|_| ())
            } else {
                let h = Harness::with_seed(Arc::new(s), 10 + i as u64);
                let w = usize::try_from(i % 6).expect("small");
                h.service
                    .bulk_invite(
                        &world.global_key(),
                        direct("race@example.com", &world, &[w]),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError::backend(e.to_string()))
            }
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("no error");
    }
    let snap = store.snapshot().await.expect("snapshot");
    assert_eq!(snap.users.iter().filter(|u| u.email == email).count(), 1);
}

#[tokio::test]
async fn store_errors_never_quote_row_values() {
    let url = server!("store_errors_never_quote_row_values");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let world = World::seed(&store).await;
    // A user the store cannot see under its email lock: created with another id by a host
    // that wrote the table itself, then a directory insert of the same id with another email
    // collides on the primary key, whose DETAIL would quote the row.
    db.connect()
        .await
        .batch_execute(
            "INSERT INTO users (id, email, email_verified) \
             VALUES ('00000000-0000-0000-0000-00000000dead', 'private.person@example.com', false)",
        )
        .await
        .expect("insert");
    let e = store
        .create_user(&User {
            id: UserId(uuid::Uuid::from_u128(0xdead)),
            email: Email::parse("other.person@example.com").expect("email"),
            email_verified: false,
            first_name: None,
            last_name: None,
        })
        .await
        .expect_err("duplicate id");
    let mut text = format!("{e} {e:?}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(text.contains("23505"), "{text}");
    assert!(
        !text.contains("private.person") && !text.contains("other.person"),
        "{text}"
    );
    let _ = world;
}

/// Polls `fut` once (it may send requests on its connection), then lets other tasks run.
async fn poll_once<F: std::future::Future>(fut: &mut std::pin::Pin<&mut F>) -> bool {
    let ready =
        std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready())).await;
    tokio::task::yield_now().await;
    ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_mid_transaction_leaves_no_open_transaction() {
    // The fast paths pipeline `BEGIN` and `COMMIT` with their statements. A request dropped
    // between them (its caller timed out, say) must not hand its connection back to the
    // pool inside the transaction: with a pool of one, the next request would run in it.
    let url = server!("a_request_cancelled_mid_transaction_leaves_no_open_transaction");
    let db = fresh_database(&url).await;
    let store = db
        .store_with(PgOptions::default().pool_size(1).expect("size"))
        .await;
    let world = World::seed(&store).await;
    let h = Harness::new(store.clone());
    let key = world.global_key();
    let client = db.connect().await;
    let open_transactions = "SELECT count(*) FROM pg_stat_activity \
        WHERE datname = current_database() AND state LIKE 'idle in transaction%'";
    let mut cancelled = 0;
    for polls in 0..48 {
        let (request, email) = if polls % 2 == 0 {
            (
                email_mode(&format!("c{polls}@example.com"), &world, &[0, 1, 2]),
                true,
            )
        } else {
            (
                direct(&format!("c{polls}@example.com"), &world, &[0, 1, 2]),
                false,
            )
        };
        // The request lives in this block: it is dropped (cancelled) at its end.
        let done = {
            let mut fut = std::pin::pin!(h.service.bulk_invite(&key, request));
            let mut done = false;
            for _ in 0..polls / 2 {
                if poll_once(&mut fut).await {
                    done = true;
                    break;
                }
            }
            done
        };
        cancelled += usize::from(!done);
        // A closed connection's server process may take a moment to go.
        let mut waited = 0;
        while count(&client, open_transactions).await > 0 {
            waited += 1;
            if waited >= 200 {
                let rows = client
                    .query(
                        "SELECT state, query, pid FROM pg_stat_activity \
                         WHERE datname = current_database()",
                        &[],
                    )
                    .await
                    .expect("activity");
                let seen: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "{:?} {:?}",
                            r.get::<_, Option<String>>(0),
                            r.get::<_, Option<String>>(1)
                        )
                    })
                    .collect();
                panic!("request {polls}: a connection stayed idle in a transaction: {seen:#?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The next request on the one-connection pool commits on its own.
        let next = format!("n{polls}@example.com");
        let r = h
            .service
            .bulk_invite(&key, direct(&next, &world, &[3]))
            .await
            .expect("bulk");
        assert_eq!(r.results[0].code, OutcomeCode::Added, "{r:?}");
        assert_eq!(
            count(
                &client,
                &format!("SELECT count(*) FROM users WHERE email = '{next}'")
            )
            .await,
            1
        );
        // The cancelled request is all or nothing.
        let rows = if email {
            count(
                &client,
                &format!("SELECT count(*) FROM invitations WHERE email = 'c{polls}@example.com'"),
            )
            .await
        } else {
            count(
                &client,
                &format!(
                    "SELECT count(*) FROM website_members m JOIN users u ON u.id = m.user_id \
                     WHERE u.email = 'c{polls}@example.com'"
                ),
            )
            .await
        };
        assert!(rows == 0 || rows == 3, "request {polls}: {rows} rows");
        if email {
            let batches = count(
                &client,
                &format!("SELECT count(*) FROM batches WHERE email = 'c{polls}@example.com'"),
            )
            .await;
            assert_eq!(batches, rows / 3, "request {polls}");
        }
    }
    assert!(cancelled > 10, "only {cancelled} requests were cut short");
}

#[tokio::test]
async fn the_pending_index_leads_with_the_email() {
    // Every bulk request reads the pending invitations of one email. Keyed by target first,
    // the index could serve that read only by walking all of it, which a plan made while
    // the table was small did, at a cost growing with every pending row (migration 4).
    let url = server!("the_pending_index_leads_with_the_email");
    let db = fresh_database(&url).await;
    let client = db.connect().await;
    let definition: String = client
        .query_one(
            "SELECT pg_get_indexdef('invitations_one_pending'::regclass)",
            &[],
        )
        .await
        .expect("index")
        .get(0);
    assert!(
        definition.starts_with("CREATE UNIQUE INDEX invitations_one_pending ON public.invitations")
            && definition
                .ends_with("(email, target_kind, target_id) WHERE (status = 'pending'::text)"),
        "{definition}"
    );
}

#[tokio::test]
async fn bulk_requests_read_few_pages_whatever_plan_is_cached() {
    // Prepared statements keep the plan they were given. A plan made while a table was small
    // (or, here, forced generic from the first execution) once read every pending
    // invitation of every email on each request: the facts read walked the one-pending
    // index (migration 4), so did the supersede UPDATE (now a join on the ids), and a list
    // by email could walk the organization's invitations (now through its batches). Measured
    // in pages, not time: with 40,000 pending rows planted, any such walk reads hundreds.
    let url = server!("bulk_requests_read_few_pages_whatever_plan_is_cached");
    let (stats, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let pgss = "SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_statements";
    if let Err(e) = stats.query_one(pgss, &[]).await {
        if std::env::var("INVITES_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
            panic!("pg_stat_statements is needed (scripts/pg-test-server.sh loads it): {e}");
        }
        println!(
            "skipped: bulk_requests_read_few_pages_whatever_plan_is_cached needs pg_stat_statements"
        );
        return;
    }
    let db = fresh_database(&url).await;
    let store = PgStore::connect(&format!(
        "{}?options=-c%20plan_cache_mode%3Dforce_generic_plan",
        db.url
    ))
    .await
    .expect("connect");
    let world = World::seed(&store).await;
    let org = world.org.0;
    let client = db.connect().await;
    client
        .batch_execute(&format!(
            "ALTER TABLE invitations SET (autovacuum_enabled = false);
             INSERT INTO batches
                 SELECT md5(b::text)::uuid, '{org}', 'planted-' || b || '@example.com',
                        sha256(b::text::bytea), 1, 1
                 FROM generate_series(1, 800) b;
             INSERT INTO invitations
                 SELECT gen_random_uuid(), md5(b::text)::uuid, '{org}', 'website',
                        gen_random_uuid(), 'planted-' || b || '@example.com', 'viewer', NULL,
                        NULL, 'pending', 1, 9000000000000
                 FROM generate_series(1, 800) b, generate_series(1, 50) t;"
        ))
        .await
        .expect("plant pending invitations");
    let h = Harness::new(store.clone());
    let key = world.global_key();
    let statements = async || -> std::collections::HashMap<String, (i64, i64)> {
        stats
            .query(
                "SELECT query, calls, shared_blks_hit + shared_blks_read FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) \
                 AND query LIKE '%invitations%' AND query NOT LIKE '%generate_series%'",
                &[&db.name],
            )
            .await
            .expect("statements")
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect()
    };
    // Each kind of request: an email invite, a direct add that supersedes it, an email
    // invite and a direct add of new addresses. The first round warms the connection (its
    // first statements read the catalogs); the second is measured.
    let mut before = HashMap::new();
    for round in 0..2 {
        if round == 1 {
            before = statements().await;
        }
        let ann = format!("ann{round}@example.com");
        let r = h
            .service
            .bulk_invite(&key, email_mode(&ann, &world, &[0]))
            .await
            .expect("bulk");
        assert_eq!(r.results[0].code, OutcomeCode::Invited, "{r:?}");
        for (i, request) in [
            direct(&ann, &world, &[0, 1]),
            email_mode(&format!("bob{round}@example.com"), &world, &[2, 3]),
            direct(&format!("cid{round}@example.com"), &world, &[4, 5]),
        ]
        .into_iter()
        .enumerate()
        {
            let r = h.service.bulk_invite(&key, request).await.expect("bulk");
            assert!(r.results.iter().all(|r| r.success), "request {i}: {r:?}");
        }
        // A list by email (through the email's batches, migration 5), not a walk of the
        // organization's invitations.
        let page = h
            .service
            .list_invitations(
                &key,
                InvitationFilter::Email(Email::parse(&ann).expect("email")),
                10,
                None,
            )
            .await
            .expect("list");
        assert_eq!(
            page.items.len(),
            1,
            "ann's invitation, superseded by the direct add"
        );
    }
    let after = statements().await;
    assert!(after.len() >= 3, "{} statements seen", after.len());
    for (query, (calls, pages)) in after {
        let (calls_before, pages_before) = before.get(&query).copied().unwrap_or_default();
        let (calls, pages) = (calls - calls_before, pages - pages_before);
        assert!(
            pages / calls.max(1) < 100,
            "{pages} pages in {calls} calls of: {query}"
        );
    }
}
