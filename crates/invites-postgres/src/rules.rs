//! TEMPORARY bridge to the core's decision functions until the store-contract change
//! (`invites_core::rules`) is merged into this branch; then this module goes and the calls
//! name the core's functions. It mirrors the core's API shape only so the rest of the crate
//! is written against it already.

use invites_core::{
    AcceptFact, AddFact, IdempotencyBegin, IdempotencyState, InvitationId, InvitationStatus,
    InviteFact, RevokeFact, Role, RotateFact, Timestamp,
};

pub(crate) type StoredStatus = InvitationStatus;

/// The tag stored for a status (the replaced-expired one is `replaced`).
pub(crate) fn stored_tag(s: StoredStatus) -> &'static str {
    match s {
        InvitationStatus::Expired => "replaced",
        other => other.as_str(),
    }
}

pub(crate) fn stored_status(tag: &str) -> Option<StoredStatus> {
    match tag {
        "replaced" => Some(InvitationStatus::Expired),
        "expired" => None,
        other => InvitationStatus::parse(other),
    }
}

pub(crate) fn is_live(status: StoredStatus, expires_at: Timestamp, now: Timestamp) -> bool {
    status == StoredStatus::Pending && now < expires_at
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct TargetAccess {
    pub(crate) exists: bool,
    pub(crate) membership: Option<Role>,
    pub(crate) org_member: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct AddFacts {
    pub(crate) access: TargetAccess,
    pub(crate) pending: Option<InvitationId>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum AddDecision {
    Report(AddFact),
    Add { supersede: Option<InvitationId> },
}

pub(crate) fn decide_add(f: &AddFacts) -> AddDecision {
    let a = f.access;
    if !a.exists {
        AddDecision::Report(AddFact::TargetNotFound)
    } else if let Some(role) = a.membership {
        AddDecision::Report(AddFact::AlreadyMember { role })
    } else if a.org_member {
        AddDecision::Report(AddFact::OrgMember)
    } else {
        AddDecision::Add {
            supersede: f.pending,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingInvitation {
    pub(crate) id: InvitationId,
    pub(crate) expires_at: Timestamp,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct InviteFacts {
    pub(crate) access: TargetAccess,
    pub(crate) pending: Option<PendingInvitation>,
    pub(crate) now: Timestamp,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum InviteDecision {
    Report(InviteFact),
    Invite { replace: Option<InvitationId> },
}

pub(crate) fn decide_invite(f: &InviteFacts) -> InviteDecision {
    let a = f.access;
    if !a.exists {
        InviteDecision::Report(InviteFact::TargetNotFound)
    } else if let Some(role) = a.membership {
        InviteDecision::Report(InviteFact::AlreadyMember { role })
    } else if a.org_member {
        InviteDecision::Report(InviteFact::OrgMember)
    } else {
        match f.pending {
            Some(p) if is_live(StoredStatus::Pending, p.expires_at, f.now) => {
                InviteDecision::Report(InviteFact::AlreadyInvited { invitation: p.id })
            }
            Some(p) => InviteDecision::Invite {
                replace: Some(p.id),
            },
            None => InviteDecision::Invite { replace: None },
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct AcceptFacts {
    pub(crate) status: StoredStatus,
    pub(crate) expires_at: Timestamp,
    pub(crate) now: Timestamp,
    pub(crate) access: TargetAccess,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum AcceptDecision {
    Report(AcceptFact),
    Accept {
        fact: AcceptFact,
        create_membership: bool,
    },
}

pub(crate) fn decide_accept(f: &AcceptFacts) -> AcceptDecision {
    let a = f.access;
    match f.status {
        InvitationStatus::Revoked => AcceptDecision::Report(AcceptFact::Revoked),
        InvitationStatus::Superseded => AcceptDecision::Report(AcceptFact::Superseded),
        InvitationStatus::Accepted => AcceptDecision::Report(AcceptFact::AlreadyAccepted),
        InvitationStatus::Expired => AcceptDecision::Report(AcceptFact::Expired),
        InvitationStatus::Pending if !is_live(f.status, f.expires_at, f.now) => {
            AcceptDecision::Report(AcceptFact::Expired)
        }
        InvitationStatus::Pending if !a.exists => {
            AcceptDecision::Report(AcceptFact::TargetNotFound)
        }
        InvitationStatus::Pending => {
            let (fact, create_membership) = if a.membership.is_some() {
                (AcceptFact::AlreadyMember, false)
            } else if a.org_member {
                (AcceptFact::OrgMember, false)
            } else {
                (AcceptFact::Added, true)
            };
            AcceptDecision::Accept {
                fact,
                create_membership,
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum RevokeDecision {
    Report(RevokeFact),
    Revoke,
}

pub(crate) fn decide_revoke(status: Option<StoredStatus>) -> RevokeDecision {
    match status {
        None => RevokeDecision::Report(RevokeFact::NotFound),
        Some(InvitationStatus::Pending) => RevokeDecision::Revoke,
        Some(InvitationStatus::Revoked) => RevokeDecision::Report(RevokeFact::AlreadyRevoked),
        Some(InvitationStatus::Accepted) => RevokeDecision::Report(RevokeFact::AlreadyAccepted),
        Some(InvitationStatus::Superseded | InvitationStatus::Expired) => {
            RevokeDecision::Report(RevokeFact::AlreadyDead)
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RotateFacts {
    pub(crate) last_sent_at: Timestamp,
    pub(crate) renewable: usize,
    pub(crate) not_sent_after: Timestamp,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum RotateDecision {
    Report(RotateFact),
    Rotate,
}

pub(crate) fn decide_rotate(b: Option<&RotateFacts>) -> RotateDecision {
    match b {
        None => RotateDecision::Report(RotateFact::NotFound),
        Some(b) if b.last_sent_at > b.not_sent_after => {
            RotateDecision::Report(RotateFact::TooSoon {
                last_sent_at: b.last_sent_at,
            })
        }
        Some(b) if b.renewable == 0 => RotateDecision::Report(RotateFact::NothingToResend),
        Some(_) => RotateDecision::Rotate,
    }
}

#[derive(Clone, Debug)]
pub(crate) struct StoredIdempotency {
    pub(crate) fingerprint: [u8; 32],
    pub(crate) response: Option<String>,
    pub(crate) created_at: Timestamp,
}

#[derive(Clone, Debug)]
pub(crate) enum IdempotencyDecision {
    Report(IdempotencyState),
    Start,
}

pub(crate) fn decide_idempotency(
    found: Option<StoredIdempotency>,
    begin: &IdempotencyBegin,
) -> IdempotencyDecision {
    match found {
        None => IdempotencyDecision::Start,
        Some(r) if r.created_at < begin.expired_before => IdempotencyDecision::Start,
        Some(StoredIdempotency {
            fingerprint,
            response: Some(response),
            ..
        }) => IdempotencyDecision::Report(IdempotencyState::Completed {
            fingerprint,
            response,
        }),
        Some(r) if r.created_at < begin.stale_before && r.fingerprint == begin.fingerprint => {
            IdempotencyDecision::Start
        }
        Some(r) => IdempotencyDecision::Report(IdempotencyState::InProgress {
            fingerprint: r.fingerprint,
        }),
    }
}
