//! Who has access, and taking it back (docs/contract.md §11): the access check, membership changes with
//! their typed outcomes, the member lists (tenancy and keyset paging).

use super::support::*;
use crate::{Backend, Harness};
use invites_core::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

async fn change(
    h: &Harness,
    p: &Principal,
    target: TargetId,
    user: UserId,
    role: Option<Role>,
) -> MemberChangeResponse {
    let r = match role {
        Some(role) => h.service.set_member_role(p, target, user, role).await,
        None => h.service.remove_member(p, target, user).await,
    }
    .expect("a change is answered");
    assert_eq!(
        (r.target, r.user_id),
        (target, user),
        "echoes what was asked"
    );
    r
}

/// Asserts the outcome of a change that must change nothing, and that nothing changed.
async fn refused(
    backend: &Arc<dyn Backend>,
    h: &Harness,
    p: &Principal,
    target: TargetId,
    user: UserId,
    code: MemberOutcome,
) {
    let before = snapshot(backend).await;
    for role in [Some(Role::Admin), Some(Role::Viewer), None] {
        let r = change(h, p, target, user, role).await;
        assert_eq!(r.code, code, "{target:?} {role:?}: {r:?}");
        assert_eq!((r.role, r.revoked_invitations), (None, 0), "{r:?}");
        assert!(!r.code.is_change());
    }
    assert_eq!(snapshot(backend).await, before, "{code:?} changes nothing");
}

/// Access reports every path (direct; a group, named; the organization, owner and admin as
/// `admin`, viewer as `viewer`), the strongest wins and every path is listed in the canonical
/// order (direct, groups by id, organization); no path, another organization's website, an
/// unknown website or user is no access.
pub async fn access_reports_every_path_and_the_strongest_wins(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 180).await;
    let (ws, gs) = (&w.websites, &w.groups);
    let p = w.global_key();
    use OrgRole::{Admin as OrgAdmin, Owner, Viewer as OrgViewer};
    use Role::{Admin, Viewer};

    let ann = add_to_sites(&h, &p, "ann@new.test", &[ws[0]], Viewer).await;
    assert_eq!(
        access_of(&h, ann, ws[0]).await,
        reach(Viewer, &[direct(Viewer)])
    );
    add_to_groups(&h, &w, "ann@new.test", &[gs[0]], Admin).await;
    assert_eq!(
        access_of(&h, ann, ws[1]).await,
        reach(Admin, &[via(gs[0], Admin)]),
        "a group reaches its websites, named"
    );
    assert_eq!(
        access_of(&h, ann, ws[0]).await,
        reach(Admin, &[direct(Viewer), via(gs[0], Admin)]),
        "the strongest wins, every path is reported"
    );
    backend
        .add_website_to_group(gs[1], ws[0])
        .await
        .expect("link");
    add_to_groups(&h, &w, "ann@new.test", &[gs[1]], Viewer).await;
    assert_eq!(
        access_of(&h, ann, ws[0]).await,
        reach(
            Admin,
            &[direct(Viewer), via(gs[0], Admin), via(gs[1], Viewer)]
        ),
        "groups by id"
    );

    let owner = org_member(&backend, w.org, "owner@acme.test", 0x1801, Owner).await;
    let viewer = org_member(&backend, w.org, "viewer@acme.test", 0x1802, OrgViewer).await;
    for site in [ws[3], ws[5]] {
        assert_eq!(
            access_of(&h, owner, site).await,
            reach(Admin, &[org(Owner)])
        );
        assert_eq!(
            access_of(&h, w.org_admin, site).await,
            reach(Admin, &[org(OrgAdmin)])
        );
        assert_eq!(
            access_of(&h, viewer, site).await,
            reach(Viewer, &[org(OrgViewer)])
        );
    }

    // Explicit grants first, then the organization: three paths at once.
    let bob = add_to_sites(&h, &p, "bob@new.test", &[ws[2]], Viewer).await;
    add_to_groups(&h, &w, "bob@new.test", &[gs[1]], Viewer).await;
    backend
        .add_org_member(w.org, bob, OrgAdmin)
        .await
        .expect("org member");
    assert_eq!(
        access_of(&h, bob, ws[2]).await,
        reach(Admin, &[direct(Viewer), via(gs[1], Viewer), org(OrgAdmin)]),
        "the organization is the strongest here"
    );
    let carol = add_to_sites(&h, &p, "carol@new.test", &[ws[3]], Admin).await;
    backend
        .add_org_member(w.org, carol, OrgViewer)
        .await
        .expect("org member");
    assert_eq!(
        access_of(&h, carol, ws[3]).await,
        reach(Admin, &[direct(Admin), org(OrgViewer)])
    );
    assert_eq!(
        access_of(&h, carol, ws[4]).await,
        reach(Viewer, &[org(OrgViewer)])
    );

    assert_eq!(access_of(&h, w.existing_user, ws[0]).await, None, "no path");
    assert_eq!(access_of(&h, ann, ws[5]).await, None, "no path to this one");
    let theirs = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x1803)));
    add_to_sites(&h, &theirs, "dave@new.test", &[w.other_website], Admin).await;
    for user in [ann, owner, w.org_admin, bob] {
        assert_eq!(
            access_of(&h, user, w.other_website).await,
            None,
            "another organization's website"
        );
        assert_eq!(access_of(&h, user, missing_website()).await, None);
    }
    assert_eq!(
        access_of(&h, UserId(Uuid::from_u128(0xdead_0003)), ws[0]).await,
        None,
        "an unknown user"
    );
}

/// Every outcome of a membership change: `updated` and `unchanged` (with the role),
/// `removed` (access through a group stays), `not_a_member`, `has_org_access`, `forbidden`
/// (a scoped key outside its websites, and for any group), `target_not_found` (unknown, or
/// another organization's target even where the user is a member). Only `updated` and
/// `removed` change anything.
pub async fn member_changes_have_typed_outcomes(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 181).await;
    let (ws, gs) = (&w.websites, &w.groups);
    let p = w.global_key();
    let ann = add_to_sites(&h, &p, "ann@new.test", &[ws[0], ws[2]], Role::Viewer).await;
    add_to_groups(&h, &w, "ann@new.test", &[gs[0]], Role::Viewer).await;

    let r = change(&h, &p, web(ws[0]), ann, Some(Role::Admin)).await;
    assert_eq!(
        (r.code, r.role, r.revoked_invitations),
        (MemberOutcome::Updated, Some(Role::Admin), 0)
    );
    let s = snapshot(&backend).await;
    assert_eq!(
        membership(&s, web(ws[0]), ann).map(|m| m.role),
        Some(Role::Admin)
    );
    assert_eq!(
        access_of(&h, ann, ws[0]).await.map(|a| a.role),
        Some(Role::Admin)
    );
    let r = change(&h, &p, web(ws[0]), ann, Some(Role::Admin)).await;
    assert_eq!(
        (r.code, r.role),
        (MemberOutcome::Unchanged, Some(Role::Admin))
    );
    assert!(!r.code.is_change());
    assert_eq!(snapshot(&backend).await, s, "unchanged changes nothing");
    let r = change(&h, &p, grp(gs[0]), ann, Some(Role::Admin)).await;
    assert_eq!(
        (r.code, r.role),
        (MemberOutcome::Updated, Some(Role::Admin))
    );

    let r = change(&h, &p, web(ws[0]), ann, None).await;
    assert_eq!(
        (r.code, r.role, r.revoked_invitations),
        (MemberOutcome::Removed, None, 0)
    );
    assert!(membership(&snapshot(&backend).await, web(ws[0]), ann).is_none());
    assert_eq!(
        access_of(&h, ann, ws[0]).await,
        reach(Role::Admin, &[via(gs[0], Role::Admin)]),
        "the group still reaches it"
    );
    refused(&backend, &h, &p, web(ws[0]), ann, MemberOutcome::NotAMember).await;
    refused(
        &backend,
        &h,
        &p,
        web(ws[1]),
        w.existing_user,
        MemberOutcome::NotAMember,
    )
    .await;
    let nobody = UserId(Uuid::from_u128(0xdead_0004));
    refused(
        &backend,
        &h,
        &p,
        grp(gs[1]),
        nobody,
        MemberOutcome::NotAMember,
    )
    .await;
    refused(
        &backend,
        &h,
        &p,
        web(ws[0]),
        w.org_admin,
        MemberOutcome::HasOrgAccess,
    )
    .await;
    refused(
        &backend,
        &h,
        &p,
        grp(gs[0]),
        w.org_admin,
        MemberOutcome::HasOrgAccess,
    )
    .await;

    let scoped = w.scoped_key(&[ws[1]]);
    refused(
        &backend,
        &h,
        &scoped,
        web(ws[2]),
        ann,
        MemberOutcome::Forbidden,
    )
    .await;
    refused(
        &backend,
        &h,
        &scoped,
        grp(gs[0]),
        ann,
        MemberOutcome::Forbidden,
    )
    .await;
    let own = w.scoped_key(&[ws[2]]);
    let r = change(&h, &own, web(ws[2]), ann, Some(Role::Admin)).await;
    assert_eq!(
        r.code,
        MemberOutcome::Updated,
        "a scoped key on its website"
    );

    let theirs = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x1811)));
    add_to_sites(
        &h,
        &theirs,
        "ann@new.test",
        &[w.other_website],
        Role::Viewer,
    )
    .await;
    for target in [
        web(w.other_website),
        grp(w.other_group),
        web(missing_website()),
        grp(missing_group()),
    ] {
        refused(&backend, &h, &p, target, ann, MemberOutcome::TargetNotFound).await;
    }
    refused(
        &backend,
        &h,
        &theirs,
        web(ws[2]),
        ann,
        MemberOutcome::TargetNotFound,
    )
    .await;
    assert!(
        membership(&snapshot(&backend).await, web(w.other_website), ann).is_some(),
        "another organization's membership is untouched"
    );
    let codes: Vec<&str> = [
        MemberOutcome::Updated,
        MemberOutcome::Removed,
        MemberOutcome::Unchanged,
        MemberOutcome::NotAMember,
        MemberOutcome::HasOrgAccess,
        MemberOutcome::Forbidden,
        MemberOutcome::TargetNotFound,
    ]
    .iter()
    .map(MemberOutcome::as_str)
    .collect();
    assert_eq!(
        codes,
        [
            "updated",
            "removed",
            "unchanged",
            "not_a_member",
            "has_org_access",
            "forbidden",
            "target_not_found"
        ]
    );
}

/// Removing a member leaves no pending link that grants the access back: the invitation to
/// the same target, superseded when the member was added, opens nothing (accepting the
/// batch does not re-add the user), while the user's invitation to another target of the
/// same batch is untouched and still accepted.
///
/// (Through the port, an explicit membership never coexists with a live invitation to the
/// same target for the member's email: adding supersedes it, accepting accepts it, and a
/// member is not invited. So a removal reached through the service revokes none; the
/// revocation guards rows a host wrote itself.)
pub async fn removal_leaves_no_link_that_grants_it_back(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 182).await;
    let ws = &w.websites;
    let p = w.global_key();
    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[0], ws[1]])).await;
    let token = h.last_token();
    let (to_0, to_1) = (invite_id(&r, 0), invite_id(&r, 1));
    let ann = add_to_sites(&h, &p, "ann@new.test", &[ws[0]], Role::Admin).await;

    let removed = change(&h, &p, web(ws[0]), ann, None).await;
    assert_eq!(removed.code, MemberOutcome::Removed);
    assert_eq!(removed.revoked_invitations, 0, "nothing live to revoke");
    let s = snapshot(&backend).await;
    assert_eq!(invitation(&s, to_0).status, StoredStatus::Superseded);
    assert_eq!(
        invitation(&s, to_1).status,
        StoredStatus::Pending,
        "another target is untouched"
    );

    let accepted = h.service.accept(&token, None).await.expect("accept");
    assert_eq!(accepted.user_id, ann);
    let code_of = |id| {
        accepted
            .results
            .iter()
            .find(|r| r.invite_id == id)
            .map(|r| r.result.code)
    };
    assert_ne!(code_of(to_0), Some(OutcomeCode::Added));
    assert_eq!(code_of(to_1), Some(OutcomeCode::Added));
    assert_eq!(access_of(&h, ann, ws[0]).await, None, "not granted back");
    assert_eq!(
        access_of(&h, ann, ws[1]).await,
        reach(Role::Viewer, &[direct(Role::Viewer)])
    );
    let s = snapshot(&backend).await;
    assert!(membership(&s, web(ws[0]), ann).is_none());

    // Removing the membership the accept created revokes nothing either, and the token,
    // accepted again, grants nothing back.
    let removed = change(&h, &p, web(ws[1]), ann, None).await;
    assert_eq!(
        (removed.code, removed.revoked_invitations),
        (MemberOutcome::Removed, 0)
    );
    match h.service.accept(&token, None).await {
        Err(InviteError::InvalidToken) => {}
        Ok(again) => assert!(
            again
                .results
                .iter()
                .all(|r| r.result.code != OutcomeCode::Added),
            "{again:?}"
        ),
        Err(e) => panic!("unexpected {e:?}"),
    }
    assert_eq!(memberships_of(&snapshot(&backend).await, ann).len(), 0);
}

/// Tenancy of the lists: another organization's target (or an unknown one) is `not_found`
/// for `members_of`, a scoped key is `forbidden` outside its websites and for groups;
/// `websites_of` lists only the caller's organization's websites (a scoped key: only its
/// own), and nothing for an unknown user or one of another organization. A website lists
/// everyone who reaches it, a group its explicit members.
pub async fn member_lists_are_scoped_to_the_organization_and_the_key(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 183).await;
    let (ws, gs) = (&w.websites, &w.groups);
    let p = w.global_key();
    let theirs = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x1831)));
    let ann = add_to_sites(&h, &p, "ann@new.test", &[ws[0], ws[2]], Role::Viewer).await;
    let bob = add_to_groups(&h, &w, "bob@new.test", &[gs[0]], Role::Admin).await;
    add_to_sites(&h, &theirs, "ann@new.test", &[w.other_website], Role::Admin).await;
    add_to_groups(&h, &w, "ann@new.test", &[gs[0]], Role::Viewer).await;

    for target in [
        web(w.other_website),
        grp(w.other_group),
        web(missing_website()),
        grp(missing_group()),
    ] {
        assert_code(
            h.service.members_of(&p, target, None, 10).await,
            ErrorCode::NotFound,
        );
    }
    assert_code(
        h.service.members_of(&theirs, web(ws[0]), None, 10).await,
        ErrorCode::NotFound,
    );
    let scoped = w.scoped_key(&[ws[0], ws[2]]);
    for target in [web(ws[1]), grp(gs[0])] {
        let e = assert_code(
            h.service.members_of(&scoped, target, None, 10).await,
            ErrorCode::Forbidden,
        );
        assert!(matches!(e, InviteError::Forbidden { .. }));
    }

    let members = h
        .service
        .members_of(&scoped, web(ws[0]), None, 10)
        .await
        .expect("a scoped key on its website");
    let mut expected = vec![
        (
            ann,
            Role::Viewer,
            vec![direct(Role::Viewer), via(gs[0], Role::Viewer)],
        ),
        (bob, Role::Admin, vec![via(gs[0], Role::Admin)]),
        (w.org_admin, Role::Admin, vec![org(OrgRole::Admin)]),
    ];
    expected.sort_by_key(|(u, _, _)| *u);
    let got: Vec<_> = members
        .items
        .iter()
        .map(|m| (m.user_id, m.role, m.access.clone()))
        .collect();
    assert_eq!(got, expected, "everyone who reaches the website, once");
    assert_eq!(members.next_cursor, None);
    let ann_row = members
        .items
        .iter()
        .find(|m| m.user_id == ann)
        .expect("ann");
    assert_eq!(ann_row.email, email("ann@new.test"));

    let group = h
        .service
        .members_of(&p, grp(gs[0]), None, 10)
        .await
        .expect("group members");
    let mut expected = vec![
        (ann, vec![via(gs[0], Role::Viewer)]),
        (bob, vec![via(gs[0], Role::Admin)]),
    ];
    expected.sort_by_key(|(u, _)| *u);
    let got: Vec<_> = group
        .items
        .iter()
        .map(|m| (m.user_id, m.access.clone()))
        .collect();
    assert_eq!(got, expected, "a group lists its explicit members only");

    let listed = |page: WebsiteAccessPage| -> Vec<(WebsiteId, String, Role)> {
        assert_eq!(page.next_cursor, None);
        page.items
            .into_iter()
            .map(|i| (i.website_id, i.name, i.role))
            .collect()
    };
    let mut expected = vec![
        (ws[0], "Site 0".to_owned(), Role::Viewer),
        (ws[1], "Site 1".to_owned(), Role::Viewer),
        (ws[2], "Site 2".to_owned(), Role::Viewer),
    ];
    expected.sort();
    let ours = h
        .service
        .websites_of(&p, ann, None, 10)
        .await
        .expect("list");
    assert_eq!(listed(ours), expected, "only the caller's organization's");
    let only_own = h
        .service
        .websites_of(&scoped, ann, None, 10)
        .await
        .expect("list");
    let mut expected_scoped: Vec<_> = expected
        .iter()
        .filter(|(id, _, _)| *id != ws[1])
        .cloned()
        .collect();
    expected_scoped.sort();
    assert_eq!(
        listed(only_own),
        expected_scoped,
        "a scoped key sees its websites"
    );
    let elsewhere = h
        .service
        .websites_of(&theirs, ann, None, 10)
        .await
        .expect("list");
    assert_eq!(
        listed(elsewhere),
        vec![(w.other_website, "Elsewhere".to_owned(), Role::Admin)]
    );
    for (key, user) in [
        (&theirs, w.org_admin),
        (&p, UserId(Uuid::from_u128(0xdead_0005))),
        (&p, w.existing_user),
    ] {
        let page = h
            .service
            .websites_of(key, user, None, 10)
            .await
            .expect("list");
        assert!(page.items.is_empty(), "{page:?}");
        assert_eq!(page.next_cursor, None);
    }
}

/// Reads every page of `members_of` with `limit`; returns the pages' user ids.
async fn member_pages(
    h: &Harness,
    p: &Principal,
    target: TargetId,
    limit: usize,
) -> Vec<Vec<UserId>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = h
            .service
            .members_of(p, target, cursor.as_deref(), limit)
            .await
            .expect("a page");
        assert!(page.items.len() <= limit);
        pages.push(page.items.iter().map(|m| m.user_id).collect());
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return pages,
        }
        assert!(pages.len() < 100, "paging ends");
    }
}

/// The member and website lists are keyset pages by id: for every page size from 1 to past
/// the end the pages cover every entry once, in id order, and `next_cursor` is `None` only
/// on the last page; a member added or removed between pages neither repeats nor hides
/// another. A limit of 0 or 501 and a cursor this API did not write are `invalid_query`
/// naming the field.
pub async fn member_lists_page_by_id(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 184).await;
    let (ws, gs) = (&w.websites, &w.groups);
    let p = w.global_key();
    let mut everyone = vec![w.org_admin];
    let mut directs = Vec::new();
    for i in 0..3 {
        let address = format!("direct{i}@new.test");
        directs.push(add_to_sites(&h, &p, &address, &[ws[0]], Role::Viewer).await);
    }
    everyone.extend(&directs);
    for i in 0..2 {
        let address = format!("group{i}@new.test");
        everyone.push(add_to_groups(&h, &w, &address, &[gs[0]], Role::Admin).await);
    }
    everyone.push(
        org_member(
            &backend,
            w.org,
            "orgviewer@acme.test",
            0x1841,
            OrgRole::Viewer,
        )
        .await,
    );
    everyone.sort();
    let n = everyone.len();

    for limit in 1..=n + 1 {
        let pages = member_pages(&h, &p, web(ws[0]), limit).await;
        assert_eq!(pages.len(), n / limit + 1, "limit {limit}: {pages:?}");
        assert!(pages[..pages.len() - 1].iter().all(|pg| pg.len() == limit));
        let all: Vec<UserId> = pages.concat();
        assert_eq!(all, everyone, "limit {limit}: each once, by id");
    }

    // Changes between pages: the keyset position holds. A member already listed and one
    // not listed yet are removed, one is added; the rest comes once each.
    let first = h
        .service
        .members_of(&p, web(ws[0]), None, 3)
        .await
        .expect("page");
    let seen: Vec<UserId> = first.items.iter().map(|m| m.user_id).collect();
    assert_eq!(seen, everyone[..3]);
    let last_seen = *seen.last().expect("a full page");
    let mut remaining: Vec<UserId> = everyone.clone();
    let listed_direct = seen.iter().copied().find(|u| directs.contains(u));
    let later_direct = everyone[3..].iter().copied().find(|u| directs.contains(u));
    for user in listed_direct.into_iter().chain(later_direct) {
        let r = change(&h, &p, web(ws[0]), user, None).await;
        assert_eq!(r.code, MemberOutcome::Removed);
        remaining.retain(|u| *u != user);
    }
    remaining.push(add_to_sites(&h, &p, "late@new.test", &[ws[0]], Role::Viewer).await);
    remaining.sort();
    let mut rest = Vec::new();
    let mut cursor = first.next_cursor.clone();
    while let Some(c) = cursor {
        let page = h
            .service
            .members_of(&p, web(ws[0]), Some(&c), 3)
            .await
            .expect("page");
        rest.extend(page.items.iter().map(|m| m.user_id));
        cursor = page.next_cursor;
    }
    let expected: Vec<UserId> = remaining.into_iter().filter(|u| *u > last_seen).collect();
    assert_eq!(rest, expected, "after the position, once each, in id order");

    // websites_of pages the same way.
    let viewer = org_member(&backend, w.org, "pager@acme.test", 0x1842, OrgRole::Viewer).await;
    let mut sites_all = ws.clone();
    sites_all.sort();
    for limit in 1..=ws.len() + 1 {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = h
                .service
                .websites_of(&p, viewer, cursor.as_deref(), limit)
                .await
                .expect("page");
            pages += 1;
            got.extend(page.items.iter().map(|i| i.website_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, sites_all, "limit {limit}");
        assert_eq!(pages, ws.len() / limit + 1, "limit {limit}");
    }

    for limit in [0, 501] {
        let e = assert_code(
            h.service.members_of(&p, web(ws[0]), None, limit).await,
            ErrorCode::InvalidQuery,
        );
        assert_eq!(e.field(), Some("limit"));
        let e = assert_code(
            h.service.websites_of(&p, viewer, None, limit).await,
            ErrorCode::InvalidQuery,
        );
        assert_eq!(e.field(), Some("limit"));
    }
    for bad in [
        "bad",
        "",
        "1800000000000.00000000-0000-0000-0000-000000000001",
    ] {
        let e = assert_code(
            h.service.members_of(&p, web(ws[0]), Some(bad), 10).await,
            ErrorCode::InvalidQuery,
        );
        assert_eq!(e.field(), Some("cursor"));
        let e = assert_code(
            h.service.websites_of(&p, viewer, Some(bad), 10).await,
            ErrorCode::InvalidQuery,
        );
        assert_eq!(e.field(), Some("cursor"));
    }
    let full = h
        .service
        .members_of(&p, web(ws[0]), None, 500)
        .await
        .expect("500 is allowed");
    let unique: BTreeSet<UserId> = full.items.iter().map(|m| m.user_id).collect();
    assert_eq!(unique.len(), full.items.len(), "each user once");
    assert_eq!(full.next_cursor, None);
}
