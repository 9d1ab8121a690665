//! Preview and accept (docs/contract.md §6).

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Preview is read-only (state unchanged, repeatable) and shows the live invitations in
/// request order with names, roles and expiry; afterwards the token still accepts.
pub async fn preview_is_read_only(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 130).await;
    let ws = &w.websites;
    let r = run(
        &h,
        &w.global_key(),
        with_role(
            sites(ByEmail, "ann@new.test", &[ws[2], ws[0], ws[1]]),
            Role::Admin,
        ),
    )
    .await;
    let token = h.last_token();
    let t0 = h.clock.now();
    h.clock.advance(secs(5));
    let before = snapshot(&backend).await;
    let p1 = h.service.preview(&token).await.expect("preview");
    let p2 = h
        .service
        .preview(&format!(" {token} "))
        .await
        .expect("again");
    assert_eq!(p1, p2);
    assert_eq!(snapshot(&backend).await, before, "preview writes nothing");
    assert_eq!(p1.batch_id, batch_of(&r));
    assert_eq!(p1.email, email("ann@new.test"));
    let shown: Vec<(TargetId, &str, Role, Timestamp, InvitationId)> = p1
        .invitations
        .iter()
        .map(|i| {
            (
                i.target,
                i.target_name.as_str(),
                i.role,
                i.expires_at,
                i.invite_id,
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                web(ws[2]),
                "Site 2",
                Role::Admin,
                t0.plus(TTL),
                invite_id(&r, 0)
            ),
            (
                web(ws[0]),
                "Site 0",
                Role::Admin,
                t0.plus(TTL),
                invite_id(&r, 1)
            ),
            (
                web(ws[1]),
                "Site 1",
                Role::Admin,
                t0.plus(TTL),
                invite_id(&r, 2)
            ),
        ]
    );
    assert_code(h.service.preview("garbage").await, ErrorCode::InvalidToken);
    let accepted = h.service.accept(&token, None).await.expect("accept");
    assert_eq!(accepted.results.len(), 3);
    assert_code(h.service.preview(&token).await, ErrorCode::InvalidToken);
}
/// Accepting anonymously creates the user, verified, with the invitation's names, and turns
/// each live invitation into a membership with its role; revoked ones are reported `revoked`.
pub async fn accept_creates_verified_user_and_memberships(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 131).await;
    let ws = &w.websites;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        with_names(
            with_role(
                sites(ByEmail, "ann@new.test", &[ws[0], ws[1], ws[2]]),
                Role::Admin,
            ),
            "Ann",
            "Lee",
        ),
    )
    .await;
    let token = h.last_token();
    h.service
        .revoke(&p, invite_id(&r, 2))
        .await
        .expect("revoke");
    h.clock.advance(Duration::from_secs(3600));
    let a = h.service.accept(&token, None).await.expect("accept");
    assert!(a.user_created);
    let uid = a.user_id;
    assert_eq!(a.results.len(), 3);
    let by_invite: BTreeMap<InvitationId, &AcceptResult> =
        a.results.iter().map(|x| (x.invite_id, x)).collect();
    for (i, target, code) in [
        (0, ws[0], OutcomeCode::Added),
        (1, ws[1], OutcomeCode::Added),
        (2, ws[2], OutcomeCode::Revoked),
    ] {
        let res = &by_invite[&invite_id(&r, i)].result;
        expect_result(res, web(target), code);
        if code == OutcomeCode::Added {
            assert_eq!(res.user_id, Some(uid));
        }
    }
    let s = snapshot(&backend).await;
    let u = user(&s, "ann@new.test").expect("created");
    assert_eq!(u.id, uid);
    assert!(u.email_verified, "a token proves the mailbox");
    assert_eq!(u.first_name.as_ref().map(PersonName::as_str), Some("Ann"));
    assert_eq!(u.last_name.as_ref().map(PersonName::as_str), Some("Lee"));
    for t in [ws[0], ws[1]] {
        let m = membership(&s, web(t), uid).expect("membership");
        assert_eq!(m.role, Role::Admin);
        assert_eq!(m.created_at, h.clock.now());
    }
    assert!(membership(&s, web(ws[2]), uid).is_none());
    assert_eq!(
        invitation(&s, invite_id(&r, 0)).status,
        StoredStatus::Accepted
    );
    assert_eq!(
        invitation(&s, invite_id(&r, 1)).status,
        StoredStatus::Accepted
    );
    assert_eq!(
        invitation(&s, invite_id(&r, 2)).status,
        StoredStatus::Revoked
    );
}
/// Accept reports each invitation on its own: `added`, `already_member` (the user became a
/// member meanwhile), `revoked`, and `expired` (an invitation replaced after expiry is not
/// renewed by a resend).
pub async fn accept_reports_per_invitation_codes(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 132).await;
    let ws = &w.websites;
    let p = w.global_key();
    let to = "existing@acme.test";
    let a = run(&h, &p, sites(ByEmail, to, &[ws[0], ws[1], ws[2], ws[3]])).await;
    let batch = batch_of(&a);
    h.clock.advance(TTL + DAY);
    let b = run(&h, &p, sites(ByEmail, to, &[ws[3]])).await;
    expect_codes(&b, &[(web(ws[3]), Invited)]);
    let d = run(&h, &p, sites(Direct, to, &[ws[1]])).await;
    expect_codes(&d, &[(web(ws[1]), OutcomeCode::Added)]);
    h.service.resend(&p, batch).await.expect("resend");
    let token = h.last_token();
    h.service
        .revoke(&p, invite_id(&a, 2))
        .await
        .expect("revoke");

    let acc = h.service.accept(&token, None).await.expect("accept");
    assert_eq!(acc.user_id, w.existing_user);
    assert!(!acc.user_created);
    assert_eq!(acc.results.len(), 4);
    let by_invite: BTreeMap<InvitationId, &AcceptResult> =
        acc.results.iter().map(|x| (x.invite_id, x)).collect();
    for (i, code) in [
        (0, OutcomeCode::Added),
        (1, AlreadyMember),
        (2, OutcomeCode::Revoked),
        (3, OutcomeCode::Expired),
    ] {
        expect_result(&by_invite[&invite_id(&a, i)].result, web(ws[i]), code);
    }
    let s = snapshot(&backend).await;
    assert!(user(&s, to).expect("user").email_verified);
    assert_eq!(
        invitation(&s, invite_id(&a, 0)).status,
        StoredStatus::Accepted
    );
    assert_eq!(
        invitation(&s, invite_id(&a, 3)).status_at(h.clock.now()),
        InvitationStatus::Expired
    );
    assert_eq!(
        invitation(&s, invite_id(&b, 0)).status,
        StoredStatus::Pending,
        "the newer invitation is not touched"
    );
    assert!(membership(&s, web(ws[3]), w.existing_user).is_none());
    assert!(membership(&s, web(ws[2]), w.existing_user).is_none());
}
/// Accept reports `has_org_access` for a user who became an organization member after being
/// invited; no explicit membership is created, and the invitations are used up.
pub async fn accept_reports_org_access(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 133).await;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        sites(
            ByEmail,
            "existing@acme.test",
            &[w.websites[0], w.websites[1]],
        ),
    )
    .await;
    let token = h.last_token();
    backend
        .add_org_member(w.org, w.existing_user, OrgRole::Viewer)
        .await
        .expect("org member");
    let acc = h.service.accept(&token, None).await.expect("accept");
    for (i, res) in acc.results.iter().enumerate() {
        assert_eq!(res.invite_id, invite_id(&r, i));
        expect_result(&res.result, web(w.websites[i]), HasOrgAccess);
    }
    let s = snapshot(&backend).await;
    assert!(memberships_of(&s, w.existing_user).is_empty());
    assert!(user(&s, "existing@acme.test").expect("user").email_verified);
    for i in 0..2 {
        assert_eq!(
            invitation(&s, invite_id(&r, i)).status,
            StoredStatus::Accepted
        );
    }
    assert_code(
        h.service.accept(&token, None).await,
        ErrorCode::InvalidToken,
    );
}
/// Accepting verifies an existing unverified user without changing its names, anonymously
/// or signed in as that user.
pub async fn accept_verifies_existing_user(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 134).await;
    let p = w.global_key();
    let before = snapshot(&backend).await;
    let old = user(&before, "existing@acme.test").expect("seeded").clone();
    assert!(!old.email_verified);
    run(
        &h,
        &p,
        with_names(
            sites(ByEmail, "existing@acme.test", &[w.websites[0]]),
            "Other",
            "Name",
        ),
    )
    .await;
    let acc = h
        .service
        .accept(&h.last_token(), None)
        .await
        .expect("accept");
    assert_eq!(acc.user_id, w.existing_user);
    assert!(!acc.user_created);
    expect_result(
        &acc.results[0].result,
        web(w.websites[0]),
        OutcomeCode::Added,
    );
    let s = snapshot(&backend).await;
    let u = user(&s, "existing@acme.test").expect("user");
    assert!(u.email_verified);
    assert_eq!(u.first_name, old.first_name);
    assert_eq!(u.last_name, old.last_name);
    assert_eq!(s.users.len(), before.users.len());

    run(
        &h,
        &p,
        sites(ByEmail, "existing@acme.test", &[w.websites[1]]),
    )
    .await;
    let acc = h
        .service
        .accept(&h.last_token(), Some(w.existing_user))
        .await
        .expect("signed in as the invited user");
    expect_result(
        &acc.results[0].result,
        web(w.websites[1]),
        OutcomeCode::Added,
    );
}
/// Accepting while signed in as a user with another email is `email_mismatch` (an unknown
/// signed-in user is `not_found`), and changes nothing; the token still works afterwards.
pub async fn accept_with_other_signed_in_email_is_mismatch(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 135).await;
    run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0]]),
    )
    .await;
    let token = h.last_token();
    let before = snapshot(&backend).await;
    let e = assert_code(
        h.service.accept(&token, Some(w.existing_user)).await,
        ErrorCode::EmailMismatch,
    );
    assert!(matches!(e, InviteError::EmailMismatch));
    assert_code(
        h.service.accept(&token, Some(w.org_admin)).await,
        ErrorCode::EmailMismatch,
    );
    assert_code(
        h.service
            .accept(&token, Some(UserId(Uuid::from_u128(0xbad))))
            .await,
        ErrorCode::NotFound,
    );
    assert_eq!(snapshot(&backend).await, before);
    let acc = h.service.accept(&token, None).await.expect("still valid");
    assert!(acc.user_created);
}
/// A token works once: a second accept, a preview after it, and unknown or altered tokens all
/// get the same `invalid_token`, and change nothing.
pub async fn token_is_single_use(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 136).await;
    run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    let token = h.last_token();
    let before = snapshot(&backend).await;
    for bad in [
        String::new(),
        "0".repeat(64),
        "not-a-token".to_owned(),
        token.to_uppercase(),
        token[..token.len() - 1].to_owned(),
    ] {
        let e = assert_code(h.service.accept(&bad, None).await, ErrorCode::InvalidToken);
        assert!(matches!(e, InviteError::InvalidToken));
        assert_code(h.service.preview(&bad).await, ErrorCode::InvalidToken);
    }
    assert_eq!(snapshot(&backend).await, before);
    h.service.accept(&token, None).await.expect("first accept");
    let after = snapshot(&backend).await;
    assert_code(
        h.service.accept(&token, None).await,
        ErrorCode::InvalidToken,
    );
    assert_code(h.service.preview(&token).await, ErrorCode::InvalidToken);
    assert_eq!(snapshot(&backend).await, after);
}
/// A batch whose invitations expired (7 days, exactly) cannot be previewed or accepted; a
/// millisecond before it can.
pub async fn expired_batch_token_is_invalid(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 137).await;
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0]]),
    )
    .await;
    let token = h.last_token();
    h.clock.advance(TTL - MS);
    h.service.preview(&token).await.expect("still live");
    h.clock.advance(MS);
    let before = snapshot(&backend).await;
    assert_code(h.service.preview(&token).await, ErrorCode::InvalidToken);
    assert_code(
        h.service.accept(&token, None).await,
        ErrorCode::InvalidToken,
    );
    let s = snapshot(&backend).await;
    assert_eq!(s, before);
    assert_eq!(users_with(&s, "ann@new.test"), 0);
    assert_eq!(
        invitation(&s, invite_id(&r, 0)).status_at(h.clock.now()),
        InvitationStatus::Expired
    );
}
