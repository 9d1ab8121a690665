//! The access routes (docs/contract.md §11), in process: the member lists and a user's
//! websites against the same service called directly, every outcome code of a membership
//! change, tenancy, key scope, paging and the validation of paths, queries and bodies.

mod common;

use axum::http::Method;
use common::{Server, call, server};
use invites_core::{GroupId, TargetId, UserId, WebsiteId};
use serde_json::{Value, json};

/// Adds `email` directly to `sites` with `role`; returns the user id.
async fn add(s: &Server, email: &str, sites: &[WebsiteId], role: &str) -> UserId {
    let body =
        json!({"invite_method": "direct", "email": email, "website_ids": sites, "role": role});
    let reply = s.post_bulk("global", body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    UserId(reply.body["user_id"].as_str().unwrap().parse().unwrap())
}

/// Adds `email` directly to `group` with `role`; returns the user id.
async fn add_to_group(s: &Server, email: &str, group: GroupId, role: &str) -> UserId {
    let body =
        json!({"invite_method": "direct", "email": email, "group_ids": [group], "role": role});
    let reply = s.post_bulk("global", body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    UserId(reply.body["user_id"].as_str().unwrap().parse().unwrap())
}

async fn get(s: &Server, key: &str, path: &str) -> common::Reply {
    call(Method::GET, path).key(key).send(&s.app).await
}

/// The row of `user` on the first page of the website's member list, as a global key sees
/// it; `None` if the user is not listed there.
async fn listed_member(s: &Server, site: WebsiteId, user: UserId) -> Option<Value> {
    let members = get(s, "global", &format!("/websites/{site}/members")).await;
    members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["user_id"] == json!(user))
        .cloned()
}

async fn put_role(s: &Server, key: &str, path: &str, role: &str) -> common::Reply {
    call(Method::PUT, path)
        .key(key)
        .json(json!({ "role": role }).to_string())
        .send(&s.app)
        .await
}

#[tokio::test]
async fn website_members_are_the_librarys_page_with_every_path() {
    let s = server().await;
    let site = s.site(0);
    let ann = add(&s, "ann@example.com", &[site], "admin").await;
    add_to_group(&s, "ann@example.com", s.world.groups[0], "viewer").await;

    let reply = get(&s, "global", &format!("/websites/{site}/members")).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.headers["content-type"], "application/json");
    let direct = s
        .harness
        .service
        .members_of(&s.world.global_key(), TargetId::Website(site), None, 50)
        .await
        .unwrap();
    assert_eq!(reply.body, serde_json::to_value(&direct).unwrap());

    // The shape, spelled out once: ann reaches the site directly and through group 0; the
    // org admin through the organization.
    let items = reply.body["items"].as_array().unwrap();
    let ann_item = items
        .iter()
        .find(|i| i["user_id"] == json!(ann))
        .expect("ann is listed");
    assert_eq!(ann_item["email"], "ann@example.com");
    assert_eq!(ann_item["role"], "admin");
    assert_eq!(
        ann_item["access"],
        json!([
            {"type": "direct", "role": "admin"},
            {"type": "group", "group": s.world.groups[0], "role": "viewer"},
        ])
    );
    let admin = items
        .iter()
        .find(|i| i["user_id"] == json!(s.world.org_admin))
        .expect("the org admin is listed");
    assert_eq!(
        admin["access"],
        json!([{"type": "organization", "org_role": "admin"}])
    );
    assert_eq!(reply.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn group_members_and_a_users_websites() {
    let s = server().await;
    let group = s.world.groups[0];
    let gus = add_to_group(&s, "gus@example.com", group, "admin").await;
    add(&s, "gus@example.com", &[s.site(4)], "viewer").await;

    let members = get(&s, "global", &format!("/groups/{group}/members")).await;
    assert_eq!(members.status, 200, "{}", members.raw);
    assert_eq!(
        members.body["items"],
        json!([{
            "user_id": gus,
            "email": "gus@example.com",
            "role": "admin",
            "access": [{"type": "group", "group": group, "role": "admin"}],
        }])
    );

    let sites = get(&s, "global", &format!("/users/{gus}/websites")).await;
    assert_eq!(sites.status, 200, "{}", sites.raw);
    let direct = s
        .harness
        .service
        .websites_of(&s.world.global_key(), gus, None, 50)
        .await
        .unwrap();
    assert_eq!(sites.body, serde_json::to_value(&direct).unwrap());
    let ids: Vec<&Value> = sites.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["website_id"])
        .collect();
    // Group 0 holds sites 0 and 1; site 4 is direct.
    assert_eq!(
        ids,
        [&json!(s.site(0)), &json!(s.site(1)), &json!(s.site(4))]
    );
    assert_eq!(sites.body["items"][2]["name"], "Site 4");

    // A website-scoped key (sites 0 and 1) sees only its websites; an unknown user has none.
    let scoped = get(&s, "scoped", &format!("/users/{gus}/websites")).await;
    assert_eq!(scoped.status, 200, "{}", scoped.raw);
    assert_eq!(scoped.body["items"].as_array().unwrap().len(), 2);
    let nobody = get(
        &s,
        "global",
        &format!("/users/{}/websites", uuid::Uuid::nil()),
    )
    .await;
    assert_eq!(nobody.status, 200, "{}", nobody.raw);
    assert_eq!(nobody.body, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn pages_follow_the_cursor_to_the_end() {
    let s = server().await;
    let site = s.site(2);
    for i in 0..4 {
        add(&s, &format!("p{i}@example.com"), &[site], "viewer").await;
    }
    let all = get(&s, "global", &format!("/websites/{site}/members")).await;
    let every: Vec<Value> = all.body["items"].as_array().unwrap().clone();
    assert_eq!(every.len(), 5, "four members and the org admin");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/websites/{site}/members?limit=2"),
            Some(c) => format!("/websites/{site}/members?limit=2&cursor={c}"),
        };
        let page = get(&s, "global", &path).await;
        assert_eq!(page.status, 200, "{}", page.raw);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen, every,
        "the pages, joined, are the whole list in order"
    );

    // The same for a user's websites.
    let user = add(
        &s,
        "w@example.com",
        &[s.site(0), s.site(3), s.site(5)],
        "viewer",
    )
    .await;
    let first = get(&s, "global", &format!("/users/{user}/websites?limit=2")).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let rest = get(
        &s,
        "global",
        &format!("/users/{user}/websites?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest.body["items"][0]["website_id"], json!(s.site(5)));
}

#[tokio::test]
async fn lists_refuse_other_organizations_and_keys_that_do_not_reach() {
    let s = server().await;
    let other_site = s.world.other_website;
    let other_group = s.world.other_group;
    for path in [
        format!("/websites/{other_site}/members"),
        format!("/groups/{other_group}/members"),
        format!("/websites/{}/members", uuid::Uuid::nil()),
    ] {
        let reply = get(&s, "global", &path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.raw);
        assert_eq!(reply.code(), "not_found");
    }
    // The scoped key reaches sites 0 and 1 only, and no group.
    for path in [
        format!("/websites/{}/members", s.site(3)),
        format!("/groups/{}/members", s.world.groups[0]),
    ] {
        let reply = get(&s, "scoped", &path).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.raw);
        assert_eq!(reply.code(), "forbidden");
    }
    let reached = get(&s, "scoped", &format!("/websites/{}/members", s.site(1))).await;
    assert_eq!(reached.status, 200, "{}", reached.raw);

    let anonymous = call(Method::GET, &format!("/websites/{}/members", s.site(0)))
        .send(&s.app)
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.code(), "unauthorized");
}

#[tokio::test]
async fn bad_queries_and_ids_name_the_field() {
    let s = server().await;
    let site = s.site(0);
    let user = s.world.org_admin;
    for base in [
        format!("/websites/{site}/members"),
        format!("/groups/{}/members", s.world.groups[0]),
        format!("/users/{}/websites", user.0),
    ] {
        for (query, code, field) in [
            ("limit=0", "invalid_query", "limit"),
            ("limit=501", "invalid_query", "limit"),
            ("limit=ten", "invalid_query", "limit"),
            ("limit=-1", "invalid_query", "limit"),
            ("cursor=nope", "invalid_query", "cursor"),
            // A UUID, but not in the form the API returns (nor the published pattern's).
            (
                "cursor=00000000000000000000000000000131",
                "invalid_query",
                "cursor",
            ),
            ("color=red", "invalid_query", "query"),
        ] {
            let reply = get(&s, "global", &format!("{base}?{query}")).await;
            assert_eq!(reply.status, 400, "{base}?{query}: {}", reply.raw);
            assert_eq!(
                (reply.code(), reply.field()),
                (code, Some(field)),
                "{query}"
            );
        }
    }
    for path in [
        "/websites/not-a-uuid/members".to_owned(),
        "/groups/1/members".to_owned(),
        "/users/x/websites".to_owned(),
    ] {
        let reply = get(&s, "global", &path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.raw);
        assert_eq!((reply.code(), reply.field()), ("invalid_id", Some("id")));
    }
}

#[tokio::test]
async fn every_outcome_of_a_role_change_over_http() {
    let s = server().await;
    let site = s.site(0);
    let ann = add(&s, "ann@example.com", &[site], "viewer").await;
    let path = |target: &str, id: &dyn std::fmt::Display, user: &dyn std::fmt::Display| {
        format!("/{target}/{id}/members/{user}")
    };

    let updated = put_role(&s, "global", &path("websites", &site, &ann), "admin").await;
    assert_eq!(updated.status, 200, "{}", updated.raw);
    // The whole body, once: the target named like the bulk results, no `group_id`.
    assert_eq!(
        updated.body,
        json!({
            "success": true,
            "code": "updated",
            "website_id": site,
            "user_id": ann,
            "role": "admin",
            "revoked_invitations": 0,
        })
    );
    let listed = listed_member(&s, site, ann).await.unwrap();
    assert_eq!(listed["role"], "admin", "the change is what the list shows");

    let cases: [(&str, String, &str, bool, Value); 7] = [
        (
            "global",
            path("websites", &site, &ann),
            "unchanged",
            true,
            json!("admin"),
        ),
        (
            "global",
            path("websites", &site, &s.world.existing_user),
            "not_a_member",
            false,
            Value::Null,
        ),
        (
            "global",
            path("websites", &site, &s.world.org_admin),
            "has_org_access",
            false,
            Value::Null,
        ),
        (
            "scoped",
            path("websites", &s.site(3), &ann),
            "forbidden",
            false,
            Value::Null,
        ),
        (
            "scoped",
            path("groups", &s.world.groups[0], &ann),
            "forbidden",
            false,
            Value::Null,
        ),
        (
            "global",
            path("websites", &s.world.other_website, &ann),
            "target_not_found",
            false,
            Value::Null,
        ),
        (
            "global",
            path("groups", &s.world.other_group, &ann),
            "target_not_found",
            false,
            Value::Null,
        ),
    ];
    for (key, path, code, success, role) in cases {
        let reply = put_role(&s, key, &path, "admin").await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.raw);
        assert_eq!(reply.body["code"], code, "{path}: {}", reply.raw);
        assert_eq!(reply.body["success"], success, "{path}");
        assert_eq!(reply.body["role"], role, "{path}");
        let user = path.rsplit('/').next().unwrap();
        assert_eq!(reply.body["user_id"], user, "{path}: the user as asked");
    }

    // Groups name their target `group_id`.
    let group = s.world.groups[1];
    let gus = add_to_group(&s, "gus@example.com", group, "viewer").await;
    let reply = put_role(&s, "global", &path("groups", &group, &gus), "admin").await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.body["code"], "updated");
    assert_eq!(reply.body["group_id"], json!(group));
    assert!(reply.body.get("website_id").is_none(), "{}", reply.raw);
}

#[tokio::test]
async fn every_outcome_of_a_removal_over_http() {
    let s = server().await;
    let site = s.site(0);
    let group = s.world.groups[0];
    let ann = add(&s, "ann@example.com", &[site], "admin").await;
    add_to_group(&s, "ann@example.com", group, "viewer").await;
    let app = &s.app;
    let delete = |key: &'static str, path: String| async move {
        call(Method::DELETE, &path).key(key).send(app).await
    };

    let removed = delete("global", format!("/websites/{site}/members/{ann}")).await;
    assert_eq!(removed.status, 200, "{}", removed.raw);
    assert_eq!(
        removed.body,
        json!({
            "success": true,
            "code": "removed",
            "website_id": site,
            "user_id": ann,
            "role": null,
            "revoked_invitations": 0,
        })
    );
    // The group still grants the site: the access that stays is what the list shows.
    let listed = listed_member(&s, site, ann)
        .await
        .expect("still reaches the site through the group");
    assert_eq!(
        listed["access"],
        json!([{"type": "group", "group": group, "role": "viewer"}])
    );

    let removed = delete("global", format!("/groups/{group}/members/{ann}")).await;
    assert_eq!(removed.body["code"], "removed", "{}", removed.raw);
    assert_eq!(removed.body["group_id"], json!(group));
    let sites = get(&s, "global", &format!("/users/{ann}/websites")).await;
    assert_eq!(sites.body["items"], json!([]), "no access is left");

    for (key, path, code) in [
        (
            "global",
            format!("/websites/{site}/members/{ann}"),
            "not_a_member",
        ),
        (
            "global",
            format!("/websites/{site}/members/{}", s.world.org_admin),
            "has_org_access",
        ),
        (
            "scoped",
            format!("/websites/{}/members/{ann}", s.site(4)),
            "forbidden",
        ),
        (
            "scoped",
            format!("/groups/{group}/members/{ann}"),
            "forbidden",
        ),
        (
            "global",
            format!("/websites/{}/members/{ann}", s.world.other_website),
            "target_not_found",
        ),
        (
            "global",
            format!("/groups/{}/members/{ann}", s.world.other_group),
            "target_not_found",
        ),
    ] {
        let reply = delete(key, path.clone()).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.raw);
        assert_eq!(reply.body["code"], code, "{path}");
        assert_eq!(reply.body["success"], false, "{path}");
        assert_eq!(reply.body["revoked_invitations"], 0, "{path}");
    }
}

#[tokio::test]
async fn a_role_body_is_validated_field_by_field() {
    let s = server().await;
    let site = s.site(0);
    let ann = add(&s, "ann@example.com", &[site], "viewer").await;
    let path = format!("/websites/{site}/members/{ann}");
    for (body, code, field) in [
        (r#"{"role": "owner"}"#, "invalid_role", "role"),
        (r#"{"role": "Admin"}"#, "invalid_role", "role"),
        (r#"{"role": 1}"#, "invalid_role", "role"),
        (r#"{"role": null}"#, "invalid_role", "role"),
        ("{}", "invalid_role", "role"),
        (r#"{"role": "admin", "note": "x"}"#, "unknown_field", "note"),
        ("[]", "malformed_json", "body"),
        ("{", "malformed_json", "body"),
    ] {
        let reply = call(Method::PUT, &path)
            .key("global")
            .json(body)
            .send(&s.app)
            .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.raw);
        assert_eq!((reply.code(), reply.field()), (code, Some(field)), "{body}");
    }
    let no_type = call(Method::PUT, &path)
        .key("global")
        .raw(r#"{"role": "admin"}"#)
        .send(&s.app)
        .await;
    assert_eq!(no_type.status, 415);
    assert_eq!(no_type.code(), "unsupported_media_type");

    for (path, field) in [
        (format!("/websites/{site}/members/nope"), "user_id"),
        (format!("/websites/nope/members/{ann}"), "id"),
        (
            format!("/groups/{}/members/1", s.world.groups[0]),
            "user_id",
        ),
    ] {
        for method in [Method::PUT, Method::DELETE] {
            let reply = call(method.clone(), &path)
                .key("global")
                .json(r#"{"role": "admin"}"#)
                .send(&s.app)
                .await;
            assert_eq!(reply.status, 400, "{method} {path}: {}", reply.raw);
            assert_eq!((reply.code(), reply.field()), ("invalid_id", Some(field)));
        }
    }
    // Nothing changed.
    let sites = get(&s, "global", &format!("/users/{ann}/websites")).await;
    assert_eq!(sites.body["items"][0]["role"], "viewer");

    // The routes take no other method.
    let post = call(Method::POST, &path).key("global").send(&s.app).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.code(), "method_not_allowed");
}
