//! The bulk request in the model: validation, permission, direct and email mode, idempotency.

use super::*;

impl Model {
    pub(super) fn check(
        &self,
        p: &Principal,
        req: &BulkInviteRequest,
    ) -> Result<Valid, InviteError> {
        if req.group_ids.is_some() && req.website_ids.is_none() && p.scope != KeyScope::Global {
            return Err(InviteError::Forbidden {
                code: ErrorCode::GlobalKeyRequired,
                reason: "group_ids require a global API key".into(),
            });
        }
        let targets: Vec<TargetId> = match (&req.website_ids, &req.group_ids) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    ErrorCode::MutuallyExclusiveTargets,
                    "website_ids",
                    "both lists",
                ));
            }
            (None, None) => return Err(invalid(ErrorCode::MissingTargets, "website_ids", "none")),
            (Some(w), None) => w.iter().map(|id| TargetId::Website(*id)).collect(),
            (None, Some(g)) => g.iter().map(|id| TargetId::Group(*id)).collect(),
        };
        if targets.is_empty() || targets.len() > 50 {
            return Err(invalid(ErrorCode::InvalidTargetCount, "targets", "count"));
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|s| s.uuid() == t.uuid()) {
                return Err(invalid(ErrorCode::DuplicateTarget, "targets", "repeat"));
            }
        }
        let email = Email::parse(&req.email)
            .map_err(|_| invalid(ErrorCode::InvalidEmail, "email", "invalid"))?;
        let name = |raw: &Option<String>, field: &str| match raw {
            None => Ok(None),
            Some(s) => PersonName::parse(s).map_err(|_| invalid(ErrorCode::InvalidName, field, "")),
        };
        Ok(Valid {
            method: req.invite_method,
            email,
            role: req.role.unwrap_or(Role::Viewer),
            targets,
            first_name: name(&req.first_name, "first_name")?,
            last_name: name(&req.last_name, "last_name")?,
        })
    }

    /// `InviteService::bulk_invite`.
    ///
    /// # Errors
    /// The whole-request errors of docs/contract.md §2 (`global_key_required` first, then validation).
    pub fn bulk_invite(
        &mut self,
        principal: &Principal,
        request: &BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        let valid = self.check(principal, request)?;
        Ok(self.execute(principal, &valid))
    }

    /// `InviteService::bulk_invite_idempotent`.
    ///
    /// # Errors
    /// As [`Model::bulk_invite`], plus `invalid_idempotency_key` and `idempotency_conflict`.
    pub fn bulk_invite_idempotent(
        &mut self,
        principal: &Principal,
        key: &str,
        request: &BulkInviteRequest,
    ) -> Result<BulkInviteResponse, InviteError> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(invalid(
                ErrorCode::InvalidIdempotencyKey,
                "idempotency_key",
                "",
            ));
        }
        let valid = self.check(principal, request)?;
        let oldest_live = minus(self.now, self.settings.idempotency_ttl);
        let same_key = |r: &IdempotencyRecord| {
            r.organization == principal.organization && r.key_id == principal.key_id && r.key == key
        };
        if let Some(r) = self
            .idempotency
            .iter()
            .find(|r| same_key(r) && r.created_at >= oldest_live)
        {
            if r.request != *request {
                return Err(InviteError::Conflict {
                    code: ErrorCode::IdempotencyConflict,
                    reason: "different request".into(),
                });
            }
            return Ok(r.response.clone());
        }
        self.idempotency.retain(|r| !same_key(r));
        let response = self.execute(principal, &valid);
        self.idempotency.push(IdempotencyRecord {
            organization: principal.organization,
            key_id: principal.key_id,
            key: key.to_owned(),
            request: request.clone(),
            response: response.clone(),
            created_at: self.now,
        });
        Ok(response)
    }

    pub(super) fn execute(&mut self, p: &Principal, v: &Valid) -> BulkInviteResponse {
        match v.method {
            InviteMethod::Direct => self.direct(p, v),
            InviteMethod::Email => self.email(p, v),
        }
    }

    pub(super) fn direct(&mut self, p: &Principal, v: &Valid) -> BulkInviteResponse {
        let now = self.now;
        let new_user_id = UserId::time_ordered(now, self.random.uuid());
        let mut user: Option<(UserId, bool)> = self.find_user(&v.email).map(|u| (u.id, false));
        let org_member = user.is_some_and(|(u, _)| self.is_org_member(p.organization, u));
        let mut results = Vec::new();
        for &t in &v.targets {
            let code = if !reaches(p, t) {
                OutcomeCode::Forbidden
            } else if self.target_org(t) != Some(p.organization) {
                OutcomeCode::TargetNotFound
            } else if user.is_some_and(|(u, _)| self.is_member(t, u)) {
                OutcomeCode::AlreadyMember
            } else if org_member {
                OutcomeCode::HasOrgAccess
            } else {
                let uid = match user {
                    Some((u, _)) => u,
                    None => {
                        self.users.push(User {
                            id: new_user_id,
                            email: v.email.clone(),
                            email_verified: false,
                            first_name: v.first_name.clone(),
                            last_name: v.last_name.clone(),
                        });
                        user = Some((new_user_id, true));
                        self.emit(
                            p.organization,
                            Some(p.key_id),
                            NewEvent::user_created(new_user_id),
                        );
                        new_user_id
                    }
                };
                self.memberships.push(MembershipRow {
                    target: t,
                    user: uid,
                    role: v.role,
                    created_at: now,
                });
                self.emit(
                    p.organization,
                    Some(p.key_id),
                    NewEvent::member_added(t, uid, v.role),
                );
                let mut superseded = Vec::new();
                for inv in &mut self.invitations {
                    // Live or expired: a pending invitation the add made moot.
                    if inv.target == t
                        && inv.email == v.email
                        && inv.status == StoredStatus::Pending
                    {
                        inv.status = StoredStatus::Superseded;
                        superseded.push(NewEvent::invitation_superseded(t, inv.id, inv.batch_id));
                    }
                }
                for e in superseded {
                    self.emit(p.organization, Some(p.key_id), e);
                }
                OutcomeCode::Added
            };
            let mut r = TargetResult::new(t, code);
            if code == OutcomeCode::Added {
                r = r.with_user(user.expect("set when added").0);
            }
            results.push(r);
        }
        let user = user.filter(|_| names_user(&results));
        BulkInviteResponse::new(
            InviteMethod::Direct,
            user.map(|u| u.0),
            user.is_some_and(|u| u.1),
            results,
            None,
        )
    }

    pub(super) fn email(&mut self, p: &Principal, v: &Valid) -> BulkInviteResponse {
        let now = self.now;
        let token = AcceptToken::generate(&self.random).expose().to_owned();
        let allowed: Vec<TargetId> = v
            .targets
            .iter()
            .copied()
            .filter(|t| reaches(p, *t))
            .collect();
        let mut drawn: Vec<InvitationId> = allowed
            .iter()
            .map(|_| InvitationId::time_ordered(now, self.random.uuid()))
            .collect();
        drawn.sort();
        let ids: Vec<(TargetId, InvitationId)> = allowed.into_iter().zip(drawn).collect();
        let batch_id = BatchId(self.random.uuid());
        let message_id = MessageId(self.random.uuid());
        let expires_at = plus(now, self.settings.invitation_ttl);
        let user = self.find_user(&v.email).map(|u| u.id);
        let org_member = user.is_some_and(|u| self.is_org_member(p.organization, u));
        let mut results = Vec::new();
        let mut invited = 0;
        for &t in &v.targets {
            let Some(&(_, inv_id)) = ids.iter().find(|(x, _)| *x == t) else {
                results.push(TargetResult::new(t, OutcomeCode::Forbidden));
                continue;
            };
            let code = if self.target_org(t) != Some(p.organization) {
                OutcomeCode::TargetNotFound
            } else if user.is_some_and(|u| self.is_member(t, u)) {
                OutcomeCode::AlreadyMember
            } else if org_member {
                OutcomeCode::HasOrgAccess
            } else if self
                .invitations
                .iter()
                .any(|i| i.target == t && i.email == v.email && self.is_live(i))
            {
                OutcomeCode::AlreadyInvited
            } else {
                for old in &mut self.invitations {
                    if old.target == t
                        && old.email == v.email
                        && old.status == StoredStatus::Pending
                    {
                        old.status = StoredStatus::Replaced;
                    }
                }
                self.invitations.push(InvitationRecord {
                    id: inv_id,
                    batch_id,
                    organization: p.organization,
                    target: t,
                    target_name: self.target_name(t),
                    email: v.email.clone(),
                    role: v.role,
                    first_name: v.first_name.clone(),
                    last_name: v.last_name.clone(),
                    status: StoredStatus::Pending,
                    created_at: now,
                    expires_at,
                });
                self.emit(
                    p.organization,
                    Some(p.key_id),
                    NewEvent::invitation_created(t, inv_id, batch_id, v.role),
                );
                invited += 1;
                OutcomeCode::Invited
            };
            let mut r = TargetResult::new(t, code);
            if code == OutcomeCode::Invited {
                r = r.with_invite(inv_id);
            }
            results.push(r);
        }
        let email = if invited == 0 {
            EmailReport {
                status: EmailStatus::NotSent,
                batch_id: None,
            }
        } else {
            self.batches.push(ModelBatch {
                id: batch_id,
                organization: p.organization,
                email: v.email.clone(),
                token: token.clone(),
                created_at: now,
                last_sent_at: now,
            });
            self.outbox.push(OutboxMessage {
                id: message_id,
                batch_id,
                organization: p.organization,
                recipient: v.email.clone(),
                accept_url: Some(self.accept_url(&token)),
                status: MessageStatus::Queued,
                attempts: 0,
                next_attempt_at: plus(now, self.settings.lease),
                created_at: now,
                last_error: None,
            });
            EmailReport {
                status: self.deliver_now(message_id),
                batch_id: Some(batch_id),
            }
        };
        let user = user.filter(|_| names_user(&results));
        BulkInviteResponse::new(InviteMethod::Email, user, false, results, Some(email))
    }

    // ----- the outbox -------------------------------------------------------------------
}

/// docs/contract.md §4 tenancy, stated on its own here: the user is named only if some target was added or
/// invited, or was refused because the user already is a member of it or of the organization.
fn names_user(results: &[TargetResult]) -> bool {
    results.iter().any(|r| {
        matches!(
            r.code,
            OutcomeCode::Added
                | OutcomeCode::Invited
                | OutcomeCode::AlreadyMember
                | OutcomeCode::HasOrgAccess
        )
    })
}
