//! The one JSON error body of the HTTP API, and the mapping of every error into it.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use invites_core::{ErrorCode, InviteError};
use serde_json::{Map, Value, json};

/// Every error the router answers with: a status and the body
/// `{"success": false, "error": {"code": "...", "field": "...", "message": "..."}}`.
///
/// `field` is present when one field is at fault (validation errors, a bad path id, a bad
/// query parameter); `retry_after_secs` is present with `resend_too_soon` and
/// `rate_limited`, which also set the `Retry-After` header. For errors of the core the body is
/// exactly [`InviteError::to_json`], and the status is [`ErrorCode::http_status`].
///
/// Messages never hold an accept token, an API key or an email address.
///
/// ```
/// use axum::response::IntoResponse;
/// use invites_axum::ApiError;
///
/// let response = ApiError::rate_limited(30).into_response();
/// assert_eq!(response.status(), 429);
/// assert_eq!(response.headers()["retry-after"], "30");
/// ```
#[derive(Debug)]
#[must_use]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    field: Option<String>,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            field: None,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 401 `unauthorized`: no credentials, or credentials the host does not know. The message
    /// says which, never what was sent.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 429 `rate_limited`, for a host that rate-limits its keys (in its
    /// [`PrincipalResolver`](crate::PrincipalResolver) or its own middleware).
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; try again in {retry_after_secs} seconds"),
        );
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// 503 `storage_unavailable`: the host could not resolve the caller because its own
    /// storage failed. Nothing was done.
    pub fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::StorageUnavailable.as_str(),
            "storage is unavailable",
        )
    }

    /// 404 `route_not_found`: no route of this API has this path.
    pub(crate) fn route_not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no route of this API has this path",
        )
    }

    /// 405 `method_not_allowed`; the router adds the `Allow` header.
    pub(crate) fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept this method; see the Allow header",
        )
    }

    /// 500 `internal_error`: a handler panicked. Nothing is said about why.
    pub(crate) fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }

    /// 400 with a core validation code naming `field`.
    pub(crate) fn validation(
        code: ErrorCode,
        field: impl Into<String>,
        reason: impl AsRef<str>,
    ) -> Self {
        let field = field.into();
        let message = format!("{field} {}", reason.as_ref());
        ApiError::new(StatusCode::BAD_REQUEST, code.as_str(), message).with_field(field)
    }

    /// 400 `invalid_id`: the path segment `field` is not a UUID.
    pub(crate) fn invalid_id(field: &str) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("{field} is not a UUID"),
        )
        .with_field(field)
    }

    /// 415 `unsupported_media_type`.
    pub(crate) fn unsupported_media_type() -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, sent with `Content-Type: application/json`",
        )
    }

    /// 413 `body_too_large` (the core's code for the same bound).
    pub(crate) fn payload_too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is larger than this API accepts",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code: a core [`ErrorCode`] string or one of the HTTP layer's
    /// (`unauthorized`, `rate_limited`, `body_too_large`, `unsupported_media_type`,
    /// `invalid_id`, `route_not_found`, `method_not_allowed`, `internal_error`).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The field at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The JSON body.
    pub fn to_json(&self) -> Value {
        let mut err = Map::new();
        err.insert("code".into(), self.code.into());
        if let Some(field) = &self.field {
            err.insert("field".into(), field.as_str().into());
        }
        err.insert("message".into(), self.message.as_str().into());
        if let Some(secs) = self.retry_after_secs {
            err.insert("retry_after_secs".into(), secs.into());
        }
        json!({ "success": false, "error": err })
    }
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        let code = e.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            code: code.as_str(),
            field: e.field().map(str::to_owned),
            message: e.to_string(),
            retry_after_secs: match e {
                InviteError::ResendTooSoon { retry_after_secs } => Some(retry_after_secs),
                _ => None,
            },
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::unsupported_media_type(),
            // Syntax errors, a body that is not an object, a body that cannot be read.
            _ => ApiError::validation(ErrorCode::MalformedJson, "body", json_reason(&rejection)),
        }
    }
}

/// Why a JSON body was refused, without echoing any of it (serde's messages quote values,
/// and a body may hold an accept token).
fn json_reason(rejection: &JsonRejection) -> &'static str {
    match rejection {
        JsonRejection::JsonSyntaxError(_) => "is not valid JSON",
        JsonRejection::JsonDataError(_) => "must be a JSON object",
        _ => "could not be read",
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::invalid_id("id")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        // serde_urlencoded names the parameter and the problem; it may quote the value, which
        // for this API is an id, a status, an email filter or a cursor, never a secret.
        let detail = match &rejection {
            QueryRejection::FailedToDeserializeQueryString(e) => e.body_text(),
            other => other.body_text(),
        };
        let detail = detail
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&detail)
            .to_owned();
        ApiError::validation(
            ErrorCode::InvalidQuery,
            "query",
            format!("is invalid: {detail}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.to_json())).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
