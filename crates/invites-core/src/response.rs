//! The bulk invite response (docs/contract.md §4) and per-target outcome codes.

use crate::ids::{BatchId, GroupId, InvitationId, TargetId, TargetKind, UserId, WebsiteId};
use crate::request::InviteMethod;
use serde::{Deserialize, Serialize};

/// The stable code of one target's outcome.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeCode {
    /// Direct mode (or accept): the membership was created.
    Added,
    /// Email mode: the invitation was created.
    Invited,
    /// An explicit membership already exists; its role was not changed.
    AlreadyMember,
    /// The user is an organization member and reaches every target already.
    HasOrgAccess,
    /// Email mode: a live invitation already exists.
    AlreadyInvited,
    /// No such target in the caller's organization.
    TargetNotFound,
    /// The website-scoped key does not reach this website.
    Forbidden,
    /// The store failed for this target; nothing was changed for it.
    InternalError,
    /// Accept: the invitation was revoked.
    Revoked,
    /// Accept: the invitation expired.
    Expired,
}

impl OutcomeCode {
    /// Whether this outcome counts as a success.
    pub fn is_success(&self) -> bool {
        matches!(self, OutcomeCode::Added | OutcomeCode::Invited)
    }

    /// The stable code string.
    pub fn as_str(&self) -> &'static str {
        match self {
            OutcomeCode::Added => "added",
            OutcomeCode::Invited => "invited",
            OutcomeCode::AlreadyMember => "already_member",
            OutcomeCode::HasOrgAccess => "has_org_access",
            OutcomeCode::AlreadyInvited => "already_invited",
            OutcomeCode::TargetNotFound => "target_not_found",
            OutcomeCode::Forbidden => "forbidden",
            OutcomeCode::InternalError => "internal_error",
            OutcomeCode::Revoked => "revoked",
            OutcomeCode::Expired => "expired",
        }
    }

    /// The human text for a target of `kind` (the `message` of a success, the `error` of a
    /// failure).
    pub fn text(&self, kind: TargetKind) -> String {
        let noun = kind.noun();
        match self {
            OutcomeCode::Added => format!("User added to {noun}"),
            OutcomeCode::Invited => format!("Invitation created for {noun}"),
            OutcomeCode::AlreadyMember => format!("User is already a member of this {noun}"),
            OutcomeCode::HasOrgAccess => {
                "User already has access through the organization".to_owned()
            }
            OutcomeCode::AlreadyInvited => {
                format!("User already has a pending invitation for this {noun}")
            }
            OutcomeCode::TargetNotFound => format!("{} not found", kind.title()),
            OutcomeCode::Forbidden => format!("API key does not have access to this {noun}"),
            OutcomeCode::InternalError => {
                "Internal error; nothing was changed for this target".to_owned()
            }
            OutcomeCode::Revoked => "Invitation was revoked".to_owned(),
            OutcomeCode::Expired => "Invitation has expired".to_owned(),
        }
    }
}

/// One target's result. Names its target with `website_id` or `group_id`, matching the
/// request; successes carry `message`, failures `error`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetResult {
    /// The website, for website requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_id: Option<WebsiteId>,
    /// The group, for group requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    /// Whether the target succeeded (`added` or `invited`).
    pub success: bool,
    /// The stable outcome code.
    pub code: OutcomeCode,
    /// Success text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Failure text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Direct mode success: the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Email mode success: the invitation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_id: Option<InvitationId>,
}

impl TargetResult {
    /// A result for `target` with `code`; the text comes from the code.
    pub fn new(target: TargetId, code: OutcomeCode) -> Self {
        let text = code.text(target.kind());
        let success = code.is_success();
        let (website_id, group_id) = match target {
            TargetId::Website(w) => (Some(w), None),
            TargetId::Group(g) => (None, Some(g)),
        };
        TargetResult {
            website_id,
            group_id,
            success,
            code,
            message: success.then(|| text.clone()),
            error: (!success).then_some(text),
            user_id: None,
            invite_id: None,
        }
    }

    /// With the member's id (direct mode success).
    pub fn with_user(mut self, id: UserId) -> Self {
        self.user_id = Some(id);
        self
    }

    /// With the invitation id (email mode success).
    pub fn with_invite(mut self, id: InvitationId) -> Self {
        self.invite_id = Some(id);
        self
    }

    /// The target this result names.
    ///
    /// # Panics
    /// Never for results built by this crate; a hand-made result with neither id panics.
    pub fn target(&self) -> TargetId {
        match (self.website_id, self.group_id) {
            (Some(w), _) => TargetId::Website(w),
            (None, Some(g)) => TargetId::Group(g),
            (None, None) => panic!("a TargetResult names no target"),
        }
    }
}

/// Counts over the results.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Targets requested.
    pub requested: usize,
    /// Targets that succeeded.
    pub succeeded: usize,
    /// Targets that failed.
    pub failed: usize,
}

/// What happened to the consolidated email.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    /// Delivered to the mailer.
    Sent,
    /// Stored in the outbox; delivery will be retried.
    Queued,
    /// Nothing was invited, so no email.
    NotSent,
    /// The mailer refused the message permanently (for example an address that does not
    /// exist). The invitations stand; fix the address or resend.
    Failed,
}

/// The `email` member of an email-mode response.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EmailReport {
    /// Sent, queued or not sent.
    pub status: EmailStatus,
    /// The batch, when at least one invitation was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<BatchId>,
}

/// The response of a processed bulk invite. `success` is true whenever the request was
/// processed, even if every target failed; read `summary` and `results`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkInviteResponse {
    /// Always true for a processed request.
    pub success: bool,
    /// Echo of the request's method.
    pub invite_method: InviteMethod,
    /// Direct mode: the user added (existing or created). Email mode: the existing user, if any.
    pub user_id: Option<UserId>,
    /// Whether this request created the user.
    pub user_created: bool,
    /// One result per requested id, in request order.
    pub results: Vec<TargetResult>,
    /// Counts.
    pub summary: Summary,
    /// Email mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailReport>,
}

impl BulkInviteResponse {
    /// Builds the response and its summary from the results.
    pub fn new(
        method: InviteMethod,
        user_id: Option<UserId>,
        user_created: bool,
        results: Vec<TargetResult>,
        email: Option<EmailReport>,
    ) -> Self {
        let succeeded = results.iter().filter(|r| r.success).count();
        BulkInviteResponse {
            success: true,
            invite_method: method,
            user_id,
            user_created,
            summary: Summary {
                requested: results.len(),
                succeeded,
                failed: results.len() - succeeded,
            },
            results,
            email,
        }
    }
}
