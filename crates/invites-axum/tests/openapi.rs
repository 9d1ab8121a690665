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

/// A real answer of the operation a link starts at, on `s`: an email-mode batch to two
/// websites first, then the source operation itself (the bulk request is that first call).
async fn source_response(s: &Server, path: &str, method: &str) -> Value {
    let created = call(Method::POST, "/invites/bulk")
        .key("global")
        .json(bulk("email", "ann@example.com", &[s.site(0), s.site(1)]))
        .send(&s.app)
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.raw);
    let batch = created.body["email"]["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = match (method, path) {
        ("post", "/invites/bulk") => return created.body,
        ("get", "/invitations") => call(Method::GET, "/invitations"),
        ("get", "/invitation-batches/{id}") => {
            call(Method::GET, &format!("/invitation-batches/{batch}"))
        }
        ("post", "/invitation-batches/{id}/resend") => {
            s.harness.clock.advance(Duration::from_secs(61));
            call(Method::POST, &format!("/invitation-batches/{batch}/resend"))
        }
        other => panic!("no source request for {other:?}; add one"),
    }
    .key("global")
    .send(&s.app)
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{method} {path}: {}",
        reply.raw
    );
    reply.body
}

/// Every link of the document, followed against the router: its runtime expression finds an
/// id in a real answer of its source operation, and the target operation called with that id
/// answers 200, not 404. This is what lets schemathesis' stateful phase reach the lifecycle
/// routes with ids that exist.
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
            let expression = link["parameters"]["id"].as_str().expect("an id parameter");
            let pointer = expression
                .strip_prefix("$response.body#")
                .unwrap_or_else(|| panic!("{name}: {expression}"));

            let s = server().await;
            let source = source_response(&s, path, method).await;
            let id = source
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{name}: {pointer} is not in {source}"));
            // Past the resend interval, so a resend link is not refused as too soon.
            s.harness.clock.advance(Duration::from_secs(61));
            let target = target_path.replace("{id}", id);
            let method = Method::from_bytes(target_method.to_uppercase().as_bytes()).unwrap();
            let reply = call(method, &target).key("global").send(&s.app).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{name}: {target_method} {target} answered {}",
                reply.raw
            );
            followed += 1;
        }
    }
    assert!(followed >= 8, "only {followed} links followed");
}
