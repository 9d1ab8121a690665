//! Accept, revoke and resend ([`LifecycleStore`](invites_core::LifecycleStore)).

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

/// Accepting a batch creates a verified user and reports each invitation.
pub async fn accepting_a_batch_creates_a_verified_user_and_reports_each_invitation(
    backend: Arc<dyn Backend>,
) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    let cmd = invite(
        "bo@example.com",
        8,
        &[web(A), web(B), web(X), TargetId::Group(G)],
        T0,
    );
    s.create_invitations(&cmd).await.unwrap();
    let [ia, ib, ix, ig] = [0, 1, 2, 3].map(|i| cmd.targets[i].1);
    assert_eq!(
        s.revoke_invitation(&revoke(ORG, ib)).await.unwrap(),
        RevokeFact::Revoked
    );
    s.delete_website(X, T0).await.unwrap();
    assert!(
        s.get_invitation(ORG, ix).await.unwrap().is_none(),
        "deleted with its website"
    );

    let accept = |hash, now| AcceptBatch {
        batch_id: BatchId(id(8)),
        token_hash: hash,
        new_user: NewUser {
            id: UserId(id(77)),
            first_name: name("New"),
            last_name: None,
        },
        now,
    };
    assert!(
        s.accept_batch(&accept(token(999), at(1)))
            .await
            .unwrap()
            .is_none(),
        "wrong token"
    );
    assert!(s.snapshot().await.unwrap().users.is_empty());

    let out = s
        .accept_batch(&accept(token(8), at(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.user,
        UserRef {
            id: UserId(id(77)),
            created: true
        }
    );
    let facts: HashMapById = out
        .invitations
        .iter()
        .map(|(r, f)| (r.id, (r.status, *f.as_ref().unwrap())))
        .collect();
    assert_eq!(facts[&ia], (StoredStatus::Accepted, AcceptFact::Added));
    assert_eq!(facts[&ib], (StoredStatus::Revoked, AcceptFact::Revoked));
    assert_eq!(facts[&ig], (StoredStatus::Accepted, AcceptFact::Added));
    assert_eq!(facts.len(), 3);
    let user = s.get_user(UserId(id(77))).await.unwrap().unwrap();
    assert!(user.email_verified);
    assert_eq!(user.first_name, name("New"));
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.memberships.len(), 2);
    assert!(
        snap.memberships
            .iter()
            .all(|m| m.role == Role::Viewer && m.created_at == at(1))
    );

    // Accepting again: every invitation is reported as it is.
    let out = s
        .accept_batch(&accept(token(8), at(2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.user,
        UserRef {
            id: UserId(id(77)),
            created: false
        }
    );
    assert!(
        out.invitations
            .iter()
            .all(|(_, f)| matches!(f, Ok(AcceptFact::AlreadyAccepted | AcceptFact::Revoked)))
    );
    assert_eq!(
        s.revoke_invitation(&revoke(ORG, ia)).await.unwrap(),
        RevokeFact::AlreadyAccepted
    );
    assert_eq!(
        s.revoke_invitation(&revoke(ORG, ib)).await.unwrap(),
        RevokeFact::AlreadyRevoked
    );
    assert_eq!(
        s.revoke_invitation(&revoke(OTHER_ORG, ia)).await.unwrap(),
        RevokeFact::NotFound
    );
}

type HashMapById = std::collections::HashMap<InvitationId, (StoredStatus, AcceptFact)>;

/// Accepting after expiry and as member or org member.
pub async fn accepting_after_expiry_and_as_member_or_org_member(backend: Arc<dyn Backend>) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    let cmd = invite("bo@example.com", 8, &[web(A), web(B), web(X)], T0);
    s.create_invitations(&cmd).await.unwrap();
    // Bo already exists, is a member of A, and an org member.
    s.add_members(&add("bo@example.com", 5, &[web(A)], at(1)))
        .await
        .unwrap();
    let accept = AcceptBatch {
        batch_id: BatchId(id(8)),
        token_hash: token(8),
        new_user: NewUser {
            id: UserId(id(77)),
            first_name: None,
            last_name: None,
        },
        now: at(2),
    };
    let mut state = s.snapshot().await.unwrap();
    // The direct add superseded A's invitation.
    assert_eq!(
        state
            .invitations
            .iter()
            .filter(|i| i.status == StoredStatus::Superseded)
            .count(),
        1
    );
    s.add_org_member(ORG, UserId(id(5)), OrgRole::Viewer)
        .await
        .unwrap();
    let out = s.accept_batch(&accept).await.unwrap().unwrap();
    assert_eq!(
        out.user,
        UserRef {
            id: UserId(id(5)),
            created: false
        }
    );
    let by_target: std::collections::HashMap<TargetId, AcceptFact> = out
        .invitations
        .iter()
        .map(|(r, f)| (r.target, *f.as_ref().unwrap()))
        .collect();
    assert_eq!(by_target[&web(A)], AcceptFact::Superseded);
    assert_eq!(by_target[&web(B)], AcceptFact::OrgMember);
    assert_eq!(by_target[&web(X)], AcceptFact::OrgMember);
    state = s.snapshot().await.unwrap();
    assert!(state.users[0].email_verified);

    // Expiry: stored pending past expires_at is Expired and left unchanged.
    let cmd = invite("cy@example.com", 9, &[web(A)], T0);
    s.create_invitations(&cmd).await.unwrap();
    let accept = AcceptBatch {
        batch_id: BatchId(id(9)),
        token_hash: token(9),
        now: at(7 * DAY),
        ..accept
    };
    let out = s.accept_batch(&accept).await.unwrap().unwrap();
    assert_eq!(out.invitations[0].1.as_ref().unwrap(), &AcceptFact::Expired);
    assert_eq!(out.invitations[0].0.status, StoredStatus::Pending);
}

/// Rotating a batch renews pending invitations and replaces the queued message.
pub async fn rotating_a_batch_renews_pending_invitations_and_replaces_the_queued_message(
    backend: Arc<dyn Backend>,
) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    let cmd = invite("bo@example.com", 8, &[web(A), web(B)], T0);
    s.create_invitations(&cmd).await.unwrap();
    s.revoke_invitation(&revoke(ORG, cmd.targets[1].1))
        .await
        .unwrap();
    let rotate = |not_sent_after, now| RotateBatch {
        organization: ORG,
        batch_id: BatchId(id(8)),
        new_token_hash: token(80),
        expires_at: at(20 * DAY),
        message_id: MessageId(id(8080)),
        accept_url: "https://app.example/accept/80".into(),
        message_due_at: now,
        not_sent_after,
        now,
        actor: None,
    };
    assert_eq!(
        s.rotate_batch(&rotate(at(-1), at(1))).await.unwrap(),
        RotateFact::TooSoon { last_sent_at: T0 }
    );
    assert_eq!(
        s.rotate_batch(&RotateBatch {
            organization: OTHER_ORG,
            ..rotate(T0, at(1))
        })
        .await
        .unwrap(),
        RotateFact::NotFound
    );
    // Expired by the clock, still renewed.
    let now = at(8 * DAY);
    assert_eq!(
        s.rotate_batch(&rotate(now, now)).await.unwrap(),
        RotateFact::Rotated { renewed: 1 }
    );
    assert!(
        s.find_batch_by_token(&token(8)).await.unwrap().is_none(),
        "old link dead"
    );
    let batch = s.find_batch_by_token(&token(80)).await.unwrap().unwrap();
    assert_eq!(batch.last_sent_at, now);
    assert_eq!(
        batch.invitations[0]
            .expires_at
            .max(batch.invitations[1].expires_at),
        at(20 * DAY)
    );
    let messages = s.batch_messages(batch.id).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0].status, messages[0].accept_url.as_deref()),
        (MessageStatus::Cancelled, None)
    );
    assert_eq!(messages[1].status, MessageStatus::Queued);
    assert_eq!(messages[1].id, MessageId(id(8080)));

    s.revoke_invitation(&revoke(ORG, cmd.targets[0].1))
        .await
        .unwrap();
    let later = at(9 * DAY);
    assert_eq!(
        s.rotate_batch(&rotate(later, later)).await.unwrap(),
        RotateFact::NothingToResend
    );
}
