//! Every route, in process (`tower::ServiceExt::oneshot`), against the same service called
//! directly.

mod common;

use axum::http::Method;
use common::{bulk, call, server, server_with};
use invites_core::{BulkInviteRequest, InviteError, InviteMethod};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn bulk_response_is_the_librarys_json_in_both_modes() {
    for method in [InviteMethod::Direct, InviteMethod::Email] {
        // Two identical worlds with the same seed and clock: the HTTP one and the library one.
        let http = server_with(7, None).await;
        let lib = server_with(7, None).await;
        let targets = [http.site(0), http.site(1), http.world.other_website];
        let body = bulk(method.as_str(), " Ann@Example.com", &targets);

        let reply = http.post_bulk("global", body.clone()).await;
        let direct = lib
            .harness
            .service
            .bulk_invite(
                &lib.world.global_key(),
                BulkInviteRequest::from_json(body.as_bytes()).unwrap(),
            )
            .await
            .unwrap();

        assert_eq!(reply.status, 200, "{}", reply.raw);
        assert_eq!(reply.headers["content-type"], "application/json");
        assert_eq!(reply.body, serde_json::to_value(&direct).unwrap());
        // And the shape of docs/contract.md §4, spelled out once.
        assert_eq!(reply.body["success"], true);
        assert_eq!(
            reply.body["summary"],
            json!({"requested": 3, "succeeded": 2, "failed": 1})
        );
        assert_eq!(reply.body["results"][2]["code"], "target_not_found");
        assert_eq!(reply.body["results"][2]["error"], "Website not found");
        match method {
            InviteMethod::Direct => {
                assert_eq!(reply.body["results"][0]["code"], "added");
                assert!(reply.body.get("email").is_none());
            }
            InviteMethod::Email => {
                assert_eq!(reply.body["results"][0]["code"], "invited");
                assert_eq!(reply.body["email"]["status"], "sent");
                assert_eq!(http.harness.mailer.sent().len(), 1);
            }
        }
    }
}

#[tokio::test]
async fn groups_with_a_global_key() {
    let s = server().await;
    let body = json!({"invite_method": "direct", "email": "gus@example.com", "group_ids": [s.world.groups[0]]});
    let reply = s.post_bulk("global", body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(
        reply.body["results"][0]["group_id"],
        json!(s.world.groups[0])
    );
    assert_eq!(reply.body["results"][0]["code"], "added");
}

#[tokio::test]
async fn idempotency_key_replays_and_conflicts() {
    let s = server().await;
    let body = bulk("email", "ida@example.com", &[s.site(0), s.site(1)]);
    let send = |body: String, key: &'static str| {
        call(Method::POST, "/invites/bulk")
            .key("global")
            .header("idempotency-key", key)
            .json(body)
    };
    let first = send(body.clone(), "k-1").send(&s.app).await;
    let again = send(body.clone(), "k-1").send(&s.app).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_eq!(again.status, 200);
    assert_eq!(first.body, again.body, "the stored response");
    assert_eq!(s.harness.mailer.sent().len(), 1, "no second email");

    let other = bulk("email", "ida@example.com", &[s.site(2)]);
    let conflict = send(other, "k-1").send(&s.app).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.code(), "idempotency_conflict");

    for bad in [&b"has space"[..], b"", &[0xC3, 0xA9]] {
        let reply = call(Method::POST, "/invites/bulk")
            .key("global")
            .header("idempotency-key", bad)
            .json(body.clone())
            .send(&s.app)
            .await;
        assert_eq!(reply.status, 400, "{bad:?}: {}", reply.raw);
        assert_eq!(reply.code(), "invalid_idempotency_key");
    }
    let twice = call(Method::POST, "/invites/bulk")
        .key("global")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(body)
        .send(&s.app)
        .await;
    assert_eq!(twice.status, 400);
    assert_eq!(twice.code(), "invalid_idempotency_key");
}

#[tokio::test]
async fn preview_then_accept_with_the_token_in_the_body() {
    let s = server().await;
    let invited = s
        .invite_by_email("pia@example.com", &[s.site(0), s.site(3)])
        .await;
    assert_eq!(invited.status, 200);
    let token = s.harness.last_token();
    let token_body = json!({ "token": token }).to_string();

    let preview = call(Method::POST, "/invites/preview")
        .key("scoped")
        .json(token_body.clone())
        .send(&s.app)
        .await;
    assert_eq!(preview.status, 200, "{}", preview.raw);
    assert_eq!(preview.body["email"], "pia@example.com");
    assert_eq!(preview.body["invitations"].as_array().unwrap().len(), 2);
    assert_eq!(preview.body["invitations"][0]["target"]["kind"], "website");
    assert_eq!(preview.body["invitations"][1]["target_name"], "Site 3");
    // Previewing twice changes nothing.
    let again = call(Method::POST, "/invites/preview")
        .key("global")
        .json(token_body.clone())
        .send(&s.app)
        .await;
    assert_eq!(again.body, preview.body);

    let accepted = call(Method::POST, "/invites/accept")
        .key("global")
        .json(token_body.clone())
        .send(&s.app)
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.raw);
    assert_eq!(accepted.body["user_created"], true);
    let results = accepted.body["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["code"] == "added"), "{results:?}");
    assert_eq!(
        results[0]["invite_id"],
        invited.body["results"][0]["invite_id"]
    );

    // A used token is the uniform invalid_token, and no answer echoes it.
    for path in ["/invites/accept", "/invites/preview"] {
        let used = call(Method::POST, path)
            .key("global")
            .json(token_body.clone())
            .send(&s.app)
            .await;
        assert_eq!(used.status, 404, "{path}");
        assert_eq!(used.code(), "invalid_token");
        assert!(!used.raw.contains(&token));
    }
}

#[tokio::test]
async fn accept_as_a_signed_in_user() {
    let s = server().await;
    s.invite_by_email("existing@acme.test", &[s.site(0)]).await;
    let token = s.harness.last_token();
    let as_user = |user: serde_json::Value| {
        call(Method::POST, "/invites/accept")
            .key("global")
            .json(json!({"token": token, "user_id": user}).to_string())
    };
    let mismatch = as_user(json!(s.world.org_admin)).send(&s.app).await;
    assert_eq!(mismatch.status, 403);
    assert_eq!(mismatch.code(), "email_mismatch");
    let unknown = as_user(json!("00000000-0000-0000-0000-00000000dead"))
        .send(&s.app)
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "not_found");
    let bad = as_user(json!("nope")).send(&s.app).await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        (bad.code(), bad.field()),
        ("malformed_json", Some("user_id"))
    );
    let ok = as_user(json!(s.world.existing_user)).send(&s.app).await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    assert_eq!(ok.body["user_id"], json!(s.world.existing_user));
    assert_eq!(ok.body["user_created"], false);
}

#[tokio::test]
async fn token_bodies_name_the_bad_field() {
    let s = server().await;
    for (path, body, code, field) in [
        ("/invites/preview", json!({}), "malformed_json", "token"),
        (
            "/invites/preview",
            json!({"token": 5}),
            "malformed_json",
            "token",
        ),
        (
            "/invites/preview",
            json!({"token": "t", "user_id": null}),
            "unknown_field",
            "user_id",
        ),
        (
            "/invites/accept",
            json!({"token": "t", "tokn": "x"}),
            "unknown_field",
            "tokn",
        ),
        (
            "/invites/accept",
            json!({"token": "t", "user_id": 3}),
            "malformed_json",
            "user_id",
        ),
    ] {
        let reply = call(Method::POST, path)
            .key("global")
            .json(body.to_string())
            .send(&s.app)
            .await;
        assert_eq!(reply.status, 400, "{path} {body}");
        assert_eq!(
            (reply.code(), reply.field()),
            (code, Some(field)),
            "{path} {body}"
        );
    }
}

#[tokio::test]
async fn revoke_an_invitation() {
    let s = server().await;
    let invited = s
        .invite_by_email("rex@example.com", &[s.site(0), s.site(4)])
        .await;
    let first = invited.body["results"][0]["invite_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let outside = invited.body["results"][1]["invite_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let revoke = |id: &str, key: &str| call(Method::DELETE, &format!("/invitations/{id}")).key(key);
    let done = revoke(&first, "scoped").send(&s.app).await;
    assert_eq!(done.status, 200, "{}", done.raw);
    assert_eq!(done.body, json!({"invite_id": first, "changed": true}));
    let twice = revoke(&first, "global").send(&s.app).await;
    assert_eq!(twice.body["changed"], false);

    let forbidden = revoke(&outside, "scoped").send(&s.app).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.code(), "forbidden");
    let missing = revoke("00000000-0000-0000-0000-00000000beef", "global")
        .send(&s.app)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "not_found");

    // Accepted invitations cannot be revoked.
    call(Method::POST, "/invites/accept")
        .key("global")
        .json(json!({"token": s.harness.last_token()}).to_string())
        .send(&s.app)
        .await;
    let accepted = revoke(&outside, "global").send(&s.app).await;
    assert_eq!(accepted.status, 409);
    assert_eq!(accepted.code(), "already_accepted");
}

#[tokio::test]
async fn batch_view_and_resend() {
    let s = server().await;
    let invited = s
        .invite_by_email("ben@example.com", &[s.site(0), s.site(1)])
        .await;
    let batch = invited.body["email"]["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let view = call(Method::GET, &format!("/invitation-batches/{batch}"))
        .key("scoped")
        .send(&s.app)
        .await;
    assert_eq!(view.status, 200, "{}", view.raw);
    assert_eq!(view.body["batch_id"], batch);
    assert_eq!(view.body["invitations"].as_array().unwrap().len(), 2);
    assert_eq!(view.body["messages"][0]["status"], "sent");
    assert!(
        !view.raw.contains("token"),
        "no token in a view: {}",
        view.raw
    );

    let resend =
        || call(Method::POST, &format!("/invitation-batches/{batch}/resend")).key("global");
    let soon = resend().send(&s.app).await;
    assert_eq!(soon.status, 429);
    assert_eq!(soon.code(), "resend_too_soon");
    let wait = soon.body["error"]["retry_after_secs"].as_u64().unwrap();
    assert_eq!(soon.headers["retry-after"], wait.to_string().as_str());

    s.harness.clock.advance(Duration::from_secs(61));
    let old_token = s.harness.last_token();
    let resent = resend().send(&s.app).await;
    assert_eq!(resent.status, 200, "{}", resent.raw);
    assert_eq!(resent.body["renewed"], 2);
    assert_eq!(resent.body["email"]["status"], "sent");
    assert_eq!(s.harness.mailer.sent().len(), 2);
    let dead = call(Method::POST, "/invites/preview")
        .key("global")
        .json(json!({"token": old_token}).to_string())
        .send(&s.app)
        .await;
    assert_eq!(dead.code(), "invalid_token", "the old link died");

    // Nothing left to resend once every invitation is revoked.
    for r in invited.body["results"].as_array().unwrap() {
        let id = r["invite_id"].as_str().unwrap();
        call(Method::DELETE, &format!("/invitations/{id}"))
            .key("global")
            .send(&s.app)
            .await;
    }
    s.harness.clock.advance(Duration::from_secs(61));
    let nothing = resend().send(&s.app).await;
    assert_eq!(nothing.status, 409);
    assert_eq!(nothing.code(), "nothing_to_resend");

    let unknown = "00000000-0000-0000-0000-00000000cafe";
    for (method, path) in [
        (Method::GET, format!("/invitation-batches/{unknown}")),
        (
            Method::POST,
            format!("/invitation-batches/{unknown}/resend"),
        ),
    ] {
        let reply = call(method, &path).key("global").send(&s.app).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.code(), "not_found");
    }
}

#[tokio::test]
async fn a_scoped_key_cannot_see_a_batch_beyond_its_websites() {
    let s = server().await;
    let invited = s
        .invite_by_email("sam@example.com", &[s.site(0), s.site(5)])
        .await;
    let batch = invited.body["email"]["batch_id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/invitation-batches/{batch}")),
        (Method::POST, format!("/invitation-batches/{batch}/resend")),
    ] {
        let reply = call(method, &path).key("scoped").send(&s.app).await;
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(reply.code(), "forbidden");
    }
}

#[tokio::test]
async fn list_invitations_filters_and_pages() {
    let s = server().await;
    for (email, sites) in [
        ("a@example.com", vec![s.site(0), s.site(1)]),
        ("b@example.com", vec![s.site(0)]),
        ("c@example.com", vec![s.site(2)]),
    ] {
        let r = s.post_bulk("global", bulk("email", email, &sites)).await;
        assert_eq!(r.status, 200);
        s.harness.clock.advance(Duration::from_millis(5));
    }
    let list = |query: &str, key: &str| call(Method::GET, &format!("/invitations{query}")).key(key);
    let ids = |r: &common::Reply| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["email"].as_str().unwrap().to_owned())
            .collect()
    };

    let by_site = list(&format!("?website_id={}", s.site(0)), "global")
        .send(&s.app)
        .await;
    assert_eq!(by_site.status, 200, "{}", by_site.raw);
    assert_eq!(ids(&by_site), ["a@example.com", "b@example.com"]);
    assert_eq!(by_site.body["items"][0]["delivery"], "sent");
    assert_eq!(by_site.body["next_cursor"], serde_json::Value::Null);

    let by_email = list("?email=A@Example.com", "global").send(&s.app).await;
    assert_eq!(ids(&by_email), ["a@example.com", "a@example.com"]);

    let combined = list(
        &format!("?email=a@example.com&website_id={}", s.site(1)),
        "global",
    )
    .send(&s.app)
    .await;
    assert_eq!(combined.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(combined.body["items"][0]["target"]["id"], json!(s.site(1)));

    let nothing = list(
        &format!("?website_id={}&group_id={}", s.site(0), s.world.groups[0]),
        "global",
    )
    .send(&s.app)
    .await;
    assert_eq!(nothing.status, 200);
    assert_eq!(nothing.body["items"], json!([]));

    // No filter: the pending ones; paged two at a time through the cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            None => "?limit=2".to_owned(),
            Some(c) => format!("?limit=2&cursor={c}"),
        };
        let page = list(&q, "global").send(&s.app).await;
        assert_eq!(page.status, 200, "{}", page.raw);
        seen.extend(ids(&page));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);

    // A scoped key sees only its websites, and may not filter by another.
    let scoped = list("?status=pending", "scoped").send(&s.app).await;
    assert_eq!(
        ids(&scoped),
        ["a@example.com", "a@example.com", "b@example.com"]
    );
    let beyond = list(&format!("?website_id={}", s.site(2)), "scoped")
        .send(&s.app)
        .await;
    assert_eq!(beyond.status, 403);
    assert_eq!(beyond.code(), "forbidden");
}

#[tokio::test]
async fn list_query_errors_name_the_problem() {
    let s = server().await;
    for (query, code, field) in [
        ("?limit=0", "invalid_query", "limit"),
        ("?limit=501", "invalid_query", "limit"),
        ("?limit=ten", "invalid_query", "query"),
        ("?cursor=nope", "invalid_query", "cursor"),
        ("?status=lost", "invalid_query", "query"),
        ("?website_id=not-a-uuid", "invalid_query", "query"),
        ("?colour=red", "invalid_query", "query"),
        ("?email=not-an-email", "invalid_email", "email"),
    ] {
        let reply = call(Method::GET, &format!("/invitations{query}"))
            .key("global")
            .send(&s.app)
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.raw);
        assert_eq!(
            (reply.code(), reply.field()),
            (code, Some(field)),
            "{query}"
        );
    }
    // A website and a group together match nothing, but the query is still checked like any
    // other (schemathesis found `cursor=email` accepted there), and so is the key's reach.
    let both = format!("website_id={}&group_id={}", s.site(2), s.world.groups[0]);
    for (query, field) in [("limit=0", "limit"), ("cursor=email", "cursor")] {
        let reply = call(Method::GET, &format!("/invitations?{both}&{query}"))
            .key("global")
            .send(&s.app)
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.raw);
        assert_eq!(
            (reply.code(), reply.field()),
            ("invalid_query", Some(field)),
            "{query}"
        );
    }
    let beyond = call(Method::GET, &format!("/invitations?{both}"))
        .key("scoped")
        .send(&s.app)
        .await;
    assert_eq!(beyond.status, 403, "{}", beyond.raw);
}

#[tokio::test]
async fn validation_errors_are_the_librarys_json() {
    let s = server().await;
    let dup = format!(
        r#"{{"invite_method":"email","email":"x@y.test","website_ids":["{0}","{0}"]}}"#,
        s.site(0)
    );
    for body in [
        dup.as_str(),
        r#"{"invite_method":"email","email":"x@y.test","website_ids":[],"group_ids":[]}"#,
        r#"{"invite_method":"email","email":"x@y.test"}"#,
        r#"{"invite_method":"fax","email":"x@y.test","website_ids":[]}"#,
        r#"{"invite_method":"email","email":"nope","website_ids":["00000000-0000-0000-0000-000000000001"]}"#,
        r#"{"invite_method":"email","emial":"x@y.test"}"#,
    ] {
        let reply = s.post_bulk("global", body).await;
        let expected: InviteError = match BulkInviteRequest::from_json(body.as_bytes()) {
            Err(e) => e,
            Ok(r) => r.validate().unwrap_err(),
        };
        assert_eq!(reply.status, expected.code().http_status(), "{body}");
        assert_eq!(reply.body, expected.to_json(), "{body}");
        assert_eq!(reply.code(), expected.code().as_str());
    }
    assert!(s.harness.mailer.sent().is_empty());
    let none = call(Method::GET, "/invitations?status=pending")
        .key("global")
        .send(&s.app)
        .await;
    assert_eq!(none.body["items"], json!([]), "nothing was written");
}

#[tokio::test]
async fn the_document_is_served_without_a_key() {
    let s = server().await;
    let reply = call(Method::GET, "/openapi.json").send(&s.app).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.raw, invites_axum::openapi_json());
}
