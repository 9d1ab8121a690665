//! Whole-request rejections (docs/contract.md §2) and the shape of the results (§4).

use super::support::*;
use crate::Backend;
use invites_core::*;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Validation failures (a sample of every value rule) are whole-request rejections with a
/// stable code naming the field: nothing is written and no email is sent, with or without an
/// idempotency key.
pub async fn validation_rejections_change_nothing(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 111).await;
    let ws = &w.websites;
    let p = w.global_key();
    let before = snapshot(&backend).await;
    let fifty_one: Vec<WebsiteId> = (0..51)
        .map(|i| WebsiteId(Uuid::from_u128(0x9000 + i)))
        .collect();
    for method in [Direct, ByEmail] {
        let mut both = sites(method, "ann@new.test", &[ws[0]]);
        both.group_ids = Some(Vec::new());
        let mut neither = sites(method, "ann@new.test", &[]);
        neither.website_ids = None;
        let cases: Vec<(BulkInviteRequest, ErrorCode, Option<&str>)> = vec![
            (both, ErrorCode::MutuallyExclusiveTargets, None),
            (neither, ErrorCode::MissingTargets, None),
            (
                sites(method, "ann@new.test", &[]),
                ErrorCode::InvalidTargetCount,
                Some("website_ids"),
            ),
            (
                sites(method, "ann@new.test", &fifty_one),
                ErrorCode::InvalidTargetCount,
                Some("website_ids"),
            ),
            (
                groups(method, "ann@new.test", &[]),
                ErrorCode::InvalidTargetCount,
                Some("group_ids"),
            ),
            (
                sites(method, "ann@new.test", &[ws[0], ws[1], ws[0]]),
                ErrorCode::DuplicateTarget,
                Some("website_ids[2]"),
            ),
            (
                groups(method, "ann@new.test", &[w.groups[0], w.groups[0]]),
                ErrorCode::DuplicateTarget,
                Some("group_ids[1]"),
            ),
            (
                sites(method, "not-an-address", &[ws[0]]),
                ErrorCode::InvalidEmail,
                Some("email"),
            ),
            (
                sites(method, "   ", &[ws[0]]),
                ErrorCode::InvalidEmail,
                Some("email"),
            ),
            (
                with_names(
                    sites(method, "ann@new.test", &[ws[0]]),
                    "Ann\r\nBcc: x",
                    "Lee",
                ),
                ErrorCode::InvalidName,
                Some("first_name"),
            ),
            (
                with_names(
                    sites(method, "ann@new.test", &[ws[0]]),
                    "Ann",
                    &"x".repeat(101),
                ),
                ErrorCode::InvalidName,
                Some("last_name"),
            ),
        ];
        for (req, code, field) in cases {
            for idempotent in [false, true] {
                let result = if idempotent {
                    h.service
                        .bulk_invite_idempotent(&p, "validation-key", req.clone())
                        .await
                } else {
                    h.service.bulk_invite(&p, req.clone()).await
                };
                let e = assert_code(result, code);
                assert!(
                    matches!(e, InviteError::Validation { .. }),
                    "a validation error: {e:?}"
                );
                let named = e.field().expect("the error names a field");
                assert!(!named.is_empty());
                if let Some(f) = field {
                    assert_eq!(named, f, "{code}");
                }
            }
        }
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);
}
/// `group_ids` with a website-scoped key is `global_key_required` (a permission error, before
/// any value check), in both modes, and changes nothing; a global key may use groups.
pub async fn group_ids_need_global_key(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 112).await;
    let scoped = w.scoped_key(&[w.websites[0], w.websites[1]]);
    let before = snapshot(&backend).await;
    for method in [Direct, ByEmail] {
        for to in ["ann@new.test", "not-an-address"] {
            let req = groups(method, to, &[w.groups[0]]);
            let e = assert_code(
                h.service.bulk_invite(&scoped, req.clone()).await,
                ErrorCode::GlobalKeyRequired,
            );
            assert!(matches!(e, InviteError::Forbidden { .. }), "{e:?}");
            assert_code(
                h.service
                    .bulk_invite_idempotent(&scoped, "groups-key", req)
                    .await,
                ErrorCode::GlobalKeyRequired,
            );
        }
    }
    assert_eq!(snapshot(&backend).await, before);
    assert_eq!(h.mailer.attempts(), 0);

    let r = run(
        &h,
        &w.global_key(),
        groups(Direct, "ann@new.test", &[w.groups[0]]),
    )
    .await;
    expect_codes(&r, &[(grp(w.groups[0]), OutcomeCode::Added)]);
}
/// One result per requested id, in request order, naming `website_id` or `group_id` as the
/// request did, with the JSON shape of docs/contract.md §4 and summary counts; 50 ids are processed.
pub async fn results_follow_request_order(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 113).await;
    let ws = &w.websites;
    let p = w.global_key();
    let ids = [ws[3], missing_website(), ws[0], w.other_website, ws[5]];
    let r = run(&h, &p, sites(Direct, "ann@new.test", &ids)).await;
    expect_codes(
        &r,
        &[
            (web(ws[3]), OutcomeCode::Added),
            (web(missing_website()), TargetNotFound),
            (web(ws[0]), OutcomeCode::Added),
            (web(w.other_website), TargetNotFound),
            (web(ws[5]), OutcomeCode::Added),
        ],
    );
    assert_eq!(r.summary.requested, 5);
    assert_eq!(r.summary.succeeded, 3);
    assert_eq!(r.summary.failed, 2);
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["success"], Value::Bool(true));
    assert_eq!(json["invite_method"], "direct");
    assert!(
        json.get("email").is_none(),
        "no email member in direct mode"
    );
    let results = json["results"].as_array().expect("results");
    for (res, id) in results.iter().zip(ids) {
        assert_eq!(res["website_id"], id.to_string());
        assert!(res.get("group_id").is_none());
        if res["success"] == Value::Bool(true) {
            assert!(res.get("message").is_some() && res.get("error").is_none());
            assert_eq!(res["user_id"], json["user_id"]);
        } else {
            assert!(res.get("error").is_some() && res.get("message").is_none());
        }
    }

    let gids = [w.groups[1], missing_group(), w.groups[0]];
    let r = run(&h, &p, groups(ByEmail, "bob@new.test", &gids)).await;
    expect_codes(
        &r,
        &[
            (grp(w.groups[1]), Invited),
            (grp(missing_group()), TargetNotFound),
            (grp(w.groups[0]), Invited),
        ],
    );
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["invite_method"], "email");
    assert_eq!(json["user_id"], Value::Null);
    assert_eq!(json["user_created"], Value::Bool(false));
    assert_eq!(json["email"]["status"], "sent");
    assert_eq!(json["email"]["batch_id"], batch_of(&r).to_string());
    assert_eq!(json["summary"]["requested"], 3);
    assert_eq!(json["summary"]["succeeded"], 2);
    assert_eq!(json["summary"]["failed"], 1);
    for (res, id) in json["results"]
        .as_array()
        .expect("results")
        .iter()
        .zip(gids)
    {
        assert_eq!(res["group_id"], id.to_string());
        assert!(res.get("website_id").is_none());
    }
    assert!(json["results"][0]["invite_id"].is_string());

    let mut fifty: Vec<WebsiteId> = ws.clone();
    fifty.extend((0..44).map(|i| WebsiteId(Uuid::from_u128(0x7000 + i))));
    fifty.reverse();
    let r = run(&h, &p, sites(Direct, "carol@new.test", &fifty)).await;
    assert_eq!(r.results.len(), 50);
    for (res, id) in r.results.iter().zip(&fifty) {
        let code = if ws.contains(id) {
            OutcomeCode::Added
        } else {
            TargetNotFound
        };
        expect_result(res, web(*id), code);
    }
    assert_eq!(r.summary.succeeded, 6);
}
