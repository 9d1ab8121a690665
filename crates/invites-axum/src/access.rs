//! The handlers of who has access (docs/contract.md §11): the member lists of a website or a
//! group, the websites a user reaches, and membership changes with typed outcomes. The host
//! calls `InviteService::access` and `InviteService::erase_person` itself: they have no route.

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::openapi::{
    ErrorBody, MemberChangeResponse as MemberChangeResponseDoc, MemberPage as MemberPageDoc,
    MemberRoleRequest, WebsiteAccessPage as WebsiteAccessPageDoc,
};
use crate::{ApiError, Caller, InvitesApi};
use axum::Json;
use axum::extract::State;
use invites_core::{
    ErrorCode, GroupId, MemberChangeResponse, MemberOutcome, MemberPage, Role, TargetId, UserId,
    WebsiteAccessPage, WebsiteId,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The default page size of the access lists (as `GET /invitations`).
const DEFAULT_PAGE: usize = 50;

/// The query of the access lists: paging only.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Page size, 1 to 500; default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

impl PageQuery {
    /// The page size; a value that is not a number is `invalid_query` naming `limit` (the
    /// service checks the range).
    fn limit(&self) -> Result<usize, ApiError> {
        self.limit.as_deref().map_or(Ok(DEFAULT_PAGE), |l| {
            l.parse::<usize>().map_err(|_| {
                ApiError::validation(ErrorCode::InvalidQuery, "limit", "must be 1 to 500")
            })
        })
    }

    /// The cursor, in the one form this API returns (a hyphenated UUID, as the published
    /// pattern says; the service refuses anything that is not a UUID).
    fn cursor(&self) -> Result<Option<&str>, ApiError> {
        match self.cursor.as_deref() {
            Some(c) if c.len() != 36 => Err(ApiError::validation(
                ErrorCode::InvalidQuery,
                "cursor",
                "is not a cursor this API returned",
            )),
            c => Ok(c),
        }
    }
}

/// A membership change as answered over HTTP: the target named like the bulk results name
/// theirs (`website_id` or `group_id`), `success` for `updated`, `removed` and `unchanged`.
#[derive(Debug, Serialize)]
pub(crate) struct MemberChangeView {
    success: bool,
    code: MemberOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    website_id: Option<WebsiteId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<GroupId>,
    user_id: UserId,
    role: Option<Role>,
    revoked_invitations: usize,
}

impl From<MemberChangeResponse> for MemberChangeView {
    fn from(r: MemberChangeResponse) -> Self {
        let (website_id, group_id) = match r.target {
            TargetId::Website(w) => (Some(w), None),
            TargetId::Group(g) => (None, Some(g)),
        };
        MemberChangeView {
            success: r.code.is_change() || r.code == MemberOutcome::Unchanged,
            code: r.code,
            website_id,
            group_id,
            user_id: r.user_id,
            role: r.role,
            revoked_invitations: r.revoked_invitations,
        }
    }
}

/// A path `/{id}/members/{user_id}`: each id parsed on its own, so a bad one is `invalid_id`
/// naming `id` or `user_id`.
fn member_path((id, user): (String, String)) -> Result<(Uuid, UserId), ApiError> {
    let id = Uuid::try_parse(&id).map_err(|_| ApiError::invalid_id("id"))?;
    let user = Uuid::try_parse(&user).map_err(|_| ApiError::invalid_id("user_id"))?;
    Ok((id, UserId(user)))
}

/// The body `{"role": "admin" | "viewer"}`: an unknown field is `unknown_field`, a missing or
/// other role `invalid_role`. Messages never quote a value.
fn role_body(body: Map<String, Value>) -> Result<Role, ApiError> {
    if let Some(unknown) = body.keys().find(|k| k.as_str() != "role") {
        return Err(ApiError::validation(
            ErrorCode::UnknownField,
            unknown.clone(),
            "is not a known field",
        ));
    }
    match body.get("role") {
        Some(Value::String(s)) => Role::parse(s),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::validation(
            ErrorCode::InvalidRole,
            "role",
            "must be \"admin\" or \"viewer\"",
        )
    })
}

async fn members(
    api: &InvitesApi,
    principal: &invites_core::Principal,
    target: TargetId,
    query: &PageQuery,
) -> Result<Json<MemberPage>, ApiError> {
    let limit = query.limit()?;
    let cursor = query.cursor()?;
    Ok(Json(
        api.service()
            .members_of(principal, target, cursor, limit)
            .await?,
    ))
}

/// Lists everyone who reaches a website.
#[utoipa::path(
    get,
    path = "/websites/{id}/members",
    tag = "access",
    operation_id = "list_website_members",
    description = "Everyone who reaches the website, by user id: direct members, members of groups that contain it, organization members; each once, with the effective role (the strongest) and every path. Pending invitations are listed by `GET /invitations?website_id=`.",
    params(("id" = Uuid, Path, description = "The website"), PageQuery),
    responses(
        (status = 200, description = "A page", body = MemberPageDoc),
        (status = 400, description = "`invalid_id`, or `invalid_query` (`field` names `limit`, `cursor` or, for an unknown parameter, `query`)", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key does not reach the website", body = ErrorBody),
        (status = 404, description = "No such website in the key's organization", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn website_members(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    members(&api, &principal, TargetId::Website(WebsiteId(id)), &query).await
}

/// Lists the members of a group.
#[utoipa::path(
    get,
    path = "/groups/{id}/members",
    tag = "access",
    operation_id = "list_group_members",
    description = "The group's explicit members, by user id, each with its role. Needs a global key. Pending invitations are listed by `GET /invitations?group_id=`.",
    params(("id" = Uuid, Path, description = "The group"), PageQuery),
    responses(
        (status = 200, description = "A page", body = MemberPageDoc),
        (status = 400, description = "`invalid_id`, or `invalid_query` (`field` names `limit`, `cursor` or, for an unknown parameter, `query`)", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "A website-scoped key never reaches a group", body = ErrorBody),
        (status = 404, description = "No such group in the key's organization", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn group_members(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    members(&api, &principal, TargetId::Group(GroupId(id)), &query).await
}

/// Lists the websites a user reaches.
#[utoipa::path(
    get,
    path = "/users/{id}/websites",
    tag = "access",
    operation_id = "list_user_websites",
    description = "The websites of the key's organization that the user reaches, by website id, each once with the effective role and every path. A website-scoped key sees only its websites. An unknown user, or one of another organization, has an empty list: no key learns whether a user exists elsewhere.",
    params(("id" = Uuid, Path, description = "The user"), PageQuery),
    responses(
        (status = 200, description = "A page (empty for a user the organization does not know)", body = WebsiteAccessPageDoc),
        (status = 400, description = "`invalid_id`, or `invalid_query` (`field` names `limit`, `cursor` or, for an unknown parameter, `query`)", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn user_websites(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<WebsiteAccessPage>, ApiError> {
    let limit = query.limit()?;
    let cursor = query.cursor()?;
    Ok(Json(
        api.service()
            .websites_of(&principal, UserId(id), cursor, limit)
            .await?,
    ))
}

async fn set_role(
    api: &InvitesApi,
    principal: &invites_core::Principal,
    target: TargetId,
    user: UserId,
    body: Map<String, Value>,
) -> Result<Json<MemberChangeView>, ApiError> {
    let role = role_body(body)?;
    let r = api
        .service()
        .set_member_role(principal, target, user, role)
        .await?;
    Ok(Json(r.into()))
}

async fn remove(
    api: &InvitesApi,
    principal: &invites_core::Principal,
    target: TargetId,
    user: UserId,
) -> Result<Json<MemberChangeView>, ApiError> {
    let r = api.service().remove_member(principal, target, user).await?;
    Ok(Json(r.into()))
}

/// Changes a website member's role.
#[utoipa::path(
    put,
    path = "/websites/{id}/members/{user_id}",
    tag = "access",
    operation_id = "set_website_member_role",
    description = "Changes the role of the user's explicit membership of the website. Answers 200 with the outcome in `code`, like the bulk results: `updated`, `unchanged`, `not_a_member`, `has_org_access` (the access comes from the organization and cannot be changed here), `forbidden` (the key does not reach the website), `target_not_found`.",
    params(
        ("id" = Uuid, Path, description = "The website"),
        ("user_id" = Uuid, Path, description = "The member"),
    ),
    request_body(content = MemberRoleRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Processed (read `code`)", body = MemberChangeResponseDoc),
        (status = 400, description = "`invalid_id` (`field`: `id` or `user_id`), `invalid_role`, `unknown_field` or `malformed_json`", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable; nothing changed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn set_website_member(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<MemberChangeView>, ApiError> {
    let (id, user) = member_path(path)?;
    set_role(
        &api,
        &principal,
        TargetId::Website(WebsiteId(id)),
        user,
        body,
    )
    .await
}

/// Changes a group member's role.
#[utoipa::path(
    put,
    path = "/groups/{id}/members/{user_id}",
    tag = "access",
    operation_id = "set_group_member_role",
    description = "Changes the role of the user's membership of the group. Answers 200 with the outcome in `code`: `updated`, `unchanged`, `not_a_member`, `has_org_access`, `forbidden` (a website-scoped key), `target_not_found`.",
    params(
        ("id" = Uuid, Path, description = "The group"),
        ("user_id" = Uuid, Path, description = "The member"),
    ),
    request_body(content = MemberRoleRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Processed (read `code`)", body = MemberChangeResponseDoc),
        (status = 400, description = "`invalid_id` (`field`: `id` or `user_id`), `invalid_role`, `unknown_field` or `malformed_json`", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable; nothing changed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn set_group_member(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<MemberChangeView>, ApiError> {
    let (id, user) = member_path(path)?;
    set_role(&api, &principal, TargetId::Group(GroupId(id)), user, body).await
}

/// Removes a website member.
#[utoipa::path(
    delete,
    path = "/websites/{id}/members/{user_id}",
    tag = "access",
    operation_id = "remove_website_member",
    description = "Removes the user's explicit membership of the website and revokes the user's live invitations to it, so a pending link cannot grant the access back. Answers 200 with the outcome in `code`: `removed`, `not_a_member`, `has_org_access`, `forbidden`, `target_not_found`. Access through a group or the organization stays.",
    params(
        ("id" = Uuid, Path, description = "The website"),
        ("user_id" = Uuid, Path, description = "The member"),
    ),
    responses(
        (status = 200, description = "Processed (read `code`)", body = MemberChangeResponseDoc),
        (status = 400, description = "`invalid_id` (`field`: `id` or `user_id`)", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable; nothing changed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn remove_website_member(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(path): ApiPath<(String, String)>,
) -> Result<Json<MemberChangeView>, ApiError> {
    let (id, user) = member_path(path)?;
    remove(&api, &principal, TargetId::Website(WebsiteId(id)), user).await
}

/// Removes a group member.
#[utoipa::path(
    delete,
    path = "/groups/{id}/members/{user_id}",
    tag = "access",
    operation_id = "remove_group_member",
    description = "Removes the user's membership of the group and revokes the user's live invitations to it. Answers 200 with the outcome in `code`: `removed`, `not_a_member`, `has_org_access`, `forbidden`, `target_not_found`.",
    params(
        ("id" = Uuid, Path, description = "The group"),
        ("user_id" = Uuid, Path, description = "The member"),
    ),
    responses(
        (status = 200, description = "Processed (read `code`)", body = MemberChangeResponseDoc),
        (status = 400, description = "`invalid_id` (`field`: `id` or `user_id`)", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 429, description = "The host rate-limits this key", body = ErrorBody),
        (status = 503, description = "Storage unavailable; nothing changed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn remove_group_member(
    State(api): State<InvitesApi>,
    Caller(principal): Caller,
    ApiPath(path): ApiPath<(String, String)>,
) -> Result<Json<MemberChangeView>, ApiError> {
    let (id, user) = member_path(path)?;
    remove(&api, &principal, TargetId::Group(GroupId(id)), user).await
}
