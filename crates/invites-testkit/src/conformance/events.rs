//! The event log as a host reads it (docs/contract.md §12): `InviteService::events` follows a
//! cursor, validates what it is given, records the key that acted, holds no address or name,
//! and holds nothing of a request that failed.

use super::support::*;
use crate::{Backend, Fault};
use invites_core::*;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Reads the whole log of `org` in pages of `page`, following the cursor.
async fn read_all(h: &crate::Harness, org: OrganizationId, page: usize) -> Vec<Event> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = h
            .service
            .events(org, cursor.as_deref(), page)
            .await
            .expect("events");
        let n = p.events.len();
        all.extend(p.events);
        cursor = Some(p.next);
        if n < page {
            return all;
        }
    }
}

/// A reader that follows the cursor in small pages sees exactly the log a single read
/// returns, in position order; an empty page hands back the cursor it was given; the events
/// of a request name its key, an accept's name none; no event holds an address or a name;
/// a bad `limit` or `after` is `invalid_query` naming the field.
pub async fn events_are_read_by_cursor_and_name_no_one(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 300).await;
    let p = w.global_key();
    let ws = &w.websites;
    let mut req = sites(Direct, "Zoë.Quill@New.Test", &[ws[0], ws[1]]);
    req.first_name = Some("Zoë".into());
    req.last_name = Some("Quill".into());
    run(&h, &p, req).await;
    let mut req = sites(ByEmail, "yann.rook@new.test", &[ws[2], ws[3], ws[4]]);
    req.first_name = Some("Yann".into());
    run(&h, &p, req).await;
    h.clock.advance(secs(60));
    h.service
        .accept(&h.last_token(), None)
        .await
        .expect("accept");

    let whole = h.service.events(w.org, None, 1000).await.expect("events");
    let kinds: Vec<EventKind> = whole.events.iter().map(|e| e.kind).collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        vec![
            UserCreated,
            MemberAdded,
            MemberAdded,
            InvitationCreated,
            InvitationCreated,
            InvitationCreated,
            EmailSent,
            UserCreated,
            InvitationAccepted,
            MemberAdded,
            InvitationAccepted,
            MemberAdded,
            InvitationAccepted,
            MemberAdded,
        ]
    );
    for page in [1, 2, 5] {
        assert_eq!(
            read_all(&h, w.org, page).await,
            whole.events,
            "pages of {page}"
        );
    }
    assert!(
        whole.events[..6].iter().all(|e| e.actor == Some(p.key_id)),
        "the key that asked"
    );
    assert!(
        whole.events[6..].iter().all(|e| e.actor.is_none()),
        "a delivery and an accept have no key"
    );
    let json = serde_json::to_string(&whole.events).expect("json");
    for personal in ["@", "zo", "quill", "yann", "rook"] {
        assert!(
            !json.to_lowercase().contains(personal),
            "{personal:?} in {json}"
        );
    }

    // The cursor of the last page resumes after it: a later event is the only one read.
    let next = whole.next.clone();
    let empty = h
        .service
        .events(w.org, Some(&next), 10)
        .await
        .expect("empty");
    assert!(empty.events.is_empty());
    assert_eq!(empty.next, next);
    run(&h, &p, sites(Direct, "xi@new.test", &[ws[5]])).await;
    let more = h
        .service
        .events(w.org, Some(&next), 10)
        .await
        .expect("more");
    assert_eq!(
        more.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![UserCreated, MemberAdded]
    );
    assert_eq!(more.events[0].position, whole.events.len() as u64 + 1);

    for (after, limit, field) in [
        (None, 0, "limit"),
        (None, 1001, "limit"),
        (Some("7"), 10, "after"),
        (Some("evc_zzzzzzzzzzzzzzzz"), 10, "after"),
    ] {
        match h.service.events(w.org, after, limit).await {
            Err(InviteError::Validation {
                code: ErrorCode::InvalidQuery,
                field: f,
                ..
            }) => assert_eq!(f, field),
            other => panic!("{after:?} {limit}: {other:?}"),
        }
    }
    assert!(
        h.service
            .events(w.other_org, None, 10)
            .await
            .expect("other")
            .events
            .is_empty(),
        "another organization's log is its own"
    );
}

/// A request whose store call fails as a whole leaves no event; a request where some
/// targets fail leaves the events of the others only (invariant 11 under faults).
pub async fn failed_requests_leave_no_event(backend: Arc<dyn Backend>) {
    let w = crate::World::seed(&*backend).await;
    let ws = w.websites.clone();
    let all_fail = Fault {
        fail_batches: true,
        ..Fault::default()
    };
    let (faulty, h) = faulty_harness(&backend, all_fail, 301);
    let p = w.global_key();
    run(&h, &p, sites(Direct, "ann@new.test", &[ws[0], ws[1]])).await;
    run(&h, &p, sites(ByEmail, "bob@new.test", &[ws[2]])).await;
    faulty.set(Fault::default());
    assert!(
        h.service
            .events(w.org, None, 100)
            .await
            .expect("events")
            .events
            .is_empty(),
        "no event without its change"
    );

    faulty.set(Fault {
        failing_targets: BTreeSet::from([web(ws[1])]),
        ..Fault::default()
    });
    run(
        &h,
        &p,
        sites(Direct, "ann@new.test", &[ws[0], ws[1], ws[2]]),
    )
    .await;
    faulty.set(Fault::default());
    let log = h.service.events(w.org, None, 100).await.expect("events");
    let got: Vec<(EventKind, Option<TargetId>)> =
        log.events.iter().map(|e| (e.kind, e.target)).collect();
    assert_eq!(
        got,
        vec![
            (EventKind::UserCreated, None),
            (EventKind::MemberAdded, Some(web(ws[0]))),
            (EventKind::MemberAdded, Some(web(ws[2]))),
        ]
    );
    assert_eq!(
        log.events.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}
