//! Opening a token: preview (read-only) and accept.

use super::*;
use crate::error::InviteError;
use crate::ids::UserId;
use crate::observe::Operation;
use crate::response::{OutcomeCode, TargetResult};
use crate::store::{AcceptBatch, AcceptFact, BatchRecord, NewUser};
use crate::tokens::AcceptToken;

impl InviteService {
    pub(super) async fn open_token(
        &self,
        token: &str,
    ) -> Result<(AcceptToken, BatchRecord), InviteError> {
        let token = AcceptToken::from_link(token).ok_or(InviteError::InvalidToken)?;
        let batch = self
            .store
            .find_batch_by_token(&token.hash())
            .await?
            .ok_or(InviteError::InvalidToken)?;
        let now = self.now();
        if !batch.invitations.iter().any(|i| i.is_live(now)) {
            return Err(InviteError::InvalidToken);
        }
        Ok((token, batch))
    }

    /// What an accept link offers: its live invitations. Read-only, so link scanners that
    /// follow the link change nothing.
    ///
    /// # Errors
    /// [`InviteError::InvalidToken`] for an unknown, rotated or used-up token, or one whose
    /// invitations all expired; [`InviteError::Unavailable`] on store failure, also (with a
    /// [`StoreError::Incompatible`](crate::StoreError::Incompatible) source) when the batch's
    /// row or one of its invitations cannot be decoded: that batch only, never another.
    #[tracing::instrument(
        name = "preview",
        skip_all,
        fields(batch_id, targets, outcome, duration_seconds)
    )]
    pub async fn preview(&self, token: &str) -> Result<InvitationPreview, InviteError> {
        self.observed(Operation::Preview, self.preview_inner(token))
            .await
    }

    async fn preview_inner(&self, token: &str) -> Result<InvitationPreview, InviteError> {
        let (_, batch) = self.open_token(token).await?;
        let now = self.now();
        Ok(InvitationPreview {
            batch_id: batch.id,
            email: batch.email.clone(),
            invitations: batch
                .invitations
                .iter()
                .filter(|i| i.is_live(now))
                .map(|i| PreviewItem {
                    invite_id: i.id,
                    target: i.target,
                    target_name: i.target_name.clone(),
                    role: i.role,
                    expires_at: i.expires_at,
                })
                .collect(),
        })
    }

    /// Accepts a token: finds or creates the user for the invited email (verified, since the
    /// token proves the mailbox) and turns every live invitation of the batch into a
    /// membership, each on its own. With `signed_in`, that user's email must be the invited
    /// one.
    ///
    /// Per-invitation codes: `added`, `already_member` (also for invitations a direct add
    /// superseded or an earlier accept took), `has_org_access`, `revoked`, `expired`,
    /// `target_not_found`, `internal_error`.
    ///
    /// # Errors
    /// [`InviteError::InvalidToken`] (unknown, used, rotated, all expired),
    /// [`InviteError::EmailMismatch`], [`InviteError::NotFound`] for an unknown signed-in
    /// user, [`InviteError::Unavailable`].
    #[tracing::instrument(name = "accept", skip_all, fields(batch_id, signed_in = signed_in.is_some(), succeeded, failed, outcome, duration_seconds))]
    pub async fn accept(
        &self,
        token: &str,
        signed_in: Option<UserId>,
    ) -> Result<AcceptResponse, InviteError> {
        self.observed(Operation::Accept, self.accept_inner(token, signed_in))
            .await
    }

    async fn accept_inner(
        &self,
        token: &str,
        signed_in: Option<UserId>,
    ) -> Result<AcceptResponse, InviteError> {
        let (token, batch) = self.open_token(token).await?;
        tracing::Span::current().record("batch_id", tracing::field::display(batch.id));
        if let Some(uid) = signed_in {
            let user = self
                .store
                .get_user(uid)
                .await?
                .ok_or(InviteError::NotFound { what: "user" })?;
            if user.email != batch.email {
                return Err(InviteError::EmailMismatch);
            }
        }
        let first = batch
            .invitations
            .iter()
            .find(|i| i.first_name.is_some() || i.last_name.is_some());
        let cmd = AcceptBatch {
            batch_id: batch.id,
            token_hash: token.hash(),
            new_user: NewUser {
                id: UserId(self.config.random.uuid()),
                first_name: first.and_then(|i| i.first_name.clone()),
                last_name: first.and_then(|i| i.last_name.clone()),
            },
            now: self.now(),
        };
        let out = self
            .store
            .accept_batch(&cmd)
            .await?
            .ok_or(InviteError::InvalidToken)?;
        let results = out
            .invitations
            .iter()
            .map(|(inv, slot)| {
                let code = match slot {
                    Ok(AcceptFact::Added) => OutcomeCode::Added,
                    Ok(
                        AcceptFact::AlreadyMember
                        | AcceptFact::Superseded
                        | AcceptFact::AlreadyAccepted,
                    ) => OutcomeCode::AlreadyMember,
                    Ok(AcceptFact::OrgMember) => OutcomeCode::HasOrgAccess,
                    Ok(AcceptFact::Revoked) => OutcomeCode::Revoked,
                    Ok(AcceptFact::Expired) => OutcomeCode::Expired,
                    Ok(AcceptFact::TargetNotFound) => OutcomeCode::TargetNotFound,
                    Err(e) => {
                        note_dropped("accept unit", e);
                        OutcomeCode::InternalError
                    }
                };
                let mut result = TargetResult::new(inv.target, code);
                if code == OutcomeCode::Added {
                    result = result.with_user(out.user.id);
                }
                AcceptResult {
                    invite_id: inv.id,
                    result,
                }
            })
            .collect();
        Ok(AcceptResponse {
            user_id: out.user.id,
            user_created: out.user.created,
            results,
        })
    }
}
