//! The contract of [`WebhookStore`] (docs/contract.md §12, `invites_core::endpoints`), checked
//! against a backend: registering, listing, changing and deleting endpoints; claims that lease
//! due endpoints with events to send; records fenced by the lease. A backend runs it with
//! [`webhook_suite!`](crate::webhook_suite!).

use invites_core::*;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What the webhook checks need of a backend: the endpoints, the event log (written by the
/// port's calls) and the directory to seed.
pub trait WebhookBackend: WebhookStore + MembershipStore + Directory + Debug {}
impl<T: WebhookStore + MembershipStore + Directory + Debug> WebhookBackend for T {}

const ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0100));
const OTHER_ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0200));
const SITE: WebsiteId = WebsiteId(Uuid::from_u128(0x0a));
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

fn endpoint(n: u128, organization: OrganizationId) -> WebhookEndpoint {
    WebhookEndpoint {
        id: EndpointId(Uuid::from_u128(n)),
        organization,
        url: format!("https://hooks{n}.example/in"),
        secrets: vec![format!("whsec_secret{n}")],
        event_types: None,
    }
}

async fn seed(s: &dyn WebhookBackend) {
    s.create_organization(ORG, "Acme").await.expect("org");
    s.create_organization(OTHER_ORG, "Other")
        .await
        .expect("org");
    s.create_website(&Website {
        id: SITE,
        organization: ORG,
        name: "Site".into(),
        url: "https://site.example".into(),
    })
    .await
    .expect("site");
}

/// Two events in `ORG` (a user created and added), at `now`.
async fn two_events(s: &dyn WebhookBackend, n: u128, now: Timestamp) {
    s.add_members(&AddMembers {
        organization: ORG,
        email: Email::parse(&format!("p{n}@example.com")).expect("email"),
        new_user: NewUser {
            id: UserId(Uuid::from_u128(0x5000 + n)),
            first_name: None,
            last_name: None,
        },
        role: Role::Viewer,
        targets: vec![TargetId::Website(SITE)],
        now,
        actor: None,
    })
    .await
    .expect("add");
}

async fn the(s: &dyn WebhookBackend, id: EndpointId, org: OrganizationId) -> EndpointState {
    s.list_endpoints(org)
        .await
        .expect("list")
        .into_iter()
        .find(|e| e.endpoint.id == id)
        .expect("listed")
}

/// Endpoints are created once (a second create of the id is `false`), start where asked,
/// are listed per organization by id, changed (progress kept), disabled and enabled again
/// (failures reset), and deleted; another organization's endpoint looks missing.
pub async fn endpoints_are_registered_changed_and_deleted(s: Arc<dyn WebhookBackend>) {
    let s = &*s;
    seed(s).await;
    two_events(s, 1, T0).await;
    let mut a = endpoint(2, ORG);
    a.event_types = Some(BTreeSet::from([
        EventKind::MemberAdded,
        EventKind::EmailSent,
    ]));
    assert!(
        s.create_endpoint(&a, StartAt::Latest, T0)
            .await
            .expect("create")
    );
    assert!(
        !s.create_endpoint(&endpoint(2, ORG), StartAt::After(0), T0)
            .await
            .expect("again")
    );
    let b = endpoint(1, ORG);
    assert!(
        s.create_endpoint(&b, StartAt::After(0), at(1))
            .await
            .expect("create")
    );
    let c = endpoint(3, OTHER_ORG);
    assert!(
        s.create_endpoint(&c, StartAt::Latest, T0)
            .await
            .expect("create")
    );
    let listed = s.list_endpoints(ORG).await.expect("list");
    assert_eq!(
        listed.iter().map(|e| e.endpoint.id).collect::<Vec<_>>(),
        vec![b.id, a.id],
        "by id, this organization's only"
    );
    assert_eq!(listed[1].endpoint, a, "stored as given, kinds included");
    assert_eq!(
        (listed[1].delivered_through, listed[0].delivered_through),
        (2, 0),
        "Latest starts after the last event, After(0) at the start"
    );
    assert_eq!(listed[0].next_attempt_at, at(1));
    assert_eq!((listed[0].failed_attempts, listed[0].disabled), (0, None));
    assert!(
        s.create_endpoint(
            &endpoint(9, OrganizationId(Uuid::from_u128(0xbad))),
            StartAt::Latest,
            T0
        )
        .await
        .is_err(),
        "an unknown organization"
    );

    let mut moved = a.clone();
    moved.url = "https://elsewhere.example/in".into();
    moved.secrets = vec!["whsec_new".into(), "whsec_old".into()];
    moved.event_types = None;
    assert!(s.update_endpoint(&moved).await.expect("update"));
    let mut foreign = moved.clone();
    foreign.organization = OTHER_ORG;
    assert!(
        !s.update_endpoint(&foreign)
            .await
            .expect("another organization's")
    );
    let now = the(s, a.id, ORG).await;
    assert_eq!(now.endpoint, moved);
    assert_eq!(now.delivered_through, 2, "progress kept");

    assert!(
        s.set_endpoint_enabled(ORG, a.id, false, at(5))
            .await
            .expect("disable")
    );
    assert_eq!(
        the(s, a.id, ORG).await.disabled,
        Some(DisabledReason::ByHost)
    );
    assert!(
        !s.set_endpoint_enabled(OTHER_ORG, a.id, true, at(6))
            .await
            .expect("foreign")
    );
    assert!(
        s.set_endpoint_enabled(ORG, a.id, true, at(7))
            .await
            .expect("enable")
    );
    let enabled = the(s, a.id, ORG).await;
    assert_eq!((enabled.disabled, enabled.next_attempt_at), (None, at(7)));

    assert!(!s.delete_endpoint(OTHER_ORG, a.id).await.expect("foreign"));
    assert!(s.delete_endpoint(ORG, a.id).await.expect("delete"));
    assert!(!s.delete_endpoint(ORG, a.id).await.expect("again"));
    assert_eq!(s.list_endpoints(ORG).await.expect("list").len(), 1);
}

/// A claim leases the enabled, due endpoints that have an event after their progress, in
/// (next_attempt_at, id) order up to the limit; a leased endpoint is not claimed again until
/// the lease ends. Records apply only under the claim's lease; `Advanced` never moves back
/// and resets failures only when it moves; `Failed` and `Disabled` keep the progress.
pub async fn claims_lease_and_records_are_fenced(s: Arc<dyn WebhookBackend>) {
    let s = &*s;
    seed(s).await;
    // Endpoints 1..=4 in ORG, created before any event; 5 in OTHER_ORG (no events there).
    for n in 1..=4 {
        s.create_endpoint(&endpoint(n, ORG), StartAt::After(0), at(n as u64))
            .await
            .expect("create");
    }
    s.create_endpoint(&endpoint(5, OTHER_ORG), StartAt::After(0), T0)
        .await
        .expect("create");
    assert!(
        s.claim_due_endpoints(at(100), at(160), 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing to send yet"
    );
    two_events(s, 1, at(100)).await;
    s.set_endpoint_enabled(ORG, EndpointId(Uuid::from_u128(4)), false, at(100))
        .await
        .expect("disable 4");

    let first = s
        .claim_due_endpoints(at(100), at(160), 2)
        .await
        .expect("claim");
    let ids = |v: &[EndpointState]| {
        v.iter()
            .map(|e| e.endpoint.id.0.as_u128())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), vec![1, 2], "due order, the limit");
    assert_eq!(first[0].next_attempt_at, at(1), "as found");
    let second = s
        .claim_due_endpoints(at(100), at(160), 10)
        .await
        .expect("claim");
    assert_eq!(
        ids(&second),
        vec![3],
        "leased ones and the disabled one are not claimed"
    );
    assert!(
        s.claim_due_endpoints(at(159), at(200), 10)
            .await
            .expect("claim")
            .is_empty()
    );

    let e1 = EndpointId(Uuid::from_u128(1));
    let advanced = |through, due, lease| WebhookUpdate::Advanced {
        through,
        next_attempt_at: due,
        leased_until: lease,
    };
    assert!(
        !s.record_webhook(e1, &advanced(1, at(160), at(999)))
            .await
            .expect("wrong lease")
    );
    assert!(
        s.record_webhook(e1, &advanced(1, at(160), at(160)))
            .await
            .expect("keeps the lease")
    );
    let failed = WebhookUpdate::Failed {
        failed_attempts: 1,
        next_attempt_at: at(165),
        error: "the receiver answered 500".into(),
        leased_until: at(160),
    };
    assert!(s.record_webhook(e1, &failed).await.expect("failed"));
    let st = the(s, e1, ORG).await;
    assert_eq!(
        (
            st.delivered_through,
            st.failed_attempts,
            st.next_attempt_at,
            st.last_error.as_deref()
        ),
        (1, 1, at(165), Some("the receiver answered 500"))
    );
    assert!(
        !s.record_webhook(e1, &failed)
            .await
            .expect("the lease is gone")
    );

    // Claimed again when due: 1 still has event 2 to send.
    let again = s
        .claim_due_endpoints(at(165), at(225), 10)
        .await
        .expect("claim");
    assert_eq!(
        ids(&again),
        vec![2, 3, 1],
        "leases of 2 and 3 ran out at 160; by due time"
    );
    assert!(
        !s.record_webhook(e1, &advanced(0, at(225), at(225)))
            .await
            .expect("never back")
    );
    assert!(
        s.record_webhook(e1, &advanced(1, at(225), at(225)))
            .await
            .expect("same place")
    );
    assert_eq!(
        the(s, e1, ORG).await.failed_attempts,
        1,
        "not moved: failures stay"
    );
    assert!(
        s.record_webhook(e1, &advanced(2, at(170), at(225)))
            .await
            .expect("done")
    );
    let st = the(s, e1, ORG).await;
    assert_eq!(
        (st.delivered_through, st.failed_attempts, st.last_error),
        (2, 0, None)
    );
    assert!(
        !ids(&s
            .claim_due_endpoints(at(300), at(360), 10)
            .await
            .expect("claim"))
        .contains(&1),
        "nothing after its progress"
    );

    let e2 = EndpointId(Uuid::from_u128(2));
    let disabled = WebhookUpdate::Disabled {
        reason: DisabledReason::Gone,
        failed_attempts: 1,
        error: "the receiver answered 410 Gone".into(),
        leased_until: at(360),
    };
    assert!(s.record_webhook(e2, &disabled).await.expect("disable"));
    let st = the(s, e2, ORG).await;
    assert_eq!(
        (st.disabled, st.delivered_through),
        (Some(DisabledReason::Gone), 0)
    );
    assert!(
        !s.record_webhook(EndpointId(Uuid::from_u128(0x77)), &failed)
            .await
            .expect("unknown")
    );
}

/// Concurrent claims never return the same endpoint while its lease holds.
pub async fn concurrent_claims_never_share_an_endpoint(s: Arc<dyn WebhookBackend>) {
    seed(&*s).await;
    for n in 1..=20 {
        s.create_endpoint(&endpoint(n, ORG), StartAt::After(0), T0)
            .await
            .expect("create");
    }
    two_events(&*s, 1, T0).await;
    let claim = |s: Arc<dyn WebhookBackend>| async move {
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(
                s.claim_due_endpoints(at(1), at(60), 3)
                    .await
                    .expect("claim")
                    .into_iter()
                    .map(|e| e.endpoint.id),
            );
        }
        got
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claim(s.clone())),
        tokio::spawn(claim(s.clone()))
    );
    let mut all = a.expect("task");
    all.extend(b.expect("task"));
    let distinct: BTreeSet<EndpointId> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "claimed twice: {all:?}");
    assert_eq!(distinct.len(), 20);
}

/// Expands to the webhook store checks for one backend, each with a fresh backend from the
/// async factory expression (yielding `Arc<dyn WebhookBackend>`).
#[macro_export]
macro_rules! webhook_suite {
    ($factory:expr $(,)?) => {
        $crate::__webhook_tests! {
            $factory;
            endpoints_are_registered_changed_and_deleted,
            claims_lease_and_records_are_fenced,
            concurrent_claims_never_share_an_endpoint,
        }
    };
}

/// Implementation detail of [`webhook_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __webhook_tests {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend: ::std::sync::Arc<dyn $crate::webhook_suite::WebhookBackend> =
                    ($factory).await;
                $crate::webhook_suite::$name(backend).await;
            }
        )*
    };
}
