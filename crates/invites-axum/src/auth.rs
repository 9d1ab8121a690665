//! Who is calling: the host's [`PrincipalResolver`] and the [`Caller`] extractor.

use crate::{ApiError, InvitesApi};
use async_trait::async_trait;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use invites_core::{BoxError, Principal};
use std::fmt;

/// Why a request carries no usable identity. Each kind has its own status; none echoes the
/// credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials at all: 401.
    #[error("no API key was sent")]
    Missing,
    /// Credentials the host does not know (unknown, revoked or malformed key): 401.
    #[error("the API key is not valid")]
    Invalid,
    /// The host rate-limits this caller: 429 with `Retry-After`.
    #[error("too many requests; retry after {retry_after_secs} seconds")]
    RateLimited {
        /// Seconds the caller should wait.
        retry_after_secs: u64,
    },
    /// The host could not check the credentials (its key store failed): 503.
    #[error("the API key could not be checked")]
    Unavailable {
        /// The host's error, kept for its own logs; never sent to the client.
        #[source]
        source: BoxError,
    },
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Invalid => ApiError::unauthorized(e.to_string()),
            AuthError::RateLimited { retry_after_secs } => ApiError::rate_limited(retry_after_secs),
            AuthError::Unavailable { .. } => ApiError::unavailable(),
        }
    }
}

/// Maps a request to the [`Principal`] that makes it. The host implements this over its own
/// API keys (usually the `x-api-key` header, docs/contract.md §10) and passes it to
/// [`InvitesApi::with_resolver`].
///
/// A host that already authenticates in its own middleware can instead insert the
/// [`Principal`] into the request extensions; [`Caller`] takes that first and never calls the
/// resolver then.
///
/// ```
/// use async_trait::async_trait;
/// use axum::http::request::Parts;
/// use invites_axum::{AuthError, PrincipalResolver};
/// use invites_core::{ApiKeyId, OrganizationId, Principal};
/// use uuid::Uuid;
///
/// #[derive(Debug)]
/// struct OneKey;
///
/// #[async_trait]
/// impl PrincipalResolver for OneKey {
///     async fn resolve(&self, parts: &Parts) -> Result<Principal, AuthError> {
///         match parts.headers.get("x-api-key").map(|v| v.as_bytes()) {
///             None => Err(AuthError::Missing),
///             Some(b"secret") => Ok(Principal::global(
///                 OrganizationId(Uuid::from_u128(1)),
///                 ApiKeyId(Uuid::from_u128(2)),
///             )),
///             Some(_) => Err(AuthError::Invalid),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait PrincipalResolver: Send + Sync + fmt::Debug + 'static {
    /// The caller of this request.
    ///
    /// # Errors
    /// An [`AuthError`]; the request is answered with its status and nothing else happens.
    async fn resolve(&self, parts: &Parts) -> Result<Principal, AuthError>;
}

/// The authenticated caller of a request: the [`Principal`] a host middleware put in the
/// request extensions, else the one the [`PrincipalResolver`] returns, else a 401.
///
/// Usable in the host's own handlers whose state provides an [`InvitesApi`] (`FromRef`).
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    InvitesApi: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Caller(p.clone()));
        }
        let api = InvitesApi::from_ref(state);
        match api.resolver() {
            Some(resolver) => Ok(Caller(resolver.resolve(parts).await?)),
            None => Err(ApiError::unauthorized(
                "no API key was sent, or this server resolves none",
            )),
        }
    }
}
