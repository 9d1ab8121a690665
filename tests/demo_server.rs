//! The demo server's parts that are not the library: its accept page
//! (`examples/support/accept_page.rs`), driven through its router, and its `.eml` mailer
//! (`examples/support/eml_folder.rs`), read back with a MIME parser.

#[path = "../examples/support/accept_page.rs"]
mod accept_page;
#[path = "../examples/support/eml_folder.rs"]
mod eml_folder;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use invites::core::{BulkInviteRequest, EmailMessage, InviteMethod};
use invites::memory::MemoryStore;
use invites::prelude::*;
use invites_testkit::{Harness, World};
use tower::ServiceExt;

/// The token of an accept link in a message's text part.
fn token_in(text: &str) -> String {
    text.split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the email holds an accept link")
        .to_owned()
}

/// A harness with one email-mode batch to two websites for `email`, and its token.
async fn invited(email: &str) -> (Harness, World, String) {
    let store = MemoryStore::new();
    let world = World::seed(&store).await;
    let h = Harness::new(store);
    h.service
        .bulk_invite(
            &world.global_key(),
            BulkInviteRequest::websites(
                InviteMethod::Email,
                email,
                world.websites[..2].iter().copied(),
            ),
        )
        .await
        .unwrap();
    let token = token_in(&h.mailer.sent()[0].text);
    (h, world, token)
}

async fn call(h: &Harness, w: &World, request: Request<Body>) -> (Response<Body>, String) {
    let response = accept_page::routes::<()>(h.service.clone(), w.global_key())
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
    let (h, w, token) = invited("ann@example.test").await;

    let (shown, html) = call(&h, &w, get(&token)).await;
    assert_eq!(shown.status(), StatusCode::OK);
    assert!(html.contains("<button>Accept</button>"), "{html}");
    assert_token_safe(&shown, "the preview");

    let (accepted, html) = call(&h, &w, post(&token)).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert!(html.contains("Welcome"), "{html}");
    assert_token_safe(&accepted, "the accepted page");

    // A used or unknown token answers a page too, with the same headers.
    let (used, html) = call(&h, &w, get(&token)).await;
    assert!(!html.contains("<button>"), "{html}");
    assert_token_safe(&used, "a used token's preview");
    let (unknown, _) = call(&h, &w, post("not-a-token")).await;
    assert_token_safe(&unknown, "an unknown token's accept");
}

#[tokio::test]
async fn the_accept_page_names_the_targets_and_shows_the_unicode_domain() {
    let (h, w, token) = invited("ann@Bücher.example").await;

    let (_, html) = call(&h, &w, get(&token)).await;
    assert!(html.contains("ann@bücher.example"), "{html}");
    assert!(!html.contains("xn--"), "no A-label on the page: {html}");
    assert!(html.contains("website Site 0 (as viewer)"), "{html}");

    let (_, html) = call(&h, &w, post(&token)).await;
    assert!(html.contains("Welcome, ann@bücher.example."), "{html}");
    assert!(!html.contains("xn--"), "{html}");
    for site in ["Site 0", "Site 1"] {
        assert!(
            html.contains(&format!("website {site}: you are now a member")),
            "{site}: {html}"
        );
    }
    // No bare outcome code, no user id.
    assert!(!html.contains("added"), "{html}");
    let email = invites::core::Email::parse("ann@bücher.example").unwrap();
    let user = h
        .store
        .find_user(&email)
        .await
        .unwrap()
        .expect("accepting made the user");
    assert!(!html.contains(&user.id.to_string()), "{html}");
}

#[tokio::test]
async fn the_eml_mailer_writes_a_mime_message_a_parser_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = eml_folder::EmlFolderMailer::new(
        dir.path(),
        "Acme <no-reply@acme.test>",
        "invites.acme.test",
    )
    .unwrap();
    let (h, _, _) = invited("zoë@bücher.example").await;
    let mut message: EmailMessage = h.mailer.sent()[0].clone();
    message.subject = "Einladung für Zoë: 2 Websites".into();
    mailer.send(&message).await.unwrap();

    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one file per message: {files:?}");
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let raw = std::fs::read(&files[0]).unwrap();
    let parsed = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a MIME message");

    assert_eq!(parsed.subject(), Some("Einladung für Zoë: 2 Websites"));
    assert_eq!(
        parsed.message_id(),
        Some(format!("{}@invites.acme.test", message.id).as_str())
    );
    let to = parsed
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address());
    assert_eq!(to, Some(message.to.as_str()));
    // Lines end in CRLF on the wire.
    let lf = |s: &str| s.replace("\r\n", "\n");
    assert_eq!(
        parsed.body_text(0).map(|t| lf(&t)),
        Some(message.text.clone())
    );
    assert_eq!(
        parsed.body_html(0).map(|t| lf(&t)),
        Some(message.html.clone())
    );
    // The accept link survives the transfer encoding whole.
    let text = parsed.body_text(0).unwrap();
    assert!(
        text.contains(&format!("?token={}\r\n", token_in(&message.text))),
        "{text}"
    );
}
