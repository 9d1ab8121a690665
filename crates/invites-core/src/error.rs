//! Errors of the public boundary: [`InviteError`] for callers, [`StoreError`] for storage
//! adapters, [`MailError`] for mailers.

use serde::Serialize;
use std::fmt;

/// A boxed error source, kept (never flattened to a string) so callers can inspect it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The stable machine code of a whole-request error. Serialized in `snake_case`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Both `website_ids` and `group_ids` are present.
    MutuallyExclusiveTargets,
    /// Neither `website_ids` nor `group_ids` is present.
    MissingTargets,
    /// The target list is empty or longer than 50.
    InvalidTargetCount,
    /// A target id appears twice.
    DuplicateTarget,
    /// The email is missing or invalid.
    InvalidEmail,
    /// A first or last name is invalid.
    InvalidName,
    /// The role is not `admin` or `viewer`.
    InvalidRole,
    /// The invite method is missing or not `direct` or `email`.
    InvalidInviteMethod,
    /// A target id is not a UUID.
    InvalidTargetId,
    /// The body holds a field the contract does not know.
    UnknownField,
    /// The body is not a JSON object.
    MalformedJson,
    /// The body is larger than [`MAX_REQUEST_BODY_BYTES`](crate::MAX_REQUEST_BODY_BYTES).
    BodyTooLarge,
    /// `group_ids` with an API key that is not global.
    GlobalKeyRequired,
    /// The idempotency key was used with a different request.
    IdempotencyConflict,
    /// The idempotency key's first request is still running.
    IdempotencyInProgress,
    /// The idempotency key is empty or too long.
    InvalidIdempotencyKey,
    /// An accept token is unknown, used up or wrong.
    InvalidToken,
    /// The signed-in user's email is not the invited one.
    EmailMismatch,
    /// The invitation was accepted and cannot be revoked.
    AlreadyAccepted,
    /// No such invitation or batch in the caller's organization.
    NotFound,
    /// The API key does not reach the invitation's target.
    Forbidden,
    /// A batch was resent less than a minute ago.
    ResendTooSoon,
    /// A list query is invalid (page size, cursor).
    InvalidQuery,
    /// A resend found no pending or expired invitation in the batch.
    NothingToResend,
    /// Storage failed as a whole; nothing was reported as done.
    StorageUnavailable,
}

impl ErrorCode {
    /// The stable code string, e.g. `"duplicate_target"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::MutuallyExclusiveTargets => "mutually_exclusive_targets",
            ErrorCode::MissingTargets => "missing_targets",
            ErrorCode::InvalidTargetCount => "invalid_target_count",
            ErrorCode::DuplicateTarget => "duplicate_target",
            ErrorCode::InvalidEmail => "invalid_email",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::InvalidRole => "invalid_role",
            ErrorCode::InvalidInviteMethod => "invalid_invite_method",
            ErrorCode::InvalidTargetId => "invalid_target_id",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::GlobalKeyRequired => "global_key_required",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::IdempotencyInProgress => "idempotency_in_progress",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::EmailMismatch => "email_mismatch",
            ErrorCode::AlreadyAccepted => "already_accepted",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ResendTooSoon => "resend_too_soon",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::NothingToResend => "nothing_to_resend",
            ErrorCode::StorageUnavailable => "storage_unavailable",
        }
    }

    /// The HTTP status a host should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            ErrorCode::GlobalKeyRequired | ErrorCode::Forbidden | ErrorCode::EmailMismatch => 403,
            ErrorCode::IdempotencyConflict
            | ErrorCode::IdempotencyInProgress
            | ErrorCode::AlreadyAccepted
            | ErrorCode::NothingToResend => 409,
            ErrorCode::NotFound | ErrorCode::InvalidToken => 404,
            ErrorCode::ResendTooSoon => 429,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::StorageUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error `InviteService` returns. Match on the variant or on [`InviteError::code`],
/// never on the message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// The request is invalid; nothing was written and no email was queued.
    #[error("{field} {reason}")]
    Validation {
        /// The stable code.
        code: ErrorCode,
        /// The offending field (`website_ids[3]` for one element), or `body`.
        field: String,
        /// Why, in words.
        reason: String,
    },
    /// The caller may not do this; nothing was written.
    #[error("{reason}")]
    Forbidden {
        /// [`ErrorCode::GlobalKeyRequired`] or [`ErrorCode::Forbidden`].
        code: ErrorCode,
        /// Why, in words.
        reason: String,
    },
    /// The state does not allow this (idempotency key reuse, accepted invitation, ...).
    #[error("{reason}")]
    Conflict {
        /// The stable code.
        code: ErrorCode,
        /// Why, in words.
        reason: String,
    },
    /// No such invitation or batch in the caller's organization.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
    },
    /// The accept token is unknown, used up, expired or wrong. Deliberately uniform.
    #[error("the invitation link is invalid or has expired")]
    InvalidToken,
    /// The signed-in user's email differs from the invited address.
    #[error("the invitation was sent to a different email address")]
    EmailMismatch,
    /// A resend came sooner than the rate limit allows.
    #[error("the batch was resent recently; try again in {retry_after_secs} seconds")]
    ResendTooSoon {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Storage failed for the request as a whole. Nothing was reported as done.
    #[error("storage is unavailable")]
    Unavailable {
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

impl InviteError {
    /// The stable machine code.
    pub fn code(&self) -> ErrorCode {
        match self {
            InviteError::Validation { code, .. }
            | InviteError::Forbidden { code, .. }
            | InviteError::Conflict { code, .. } => *code,
            InviteError::NotFound { .. } => ErrorCode::NotFound,
            InviteError::InvalidToken => ErrorCode::InvalidToken,
            InviteError::EmailMismatch => ErrorCode::EmailMismatch,
            InviteError::ResendTooSoon { .. } => ErrorCode::ResendTooSoon,
            InviteError::Unavailable { .. } => ErrorCode::StorageUnavailable,
        }
    }

    /// The field a validation error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            InviteError::Validation { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The JSON error body a host returns:
    /// `{"success": false, "error": {"code": "...", "field": "...", "message": "..."}}`
    /// (`field` only for validation errors, `retry_after_secs` only for `resend_too_soon`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut err = serde_json::Map::new();
        err.insert("code".into(), self.code().as_str().into());
        if let Some(field) = self.field() {
            err.insert("field".into(), field.into());
        }
        err.insert("message".into(), self.to_string().into());
        if let InviteError::ResendTooSoon { retry_after_secs } = self {
            err.insert("retry_after_secs".into(), (*retry_after_secs).into());
        }
        serde_json::json!({ "success": false, "error": err })
    }

    pub(crate) fn validation(
        code: ErrorCode,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        InviteError::Validation {
            code,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for InviteError {
    fn from(source: StoreError) -> Self {
        InviteError::Unavailable { source }
    }
}

/// An error reported by a storage adapter. Adapters keep their own error types private and
/// map them here, keeping the original as `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Temporarily unavailable (busy, locked, connection lost); retrying may help.
    #[error("storage temporarily unavailable: {source}")]
    Unavailable {
        /// The adapter's error.
        #[source]
        source: BoxError,
    },
    /// Failed in a way a retry will not fix.
    #[error("storage failed: {source}")]
    Backend {
        /// The adapter's error.
        #[source]
        source: BoxError,
    },
    /// The stored data cannot be used by this version (newer schema, corrupt row).
    #[error("storage is incompatible: {reason}")]
    Incompatible {
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// A [`StoreError::Backend`] from any error.
    pub fn backend(e: impl Into<BoxError>) -> Self {
        StoreError::Backend { source: e.into() }
    }

    /// A [`StoreError::Unavailable`] from any error.
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        StoreError::Unavailable { source: e.into() }
    }
}

/// An error reported by a [`Mailer`](crate::Mailer).
///
/// Three kinds: [`transient`](MailError::transient) (the outbox retries, no earlier than an
/// optional [`retry_after`](MailError::retry_after) hint), [`permanent`](MailError::permanent)
/// for this message (the outbox marks it failed), and
/// [`misconfigured`](MailError::misconfigured): the fault is the *sender's*, not the
/// message's (bad credentials, suspended account, unknown sender, a server refusing the
/// sender at the greeting or `MAIL FROM`: a blocklist, a daily quota), so every message would
/// fail the same way. The outbox then **pauses delivery** instead of failing the message: the
/// message stays queued with its attempts unchanged, the rest of the pass is put back, a
/// warning is logged, and delivery resumes by itself after a backoff
/// ([`InviteService::delivery_pause`](crate::InviteService::delivery_pause) tells whether it
/// is paused). A host alerts on [`is_misconfigured`](MailError::is_misconfigured).
#[derive(Debug, thiserror::Error)]
#[error("{}delivery failed: {source}", self.kind.prefix())]
pub struct MailError {
    kind: MailErrorKind,
    retry_after: Option<std::time::Duration>,
    #[source]
    source: BoxError,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MailErrorKind {
    Transient,
    Permanent,
    Misconfigured,
}

impl MailErrorKind {
    fn prefix(self) -> &'static str {
        match self {
            MailErrorKind::Transient => "",
            MailErrorKind::Permanent => "permanent ",
            MailErrorKind::Misconfigured => "permanent (mailer misconfigured) ",
        }
    }
}

impl MailError {
    fn new(kind: MailErrorKind, e: impl Into<BoxError>) -> Self {
        MailError {
            kind,
            retry_after: None,
            source: e.into(),
        }
    }

    /// A failure that may pass on retry (timeout, 4xx SMTP reply, rate limit).
    pub fn transient(e: impl Into<BoxError>) -> Self {
        Self::new(MailErrorKind::Transient, e)
    }

    /// A failure no retry will fix for this message (rejected recipient, 5xx SMTP reply).
    pub fn permanent(e: impl Into<BoxError>) -> Self {
        Self::new(MailErrorKind::Permanent, e)
    }

    /// A failure caused by the sender (the mailer's account or configuration: bad token or
    /// credentials, suspended account, unconfirmed sender; or a server-wide refusal of the
    /// sender), not by this message: the outbox pauses delivery and keeps the message queued
    /// (see [`MailError`]). Never use it for a problem of one recipient.
    pub fn misconfigured(e: impl Into<BoxError>) -> Self {
        Self::new(MailErrorKind::Misconfigured, e)
    }

    /// Adds the transport's hint of when to try again (an HTTP `Retry-After`, for example).
    /// The outbox's next attempt comes no earlier than this, and no later than its policy's
    /// longest backoff allows; a permanent error ignores it.
    #[must_use]
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Whether a retry can help.
    pub fn is_retryable(&self) -> bool {
        self.kind == MailErrorKind::Transient
    }

    /// Whether the failure is the sender's (account, configuration, a server-wide refusal)
    /// rather than this message's: the outbox pauses delivery on it.
    pub fn is_misconfigured(&self) -> bool {
        self.kind == MailErrorKind::Misconfigured
    }

    /// The transport's hint of how long to wait before the next attempt, for a transient
    /// error that carries one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after.filter(|_| self.is_retryable())
    }
}
