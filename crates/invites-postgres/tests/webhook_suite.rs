//! Webhook endpoints on PostgreSQL, on a real server (each test skips with one `skipped:`
//! line without `INVITES_PG_URL`):
//!
//! - the webhook store checks of `invites-testkit` (`webhook_suite!`), a fresh database per
//!   test;
//! - `two_servers_never_share_a_claim_and_resume_after_a_crash`: two stores (two pools, as
//!   two app servers) claim concurrently from 20 due endpoints, round after round, and never
//!   return the same endpoint twice within a lease; an endpoint whose deliverer stopped
//!   (crashed) mid-turn is claimed by the other store once the lease runs out, with its
//!   progress as last recorded, and the crashed deliverer's late record no longer applies;
//! - `unreadable_endpoints_are_left_out`: endpoints with a kind name or a disabled reason this
//!   version cannot read, planted with raw SQL, are left out of the listing and the claim,
//!   and never keep the others from being listed or claimed.

use invites_core::{
    AddMembers, BulkStore, Directory, Email, EndpointId, EndpointState, NewUser, OrganizationId,
    Role, StartAt, TargetId, Timestamp, UserId, WebhookEndpoint, WebhookStore, WebhookUpdate,
    Website, WebsiteId,
};
use invites_postgres::PgStore;
use invites_postgres::testing::{fresh_database, server_url};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;
use uuid::Uuid;

invites_testkit::webhook_suite!({
    let Some(url) = server_url("postgres webhook suite") else {
        return;
    };
    async move { Arc::new(fresh_database(&url).await.store().await) }
});

macro_rules! server {
    ($test:literal) => {
        match server_url(concat!("postgres test ", $test)) {
            Some(url) => url,
            None => return,
        }
    };
}

const ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0100));
const SITE: WebsiteId = WebsiteId(Uuid::from_u128(0x0a));
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

fn endpoint_id(n: u128) -> EndpointId {
    EndpointId(Uuid::from_u128(n))
}

fn endpoint(n: u128) -> WebhookEndpoint {
    WebhookEndpoint {
        id: endpoint_id(n),
        organization: ORG,
        url: format!("https://hooks{n}.example/in"),
        secrets: vec![format!("whsec_secret{n}")],
        event_types: None,
    }
}

/// The organization with a website, and two events in its log (a user created and added).
async fn seed(store: &PgStore) {
    store.create_organization(ORG, "Acme").await.expect("org");
    store
        .create_website(&Website {
            id: SITE,
            organization: ORG,
            name: "Site".into(),
            url: "https://site.example".into(),
        })
        .await
        .expect("site");
    store
        .add_members(&AddMembers {
            organization: ORG,
            email: Email::parse("p1@example.com").expect("email"),
            new_user: NewUser {
                id: UserId(Uuid::from_u128(0x5001)),
                first_name: None,
                last_name: None,
            },
            role: Role::Viewer,
            targets: vec![TargetId::Website(SITE)],
            now: T0,
            actor: None,
        })
        .await
        .expect("add");
}

async fn state(store: &PgStore, id: EndpointId) -> EndpointState {
    store
        .list_endpoints(ORG)
        .await
        .expect("list")
        .into_iter()
        .find(|e| e.endpoint.id == id)
        .expect("listed")
}

/// Claims (3 at a time) until a claim returns nothing; the ids claimed.
async fn claim_all(
    store: Arc<PgStore>,
    start: Arc<Barrier>,
    now: Timestamp,
    lease_until: Timestamp,
) -> Vec<EndpointId> {
    start.wait().await;
    let mut got = Vec::new();
    loop {
        let page = store
            .claim_due_endpoints(now, lease_until, 3)
            .await
            .expect("claim");
        if page.is_empty() {
            return got;
        }
        got.extend(page.into_iter().map(|e| e.endpoint.id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_share_a_claim_and_resume_after_a_crash() {
    let url = server!("two_servers_never_share_a_claim_and_resume_after_a_crash");
    let db = fresh_database(&url).await;
    let a = Arc::new(db.store().await);
    let b = Arc::new(db.store().await);
    seed(&a).await;
    for n in 1..=20 {
        assert!(
            a.create_endpoint(&endpoint(n), StartAt::After(0), T0)
                .await
                .expect("create")
        );
    }

    // Round after round, each store claims until nothing is left; every lease runs out
    // before the next round, so each round claims all 20 again.
    for round in 1..=5u64 {
        let now = at(round * 100);
        let lease_until = now.plus(Duration::from_secs(60));
        let start = Arc::new(Barrier::new(2));
        let (got_a, got_b) = tokio::join!(
            tokio::spawn(claim_all(a.clone(), start.clone(), now, lease_until)),
            tokio::spawn(claim_all(b.clone(), start, now, lease_until)),
        );
        let mut all = got_a.expect("task a");
        all.extend(got_b.expect("task b"));
        let distinct: BTreeSet<EndpointId> = all.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "round {round}: claimed twice: {all:?}"
        );
        assert_eq!(
            distinct.len(),
            20,
            "round {round}: every due endpoint claimed"
        );
        assert!(
            b.claim_due_endpoints(now, lease_until, 100)
                .await
                .expect("claim")
                .is_empty(),
            "round {round}: all leased"
        );
    }

    // Crash and resume, with endpoint 1 alone (the others disabled). Due again at 600:
    // store `a` claims it, fails once, claims it again, delivers event 1 (keeping the
    // lease) and stops there (crashes).
    for n in 2..=20 {
        assert!(
            a.set_endpoint_enabled(ORG, endpoint_id(n), false, at(600))
                .await
                .expect("disable")
        );
    }
    let e1 = endpoint_id(1);
    let claimed = a
        .claim_due_endpoints(at(600), at(660), 1)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint.id, e1);
    assert!(
        a.record_webhook(
            e1,
            &WebhookUpdate::Failed {
                failed_attempts: 1,
                next_attempt_at: at(610),
                error: "the receiver answered 503".into(),
                leased_until: at(660),
            },
        )
        .await
        .expect("failed")
    );
    let claimed = a
        .claim_due_endpoints(at(610), at(670), 1)
        .await
        .expect("claim");
    assert_eq!(
        claimed
            .iter()
            .map(|e| (e.endpoint.id, e.failed_attempts, e.last_error.as_deref()))
            .collect::<Vec<_>>(),
        vec![(e1, 1, Some("the receiver answered 503"))]
    );
    assert!(
        a.record_webhook(
            e1,
            &WebhookUpdate::Advanced {
                through: 1,
                next_attempt_at: at(670),
                leased_until: at(670),
            },
        )
        .await
        .expect("advanced")
    );
    // `a` is gone from here on. While its lease holds, `b` does not get the endpoint.
    let early = b
        .claim_due_endpoints(at(669), at(729), 100)
        .await
        .expect("claim");
    assert!(
        !early.iter().any(|e| e.endpoint.id == e1),
        "leased until 670"
    );
    // Once it ran out, `b` claims it, with the progress `a` recorded last.
    let resumed = b
        .claim_due_endpoints(at(670), at(730), 100)
        .await
        .expect("claim");
    let found = resumed
        .iter()
        .find(|e| e.endpoint.id == e1)
        .expect("claimed again");
    assert_eq!(
        (
            found.delivered_through,
            found.failed_attempts,
            found.last_error.as_deref(),
            found.next_attempt_at,
            found.disabled,
        ),
        (1, 0, None, at(670), None),
        "resumes after event 1, as found (the old lease's end)"
    );
    assert_eq!(found.endpoint, endpoint(1));
    // The crashed deliverer's late record is fenced off; the new holder's applies.
    let late = WebhookUpdate::Advanced {
        through: 2,
        next_attempt_at: at(680),
        leased_until: at(670),
    };
    assert!(!a.record_webhook(e1, &late).await.expect("late record"));
    let st = state(&b, e1).await;
    assert_eq!((st.delivered_through, st.next_attempt_at), (1, at(730)));
    assert!(
        b.record_webhook(
            e1,
            &WebhookUpdate::Advanced {
                through: 2,
                next_attempt_at: at(700),
                leased_until: at(730),
            },
        )
        .await
        .expect("advanced")
    );
    let st = state(&a, e1).await;
    assert_eq!((st.delivered_through, st.next_attempt_at), (2, at(700)));
    assert!(
        !b.claim_due_endpoints(at(1000), at(1060), 100)
            .await
            .expect("claim")
            .iter()
            .any(|e| e.endpoint.id == e1),
        "nothing after its progress"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_endpoints_are_left_out() {
    let url = server!("unreadable_endpoints_are_left_out");
    let db = fresh_database(&url).await;
    let store = db.store().await;
    seed(&store).await;
    for n in 1..=4 {
        store
            .create_endpoint(&endpoint(n), StartAt::After(0), at(n as u64))
            .await
            .expect("create");
    }
    let raw = db.connect().await;
    // 1: a kind this version does not know (due first); 2: a reason it does not know.
    for (sql, n) in [
        (
            "UPDATE webhook_endpoints SET event_types = ARRAY['member_added', 'from_the_future'] \
             WHERE id = $1",
            1,
        ),
        (
            "UPDATE webhook_endpoints SET disabled = 'from_the_future' WHERE id = $1",
            2,
        ),
    ] {
        let changed = raw.execute(sql, &[&endpoint_id(n).0]).await.expect("plant");
        assert_eq!(changed, 1);
    }
    let ids = |v: &[EndpointState]| {
        v.iter()
            .map(|e| e.endpoint.id.0.as_u128())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&store.list_endpoints(ORG).await.expect("list")),
        vec![3, 4],
        "the others are listed"
    );
    // The unreadable endpoint is due first and the limit is 2: the claim still returns the
    // next one; the one it left out is behind the others until its lease ends.
    assert_eq!(
        ids(&store
            .claim_due_endpoints(at(100), at(160), 2)
            .await
            .expect("claim")),
        vec![3]
    );
    assert_eq!(
        ids(&store
            .claim_due_endpoints(at(100), at(160), 2)
            .await
            .expect("claim")),
        vec![4]
    );
}
