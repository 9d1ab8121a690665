//! Managing invitations: revoke, resend, batch view, listing with keyset cursors.

use super::views::view;
use super::*;
use crate::error::{ErrorCode, InviteError, StoreError};
use crate::ids::{BatchId, InvitationId, MessageId};
use crate::observe::Operation;
use crate::principal::KeyScope;
use crate::principal::Principal;
use crate::response::EmailReport;
use crate::store::{
    BatchRecord, InvitationFilter, InvitationQuery, InvitationRecord, MessageStatus, OutboxMessage,
    RevokeFact, RevokeInvitation, RotateBatch, RotateFact,
};
use crate::time::Timestamp;
use crate::tokens::AcceptToken;

pub(super) const MAX_PAGE: usize = 500;

impl InviteService {
    /// Revokes one invitation. Revoking twice is harmless (`changed: false`).
    ///
    /// # Errors
    /// [`InviteError::NotFound`] (not in the caller's organization), [`InviteError::Forbidden`]
    /// (a scoped key that does not reach the target), `already_accepted`,
    /// [`InviteError::Unavailable`].
    #[tracing::instrument(name = "revoke", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, invite_id = %id, changed, outcome, duration_seconds))]
    pub async fn revoke(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<RevokeResponse, InviteError> {
        self.observed(Operation::Revoke, self.revoke_inner(principal, id))
            .await
    }

    async fn revoke_inner(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<RevokeResponse, InviteError> {
        let inv = self
            .store
            .get_invitation(principal.organization, id)
            .await?
            .ok_or(InviteError::NotFound { what: "invitation" })?;
        if !principal.reaches(inv.target) {
            return Err(forbidden(inv.target));
        }
        match self
            .store
            .revoke_invitation(&RevokeInvitation {
                organization: principal.organization,
                id,
                now: self.now(),
                actor: Some(principal.key_id),
            })
            .await?
        {
            RevokeFact::Revoked => Ok(RevokeResponse {
                invite_id: id,
                changed: true,
            }),
            RevokeFact::AlreadyRevoked | RevokeFact::AlreadyDead => Ok(RevokeResponse {
                invite_id: id,
                changed: false,
            }),
            RevokeFact::AlreadyAccepted => Err(InviteError::Conflict {
                code: ErrorCode::AlreadyAccepted,
                reason: "the invitation was accepted and cannot be revoked".into(),
            }),
            RevokeFact::NotFound => Err(InviteError::NotFound { what: "invitation" }),
        }
    }

    /// The batch, if it is in the caller's organization and the key reaches every target of it.
    pub(super) async fn reachable_batch(
        &self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<BatchRecord, InviteError> {
        let batch = self
            .store
            .get_batch(principal.organization, batch_id)
            .await?
            .ok_or(InviteError::NotFound { what: "batch" })?;
        match batch
            .invitations
            .iter()
            .find(|i| !principal.reaches(i.target))
        {
            Some(i) => Err(forbidden(i.target)),
            None => Ok(batch),
        }
    }

    /// Resends a batch: a new token (the old link dies at once), a new expiry for its pending
    /// and expired invitations, and a new consolidated email listing exactly those. At most
    /// once per `resend_interval` (one minute) per batch.
    ///
    /// # Errors
    /// [`InviteError::NotFound`], [`InviteError::Forbidden`] (a scoped key must reach every
    /// target of the batch), [`InviteError::ResendTooSoon`], `nothing_to_resend` (no pending
    /// or expired invitation left), [`InviteError::Unavailable`].
    #[tracing::instrument(name = "resend", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, batch_id = %batch_id, renewed, email, outcome, duration_seconds))]
    pub async fn resend(
        &self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<ResendResponse, InviteError> {
        self.observed(Operation::Resend, self.resend_inner(principal, batch_id))
            .await
    }

    async fn resend_inner(
        &self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<ResendResponse, InviteError> {
        let batch = self.reachable_batch(principal, batch_id).await?;
        let now = self.now();
        let token = AcceptToken::generate(self.config.random.as_ref());
        let cmd = RotateBatch {
            organization: principal.organization,
            batch_id,
            new_token_hash: token.hash(),
            expires_at: now.plus(self.config.invitation_ttl),
            message_id: MessageId(self.config.random.uuid()),
            accept_url: self.config.accept_url(&token),
            message_due_at: now.plus(self.config.delivery.lease),
            not_sent_after: now.minus(self.config.resend_interval),
            now,
            actor: Some(principal.key_id),
        };
        match self.store.rotate_batch(&cmd).await? {
            RotateFact::Rotated { renewed } => {
                let message = OutboxMessage {
                    id: cmd.message_id,
                    batch_id,
                    organization: principal.organization,
                    recipient: batch.email.clone(),
                    accept_url: Some(cmd.accept_url.clone()),
                    status: crate::store::MessageStatus::Queued,
                    attempts: 0,
                    next_attempt_at: cmd.message_due_at,
                    created_at: now,
                    last_error: None,
                };
                let status = self.deliver_now(&message).await;
                Ok(ResendResponse {
                    batch_id,
                    renewed,
                    email: EmailReport {
                        status,
                        batch_id: Some(batch_id),
                    },
                })
            }
            RotateFact::TooSoon { last_sent_at } => Err(InviteError::ResendTooSoon {
                retry_after_secs: now
                    .seconds_until(last_sent_at.plus(self.config.resend_interval))
                    .max(1),
            }),
            RotateFact::NothingToResend => Err(InviteError::Conflict {
                code: ErrorCode::NothingToResend,
                reason: "the batch has no pending or expired invitation to resend".into(),
            }),
            RotateFact::NotFound => Err(InviteError::NotFound { what: "batch" }),
        }
    }

    /// A batch with its invitations and the delivery state of its messages (a message given up
    /// after a permanent error or too many attempts shows as `failed` with its last error).
    ///
    /// A stored row the backend cannot read (a corrupt row, or one another version or a hand
    /// wrote) affects only its own batch: if the batch's row or one of its invitations cannot
    /// be decoded, this batch is [`InviteError::Unavailable`] with a
    /// [`StoreError::Incompatible`] source naming the column (never the value); a message row
    /// that cannot be decoded is left out of `messages` (the outbox already gave it up: the
    /// claim marked it failed with the reason).
    ///
    /// # Errors
    /// [`InviteError::NotFound`] (not in the caller's organization), [`InviteError::Forbidden`]
    /// (a scoped key must reach every target of the batch), [`InviteError::Unavailable`].
    #[tracing::instrument(name = "batch", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, batch_id = %batch_id, targets, messages, outcome, duration_seconds))]
    pub async fn batch(
        &self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<BatchView, InviteError> {
        self.observed(Operation::Batch, self.batch_inner(principal, batch_id))
            .await
    }

    async fn batch_inner(
        &self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<BatchView, InviteError> {
        let batch = self.reachable_batch(principal, batch_id).await?;
        let messages = self.store.batch_messages(batch_id).await?;
        let latest = messages.last().map(|m| m.status);
        let now = self.now();
        Ok(BatchView {
            batch_id,
            email: batch.email,
            created_at: batch.created_at,
            last_sent_at: batch.last_sent_at,
            invitations: batch
                .invitations
                .into_iter()
                .map(|r| view(r, now, latest))
                .collect(),
            messages: messages
                .into_iter()
                .map(|m| MessageView {
                    id: m.id,
                    status: m.status,
                    attempts: m.attempts,
                    last_error: m.last_error,
                    created_at: m.created_at,
                })
                .collect(),
        })
    }

    /// Lists invitations by target, email or status, oldest first, `limit` (1 to 500) per
    /// page. Never shows a token or its hash. A website-scoped key sees only invitations to
    /// its websites.
    ///
    /// An invitation row the backend cannot decode is left out of the page (the backend
    /// reports it and fills the page from the rows after it, so the cursor stays right), and
    /// a batch whose messages cannot be read shows `delivery: None`; neither fails the page.
    ///
    /// # Errors
    /// `invalid_query` for a bad limit or cursor, [`InviteError::Forbidden`] for a target the
    /// key does not reach, [`InviteError::Unavailable`].
    #[tracing::instrument(name = "list_invitations", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, filter = crate::observe::filter_kind(&filter), limit, items, outcome, duration_seconds))]
    pub async fn list_invitations(
        &self,
        principal: &Principal,
        filter: InvitationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<InvitationPage, InviteError> {
        let work = self.list_invitations_inner(principal, filter, limit, cursor);
        self.observed(Operation::ListInvitations, work).await
    }

    async fn list_invitations_inner(
        &self,
        principal: &Principal,
        filter: InvitationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<InvitationPage, InviteError> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(InviteError::validation(
                ErrorCode::InvalidQuery,
                "limit",
                "must be 1 to 500",
            ));
        }
        if let InvitationFilter::Target(t) = filter
            && !principal.reaches(t)
        {
            return Err(forbidden(t));
        }
        let after = cursor
            .map(|c| {
                parse_cursor(c).ok_or_else(|| {
                    InviteError::validation(
                        ErrorCode::InvalidQuery,
                        "cursor",
                        "is not a cursor this API returned",
                    )
                })
            })
            .transpose()?;
        let now = self.now();
        let query = InvitationQuery {
            organization: principal.organization,
            filter,
            after,
            limit,
            now,
            websites: match &principal.scope {
                KeyScope::Global => None,
                KeyScope::Websites(allow) => Some(allow.clone()),
            },
        };
        let records = self.store.list_invitations(&query).await?;
        let next_cursor = (records.len() == limit)
            .then(|| {
                records
                    .last()
                    .map(|r| format!("{}.{}", r.created_at.as_millis(), r.id))
            })
            .flatten();
        // The store applied the scope before paging (so the cursor is made from a row the
        // caller sees); this only guards against a store that did not.
        let records: Vec<InvitationRecord> = records
            .into_iter()
            .filter(|r| principal.reaches(r.target))
            .collect();
        let mut delivery: Vec<(BatchId, Option<MessageStatus>)> = Vec::new();
        for r in &records {
            if !delivery.iter().any(|(b, _)| *b == r.batch_id) {
                // One batch whose messages the store cannot read shows no delivery state; it
                // does not fail the page.
                let latest = match self.store.batch_messages(r.batch_id).await {
                    Ok(messages) => messages.last().map(|m| m.status),
                    Err(e @ StoreError::Incompatible { .. }) => {
                        note_dropped("list: batch messages cannot be read", &e);
                        None
                    }
                    Err(e) => return Err(e.into()),
                };
                delivery.push((r.batch_id, latest));
            }
        }
        let items = records
            .into_iter()
            .map(|r| {
                let d = delivery
                    .iter()
                    .find(|(b, _)| *b == r.batch_id)
                    .and_then(|(_, d)| *d);
                view(r, now, d)
            })
            .collect();
        Ok(InvitationPage { items, next_cursor })
    }
}

pub(super) fn parse_cursor(c: &str) -> Option<(Timestamp, InvitationId)> {
    let (ms, id) = c.split_once('.')?;
    Some((
        Timestamp::from_millis(ms.parse().ok()?),
        InvitationId(uuid::Uuid::try_parse(id).ok()?),
    ))
}
