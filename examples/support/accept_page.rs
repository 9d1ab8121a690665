//! The demo server's accept page: the host's part of the flow, behind the link in the email.
//! `GET /accept?token=…` shows what the link offers (read-only, so mail scanners that follow
//! links are harmless); the button posts the token back and accepts, and the answer names
//! each website or group with what happened to it. Addresses show their domain in Unicode.
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
use invites::core::{Email, InvitationId, OutcomeCode, TargetId, escape_html};
use invites::prelude::*;
use std::collections::HashMap;

/// What the page needs: the service, and the host's own key, with which it reads the names
/// of a batch's targets after accepting.
#[derive(Clone)]
struct Page {
    service: InviteService,
    host: Principal,
}

/// `GET` and `POST /accept`, served with `service`; `host` is a key of the organization
/// whose invitations the page shows.
pub(crate) fn routes<S>(service: InviteService, host: Principal) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/accept", get(show).post(accept))
        .with_state(Page { service, host })
}

#[derive(serde::Deserialize)]
struct TokenForm {
    token: String,
}

/// An address as a person reads it: the domain in Unicode (`bücher.example`, not the
/// `xn--` form the store keeps).
fn address(email: &Email) -> String {
    format!("{}@{}", email.local_part(), email.domain_unicode())
}

fn kind(target: &TargetId) -> &'static str {
    match target {
        TargetId::Website(_) => "website",
        TargetId::Group(_) => "group",
    }
}

/// What the link offers, with a button that accepts it.
async fn show(State(page): State<Page>, Query(q): Query<TokenForm>) -> Response {
    let body = match page.service.preview(&q.token).await {
        Ok(p) => {
            let items: String = p
                .invitations
                .iter()
                .map(|i| {
                    format!(
                        "<li>{} {} (as {})</li>",
                        kind(&i.target),
                        escape_html(&i.target_name),
                        i.role
                    )
                })
                .collect();
            format!(
                "<p>Invitations for {}:</p><ul>{items}</ul>\
                 <form method=\"post\" action=\"/accept\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
                 <button>Accept</button></form>",
                escape_html(&address(&p.email)),
                escape_html(&q.token)
            )
        }
        Err(e) => format!("<p>{}</p>", escape_html(&e.to_string())),
    };
    html(body)
}

/// Accepts, then says what happened to each invitation, by the target's name.
async fn accept(State(page): State<Page>, Form(f): Form<TokenForm>) -> Response {
    let body = match accepted(&page, &f.token).await {
        Ok(body) => body,
        Err(e) => format!("<p>{}</p>", escape_html(&e.to_string())),
    };
    html(body)
}

async fn accepted(page: &Page, token: &str) -> Result<String, InviteError> {
    // The preview names the address and the batch; once accepted, the token opens nothing.
    let preview = page.service.preview(token).await?;
    let accepted = page.service.accept(token, None).await?;
    // Every invitation of the batch by id, with its target's name (the preview lists only
    // the live ones; accepting also reports revoked and expired ones).
    let mut names: HashMap<InvitationId, String> = preview
        .invitations
        .iter()
        .map(|i| {
            (
                i.invite_id,
                format!("{} {}", kind(&i.target), i.target_name),
            )
        })
        .collect();
    if let Ok(batch) = page.service.batch(&page.host, preview.batch_id).await {
        for i in batch.invitations {
            names.insert(i.id, format!("{} {}", kind(&i.target), i.target_name));
        }
    }
    let items: String = accepted
        .results
        .iter()
        .map(|r| {
            let what = match r.result.code {
                OutcomeCode::Added => "you are now a member",
                OutcomeCode::AlreadyMember => "you were a member already",
                OutcomeCode::HasOrgAccess => "you have access through your organization already",
                OutcomeCode::Revoked => "this invitation was withdrawn",
                OutcomeCode::Expired => "this invitation has expired",
                _ => "not accepted",
            };
            let name = names.get(&r.invite_id).map_or("a target", String::as_str);
            format!("<li>{}: {what}</li>", escape_html(name))
        })
        .collect();
    Ok(format!(
        "<p>Welcome, {}.</p><ul>{items}</ul>",
        escape_html(&address(&preview.email))
    ))
}

/// The page around `body`, with the headers that keep its URL (and so the token) out of
/// caches and `Referer` headers.
fn html(body: String) -> Response {
    let mut response = Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Acme invitation</title></head><body>{body}</body></html>"
    ))
    .into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
