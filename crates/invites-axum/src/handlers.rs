//! The handlers: each extracts the caller, then its input, calls one `InviteService` method
//! and answers its JSON (or an [`ApiError`]).

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::openapi::{
    AcceptRequest, AcceptResponse as AcceptResponseDoc, BatchView as BatchViewDoc,
    BulkInviteRequest as BulkInviteRequestDoc, BulkInviteResponse as BulkInviteResponseDoc,
    ErrorBody, InvitationPage as InvitationPageDoc, InvitationPreview as InvitationPreviewDoc,
    ResendResponse as ResendResponseDoc, RevokeResponse as RevokeResponseDoc, TokenRequest,
};
use crate::{ApiError, Caller, InvitesApi};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use invites_core::{
    AcceptResponse, BatchId, BatchView, BulkInviteRequest, BulkInviteResponse, Email, ErrorCode,
    GroupId, InvitationFilter, InvitationId, InvitationPage, InvitationPreview, InvitationStatus,
    InvitationView, ResendResponse, RevokeResponse, TargetId, UserId, WebsiteId,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The header of docs/contract.md §7.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Invite one user to many websites or groups.
#[utoipa::path(
    post,
    path = "/invites/bulk",
    tag = "invites",
    operation_id = "bulk_invite",
    description = "Invites one user (by email) to 1 to 50 websites or groups. Each target is processed on its own, in request order; the response has one result per id. With `Idempotency-Key`, a repeat of the same request within 24 hours returns the stored response and changes nothing.",
    request_body(content = BulkInviteRequestDoc, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII characters; scoped to the API key.", pattern = "^[!-~]{1,255}$")
    ),
    responses(
        (status = 200, description = "Processed (read `summary`: targets may have failed)", body = BulkInviteResponseDoc),
        (status = 400, description = "Invalid request (`field` names the culprit); nothing was written", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "`group_ids` need a global key", body = ErrorBody),
        (status = 409, description = "The idempotency key was used for another request, or its first request is still running", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable; nothing was reported as done", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn bulk_invite(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<BulkInviteResponse>, ApiError> {
    let request = BulkInviteRequest::from_value(Value::Object(body))?;
    let mut keys = headers.get_all(IDEMPOTENCY_KEY).iter();
    let response = match (keys.next(), keys.next()) {
        (None, _) => api.service().bulk_invite(&principal, request).await?,
        (Some(key), None) => {
            let key = key.to_str().map_err(|_| bad_idempotency_key())?;
            api.service()
                .bulk_invite_idempotent(&principal, key, request)
                .await?
        }
        (Some(_), Some(_)) => return Err(bad_idempotency_key()),
    };
    Ok(Json(response))
}

fn bad_idempotency_key() -> ApiError {
    ApiError::validation(
        ErrorCode::InvalidIdempotencyKey,
        "idempotency_key",
        "must be sent once, as 1 to 255 printable ASCII characters",
    )
}

/// Takes the body's fields by name: an unknown one is `unknown_field`; `token` must be a
/// string. Messages never quote a value.
fn token_fields(
    mut body: Map<String, Value>,
    allowed: &[&str],
) -> Result<(String, Map<String, Value>), ApiError> {
    if let Some(unknown) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::validation(
            ErrorCode::UnknownField,
            unknown.clone(),
            "is not a known field",
        ));
    }
    match body.remove("token") {
        Some(Value::String(token)) => Ok((token, body)),
        None | Some(Value::Null) => Err(ApiError::validation(
            ErrorCode::MalformedJson,
            "token",
            "is required",
        )),
        Some(_) => Err(ApiError::validation(
            ErrorCode::MalformedJson,
            "token",
            "must be a string",
        )),
    }
}

/// Shows what an accept token offers, read-only.
#[utoipa::path(
    post,
    path = "/invites/preview",
    tag = "invites",
    operation_id = "preview_invitation",
    description = "What an accept link offers: its live invitations, targets, roles and expiry. Read-only, so link scanners are harmless. The token travels in the body so access logs never hold it.",
    request_body(content = TokenRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The live invitations of the token's batch", body = InvitationPreviewDoc),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 404, description = "`invalid_token`: unknown, used, rotated or expired (deliberately uniform)", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn preview(
    State(api): State<InvitesApi>,
    Caller(_): Caller,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<InvitationPreview>, ApiError> {
    let (token, _) = token_fields(body, &["token"])?;
    Ok(Json(api.service().preview(&token).await?))
}

/// Accepts a token.
#[utoipa::path(
    post,
    path = "/invites/accept",
    tag = "invites",
    operation_id = "accept_invitation",
    description = "Accepts an accept token: finds or creates the user for the invited email (verified) and turns every live invitation of the batch into a membership, each on its own. With `user_id` (a signed-in user), that user's email must be the invited one.",
    request_body(content = AcceptRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per invitation of the batch", body = AcceptResponseDoc),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "`email_mismatch`: the signed-in user's email is not the invited one", body = ErrorBody),
        (status = 404, description = "`invalid_token` (deliberately uniform), or `not_found` for an unknown `user_id`", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn accept(
    State(api): State<InvitesApi>,
    Caller(_): Caller,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<AcceptResponse>, ApiError> {
    let (token, mut rest) = token_fields(body, &["token", "user_id"])?;
    let user = match rest.remove("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(UserId(Uuid::try_parse(&s).map_err(|_| {
            ApiError::validation(ErrorCode::MalformedJson, "user_id", "is not a UUID")
        })?)),
        Some(_) => {
            return Err(ApiError::validation(
                ErrorCode::MalformedJson,
                "user_id",
                "must be a UUID string",
            ));
        }
    };
    Ok(Json(api.service().accept(&token, user).await?))
}

/// Revokes one invitation.
#[utoipa::path(
    delete,
    path = "/invitations/{id}",
    tag = "invitations",
    operation_id = "revoke_invitation",
    description = "Revokes one pending invitation (its link no longer grants that target). Revoking twice is harmless (`changed: false`); an accepted invitation cannot be revoked.",
    params(("id" = Uuid, Path, description = "The invitation")),
    responses(
        (status = 200, description = "Revoked, or already dead", body = RevokeResponseDoc),
        (status = 400, description = "`invalid_id`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key does not reach the invitation's target", body = ErrorBody),
        (status = 404, description = "No such invitation in the key's organization", body = ErrorBody),
        (status = 409, description = "`already_accepted`", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn revoke(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RevokeResponse>, ApiError> {
    Ok(Json(
        api.service().revoke(&principal, InvitationId(id)).await?,
    ))
}

/// Resends a batch.
#[utoipa::path(
    post,
    path = "/invitation-batches/{id}/resend",
    tag = "invitations",
    operation_id = "resend_batch",
    description = "Rotates the batch's token (the old link dies), resets the expiry of its pending and expired invitations and queues a new consolidated email. At most once a minute per batch. Takes no body.",
    params(("id" = Uuid, Path, description = "The batch")),
    responses(
        (status = 200, description = "Resent", body = ResendResponseDoc),
        (status = 400, description = "`invalid_id`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key does not reach every target of the batch", body = ErrorBody),
        (status = 404, description = "No such batch in the key's organization", body = ErrorBody),
        (status = 409, description = "`nothing_to_resend`: no pending or expired invitation left", body = ErrorBody),
        (status = 429, description = "`resend_too_soon` (with `retry_after_secs` and `Retry-After`), or the host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn resend(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ResendResponse>, ApiError> {
    Ok(Json(api.service().resend(&principal, BatchId(id)).await?))
}

/// Shows a batch with its invitations and delivery state.
#[utoipa::path(
    get,
    path = "/invitation-batches/{id}",
    tag = "invitations",
    operation_id = "get_batch",
    description = "A batch with its invitations (status as of now) and the delivery state of its emails.",
    params(("id" = Uuid, Path, description = "The batch")),
    responses(
        (status = 200, description = "The batch", body = BatchViewDoc),
        (status = 400, description = "`invalid_id`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key does not reach every target of the batch", body = ErrorBody),
        (status = 404, description = "No such batch in the key's organization", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn batch(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<BatchView>, ApiError> {
    Ok(Json(api.service().batch(&principal, BatchId(id)).await?))
}

/// The query of `GET /invitations`: filters that combine, then paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Invitations to this website.
    website_id: Option<Uuid>,
    /// Invitations to this group.
    group_id: Option<Uuid>,
    /// Invitations to this address.
    #[param(format = "email", max_length = 254)]
    email: Option<String>,
    /// Invitations with this status (`expired` derived from the clock).
    #[param(inline, value_type = Option<ListStatus>)]
    status: Option<InvitationStatus>,
    /// Page size, 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(
        pattern = "^-?[0-9]{1,18}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )]
    cursor: Option<String>,
}

/// The statuses a list can filter by.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ListStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
    Superseded,
}

const DEFAULT_PAGE: usize = 50;

impl ListQuery {
    /// The filter the store applies (the most selective given: target, then email, then
    /// status; pending invitations when none is given) and the ones applied to its page.
    fn filters(&self) -> Result<(InvitationFilter, Vec<InvitationFilter>), ApiError> {
        let mut filters = Vec::with_capacity(4);
        if let Some(w) = self.website_id {
            filters.push(InvitationFilter::Target(TargetId::Website(WebsiteId(w))));
        }
        if let Some(g) = self.group_id {
            filters.push(InvitationFilter::Target(TargetId::Group(GroupId(g))));
        }
        if let Some(e) = &self.email {
            let email = Email::parse(e)
                .map_err(|e| ApiError::validation(ErrorCode::InvalidEmail, "email", e.reason()))?;
            filters.push(InvitationFilter::Email(email));
        }
        if let Some(s) = self.status {
            filters.push(InvitationFilter::Status(s));
        }
        if filters.is_empty() {
            return Ok((
                InvitationFilter::Status(InvitationStatus::Pending),
                Vec::new(),
            ));
        }
        let primary = filters.remove(0);
        Ok((primary, filters))
    }
}

fn matches(view: &InvitationView, filter: &InvitationFilter) -> bool {
    match filter {
        InvitationFilter::Target(t) => view.target == *t,
        InvitationFilter::Email(e) => view.email == *e,
        InvitationFilter::Status(s) => view.status == *s,
    }
}

/// Lists invitations by target, email or status.
#[utoipa::path(
    get,
    path = "/invitations",
    tag = "invitations",
    operation_id = "list_invitations",
    description = "Invitations of the key's organization, oldest first. Filters combine (all must match); without any, the pending invitations are listed. A page may hold fewer than `limit` items (filters combined, or a website-scoped key, which sees only invitations to its websites): follow `next_cursor` until it is null. Never shows a token.",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = InvitationPageDoc),
        (status = 400, description = "`invalid_query` (bad limit or cursor, unknown parameter) or `invalid_email`", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key does not reach the filtered target", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn list_invitations(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<InvitationPage>, ApiError> {
    let (primary, rest) = query.filters()?;
    let limit = query.limit.map_or(DEFAULT_PAGE, |l| l as usize);
    // The service checks the limit, the cursor and the key's reach for every query, even one
    // that can match nothing.
    let mut page = api
        .service()
        .list_invitations(&principal, primary, limit, query.cursor.as_deref())
        .await?;
    // A website filter and a group filter together match nothing: no items, no next page.
    if rest
        .iter()
        .any(|f| matches!(f, InvitationFilter::Target(_)))
    {
        return Ok(Json(InvitationPage {
            items: Vec::new(),
            next_cursor: None,
        }));
    }
    page.items.retain(|v| rest.iter().all(|f| matches(v, f)));
    Ok(Json(page))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "invites",
    operation_id = "openapi_document",
    description = "This OpenAPI 3.1 document. Needs no API key.",
    responses((status = 200, description = "The document", content_type = "application/json", body = Object)),
)]
pub(crate) async fn document(State(api): State<InvitesApi>) -> Response {
    ([(CONTENT_TYPE, "application/json")], api.document()).into_response()
}
