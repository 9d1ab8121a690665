//! Who has access, and taking it back, on PostgreSQL (issue 18): every answer of the new
//! store methods equals the memory store's on the same operations; a removal revokes the
//! member's live invitation to the target; concurrent adds and removes of one person
//! serialize; and the access reads cost the page whatever plan is cached. Each test skips
//! (one line) without `INVITES_PG_URL`.

use invites_core::access::{
    ChangeMember, MemberChange, MemberQuery, MemberRecord, UserWebsitesQuery,
};
use invites_core::{
    AccessPath, AccessStore, BulkInviteRequest, Clock, Directory, Email, GroupId, Inspect,
    InvitationFilter, InvitationStatus, InviteMethod, MemberOutcome, MembershipStore, OrgRole,
    OrganizationId, OutcomeCode, Principal, Role, TargetId, UserId, WebsiteId,
};
use invites_memory::MemoryStore;
use invites_postgres::PgStore;
use invites_postgres::testing::{fresh_database, server_url};
use invites_testkit::{Harness, World};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

macro_rules! server {
    ($test:literal) => {
        match server_url(concat!("postgres test ", $test)) {
            Some(url) => url,
            None => return,
        }
    };
}

// ---------------------------------------------------------------------------------------------
// The same answers as the memory store

/// Everything the scenario's answers are logged as, one line each.
#[derive(Default)]
struct Log(Vec<String>);

impl Log {
    fn note(&mut self, label: impl std::fmt::Display, value: impl Debug) {
        self.0.push(format!("{label}: {value:?}"));
    }
}

fn sorted(mut paths: Vec<AccessPath>) -> Vec<AccessPath> {
    paths.sort();
    paths
}

fn members(records: Vec<MemberRecord>) -> Vec<(UserId, String, Vec<AccessPath>)> {
    records
        .into_iter()
        .map(|r| (r.user, r.email.as_str().to_owned(), sorted(r.paths)))
        .collect()
}

async fn direct_add(
    h: &Harness,
    key: &Principal,
    email: &str,
    role: Role,
    targets: &[TargetId],
) -> UserId {
    let mut r = BulkInviteRequest::websites(
        InviteMethod::Direct,
        email,
        targets.iter().filter_map(|t| match t {
            TargetId::Website(w) => Some(*w),
            TargetId::Group(_) => None,
        }),
    );
    let groups: Vec<GroupId> = targets
        .iter()
        .filter_map(|t| match t {
            TargetId::Group(g) => Some(*g),
            TargetId::Website(_) => None,
        })
        .collect();
    if !groups.is_empty() {
        r = BulkInviteRequest::groups(InviteMethod::Direct, email, groups);
    }
    r.role = Some(role);
    let response = h.service.bulk_invite(key, r).await.expect("direct add");
    assert!(response.results.iter().all(|r| r.success), "{response:?}");
    response.user_id.expect("user")
}

/// Every read of the access port over the world, logged.
async fn reads(
    log: &mut Log,
    phase: &str,
    store: &dyn MembershipStore,
    w: &World,
    users: &[UserId],
) {
    let unknown_website = WebsiteId(Uuid::from_u128(0xdead));
    let unknown_group = GroupId(Uuid::from_u128(0xdeaf));
    let websites: Vec<WebsiteId> = w
        .websites
        .iter()
        .copied()
        .chain([w.other_website, unknown_website])
        .collect();
    for (u, user) in users.iter().enumerate() {
        for website in &websites {
            let facts = store
                .access_paths(*user, *website)
                .await
                .expect("access_paths")
                .map(|f| (f.organization, sorted(f.paths)));
            log.note(
                format_args!("{phase} access_paths user {u} {website}"),
                facts,
            );
        }
    }
    let targets: Vec<(OrganizationId, TargetId)> = websites
        .iter()
        .map(|w| TargetId::Website(*w))
        .chain(w.groups.iter().map(|g| TargetId::Group(*g)))
        .chain([
            TargetId::Group(w.other_group),
            TargetId::Group(unknown_group),
        ])
        .map(|t| (w.org, t))
        .chain([
            (w.other_org, TargetId::Website(w.other_website)),
            (w.other_org, TargetId::Group(w.other_group)),
        ])
        .collect();
    for (org, target) in targets {
        for limit in [1, 2, 500] {
            let mut after = None;
            loop {
                let page = store
                    .list_members(&MemberQuery {
                        organization: org,
                        target,
                        after,
                        limit,
                    })
                    .await
                    .expect("list_members");
                let len = page.as_ref().map(Vec::len);
                after = page.as_ref().and_then(|p| p.last()).map(|r| r.user);
                log.note(
                    format_args!("{phase} list_members {org} {target:?} limit {limit}"),
                    page.map(members),
                );
                if len != Some(limit) {
                    break;
                }
            }
        }
    }
    let allowlists = [
        None,
        Some(BTreeSet::from([
            w.websites[0],
            w.websites[3],
            w.other_website,
        ])),
        Some(BTreeSet::new()),
    ];
    for (u, user) in users.iter().enumerate() {
        for org in [w.org, w.other_org] {
            for allow in &allowlists {
                for limit in [1, 3, 500] {
                    let mut after = None;
                    loop {
                        let page = store
                            .list_user_websites(&UserWebsitesQuery {
                                organization: org,
                                user: *user,
                                after,
                                limit,
                                websites: allow.clone(),
                            })
                            .await
                            .expect("list_user_websites");
                        after = page.last().map(|r| r.website);
                        let len = page.len();
                        let page: Vec<_> = page
                            .into_iter()
                            .map(|r| (r.website, r.name, sorted(r.paths)))
                            .collect();
                        log.note(
                            format_args!(
                                "{phase} list_user_websites user {u} {org} {allow:?} limit {limit}"
                            ),
                            page,
                        );
                        if len != limit {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// The same operations on any backend, every answer logged.
async fn scenario<B: MembershipStore + Directory + Inspect>(store: Arc<B>) -> Vec<String> {
    let mut log = Log::default();
    let w = World::seed(&*store).await;
    let h = Harness::with_seed(store.clone(), 7);
    let key = w.global_key();
    let other_key = Principal::global(w.other_org, key.key_id);
    let site = |i: usize| TargetId::Website(w.websites[i]);
    let group = |i: usize| TargetId::Group(w.groups[i]);
    let ann = direct_add(&h, &key, "ann@acme.test", Role::Admin, &[site(0), site(2)]).await;
    let bob = direct_add(&h, &key, "bob@acme.test", Role::Viewer, &[group(0)]).await;
    let cy = direct_add(&h, &key, "cy@acme.test", Role::Viewer, &[site(1)]).await;
    direct_add(&h, &key, "cy@acme.test", Role::Admin, &[group(1)]).await;
    store
        .add_org_member(w.org, cy, OrgRole::Viewer)
        .await
        .expect("org member");
    let dee = direct_add(
        &h,
        &other_key,
        "dee@acme.test",
        Role::Viewer,
        &[TargetId::Website(w.other_website)],
    )
    .await;
    direct_add(
        &h,
        &other_key,
        "dee@acme.test",
        Role::Admin,
        &[TargetId::Group(w.other_group)],
    )
    .await;
    for target in [
        BulkInviteRequest::websites(InviteMethod::Email, "eve@acme.test", [w.websites[4]]),
        BulkInviteRequest::groups(InviteMethod::Email, "eve@acme.test", [w.groups[1]]),
    ] {
        let r = h.service.bulk_invite(&key, target).await.expect("invite");
        assert_eq!(r.results[0].code, OutcomeCode::Invited, "{r:?}");
    }
    let unknown = UserId(Uuid::from_u128(0xbad));
    let users = [ann, bob, cy, dee, w.org_admin, w.existing_user, unknown];
    reads(&mut log, "before", &*store, &w, &users).await;

    let change = |target: TargetId, user: UserId, change: MemberChange| ChangeMember {
        organization: w.org,
        target,
        user,
        change,
        now: h.clock.now(),
        actor: None,
    };
    for (label, cmd) in [
        (
            "bob group 0 admin",
            change(group(0), bob, MemberChange::SetRole(Role::Admin)),
        ),
        (
            "bob group 0 admin again",
            change(group(0), bob, MemberChange::SetRole(Role::Admin)),
        ),
        (
            "bob site 0 admin",
            change(site(0), bob, MemberChange::SetRole(Role::Admin)),
        ),
        (
            "admin site 0 remove",
            change(site(0), w.org_admin, MemberChange::Remove),
        ),
        (
            "cy other website remove",
            change(TargetId::Website(w.other_website), cy, MemberChange::Remove),
        ),
        (
            "ann site 2 remove",
            change(site(2), ann, MemberChange::Remove),
        ),
        (
            "ann site 2 remove again",
            change(site(2), ann, MemberChange::Remove),
        ),
        (
            "cy site 1 remove",
            change(site(1), cy, MemberChange::Remove),
        ),
        (
            "cy group 1 viewer",
            change(group(1), cy, MemberChange::SetRole(Role::Viewer)),
        ),
        (
            "unknown site 0 remove",
            change(site(0), unknown, MemberChange::Remove),
        ),
        (
            "unknown other group",
            change(
                TargetId::Group(w.other_group),
                unknown,
                MemberChange::Remove,
            ),
        ),
        (
            "unknown website",
            change(
                TargetId::Website(WebsiteId(Uuid::from_u128(0xdead))),
                ann,
                MemberChange::SetRole(Role::Viewer),
            ),
        ),
    ] {
        let fact = store.change_member(&cmd).await.expect("change_member");
        log.note(format_args!("change {label}"), fact);
    }
    log.note(
        "remove site 1 from group 0",
        store
            .remove_website_from_group(w.groups[0], w.websites[1], h.clock.now())
            .await,
    );
    log.note(
        "remove site 1 from group 0 again",
        store
            .remove_website_from_group(w.groups[0], w.websites[1], h.clock.now())
            .await,
    );
    log.note(
        "cy org admin",
        store
            .set_org_role(w.org, cy, OrgRole::Admin, h.clock.now())
            .await,
    );
    log.note(
        "ann org admin",
        store
            .set_org_role(w.org, ann, OrgRole::Admin, h.clock.now())
            .await,
    );
    reads(&mut log, "middle", &*store, &w, &users).await;
    log.note(
        "cy leaves",
        store.remove_org_member(w.org, cy, h.clock.now()).await,
    );
    log.note(
        "cy leaves again",
        store.remove_org_member(w.org, cy, h.clock.now()).await,
    );
    log.note(
        "delete group 1",
        store.delete_group(w.groups[1], h.clock.now()).await,
    );
    log.note(
        "delete group 1 again",
        store.delete_group(w.groups[1], h.clock.now()).await,
    );
    log.note(
        "delete unknown group",
        store
            .delete_group(GroupId(Uuid::from_u128(0xdeaf)), h.clock.now())
            .await,
    );
    reads(&mut log, "after", &*store, &w, &users).await;
    log.note(
        "snapshot after changes",
        store.snapshot().await.expect("snapshot"),
    );
    for address in [
        "ann@acme.test",
        "eve@acme.test",
        "nobody@acme.test",
        "dee@acme.test",
    ] {
        let report = store
            .erase_person(&Email::parse(address).expect("email"), h.clock.now())
            .await
            .expect("erase");
        log.note(format_args!("erase {address}"), report);
    }
    reads(&mut log, "erased", &*store, &w, &users).await;
    log.note(
        "snapshot after erasure",
        store.snapshot().await.expect("snapshot"),
    );
    log.0
}

#[tokio::test]
async fn every_access_answer_matches_the_memory_store() {
    let url = server!("every_access_answer_matches_the_memory_store");
    let db = fresh_database(&url).await;
    let postgres = scenario(Arc::new(db.store().await)).await;
    let memory = scenario(Arc::new(MemoryStore::new())).await;
    assert!(postgres.len() > 500, "{} answers", postgres.len());
    for (p, m) in postgres.iter().zip(&memory) {
        assert_eq!(p, m, "postgres (left) and memory (right) differ");
    }
    assert_eq!(postgres.len(), memory.len());
}

// ---------------------------------------------------------------------------------------------
// Removal revokes the live invitation to the target

#[tokio::test]
async fn removing_a_member_revokes_its_live_invitation_to_the_target_only() {
    let url = server!("removing_a_member_revokes_its_live_invitation_to_the_target_only");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let w = World::seed(&store).await;
    let h = Harness::new(store.clone());
    let key = w.global_key();
    // Pending invitations of fay to sites 0, 1 and 2, and of gus to site 0.
    for (address, sites) in [("fay@acme.test", vec![0, 1, 2]), ("gus@acme.test", vec![0])] {
        let r = h
            .service
            .bulk_invite(
                &key,
                BulkInviteRequest::websites(
                    InviteMethod::Email,
                    address,
                    sites.iter().map(|&i| w.websites[i]),
                ),
            )
            .await
            .expect("invite");
        assert!(r.results.iter().all(|r| r.success), "{r:?}");
    }
    // Fay is also a member of sites 0 and 1, written by the host itself (no path of the
    // library makes a member with a live invitation to the same target); site 1's
    // invitation has expired.
    let fay = store
        .create_user(&invites_core::User {
            id: UserId(Uuid::from_u128(0xfa1)),
            email: Email::parse("fay@acme.test").expect("email"),
            email_verified: true,
            first_name: None,
            last_name: None,
        })
        .await
        .expect("user");
    let client = db.connect().await;
    client
        .execute(
            "INSERT INTO website_members (website_id, user_id, role, created_at) \
             SELECT w, $1, 'viewer', 1 FROM unnest($2::uuid[]) AS w",
            &[&fay.0, &vec![w.websites[0].0, w.websites[1].0]],
        )
        .await
        .expect("memberships");
    client
        .execute(
            "UPDATE invitations SET expires_at = 1 WHERE email = 'fay@acme.test' AND target_id = $1",
            &[&w.websites[1].0],
        )
        .await
        .expect("expire");
    for (site, revoked) in [(0, 1), (1, 0)] {
        let r = h
            .service
            .remove_member(&key, TargetId::Website(w.websites[site]), fay)
            .await
            .expect("remove");
        assert_eq!(
            (r.code, r.revoked_invitations),
            (MemberOutcome::Removed, revoked),
            "site {site}: {r:?}"
        );
    }
    let statuses = |address: &'static str| {
        let h = h.clone();
        let key = key.clone();
        async move {
            let page = h
                .service
                .list_invitations(
                    &key,
                    InvitationFilter::Email(Email::parse(address).expect("email")),
                    10,
                    None,
                )
                .await
                .expect("list");
            page.items
                .into_iter()
                .map(|i| (i.target, i.status))
                .collect::<HashMap<_, _>>()
        }
    };
    let fay_now = statuses("fay@acme.test").await;
    assert_eq!(
        fay_now[&TargetId::Website(w.websites[0])],
        InvitationStatus::Revoked
    );
    assert_eq!(
        fay_now[&TargetId::Website(w.websites[1])],
        InvitationStatus::Expired
    );
    assert_eq!(
        fay_now[&TargetId::Website(w.websites[2])],
        InvitationStatus::Pending
    );
    let gus_now = statuses("gus@acme.test").await;
    assert_eq!(
        gus_now[&TargetId::Website(w.websites[0])],
        InvitationStatus::Pending
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrent adds and removes of one person

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_and_removes_of_one_person_serialize() {
    let url = server!("concurrent_adds_and_removes_of_one_person_serialize");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let w = World::seed(&store).await;
    let h = Harness::new(store.clone());
    let key = w.global_key();
    let site = TargetId::Website(w.websites[0]);
    let user = direct_add(&h, &key, "hal@acme.test", Role::Viewer, &[site]).await;
    let (added, removed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (h, key, w) = (h.clone(), key.clone(), w.clone());
        let (added, removed) = (added.clone(), removed.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                if task % 2 == 0 {
                    let r = h
                        .service
                        .bulk_invite(
                            &key,
                            BulkInviteRequest::websites(
                                InviteMethod::Direct,
                                "hal@acme.test",
                                [w.websites[0]],
                            ),
                        )
                        .await
                        .expect("add");
                    match r.results[0].code {
                        OutcomeCode::Added => added.fetch_add(1, Ordering::SeqCst),
                        OutcomeCode::AlreadyMember => 0,
                        other => panic!("add: {other:?}"),
                    };
                } else {
                    let r = h
                        .service
                        .remove_member(&key, site, user)
                        .await
                        .expect("remove");
                    match r.code {
                        MemberOutcome::Removed => removed.fetch_add(1, Ordering::SeqCst),
                        MemberOutcome::NotAMember => 0,
                        other => panic!("remove: {other:?}"),
                    };
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let is_member = store
        .access_paths(user, w.websites[0])
        .await
        .expect("paths")
        .is_some_and(|f| !f.paths.is_empty());
    let (added, removed) = (added.load(Ordering::SeqCst), removed.load(Ordering::SeqCst));
    // In any serial order adds and removes alternate: the member at the start, plus every
    // add, minus every removal, is the member at the end.
    assert_eq!(
        1 + added - removed,
        usize::from(is_member),
        "{added} added, {removed} removed"
    );
    assert!(removed > 3, "only {removed} removals took effect");
}

// ---------------------------------------------------------------------------------------------
// A page costs the page

#[tokio::test]
async fn access_reads_cost_the_page_whatever_plan_is_cached() {
    // Each read is a keyset page: the sources are index ranges from the cursor (migration
    // 6) and the paths of each row are probes. A plan that walked a source instead (every
    // member of a website, every website of an organization or of a user; 60,000 rows of
    // each are planted) reads about 1,000 buffers per table it walks, even in bitmap
    // scans over these narrow rows, and the plans this test caught did (one sorted every
    // membership of the user, filtering each by its website's organization: 60,000 buffers
    // at 20,000 rows); a page of 10 reads a few hundred. Plans are forced generic from the
    // first execution and the tables keep the statistics of an empty database, as a
    // prepared statement planned at start-up would.
    let url = server!("access_reads_cost_the_page_whatever_plan_is_cached");
    let (stats, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    if let Err(e) = stats
        .query_one("SELECT count(*) FROM pg_stat_statements", &[])
        .await
    {
        if std::env::var("INVITES_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
            panic!("pg_stat_statements is needed (scripts/pg-test-server.sh loads it): {e}");
        }
        println!(
            "skipped: access_reads_cost_the_page_whatever_plan_is_cached needs pg_stat_statements"
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
    let w = World::seed(&store).await;
    let (org, site0, group0) = (w.org.0, w.websites[0].0, w.groups[0].0);
    let big_group = Uuid::from_u128(0xb16);
    let client = db.connect().await;
    client
        .batch_execute(&format!(
            "DO $$ DECLARE t text; BEGIN
                 FOREACH t IN ARRAY ARRAY['users', 'websites', 'groups', 'group_websites',
                     'website_members', 'group_members', 'org_members'] LOOP
                     EXECUTE format('ALTER TABLE %I SET (autovacuum_enabled = false)', t);
                 END LOOP;
             END $$;
             INSERT INTO users
                 SELECT md5('u' || n)::uuid, 'planted-' || n || '@example.com', false, NULL, NULL
                 FROM generate_series(1, 60000) n;
             INSERT INTO website_members
                 SELECT '{site0}', md5('u' || n)::uuid, 'viewer', 1 FROM generate_series(1, 60000) n;
             INSERT INTO group_members
                 SELECT '{group0}', md5('u' || n)::uuid, 'viewer', 1 FROM generate_series(1, 60000) n;
             INSERT INTO org_members
                 SELECT '{org}', md5('u' || n)::uuid, 'viewer' FROM generate_series(1, 60000) n;
             INSERT INTO websites
                 SELECT md5('w' || n)::uuid, '{org}', 'W' || n, 'https://w' || n
                 FROM generate_series(1, 60000) n;
             INSERT INTO website_members
                 SELECT md5('w' || n)::uuid, md5('u1')::uuid, 'admin', 1
                 FROM generate_series(1, 60000) n;
             INSERT INTO groups VALUES ('{big_group}', '{org}', 'Big');
             INSERT INTO group_websites
                 SELECT '{big_group}', md5('w' || n)::uuid FROM generate_series(1, 60000) n;
             INSERT INTO group_members VALUES ('{big_group}', md5('u1')::uuid, 'viewer', 1);"
        ))
        .await
        .expect("plant");
    let planted: UserId = UserId(
        client
            .query_one("SELECT md5('u1')::uuid", &[])
            .await
            .expect("id")
            .get(0),
    );
    let statements = async || -> HashMap<String, (i64, i64)> {
        stats
            .query(
                "SELECT query, calls, shared_blks_hit + shared_blks_read FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) \
                 AND query LIKE '%members%' AND query NOT LIKE '%generate_series%'",
                &[&db.name],
            )
            .await
            .expect("statements")
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect()
    };
    // Twenty planted websites (and six of the world's) out of 60,006.
    let allow: BTreeSet<WebsiteId> = client
        .query(
            "SELECT md5('w' || n)::uuid FROM generate_series(1, 20) n",
            &[],
        )
        .await
        .expect("ids")
        .iter()
        .map(|row| WebsiteId(row.get(0)))
        .chain(w.websites.iter().copied())
        .collect();
    // Two rounds: the first warms the connection (its first statements read the catalogs),
    // the second is measured.
    let mut before = HashMap::new();
    for round in 0..2 {
        if round == 1 {
            before = statements().await;
        }
        let facts = store
            .access_paths(planted, w.websites[0])
            .await
            .expect("paths")
            .expect("website");
        assert_eq!(facts.paths.len(), 3, "{:?}", facts.paths);
        for target in [
            TargetId::Website(w.websites[0]),
            TargetId::Group(w.groups[0]),
        ] {
            let mut after = None;
            for _ in 0..3 {
                let page = store
                    .list_members(&MemberQuery {
                        organization: w.org,
                        target,
                        after,
                        limit: 10,
                    })
                    .await
                    .expect("members")
                    .expect("target");
                assert_eq!(page.len(), 10);
                after = page.last().map(|r| r.user);
            }
        }
        for websites in [None, Some(allow.clone())] {
            let mut after = None;
            for _ in 0..3 {
                let page = store
                    .list_user_websites(&UserWebsitesQuery {
                        organization: w.org,
                        user: planted,
                        after,
                        limit: 10,
                        websites: websites.clone(),
                    })
                    .await
                    .expect("websites");
                assert!(!page.is_empty());
                after = page.last().map(|r| r.website);
            }
        }
    }
    let after = statements().await;
    let mut measured = Vec::new();
    for (query, (calls, pages)) in after {
        let (calls_before, pages_before) = before.get(&query).copied().unwrap_or_default();
        let (calls, pages) = (calls - calls_before, pages - pages_before);
        if calls > 0 {
            println!(
                "{} pages per call ({calls} calls) of: {query}",
                pages / calls
            );
            measured.push((pages / calls, query));
        }
    }
    assert!(
        measured.len() >= 6,
        "{} statements measured",
        measured.len()
    );
    for (pages, query) in measured {
        assert!(pages < 500, "{pages} pages per call of: {query}");
    }
}

// ---------------------------------------------------------------------------------------------
// A member whose stored email this version cannot read

#[tokio::test]
async fn a_member_with_an_unreadable_email_is_left_out_and_the_page_filled_up() {
    let url = server!("a_member_with_an_unreadable_email_is_left_out_and_the_page_filled_up");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    let w = World::seed(&store).await;
    let h = Harness::new(store.clone());
    let key = w.global_key();
    let group = TargetId::Group(w.groups[0]);
    let mut users = Vec::new();
    for n in 0..5 {
        users.push(direct_add(&h, &key, &format!("m{n}@acme.test"), Role::Viewer, &[group]).await);
    }
    users.sort();
    // The second member's address, as a hand or another tool might have stored it.
    db.connect()
        .await
        .execute(
            "UPDATE users SET email = 'NOT@normalised.TEST' WHERE id = $1",
            &[&users[1].0],
        )
        .await
        .expect("spoil");
    for target in [group, TargetId::Website(w.websites[0])] {
        let page = |after, limit| {
            let store = store.clone();
            async move {
                store
                    .list_members(&MemberQuery {
                        organization: w.org,
                        target,
                        after,
                        limit,
                    })
                    .await
            }
        };
        // Everyone but the spoiled member (a website also lists the organization's admin).
        let mut readable: Vec<UserId> = users.iter().copied().filter(|u| *u != users[1]).collect();
        if matches!(target, TargetId::Website(_)) {
            readable.push(w.org_admin);
        }
        readable.sort();
        let first = page(None, 2).await.expect("page").expect("target");
        let ids: Vec<UserId> = first.iter().map(|r| r.user).collect();
        assert_eq!(ids, readable[..2], "{target:?}: filled up past the bad row");
        let rest = page(ids.last().copied(), 10)
            .await
            .expect("page")
            .expect("target");
        let ids: Vec<UserId> = rest.iter().map(|r| r.user).collect();
        assert_eq!(ids, readable[2..], "{target:?}");
    }
}
