//! The bulk request (docs/contract.md §2–§5): authorization, then direct mode (`add_members`) or email mode
//! (`create_invitations`), each target on its own, and the response in request order.

use super::*;
use crate::error::{ErrorCode, InviteError};
use crate::ids::{BatchId, InvitationId, MessageId, TargetId, UserId};
use crate::observe::Operation;
use crate::principal::Principal;
use crate::request::{BulkInviteRequest, InviteMethod, ValidatedRequest};
use crate::response::{BulkInviteResponse, EmailReport, EmailStatus, OutcomeCode, TargetResult};
use crate::store::{
    AddFact, AddMembers, CreateInvitations, InviteFact, NewBatch, NewUser, OutboxMessage,
};
use crate::tokens::AcceptToken;

impl InviteService {
    /// Invites one user to many websites or groups (docs/contract.md §2–§5).
    ///
    /// Each target is its own atomic unit; the response has one result per requested id, in
    /// request order. In email mode one consolidated message is stored in the outbox with the
    /// invitations and delivered at once; on a mailer error it stays queued for
    /// [`InviteService::deliver_due`].
    ///
    /// The permission check (`group_ids` need a global key) comes before the value checks,
    /// so a scoped key learns nothing from group requests.
    ///
    /// # Errors
    /// [`InviteError::Validation`] with the codes of docs/contract.md §2, or [`InviteError::Forbidden`]
    /// with `global_key_required`. Nothing is written in either case. Store failures are
    /// per-target `internal_error` results, not errors.
    #[tracing::instrument(name = "bulk_invite", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, method, targets, invitee, succeeded, failed, batch_id, email, outcome, duration_seconds))]
    pub async fn bulk_invite(
        &self,
        principal: &Principal,
        request: BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        self.observed(Operation::BulkInvite, async {
            let valid = self.check(principal, &request)?;
            Ok(self.execute(principal, &valid).await)
        })
        .await
    }

    pub(super) fn check(
        &self,
        principal: &Principal,
        request: &BulkInviteRequest,
    ) -> Result<ValidatedRequest, InviteError> {
        if request.group_ids.is_some() && request.website_ids.is_none() && !principal.is_global() {
            return Err(InviteError::Forbidden {
                code: ErrorCode::GlobalKeyRequired,
                reason: "group_ids require a global API key".into(),
            });
        }
        let valid = request.validate()?;
        self.observe_request(&valid);
        Ok(valid)
    }

    pub(super) async fn execute(
        &self,
        principal: &Principal,
        req: &ValidatedRequest,
    ) -> BulkInviteResponse {
        // Authorization is decided here, before the store sees anything.
        let allowed: Vec<TargetId> = req
            .targets
            .iter()
            .copied()
            .filter(|t| principal.reaches(*t))
            .collect();
        let response = match req.method {
            InviteMethod::Direct => self.direct(principal, req, allowed).await,
            InviteMethod::Email => self.email(principal, req, allowed).await,
        };
        crate::observe::targets(req.method.as_str(), &response.results);
        response
    }

    /// Places per-target results for the allowed targets back into request order, with
    /// `forbidden` for the others.
    pub(super) fn assemble(
        req: &ValidatedRequest,
        mut allowed_results: Vec<(TargetId, TargetResult)>,
    ) -> Vec<TargetResult> {
        allowed_results.reverse();
        req.targets
            .iter()
            .map(|t| match allowed_results.last() {
                Some((id, _)) if id == t => {
                    allowed_results.pop().map(|(_, r)| r).expect("just checked")
                }
                _ => TargetResult::new(*t, OutcomeCode::Forbidden),
            })
            .collect()
    }

    pub(super) async fn direct(
        &self,
        principal: &Principal,
        req: &ValidatedRequest,
        allowed: Vec<TargetId>,
    ) -> BulkInviteResponse {
        let now = self.now();
        let cmd = AddMembers {
            organization: principal.organization,
            email: req.email.clone(),
            new_user: NewUser {
                // Time-ordered, so the memberships of new users append in the store's indexes.
                id: UserId::time_ordered(now, self.config.random.uuid()),
                first_name: req.first_name.clone(),
                last_name: req.last_name.clone(),
            },
            role: req.role,
            targets: allowed,
            actor: Some(principal.key_id),
            now,
        };
        let (user, results) = if cmd.targets.is_empty() {
            // No user is named without an outcome relating them to the org (see
            // `relates_user`), so the paths where nothing reached the store look nobody up.
            (None, Vec::new())
        } else {
            match self.store.add_members(&cmd).await {
                Ok(out) => {
                    let user = out.user.map(|u| (u.id, u.created));
                    let results = cmd
                        .targets
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let code = match out.targets.get(i) {
                                Some(Ok(AddFact::Added)) => OutcomeCode::Added,
                                Some(Ok(AddFact::AlreadyMember { .. })) => {
                                    OutcomeCode::AlreadyMember
                                }
                                Some(Ok(AddFact::OrgMember)) => OutcomeCode::HasOrgAccess,
                                Some(Ok(AddFact::TargetNotFound)) => OutcomeCode::TargetNotFound,
                                Some(Err(e)) => {
                                    note_dropped("target unit", e);
                                    OutcomeCode::InternalError
                                }
                                None => OutcomeCode::InternalError,
                            };
                            let mut r = TargetResult::new(*t, code);
                            if let (true, Some((id, _))) = (code == OutcomeCode::Added, user) {
                                r = r.with_user(id);
                            }
                            (*t, r)
                        })
                        .collect();
                    (user, results)
                }
                Err(e) => {
                    note_dropped("add_members", &e);
                    // Nothing of the batch is stored: every allowed target failed.
                    let results = cmd
                        .targets
                        .iter()
                        .map(|t| (*t, TargetResult::new(*t, OutcomeCode::InternalError)))
                        .collect();
                    (None, results)
                }
            }
        };
        let results = Self::assemble(req, results);
        let user = user.filter(|_| relates_user(&results));
        BulkInviteResponse::new(
            InviteMethod::Direct,
            user.map(|u| u.0),
            user.is_some_and(|u| u.1),
            results,
            None,
        )
    }

    pub(super) async fn email(
        &self,
        principal: &Principal,
        req: &ValidatedRequest,
        allowed: Vec<TargetId>,
    ) -> BulkInviteResponse {
        let now = self.now();
        let rng = &self.config.random;
        let token = AcceptToken::generate(rng.as_ref());
        // Batches are read back ordered by (created_at, id) and every invitation of a batch
        // shares `created_at`, so ascending ids keep previews and accept results in request
        // order (as `InvitationPreview` documents). The ids are time-ordered (see
        // `InvitationId::time_ordered`), so a batch's invitations sit together in a store.
        // Their random tails are drawn together: one call of the random source.
        let mut invitation_ids: Vec<InvitationId> = rng
            .uuids(allowed.len())
            .into_iter()
            .map(|tail| InvitationId::time_ordered(now, tail))
            .collect();
        invitation_ids.sort_unstable();
        let cmd = CreateInvitations {
            organization: principal.organization,
            email: req.email.clone(),
            role: req.role,
            first_name: req.first_name.clone(),
            last_name: req.last_name.clone(),
            targets: allowed.iter().copied().zip(invitation_ids).collect(),
            batch: NewBatch {
                id: BatchId(rng.uuid()),
                token_hash: token.hash(),
                message_id: MessageId(rng.uuid()),
                accept_url: self.config.accept_url(&token),
                message_due_at: now.plus(self.config.delivery.lease),
            },
            expires_at: now.plus(self.config.invitation_ttl),
            actor: Some(principal.key_id),
            now,
        };
        let (user, results, invited) = if cmd.targets.is_empty() {
            (None, Vec::new(), 0)
        } else {
            match self.store.create_invitations(&cmd).await {
                Ok(out) => {
                    let mut invited = 0;
                    let results = cmd
                        .targets
                        .iter()
                        .enumerate()
                        .map(|(i, (t, inv))| {
                            let code = match out.targets.get(i) {
                                Some(Ok(InviteFact::Invited)) => OutcomeCode::Invited,
                                Some(Ok(InviteFact::AlreadyMember { .. })) => {
                                    OutcomeCode::AlreadyMember
                                }
                                Some(Ok(InviteFact::OrgMember)) => OutcomeCode::HasOrgAccess,
                                Some(Ok(InviteFact::AlreadyInvited { .. })) => {
                                    OutcomeCode::AlreadyInvited
                                }
                                Some(Ok(InviteFact::TargetNotFound)) => OutcomeCode::TargetNotFound,
                                Some(Err(e)) => {
                                    note_dropped("target unit", e);
                                    OutcomeCode::InternalError
                                }
                                None => OutcomeCode::InternalError,
                            };
                            let mut r = TargetResult::new(*t, code);
                            if code == OutcomeCode::Invited {
                                invited += 1;
                                r = r.with_invite(*inv);
                            }
                            (*t, r)
                        })
                        .collect();
                    (out.existing_user, results, invited)
                }
                Err(e) => {
                    note_dropped("create_invitations", &e);
                    let results = cmd
                        .targets
                        .iter()
                        .map(|(t, _)| (*t, TargetResult::new(*t, OutcomeCode::InternalError)))
                        .collect();
                    (None, results, 0)
                }
            }
        };
        let email = if invited == 0 {
            EmailReport {
                status: EmailStatus::NotSent,
                batch_id: None,
            }
        } else {
            let message = OutboxMessage {
                id: cmd.batch.message_id,
                batch_id: cmd.batch.id,
                organization: principal.organization,
                recipient: req.email.clone(),
                accept_url: Some(cmd.batch.accept_url.clone()),
                status: crate::store::MessageStatus::Queued,
                attempts: 0,
                next_attempt_at: cmd.batch.message_due_at,
                created_at: now,
                last_error: None,
            };
            let status = self.deliver_now(&message).await;
            EmailReport {
                status,
                batch_id: Some(cmd.batch.id),
            }
        };
        let results = Self::assemble(req, results);
        let user = user.filter(|_| relates_user(&results));
        BulkInviteResponse::new(InviteMethod::Email, user, false, results, Some(email))
    }
}

/// docs/contract.md §4 tenancy: a response names the user only when the user is, or has just become,
/// related to the caller's organization: a target succeeded, or an outcome shows the user
/// already belongs to a target or to the organization. Otherwise `user_id` is null, so a key
/// cannot learn whether an address has an account elsewhere on the platform.
fn relates_user(results: &[TargetResult]) -> bool {
    results.iter().any(|r| {
        r.success
            || matches!(
                r.code,
                OutcomeCode::AlreadyMember | OutcomeCode::HasOrgAccess
            )
    })
}
