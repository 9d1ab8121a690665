//! Every error status, including each of axum's own rejections, answers the one JSON error
//! body; a client never sees plain text.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use common::{bulk, call, server, server_with};
use invites_axum::{InvitesApi, MAX_REQUEST_BODY_BYTES, router};
use invites_core::Inspect;
use invites_testkit::Fault;
use serde_json::json;

/// Every route of the API with a request that would otherwise be fine.
fn every_route(s: &common::Server) -> Vec<(Method, String, Option<String>)> {
    let id = "00000000-0000-0000-0000-000000000001";
    vec![
        (
            Method::POST,
            "/invites/bulk".into(),
            Some(bulk("direct", "a@example.com", &[s.site(0)])),
        ),
        (
            Method::POST,
            "/invites/preview".into(),
            Some(r#"{"token":"t"}"#.into()),
        ),
        (
            Method::POST,
            "/invites/accept".into(),
            Some(r#"{"token":"t"}"#.into()),
        ),
        (Method::DELETE, format!("/invitations/{id}"), None),
        (
            Method::POST,
            format!("/invitation-batches/{id}/resend"),
            None,
        ),
        (Method::GET, format!("/invitation-batches/{id}"), None),
        (Method::GET, "/invitations?status=pending".into(), None),
    ]
}

async fn each_route(s: &common::Server, key: Option<&str>) -> Vec<(String, common::Reply)> {
    let mut out = Vec::new();
    for (method, path, body) in every_route(s) {
        let mut c = call(method, &path);
        if let Some(k) = key {
            c = c.key(k);
        }
        if let Some(b) = body {
            c = c.json(b);
        }
        out.push((path, c.send(&s.app).await));
    }
    out
}

#[tokio::test]
async fn no_or_unknown_key_is_401_everywhere_and_nothing_happens() {
    let s = server().await;
    for key in [None, Some("wrong"), Some("")] {
        for (path, reply) in each_route(&s, key).await {
            assert_eq!(reply.status, 401, "{path} with {key:?}: {}", reply.raw);
            assert_eq!(reply.code(), "unauthorized");
            assert!(!reply.raw.contains("wrong"), "the key is not echoed");
        }
    }
    let before = Inspect::snapshot(&server().await.store).await.unwrap();
    let after = Inspect::snapshot(&s.store).await.unwrap();
    assert_eq!(before, after, "nothing was written");
}

#[tokio::test]
async fn without_a_resolver_only_a_host_principal_gets_in() {
    let s = server().await;
    let api = InvitesApi::new(s.harness.service.clone());
    let bare: Router = Router::new().nest("/api/v1", router(api.clone()));
    for (path, reply) in each_route(
        &common::Server {
            app: bare,
            ..server().await
        },
        Some("global"),
    )
    .await
    {
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(reply.code(), "unauthorized");
    }

    // The host's own middleware inserts the Principal; the router takes it.
    let principal = s.world.global_key();
    let host: Router = Router::new()
        .nest("/api/v1", router(api))
        .layer(middleware::from_fn(
            move |mut req: Request<Body>, next: Next| {
                let principal = principal.clone();
                async move {
                    req.extensions_mut().insert(principal);
                    let r: Response = next.run(req).await;
                    r
                }
            },
        ));
    let reply = call(Method::POST, "/invites/bulk")
        .json(bulk("direct", "mia@example.com", &[s.site(0)]))
        .send(&host)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.body["results"][0]["code"], "added");
}

#[tokio::test]
async fn a_rate_limiting_host_answers_429_with_retry_after() {
    let s = server().await;
    for (path, reply) in each_route(&s, Some("limited")).await {
        assert_eq!(reply.status, 429, "{path}");
        assert_eq!(reply.code(), "rate_limited");
        assert_eq!(reply.headers["retry-after"], "7");
        assert_eq!(reply.body["error"]["retry_after_secs"], 7);
    }
}

#[tokio::test]
async fn a_failing_key_store_is_503_and_says_nothing_about_it() {
    let s = server().await;
    for (path, reply) in each_route(&s, Some("broken")).await {
        assert_eq!(reply.status, 503, "{path}");
        assert_eq!(reply.code(), "storage_unavailable");
        assert!(!reply.raw.contains("key store down"));
    }
}

#[tokio::test]
async fn a_failing_store_is_503() {
    let s = server().await;
    s.faults.set(Fault {
        fail_everything_else: true,
        ..Fault::default()
    });
    let id = "00000000-0000-0000-0000-000000000001";
    for path in [
        format!("/invitation-batches/{id}"),
        "/invitations?status=pending".into(),
    ] {
        let reply = call(Method::GET, &path).key("global").send(&s.app).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply.raw);
        assert_eq!(reply.code(), "storage_unavailable");
    }
}

#[tokio::test]
async fn a_panic_is_a_json_500() {
    let s = server().await;
    let reply = call(Method::GET, "/invitations")
        .key("panics")
        .send(&s.app)
        .await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.code(), "internal_error");
    assert!(!reply.raw.contains("resolver bug"));
}

#[tokio::test]
async fn group_ids_with_a_scoped_key_is_403() {
    let s = server().await;
    let body = json!({"invite_method": "direct", "email": "g@example.com", "group_ids": [s.world.groups[0]]});
    let reply = s.post_bulk("scoped", body.to_string()).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.code(), "global_key_required");
}

#[tokio::test]
async fn json_rejections_are_json() {
    let s = server().await;
    let ok = bulk("direct", "j@example.com", &[s.site(0)]);
    for path in ["/invites/bulk", "/invites/preview", "/invites/accept"] {
        // Missing content type: 415.
        let missing = call(Method::POST, path)
            .key("global")
            .raw(ok.clone())
            .send(&s.app)
            .await;
        assert_eq!(missing.status, 415, "{path}");
        assert_eq!(missing.code(), "unsupported_media_type");
        // Wrong content type: 415.
        let wrong = call(Method::POST, path)
            .key("global")
            .header("content-type", "text/plain")
            .raw(ok.clone())
            .send(&s.app)
            .await;
        assert_eq!(wrong.status, 415, "{path}");
        assert_eq!(wrong.code(), "unsupported_media_type");
        // Not JSON, or not an object: 400 malformed_json naming the body.
        for body in ["{\"invite_method\":", "[1, 2]", "\"text\"", ""] {
            let bad = call(Method::POST, path)
                .key("global")
                .json(body)
                .send(&s.app)
                .await;
            assert_eq!(bad.status, 400, "{path} {body:?}: {}", bad.raw);
            assert_eq!((bad.code(), bad.field()), ("malformed_json", Some("body")));
        }
    }
    // `application/*+json` is JSON too.
    let vendor = call(Method::POST, "/invites/bulk")
        .key("global")
        .header("content-type", "application/vnd.acme+json")
        .raw(ok)
        .send(&s.app)
        .await;
    assert_eq!(vendor.status, 200, "{}", vendor.raw);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_by_default() {
    let s = server().await;
    let padding = "x".repeat(MAX_REQUEST_BODY_BYTES);
    let big = format!(r#"{{"invite_method":"direct","email":"a@b.test","pad":"{padding}"}}"#);
    for path in ["/invites/bulk", "/invites/preview", "/invites/accept"] {
        let reply = call(Method::POST, path)
            .key("global")
            .json(big.clone())
            .send(&s.app)
            .await;
        assert_eq!(reply.status, 413, "{path}");
        assert_eq!(reply.code(), "body_too_large");
    }
    // Streamed, without a Content-Length, against a smaller configured limit.
    let small = server_with(1, Some(1024)).await;
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..40).map(|_| Ok("x".repeat(100))).collect();
    let reply = call(Method::POST, "/invites/bulk")
        .key("global")
        .header("content-type", "application/json")
        .raw(Body::from_stream(futures_stream(chunks)))
        .send(&small.app)
        .await;
    assert_eq!(reply.status, 413, "{}", reply.raw);
    assert_eq!(reply.code(), "body_too_large");
    // A normal 50-target request is far below the default.
    let fifty: Vec<_> = (0..50u128)
        .map(|i| invites_core::WebsiteId(uuid::Uuid::from_u128(i)))
        .collect();
    assert!(bulk("direct", "a@example.com", &fifty).len() < MAX_REQUEST_BODY_BYTES / 4);
}

/// A body of chunks with no known length (like `Transfer-Encoding: chunked`).
fn futures_stream(
    items: Vec<Result<String, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<String, std::io::Error>> + Send + 'static {
    struct Chunks(std::vec::IntoIter<Result<String, std::io::Error>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<String, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Chunks(items.into_iter())
}

#[tokio::test]
async fn path_and_routing_rejections_are_json() {
    let s = server().await;
    for (method, path) in [
        (Method::DELETE, "/invitations/not-a-uuid"),
        (Method::GET, "/invitation-batches/123"),
        (Method::POST, "/invitation-batches/%20/resend"),
    ] {
        let reply = call(method, path).key("global").send(&s.app).await;
        assert_eq!(reply.status, 400, "{path}");
        assert_eq!((reply.code(), reply.field()), ("invalid_id", Some("id")));
    }
    let unknown = call(Method::GET, "/nowhere")
        .key("global")
        .send(&s.app)
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "route_not_found");

    for (method, path, allow) in [
        (Method::GET, "/invites/bulk", "POST"),
        (
            Method::PUT,
            "/invitations/00000000-0000-0000-0000-000000000001",
            "DELETE",
        ),
        (Method::DELETE, "/invitations", "GET,HEAD"),
    ] {
        let reply = call(method.clone(), path).key("global").send(&s.app).await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.code(), "method_not_allowed");
        assert_eq!(reply.headers["allow"], allow, "{method} {path}");
    }
}
