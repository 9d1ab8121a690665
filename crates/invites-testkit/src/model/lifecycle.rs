//! The invitation lifecycle in the model: preview, accept, revoke, resend, list, and the snapshot.

use super::*;

impl Model {
    pub(super) fn open(&self, token: &str) -> Result<usize, InviteError> {
        let token = token.trim();
        let b = self
            .batches
            .iter()
            .position(|b| b.token == token)
            .ok_or(InviteError::InvalidToken)?;
        let id = self.batches[b].id;
        if !self
            .batch_invitations(id)
            .into_iter()
            .any(|i| self.is_live(&self.invitations[i]))
        {
            return Err(InviteError::InvalidToken);
        }
        Ok(b)
    }

    /// `InviteService::preview`.
    ///
    /// # Errors
    /// `invalid_token` for an unknown or rotated token or a batch with no live invitation.
    pub fn preview(&self, token: &str) -> Result<InvitationPreview, InviteError> {
        let b = &self.batches[self.open(token)?];
        Ok(InvitationPreview {
            batch_id: b.id,
            email: b.email.clone(),
            invitations: self
                .batch_invitations(b.id)
                .into_iter()
                .map(|i| &self.invitations[i])
                .filter(|i| self.is_live(i))
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

    /// `InviteService::accept`.
    ///
    /// # Errors
    /// `invalid_token`, `not_found` (unknown signed-in user), `email_mismatch`.
    pub fn accept(
        &mut self,
        token: &str,
        signed_in: Option<UserId>,
    ) -> Result<AcceptResponse, InviteError> {
        let b = self.open(token)?;
        let batch = self.batches[b].clone();
        if let Some(uid) = signed_in {
            let user = self
                .users
                .iter()
                .find(|u| u.id == uid)
                .ok_or(InviteError::NotFound { what: "user" })?;
            if user.email != batch.email {
                return Err(InviteError::EmailMismatch);
            }
        }
        let invs = self.batch_invitations(batch.id);
        let named = invs
            .iter()
            .map(|i| &self.invitations[*i])
            .find(|i| i.first_name.is_some() || i.last_name.is_some())
            .map(|i| (i.first_name.clone(), i.last_name.clone()));
        let new_user_id = UserId(self.random.uuid());
        let (uid, created) = match self.find_user(&batch.email) {
            Some(u) => (u.id, false),
            None => {
                let (first_name, last_name) = named.unwrap_or((None, None));
                self.users.push(User {
                    id: new_user_id,
                    email: batch.email.clone(),
                    email_verified: true,
                    first_name,
                    last_name,
                });
                self.emit(
                    batch.organization,
                    None,
                    NewEvent::user_created(new_user_id),
                );
                (new_user_id, true)
            }
        };
        for u in &mut self.users {
            if u.id == uid {
                u.email_verified = true;
            }
        }
        let org_member = self.is_org_member(batch.organization, uid);
        let now = self.now;
        let mut results = Vec::new();
        for i in invs {
            let inv = self.invitations[i].clone();
            let code = match inv.status {
                StoredStatus::Revoked => OutcomeCode::Revoked,
                StoredStatus::Superseded | StoredStatus::Accepted => OutcomeCode::AlreadyMember,
                StoredStatus::Replaced => OutcomeCode::Expired,
                StoredStatus::Pending if now >= inv.expires_at => OutcomeCode::Expired,
                StoredStatus::Pending
                    if self.target_org(inv.target) != Some(batch.organization) =>
                {
                    OutcomeCode::TargetNotFound
                }
                StoredStatus::Pending => {
                    self.emit(
                        batch.organization,
                        None,
                        NewEvent::invitation_accepted(inv.target, inv.id, inv.batch_id, uid),
                    );
                    let code = if self.is_member(inv.target, uid) {
                        OutcomeCode::AlreadyMember
                    } else if org_member {
                        OutcomeCode::HasOrgAccess
                    } else {
                        self.memberships.push(MembershipRow {
                            target: inv.target,
                            user: uid,
                            role: inv.role,
                            created_at: now,
                        });
                        self.emit(
                            batch.organization,
                            None,
                            NewEvent::member_added(inv.target, uid, inv.role),
                        );
                        OutcomeCode::Added
                    };
                    self.invitations[i].status = StoredStatus::Accepted;
                    code
                }
            };
            let mut result = TargetResult::new(inv.target, code);
            if code == OutcomeCode::Added {
                result = result.with_user(uid);
            }
            results.push(AcceptResult {
                invite_id: inv.id,
                result,
            });
        }
        Ok(AcceptResponse {
            user_id: uid,
            user_created: created,
            results,
        })
    }

    /// `InviteService::revoke`.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `already_accepted`.
    pub fn revoke(
        &mut self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<RevokeResponse, InviteError> {
        let inv = self
            .invitations
            .iter_mut()
            .find(|i| i.id == id && i.organization == principal.organization)
            .ok_or(InviteError::NotFound { what: "invitation" })?;
        if !reaches(principal, inv.target) {
            return Err(forbidden(inv.target));
        }
        let (target, batch) = (inv.target, inv.batch_id);
        let changed = match inv.status {
            StoredStatus::Pending => {
                inv.status = StoredStatus::Revoked;
                self.emit(
                    principal.organization,
                    Some(principal.key_id),
                    NewEvent::invitation_revoked(target, id, batch),
                );
                true
            }
            StoredStatus::Accepted => {
                return Err(InviteError::Conflict {
                    code: ErrorCode::AlreadyAccepted,
                    reason: "accepted".into(),
                });
            }
            StoredStatus::Revoked | StoredStatus::Superseded | StoredStatus::Replaced => false,
        };
        Ok(RevokeResponse {
            invite_id: id,
            changed,
        })
    }

    /// `InviteService::resend`.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `resend_too_soon` (with the seconds to wait, at least 1),
    /// `nothing_to_resend`.
    pub fn resend(
        &mut self,
        principal: &Principal,
        batch_id: BatchId,
    ) -> Result<ResendResponse, InviteError> {
        let b = self
            .batches
            .iter()
            .position(|b| b.id == batch_id && b.organization == principal.organization)
            .ok_or(InviteError::NotFound { what: "batch" })?;
        let invs = self.batch_invitations(batch_id);
        if let Some(i) = invs
            .iter()
            .find(|i| !reaches(principal, self.invitations[**i].target))
        {
            return Err(forbidden(self.invitations[*i].target));
        }
        let now = self.now;
        let token = AcceptToken::generate(&self.random).expose().to_owned();
        let message_id = MessageId(self.random.uuid());
        let last = self.batches[b].last_sent_at;
        if last > minus(now, self.settings.resend_interval) {
            let wait_ms = plus(last, self.settings.resend_interval).as_millis() - now.as_millis();
            let secs = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1);
            return Err(InviteError::ResendTooSoon {
                retry_after_secs: secs,
            });
        }
        let renew: Vec<usize> = invs
            .into_iter()
            .filter(|i| self.invitations[*i].status == StoredStatus::Pending)
            .collect();
        if renew.is_empty() {
            return Err(InviteError::Conflict {
                code: ErrorCode::NothingToResend,
                reason: "nothing".into(),
            });
        }
        let expires_at = plus(now, self.settings.invitation_ttl);
        for i in &renew {
            self.invitations[*i].expires_at = expires_at;
        }
        self.batches[b].token = token.clone();
        self.batches[b].last_sent_at = now;
        self.emit(
            principal.organization,
            Some(principal.key_id),
            NewEvent::batch_resent(batch_id, message_id),
        );
        for m in &mut self.outbox {
            if m.batch_id == batch_id && m.status == MessageStatus::Queued {
                m.status = MessageStatus::Cancelled;
                m.accept_url = None;
            }
        }
        self.outbox.push(OutboxMessage {
            id: message_id,
            batch_id,
            organization: principal.organization,
            recipient: self.batches[b].email.clone(),
            accept_url: Some(self.accept_url(&token)),
            status: MessageStatus::Queued,
            attempts: 0,
            next_attempt_at: plus(now, self.settings.lease),
            created_at: now,
            last_error: None,
        });
        let status = self.deliver_now(message_id);
        Ok(ResendResponse {
            batch_id,
            renewed: renew.len(),
            email: EmailReport {
                status,
                batch_id: Some(batch_id),
            },
        })
    }

    /// `InviteService::list_invitations`: the caller's organization's invitations matching
    /// `filter` (statuses as seen now), ordered by (created_at, id), after the cursor, `limit`
    /// per page; then those the key does not reach are left out of the page. The cursor
    /// (`{created_at millis}.{id}` of the page's last row) is given when the page was full
    /// before that filtering.
    ///
    /// # Errors
    /// `invalid_query` (limit outside 1 to 500, or a cursor this API did not write),
    /// `forbidden` (a target filter the key does not reach).
    pub fn list_invitations(
        &self,
        principal: &Principal,
        filter: &InvitationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<InvitationPage, InviteError> {
        if limit == 0 || limit > 500 {
            return Err(invalid(ErrorCode::InvalidQuery, "limit", ""));
        }
        if let InvitationFilter::Target(t) = filter
            && !reaches(principal, *t)
        {
            return Err(forbidden(*t));
        }
        let after = match cursor {
            None => None,
            Some(c) => {
                let parsed = c.split_once('.').and_then(|(ms, id)| {
                    Some((
                        Timestamp::from_millis(ms.parse().ok()?),
                        InvitationId(uuid::Uuid::try_parse(id).ok()?),
                    ))
                });
                Some(parsed.ok_or_else(|| invalid(ErrorCode::InvalidQuery, "cursor", ""))?)
            }
        };
        // Written out here rather than taken from the core's rules: the model is the oracle.
        let status_now = |i: &InvitationRecord| match i.status {
            StoredStatus::Pending if self.is_live(i) => InvitationStatus::Pending,
            StoredStatus::Pending | StoredStatus::Replaced => InvitationStatus::Expired,
            StoredStatus::Accepted => InvitationStatus::Accepted,
            StoredStatus::Revoked => InvitationStatus::Revoked,
            StoredStatus::Superseded => InvitationStatus::Superseded,
        };
        let mut rows: Vec<&InvitationRecord> = self
            .invitations
            .iter()
            .filter(|i| i.organization == principal.organization)
            .filter(|i| match filter {
                InvitationFilter::Target(t) => i.target == *t,
                InvitationFilter::Email(e) => i.email == *e,
                InvitationFilter::Status(st) => status_now(i) == *st,
            })
            .filter(|i| after.is_none_or(|a| (i.created_at, i.id) > a))
            // A key sees only what it reaches; the page is cut among those rows.
            .filter(|i| reaches(principal, i.target))
            .collect();
        rows.sort_by_key(|i| (i.created_at, i.id));
        rows.truncate(limit);
        let next_cursor = if rows.len() == limit {
            rows.last()
                .map(|r| format!("{}.{}", r.created_at.as_millis(), r.id))
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|i| InvitationView {
                id: i.id,
                batch_id: i.batch_id,
                target: i.target,
                target_name: i.target_name.clone(),
                email: i.email.clone(),
                role: i.role,
                status: status_now(i),
                created_at: i.created_at,
                expires_at: i.expires_at,
                // The status of the batch's latest message (by created_at, then id).
                delivery: self
                    .outbox
                    .iter()
                    .filter(|m| m.batch_id == i.batch_id)
                    .max_by_key(|m| (m.created_at, m.id))
                    .map(|m| m.status),
            })
            .collect();
        Ok(InvitationPage { items, next_cursor })
    }

    // ----- inspection -------------------------------------------------------------------

    /// The canonical snapshot, ordered like `Inspect::snapshot`: users by email, memberships
    /// by (target, user), org members by (organization, user), invitations and outbox rows by
    /// (created_at, id), batches by id.
    pub fn snapshot(&self) -> Snapshot {
        let mut users = self.users.clone();
        users.sort_by(|a, b| a.email.cmp(&b.email));
        let mut memberships = self.memberships.clone();
        memberships.sort_by_key(|m| (m.target, m.user));
        let mut org_members = self.org_members.clone();
        org_members.sort_by_key(|(o, u, _)| (*o, *u));
        let mut invitations = self.invitations.clone();
        invitations.sort_by_key(|i| (i.created_at, i.id));
        let mut batches: Vec<(BatchId, OrganizationId, Email, Timestamp)> = self
            .batches
            .iter()
            .map(|b| (b.id, b.organization, b.email.clone(), b.created_at))
            .collect();
        batches.sort_by_key(|b| b.0);
        let mut outbox = self.outbox.clone();
        outbox.sort_by_key(|m| (m.created_at, m.id));
        Snapshot {
            users,
            memberships,
            org_members,
            invitations,
            batches,
            outbox,
        }
    }
}
