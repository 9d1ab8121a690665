//! The OpenAPI 3.1 document, generated with utoipa from the handlers' `#[utoipa::path]`
//! attributes and the schemas below.
//!
//! The core does not depend on utoipa, so its wire types are described here by mirror types
//! (`#[derive(ToSchema)]`, never constructed: they only carry the shape) and, for the bulk
//! request whose rules JSON Schema needs `oneOf` for, by a hand-built schema. The
//! committed file `crates/invites-axum/openapi.json` is this document; the test
//! `openapi_file_is_current` fails when they differ. Regenerate it with
//! `INVITES_WRITE_OPENAPI=1 cargo test -p invites-axum --test openapi`.
//!
//! How exactly the schemas follow the server matters: schemathesis (`.ci/steps/http.sh`)
//! sends requests generated from them and fails on a valid request the server refuses with a
//! 400, on an invalid one it accepts, and on any response that does not match.

// The mirror types exist only for their `ToSchema` derive.
#![allow(dead_code)]

mod access;

pub(crate) use access::{MemberChangeResponse, MemberPage, MemberRoleRequest, WebsiteAccessPage};

use crate::handlers;
use invites_core::MAX_TARGETS;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{RefOr, Server};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use uuid::Uuid;

/// The OpenAPI 3.1 document of [`router`](crate::router), with `/api/v1` as its server (the
/// prefix of docs/contract.md §10; change `servers` if you nest the router elsewhere).
///
/// ```
/// let doc = invites_axum::openapi();
/// assert!(doc.paths.paths.contains_key("/invites/bulk"));
/// ```
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served at `/openapi.json` and committed as `openapi.json`: [`openapi`]
/// as pretty JSON, with the keys of its link objects spelled as OpenAPI spells them
/// (`operationId`; utoipa 5 writes `operation_id`).
///
/// ```
/// let doc: serde_json::Value = serde_json::from_str(&invites_axum::openapi_json()).unwrap();
/// assert_eq!(doc["openapi"], "3.1.0");
/// ```
pub fn openapi_json() -> String {
    let mut doc = serde_json::to_value(openapi()).expect("the OpenAPI document serializes");
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let links = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut())
            .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
            .flat_map(|responses| responses.values_mut())
            .filter_map(|r| r.get_mut("links").and_then(|l| l.as_object_mut()))
            .flat_map(|links| links.values_mut())
            .filter_map(|link| link.as_object_mut());
        for link in links {
            for (wrong, right) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(wrong) {
                    link.insert(right.into(), v);
                }
            }
        }
    }
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes") + "\n"
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "invites",
        description = "Invite one user to many websites or groups in one request, manage the invitations, and see and change who has access. Every operation but this document needs an API key in `x-api-key`. Errors have one body: `{\"success\": false, \"error\": {\"code\", \"field\", \"message\"}}`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        handlers::bulk_invite,
        handlers::preview,
        handlers::accept,
        handlers::revoke,
        handlers::resend,
        handlers::batch,
        handlers::list_invitations,
        crate::access::website_members,
        crate::access::group_members,
        crate::access::user_websites,
        crate::access::set_website_member,
        crate::access::set_group_member,
        crate::access::remove_website_member,
        crate::access::remove_group_member,
        handlers::document,
    ),
    components(schemas(
        BulkInviteRequest,
        BulkInviteResponse,
        TargetResult,
        Summary,
        EmailReport,
        TokenRequest,
        AcceptRequest,
        InvitationPreview,
        PreviewItem,
        TargetRef,
        AcceptResponse,
        AcceptResult,
        RevokeResponse,
        ResendResponse,
        BatchView,
        InvitationView,
        MessageView,
        InvitationPage,
        access::AccessPath,
        access::MemberView,
        MemberPage,
        access::WebsiteAccessView,
        WebsiteAccessPage,
        MemberChangeResponse,
        MemberRoleRequest,
        ErrorBody,
        ErrorDetail,
    )),
    modifiers(&Security),
    tags(
        (name = "invites", description = "The bulk invite and the accept flow"),
        (name = "invitations", description = "Invitations and batches of the caller's organization"),
        (name = "access", description = "Who has access to the caller's websites and groups, and changing or taking back memberships")
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The host's API key; it decides the organization and what the key reaches.",
            ))),
        );
        doc.servers = Some(vec![Server::new("/api/v1")]);
        add_links(doc);
        // An optional header or query parameter is absent or a value, never JSON null
        // (utoipa writes an `Option<T>` as `[T, "null"]`).
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            let params = ops
                .into_iter()
                .flatten()
                .filter_map(|op| op.parameters.as_mut())
                .flatten();
            for p in params.filter(|p| p.parameter_in != ParameterIn::Path) {
                let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut() else {
                    continue;
                };
                let SchemaType::Array(types) = &o.schema_type else {
                    continue;
                };
                let values: Vec<Type> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .cloned()
                    .collect();
                if let [only] = &values[..] {
                    o.schema_type = SchemaType::Type(only.clone());
                }
            }
        }
    }
}

/// The links of the document: from a response that names an invitation, a batch, a website,
/// a group or a user to the operations on it, so clients (and schemathesis' stateful phase,
/// `.ci/steps/http.sh`) can chain real calls: (source path, source method, link name, target
/// operation, the target's parameters with their runtime expressions, description). Resend
/// and the membership changes have no outgoing link on purpose: schemathesis starts its
/// chains at any `POST` with one, with a random (unknown) batch id, and a change followed by
/// another change of the same member would read as a use after free. The test
/// `every_link_feeds_its_operation_a_real_id` follows each one against the router.
type Link = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const FIRST_WEBSITE: &str = "$response.body#/results/0/website_id";
const FIRST_GROUP: &str = "$response.body#/results/0/group_id";
const BULK_USER: &str = "$response.body#/user_id";
const FIRST_MEMBER: &str = "$response.body#/items/0/user_id";

const LINKS: [Link; 21] = [
    (
        "/invites/bulk",
        "post",
        "GetBatch",
        "get_batch",
        &[("id", "$response.body#/email/batch_id")],
        "The batch of an email-mode request",
    ),
    (
        "/invites/bulk",
        "post",
        "ResendBatch",
        "resend_batch",
        &[("id", "$response.body#/email/batch_id")],
        "Resend the batch's email",
    ),
    (
        "/invites/bulk",
        "post",
        "RevokeFirstInvitation",
        "revoke_invitation",
        &[("id", "$response.body#/results/0/invite_id")],
        "Revoke the first invitation created",
    ),
    (
        "/invites/bulk",
        "post",
        "FirstWebsiteMembers",
        "list_website_members",
        &[("id", FIRST_WEBSITE)],
        "The members of the first website (websites request)",
    ),
    (
        "/invites/bulk",
        "post",
        "FirstGroupMembers",
        "list_group_members",
        &[("id", FIRST_GROUP)],
        "The members of the first group (groups request)",
    ),
    (
        "/invites/bulk",
        "post",
        "UserWebsites",
        "list_user_websites",
        &[("id", BULK_USER)],
        "The websites the user reaches (direct mode, or an existing user)",
    ),
    (
        "/invites/bulk",
        "post",
        "SetFirstWebsiteRole",
        "set_website_member_role",
        &[("id", FIRST_WEBSITE), ("user_id", BULK_USER)],
        "Change the user's role on the first website",
    ),
    (
        "/invites/bulk",
        "post",
        "RemoveFromFirstWebsite",
        "remove_website_member",
        &[("id", FIRST_WEBSITE), ("user_id", BULK_USER)],
        "Take the user off the first website",
    ),
    (
        "/invites/bulk",
        "post",
        "SetFirstGroupRole",
        "set_group_member_role",
        &[("id", FIRST_GROUP), ("user_id", BULK_USER)],
        "Change the user's role in the first group",
    ),
    (
        "/invites/bulk",
        "post",
        "RemoveFromFirstGroup",
        "remove_group_member",
        &[("id", FIRST_GROUP), ("user_id", BULK_USER)],
        "Take the user out of the first group",
    ),
    (
        "/invitations",
        "get",
        "GetFirstBatch",
        "get_batch",
        &[("id", "$response.body#/items/0/batch_id")],
        "The batch of the first invitation listed",
    ),
    (
        "/invitations",
        "get",
        "ResendFirstBatch",
        "resend_batch",
        &[("id", "$response.body#/items/0/batch_id")],
        "Resend the batch of the first invitation listed",
    ),
    (
        "/invitations",
        "get",
        "RevokeFirstListed",
        "revoke_invitation",
        &[("id", "$response.body#/items/0/id")],
        "Revoke the first invitation listed",
    ),
    (
        "/invitation-batches/{id}",
        "get",
        "ResendThisBatch",
        "resend_batch",
        &[("id", "$response.body#/batch_id")],
        "Resend this batch's email",
    ),
    (
        "/invitation-batches/{id}",
        "get",
        "RevokeFirstOfBatch",
        "revoke_invitation",
        &[("id", "$response.body#/invitations/0/id")],
        "Revoke the batch's first invitation",
    ),
    (
        "/websites/{id}/members",
        "get",
        "FirstMemberWebsites",
        "list_user_websites",
        &[("id", FIRST_MEMBER)],
        "The websites the first member reaches",
    ),
    (
        "/websites/{id}/members",
        "get",
        "SetFirstMemberRole",
        "set_website_member_role",
        &[("id", "$request.path.id"), ("user_id", FIRST_MEMBER)],
        "Change the first member's role on this website",
    ),
    (
        "/websites/{id}/members",
        "get",
        "RemoveFirstMember",
        "remove_website_member",
        &[("id", "$request.path.id"), ("user_id", FIRST_MEMBER)],
        "Take the first member off this website",
    ),
    (
        "/groups/{id}/members",
        "get",
        "SetFirstGroupMemberRole",
        "set_group_member_role",
        &[("id", "$request.path.id"), ("user_id", FIRST_MEMBER)],
        "Change the first member's role in this group",
    ),
    (
        "/groups/{id}/members",
        "get",
        "RemoveFirstGroupMember",
        "remove_group_member",
        &[("id", "$request.path.id"), ("user_id", FIRST_MEMBER)],
        "Take the first member out of this group",
    ),
    (
        "/users/{id}/websites",
        "get",
        "FirstWebsiteMembers",
        "list_website_members",
        &[("id", "$response.body#/items/0/website_id")],
        "The members of the first website listed",
    ),
];

fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    for (path, method, name, operation, params, description) in LINKS {
        let item = doc.paths.paths.get_mut(path);
        let op = item.and_then(|item| match method {
            "get" => item.get.as_mut(),
            "post" => item.post.as_mut(),
            _ => None,
        });
        let Some(RefOr::T(ok)) = op.and_then(|op| op.responses.responses.get_mut("200")) else {
            panic!("a link starts at {method} {path}, which has no 200 response");
        };
        let mut link = LinkBuilder::new()
            .operation_id(operation)
            .description(description);
        for (param, value) in params {
            link = link.parameter(*param, *value);
        }
        ok.links.insert(name.into(), RefOr::T(link.build()));
    }
}

fn uuid_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        )))
}

fn nullable(types: Type) -> SchemaType {
    SchemaType::from_iter([types, Type::Null])
}

/// The pattern of a first or last name, as the core refuses them (it trims, and counts at
/// most 100 characters after trimming): no control character (Cc), no line or paragraph
/// separator (U+2028, U+2029), no format character (Cf: soft hyphen, bidi controls,
/// zero-width spaces, BOM, ...) except the joiners U+200C and U+200D. The Cf characters
/// outside the Basic Multilingual Plane (musical and tag characters, refused by the core
/// too) are not expressible in a JSON Schema pattern without the `u` flag and are left out.
pub(crate) const NAME_PATTERN: &str = concat!(
    "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f",
    "\\u0890\\u0891\\u08e2\\u180e\\u200b\\u200e\\u200f\\u2028-\\u202e\\u2060-\\u2064",
    "\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*$"
);

/// The request body of `POST /invites/bulk` (docs/contract.md §2). Two shapes, one per target list, so
/// that "exactly one of `website_ids` and `group_ids`" is part of the schema; `null` means
/// absent for every optional field.
pub(crate) struct BulkInviteRequest;

impl BulkInviteRequest {
    fn variant(list: &str, other: &str, what: &str) -> Schema {
        let ids = ArrayBuilder::new()
            .items(uuid_schema())
            .min_items(Some(1))
            .max_items(Some(MAX_TARGETS))
            .unique_items(true)
            .description(Some(format!(
                "1 to {MAX_TARGETS} distinct {what} ids, processed in this order."
            )));
        let name = |which: &str| {
            ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .max_length(Some(100))
                .pattern(Some(NAME_PATTERN))
                .description(Some(format!(
                    "Optional {which} name: trimmed, at most 100 characters, no control, separator or format characters. Empty means absent."
                )))
        };
        ObjectBuilder::new()
            .title(Some(format!("{what} targets")))
            .property(
                "invite_method",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["direct", "email"]))
                    .description(Some(
                        "`direct` adds the user at once; `email` creates invitations and sends one consolidated email.",
                    )),
            )
            .required("invite_method")
            .property(
                "email",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::Custom("email".into())))
                    .max_length(Some(254))
                    .description(Some("The invitee's address; trimmed and lowercased.")),
            )
            .required("email")
            .property(
                "role",
                ObjectBuilder::new()
                    .schema_type(nullable(Type::String))
                    .enum_values(Some([Some("admin"), Some("viewer"), None]))
                    .description(Some("The role on every target; default `viewer`.")),
            )
            .property(list, ids)
            .required(list)
            .property(
                other,
                ObjectBuilder::new()
                    .schema_type(Type::Null)
                    .description(Some(format!("Must be absent or null with `{list}`."))),
            )
            .property("first_name", name("first"))
            .property("last_name", name("last"))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl PartialSchema for BulkInviteRequest {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Self::variant("website_ids", "group_ids", "website"))
            .item(Self::variant("group_ids", "website_ids", "group"))
            .description(Some(
                "Invite one user to many websites OR many groups (groups need a global key). Unknown fields are refused.",
            ))
            .into()
    }
}

impl ToSchema for BulkInviteRequest {}

/// `direct` or `email`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum InviteMethod {
    Direct,
    Email,
}

/// A role on a website or group.
#[derive(ToSchema, serde::Serialize, serde::Deserialize)]
#[schema(rename_all = "snake_case")]
enum Role {
    Admin,
    Viewer,
}

/// The stable code of one target's outcome.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum OutcomeCode {
    Added,
    Invited,
    AlreadyMember,
    HasOrgAccess,
    AlreadyInvited,
    TargetNotFound,
    Forbidden,
    InternalError,
    Revoked,
    Expired,
}

/// One target's result: names the target with `website_id` or `group_id`; successes carry
/// `message`, failures `error`.
#[derive(ToSchema)]
pub(crate) struct TargetResult {
    website_id: Option<Uuid>,
    group_id: Option<Uuid>,
    success: bool,
    code: OutcomeCode,
    message: Option<String>,
    error: Option<String>,
    /// Direct mode success (and accept): the member.
    user_id: Option<Uuid>,
    /// Email mode success: the invitation.
    invite_id: Option<Uuid>,
}

/// Counts over the results.
#[derive(ToSchema)]
pub(crate) struct Summary {
    #[schema(minimum = 0)]
    requested: u64,
    #[schema(minimum = 0)]
    succeeded: u64,
    #[schema(minimum = 0)]
    failed: u64,
}

/// What happened to the consolidated email.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum EmailStatus {
    Sent,
    Queued,
    NotSent,
    Failed,
}

/// The `email` member of an email-mode response.
#[derive(ToSchema)]
pub(crate) struct EmailReport {
    status: EmailStatus,
    /// Present when at least one invitation was created.
    batch_id: Option<Uuid>,
}

/// The response of a processed bulk invite: `success` is true even when every
/// target failed; read `summary` and `results`.
#[derive(ToSchema)]
pub(crate) struct BulkInviteResponse {
    success: bool,
    invite_method: InviteMethod,
    /// Direct mode: the user added. Email mode: the existing user, if related to the org.
    #[schema(required = true)]
    user_id: Option<Uuid>,
    user_created: bool,
    /// One result per requested id, in request order.
    results: Vec<TargetResult>,
    summary: Summary,
    /// Email mode only.
    email: Option<EmailReport>,
}

/// `{"token": "..."}`: an accept token travels in the body, never in a URL.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// The token of the accept link.
    token: String,
}

/// An accept: the token and, for a signed-in user, that user's id (whose email must be the
/// invited one).
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptRequest {
    /// The token of the accept link.
    token: String,
    /// The signed-in user, if any.
    user_id: Option<Uuid>,
}

/// Which kind of target.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum TargetKind {
    Website,
    Group,
}

/// A target: `{"kind": "website", "id": "..."}`.
#[derive(ToSchema)]
pub(crate) struct TargetRef {
    kind: TargetKind,
    id: Uuid,
}

/// One invitation as shown on an accept page.
#[derive(ToSchema)]
pub(crate) struct PreviewItem {
    invite_id: Uuid,
    target: TargetRef,
    target_name: String,
    role: Role,
    #[schema(value_type = String, format = DateTime)]
    expires_at: String,
}

/// What a token opens (read-only).
#[derive(ToSchema)]
pub(crate) struct InvitationPreview {
    batch_id: Uuid,
    #[schema(format = "email")]
    email: String,
    /// The live invitations.
    invitations: Vec<PreviewItem>,
}

/// One invitation's result of accepting.
#[derive(ToSchema)]
pub(crate) struct AcceptResult {
    invite_id: Uuid,
    website_id: Option<Uuid>,
    group_id: Option<Uuid>,
    success: bool,
    code: OutcomeCode,
    message: Option<String>,
    error: Option<String>,
    user_id: Option<Uuid>,
}

/// The result of accepting a token.
#[derive(ToSchema)]
pub(crate) struct AcceptResponse {
    /// The user, found or created, now verified.
    user_id: Uuid,
    user_created: bool,
    results: Vec<AcceptResult>,
}

/// The result of revoking.
#[derive(ToSchema)]
pub(crate) struct RevokeResponse {
    invite_id: Uuid,
    /// False when it was already revoked, superseded or replaced.
    changed: bool,
}

/// The result of a resend.
#[derive(ToSchema)]
pub(crate) struct ResendResponse {
    batch_id: Uuid,
    /// Invitations whose expiry was reset.
    #[schema(minimum = 0)]
    renewed: u64,
    email: EmailReport,
}

/// Status of an invitation (`expired` derived from the clock).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
    Superseded,
}

/// Status of an outbox message.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum MessageStatus {
    Queued,
    Sent,
    Failed,
    Cancelled,
}

/// An invitation as listed (never with a token).
#[derive(ToSchema)]
pub(crate) struct InvitationView {
    id: Uuid,
    batch_id: Uuid,
    target: TargetRef,
    target_name: String,
    #[schema(format = "email")]
    email: String,
    role: Role,
    status: InvitationStatus,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: String,
    /// Status of the batch's latest email; null if it has none.
    #[schema(required = true)]
    delivery: Option<MessageStatus>,
}

/// One outbox message of a batch (never with its link).
#[derive(ToSchema)]
pub(crate) struct MessageView {
    id: Uuid,
    status: MessageStatus,
    #[schema(minimum = 0)]
    attempts: u32,
    /// The last delivery error, as text.
    #[schema(required = true)]
    last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
}

/// A batch with its invitations and messages.
#[derive(ToSchema)]
pub(crate) struct BatchView {
    batch_id: Uuid,
    #[schema(format = "email")]
    email: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    #[schema(value_type = String, format = DateTime)]
    last_sent_at: String,
    invitations: Vec<InvitationView>,
    /// Oldest first; a resend adds one.
    messages: Vec<MessageView>,
}

/// A page of invitations.
#[derive(ToSchema)]
pub(crate) struct InvitationPage {
    items: Vec<InvitationView>,
    /// Pass as `cursor` for the next page; null at the end.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// The error of every failed request.
#[derive(ToSchema)]
pub(crate) struct ErrorBody {
    /// Always false.
    success: bool,
    error: ErrorDetail,
}

/// What went wrong.
#[derive(ToSchema)]
pub(crate) struct ErrorDetail {
    /// The stable code: one of the core's (`invalid_email`, `duplicate_target`,
    /// `global_key_required`, `not_found`, `invalid_token`, `idempotency_conflict`,
    /// `resend_too_soon`, ...) or of the HTTP layer (`unauthorized`, `rate_limited`,
    /// `body_too_large`, `unsupported_media_type`, `invalid_id`, `route_not_found`,
    /// `method_not_allowed`, `internal_error`).
    code: String,
    /// The field at fault (`website_ids[3]`, `email`, `id`, `query`), when one is.
    field: Option<String>,
    /// Why, in words.
    message: String,
    /// With `resend_too_soon` and `rate_limited`: seconds to wait (also in `Retry-After`).
    #[schema(minimum = 0)]
    retry_after_secs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::NAME_PATTERN;
    use invites_core::PersonName;

    /// The published pattern restates the core's name rule for clients; this keeps the two in
    /// step for every character of the Basic Multilingual Plane (the pattern's `\\uXXXX`
    /// escapes cannot name characters above it, which the core refuses on its own).
    #[test]
    fn the_name_pattern_refuses_exactly_what_the_core_refuses() {
        let pattern = regex::Regex::new(NAME_PATTERN).expect("the pattern compiles");
        let mut differ = Vec::new();
        for c in (0..=0xFFFFu32).filter_map(char::from_u32) {
            let name = format!("A{c}B");
            let core = matches!(PersonName::parse(&name), Ok(Some(_)));
            if core != pattern.is_match(&name) {
                differ.push(format!("U+{:04X} core {core}", c as u32));
            }
        }
        assert!(
            differ.is_empty(),
            "the pattern and the core differ: {differ:?}"
        );
    }
}
