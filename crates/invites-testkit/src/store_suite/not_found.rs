//! "Not found is a value": a missing or other-organization row is `None`, an empty list or a
//! `NotFound` fact, never an error, and looks exactly like a missing one. The one documented
//! exception, `record_delivery` of an unknown message, is an error that writes nothing.

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

/// Every method, asked about a row that does not exist or belongs to another organization,
/// answers with the documented value and changes nothing.
pub async fn not_found_is_a_value_and_other_organizations_look_missing(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    s.create_invitations(&invite("ann@example.com", 8, &[web(A)], T0))
        .await
        .expect("invite");
    let invitation = InvitationId(id(8000));
    let batch = BatchId(id(8));
    let unknown_invitation = InvitationId(id(0xdead));
    let unknown_batch = BatchId(id(0xdead));
    let before = s.snapshot().await.expect("snapshot");

    // Reads.
    assert_eq!(
        s.find_user(&email("nobody@example.com"))
            .await
            .expect("read"),
        None
    );
    assert_eq!(s.get_user(UserId(id(0xdead))).await.expect("read"), None);
    assert_eq!(
        s.find_batch_by_token(&token(0xdead)).await.expect("read"),
        None
    );
    assert_eq!(s.get_batch(ORG, unknown_batch).await.expect("read"), None);
    assert_eq!(s.get_batch(OTHER_ORG, batch).await.expect("read"), None);
    assert!(s.get_batch(ORG, batch).await.expect("read").is_some());
    assert_eq!(
        s.get_invitation(ORG, unknown_invitation)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        s.get_invitation(OTHER_ORG, invitation).await.expect("read"),
        None
    );
    assert!(
        s.batch_messages(unknown_batch)
            .await
            .expect("read")
            .is_empty()
    );
    let other_org_list = s
        .list_invitations(&InvitationQuery {
            organization: OTHER_ORG,
            filter: InvitationFilter::Email(email("ann@example.com")),
            after: None,
            limit: 10,
            now: T0,
            websites: None,
        })
        .await
        .expect("list");
    assert!(other_org_list.is_empty());

    // Writes.
    assert_eq!(
        s.revoke_invitation(&revoke(OTHER_ORG, invitation))
            .await
            .expect("revoke"),
        RevokeFact::NotFound
    );
    assert_eq!(
        s.revoke_invitation(&revoke(ORG, unknown_invitation))
            .await
            .expect("revoke"),
        RevokeFact::NotFound
    );
    let rotate = RotateBatch {
        organization: OTHER_ORG,
        batch_id: batch,
        new_token_hash: token(81),
        expires_at: at(20 * DAY),
        message_id: MessageId(id(8181)),
        accept_url: "https://app.example/accept/81".into(),
        message_due_at: at(DAY),
        not_sent_after: at(DAY),
        now: at(DAY),
        actor: None,
    };
    assert_eq!(
        s.rotate_batch(&rotate).await.expect("rotate"),
        RotateFact::NotFound
    );
    assert_eq!(
        s.rotate_batch(&RotateBatch {
            organization: ORG,
            batch_id: unknown_batch,
            ..rotate.clone()
        })
        .await
        .expect("rotate"),
        RotateFact::NotFound
    );
    let accept = AcceptBatch {
        batch_id: unknown_batch,
        token_hash: token(8),
        new_user: NewUser {
            id: UserId(id(0x77)),
            first_name: None,
            last_name: None,
        },
        now: T0,
    };
    assert!(s.accept_batch(&accept).await.expect("accept").is_none());
    let wrong_token = AcceptBatch {
        batch_id: batch,
        token_hash: token(9),
        ..accept
    };
    assert!(
        s.accept_batch(&wrong_token)
            .await
            .expect("accept")
            .is_none()
    );
    let foreign = s
        .add_members(&add("bo@example.com", 2, &[web(FOREIGN)], T0))
        .await
        .expect("add");
    assert_eq!(ok(&foreign.targets), vec![AddFact::TargetNotFound]);
    assert_eq!(foreign.user, None, "no user without a success");
    let mut foreign_invite = invite("bo@example.com", 9, &[web(FOREIGN)], T0);
    foreign_invite.organization = ORG;
    let out = s.create_invitations(&foreign_invite).await.expect("invite");
    assert_eq!(ok(&out.targets), vec![InviteFact::TargetNotFound]);
    s.idempotency_finish(ORG, ApiKeyId(id(1)), "never-begun", T0, Some("{}"), None)
        .await
        .expect("finish of a missing key is a no-op");

    // The documented exception: an unknown message id is an error.
    assert!(
        s.record_delivery(
            MessageId(id(0xdead)),
            DeliveryUpdate::Sent { attempts: 1 },
            T0
        )
        .await
        .is_err()
    );

    assert_eq!(
        s.snapshot().await.expect("snapshot"),
        before,
        "nothing changed"
    );
    // The finish above stored no record: the key starts fresh.
    let begin = IdempotencyBegin {
        organization: ORG,
        key_id: ApiKeyId(id(1)),
        key: "never-begun".into(),
        fingerprint: [1; 32],
        expired_before: at(-DAY),
        stale_before: at(-60_000),
        now: T0,
    };
    assert_eq!(
        s.idempotency_begin(&begin).await.expect("begin"),
        IdempotencyState::Started
    );
}
