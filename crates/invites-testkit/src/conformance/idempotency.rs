//! Idempotency (docs/contract.md §7).

use super::support::*;
use crate::{Backend, Harness, World, as_store};
use invites_core::*;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The same key and request return the stored response without changing anything or sending
/// a second email; the same key with another request is `idempotency_conflict`; another API
/// key's idempotency keys are independent.
pub async fn idempotent_repeat_returns_stored_response(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 144).await;
    let p = w.global_key();
    let req = sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]);
    let r1 = h
        .service
        .bulk_invite_idempotent(&p, "order-1", req.clone())
        .await
        .expect("first");
    expect_codes(
        &r1,
        &[(web(w.websites[0]), Invited), (web(w.websites[1]), Invited)],
    );
    let s1 = snapshot(&backend).await;
    assert_eq!(h.mailer.attempts(), 1);

    h.clock.advance(Duration::from_secs(3600));
    let r2 = h
        .service
        .bulk_invite_idempotent(&p, "order-1", req.clone())
        .await
        .expect("repeat");
    assert_eq!(r2, r1, "the stored response");
    assert_eq!(snapshot(&backend).await, s1);
    assert_eq!(h.mailer.attempts(), 1, "no second email");

    let other_req = sites(ByEmail, "bob@new.test", &[w.websites[0]]);
    let e = assert_code(
        h.service
            .bulk_invite_idempotent(&p, "order-1", other_req)
            .await,
        ErrorCode::IdempotencyConflict,
    );
    assert!(matches!(e, InviteError::Conflict { .. }));
    assert_eq!(snapshot(&backend).await, s1);

    let other_key = Principal::global(w.org, ApiKeyId(Uuid::from_u128(0x996)));
    let r3 = h
        .service
        .bulk_invite_idempotent(&other_key, "order-1", req)
        .await
        .expect("another key");
    expect_codes(
        &r3,
        &[
            (web(w.websites[0]), AlreadyInvited),
            (web(w.websites[1]), AlreadyInvited),
        ],
    );

    let long = "k".repeat(256);
    for bad in ["", "has space", long.as_str()] {
        assert_code(
            h.service
                .bulk_invite_idempotent(&p, bad, sites(Direct, "carol@new.test", &[w.websites[2]]))
                .await,
            ErrorCode::InvalidIdempotencyKey,
        );
    }
    assert_eq!(users_with(&snapshot(&backend).await, "carol@new.test"), 0);
}
/// An idempotency key is remembered for 24 hours: within them the stored response comes back
/// (even though the state moved on), after them the request executes again.
pub async fn idempotency_key_expires(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 145).await;
    let p = w.global_key();
    let req = sites(Direct, "ann@new.test", &[w.websites[0]]);
    let r1 = h
        .service
        .bulk_invite_idempotent(&p, "order-2", req.clone())
        .await
        .expect("first");
    expect_codes(&r1, &[(web(w.websites[0]), OutcomeCode::Added)]);
    assert!(r1.user_created);
    h.clock.advance(DAY - secs(1));
    let r2 = h
        .service
        .bulk_invite_idempotent(&p, "order-2", req.clone())
        .await
        .expect("repeat");
    assert_eq!(r2, r1);
    h.clock.advance(secs(2));
    let r3 = h
        .service
        .bulk_invite_idempotent(&p, "order-2", req)
        .await
        .expect("after the ttl");
    expect_codes(&r3, &[(web(w.websites[0]), AlreadyMember)]);
    assert!(!r3.user_created);
    assert_eq!(r3.user_id, r1.user_id);
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@new.test"), 1);
}
/// A request that fails validation is not recorded under its idempotency key: the key can be
/// used for a valid request right after.
pub async fn idempotency_ignores_invalid_requests(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 146).await;
    let p = w.global_key();
    assert_code(
        h.service
            .bulk_invite_idempotent(
                &p,
                "order-3",
                sites(Direct, "not-an-address", &[w.websites[0]]),
            )
            .await,
        ErrorCode::InvalidEmail,
    );
    assert_code(
        h.service
            .bulk_invite_idempotent(
                &w.scoped_key(&[w.websites[0]]),
                "order-3",
                groups(Direct, "ann@new.test", &[w.groups[0]]),
            )
            .await,
        ErrorCode::GlobalKeyRequired,
    );
    let r = h
        .service
        .bulk_invite_idempotent(
            &p,
            "order-3",
            sites(Direct, "ann@new.test", &[w.websites[0]]),
        )
        .await
        .expect("the key is free");
    expect_codes(&r, &[(web(w.websites[0]), OutcomeCode::Added)]);
}
/// Two requests with one idempotency key while the first is still running: the second gets
/// `idempotency_in_progress` (a different request gets `idempotency_conflict`) and changes
/// nothing; once the first finishes, repeats get its stored response. One execution, one mail.
pub async fn concurrent_idempotent_requests_execute_once(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let clock = crate::ManualClock::standard();
    let gate = GateMailer::new();
    let service = InviteService::new(
        as_store(&backend),
        gate.clone(),
        Harness::config(&clock, 150),
    );
    let p = world.global_key();
    let req = sites(
        ByEmail,
        "ann@new.test",
        &[world.websites[0], world.websites[1]],
    );

    let first = {
        let (service, p, req) = (service.clone(), p.clone(), req.clone());
        tokio::spawn(async move { service.bulk_invite_idempotent(&p, "order-7", req).await })
    };
    gate.entered.notified().await; // the first request is inside its delivery
    let during = snapshot(&backend).await;

    assert_code(
        service
            .bulk_invite_idempotent(&p, "order-7", req.clone())
            .await,
        ErrorCode::IdempotencyInProgress,
    );
    assert_code(
        service
            .bulk_invite_idempotent(
                &p,
                "order-7",
                sites(Direct, "ann@new.test", &[world.websites[2]]),
            )
            .await,
        ErrorCode::IdempotencyConflict,
    );
    assert_eq!(
        snapshot(&backend).await,
        during,
        "the refused repeats changed nothing"
    );

    gate.release.add_permits(1);
    let r1 = first.await.expect("task").expect("first request");
    expect_codes(
        &r1,
        &[
            (web(world.websites[0]), Invited),
            (web(world.websites[1]), Invited),
        ],
    );
    let after = snapshot(&backend).await;
    let r2 = service
        .bulk_invite_idempotent(&p, "order-7", req)
        .await
        .expect("replay");
    assert_eq!(r2, r1, "the stored response");
    assert_eq!(snapshot(&backend).await, after);
    assert_eq!(gate.calls(), 1, "one execution, one email");
    assert_eq!(after.invitations.len(), 2);
}
/// A request that died while holding its idempotency key (its future dropped mid-delivery)
/// blocks repeats with `idempotency_in_progress` until the key is stale (60 s); then a repeat
/// executes again — safely, since every per-target operation is idempotent in effect — and its
/// response is stored. The dead request's message stays in the outbox for `deliver_due`.
pub async fn stale_in_progress_key_is_taken_over(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let clock = crate::ManualClock::standard();
    let gate = GateMailer::new();
    let service = InviteService::new(
        as_store(&backend),
        gate.clone(),
        Harness::config(&clock, 151),
    );
    let p = world.global_key();
    let req = sites(ByEmail, "ann@new.test", &[world.websites[0]]);

    let dying = {
        let (service, p, req) = (service.clone(), p.clone(), req.clone());
        tokio::spawn(async move { service.bulk_invite_idempotent(&p, "order-8", req).await })
    };
    gate.entered.notified().await;
    dying.abort(); // the process "crashes" inside the delivery
    assert!(dying.await.expect_err("aborted").is_cancelled());

    assert_code(
        service
            .bulk_invite_idempotent(&p, "order-8", req.clone())
            .await,
        ErrorCode::IdempotencyInProgress,
    );
    let stale = service.config().idempotency_stale_after();
    clock.advance(stale - Duration::from_secs(1));
    assert_code(
        service
            .bulk_invite_idempotent(&p, "order-8", req.clone())
            .await,
        ErrorCode::IdempotencyInProgress,
    );

    clock.advance(Duration::from_secs(2));
    let retried = service
        .bulk_invite_idempotent(&p, "order-8", req.clone())
        .await
        .expect("taken over");
    expect_codes(&retried, &[(web(world.websites[0]), AlreadyInvited)]);
    let replay = service
        .bulk_invite_idempotent(&p, "order-8", req)
        .await
        .expect("replay");
    assert_eq!(replay, retried);

    // The dead request's invitation and queued message survived; delivery picks it up.
    let s = snapshot(&backend).await;
    assert_eq!(s.invitations.len(), 1);
    assert_eq!(s.outbox.len(), 1);
    assert_eq!(s.outbox[0].status, MessageStatus::Queued);
    gate.release.add_permits(1);
    let report = service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(
        snapshot(&backend).await.outbox[0].status,
        MessageStatus::Sent
    );
}
