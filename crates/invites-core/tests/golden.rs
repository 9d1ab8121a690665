//! Golden JSON: the request of docs/contract.md §2, the response of docs/contract.md §4, and the error body of every
//! whole-request error code.

use invites_core::*;
use serde_json::json;
use uuid::Uuid;

const W1: &str = "123e4567-e89b-12d3-a456-426614174000";
const W2: &str = "987e6543-e21b-12d3-a456-426614174000";

fn w(s: &str) -> WebsiteId {
    WebsiteId(Uuid::parse_str(s).unwrap())
}

fn parse(v: serde_json::Value) -> Result<BulkInviteRequest, InviteError> {
    BulkInviteRequest::from_json(v.to_string().as_bytes())
}

/// Parse and validate, the way `bulk_invite` sees a body.
fn check(v: serde_json::Value) -> Result<ValidatedRequest, InviteError> {
    parse(v)?.validate()
}

#[test]
fn request_with_every_field_parses() {
    let req = parse(json!({
        "invite_method": "direct",
        "email": "  John.Doe@Example.COM ",
        "role": "admin",
        "website_ids": [W1, W2],
        "first_name": " John ",
        "last_name": "Doe"
    }))
    .unwrap();
    assert_eq!(
        req,
        BulkInviteRequest {
            invite_method: InviteMethod::Direct,
            email: "  John.Doe@Example.COM ".into(),
            role: Some(Role::Admin),
            website_ids: Some(vec![w(W1), w(W2)]),
            group_ids: None,
            first_name: Some(" John ".into()),
            last_name: Some("Doe".into()),
        }
    );
    let v = req.validate().unwrap();
    assert_eq!(v.email.as_str(), "john.doe@example.com");
    assert_eq!(v.first_name.unwrap().as_str(), "John");
    assert_eq!(
        v.targets,
        vec![TargetId::Website(w(W1)), TargetId::Website(w(W2))]
    );
    // serde gives the same value.
    let via_serde: BulkInviteRequest = serde_json::from_value(json!({
        "invite_method": "direct", "email": "  John.Doe@Example.COM ", "role": "admin",
        "website_ids": [W1, W2], "first_name": " John ", "last_name": "Doe"
    }))
    .unwrap();
    assert_eq!(via_serde, req);
}

#[test]
fn defaults_and_nulls() {
    let v = check(json!({"invite_method": "email", "email": "a@b.co", "group_ids": [W1], "role": null, "website_ids": null}))
        .unwrap();
    assert_eq!(v.role, Role::Viewer);
    assert_eq!(v.kind, TargetKind::Group);
    let v = check(json!({"invite_method": "email", "email": "a@b.co", "website_ids": [W1], "first_name": "   "})).unwrap();
    assert_eq!(v.first_name, None);
}

fn code_and_field(r: Result<ValidatedRequest, InviteError>) -> (ErrorCode, Option<String>) {
    let e = r.unwrap_err();
    (e.code(), e.field().map(str::to_owned))
}

#[test]
fn every_validation_code_names_its_field() {
    let base = || json!({"invite_method": "email", "email": "a@b.co", "website_ids": [W1]});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(serde_json::Value, ErrorCode, &str)> = vec![
        (
            with("group_ids", json!([W2])),
            ErrorCode::MutuallyExclusiveTargets,
            "website_ids",
        ),
        (
            with("group_ids", json!([])),
            ErrorCode::MutuallyExclusiveTargets,
            "website_ids",
        ),
        (
            without("website_ids"),
            ErrorCode::MissingTargets,
            "website_ids",
        ),
        (
            with("website_ids", json!([])),
            ErrorCode::InvalidTargetCount,
            "website_ids",
        ),
        (
            with(
                "website_ids",
                json!(
                    (0..51)
                        .map(|i| Uuid::from_u128(i).to_string())
                        .collect::<Vec<_>>()
                ),
            ),
            ErrorCode::InvalidTargetCount,
            "website_ids",
        ),
        (
            with("website_ids", json!([W1, W2, W1])),
            ErrorCode::DuplicateTarget,
            "website_ids[2]",
        ),
        (
            with("email", json!("not-an-email")),
            ErrorCode::InvalidEmail,
            "email",
        ),
        (with("email", json!(42)), ErrorCode::InvalidEmail, "email"),
        (without("email"), ErrorCode::InvalidEmail, "email"),
        (
            with("first_name", json!("x".repeat(101))),
            ErrorCode::InvalidName,
            "first_name",
        ),
        (
            with("last_name", json!("Doe\r\nBcc: evil@x.y")),
            ErrorCode::InvalidName,
            "last_name",
        ),
        (
            with("last_name", json!(7)),
            ErrorCode::InvalidName,
            "last_name",
        ),
        (with("role", json!("owner")), ErrorCode::InvalidRole, "role"),
        (
            with("invite_method", json!("sms")),
            ErrorCode::InvalidInviteMethod,
            "invite_method",
        ),
        (
            without("invite_method"),
            ErrorCode::InvalidInviteMethod,
            "invite_method",
        ),
        (
            with("website_ids", json!([W1, "nope"])),
            ErrorCode::InvalidTargetId,
            "website_ids[1]",
        ),
        (
            with("website_ids", json!(W1)),
            ErrorCode::InvalidTargetId,
            "website_ids",
        ),
        (with("emial", json!("x")), ErrorCode::UnknownField, "emial"),
    ];
    for (body, code, field) in cases {
        assert_eq!(
            code_and_field(check(body.clone())),
            (code, Some(field.to_owned())),
            "{body}"
        );
    }
    for raw in ["{", "[]", "\"x\"", ""] {
        let e = BulkInviteRequest::from_json(raw.as_bytes()).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            (ErrorCode::MalformedJson, Some("body")),
            "{raw}"
        );
    }
    // 50 distinct ids is fine.
    let fifty: Vec<String> = (0..50).map(|i| Uuid::from_u128(i).to_string()).collect();
    assert_eq!(
        check(with("website_ids", json!(fifty)))
            .unwrap()
            .targets
            .len(),
        50
    );
}

#[test]
fn serde_errors_carry_the_code() {
    let e = serde_json::from_str::<BulkInviteRequest>(
        r#"{"invite_method":"email","email":"a@b.co","website_ids":[],"x":1}"#,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("unknown_field: x"), "{e}");
}

#[test]
fn error_bodies_are_golden() {
    let e = check(json!({"invite_method": "email", "email": "a@b.co", "website_ids": [W1, W1]}))
        .unwrap_err();
    assert_eq!(
        e.to_json(),
        json!({"success": false, "error": {
            "code": "duplicate_target",
            "field": "website_ids[1]",
            "message": format!("website_ids[1] repeats id {W1}")
        }})
    );
    assert_eq!(e.code().http_status(), 400);
    let e = InviteError::Forbidden {
        code: ErrorCode::GlobalKeyRequired,
        reason: "group_ids require a global API key".into(),
    };
    assert_eq!(
        e.to_json(),
        json!({"success": false, "error": {"code": "global_key_required", "message": "group_ids require a global API key"}})
    );
    assert_eq!(e.code().http_status(), 403);
    let e = InviteError::ResendTooSoon {
        retry_after_secs: 42,
    };
    assert_eq!(
        e.to_json(),
        json!({"success": false, "error": {
            "code": "resend_too_soon",
            "message": "the batch was resent recently; try again in 42 seconds",
            "retry_after_secs": 42
        }})
    );
    assert_eq!(e.code().http_status(), 429);
    assert_eq!(
        InviteError::InvalidToken.to_json()["error"]["code"],
        "invalid_token"
    );
    assert_eq!(
        InviteError::EmailMismatch.to_json()["error"]["code"],
        "email_mismatch"
    );
}

#[test]
fn every_code_string_is_stable() {
    use ErrorCode::*;
    let all = [
        (MutuallyExclusiveTargets, "mutually_exclusive_targets"),
        (MissingTargets, "missing_targets"),
        (InvalidTargetCount, "invalid_target_count"),
        (DuplicateTarget, "duplicate_target"),
        (InvalidEmail, "invalid_email"),
        (InvalidName, "invalid_name"),
        (InvalidRole, "invalid_role"),
        (InvalidInviteMethod, "invalid_invite_method"),
        (InvalidTargetId, "invalid_target_id"),
        (UnknownField, "unknown_field"),
        (MalformedJson, "malformed_json"),
        (GlobalKeyRequired, "global_key_required"),
        (IdempotencyConflict, "idempotency_conflict"),
        (IdempotencyInProgress, "idempotency_in_progress"),
        (InvalidToken, "invalid_token"),
        (EmailMismatch, "email_mismatch"),
        (AlreadyAccepted, "already_accepted"),
        (ResendTooSoon, "resend_too_soon"),
    ];
    for (code, s) in all {
        assert_eq!(code.as_str(), s);
        assert_eq!(serde_json::to_value(code).unwrap(), json!(s));
    }
}

#[test]
fn response_is_golden() {
    let inv = InvitationId(Uuid::from_u128(0xaa));
    let batch = BatchId(Uuid::from_u128(0xbb));
    let results = vec![
        TargetResult::new(TargetId::Website(w(W1)), OutcomeCode::Invited).with_invite(inv),
        TargetResult::new(TargetId::Website(w(W2)), OutcomeCode::AlreadyMember),
    ];
    let r = BulkInviteResponse::new(
        InviteMethod::Email,
        None,
        false,
        results,
        Some(EmailReport {
            status: EmailStatus::Sent,
            batch_id: Some(batch),
        }),
    );
    let expected = json!({
      "success": true,
      "invite_method": "email",
      "user_id": null,
      "user_created": false,
      "results": [
        {"website_id": W1, "success": true,  "code": "invited", "message": "Invitation created for website", "invite_id": inv.to_string()},
        {"website_id": W2, "success": false, "code": "already_member", "error": "User is already a member of this website"}
      ],
      "summary": {"requested": 2, "succeeded": 1, "failed": 1},
      "email": {"status": "sent", "batch_id": batch.to_string()}
    });
    assert_eq!(serde_json::to_value(&r).unwrap(), expected);
    // It reads back identically (stored idempotent responses).
    let back: BulkInviteResponse = serde_json::from_value(expected).unwrap();
    assert_eq!(back, r);
}

#[test]
fn direct_and_group_responses_are_golden() {
    let user = UserId(Uuid::from_u128(0x11));
    let g = GroupId(Uuid::from_u128(0x22));
    let r = BulkInviteResponse::new(
        InviteMethod::Direct,
        Some(user),
        true,
        vec![TargetResult::new(TargetId::Group(g), OutcomeCode::Added).with_user(user)],
        None,
    );
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({
          "success": true, "invite_method": "direct", "user_id": user.to_string(), "user_created": true,
          "results": [{"group_id": g.to_string(), "success": true, "code": "added", "message": "User added to group", "user_id": user.to_string()}],
          "summary": {"requested": 1, "succeeded": 1, "failed": 0}
        })
    );
}

#[test]
fn outcome_texts_match_the_contract() {
    let t = |c: OutcomeCode| c.text(TargetKind::Website);
    assert_eq!(t(OutcomeCode::Added), "User added to website");
    assert_eq!(t(OutcomeCode::Invited), "Invitation created for website");
    assert_eq!(
        t(OutcomeCode::AlreadyMember),
        "User is already a member of this website"
    );
    assert_eq!(
        t(OutcomeCode::HasOrgAccess),
        "User already has access through the organization"
    );
    assert_eq!(
        t(OutcomeCode::AlreadyInvited),
        "User already has a pending invitation for this website"
    );
    assert_eq!(t(OutcomeCode::TargetNotFound), "Website not found");
    assert_eq!(
        t(OutcomeCode::Forbidden),
        "API key does not have access to this website"
    );
    assert_eq!(
        t(OutcomeCode::InternalError),
        "Internal error; nothing was changed for this target"
    );
    assert_eq!(
        OutcomeCode::TargetNotFound.text(TargetKind::Group),
        "Group not found"
    );
    assert_eq!(
        OutcomeCode::AlreadyMember.text(TargetKind::Group),
        "User is already a member of this group"
    );
}
