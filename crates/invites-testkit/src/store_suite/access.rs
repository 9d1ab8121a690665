//! Who has access, and taking it back ([`AccessStore`](invites_core::AccessStore) and the
//! directory's other half), method by method.

use super::support::*;
use crate::Backend;
use invites_core::access::{
    ChangeMember, MemberQuery, MemberRecord, UserWebsiteRecord, UserWebsitesQuery,
};
use invites_core::*;
use std::collections::BTreeSet;
use std::sync::Arc;

fn grp(g: GroupId) -> TargetId {
    TargetId::Group(g)
}

fn sorted(mut paths: Vec<AccessPath>) -> Vec<AccessPath> {
    paths.sort();
    paths
}

/// The paths of `user` to `website`, sorted; `None` for a missing website.
async fn paths(s: &dyn Backend, user: UserId, website: WebsiteId) -> Option<Vec<AccessPath>> {
    s.access_paths(user, website)
        .await
        .expect("read")
        .map(|f| sorted(f.paths))
}

async fn org_user(s: &dyn Backend, address: &str, n: u128, role: OrgRole) -> UserId {
    let user = s
        .create_user(&User {
            id: UserId(id(n)),
            email: email(address),
            email_verified: true,
            first_name: None,
            last_name: None,
        })
        .await
        .expect("user");
    s.add_org_member(ORG, user, role).await.expect("org member");
    user
}

async fn added(s: &dyn Backend, address: &str, user: u128, targets: &[TargetId]) -> UserId {
    let out = s
        .add_members(&add(address, user, targets, T0))
        .await
        .expect("add");
    assert!(ok(&out.targets).iter().all(|f| *f == AddFact::Added));
    out.user.expect("a user").id
}

/// `access_paths` reports every path from the user to the website (its website membership,
/// the memberships of the groups holding it, its membership of the website's organization)
/// with the website's organization, an empty list without a path, and `None` for a missing
/// website. It changes nothing.
pub async fn access_paths_reports_every_path_and_none_for_a_missing_website(
    backend: Arc<dyn Backend>,
) {
    let s = &*backend;
    seed(s).await;
    let ann = added(s, "ann@example.com", 1, &[web(A), grp(G)]).await;
    s.add_org_member(ORG, ann, OrgRole::Viewer)
        .await
        .expect("org member");
    let before = s.snapshot().await.expect("snapshot");
    let facts = s
        .access_paths(ann, A)
        .await
        .expect("read")
        .expect("A exists");
    assert_eq!(facts.organization, ORG);
    assert_eq!(
        sorted(facts.paths),
        vec![
            AccessPath::Direct { role: Role::Admin },
            AccessPath::Group {
                group: G,
                role: Role::Admin
            },
            AccessPath::Organization {
                org_role: OrgRole::Viewer
            },
        ]
    );
    assert_eq!(
        paths(s, ann, B).await,
        Some(vec![AccessPath::Organization {
            org_role: OrgRole::Viewer
        }]),
        "the organization reaches every website"
    );
    let bob = added(s, "bob@example.com", 2, &[grp(G)]).await;
    assert_eq!(
        paths(s, bob, A).await,
        Some(vec![AccessPath::Group {
            group: G,
            role: Role::Admin
        }])
    );
    assert_eq!(paths(s, bob, B).await, Some(vec![]), "no path");
    let foreign = s
        .access_paths(ann, FOREIGN)
        .await
        .expect("read")
        .expect("FOREIGN exists");
    assert_eq!(foreign.organization, OTHER_ORG);
    assert!(
        foreign.paths.is_empty(),
        "another organization's membership does not count"
    );
    assert_eq!(paths(s, ann, WebsiteId(id(0xdead))).await, None);
    assert_eq!(paths(s, UserId(id(0xdead)), A).await, Some(vec![]));
    s.delete_website(B, T0).await.expect("delete");
    assert_eq!(paths(s, ann, B).await, None, "a deleted website is missing");
    let mut after = s.snapshot().await.expect("snapshot");
    after.memberships.retain(|m| m.user != bob);
    after.users.retain(|u| u.id != bob);
    assert_eq!(after, before, "reads change nothing");
}

/// Every page of `list_members` with `limit`, concatenated.
async fn all_members(s: &dyn Backend, target: TargetId, limit: usize) -> Vec<MemberRecord> {
    let mut all: Vec<MemberRecord> = Vec::new();
    loop {
        let page = s
            .list_members(&MemberQuery {
                organization: ORG,
                target,
                after: all.last().map(|r| r.user),
                limit,
            })
            .await
            .expect("read")
            .expect("the target is in the organization");
        assert!(page.len() <= limit);
        let short = page.len() < limit;
        all.extend(page);
        if short {
            return all;
        }
    }
}

/// `list_members` pages a website's members (everyone who reaches it, each once with all
/// its paths) or a group's explicit members by user id after the position; any page size
/// covers each member once; a target outside the organization is `None`.
pub async fn list_members_pages_by_user_id_within_the_organization(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    let mut expected: Vec<(UserId, Vec<AccessPath>)> = Vec::new();
    for n in 0..3u128 {
        let u = added(s, &format!("direct{n}@example.com"), 10 + n, &[web(A)]).await;
        expected.push((u, vec![AccessPath::Direct { role: Role::Admin }]));
    }
    let both = added(s, "both@example.com", 20, &[web(A), grp(G)]).await;
    expected.push((
        both,
        vec![
            AccessPath::Direct { role: Role::Admin },
            AccessPath::Group {
                group: G,
                role: Role::Admin,
            },
        ],
    ));
    let grouped = added(s, "grouped@example.com", 21, &[grp(G)]).await;
    expected.push((
        grouped,
        vec![AccessPath::Group {
            group: G,
            role: Role::Admin,
        }],
    ));
    let owner = org_user(s, "owner@example.com", 30, OrgRole::Owner).await;
    expected.push((
        owner,
        vec![AccessPath::Organization {
            org_role: OrgRole::Owner,
        }],
    ));
    added(s, "elsewhere@example.com", 40, &[web(B)]).await;
    expected.sort();
    let n = expected.len();

    for limit in 1..=n + 1 {
        let got: Vec<(UserId, Vec<AccessPath>)> = all_members(s, web(A), limit)
            .await
            .into_iter()
            .map(|r| (r.user, sorted(r.paths)))
            .collect();
        assert_eq!(got, expected, "limit {limit}");
    }
    let records = all_members(s, web(A), 10).await;
    let both_row = records.iter().find(|r| r.user == both).expect("listed");
    assert_eq!(both_row.email, email("both@example.com"));

    let mut group: Vec<UserId> = vec![both, grouped];
    group.sort();
    let listed = all_members(s, grp(G), 1).await;
    assert_eq!(listed.iter().map(|r| r.user).collect::<Vec<_>>(), group);
    assert!(listed.iter().all(|r| r.paths
        == vec![AccessPath::Group {
            group: G,
            role: Role::Admin
        }]));

    for (organization, target) in [
        (ORG, web(FOREIGN)),
        (OTHER_ORG, web(A)),
        (OTHER_ORG, grp(G)),
        (ORG, web(WebsiteId(id(0xdead)))),
        (ORG, grp(GroupId(id(0xdead)))),
    ] {
        let q = MemberQuery {
            organization,
            target,
            after: None,
            limit: 10,
        };
        assert_eq!(s.list_members(&q).await.expect("read"), None, "{target:?}");
    }
}

/// `list_user_websites` pages the websites of the organization the user reaches, by id
/// after the position, each once with all its paths, within the allowlist when one is given
/// (applied before the page is cut); empty for an unknown user and in another organization.
pub async fn list_user_websites_pages_within_the_organization_and_the_allowlist(
    backend: Arc<dyn Backend>,
) {
    let s = &*backend;
    seed(s).await;
    let ann = added(s, "ann@example.com", 1, &[web(B), grp(G)]).await;
    let theirs = s
        .add_members(&AddMembers {
            organization: OTHER_ORG,
            ..add("ann@example.com", 1, &[web(FOREIGN)], T0)
        })
        .await
        .expect("add");
    assert_eq!(ok(&theirs.targets), vec![AddFact::Added]);
    let list = |user, after, limit, websites: Option<BTreeSet<WebsiteId>>| UserWebsitesQuery {
        organization: ORG,
        user,
        after,
        limit,
        websites,
    };
    let mut expected = vec![
        (
            A,
            "Alpha".to_owned(),
            vec![AccessPath::Group {
                group: G,
                role: Role::Admin,
            }],
        ),
        (
            B,
            "Beta".to_owned(),
            vec![AccessPath::Direct { role: Role::Admin }],
        ),
    ];
    expected.sort();
    let rows = |v: Vec<UserWebsiteRecord>| -> Vec<(WebsiteId, String, Vec<AccessPath>)> {
        v.into_iter()
            .map(|r| (r.website, r.name, sorted(r.paths)))
            .collect()
    };
    let all = s
        .list_user_websites(&list(ann, None, 10, None))
        .await
        .expect("read");
    assert_eq!(
        rows(all),
        expected,
        "X is not reached, FOREIGN is elsewhere"
    );
    let first = s
        .list_user_websites(&list(ann, None, 1, None))
        .await
        .expect("read");
    assert_eq!(rows(first.clone()), expected[..1]);
    let second = s
        .list_user_websites(&list(ann, Some(first[0].website), 1, None))
        .await
        .expect("read");
    assert_eq!(rows(second), expected[1..]);

    let only_b: BTreeSet<WebsiteId> = [B, X].into_iter().collect();
    let allowed = s
        .list_user_websites(&list(ann, None, 1, Some(only_b)))
        .await
        .expect("read");
    assert_eq!(
        allowed.iter().map(|r| r.website).collect::<Vec<_>>(),
        vec![B],
        "the allowlist applies before the page is cut"
    );
    let elsewhere = s
        .list_user_websites(&UserWebsitesQuery {
            organization: OTHER_ORG,
            ..list(ann, None, 10, None)
        })
        .await
        .expect("read");
    assert_eq!(
        elsewhere.iter().map(|r| r.website).collect::<Vec<_>>(),
        vec![FOREIGN]
    );
    let owner = org_user(s, "owner@example.com", 30, OrgRole::Viewer).await;
    let everything = s
        .list_user_websites(&list(owner, None, 10, None))
        .await
        .expect("read");
    let mut ours = vec![A, B, X];
    ours.sort();
    assert_eq!(
        everything.iter().map(|r| r.website).collect::<Vec<_>>(),
        ours
    );
    assert!(
        s.list_user_websites(&list(UserId(id(0xdead)), None, 10, None))
            .await
            .expect("read")
            .is_empty()
    );
}

/// `change_member` reads the target, the explicit membership and the organization
/// membership and applies `decide_change`: `Updated` (from the old role), `Unchanged`,
/// `Removed` (with the role it had; only live invitations to the same target for the
/// member's email are revoked, here none), `NotAMember`, `OrgMember`, `TargetNotFound` for
/// another organization's target. Only `Updated` and `Removed` write.
pub async fn change_member_applies_decide_change(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    let ann = added(s, "ann@example.com", 1, &[web(A), grp(G)]).await;
    // Invitations of ann elsewhere: to B (live) and to X (expired by the time of the removal).
    s.create_invitations(&invite("ann@example.com", 7, &[web(B)], T0))
        .await
        .expect("invite");
    s.create_invitations(&invite("ann@example.com", 8, &[web(X)], at(-8 * DAY)))
        .await
        .expect("invite");
    let cmd = |target, user, change| ChangeMember {
        organization: ORG,
        target,
        user,
        change,
        now: at(1),
        actor: None,
    };
    let set = |role| MemberChange::SetRole(role);

    let unchanged = s.snapshot().await.expect("snapshot");
    assert_eq!(
        s.change_member(&cmd(web(A), ann, set(Role::Admin)))
            .await
            .expect("change"),
        ChangeFact::Unchanged
    );
    assert_eq!(s.snapshot().await.expect("snapshot"), unchanged);
    assert_eq!(
        s.change_member(&cmd(web(A), ann, set(Role::Viewer)))
            .await
            .expect("change"),
        ChangeFact::Updated { from: Role::Admin }
    );
    let snap = s.snapshot().await.expect("snapshot");
    let row = snap
        .memberships
        .iter()
        .find(|m| m.target == web(A) && m.user == ann)
        .expect("kept");
    assert_eq!(
        (row.role, row.created_at),
        (Role::Viewer, T0),
        "only the role"
    );

    assert_eq!(
        s.change_member(&cmd(grp(G), ann, MemberChange::Remove))
            .await
            .expect("change"),
        ChangeFact::Removed {
            role: Role::Admin,
            revoked: 0
        }
    );
    let after = s.snapshot().await.expect("snapshot");
    assert!(!after.memberships.iter().any(|m| m.target == grp(G)));
    let status = |n: u128| {
        after
            .invitations
            .iter()
            .find(|i| i.id == InvitationId(id(n)))
            .map(|i| i.status)
    };
    assert_eq!(status(7000), Some(StoredStatus::Pending), "another target");
    assert_eq!(status(8000), Some(StoredStatus::Pending), "another target");

    let reported = [
        (
            cmd(grp(G), ann, MemberChange::Remove),
            ChangeFact::NotAMember,
        ),
        (cmd(web(B), ann, set(Role::Admin)), ChangeFact::NotAMember),
        (
            cmd(web(A), UserId(id(0xdead)), MemberChange::Remove),
            ChangeFact::NotAMember,
        ),
        (
            cmd(web(FOREIGN), ann, MemberChange::Remove),
            ChangeFact::TargetNotFound,
        ),
        (
            cmd(web(WebsiteId(id(0xdead))), ann, set(Role::Admin)),
            ChangeFact::TargetNotFound,
        ),
        (
            ChangeMember {
                organization: OTHER_ORG,
                ..cmd(web(A), ann, MemberChange::Remove)
            },
            ChangeFact::TargetNotFound,
        ),
    ];
    for (c, fact) in reported {
        assert_eq!(s.change_member(&c).await.expect("change"), fact, "{c:?}");
    }
    let owner = org_user(s, "owner@example.com", 30, OrgRole::Admin).await;
    let before = s.snapshot().await.expect("snapshot");
    assert_eq!(
        s.change_member(&cmd(web(A), owner, MemberChange::Remove))
            .await
            .expect("change"),
        ChangeFact::OrgMember
    );
    assert_eq!(
        s.change_member(&cmd(grp(G), owner, set(Role::Viewer)))
            .await
            .expect("change"),
        ChangeFact::OrgMember
    );
    assert_eq!(
        s.snapshot().await.expect("snapshot"),
        before,
        "reports write nothing"
    );
    assert_eq!(
        s.change_member(&cmd(web(A), ann, MemberChange::Remove))
            .await
            .expect("change"),
        ChangeFact::Removed {
            role: Role::Viewer,
            revoked: 0
        }
    );
    assert_eq!(paths(s, ann, A).await, Some(vec![]));
}

/// `erase_person` deletes, in one call, the user with the address (in every organization)
/// with its website, group and organization memberships, every invitation and batch to the
/// address (their tokens open nothing), every outbox message to it, and every idempotency
/// record whose response names the user's id; it reports each count and leaves everyone
/// else's rows as they were. An address without a user still loses its invitations.
pub async fn erase_person_deletes_every_row_of_the_person_and_nothing_else(
    backend: Arc<dyn Backend>,
) {
    let s = &*backend;
    seed(s).await;
    let ann = added(s, "ann@example.com", 1, &[web(A), grp(G)]).await;
    s.add_org_member(OTHER_ORG, ann, OrgRole::Viewer)
        .await
        .expect("org member");
    s.create_invitations(&invite("ann@example.com", 7, &[web(B), web(X)], T0))
        .await
        .expect("invite");
    added(s, "bob@example.com", 2, &[web(A)]).await;
    s.create_invitations(&invite("bob@example.com", 8, &[web(B)], T0))
        .await
        .expect("invite");
    s.create_invitations(&invite("carol@example.com", 9, &[web(B)], T0))
        .await
        .expect("invite");
    let key = ApiKeyId(id(3));
    let begin = |k: &str, now| IdempotencyBegin {
        organization: ORG,
        key_id: key,
        key: k.into(),
        fingerprint: [1; 32],
        expired_before: at(-DAY),
        stale_before: at(-60_000),
        now,
    };
    for (k, response) in [
        ("names-ann", format!("{{\"user_id\":\"{}\"}}", ann.0)),
        ("names-bob", format!("{{\"user_id\":\"{}\"}}", id(2))),
    ] {
        assert_eq!(
            s.idempotency_begin(&begin(k, T0)).await.expect("begin"),
            IdempotencyState::Started
        );
        s.idempotency_finish(ORG, key, k, T0, Some(&response), None)
            .await
            .expect("finish");
    }
    let before = s.snapshot().await.expect("snapshot");

    let report = s
        .erase_person(&email("ann@example.com"), T0)
        .await
        .expect("erase");
    assert_eq!(
        report,
        ErasureReport {
            user: Some(ann),
            memberships: 2,
            org_memberships: 1,
            invitations: 2,
            batches: 1,
            messages: 1,
            idempotency_records: 1,
        }
    );
    let after = s.snapshot().await.expect("snapshot");
    let mut expected = before.clone();
    let e = email("ann@example.com");
    expected.users.retain(|u| u.email != e);
    expected.memberships.retain(|m| m.user != ann);
    expected.org_members.retain(|(_, u, _)| *u != ann);
    expected.invitations.retain(|i| i.email != e);
    expected.batches.retain(|b| b.2 != e);
    expected.outbox.retain(|m| m.recipient != e);
    assert_eq!(after, expected, "exactly ann's rows are gone");
    assert_eq!(s.find_user(&e).await.expect("read"), None);
    assert_eq!(s.get_user(ann).await.expect("read"), None);
    assert_eq!(s.find_batch_by_token(&token(7)).await.expect("read"), None);
    assert!(
        s.find_batch_by_token(&token(8))
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        s.idempotency_begin(&begin("names-ann", at(1)))
            .await
            .expect("begin"),
        IdempotencyState::Started,
        "the record naming ann is gone"
    );
    assert!(
        matches!(
            s.idempotency_begin(&begin("names-bob", at(1)))
                .await
                .expect("begin"),
            IdempotencyState::Completed { .. }
        ),
        "bob's stays"
    );

    let carol = s
        .erase_person(&email("carol@example.com"), T0)
        .await
        .expect("erase");
    assert_eq!(
        carol,
        ErasureReport {
            user: None,
            invitations: 1,
            batches: 1,
            messages: 1,
            ..ErasureReport::default()
        },
        "an address without a user"
    );
    assert_eq!(
        s.erase_person(&email("ann@example.com"), T0)
            .await
            .expect("again"),
        ErasureReport::default()
    );
}

/// The directory's other half: `remove_org_member`, `set_org_role` (never adds),
/// `remove_website_from_group` and `delete_group` (with its memberships, links and
/// invitations, other rows of their batches kept) each report whether they changed
/// something, and the paths follow.
pub async fn the_directory_takes_access_away(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    let owner = org_user(s, "owner@example.com", 30, OrgRole::Owner).await;
    let org_path = |org_role| AccessPath::Organization { org_role };
    assert!(
        s.set_org_role(ORG, owner, OrgRole::Viewer, T0)
            .await
            .expect("set")
    );
    assert_eq!(
        paths(s, owner, B).await,
        Some(vec![org_path(OrgRole::Viewer)])
    );
    assert!(
        !s.set_org_role(OTHER_ORG, owner, OrgRole::Admin, T0)
            .await
            .expect("set")
    );
    assert!(
        !s.snapshot()
            .await
            .expect("snapshot")
            .org_members
            .iter()
            .any(|(o, _, _)| *o == OTHER_ORG),
        "not added"
    );
    assert!(s.remove_org_member(ORG, owner, T0).await.expect("remove"));
    assert_eq!(paths(s, owner, B).await, Some(vec![]));
    assert!(!s.remove_org_member(ORG, owner, T0).await.expect("again"));
    assert!(
        !s.set_org_role(ORG, owner, OrgRole::Admin, T0)
            .await
            .expect("set")
    );

    let ann = added(s, "ann@example.com", 1, &[grp(G), web(B)]).await;
    s.add_website_to_group(G, X).await.expect("link");
    assert!(paths(s, ann, X).await.is_some_and(|p| !p.is_empty()));
    assert!(s.remove_website_from_group(G, X, T0).await.expect("unlink"));
    assert_eq!(paths(s, ann, X).await, Some(vec![]));
    assert!(!s.remove_website_from_group(G, X, T0).await.expect("again"));
    assert!(
        !s.remove_website_from_group(G, B, T0)
            .await
            .expect("never linked")
    );

    s.create_invitations(&invite("bob@example.com", 7, &[grp(G), web(X)], T0))
        .await
        .expect("invite");
    assert!(s.delete_group(G, T0).await.expect("delete"));
    let snap = s.snapshot().await.expect("snapshot");
    assert!(!snap.memberships.iter().any(|m| m.target == grp(G)));
    assert!(!snap.invitations.iter().any(|i| i.target == grp(G)));
    assert_eq!(paths(s, ann, A).await, Some(vec![]));
    assert_eq!(
        paths(s, ann, B).await,
        Some(vec![AccessPath::Direct { role: Role::Admin }])
    );
    let batch = s
        .find_batch_by_token(&token(7))
        .await
        .expect("read")
        .expect("the batch stays");
    assert_eq!(
        batch
            .invitations
            .iter()
            .map(|i| i.target)
            .collect::<Vec<_>>(),
        vec![web(X)]
    );
    let q = MemberQuery {
        organization: ORG,
        target: grp(G),
        after: None,
        limit: 10,
    };
    assert_eq!(s.list_members(&q).await.expect("read"), None);
    assert!(!s.delete_group(G, T0).await.expect("again"));
    assert_eq!(s.snapshot().await.expect("snapshot"), snap);
}
