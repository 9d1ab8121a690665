//! The rules a store applies: what the facts it reads inside its transaction mean.
//!
//! A backend reads, for one target (or one invitation), the facts listed in a `*Facts` struct,
//! calls the `decide_*` function here and does what the decision says — in the same
//! transaction, so the facts still hold when it writes. No backend decides on its own which
//! outcome wins or what "live" means: that is written once, here, and tested for every
//! combination of facts below.
//!
//! Precedence, for every per-target operation: the target is missing (`TargetNotFound`),
//! then the user has an explicit membership (`AlreadyMember`), then the user is an
//! organization member (`OrgMember`), then — for invitations — a live invitation exists
//! (`AlreadyInvited`); only then does the write happen.
//!
//! # Stored status and derived status
//!
//! A store keeps a [`StoredStatus`] per invitation. Whether it is *expired* is never stored:
//! it is derived from the clock ([`view_status`]). [`is_live`] is the one definition of a
//! live invitation: stored `Pending` and `now` strictly before its expiry.
//!
//! # Retention
//!
//! What a purge may delete is decided here too ([`purge_cutoffs`], [`message_is_purgeable`],
//! [`batch_is_purgeable`], [`idempotency_is_expired`]); a store deletes in bulk by the
//! cutoffs, with the same predicate in its query.

use crate::ids::InvitationId;
use crate::invitee::Role;
use crate::store::{
    AcceptFact, AddFact, IdempotencyBegin, IdempotencyState, InvitationStatus, InviteFact,
    MessageStatus, RevokeFact, RotateFact, StoredStatus,
};
use crate::time::Timestamp;

mod retention;
pub use retention::{
    BatchRetentionFacts, MessageRetentionFacts, PurgeCutoffs, batch_is_purgeable,
    message_is_finished, message_is_purgeable, purge_cutoffs, unfinished_statuses,
};

/// Whether an invitation can still be accepted at `now`: the one definition of "live".
pub fn is_live(status: StoredStatus, expires_at: Timestamp, now: Timestamp) -> bool {
    status == StoredStatus::Pending && now < expires_at
}

/// The status an invitation has as seen at `now`: a stored `Pending` at or past its expiry,
/// and a `Replaced` one, are `Expired`.
pub fn view_status(
    status: StoredStatus,
    expires_at: Timestamp,
    now: Timestamp,
) -> InvitationStatus {
    match status {
        StoredStatus::Pending if is_live(status, expires_at, now) => InvitationStatus::Pending,
        StoredStatus::Pending | StoredStatus::Replaced => InvitationStatus::Expired,
        StoredStatus::Accepted => InvitationStatus::Accepted,
        StoredStatus::Revoked => InvitationStatus::Revoked,
        StoredStatus::Superseded => InvitationStatus::Superseded,
    }
}

/// How an invitation's expiry must compare with `now` for one stored form of a view status.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExpiryBound {
    /// Any expiry.
    Any,
    /// `expires_at > now` (live).
    After,
    /// `expires_at <= now` (past its expiry).
    AtOrBefore,
}

/// The stored forms of a view status, for a store that filters in its query: an invitation
/// has `view` at `now` iff it matches one of the returned (stored status, expiry bound) pairs.
/// Agrees with [`view_status`] (tested below).
pub fn stored_forms(view: InvitationStatus) -> &'static [(StoredStatus, ExpiryBound)] {
    match view {
        InvitationStatus::Pending => &[(StoredStatus::Pending, ExpiryBound::After)],
        InvitationStatus::Expired => &[
            (StoredStatus::Pending, ExpiryBound::AtOrBefore),
            (StoredStatus::Replaced, ExpiryBound::Any),
        ],
        InvitationStatus::Accepted => &[(StoredStatus::Accepted, ExpiryBound::Any)],
        InvitationStatus::Revoked => &[(StoredStatus::Revoked, ExpiryBound::Any)],
        InvitationStatus::Superseded => &[(StoredStatus::Superseded, ExpiryBound::Any)],
    }
}

/// What a store knows about the user and one target, read inside its transaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TargetAccess {
    /// The target exists in the caller's organization (another organization's target is
    /// reported exactly as a missing one).
    pub exists: bool,
    /// The role of the user's explicit membership of the target, if the user exists and has
    /// one.
    pub membership: Option<Role>,
    /// The user exists and is a member of the organization.
    pub org_member: bool,
}

/// The facts of one target of `add_members`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AddFacts {
    /// The user and the target.
    pub access: TargetAccess,
    /// The stored-`Pending` invitation for (target, email), live or expired, if any. A store
    /// may leave it `None` when `access.org_member` (it is then never looked at).
    pub pending: Option<InvitationId>,
}

/// What `add_members` does for one target.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddDecision {
    /// Write nothing; report this fact.
    Report(AddFact),
    /// Create the user if none has the email yet, create the membership, and mark the
    /// pending invitation (if any) `Superseded`; report [`AddFact::Added`].
    Add {
        /// The invitation to supersede.
        supersede: Option<InvitationId>,
    },
}

/// Decides one target of `add_members`.
pub fn decide_add(facts: &AddFacts) -> AddDecision {
    let a = facts.access;
    if !a.exists {
        AddDecision::Report(AddFact::TargetNotFound)
    } else if let Some(role) = a.membership {
        AddDecision::Report(AddFact::AlreadyMember { role })
    } else if a.org_member {
        AddDecision::Report(AddFact::OrgMember)
    } else {
        AddDecision::Add {
            supersede: facts.pending,
        }
    }
}

/// A stored-`Pending` invitation (live or expired).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PendingInvitation {
    /// Its id.
    pub id: InvitationId,
    /// Its expiry.
    pub expires_at: Timestamp,
}

/// The facts of one target of `create_invitations`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InviteFacts {
    /// The existing user (if any) and the target.
    pub access: TargetAccess,
    /// The stored-`Pending` invitation for (target, email), if any — including one created by
    /// an earlier target of the same call.
    pub pending: Option<PendingInvitation>,
    /// The time of the request.
    pub now: Timestamp,
}

/// What `create_invitations` does for one target.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InviteDecision {
    /// Write nothing; report this fact.
    Report(InviteFact),
    /// Mark the expired pending invitation (if any) `Replaced`, then insert the new one
    /// (and the batch with its message, if this is the first); report [`InviteFact::Invited`].
    Invite {
        /// The expired pending invitation the new one replaces.
        replace: Option<InvitationId>,
    },
}

/// Decides one target of `create_invitations`.
pub fn decide_invite(facts: &InviteFacts) -> InviteDecision {
    let a = facts.access;
    if !a.exists {
        InviteDecision::Report(InviteFact::TargetNotFound)
    } else if let Some(role) = a.membership {
        InviteDecision::Report(InviteFact::AlreadyMember { role })
    } else if a.org_member {
        InviteDecision::Report(InviteFact::OrgMember)
    } else {
        match facts.pending {
            Some(p) if is_live(StoredStatus::Pending, p.expires_at, facts.now) => {
                InviteDecision::Report(InviteFact::AlreadyInvited { invitation: p.id })
            }
            Some(p) => InviteDecision::Invite {
                replace: Some(p.id),
            },
            None => InviteDecision::Invite { replace: None },
        }
    }
}

/// The facts of one invitation of `accept_batch`. `access` is about the accepting user (found
/// or created, so it exists) and the invitation's target.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AcceptFacts {
    /// The invitation's stored status.
    pub status: StoredStatus,
    /// Its expiry.
    pub expires_at: Timestamp,
    /// The time of acceptance.
    pub now: Timestamp,
    /// The user and the invitation's target (in the batch's organization).
    pub access: TargetAccess,
}

/// What `accept_batch` does for one invitation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AcceptDecision {
    /// Write nothing; report this fact (the invitation is unchanged).
    Report(AcceptFact),
    /// Mark the invitation `Accepted`, create the membership if `create_membership`, and
    /// report `fact` ([`AcceptFact::Added`], [`AcceptFact::AlreadyMember`] or
    /// [`AcceptFact::OrgMember`]).
    Accept {
        /// What to report.
        fact: AcceptFact,
        /// Whether to insert the membership (with the invitation's role).
        create_membership: bool,
    },
}

/// Decides one invitation of `accept_batch`.
pub fn decide_accept(facts: &AcceptFacts) -> AcceptDecision {
    let a = facts.access;
    match facts.status {
        StoredStatus::Revoked => AcceptDecision::Report(AcceptFact::Revoked),
        StoredStatus::Superseded => AcceptDecision::Report(AcceptFact::Superseded),
        StoredStatus::Accepted => AcceptDecision::Report(AcceptFact::AlreadyAccepted),
        StoredStatus::Replaced => AcceptDecision::Report(AcceptFact::Expired),
        StoredStatus::Pending if !is_live(facts.status, facts.expires_at, facts.now) => {
            AcceptDecision::Report(AcceptFact::Expired)
        }
        StoredStatus::Pending if !a.exists => AcceptDecision::Report(AcceptFact::TargetNotFound),
        StoredStatus::Pending => {
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

/// What `revoke_invitation` does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RevokeDecision {
    /// Write nothing; report this fact.
    Report(RevokeFact),
    /// Mark the invitation `Revoked`; report [`RevokeFact::Revoked`].
    Revoke,
}

/// Decides `revoke_invitation` from the stored status of the invitation in the caller's
/// organization (`None`: no such invitation there). A pending invitation is revoked whether
/// or not its expiry has passed.
pub fn decide_revoke(status: Option<StoredStatus>) -> RevokeDecision {
    match status {
        None => RevokeDecision::Report(RevokeFact::NotFound),
        Some(StoredStatus::Pending) => RevokeDecision::Revoke,
        Some(StoredStatus::Revoked) => RevokeDecision::Report(RevokeFact::AlreadyRevoked),
        Some(StoredStatus::Accepted) => RevokeDecision::Report(RevokeFact::AlreadyAccepted),
        Some(StoredStatus::Superseded | StoredStatus::Replaced) => {
            RevokeDecision::Report(RevokeFact::AlreadyDead)
        }
    }
}

/// The facts of a batch for `rotate_batch`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RotateFacts {
    /// When the batch was last sent.
    pub last_sent_at: Timestamp,
    /// How many of its invitations are renewable ([`StoredStatus::is_renewable`]).
    pub renewable: usize,
    /// The rate limit: rotate only if last sent at or before this time.
    pub not_sent_after: Timestamp,
}

/// What `rotate_batch` does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RotateDecision {
    /// Write nothing; report this fact.
    Report(RotateFact),
    /// Renew the renewable invitations, rotate the token, set `last_sent_at`, cancel the
    /// batch's queued messages and queue the new one; report
    /// [`RotateFact::Rotated`] with `renewed` = [`RotateFacts::renewable`].
    Rotate,
}

/// Decides `rotate_batch` (`None`: no such batch in the caller's organization).
pub fn decide_rotate(batch: Option<&RotateFacts>) -> RotateDecision {
    match batch {
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

/// Whether a delivery record ([`DeliveryUpdate`](crate::DeliveryUpdate)) still applies to an
/// outbox message with this status: only while it is `Queued`. A message that left the queue
/// while its send was in flight (a resend cancelled it, another deliverer recorded it) keeps
/// its status, so a late `Sent` never revives a cancelled message.
pub fn delivery_record_applies(status: MessageStatus) -> bool {
    status == MessageStatus::Queued
}

/// Whether a [`DeliveryUpdate::Deferred`](crate::DeliveryUpdate::Deferred) applies to an
/// outbox message with this status and `next_attempt_at`: only a queued message that still
/// holds the deferring claim's lease (`leased_until`). Once the lease ran out another
/// deliverer may have claimed it again (a newer lease, one more attempt counted); undoing that
/// claim would let a third deliverer send the message while the second is sending it.
pub fn deferral_applies(
    status: MessageStatus,
    next_attempt_at: Timestamp,
    leased_until: Timestamp,
) -> bool {
    delivery_record_applies(status) && next_attempt_at == leased_until
}

/// An idempotency record as stored for (organization, key id, key).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredIdempotency {
    /// The fingerprint of the request that created it.
    pub fingerprint: [u8; 32],
    /// The stored response (JSON); `None` while in progress.
    pub response: Option<String>,
    /// When it was created (or taken over).
    pub created_at: Timestamp,
}

/// What `idempotency_begin` does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum IdempotencyDecision {
    /// Write nothing; report this state.
    Report(IdempotencyState),
    /// Store a fresh in-progress record (fingerprint of the request, no response,
    /// `created_at = now`), replacing any record of the key; report
    /// [`IdempotencyState::Started`].
    Start,
}

/// Decides `idempotency_begin` from the record of the key, if any. A record created strictly
/// before `expired_before` is dead and replaced; a completed live record is reported whatever
/// its age; an in-progress record created strictly before `stale_before` (a crashed request)
/// is taken over only by a request with the same fingerprint.
pub fn decide_idempotency(
    found: Option<StoredIdempotency>,
    begin: &IdempotencyBegin,
) -> IdempotencyDecision {
    match found {
        None => IdempotencyDecision::Start,
        Some(r) if idempotency_is_expired(r.created_at, begin.expired_before) => {
            IdempotencyDecision::Start
        }
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

/// Whether a finish by the run that began at `started_at` applies to the record found with
/// `created_at`: only the record that run's own begin stored. A begin that takes a stale record
/// over stores its own `now`, strictly later (a takeover needs `stale_after` ≥ 1 s to pass),
/// so the run it replaced can no longer write its response or delete the record.
pub fn idempotency_finish_applies(created_at: Timestamp, started_at: Timestamp) -> bool {
    created_at == started_at
}

/// Whether an idempotency record created at `created_at` is dead for a begin (or a purge)
/// with this `expired_before`: created strictly before it. The one definition both
/// [`decide_idempotency`] and the purge use, so a purged record is exactly one that no
/// begin would have answered from any more.
pub fn idempotency_is_expired(created_at: Timestamp, expired_before: Timestamp) -> bool {
    created_at < expired_before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ApiKeyId, OrganizationId};
    use uuid::Uuid;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);
    const ID: InvitationId = InvitationId(Uuid::from_u128(7));

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// Every `TargetAccess`.
    fn accesses() -> Vec<TargetAccess> {
        let mut v = Vec::new();
        for exists in [false, true] {
            for membership in [None, Some(Role::Admin), Some(Role::Viewer)] {
                for org_member in [false, true] {
                    v.push(TargetAccess {
                        exists,
                        membership,
                        org_member,
                    });
                }
            }
        }
        v
    }

    /// Expiries around `NOW`: past, exactly now, future.
    const EXPIRIES: [i64; 3] = [999_999, 1_000_000, 1_000_001];

    #[test]
    fn live_means_stored_pending_strictly_before_expiry() {
        for status in StoredStatus::ALL {
            for e in EXPIRIES {
                let live = is_live(status, ts(e), NOW);
                assert_eq!(
                    live,
                    status == StoredStatus::Pending && e > 1_000_000,
                    "{status:?} {e}"
                );
            }
        }
    }

    #[test]
    fn view_status_derives_expired_and_never_from_anything_else() {
        for status in StoredStatus::ALL {
            for e in EXPIRIES {
                let view = view_status(status, ts(e), NOW);
                let expected = match status {
                    StoredStatus::Pending if e > 1_000_000 => InvitationStatus::Pending,
                    StoredStatus::Pending | StoredStatus::Replaced => InvitationStatus::Expired,
                    StoredStatus::Accepted => InvitationStatus::Accepted,
                    StoredStatus::Revoked => InvitationStatus::Revoked,
                    StoredStatus::Superseded => InvitationStatus::Superseded,
                };
                assert_eq!(view, expected, "{status:?} {e}");
                assert_eq!(
                    view == InvitationStatus::Pending,
                    is_live(status, ts(e), NOW)
                );
            }
        }
    }

    #[test]
    fn stored_forms_agree_with_view_status() {
        let views = [
            InvitationStatus::Pending,
            InvitationStatus::Expired,
            InvitationStatus::Accepted,
            InvitationStatus::Revoked,
            InvitationStatus::Superseded,
        ];
        for status in StoredStatus::ALL {
            for e in EXPIRIES {
                for view in views {
                    let matches = stored_forms(view).iter().any(|(s, bound)| {
                        *s == status
                            && match bound {
                                ExpiryBound::Any => true,
                                ExpiryBound::After => e > 1_000_000,
                                ExpiryBound::AtOrBefore => e <= 1_000_000,
                            }
                    });
                    assert_eq!(
                        matches,
                        view_status(status, ts(e), NOW) == view,
                        "{status:?} {e} {view:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn stored_status_tags_round_trip_and_never_say_expired() {
        for status in StoredStatus::ALL {
            assert_eq!(StoredStatus::parse(status.as_str()), Some(status));
            assert_ne!(status.as_str(), "expired");
        }
        assert_eq!(StoredStatus::parse("expired"), None);
        assert!(StoredStatus::Pending.is_renewable());
        assert!(StoredStatus::ALL[1..].iter().all(|s| !s.is_renewable()));
    }

    #[test]
    fn add_every_fact_combination() {
        let mut seen = 0;
        for access in accesses() {
            for pending in [None, Some(ID)] {
                seen += 1;
                let got = decide_add(&AddFacts { access, pending });
                let want = if !access.exists {
                    AddDecision::Report(AddFact::TargetNotFound)
                } else if let Some(role) = access.membership {
                    AddDecision::Report(AddFact::AlreadyMember { role })
                } else if access.org_member {
                    AddDecision::Report(AddFact::OrgMember)
                } else {
                    AddDecision::Add { supersede: pending }
                };
                assert_eq!(got, want, "{access:?} {pending:?}");
            }
        }
        assert_eq!(seen, 24);
    }

    #[test]
    fn add_examples() {
        let open = TargetAccess {
            exists: true,
            membership: None,
            org_member: false,
        };
        // A missing target wins over everything, even an org member with a membership.
        let all = TargetAccess {
            exists: false,
            membership: Some(Role::Admin),
            org_member: true,
        };
        assert_eq!(
            decide_add(&AddFacts {
                access: all,
                pending: Some(ID)
            }),
            AddDecision::Report(AddFact::TargetNotFound)
        );
        // An explicit membership is reported before org access, with its (unchanged) role.
        let both = TargetAccess {
            exists: true,
            ..all
        };
        assert_eq!(
            decide_add(&AddFacts {
                access: both,
                pending: None
            }),
            AddDecision::Report(AddFact::AlreadyMember { role: Role::Admin })
        );
        assert_eq!(
            decide_add(&AddFacts {
                access: open,
                pending: Some(ID)
            }),
            AddDecision::Add {
                supersede: Some(ID)
            }
        );
    }

    #[test]
    fn invite_every_fact_combination() {
        let mut seen = 0;
        for access in accesses() {
            for pending in [None].into_iter().chain(EXPIRIES.map(|e| {
                Some(PendingInvitation {
                    id: ID,
                    expires_at: ts(e),
                })
            })) {
                seen += 1;
                let got = decide_invite(&InviteFacts {
                    access,
                    pending,
                    now: NOW,
                });
                let want = if !access.exists {
                    InviteDecision::Report(InviteFact::TargetNotFound)
                } else if let Some(role) = access.membership {
                    InviteDecision::Report(InviteFact::AlreadyMember { role })
                } else if access.org_member {
                    InviteDecision::Report(InviteFact::OrgMember)
                } else {
                    match pending {
                        None => InviteDecision::Invite { replace: None },
                        Some(p) if p.expires_at > NOW => {
                            InviteDecision::Report(InviteFact::AlreadyInvited { invitation: ID })
                        }
                        Some(_) => InviteDecision::Invite { replace: Some(ID) },
                    }
                };
                assert_eq!(got, want, "{access:?} {pending:?}");
            }
        }
        assert_eq!(seen, 48);
    }

    #[test]
    fn invite_an_invitation_expiring_exactly_now_is_replaced() {
        let open = TargetAccess {
            exists: true,
            membership: None,
            org_member: false,
        };
        let at_now = PendingInvitation {
            id: ID,
            expires_at: NOW,
        };
        assert_eq!(
            decide_invite(&InviteFacts {
                access: open,
                pending: Some(at_now),
                now: NOW
            }),
            InviteDecision::Invite { replace: Some(ID) }
        );
    }

    #[test]
    fn accept_every_fact_combination() {
        let mut seen = 0;
        for status in StoredStatus::ALL {
            for e in EXPIRIES {
                for access in accesses() {
                    seen += 1;
                    let facts = AcceptFacts {
                        status,
                        expires_at: ts(e),
                        now: NOW,
                        access,
                    };
                    let got = decide_accept(&facts);
                    let live = e > 1_000_000;
                    let want = match status {
                        StoredStatus::Revoked => AcceptDecision::Report(AcceptFact::Revoked),
                        StoredStatus::Superseded => AcceptDecision::Report(AcceptFact::Superseded),
                        StoredStatus::Accepted => {
                            AcceptDecision::Report(AcceptFact::AlreadyAccepted)
                        }
                        StoredStatus::Replaced => AcceptDecision::Report(AcceptFact::Expired),
                        StoredStatus::Pending if !live => {
                            AcceptDecision::Report(AcceptFact::Expired)
                        }
                        StoredStatus::Pending if !access.exists => {
                            AcceptDecision::Report(AcceptFact::TargetNotFound)
                        }
                        StoredStatus::Pending if access.membership.is_some() => {
                            AcceptDecision::Accept {
                                fact: AcceptFact::AlreadyMember,
                                create_membership: false,
                            }
                        }
                        StoredStatus::Pending if access.org_member => AcceptDecision::Accept {
                            fact: AcceptFact::OrgMember,
                            create_membership: false,
                        },
                        StoredStatus::Pending => AcceptDecision::Accept {
                            fact: AcceptFact::Added,
                            create_membership: true,
                        },
                    };
                    assert_eq!(got, want, "{facts:?}");
                    // Only a live invitation is ever accepted.
                    if matches!(got, AcceptDecision::Accept { .. }) {
                        assert!(is_live(status, ts(e), NOW));
                    }
                }
            }
        }
        assert_eq!(seen, 5 * 3 * 12);
    }

    #[test]
    fn a_delivery_record_applies_only_to_a_queued_message() {
        for status in MessageStatus::ALL {
            assert_eq!(
                delivery_record_applies(status),
                status == MessageStatus::Queued
            );
        }
    }

    #[test]
    fn revoke_every_status() {
        assert_eq!(
            decide_revoke(None),
            RevokeDecision::Report(RevokeFact::NotFound)
        );
        for status in StoredStatus::ALL {
            let want = match status {
                StoredStatus::Pending => RevokeDecision::Revoke,
                StoredStatus::Revoked => RevokeDecision::Report(RevokeFact::AlreadyRevoked),
                StoredStatus::Accepted => RevokeDecision::Report(RevokeFact::AlreadyAccepted),
                StoredStatus::Superseded | StoredStatus::Replaced => {
                    RevokeDecision::Report(RevokeFact::AlreadyDead)
                }
            };
            assert_eq!(decide_revoke(Some(status)), want, "{status:?}");
        }
    }

    #[test]
    fn rotate_every_fact_combination() {
        assert_eq!(
            decide_rotate(None),
            RotateDecision::Report(RotateFact::NotFound)
        );
        let limit = ts(500);
        for last in [499, 500, 501] {
            for renewable in [0, 1, 3] {
                let facts = RotateFacts {
                    last_sent_at: ts(last),
                    renewable,
                    not_sent_after: limit,
                };
                let want = if last > 500 {
                    RotateDecision::Report(RotateFact::TooSoon {
                        last_sent_at: ts(last),
                    })
                } else if renewable == 0 {
                    RotateDecision::Report(RotateFact::NothingToResend)
                } else {
                    RotateDecision::Rotate
                };
                assert_eq!(decide_rotate(Some(&facts)), want, "{facts:?}");
            }
        }
    }

    #[test]
    fn idempotency_every_fact_combination() {
        let begin = IdempotencyBegin {
            organization: OrganizationId(Uuid::from_u128(1)),
            key_id: ApiKeyId(Uuid::from_u128(2)),
            key: "k".into(),
            fingerprint: [1; 32],
            expired_before: ts(100),
            stale_before: ts(200),
            now: ts(300),
        };
        assert_eq!(decide_idempotency(None, &begin), IdempotencyDecision::Start);
        let mut seen = 0;
        for created in [99, 100, 199, 200] {
            for fingerprint in [[1; 32], [2; 32]] {
                for response in [None, Some("{}".to_owned())] {
                    seen += 1;
                    let record = StoredIdempotency {
                        fingerprint,
                        response: response.clone(),
                        created_at: ts(created),
                    };
                    let got = decide_idempotency(Some(record), &begin);
                    let want = if created < 100 {
                        IdempotencyDecision::Start
                    } else if let Some(response) = response {
                        IdempotencyDecision::Report(IdempotencyState::Completed {
                            fingerprint,
                            response,
                        })
                    } else if created < 200 && fingerprint == begin.fingerprint {
                        IdempotencyDecision::Start
                    } else {
                        IdempotencyDecision::Report(IdempotencyState::InProgress { fingerprint })
                    };
                    assert_eq!(got, want, "created {created} fp {:?}", fingerprint[0]);
                }
            }
        }
        assert_eq!(seen, 16);
    }
}
