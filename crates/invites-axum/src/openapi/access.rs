//! The mirror types of the access routes (`crate::access`): who has access, and the
//! outcome of a membership change.

use super::Role;
use utoipa::ToSchema;
use uuid::Uuid;

/// An organization role.
#[derive(ToSchema, serde::Serialize)]
#[schema(rename_all = "snake_case")]
pub(crate) enum OrgRole {
    Owner,
    Admin,
    Viewer,
}

/// One way a user reaches a website (or, in a group's member list, the group): `direct` (a
/// membership of the website), `group` (a membership of a group that contains it; `group`
/// names it) or `organization` (owner and admin reach every website as `admin`, viewer as
/// `viewer`).
#[derive(ToSchema, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum AccessPath {
    Direct { role: Role },
    Group { group: Uuid, role: Role },
    Organization { org_role: OrgRole },
}

/// One member of a website or group.
#[derive(ToSchema)]
pub(crate) struct MemberView {
    user_id: Uuid,
    #[schema(format = "email")]
    email: String,
    /// The effective role: the strongest of `access`.
    role: Role,
    /// Every path by which the user reaches the target.
    access: Vec<AccessPath>,
}

/// A page of members, by user id.
#[derive(ToSchema)]
pub(crate) struct MemberPage {
    items: Vec<MemberView>,
    /// Pass as `cursor` for the next page; null at the end.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// One website a user reaches.
#[derive(ToSchema)]
pub(crate) struct WebsiteAccessView {
    website_id: Uuid,
    /// The website's display name.
    name: String,
    /// The effective role: the strongest of `access`.
    role: Role,
    /// Every path by which the user reaches the website.
    access: Vec<AccessPath>,
}

/// A page of websites, by website id.
#[derive(ToSchema)]
pub(crate) struct WebsiteAccessPage {
    items: Vec<WebsiteAccessView>,
    /// Pass as `cursor` for the next page; null at the end.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// The stable code of a membership change.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum MemberOutcome {
    Updated,
    Removed,
    Unchanged,
    NotAMember,
    HasOrgAccess,
    Forbidden,
    TargetNotFound,
}

/// What a membership change did. Names the target with `website_id` or `group_id`, like the
/// bulk results; `success` is true for `updated`, `removed` and `unchanged`.
#[derive(ToSchema)]
pub(crate) struct MemberChangeResponse {
    success: bool,
    code: MemberOutcome,
    website_id: Option<Uuid>,
    group_id: Option<Uuid>,
    user_id: Uuid,
    /// The role now, if the user has an explicit membership of the target left (after
    /// `updated` and `unchanged`); null otherwise.
    #[schema(required = true)]
    role: Option<Role>,
    /// Live invitations of the user to the target revoked with a removal.
    #[schema(minimum = 0)]
    revoked_invitations: u64,
}

/// `{"role": "admin" | "viewer"}`; unknown fields are refused.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberRoleRequest {
    /// The new role.
    role: Role,
}
