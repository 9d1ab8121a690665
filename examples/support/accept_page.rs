//! The demo server's accept page: the host's part of the flow, behind the link in the email.
//! `GET /accept?token=…` shows what the link offers (read-only, so mail scanners that follow
//! links are harmless); the button posts the token back and accepts.
//!
//! The token is in this page's URL, so every answer says `Cache-Control: no-store` (no
//! browser or proxy cache keeps a copy) and `Referrer-Policy: no-referrer` (a link or resource
//! on the page never receives the URL as its `Referer`).

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, REFERRER_POLICY};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use invites::core::escape_html;
use invites::prelude::*;

/// `GET` and `POST /accept`, served with `service`.
pub(crate) fn routes<S>(service: InviteService) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/accept", get(show).post(accept))
        .with_state(service)
}

#[derive(serde::Deserialize)]
struct TokenForm {
    token: String,
}

/// What the link offers, with a button that accepts it.
async fn show(State(service): State<InviteService>, Query(q): Query<TokenForm>) -> Response {
    let body = match service.preview(&q.token).await {
        Ok(p) => {
            let items: String = p
                .invitations
                .iter()
                .map(|i| format!("<li>{} ({})</li>", escape_html(&i.target_name), i.role))
                .collect();
            format!(
                "<p>Invitations for {}:</p><ul>{items}</ul>\
                 <form method=\"post\" action=\"/accept\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
                 <button>Accept</button></form>",
                escape_html(p.email.as_str()),
                escape_html(&q.token)
            )
        }
        Err(e) => format!("<p>{}</p>", escape_html(&e.to_string())),
    };
    page(body)
}

async fn accept(State(service): State<InviteService>, Form(f): Form<TokenForm>) -> Response {
    let body = match service.accept(&f.token, None).await {
        Ok(a) => {
            let items: String = a
                .results
                .iter()
                .map(|r| format!("<li>{}</li>", r.result.code.as_str()))
                .collect();
            format!("<p>Accepted. User {}:</p><ul>{items}</ul>", a.user_id)
        }
        Err(e) => format!("<p>{}</p>", escape_html(&e.to_string())),
    };
    page(body)
}

/// The page around `body`, with the headers that keep its URL (and so the token) out of
/// caches and `Referer` headers.
fn page(body: String) -> Response {
    let mut response = Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Acme invitation</title></head><body>{body}</body></html>"
    ))
    .into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
