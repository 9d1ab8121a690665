//! Resolving an [`Op`]'s run-time references ([`Context`]) into a step, and what a run saw.

use super::*;

/// An op with its run-time references resolved. Users named by email are resolved by each
/// driver against its own state (an unknown id when none has the email).
#[derive(Clone, Debug)]
pub(super) enum Step {
    Bulk {
        principal: Principal,
        request: BulkInviteRequest,
        key: Option<String>,
    },
    AddOrgMember {
        organization: OrganizationId,
        email: Email,
        role: OrgRole,
    },
    DeleteWebsite(WebsiteId),
    DeliverDue,
    Purge,
    SetMailer(MailerMode),
    Advance(Duration),
    Revoke {
        principal: Principal,
        id: InvitationId,
    },
    Resend {
        principal: Principal,
        batch: BatchId,
    },
    Preview {
        token: String,
    },
    List {
        principal: Principal,
        filter: InvitationFilter,
        limit: usize,
    },
    Accept {
        token: String,
        signed_in: Option<Email>,
    },
    SetMemberRole {
        principal: Principal,
        target: TargetId,
        email: Email,
        role: Role,
    },
    RemoveMember {
        principal: Principal,
        target: TargetId,
        email: Email,
    },
    RemoveOrgMember {
        organization: OrganizationId,
        email: Email,
    },
    SetOrgRole {
        organization: OrganizationId,
        email: Email,
        role: OrgRole,
    },
    AddWebsiteToGroup {
        group: GroupId,
        website: WebsiteId,
    },
    RemoveWebsiteFromGroup {
        group: GroupId,
        website: WebsiteId,
    },
    DeleteGroup(GroupId),
    Erase(String),
    MembersOf {
        principal: Principal,
        target: TargetId,
        limit: usize,
    },
    WebsitesOf {
        principal: Principal,
        email: Email,
        limit: usize,
    },
    Nothing,
}

impl Step {
    /// Whether the step changes the directory (organizations, groups, websites and their
    /// links), which the snapshot does not show: access is compared after every such step.
    pub(super) fn changes_directory(&self) -> bool {
        matches!(
            self,
            Step::AddOrgMember { .. }
                | Step::DeleteWebsite(_)
                | Step::RemoveOrgMember { .. }
                | Step::SetOrgRole { .. }
                | Step::AddWebsiteToGroup { .. }
                | Step::RemoveWebsiteFromGroup { .. }
                | Step::DeleteGroup(_)
                | Step::Erase(_)
        )
    }
}

/// What a run has seen so far, to resolve the indices of [`Op`]s. Every driver keeps its own,
/// built from its own answers; while the answers agree, so do the contexts.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Invitation ids seen in bulk results, first seen first.
    pub invitations: Vec<InvitationId>,
    /// Batch ids seen in bulk responses.
    pub batches: Vec<BatchId>,
    /// Memberships seen in the state after an op, as (target, the member's email), first
    /// seen first (they stay here after they are gone).
    pub memberships: Vec<(TargetId, Email)>,
    /// Accept tokens seen in delivered messages or in links still held by outbox rows.
    pub tokens: Vec<String>,
    /// The last idempotent bulk request: (principal, key, request).
    pub last_idempotent: Option<(Principal, String, BulkInviteRequest)>,
    mails_seen: usize,
}

fn pick<T: Clone>(items: &[T], index: usize, unknown: T) -> T {
    // One index in sixteen (and every index while nothing was seen) refers to something
    // unknown.
    if items.is_empty() || index % 16 == 15 {
        unknown
    } else {
        items[index % items.len()].clone()
    }
}

/// The accept token in a message's link, if any.
pub fn token_of(message: &EmailMessage) -> Option<String> {
    token_in(&message.text)
}

/// The accept token in a text holding an accept link (`…token=<token>`), if any.
pub fn token_in(text: &str) -> Option<String> {
    let start = text.find("token=")? + "token=".len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!token.is_empty()).then_some(token)
}

impl Context {
    /// The invitation seen at `index` (modulo), or an unknown id (nothing seen yet, or
    /// `index % 16 == 15`).
    pub fn invitation(&self, index: usize) -> InvitationId {
        pick(&self.invitations, index, InvitationId(UNKNOWN))
    }

    /// The batch seen at `index` (modulo), or an unknown id (as for invitations).
    pub fn batch(&self, index: usize) -> BatchId {
        pick(&self.batches, index, BatchId(UNKNOWN))
    }

    /// The token seen at `index` (modulo), or a token no batch has (as for invitations).
    pub fn token(&self, index: usize) -> String {
        pick(&self.tokens, index, "0".repeat(64))
    }

    fn member(&self, member: &Member) -> (TargetId, Email) {
        match member.seen {
            Some(i) if !self.memberships.is_empty() => {
                self.memberships[i % self.memberships.len()].clone()
            }
            _ => (member.target, member.email.clone()),
        }
    }

    pub(super) fn resolve(&self, op: &Op) -> Step {
        match op {
            Op::Bulk {
                principal,
                request,
                idempotency_key,
            } => Step::Bulk {
                principal: principal.clone(),
                request: request.clone(),
                key: idempotency_key.clone(),
            },
            Op::Replay => match &self.last_idempotent {
                Some((principal, key, request)) => Step::Bulk {
                    principal: principal.clone(),
                    request: request.clone(),
                    key: Some(key.clone()),
                },
                None => Step::Nothing,
            },
            Op::AddOrgMember {
                organization,
                email,
                role,
            } => Step::AddOrgMember {
                organization: *organization,
                email: email.clone(),
                role: *role,
            },
            Op::DeleteWebsite(w) => Step::DeleteWebsite(*w),
            Op::DeliverDue => Step::DeliverDue,
            Op::Purge => Step::Purge,
            Op::SetMailer(m) => Step::SetMailer(*m),
            Op::Advance(d) => Step::Advance(*d),
            Op::Revoke {
                principal,
                invitation,
            } => Step::Revoke {
                principal: principal.clone(),
                id: self.invitation(*invitation),
            },
            Op::Resend { principal, batch } => Step::Resend {
                principal: principal.clone(),
                batch: self.batch(*batch),
            },
            Op::Preview { token } => Step::Preview {
                token: self.token(*token),
            },
            Op::List {
                principal,
                filter,
                limit,
            } => Step::List {
                principal: principal.clone(),
                filter: filter.clone(),
                limit: *limit,
            },
            Op::Accept { token, signed_in } => Step::Accept {
                token: self.token(*token),
                signed_in: signed_in.clone(),
            },
            Op::SetMemberRole {
                principal,
                member,
                role,
            } => {
                let (target, email) = self.member(member);
                Step::SetMemberRole {
                    principal: principal.clone(),
                    target,
                    email,
                    role: *role,
                }
            }
            Op::RemoveMember { principal, member } => {
                let (target, email) = self.member(member);
                Step::RemoveMember {
                    principal: principal.clone(),
                    target,
                    email,
                }
            }
            Op::RemoveOrgMember {
                organization,
                email,
            } => Step::RemoveOrgMember {
                organization: *organization,
                email: email.clone(),
            },
            Op::SetOrgRole {
                organization,
                email,
                role,
            } => Step::SetOrgRole {
                organization: *organization,
                email: email.clone(),
                role: *role,
            },
            Op::AddWebsiteToGroup { group, website } => Step::AddWebsiteToGroup {
                group: *group,
                website: *website,
            },
            Op::RemoveWebsiteFromGroup { group, website } => Step::RemoveWebsiteFromGroup {
                group: *group,
                website: *website,
            },
            Op::DeleteGroup(g) => Step::DeleteGroup(*g),
            Op::Erase(email) => Step::Erase(email.clone()),
            Op::MembersOf {
                principal,
                target,
                limit,
            } => Step::MembersOf {
                principal: principal.clone(),
                target: *target,
                limit: *limit,
            },
            Op::WebsitesOf {
                principal,
                email,
                limit,
            } => Step::WebsitesOf {
                principal: principal.clone(),
                email: email.clone(),
                limit: *limit,
            },
        }
    }

    pub(super) fn observe(
        &mut self,
        step: &Step,
        outcome: &Outcome,
        sent: &[EmailMessage],
        snapshot: &Snapshot,
    ) {
        if let Step::Bulk {
            principal,
            request,
            key: Some(key),
        } = step
        {
            self.last_idempotent = Some((principal.clone(), key.clone(), request.clone()));
        }
        if let Outcome::Bulk(Ok(r)) = outcome {
            for id in r.results.iter().filter_map(|r| r.invite_id) {
                if !self.invitations.contains(&id) {
                    self.invitations.push(id);
                }
            }
            if let Some(b) = r.email.and_then(|e| e.batch_id)
                && !self.batches.contains(&b)
            {
                self.batches.push(b);
            }
        }
        let mailed = sent.iter().skip(self.mails_seen).filter_map(token_of);
        for m in &snapshot.memberships {
            let held = snapshot.users.iter().find(|u| u.id == m.user);
            if let Some(u) = held
                && !self.memberships.contains(&(m.target, u.email.clone()))
            {
                self.memberships.push((m.target, u.email.clone()));
            }
        }
        let queued = snapshot
            .outbox
            .iter()
            .filter_map(|m| m.accept_url.as_deref())
            .filter_map(token_in);
        for t in mailed.chain(queued) {
            if !self.tokens.contains(&t) {
                self.tokens.push(t);
            }
        }
        self.mails_seen = sent.len();
    }
}

/// The id given to a user that [`Op::AddOrgMember`] has to create: a fixed function of the
/// email, so every backend and the model agree on it.
pub fn directory_user_id(email: &Email) -> UserId {
    // FNV-1a, 64 bits, under a fixed prefix no seeded or fixture id uses.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in email.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    UserId(Uuid::from_u128((0xd1u128 << 120) | u128::from(h)))
}
