//! Idempotent bulk requests (docs/contract.md §7): the key is begun in the store, the response stored with it.

use super::*;
use crate::error::{ErrorCode, InviteError, StoreError};
use crate::observe::Operation;
use crate::principal::Principal;
use crate::request::BulkInviteRequest;
use crate::response::BulkInviteResponse;
use crate::store::{IdempotencyBegin, IdempotencyState};
use sha2::{Digest, Sha256};

impl InviteService {
    /// [`InviteService::bulk_invite`] with an idempotency key (the `Idempotency-Key` header).
    ///
    /// For the same principal (organization and key id) and key within the idempotency time
    /// to live, the same request returns the stored response and changes nothing; another
    /// request gets `idempotency_conflict`; while the first is still running, a repeat gets
    /// `idempotency_in_progress`. "The same request" means the same request as sent (before
    /// normalisation): `" Ann@x.com"` and `"ann@x.com"` under one key are a conflict, which is
    /// the safe reading of a client reusing a key. Requests that fail validation are not
    /// recorded. A request
    /// that crashed mid-way leaves its key in progress until `idempotency_stale_after`, after
    /// which a retry executes again (every per-target operation is safe to repeat).
    ///
    /// # Errors
    /// As `bulk_invite`, plus `invalid_idempotency_key` (empty, over 255 characters, or not
    /// printable ASCII), `idempotency_conflict`, `idempotency_in_progress`, and
    /// [`InviteError::Unavailable`] if the idempotency record cannot be read or written.
    #[tracing::instrument(name = "bulk_invite_idempotent", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, method, targets, invitee, replayed, succeeded, failed, batch_id, email, outcome, duration_seconds))]
    pub async fn bulk_invite_idempotent(
        &self,
        principal: &Principal,
        idempotency_key: &str,
        request: BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        let work = self.bulk_invite_idempotent_inner(principal, idempotency_key, request);
        self.observed(Operation::BulkInviteIdempotent, work).await
    }

    async fn bulk_invite_idempotent_inner(
        &self,
        principal: &Principal,
        idempotency_key: &str,
        request: BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        crate::limits::check_idempotency_key(idempotency_key)?;
        let valid = self.check(principal, &request)?;
        let body = serde_json::to_vec(&request).expect("a request always serializes");
        let fingerprint: [u8; 32] = Sha256::digest(&body).into();
        let now = self.now();
        let begin = IdempotencyBegin {
            organization: principal.organization,
            key_id: principal.key_id,
            key: idempotency_key.to_owned(),
            fingerprint,
            expired_before: now.minus(self.config.idempotency_ttl),
            stale_before: now.minus(self.config.idempotency_stale_after),
            now,
        };
        match self.store.idempotency_begin(&begin).await? {
            IdempotencyState::Started => {}
            IdempotencyState::InProgress { fingerprint: f }
            | IdempotencyState::Completed { fingerprint: f, .. }
                if f != fingerprint =>
            {
                return Err(InviteError::Conflict {
                    code: ErrorCode::IdempotencyConflict,
                    reason: "the idempotency key was already used with a different request".into(),
                });
            }
            IdempotencyState::InProgress { .. } => {
                return Err(InviteError::Conflict {
                    code: ErrorCode::IdempotencyInProgress,
                    reason: "a request with this idempotency key is still being processed".into(),
                });
            }
            IdempotencyState::Completed { response, .. } => {
                tracing::Span::current().record("replayed", true);
                return serde_json::from_str(&response).map_err(|e| InviteError::Unavailable {
                    source: StoreError::backend(e),
                });
            }
        }
        let response = self.execute(principal, &valid).await;
        let json = serde_json::to_string(&response).expect("a response always serializes");
        // If this write fails the key stays in progress until it is stale; the response is
        // still true, so return it.
        let finished = self
            .store
            .idempotency_finish(
                principal.organization,
                principal.key_id,
                idempotency_key,
                now,
                Some(&json),
                response.user_id,
            )
            .await;
        dropped_ok("idempotency_finish", finished);
        Ok(response)
    }
}
