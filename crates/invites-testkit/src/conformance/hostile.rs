//! Hostile input (issue 9): tenancy of `user_id`, addresses, names, directory names, token
//! shapes, redaction.

use super::support::*;
use crate::{Backend, Fault, Harness, MailerMode, World};
use invites_core::*;
use std::sync::Arc;
use uuid::Uuid;

/// docs/contract.md §4 tenancy: a response names a user only when a target succeeded or an outcome shows
/// the user already belongs to a target or to the organization. Before, `user_id` came from a
/// global lookup, so any key learned whether an address had an account anywhere.
pub async fn user_id_names_only_related_users(backend: Arc<dyn Backend>) {
    let (world, h) = setup(&backend, 901).await;
    let w = world.websites.clone();
    let p = world.global_key();
    let existing = "existing@acme.test";

    // Another org's website looks missing: nothing relates the user to the caller.
    for method in [Direct, ByEmail] {
        let r = run(&h, &p, sites(method, existing, &[world.other_website])).await;
        expect_codes(&r, &[(web(world.other_website), TargetNotFound)]);
        assert_eq!(r.user_id, None, "{method:?}");
        let r = run(&h, &p, groups(method, existing, &[world.other_group])).await;
        assert_eq!(r.user_id, None, "{method:?}");
    }
    // A scoped key whose every target is forbidden.
    let scoped = world.scoped_key(&[w[0]]);
    for method in [Direct, ByEmail] {
        let r = run(&h, &scoped, sites(method, existing, &[w[1], w[2]])).await;
        assert!(r.results.iter().all(|x| x.code == OutcomeCode::Forbidden));
        assert_eq!(r.user_id, None, "{method:?}");
    }
    // `already_invited` alone does not relate the user either.
    let r = run(&h, &p, sites(ByEmail, existing, &[w[3]])).await;
    expect_codes(&r, &[(web(w[3]), Invited)]);
    assert_eq!(
        r.user_id,
        Some(world.existing_user),
        "invited: a target succeeded"
    );
    let r = run(&h, &p, sites(ByEmail, existing, &[w[3]])).await;
    expect_codes(&r, &[(web(w[3]), AlreadyInvited)]);
    assert_eq!(r.user_id, None);

    // A whole-batch store failure: every target failed, nobody is named.
    let (_faulty, fh) = faulty_harness(
        &backend,
        Fault {
            fail_batches: true,
            ..Fault::default()
        },
        902,
    );
    for method in [Direct, ByEmail] {
        let r = run(&fh, &p, sites(method, existing, &[w[4]])).await;
        expect_codes(&r, &[(web(w[4]), InternalError)]);
        assert_eq!(r.user_id, None, "{method:?}");
    }

    // Related users are named: added, already a member, an organization member.
    let r = run(
        &h,
        &p,
        sites(Direct, existing, &[w[0], world.other_website]),
    )
    .await;
    expect_codes(
        &r,
        &[
            (web(w[0]), OutcomeCode::Added),
            (web(world.other_website), TargetNotFound),
        ],
    );
    assert_eq!(r.user_id, Some(world.existing_user));
    for method in [Direct, ByEmail] {
        let r = run(&h, &p, sites(method, existing, &[w[0]])).await;
        expect_codes(&r, &[(web(w[0]), AlreadyMember)]);
        assert_eq!(r.user_id, Some(world.existing_user), "{method:?}");
        let r = run(&h, &p, sites(method, "admin@acme.test", &[w[5]])).await;
        expect_codes(&r, &[(web(w[5]), HasOrgAccess)]);
        assert_eq!(r.user_id, Some(world.org_admin), "{method:?}");
    }
    // The other organization's key learns nothing about this org's admin.
    let theirs = Principal::global(world.other_org, ApiKeyId(Uuid::from_u128(0x901)));
    let r = run(&h, &theirs, sites(ByEmail, "admin@acme.test", &[w[0]])).await;
    expect_codes(&r, &[(web(w[0]), TargetNotFound)]);
    assert_eq!(r.user_id, None);
}

/// One mailbox is one user whatever its spelling (case, NFC/NFD, U-label/A-label), every
/// stored address reads back equal, and an address that grows when lowercased is refused
/// before anything is written. Before, `İ`-addresses were stored in a form that no longer
/// parsed, and spellings of one IDN domain made different users.
pub async fn address_spellings_are_one_user_and_read_back(backend: Arc<dyn Backend>) {
    let (world, h) = setup(&backend, 903).await;
    let w = world.websites.clone();
    let p = world.global_key();
    let before = snapshot(&backend).await;

    let crafted = format!("{}@example.com", "İ".repeat(32));
    for method in [Direct, ByEmail] {
        let err = h
            .service
            .bulk_invite(&p, sites(method, &crafted, &[w[0]]))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            (ErrorCode::InvalidEmail, Some("email"))
        );
    }
    for refused in [
        "a@localhost",
        "\"a\"@acme.test",
        "a@[10.0.0.1]",
        "a\u{200b}b@acme.test",
        "a\u{202e}b@acme.test",
    ] {
        let err = h
            .service
            .bulk_invite(&p, sites(Direct, refused, &[w[0]]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidEmail, "{refused:?}");
    }
    assert_eq!(snapshot(&backend).await, before);

    let spellings = [
        "İlknur.Jose\u{301}@Bücher.Example",
        "i\u{307}lknur.jos\u{e9}@bu\u{308}cher.example",
        "İLKNUR.JOSÉ@XN--BCHER-KVA.EXAMPLE",
        " i\u{307}lknur.josé@xn--bcher-kva.example ",
    ];
    let r = run(&h, &p, sites(Direct, spellings[0], &[w[0]])).await;
    expect_codes(&r, &[(web(w[0]), OutcomeCode::Added)]);
    let uid = r.user_id.expect("the user added");
    for (i, spelling) in spellings.iter().enumerate() {
        let r = run(&h, &p, sites(Direct, spelling, &[w[0]])).await;
        expect_codes(&r, &[(web(w[0]), AlreadyMember)]);
        assert_eq!(r.user_id, Some(uid), "spelling {i}");
        let found = h
            .store
            .find_user(&email(spelling))
            .await
            .expect("find_user")
            .expect("one user for every spelling");
        assert_eq!(found.id, uid);
    }
    let s = snapshot(&backend).await;
    let stored = &s.users.iter().find(|u| u.id == uid).expect("stored").email;
    assert_eq!(
        stored.as_str(),
        "i\u{307}lknur.jos\u{e9}@xn--bcher-kva.example"
    );
    assert_eq!(Email::parse(stored.as_str()).as_ref(), Ok(stored));

    // Email mode with such an address: stored, delivered, and every read path still works.
    let r = run(&h, &p, sites(ByEmail, "Ünal@Bücher.Example", &[w[1], w[2]])).await;
    assert_eq!(r.summary.succeeded, 2);
    let batch = batch_of(&r);
    let token = h.last_token();
    assert_eq!(
        h.mailer.sent().last().map(|m| m.to.as_str()),
        Some("ünal@xn--bcher-kva.example")
    );
    let preview = h.service.preview(&token).await.expect("preview");
    assert_eq!(preview.email.as_str(), "ünal@xn--bcher-kva.example");
    let view = h.service.batch(&p, batch).await.expect("batch view");
    assert_eq!(view.email, preview.email);
    let listed = h
        .service
        .list_invitations(
            &p,
            InvitationFilter::Email(email("ÜNAL@bücher.example")),
            10,
            None,
        )
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    assert_eq!(
        h.service.deliver_due().await.expect("deliver").store_errors,
        0
    );
    let accepted = h.service.accept(&token, None).await.expect("accept");
    assert!(
        accepted
            .results
            .iter()
            .all(|x| x.result.code == OutcomeCode::Added)
    );
    let s = snapshot(&backend).await;
    for u in &s.users {
        assert_eq!(Email::parse(u.email.as_str()).as_ref(), Ok(&u.email));
    }
}

/// Names with line or paragraph separators, bidirectional controls or invisible format
/// characters are `invalid_name` and change nothing (before, they passed and reached the
/// email); website and group names from the directory are untrusted too and cannot forge lines
/// or markup in the consolidated email.
pub async fn hostile_names_are_refused_or_neutralised(backend: Arc<dyn Backend>) {
    let (world, h) = setup(&backend, 904).await;
    let p = world.global_key();
    let before = snapshot(&backend).await;
    for bad in [
        "Ann\u{2028}Bcc: x",
        "Ann\u{2029}Day",
        "\u{202e}nnA",
        "Ann\u{2066}x\u{2069}",
        "An\u{200b}n",
    ] {
        for method in [Direct, ByEmail] {
            let err = h
                .service
                .bulk_invite(
                    &p,
                    with_names(
                        sites(method, "ann@new.test", &[world.websites[0]]),
                        bad,
                        "Day",
                    ),
                )
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                (ErrorCode::InvalidName, Some("first_name")),
                "{bad:?}"
            );
            let err = h
                .service
                .bulk_invite(
                    &p,
                    with_names(
                        sites(method, "ann@new.test", &[world.websites[0]]),
                        "Ann",
                        bad,
                    ),
                )
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                (ErrorCode::InvalidName, Some("last_name")),
                "{bad:?}"
            );
        }
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);

    // Hostile names in the host's directory.
    let forged_site = WebsiteId(Uuid::from_u128(0x904_0001));
    backend
        .create_website(&Website {
            id: forged_site,
            organization: world.org,
            name: "Shop\r\n\r\nAccept all of them with this link:\r\nhttps://evil.test/\u{2028}x\u{202e}<b>bold</b>".into(),
            url: "https://shop.acme.test".into(),
        })
        .await
        .expect("website");
    let forged_group = GroupId(Uuid::from_u128(0x904_0002));
    backend
        .create_group(&Group {
            id: forged_group,
            organization: world.org,
            name: "<script>alert(1)</script>\n<a href=\"https://evil.test\">".into(),
        })
        .await
        .expect("group");
    backend
        .add_website_to_group(forged_group, world.websites[0])
        .await
        .expect("link");
    let r = run(
        &h,
        &p,
        sites(ByEmail, "ann@new.test", &[forged_site, world.websites[1]]),
    )
    .await;
    assert_eq!(r.summary.succeeded, 2);
    let r2 = run(&h, &p, groups(ByEmail, "bob@new.test", &[forged_group])).await;
    assert_eq!(r2.summary.succeeded, 1);
    let sent = h.mailer.sent();
    assert_eq!(sent.len(), 2);
    for m in &sent {
        let links: Vec<&str> = m
            .text
            .lines()
            .filter(|l| l.trim_start().starts_with("http"))
            .collect();
        assert_eq!(links.len(), 1, "one link line: {links:?}");
        assert!(links[0].starts_with(Harness::ACCEPT_URL_BASE), "{links:?}");
        for bad in ['\r', '\u{2028}', '\u{202e}'] {
            assert!(!m.text.contains(bad) && !m.html.contains(bad) && !m.subject.contains(bad));
        }
        assert!(!m.html.contains("<script") && !m.html.contains("<b>"));
        assert_eq!(m.html.matches("<a ").count(), 1);
    }
    let listing = sent[0]
        .text
        .lines()
        .find(|l| l.contains("Shop"))
        .expect("listed");
    assert!(listing.starts_with("  - Shop "), "{listing}");
}

/// A token of the wrong shape is `invalid_token` before it is hashed or the store is asked
/// (the store here fails every read, so reaching it would answer `storage_unavailable`).
/// Before, a megabyte of token was hashed and looked up.
pub async fn malformed_tokens_never_reach_the_store(backend: Arc<dyn Backend>) {
    let world = World::seed(&*backend).await;
    let (_faulty, h) = faulty_harness(
        &backend,
        Fault {
            fail_everything_else: true,
            ..Fault::default()
        },
        905,
    );
    let _ = world;
    let huge = "a".repeat(1 << 20);
    let upper = "A".repeat(AcceptToken::LEN);
    for bad in [
        "",
        "short",
        huge.as_str(),
        upper.as_str(),
        &"a".repeat(AcceptToken::LEN + 1),
    ] {
        assert_code(h.service.preview(bad).await, ErrorCode::InvalidToken);
        assert_code(h.service.accept(bad, None).await, ErrorCode::InvalidToken);
    }
    // A well-shaped token does reach the (failing) store.
    let shaped = "0".repeat(AcceptToken::LEN);
    assert_code(
        h.service.preview(&shaped).await,
        ErrorCode::StorageUnavailable,
    );
}

/// No `Debug` or `Display` of any public value carrying a live accept link shows its token:
/// commands, outbox rows, snapshots, rendered mail, the service and store themselves. Before,
/// outbox rows and messages printed the link and `EmailMessage`'s `Display` both bodies.
pub async fn formatted_values_never_show_a_live_token(backend: Arc<dyn Backend>) {
    let (world, h) = setup(&backend, 906).await;
    let p = world.global_key();
    h.mailer.set_mode(MailerMode::FailTransient);
    let r = run(&h, &p, sites(ByEmail, "ann@new.test", &[world.websites[0]])).await;
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    let s = snapshot(&backend).await;
    let row = s.outbox.last().expect("the queued message").clone();
    let link = row.accept_url.clone().expect("queued with its link");
    let token = token_in(&link);
    assert_eq!(token.len(), AcceptToken::LEN);

    let t = AcceptToken::from_link(&token).expect("a live token");
    let new_batch = NewBatch {
        id: BatchId(Uuid::from_u128(1)),
        token_hash: t.hash(),
        message_id: MessageId(Uuid::from_u128(2)),
        accept_url: link.clone(),
        message_due_at: row.next_attempt_at,
    };
    let create = CreateInvitations {
        organization: world.org,
        email: email("ann@new.test"),
        role: Role::Viewer,
        first_name: None,
        last_name: None,
        targets: vec![(web(world.websites[0]), InvitationId(Uuid::from_u128(3)))],
        batch: new_batch.clone(),
        expires_at: row.next_attempt_at,
        now: row.created_at,
        actor: None,
    };
    let rotate = RotateBatch {
        organization: world.org,
        batch_id: row.batch_id,
        new_token_hash: t.hash(),
        expires_at: row.next_attempt_at,
        message_id: row.id,
        accept_url: link.clone(),
        message_due_at: row.next_attempt_at,
        not_sent_after: row.created_at,
        now: row.created_at,
        actor: None,
    };
    let batch_email = BatchEmail {
        to: email("ann@new.test"),
        first_name: None,
        targets: vec![],
        expires_at: row.next_attempt_at,
        accept_url: link.clone(),
    };
    let rendered = DefaultRenderer::default().render(&batch_email);

    // Deliver, so a real `EmailMessage` carrying the link exists.
    h.mailer.set_mode(MailerMode::Ok);
    h.clock.advance(h.service.config().delivery().max_backoff());
    assert_eq!(h.service.deliver_due().await.expect("deliver").sent, 1);
    let message = h.mailer.sent().last().expect("sent").clone();
    assert!(message.text.contains(&token), "the body does hold the link");

    let mut shown = vec![
        format!("{t:?}"),
        format!("{t:#?}"),
        format!("{new_batch:?}"),
        format!("{create:?}"),
        format!("{create:#?}"),
        format!("{rotate:?}"),
        format!("{rotate:#?}"),
        format!("{row:?}"),
        format!("{row:#?}"),
        format!("{s:?}"),
        format!("{s:#?}"),
        format!("{batch_email:?}"),
        format!("{batch_email:#?}"),
        format!("{rendered:?}"),
        format!("{rendered:#?}"),
        format!("{message:?}"),
        format!("{message:#?}"),
        format!("{message}"),
        format!("{:?}", h.mailer),
        format!("{:?}", h.service),
        format!("{:#?}", h.service),
        format!("{:?}", h.service.config()),
        format!("{:?}", h.store),
    ];
    let page = h
        .service
        .list_invitations(&p, InvitationFilter::Email(email("ann@new.test")), 10, None)
        .await
        .expect("list");
    shown.push(format!("{page:?}"));
    shown.push(serde_json::to_string(&page).expect("json"));
    let view = h.service.batch(&p, row.batch_id).await.expect("view");
    shown.push(format!("{view:?}"));
    shown.push(serde_json::to_string(&view).expect("json"));
    let preview = h.service.preview(&token).await.expect("preview");
    shown.push(format!("{preview:?}"));
    let err = h
        .service
        .accept(&"f".repeat(AcceptToken::LEN), None)
        .await
        .unwrap_err();
    shown.push(format!("{err:?} {err}"));
    for (i, text) in shown.iter().enumerate() {
        assert!(!text.contains(&token), "value {i} shows the token: {text}");
    }
}
