//! The committed `openapi.json` is the document the code generates.
//!
//! Regenerate it after changing a route or a schema:
//! `INVITES_WRITE_OPENAPI=1 cargo test -p invites-axum --test openapi`.

use std::path::Path;

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
