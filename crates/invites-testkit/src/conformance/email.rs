//! Email mode (docs/contract.md §3, §5): one consolidated message, the outbox, tokens.

use super::support::*;
use crate::{Backend, Harness, MailerMode, World};
use invites_core::*;
use std::sync::Arc;

/// Email mode: one consolidated message per request with at least one invitation, listing
/// exactly the invited targets (names and roles, in request order, text and HTML) with one
/// accept link; the batch, invitations and outbox row are stored; no user is created.
pub async fn email_sends_one_consolidated_message(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 117).await;
    let ws = &w.websites;
    let p = w.global_key();
    run(&h, &p, sites(Direct, "existing@acme.test", &[ws[2]])).await;
    let t0 = h.clock.now();
    let r = run(
        &h,
        &p,
        with_role(
            sites(ByEmail, "Existing@acme.test", &[ws[4], ws[2], ws[1]]),
            Role::Admin,
        ),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(ws[4]), Invited),
            (web(ws[2]), AlreadyMember),
            (web(ws[1]), Invited),
        ],
    );
    assert_eq!(r.user_id, Some(w.existing_user));
    assert!(!r.user_created);
    let report = r.email.expect("email report");
    assert_eq!(report.status, EmailStatus::Sent);
    let batch = batch_of(&r);

    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1, "exactly one message");
    assert_eq!(h.mailer.attempts(), 1);
    let m = &sent[0];
    assert_eq!(m.to, email("existing@acme.test"));
    assert_eq!(m.batch_id, batch);
    assert_lists(
        m,
        &[("Site 4", Role::Admin), ("Site 1", Role::Admin)],
        &["Site 0", "Site 2", "Site 3", "Site 5"],
    );

    let s = snapshot(&backend).await;
    assert!(
        s.batches.iter().any(|b| b.0 == batch
            && b.1 == w.org
            && b.2 == email("existing@acme.test")
            && b.3 == t0)
    );
    let invs: Vec<&InvitationRecord> = s
        .invitations
        .iter()
        .filter(|i| i.batch_id == batch)
        .collect();
    assert_eq!(invs.len(), 2);
    for (i, target) in [(0, ws[4]), (2, ws[1])] {
        let inv = invitation(&s, invite_id(&r, i));
        assert_eq!(inv.batch_id, batch);
        assert_eq!(inv.target, web(target));
        assert_eq!(inv.organization, w.org);
        assert_eq!(inv.role, Role::Admin);
        assert_eq!(inv.email, email("existing@acme.test"));
        assert_eq!(inv.status, StoredStatus::Pending);
        assert_eq!(inv.created_at, t0);
        assert_eq!(inv.expires_at, t0.plus(TTL), "default time to live 7 days");
    }
    let out = outbox_of(&s, batch);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, m.id);
    assert_eq!(out[0].status, MessageStatus::Sent);
    assert_eq!(out[0].attempts, 1);
    assert_eq!(out[0].accept_url, None, "the body is cleared once sent");
    assert_eq!(out[0].recipient, email("existing@acme.test"));
}
/// No message (and no batch or outbox row) when nothing was invited: `email.status` is
/// `not_sent`.
pub async fn email_not_sent_when_nothing_invited(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 118).await;
    let p = w.global_key();
    run(
        &h,
        &p,
        sites(Direct, "existing@acme.test", &[w.websites[0]]),
    )
    .await;
    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &p,
        sites(
            ByEmail,
            "existing@acme.test",
            &[w.websites[0], missing_website()],
        ),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(w.websites[0]), AlreadyMember),
            (web(missing_website()), TargetNotFound),
        ],
    );
    let report = r.email.expect("report");
    assert_eq!(report.status, EmailStatus::NotSent);
    assert_eq!(report.batch_id, None);
    assert_eq!(h.mailer.attempts(), 0);
    let s = snapshot(&backend).await;
    assert_eq!(s, before);
    assert!(s.batches.is_empty() && s.outbox.is_empty());
}
/// Email mode never creates a user; `user_id` is the existing user, if any.
pub async fn email_mode_creates_no_user(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 119).await;
    let before = snapshot(&backend).await;
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    expect_codes(
        &r,
        &[(web(w.websites[0]), Invited), (web(w.websites[1]), Invited)],
    );
    assert_eq!(r.user_id, None);
    assert!(!r.user_created);
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@new.test"), 0);
    assert_eq!(s.users, before.users);
    assert!(s.memberships.is_empty());
}
/// The outbox row is stored (queued, with the accept link) before the mailer is called, and
/// marked sent with its body cleared afterwards.
pub async fn outbox_is_stored_before_delivery(backend: Arc<dyn Backend>) {
    let w = World::seed(&*backend).await;
    let (service, probe, _clock) = probe_service(&backend, 120, MailerMode::Ok);
    let r = service
        .bulk_invite(
            &w.global_key(),
            sites(ByEmail, "ann@new.test", &[w.websites[0]]),
        )
        .await
        .expect("processed");
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Sent));
    let attempts = probe.attempts();
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    let stored = a
        .stored
        .as_ref()
        .expect("the outbox row exists while the mailer runs");
    assert_eq!(stored.status, MessageStatus::Queued);
    assert_eq!(stored.batch_id, a.message.batch_id);
    assert_eq!(stored.recipient, email("ann@new.test"));
    let url = stored.accept_url.as_deref().expect("the link is stored");
    assert_eq!(token_in(url), token_in(&a.message.text));
    let s = snapshot(&backend).await;
    let row = s.outbox.iter().find(|o| o.id == a.message.id).expect("row");
    assert_eq!(row.status, MessageStatus::Sent);
    assert_eq!(row.accept_url, None);
    assert_eq!(row.attempts, 1);
}
/// With a failing mailer the response says `queued`; the row stays queued with its link
/// (and the error) until a later `deliver_due` sends it, then its body is cleared; the link
/// delivered is the one stored, and it works.
pub async fn email_queued_when_mailer_fails(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 121).await;
    h.mailer.set_mode(MailerMode::FailTransient);
    let r = run(
        &h,
        &w.global_key(),
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    expect_codes(
        &r,
        &[(web(w.websites[0]), Invited), (web(w.websites[1]), Invited)],
    );
    let report = r.email.expect("report");
    assert_eq!(report.status, EmailStatus::Queued);
    let batch = batch_of(&r);
    assert!(h.mailer.sent().is_empty());
    assert_eq!(h.mailer.attempts(), 1);
    let s = snapshot(&backend).await;
    let out = outbox_of(&s, batch);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, MessageStatus::Queued);
    assert_eq!(out[0].attempts, 1);
    assert!(out[0].last_error.is_some());
    let url = out[0]
        .accept_url
        .clone()
        .expect("queued rows keep the link");
    assert!(url.starts_with(Harness::ACCEPT_URL_BASE));
    assert_eq!(invitations_to(&s, "ann@new.test").len(), 2);

    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery().backoff(1));
    let report = h.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_lists(
        &sent[0],
        &[("Site 0", Role::Viewer), ("Site 1", Role::Viewer)],
        &["Site 2"],
    );
    assert_eq!(token_in(&sent[0].text), token_in(&url));
    let s = snapshot(&backend).await;
    let out = outbox_of(&s, batch);
    assert_eq!(out[0].status, MessageStatus::Sent);
    assert_eq!(out[0].accept_url, None);
    assert_eq!(out[0].attempts, 2);
    let accepted = h
        .service
        .accept(&token_in(&url), None)
        .await
        .expect("the link works");
    assert!(
        accepted
            .results
            .iter()
            .all(|r| r.result.code == OutcomeCode::Added)
    );
}
/// An expired invitation (at exactly 7 days) or a revoked one does not block a new one; a
/// live one does until the last millisecond. At most one pending row per (target, email).
pub async fn expired_or_revoked_invitation_does_not_block(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 122).await;
    let w0 = w.websites[0];
    let p = w.global_key();
    let r1 = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    let token1 = h.last_token();
    let first = invite_id(&r1, 0);

    h.clock.advance(TTL - MS);
    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    expect_codes(&r, &[(web(w0), AlreadyInvited)]);

    h.clock.advance(MS);
    let r2 = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    expect_codes(&r2, &[(web(w0), Invited)]);
    let second = invite_id(&r2, 0);
    assert_ne!(first, second);
    let s = snapshot(&backend).await;
    assert_eq!(
        invitation(&s, first).status_at(h.clock.now()),
        InvitationStatus::Expired
    );
    assert_eq!(stored_pending(&s, web(w0), "ann@new.test"), 1);
    assert_code(h.service.preview(&token1).await, ErrorCode::InvalidToken);

    h.service.revoke(&p, second).await.expect("revoke");
    let r3 = run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await;
    expect_codes(&r3, &[(web(w0), Invited)]);
    let third = invite_id(&r3, 0);
    let s = snapshot(&backend).await;
    assert_eq!(invitation(&s, second).status, StoredStatus::Revoked);
    assert_eq!(invitation(&s, third).status, StoredStatus::Pending);
    assert_eq!(stored_pending(&s, web(w0), "ann@new.test"), 1);
    assert_eq!(invitations_to(&s, "ann@new.test").len(), 3);
    assert_eq!(h.mailer.sent().len(), 3);
    let accepted = h.service.accept(&h.last_token(), None).await.expect("ok");
    assert_eq!(accepted.results.len(), 1);
    assert_eq!(accepted.results[0].invite_id, third);
    assert_eq!(accepted.results[0].result.code, OutcomeCode::Added);
}
/// Addresses are compared case-insensitively after trimming everywhere: lookup, uniqueness,
/// dedupe, listing and acceptance.
pub async fn email_is_case_insensitive(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 123).await;
    let (w0, w1) = (w.websites[0], w.websites[1]);
    let p = w.global_key();
    let r = run(&h, &p, sites(Direct, "Ann@X.test", &[w0])).await;
    expect_codes(&r, &[(web(w0), OutcomeCode::Added)]);
    let uid = r.user_id.expect("user");
    let r = run(&h, &p, sites(Direct, "ann@x.test", &[w0])).await;
    expect_codes(&r, &[(web(w0), AlreadyMember)]);
    assert_eq!(r.user_id, Some(uid));
    let r = run(&h, &p, sites(ByEmail, "  ANN@x.TEST ", &[w0, w1])).await;
    expect_codes(&r, &[(web(w0), AlreadyMember), (web(w1), Invited)]);
    assert_eq!(r.user_id, Some(uid));
    let r = run(&h, &p, sites(ByEmail, "ann@X.TEST", &[w1])).await;
    expect_codes(&r, &[(web(w1), AlreadyInvited)]);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to.as_str(), "ann@x.test");

    let page = h
        .service
        .list_invitations(&p, InvitationFilter::Email(email("ANN@x.Test")), 10, None)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].email.as_str(), "ann@x.test");

    let accepted = h
        .service
        .accept(&h.last_token(), Some(uid))
        .await
        .expect("accept");
    assert_eq!(accepted.user_id, uid);
    assert!(!accepted.user_created);
    let s = snapshot(&backend).await;
    assert_eq!(users_with(&s, "ann@x.test"), 1);
    let u = user(&s, "ann@x.test").expect("user");
    assert_eq!(u.email.as_str(), "ann@x.test");
    assert!(u.email_verified);
    assert_eq!(memberships_of(&s, uid).len(), 2);
}
/// Only token hashes are stored: a token never appears in a snapshot (except inside a queued
/// outbox row's link before delivery), in a response, a preview or a listing.
pub async fn tokens_are_never_stored_or_listed(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 124).await;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    let token = h.last_token();
    assert!(token.len() >= 22);
    let assert_absent = |what: &str, text: &str, token: &str| {
        assert!(!text.contains(token), "the token leaks into {what}: {text}");
    };
    assert_absent("the response", &to_json!(&r), &token);
    assert_absent("the snapshot", &to_json!(&snapshot(&backend).await), &token);
    let preview = h.service.preview(&token).await.expect("preview");
    assert_absent("the preview", &to_json!(&preview), &token);
    let lists = [
        InvitationFilter::Email(email("ann@new.test")),
        InvitationFilter::Target(web(w.websites[0])),
        InvitationFilter::Status(InvitationStatus::Pending),
    ];
    for f in &lists {
        let page = h
            .service
            .list_invitations(&p, f.clone(), 100, None)
            .await
            .expect("list");
        assert!(!page.items.is_empty());
        assert_absent("a listing", &to_json!(&page), &token);
    }

    h.mailer.set_mode(MailerMode::FailTransient);
    let r = run(&h, &p, sites(ByEmail, "bob@new.test", &[w.websites[2]])).await;
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    assert_absent("the response", &to_json!(&r), "token=");
    let s = snapshot(&backend).await;
    let row = outbox_of(&s, batch_of(&r))[0].clone();
    let queued = token_in(row.accept_url.as_deref().expect("queued link"));
    let mut scrubbed = s.clone();
    for m in &mut scrubbed.outbox {
        m.accept_url = None;
    }
    assert!(
        to_json!(&s).contains(&queued),
        "the queued row holds the link"
    );
    assert_absent(
        "the snapshot outside the queued link",
        &to_json!(&scrubbed),
        &queued,
    );
    for f in &lists {
        let page = h
            .service
            .list_invitations(&p, f.clone(), 100, None)
            .await
            .expect("list");
        assert_absent("a listing", &to_json!(&page), &queued);
    }

    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery().max_backoff());
    h.service.deliver_due().await.expect("deliver");
    assert_eq!(h.last_token(), queued);
    assert_absent(
        "the snapshot after delivery",
        &to_json!(&snapshot(&backend).await),
        &queued,
    );
    h.service.accept(&token, None).await.expect("accept");
    assert_absent(
        "the snapshot after accepting",
        &to_json!(&snapshot(&backend).await),
        &token,
    );
}
