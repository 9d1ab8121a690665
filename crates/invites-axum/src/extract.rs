//! axum's extractors with their rejections turned into [`ApiError`]s (the pattern of axum's
//! `customize-extractor-error` example), so a client never sees a plain-text axum error.

use crate::ApiError;
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;

/// `axum::Json` whose rejections are JSON errors: a missing or wrong `Content-Type` is 415
/// `unsupported_media_type`, a body over the limit is 413 `body_too_large`, bad JSON or a
/// body that is not an object is 400 `malformed_json`.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub(crate) T);

/// `axum::extract::Path` whose rejection is 400 `invalid_id`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub(crate) T);

/// `axum::extract::Query` whose rejection is 400 `invalid_query` naming the problem.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub(crate) T);
