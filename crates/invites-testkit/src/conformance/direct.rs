//! Direct mode (docs/contract.md §3): user creation and superseded invitations.

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Direct mode creates no user when no target succeeds (missing, foreign or forbidden
/// targets only).
pub async fn direct_creates_no_user_without_success(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 114).await;
    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &w.global_key(),
        sites(
            Direct,
            "ann@new.test",
            &[missing_website(), w.other_website],
        ),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(missing_website()), TargetNotFound),
            (web(w.other_website), TargetNotFound),
        ],
    );
    assert_eq!(r.user_id, None);
    assert!(!r.user_created);
    let r = run(
        &h,
        &w.global_key(),
        groups(Direct, "ann@new.test", &[w.other_group]),
    )
    .await;
    assert_eq!(r.user_id, None);
    let r = run(
        &h,
        &w.scoped_key(&[w.websites[0]]),
        sites(Direct, "ann@new.test", &[w.websites[1]]),
    )
    .await;
    expect_codes(&r, &[(web(w.websites[1]), OutcomeCode::Forbidden)]);
    assert_eq!(r.user_id, None);
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@new.test"), 0);
    assert_eq!(s, before);
}
/// Direct mode creates the user once, however many targets succeed.
pub async fn direct_creates_user_once(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 115).await;
    let p = w.global_key();
    let r = run(&h, &p, sites(Direct, "ann@new.test", &w.websites)).await;
    let expected: Vec<_> = w
        .websites
        .iter()
        .map(|id| (web(*id), OutcomeCode::Added))
        .collect();
    expect_codes(&r, &expected);
    assert!(r.user_created);
    let uid = r.user_id.expect("user");
    let r = run(&h, &p, groups(Direct, "Ann@New.test", &w.groups)).await;
    assert!(!r.user_created);
    assert_eq!(r.user_id, Some(uid));
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@new.test"), 1);
    assert_eq!(memberships_of(&s, uid).len(), 8);
}
/// A direct add supersedes the live invitation for the same target and email: its status
/// becomes `superseded`, a batch with no live invitation left can no longer be previewed or
/// accepted, a batch with others left still can. Other addresses' invitations are untouched.
pub async fn direct_add_supersedes_live_invitation(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 116).await;
    let ws = &w.websites;
    let p = w.global_key();
    let a = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[0]])).await;
    let token_a = h.last_token();
    let b = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[1], ws[2]])).await;
    let token_b = h.last_token();
    let bob = run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[0]])).await;
    h.clock.advance(secs(30));

    let r = run(&h, &p, sites(Direct, "ann@new.test", &[ws[0], ws[1]])).await;
    expect_codes(
        &r,
        &[
            (web(ws[0]), OutcomeCode::Added),
            (web(ws[1]), OutcomeCode::Added),
        ],
    );
    let uid = r.user_id.expect("user");
    let s = snapshot(&backend).await;
    assert_eq!(
        invitation(&s, invite_id(&a, 0)).status,
        StoredStatus::Superseded
    );
    assert_eq!(
        invitation(&s, invite_id(&b, 0)).status,
        StoredStatus::Superseded
    );
    assert_eq!(
        invitation(&s, invite_id(&b, 1)).status,
        StoredStatus::Pending
    );
    assert_eq!(
        invitation(&s, invite_id(&bob, 0)).status,
        StoredStatus::Pending
    );
    assert_eq!(stored_pending(&s, web(ws[0]), "ann@new.test"), 0);

    let before = snapshot(&backend).await;
    assert_code(h.service.preview(&token_a).await, ErrorCode::InvalidToken);
    assert_code(
        h.service.accept(&token_a, None).await,
        ErrorCode::InvalidToken,
    );
    assert_eq!(snapshot(&backend).await, before);

    let preview = h.service.preview(&token_b).await.expect("b is still live");
    let targets: Vec<TargetId> = preview.invitations.iter().map(|i| i.target).collect();
    assert_eq!(targets, vec![web(ws[2])]);
    let accepted = h.service.accept(&token_b, None).await.expect("accept");
    assert_eq!(accepted.user_id, uid);
    assert!(!accepted.user_created);
    let codes: BTreeMap<TargetId, OutcomeCode> = accepted
        .results
        .iter()
        .map(|r| (r.result.target(), r.result.code))
        .collect();
    assert_eq!(codes[&web(ws[1])], AlreadyMember);
    assert_eq!(codes[&web(ws[2])], OutcomeCode::Added);
    assert_eq!(
        h.mailer.attempts(),
        3,
        "only the email-mode requests sent mail"
    );
}
