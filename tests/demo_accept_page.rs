//! The demo server's accept page (`examples/support/accept_page.rs`), driven through its
//! router: its URL holds the accept token, so every answer keeps that URL out of caches and
//! `Referer` headers.

#[path = "../examples/support/accept_page.rs"]
mod accept_page;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use invites::core::{BulkInviteRequest, InviteMethod};
use invites::memory::MemoryStore;
use invites_testkit::{Harness, World};
use tower::ServiceExt;

/// A harness with one email-mode batch to two websites, and its token.
async fn invited() -> (Harness, World, String) {
    let store = MemoryStore::new();
    let world = World::seed(&store).await;
    let h = Harness::new(store);
    h.service
        .bulk_invite(
            &world.global_key(),
            BulkInviteRequest::websites(
                InviteMethod::Email,
                "ann@example.test",
                world.websites[..2].iter().copied(),
            ),
        )
        .await
        .unwrap();
    let sent = h.mailer.sent();
    let token = sent[0]
        .text
        .split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the email holds an accept link")
        .to_owned();
    (h, world, token)
}

async fn call(h: &Harness, request: Request<Body>) -> (Response<Body>, String) {
    let response = accept_page::routes::<()>(h.service.clone())
        .oneshot(request)
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    (Response::from_parts(parts, Body::empty()), text)
}

fn get(token: &str) -> Request<Body> {
    Request::get(format!("/accept?token={token}"))
        .body(Body::empty())
        .unwrap()
}

fn post(token: &str) -> Request<Body> {
    Request::post("/accept")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}")))
        .unwrap()
}

fn assert_token_safe(response: &Response<Body>, what: &str) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("cache-control").as_deref(),
        Some("no-store"),
        "{what}"
    );
    assert_eq!(
        header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
}

#[tokio::test]
async fn every_answer_of_the_accept_page_is_neither_cached_nor_referred() {
    let (h, _, token) = invited().await;

    let (shown, html) = call(&h, get(&token)).await;
    assert_eq!(shown.status(), StatusCode::OK);
    assert!(html.contains("<button>Accept</button>"), "{html}");
    assert_token_safe(&shown, "the preview");

    let (accepted, html) = call(&h, post(&token)).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert!(html.contains("Accepted"), "{html}");
    assert_token_safe(&accepted, "the accepted page");

    // A used or unknown token answers a page too, with the same headers.
    let (used, html) = call(&h, get(&token)).await;
    assert!(!html.contains("<button>"), "{html}");
    assert_token_safe(&used, "a used token's preview");
    let (unknown, _) = call(&h, post("not-a-token")).await;
    assert_token_safe(&unknown, "an unknown token's accept");
}
