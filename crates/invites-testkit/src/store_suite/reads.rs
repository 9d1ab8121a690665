//! Reads and lists ([`ReadStore`](invites_core::ReadStore)), the directory and the snapshot.

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

/// Listing filters by derived status and pages by keyset.
pub async fn listing_filters_by_derived_status_and_pages_by_keyset(backend: Arc<dyn Backend>) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    s.create_invitations(&invite("a@example.com", 8, &[web(A), web(B), web(X)], T0))
        .await
        .unwrap();
    s.create_invitations(&invite("b@example.com", 9, &[web(A)], at(-8 * DAY)))
        .await
        .unwrap();
    let query = |filter, after, limit| InvitationQuery {
        organization: ORG,
        filter,
        after,
        limit,
        now: at(1),
        websites: None,
    };
    let all_a = s
        .list_invitations(&query(
            InvitationFilter::Email(email("a@example.com")),
            None,
            10,
        ))
        .await
        .unwrap();
    assert_eq!(all_a.len(), 3);
    let mut keys: Vec<_> = all_a.iter().map(|i| (i.created_at, i.id)).collect();
    keys.sort();
    assert_eq!(
        all_a
            .iter()
            .map(|i| (i.created_at, i.id))
            .collect::<Vec<_>>(),
        keys
    );

    // Pages of 2.
    let page1 = s
        .list_invitations(&query(
            InvitationFilter::Status(InvitationStatus::Pending),
            None,
            2,
        ))
        .await
        .unwrap();
    assert_eq!(page1.len(), 2);
    let last = page1.last().map(|i| (i.created_at, i.id));
    let page2 = s
        .list_invitations(&query(
            InvitationFilter::Status(InvitationStatus::Pending),
            last,
            2,
        ))
        .await
        .unwrap();
    assert_eq!(page2.len(), 1);
    assert!(page2.iter().all(|i| i.email == email("a@example.com")));

    let expired = s
        .list_invitations(&query(
            InvitationFilter::Status(InvitationStatus::Expired),
            None,
            10,
        ))
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        expired[0].status,
        StoredStatus::Pending,
        "stored status is returned"
    );
    assert_eq!(expired[0].status_at(at(1)), InvitationStatus::Expired);

    let on_a = s
        .list_invitations(&query(InvitationFilter::Target(web(A)), None, 10))
        .await
        .unwrap();
    assert_eq!(on_a.len(), 2);
    let other = InvitationQuery {
        organization: OTHER_ORG,
        ..query(InvitationFilter::Target(web(A)), None, 10)
    };
    assert!(s.list_invitations(&other).await.unwrap().is_empty());
}

/// The directory is idempotent and refuses conflicts.
pub async fn the_directory_is_idempotent_and_refuses_conflicts(backend: Arc<dyn Backend>) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    seed(s).await;
    assert!(s.create_organization(ORG, "Renamed").await.is_err());
    let site = Website {
        id: A,
        organization: ORG,
        name: "Other name".into(),
        url: "https://x".into(),
    };
    assert!(s.create_website(&site).await.is_err());
    let orphan = Website {
        id: WebsiteId(id(0x77)),
        organization: OrganizationId(id(0x78)),
        ..site
    };
    assert!(s.create_website(&orphan).await.is_err());
    assert!(
        s.create_group(&Group {
            id: G,
            organization: ORG,
            name: "Other".into()
        })
        .await
        .is_err()
    );
    assert!(
        s.add_website_to_group(G, FOREIGN).await.is_err(),
        "cross-organization"
    );
    assert!(s.add_website_to_group(GroupId(id(0x99)), A).await.is_err());
    s.add_website_to_group(G, B).await.unwrap();
    s.add_website_to_group(G, B).await.unwrap();

    let user = User {
        id: UserId(id(5)),
        email: email("Cy@Example.com"),
        email_verified: true,
        first_name: name("Cy"),
        last_name: name("Dee"),
    };
    assert_eq!(s.create_user(&user).await.unwrap(), user.id);
    let again = User {
        id: UserId(id(6)),
        ..user.clone()
    };
    assert_eq!(
        s.create_user(&again).await.unwrap(),
        user.id,
        "the existing user's id"
    );
    let clash = User {
        email: email("other@example.com"),
        ..user.clone()
    };
    assert!(
        s.create_user(&clash).await.is_err(),
        "same id, another email"
    );
    assert!(
        s.add_org_member(ORG, UserId(id(0x55)), OrgRole::Admin)
            .await
            .is_err()
    );
    s.add_org_member(ORG, user.id, OrgRole::Admin)
        .await
        .unwrap();
    s.add_org_member(ORG, user.id, OrgRole::Owner)
        .await
        .unwrap();
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.users, vec![user.clone()]);
    assert_eq!(snap.org_members, vec![(ORG, user.id, OrgRole::Owner)]);
}

/// The snapshot is in canonical order.
pub async fn the_snapshot_is_in_canonical_order(backend: Arc<dyn Backend>) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    for (n, address) in [
        (3u128, "zed@example.com"),
        (1, "amy@example.com"),
        (2, "max@example.com"),
    ] {
        s.add_members(&add(
            address,
            n,
            &[web(B), web(A), TargetId::Group(G)],
            at(n as i64),
        ))
        .await
        .unwrap();
        s.create_invitations(&invite(address, 10 + n, &[web(X)], at(10 - n as i64)))
            .await
            .unwrap();
    }
    let snap = s.snapshot().await.unwrap();
    let emails: Vec<&str> = snap.users.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(
        emails,
        vec!["amy@example.com", "max@example.com", "zed@example.com"]
    );
    let mut sorted = snap.memberships.clone();
    sorted.sort();
    assert_eq!(snap.memberships, sorted);
    assert_eq!(snap.memberships.len(), 9);
    let keys: Vec<_> = snap
        .invitations
        .iter()
        .map(|i| (i.created_at, i.id))
        .collect();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort();
    assert_eq!(keys, sorted_keys);
    let batch_ids: Vec<BatchId> = snap.batches.iter().map(|b| b.0).collect();
    let mut sorted_ids = batch_ids.clone();
    sorted_ids.sort();
    assert_eq!(batch_ids, sorted_ids);
    let outbox_keys: Vec<_> = snap.outbox.iter().map(|m| (m.created_at, m.id)).collect();
    let mut sorted_outbox = outbox_keys.clone();
    sorted_outbox.sort();
    assert_eq!(outbox_keys, sorted_outbox);
}

/// The scope of a website-scoped key is part of the list query: only invitations to those
/// websites are returned, and the limit counts only them, so a page is never cut at a row the
/// caller cannot see; an empty scope sees nothing.
pub async fn listing_is_scoped_in_the_query(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    for (n, target) in [
        (1u128, web(A)),
        (2, web(X)),
        (3, web(B)),
        (4, TargetId::Group(G)),
    ] {
        s.create_invitations(&invite("ann@example.com", n, &[target], at(n as i64)))
            .await
            .expect("invite");
    }
    let query = |websites: Option<Vec<WebsiteId>>, limit| InvitationQuery {
        organization: ORG,
        filter: InvitationFilter::Email(email("ann@example.com")),
        after: None,
        limit,
        now: at(10),
        websites: websites.map(|w| w.into_iter().collect()),
    };
    let targets =
        |rows: Vec<InvitationRecord>| rows.into_iter().map(|r| r.target).collect::<Vec<_>>();
    let all = s.list_invitations(&query(None, 10)).await.expect("list");
    assert_eq!(all.len(), 4);
    let only_b = s
        .list_invitations(&query(Some(vec![B]), 1))
        .await
        .expect("list");
    assert_eq!(
        targets(only_b),
        vec![web(B)],
        "the first visible row, not the first row"
    );
    let a_and_x = s
        .list_invitations(&query(Some(vec![X, A]), 10))
        .await
        .expect("list");
    assert_eq!(targets(a_and_x), vec![web(A), web(X)], "never a group's");
    let none = s
        .list_invitations(&query(Some(vec![]), 10))
        .await
        .expect("list");
    assert!(none.is_empty());
    let status = InvitationQuery {
        filter: InvitationFilter::Status(InvitationStatus::Pending),
        ..query(Some(vec![B]), 10)
    };
    assert_eq!(
        targets(s.list_invitations(&status).await.expect("list")),
        vec![web(B)]
    );
}
