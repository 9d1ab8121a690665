//! The committed `openapi.json` is the document the code generates.
//!
//! Regenerate it after changing a route or a schema:
//! `INVITES_WRITE_OPENAPI=1 cargo test -p invites-axum --test openapi`.

mod common;

use axum::http::{Method, StatusCode};
use common::{Server, bulk, call, server};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

#[test]
fn openapi_file_is_current() {
    let generated = invites_axum::openapi_json();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("INVITES_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "crates/invites-axum/openapi.json is not the document the code generates; regenerate it \
         with `INVITES_WRITE_OPENAPI=1 cargo test -p invites-axum --test openapi` and commit it"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_every_route() {
    let doc: serde_json::Value =
        serde_json::from_str(&invites_axum::openapi_json()).expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/invites/bulk", "post"),
        ("/invites/preview", "post"),
        ("/invites/accept", "post"),
        ("/invitations", "get"),
        ("/invitations/{id}", "delete"),
        ("/invitation-batches/{id}", "get"),
        ("/invitation-batches/{id}/resend", "post"),
        ("/websites/{id}/members", "get"),
        ("/groups/{id}/members", "get"),
        ("/users/{id}/websites", "get"),
        ("/websites/{id}/members/{user_id}", "put"),
        ("/websites/{id}/members/{user_id}", "delete"),
        ("/groups/{id}/members/{user_id}", "put"),
        ("/groups/{id}/members/{user_id}", "delete"),
        ("/openapi.json", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["name"],
        "x-api-key"
    );
    let link = &doc["paths"]["/invites/bulk"]["post"]["responses"]["200"]["links"]["GetBatch"];
    assert_eq!(link["operationId"], "get_batch", "{link}");
    assert!(link.get("operation_id").is_none());
}

/// A real answer of the operation a link starts at, on `s`, and the `id` of its path: an
/// email-mode batch to two websites first, then the source operation itself. A bulk link
/// that reads a group or the user gets a direct-mode request (to group 0, or to the two
/// websites), which names them; the email-mode one is the source otherwise.
async fn source_response(
    s: &Server,
    path: &str,
    method: &str,
    expressions: &[&str],
) -> (Value, Option<String>) {
    let created = s
        .invite_by_email("ann@example.com", &[s.site(0), s.site(1)])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.raw);
    let batch = created.body["email"]["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = s.world.groups[0].to_string();
    let reads = |what: &str| expressions.iter().any(|e| e.ends_with(what));
    let (request, id) = match (method, path) {
        ("post", "/invites/bulk") if reads("group_id") => {
            let body = serde_json::json!({"invite_method": "direct", "email": "ann@example.com", "group_ids": [group]});
            (call(Method::POST, path).json(body.to_string()), None)
        }
        ("post", "/invites/bulk") if reads("/user_id") => (
            call(Method::POST, path).json(bulk(
                "direct",
                "ann@example.com",
                &[s.site(0), s.site(1)],
            )),
            None,
        ),
        ("post", "/invites/bulk") => return (created.body, None),
        ("get", "/invitations") => (call(Method::GET, "/invitations"), None),
        ("get", "/invitation-batches/{id}") => (
            call(Method::GET, &format!("/invitation-batches/{batch}")),
            Some(batch),
        ),
        ("post", "/invitation-batches/{id}/resend") => {
            s.harness.clock.advance(Duration::from_secs(61));
            (
                call(Method::POST, &format!("/invitation-batches/{batch}/resend")),
                Some(batch),
            )
        }
        ("get", "/websites/{id}/members") => {
            let site = s.site(0).to_string();
            (
                call(Method::GET, &format!("/websites/{site}/members")),
                Some(site),
            )
        }
        ("get", "/groups/{id}/members") => {
            let body = serde_json::json!({"invite_method": "direct", "email": "gus@example.com", "group_ids": [group]});
            let added = s.post_bulk("global", body.to_string()).await;
            assert_eq!(added.status, StatusCode::OK, "{}", added.raw);
            (
                call(Method::GET, &format!("/groups/{group}/members")),
                Some(group),
            )
        }
        ("get", "/users/{id}/websites") => {
            let user = s.world.org_admin.to_string();
            (
                call(Method::GET, &format!("/users/{user}/websites")),
                Some(user),
            )
        }
        other => panic!("no source request for {other:?}; add one"),
    };
    let reply = request.key("global").send(&s.app).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{method} {path}: {}",
        reply.raw
    );
    (reply.body, id)
}

/// Every link of the document, followed against the router: its runtime expressions find
/// ids in a real answer of its source operation (or its request's path), and the target
/// operation called with them answers 200, not 404; a membership change answers an outcome
/// on a target that exists (not `target_not_found`). This is what lets schemathesis'
/// stateful phase reach the lifecycle and access routes with ids that exist.
#[tokio::test]
async fn every_link_feeds_its_operation_a_real_id() {
    let doc: Value = serde_json::from_str(&invites_axum::openapi_json()).unwrap();
    let operations: Vec<(String, String, Value)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .iter()
                .map(|(method, op)| (path.clone(), method.clone(), op.clone()))
        })
        .collect();
    let mut followed = 0;
    for (path, method, op) in &operations {
        let Some(links) = op["responses"]["200"]["links"].as_object() else {
            continue;
        };
        for (name, link) in links {
            let target_id = link["operationId"].as_str().expect("operationId");
            let (target_path, target_method, _) = operations
                .iter()
                .find(|(_, _, op)| op["operationId"] == target_id)
                .unwrap_or_else(|| panic!("{name}: no operation {target_id}"));
            let params = link["parameters"].as_object().expect("parameters");
            let expressions: Vec<&str> = params
                .values()
                .map(|e| e.as_str().expect("an expression"))
                .collect();

            let s = server().await;
            let (source, source_id) = source_response(&s, path, method, &expressions).await;
            let mut target = target_path.clone();
            for (param, expression) in params {
                let expression = expression.as_str().unwrap();
                let value = if expression == "$request.path.id" {
                    source_id
                        .clone()
                        .unwrap_or_else(|| panic!("{name}: no path id"))
                } else {
                    let pointer = expression
                        .strip_prefix("$response.body#")
                        .unwrap_or_else(|| panic!("{name}: {expression}"));
                    source
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .unwrap_or_else(|| panic!("{name}: {pointer} is not in {source}"))
                        .to_owned()
                };
                target = target.replace(&format!("{{{param}}}"), &value);
            }
            assert!(
                !target.contains('{'),
                "{name}: {target} has a parameter left"
            );
            // Past the resend interval, so a resend link is not refused as too soon.
            s.harness.clock.advance(Duration::from_secs(61));
            let method = Method::from_bytes(target_method.to_uppercase().as_bytes()).unwrap();
            let mut request = call(method.clone(), &target).key("global");
            if method == Method::PUT {
                request = request.json(r#"{"role": "viewer"}"#);
            }
            let reply = request.send(&s.app).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{name}: {target_method} {target} answered {}",
                reply.raw
            );
            if let Some(code) = reply.body.get("code") {
                assert!(
                    code != "target_not_found" && code != "forbidden",
                    "{name}: {target_method} {target} answered {}",
                    reply.raw
                );
            }
            followed += 1;
        }
    }
    assert!(followed >= 21, "only {followed} links followed");
}
