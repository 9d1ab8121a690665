//! The invites library over HTTP: an axum router a host mounts in one line, with the bulk
//! invite endpoint of docs/contract.md §10 and the whole invitation lifecycle, one JSON error body, and
//! an OpenAPI 3.1 document generated from the code.
//!
//! ```
//! use axum::body::Body;
//! use axum::http::Request;
//! use invites_axum::{InvitesApi, router};
//! use invites_core::*;
//! use invites_memory::MemoryStore;
//! use invites_testkit::RecordingMailer;
//! use std::sync::Arc;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let org = OrganizationId(uuid::Uuid::from_u128(1));
//! let site = WebsiteId(uuid::Uuid::from_u128(2));
//! store.create_organization(org, "Acme").await.unwrap();
//! store.create_website(&Website { id: site, organization: org, name: "Shop".into(), url: "https://shop.example".into() })
//!     .await
//!     .unwrap();
//! let service = InviteService::new(
//!     Arc::new(store),
//!     Arc::new(RecordingMailer::new_ok()),
//!     InviteConfig::new("https://app.example/accept").unwrap(),
//! );
//!
//! // The host authenticates in its own middleware and inserts the Principal (or passes a
//! // PrincipalResolver to `InvitesApi::with_resolver`).
//! let key = Principal::global(org, ApiKeyId(uuid::Uuid::from_u128(3)));
//! let app = axum::Router::new()
//!     .nest("/api/v1", router(InvitesApi::new(service)))
//!     .layer(axum::Extension(key));
//!
//! let body = format!(r#"{{"invite_method":"direct","email":"ann@example.com","website_ids":["{site}"]}}"#);
//! let request = Request::post("/api/v1/invites/bulk")
//!     .header("content-type", "application/json")
//!     .body(Body::from(body))
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```
//!
//! # Routes
//!
//! | route | service call |
//! |---|---|
//! | `POST /invites/bulk` (optional `Idempotency-Key` header) | `bulk_invite`, `bulk_invite_idempotent` |
//! | `POST /invites/preview` `{"token"}` | `preview` |
//! | `POST /invites/accept` `{"token", "user_id"?}` | `accept` |
//! | `DELETE /invitations/{id}` | `revoke` |
//! | `POST /invitation-batches/{id}/resend` | `resend` |
//! | `GET /invitation-batches/{id}` | `batch` |
//! | `GET /invitations?website_id=&group_id=&email=&status=&limit=&cursor=` | `list_invitations` |
//! | `GET /websites/{id}/members?limit=&cursor=` | `members_of` |
//! | `GET /groups/{id}/members?limit=&cursor=` | `members_of` |
//! | `GET /users/{id}/websites?limit=&cursor=` | `websites_of` |
//! | `PUT /websites/{id}/members/{user_id}`, `PUT /groups/{id}/members/{user_id}` `{"role"}` | `set_member_role` |
//! | `DELETE /websites/{id}/members/{user_id}`, `DELETE /groups/{id}/members/{user_id}` | `remove_member` |
//! | `GET /openapi.json` (no key needed) | the document, [`openapi`] |
//!
//! # Decisions
//!
//! - Accept tokens travel only in JSON bodies, never in paths or query strings, so access
//!   logs never hold them. Preview is a `POST` for that reason.
//! - Every route but `/openapi.json` needs a caller ([`Caller`]): a [`Principal`] in the
//!   request extensions, else the [`PrincipalResolver`]'s answer, else 401. The caller is
//!   checked before the body is read, so an anonymous client learns nothing about bodies.
//! - The body limit is on by default ([`MAX_REQUEST_BODY_BYTES`]); a 50-target request is
//!   about 2.2 KB.
//! - Errors of the core keep their body ([`InviteError::to_json`]) and status
//!   ([`ErrorCode::http_status`]); the HTTP layer adds its own codes (see [`ApiError`]).
//!   Unknown paths answer 404 `route_not_found`, wrong methods 405 `method_not_allowed`
//!   with `Allow`, and a panicking handler 500 `internal_error`, all in the same body.
//! - Preview and accept need a caller like every route, but do not check its
//!   organization: the token alone decides what it opens (a host serves its accept page with
//!   its own key).
//! - **Cross-site requests (CSRF).** With the key in a header (`x-api-key`, `Authorization`)
//!   a page on another site cannot call the API as the caller: browsers never attach such
//!   headers on their own. A host that authenticates by **cookie** must add its own CSRF
//!   defence (`SameSite=Strict` cookies, a CSRF token, or refusing a cross-site `Origin` /
//!   `Sec-Fetch-Site`), above all for `POST /invitation-batches/{id}/resend`: it takes no
//!   body, so any page can make a browser send it cross-site with the cookie (an HTML form
//!   does, with no CORS preflight) and rotate the batch's link. The JSON routes refuse
//!   anything but `application/json` (415), which a cross-site form cannot send, and `DELETE`
//!   needs a preflight; the `GET` routes change nothing.
//! - `GET /invitations` filters combine (all must match; `website_id` with `group_id`
//!   matches nothing); without any it lists pending invitations. The store applies the most
//!   selective one and the others filter its page, so a page may be short: follow
//!   `next_cursor`. Unknown parameters are refused.
//! - Membership changes answer 200 for every typed outcome, like the bulk results: the
//!   outcome is in `code` (`updated`, `removed`, `unchanged`, `not_a_member`,
//!   `has_org_access`, `forbidden`, `target_not_found`), `success` is true for the first
//!   three, and the target is named `website_id` or `group_id`. Only a bad request (an id
//!   that is not a UUID, a role other than `admin` or `viewer`, an unknown body field) is a
//!   4xx.
//! - **No route for the host calls.** `InviteService::access(user, website)`, the check a
//!   host makes in its own middleware on every request of its users, and
//!   `InviteService::erase_person(email)`, which erases a person across every organization,
//!   have no route on purpose: erasure must never be reachable with an organization's API
//!   key, and the access check takes no principal. Call them from the host's own code.
//!
//! [`Principal`]: invites_core::Principal
//! [`InviteError::to_json`]: invites_core::InviteError::to_json
//! [`ErrorCode::http_status`]: invites_core::ErrorCode::http_status

mod access;
mod auth;
mod error;
mod extract;
mod handlers;
mod openapi;

pub use auth::{AuthError, Caller, PrincipalResolver};
pub use error::ApiError;
pub use openapi::{openapi, openapi_json};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderName, Response};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use invites_core::InviteService;
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

/// The default limit on a request body: the core's bound (16 KiB; a 50-target bulk request is
/// about 2.2 KB). Bigger bodies get 413 `body_too_large`, the core's code, before any parsing.
pub use invites_core::MAX_REQUEST_BODY_BYTES;

/// What the router serves: the [`InviteService`], how callers are resolved, and the body
/// limit. Cheap to clone (everything is shared).
///
/// ```
/// # use invites_core::*;
/// # let service = InviteService::new(
/// #     std::sync::Arc::new(invites_memory::MemoryStore::new()),
/// #     std::sync::Arc::new(invites_testkit::RecordingMailer::new_ok()),
/// #     InviteConfig::new("https://app.example/accept").unwrap(),
/// # );
/// let api = invites_axum::InvitesApi::new(service).with_body_limit(16 * 1024);
/// assert_eq!(api.body_limit(), 16 * 1024);
/// ```
#[derive(Clone)]
#[must_use]
pub struct InvitesApi {
    service: InviteService,
    resolver: Option<Arc<dyn PrincipalResolver>>,
    body_limit: usize,
    document: Arc<str>,
}

impl fmt::Debug for InvitesApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvitesApi")
            .field("service", &self.service)
            .field("resolver", &self.resolver)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl InvitesApi {
    /// Serves `service` with no resolver (callers must come from the host's middleware as a
    /// [`Principal`](invites_core::Principal) extension) and the default body limit.
    pub fn new(service: InviteService) -> Self {
        let document = openapi_json();
        InvitesApi {
            service,
            resolver: None,
            body_limit: MAX_REQUEST_BODY_BYTES,
            document: document.into(),
        }
    }

    /// Resolves callers with `resolver` when the request carries no
    /// [`Principal`](invites_core::Principal) extension.
    pub fn with_resolver(mut self, resolver: impl PrincipalResolver) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// The same, for a resolver already shared.
    pub fn with_shared_resolver(mut self, resolver: Arc<dyn PrincipalResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Limits request bodies to `bytes` (default [`MAX_REQUEST_BODY_BYTES`]).
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The service.
    pub fn service(&self) -> &InviteService {
        &self.service
    }

    /// The body limit in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    pub(crate) fn resolver(&self) -> Option<&Arc<dyn PrincipalResolver>> {
        self.resolver.as_ref()
    }

    /// The OpenAPI document as served, pretty-printed JSON.
    pub(crate) fn document(&self) -> String {
        self.document.to_string()
    }
}

/// The router of the API, its state applied, for any host state `S`: mount it with
/// `app.nest("/api/v1", invites_axum::router(api))`. Routes, errors and decisions: see the
/// crate docs.
pub fn router<S>(api: InvitesApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let limit = api.body_limit;
    Router::new()
        .route("/invites/bulk", post(handlers::bulk_invite))
        .route("/invites/preview", post(handlers::preview))
        .route("/invites/accept", post(handlers::accept))
        .route("/invitations", get(handlers::list_invitations))
        .route("/invitations/{id}", delete(handlers::revoke))
        .route("/invitation-batches/{id}", get(handlers::batch))
        .route("/invitation-batches/{id}/resend", post(handlers::resend))
        .route("/websites/{id}/members", get(access::website_members))
        .route("/groups/{id}/members", get(access::group_members))
        .route("/users/{id}/websites", get(access::user_websites))
        .route(
            "/websites/{id}/members/{user_id}",
            put(access::set_website_member).delete(access::remove_website_member),
        )
        .route(
            "/groups/{id}/members/{user_id}",
            put(access::set_group_member).delete(access::remove_group_member),
        )
        .route("/openapi.json", get(handlers::document))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(SetSensitiveRequestHeadersLayer::new([
            HeaderName::from_static("x-api-key"),
            AUTHORIZATION,
            COOKIE,
        ]))
        .with_state(api)
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response<axum::body::Body> {
    ApiError::internal().into_response()
}
