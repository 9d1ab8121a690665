//! Revoke, resend and list (docs/contract.md §6).

use super::support::*;
use crate::{Backend, MailerMode};
use invites_core::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

/// Revoke: a scoped key can only revoke invitations to its websites (`forbidden`), revoking
/// twice is harmless, accepted invitations cannot be revoked (`already_accepted`), another
/// organization's key gets `not_found`, and superseded ones report no change.
pub async fn revoke_rules(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 138).await;
    let ws = &w.websites;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[ws[0], ws[1], ws[2]]),
    )
    .await;
    let token = h.last_token();
    let scoped = w.scoped_key(&[ws[0]]);
    let before = snapshot(&backend).await;
    let e = assert_code(
        h.service.revoke(&scoped, invite_id(&r, 1)).await,
        ErrorCode::Forbidden,
    );
    assert!(matches!(e, InviteError::Forbidden { .. }));
    let other = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x999)));
    assert_code(
        h.service.revoke(&other, invite_id(&r, 1)).await,
        ErrorCode::NotFound,
    );
    assert_code(
        h.service
            .revoke(&p, InvitationId(Uuid::from_u128(0xabc)))
            .await,
        ErrorCode::NotFound,
    );
    assert_eq!(snapshot(&backend).await, before);

    let first = h
        .service
        .revoke(&scoped, invite_id(&r, 0))
        .await
        .expect("revoke");
    assert_eq!(first.invite_id, invite_id(&r, 0));
    assert!(first.changed);
    let s1 = snapshot(&backend).await;
    assert_eq!(
        invitation(&s1, invite_id(&r, 0)).status,
        StoredStatus::Revoked
    );
    let again = h.service.revoke(&p, invite_id(&r, 0)).await.expect("again");
    assert!(!again.changed);
    assert_eq!(snapshot(&backend).await, s1);

    h.service.accept(&token, None).await.expect("accept");
    let s2 = snapshot(&backend).await;
    let e = assert_code(
        h.service.revoke(&p, invite_id(&r, 1)).await,
        ErrorCode::AlreadyAccepted,
    );
    assert!(matches!(e, InviteError::Conflict { .. }));
    assert_eq!(snapshot(&backend).await, s2);
    assert_eq!(
        invitation(&s2, invite_id(&r, 1)).status,
        StoredStatus::Accepted
    );

    let b = run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[3]])).await;
    run(&h, &p, sites(Direct, "bob@new.test", &[ws[3]])).await;
    let rev = h
        .service
        .revoke(&p, invite_id(&b, 0))
        .await
        .expect("revoke");
    assert!(!rev.changed);
    assert_eq!(
        invitation(&snapshot(&backend).await, invite_id(&b, 0)).status,
        StoredStatus::Superseded
    );
}
/// Resend rotates the token (the old one dies, the new one works), renews the expiry of the
/// pending invitations only, sends a new message listing exactly those, and is limited to once
/// a minute per batch (`resend_too_soon` with the seconds to wait, changing nothing).
pub async fn resend_rotates_token_and_renews(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 139).await;
    let ws = &w.websites;
    let p = w.global_key();
    let t0 = h.clock.now();
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[ws[0], ws[1], ws[2]]),
    )
    .await;
    let batch = batch_of(&r);
    let old_token = h.last_token();
    h.service
        .revoke(&p, invite_id(&r, 2))
        .await
        .expect("revoke");

    h.clock.advance(secs(30));
    let before = snapshot(&backend).await;
    match h.service.resend(&p, batch).await {
        Err(InviteError::ResendTooSoon { retry_after_secs }) => assert_eq!(retry_after_secs, 30),
        other => panic!("expected resend_too_soon, got {other:?}"),
    }
    assert_eq!(snapshot(&backend).await, before);
    h.service
        .preview(&old_token)
        .await
        .expect("the old token still works");

    h.clock.advance(secs(30));
    let t1 = h.clock.now();
    let resent = h
        .service
        .resend(&p, batch)
        .await
        .expect("resend after 60 s");
    assert_eq!(resent.batch_id, batch);
    assert_eq!(resent.renewed, 2);
    assert_eq!(resent.email.status, EmailStatus::Sent);
    assert_eq!(resent.email.batch_id, Some(batch));
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].batch_id, batch);
    assert_ne!(sent[1].id, sent[0].id, "a new message");
    assert_lists(
        &sent[1],
        &[("Site 0", Role::Viewer), ("Site 1", Role::Viewer)],
        &["Site 2"],
    );
    let new_token = h.last_token();
    assert_ne!(new_token, old_token);
    assert_code(h.service.preview(&old_token).await, ErrorCode::InvalidToken);
    assert_code(
        h.service.accept(&old_token, None).await,
        ErrorCode::InvalidToken,
    );

    let s = snapshot(&backend).await;
    assert_eq!(invitation(&s, invite_id(&r, 0)).expires_at, t1.plus(TTL));
    assert_eq!(invitation(&s, invite_id(&r, 1)).expires_at, t1.plus(TTL));
    assert_eq!(invitation(&s, invite_id(&r, 2)).expires_at, t0.plus(TTL));
    assert_eq!(
        invitation(&s, invite_id(&r, 2)).status,
        StoredStatus::Revoked
    );
    let out = outbox_of(&s, batch);
    assert_eq!(out.len(), 2);
    assert!(
        out.iter()
            .all(|m| m.status == MessageStatus::Sent && m.accept_url.is_none())
    );

    match h.service.resend(&p, batch).await {
        Err(InviteError::ResendTooSoon { retry_after_secs }) => assert_eq!(retry_after_secs, 60),
        other => panic!("expected resend_too_soon, got {other:?}"),
    }
    h.clock.advance(secs(59));
    assert_code(h.service.resend(&p, batch).await, ErrorCode::ResendTooSoon);

    let acc = h.service.accept(&new_token, None).await.expect("new token");
    let codes: Vec<OutcomeCode> = acc.results.iter().map(|x| x.result.code).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == OutcomeCode::Added).count(),
        2
    );
    assert!(codes.contains(&OutcomeCode::Revoked));
}
/// Resend renews expired invitations too: the dead link comes back to life under a new token
/// with a fresh expiry.
pub async fn resend_renews_expired_invitations(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 140).await;
    let p = w.global_key();
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[w.websites[0], w.websites[1]]),
    )
    .await;
    let old = h.last_token();
    h.clock.advance(TTL + DAY);
    assert_code(h.service.preview(&old).await, ErrorCode::InvalidToken);
    let resent = h.service.resend(&p, batch_of(&r)).await.expect("resend");
    assert_eq!(resent.renewed, 2);
    let token = h.last_token();
    let preview = h.service.preview(&token).await.expect("renewed");
    assert_eq!(preview.invitations.len(), 2);
    for i in &preview.invitations {
        assert_eq!(i.expires_at, h.clock.now().plus(TTL));
    }
    assert_lists(
        &h.mailer.sent()[1],
        &[("Site 0", Role::Viewer), ("Site 1", Role::Viewer)],
        &[],
    );
    let acc = h.service.accept(&token, None).await.expect("accept");
    assert!(
        acc.results
            .iter()
            .all(|x| x.result.code == OutcomeCode::Added)
    );
}
/// Resend cancels the batch's queued message (clearing its link) and queues a new one;
/// delivery then sends only the new message, with the new token.
pub async fn resend_cancels_queued_message(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 141).await;
    let p = w.global_key();
    h.mailer.set_mode(MailerMode::FailTransient);
    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[w.websites[0]])).await;
    let batch = batch_of(&r);
    let s = snapshot(&backend).await;
    let first = outbox_of(&s, batch)[0].clone();
    let old_token = token_in(first.accept_url.as_deref().expect("queued link"));

    h.clock.advance(secs(60));
    let resent = h.service.resend(&p, batch).await.expect("resend");
    assert_eq!(resent.email.status, EmailStatus::Queued);
    let s = snapshot(&backend).await;
    let out = outbox_of(&s, batch);
    assert_eq!(out.len(), 2);
    let old_row = out.iter().find(|m| m.id == first.id).expect("old row");
    assert_eq!(old_row.status, MessageStatus::Cancelled);
    assert_eq!(old_row.accept_url, None);
    let new_row = out.iter().find(|m| m.id != first.id).expect("new row");
    assert_eq!(new_row.status, MessageStatus::Queued);
    let new_token = token_in(new_row.accept_url.as_deref().expect("queued link"));
    assert_ne!(new_token, old_token);

    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery().max_backoff());
    let report = h.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, new_row.id);
    assert_eq!(h.last_token(), new_token);
    assert_code(
        h.service.accept(&old_token, None).await,
        ErrorCode::InvalidToken,
    );
    h.service.accept(&new_token, None).await.expect("new token");
}
/// Resend needs a key reaching every target of the batch (`forbidden`), the caller's
/// organization (`not_found`), and something left to resend (`nothing_to_resend`).
pub async fn resend_permissions_and_nothing_to_resend(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 142).await;
    let ws = &w.websites;
    let p = w.global_key();
    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[ws[0], ws[1]])).await;
    let batch = batch_of(&r);
    h.clock.advance(secs(60));
    let before = snapshot(&backend).await;
    assert_code(
        h.service.resend(&w.scoped_key(&[ws[0]]), batch).await,
        ErrorCode::Forbidden,
    );
    let other = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x998)));
    assert_code(h.service.resend(&other, batch).await, ErrorCode::NotFound);
    assert_code(
        h.service.resend(&p, BatchId(Uuid::from_u128(0xbbb))).await,
        ErrorCode::NotFound,
    );
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 1);

    h.service
        .resend(&w.scoped_key(&[ws[0], ws[1]]), batch)
        .await
        .expect("a key reaching every target may resend");
    h.service
        .accept(&h.last_token(), None)
        .await
        .expect("accept");
    h.clock.advance(secs(60));
    let s = snapshot(&backend).await;
    assert_code(
        h.service.resend(&p, batch).await,
        ErrorCode::NothingToResend,
    );
    assert_eq!(snapshot(&backend).await, s);
}
/// Listing by target, email and status: oldest first, paginated with a cursor, `expired`
/// derived from the clock, scoped keys see only their websites, other organizations see
/// nothing, bad queries are `invalid_query`.
pub async fn list_invitations_filters_and_pages(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 143).await;
    let ws = &w.websites;
    let p = w.global_key();
    let ann = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[ws[0], ws[1], ws[2]]),
    )
    .await;
    h.clock.advance(secs(1));
    let bob = run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[0], ws[3]])).await;
    h.clock.advance(secs(1));
    let carol = run(&h, &p, sites(ByEmail, "carol@new.test", &[ws[4]])).await;
    h.service
        .revoke(&p, invite_id(&carol, 0))
        .await
        .expect("revoke");

    let list = |f: InvitationFilter, limit: usize, cursor: Option<String>| {
        let service = h.service.clone();
        let p = p.clone();
        async move {
            service
                .list_invitations(&p, f, limit, cursor.as_deref())
                .await
                .expect("list")
        }
    };
    let ids = |page: &InvitationPage| page.items.iter().map(|i| i.id).collect::<Vec<_>>();

    let by_target = list(InvitationFilter::Target(web(ws[0])), 100, None).await;
    assert_eq!(
        ids(&by_target),
        vec![invite_id(&ann, 0), invite_id(&bob, 0)]
    );
    assert_eq!(by_target.next_cursor, None);
    let v = &by_target.items[0];
    assert_eq!(v.target, web(ws[0]));
    assert_eq!(v.target_name, "Site 0");
    assert_eq!(v.email, email("ann@new.test"));
    assert_eq!(v.role, Role::Viewer);
    assert_eq!(v.batch_id, batch_of(&ann));
    assert_eq!(v.status, InvitationStatus::Pending);

    let by_email = list(InvitationFilter::Email(email("ann@new.test")), 100, None).await;
    let got: BTreeSet<InvitationId> = ids(&by_email).into_iter().collect();
    assert_eq!(
        got,
        (0..3).map(|i| invite_id(&ann, i)).collect::<BTreeSet<_>>()
    );
    let revoked = list(
        InvitationFilter::Status(InvitationStatus::Revoked),
        100,
        None,
    )
    .await;
    assert_eq!(ids(&revoked), vec![invite_id(&carol, 0)]);
    assert_eq!(revoked.items[0].status, InvitationStatus::Revoked);

    let all_pending = list(
        InvitationFilter::Status(InvitationStatus::Pending),
        500,
        None,
    )
    .await;
    assert_eq!(all_pending.items.len(), 5);
    let mut paged = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = list(
            InvitationFilter::Status(InvitationStatus::Pending),
            2,
            cursor,
        )
        .await;
        pages += 1;
        assert!(page.items.len() <= 2);
        paged.extend(ids(&page));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination ends");
    }
    assert_eq!(
        paged,
        ids(&all_pending),
        "pages concatenate to the full list"
    );
    let keys: Vec<(Timestamp, InvitationId)> = all_pending
        .items
        .iter()
        .map(|i| (i.created_at, i.id))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "oldest first");

    // Ann's invitations expire exactly now; Bob's one second later.
    h.clock.advance(TTL - secs(2));
    let expired = list(
        InvitationFilter::Status(InvitationStatus::Expired),
        100,
        None,
    )
    .await;
    let got: BTreeSet<InvitationId> = ids(&expired).into_iter().collect();
    assert_eq!(
        got,
        (0..3).map(|i| invite_id(&ann, i)).collect::<BTreeSet<_>>()
    );
    assert!(
        expired
            .items
            .iter()
            .all(|i| i.status == InvitationStatus::Expired)
    );
    let pending = list(
        InvitationFilter::Status(InvitationStatus::Pending),
        100,
        None,
    )
    .await;
    let got: BTreeSet<InvitationId> = ids(&pending).into_iter().collect();
    assert_eq!(
        got,
        (0..2).map(|i| invite_id(&bob, i)).collect::<BTreeSet<_>>()
    );
    let by_email = list(InvitationFilter::Email(email("ann@new.test")), 100, None).await;
    assert!(
        by_email
            .items
            .iter()
            .all(|i| i.status == InvitationStatus::Expired)
    );

    let scoped = w.scoped_key(&[ws[0]]);
    assert_code(
        h.service
            .list_invitations(&scoped, InvitationFilter::Target(web(ws[1])), 10, None)
            .await,
        ErrorCode::Forbidden,
    );
    let mine = h
        .service
        .list_invitations(
            &scoped,
            InvitationFilter::Email(email("ann@new.test")),
            10,
            None,
        )
        .await
        .expect("list");
    assert_eq!(ids(&mine), vec![invite_id(&ann, 0)]);
    let other = Principal::global(w.other_org, ApiKeyId(Uuid::from_u128(0x997)));
    let theirs = h
        .service
        .list_invitations(
            &other,
            InvitationFilter::Email(email("ann@new.test")),
            10,
            None,
        )
        .await
        .expect("list");
    assert!(theirs.items.is_empty());
    for (limit, cursor) in [(0, None), (501, None), (10, Some("bogus"))] {
        assert_code(
            h.service
                .list_invitations(
                    &p,
                    InvitationFilter::Email(email("ann@new.test")),
                    limit,
                    cursor,
                )
                .await,
            ErrorCode::InvalidQuery,
        );
    }
    let json = serde_json::to_string(&by_email).expect("json");
    for m in h.mailer.sent() {
        assert!(!json.contains(&token_in(&m.text)), "no token in listings");
    }
}

/// A website-scoped key pages through exactly the invitations it reaches: the first page of
/// size 1 holds its own invitation (not an empty page), and no cursor is made from an
/// invitation it cannot see.
pub async fn scoped_listing_pages_only_what_the_key_reaches(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 172).await;
    let p = w.global_key();
    let (w0, w1) = (w.websites[0], w.websites[1]);
    let hidden = invite_id(&run(&h, &p, sites(ByEmail, "ann@new.test", &[w0])).await, 0);
    h.clock.advance(MS);
    let seen = invite_id(&run(&h, &p, sites(ByEmail, "bob@new.test", &[w1])).await, 0);
    let scoped = w.scoped_key(&[w1]);
    let page = h
        .service
        .list_invitations(
            &scoped,
            InvitationFilter::Status(InvitationStatus::Pending),
            1,
            None,
        )
        .await
        .expect("list");
    let ids: Vec<InvitationId> = page.items.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![seen]);
    if let Some(cursor) = &page.next_cursor {
        assert!(
            !cursor.contains(&hidden.to_string()),
            "a cursor from a hidden row"
        );
        let rest = h
            .service
            .list_invitations(
                &scoped,
                InvitationFilter::Status(InvitationStatus::Pending),
                1,
                Some(cursor),
            )
            .await
            .expect("list");
        assert!(rest.items.is_empty() && rest.next_cursor.is_none());
    }
}
