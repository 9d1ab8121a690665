//! Idempotency records ([`IdempotencyStore`](invites_core::IdempotencyStore)).

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::sync::Arc;

/// Idempotency records start complete expire and are taken over when stale.
pub async fn idempotency_records_start_complete_expire_and_are_taken_over_when_stale(
    backend: Arc<dyn Backend>,
) {
    let store = &*backend;
    seed(store).await;
    let s = store;
    let key = ApiKeyId(id(3));
    let begin = |fingerprint: u8, now: Timestamp| IdempotencyBegin {
        organization: ORG,
        key_id: key,
        key: "k1".into(),
        fingerprint: [fingerprint; 32],
        expired_before: Timestamp::from_millis(now.as_millis() - DAY),
        stale_before: Timestamp::from_millis(now.as_millis() - 60_000),
        now,
    };
    assert_eq!(
        s.idempotency_begin(&begin(1, T0)).await.unwrap(),
        IdempotencyState::Started
    );
    assert_eq!(
        s.idempotency_begin(&begin(2, at(1))).await.unwrap(),
        IdempotencyState::InProgress {
            fingerprint: [1; 32]
        }
    );
    // Stale and the same request: taken over. A different request is not.
    assert_eq!(
        s.idempotency_begin(&begin(2, at(120_000))).await.unwrap(),
        IdempotencyState::InProgress {
            fingerprint: [1; 32]
        }
    );
    assert_eq!(
        s.idempotency_begin(&begin(1, at(120_000))).await.unwrap(),
        IdempotencyState::Started
    );
    assert_eq!(
        s.idempotency_begin(&begin(1, at(120_001))).await.unwrap(),
        IdempotencyState::InProgress {
            fingerprint: [1; 32]
        }
    );
    // The run that was taken over finishes late: fenced out, it changes nothing (neither
    // the response nor, with `None`, the record of the run that replaced it).
    s.idempotency_finish(ORG, key, "k1", T0, Some("{\"stale\":true}"), None)
        .await
        .unwrap();
    s.idempotency_finish(ORG, key, "k1", T0, None, None)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin(&begin(1, at(120_002))).await.unwrap(),
        IdempotencyState::InProgress {
            fingerprint: [1; 32]
        },
        "a stale run's finish must not touch the record that replaced it"
    );
    s.idempotency_finish(ORG, key, "k1", at(120_000), Some("{\"ok\":true}"), None)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin(&begin(2, at(200_000))).await.unwrap(),
        IdempotencyState::Completed {
            fingerprint: [1; 32],
            response: "{\"ok\":true}".into()
        }
    );
    // Dead after a day: replaced.
    assert_eq!(
        s.idempotency_begin(&begin(2, at(120_000 + DAY + 1)))
            .await
            .unwrap(),
        IdempotencyState::Started
    );
    // Released: usable again.
    s.idempotency_finish(ORG, key, "k1", at(120_000 + DAY + 1), None, None)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin(&begin(3, at(2 * DAY))).await.unwrap(),
        IdempotencyState::Started
    );
    // Keys are per principal.
    let other = IdempotencyBegin {
        key_id: ApiKeyId(id(4)),
        ..begin(9, at(2 * DAY))
    };
    assert_eq!(
        s.idempotency_begin(&other).await.unwrap(),
        IdempotencyState::Started
    );
}

/// A finish whose response names a user that an erasure deleted while the request was in
/// flight stores nothing and deletes the record, so a replay starts clean instead of handing
/// back the erased user's id; a finish naming a user that exists stores the response.
pub async fn a_finish_naming_an_erased_user_leaves_no_record(backend: Arc<dyn Backend>) {
    let s = &*backend;
    seed(s).await;
    let key = ApiKeyId(id(3));
    let user = UserId(id(77));
    s.create_user(&User {
        id: user,
        email: email("erased@example.com"),
        email_verified: false,
        first_name: None,
        last_name: None,
    })
    .await
    .expect("user");
    let begin = |k: &str| IdempotencyBegin {
        organization: ORG,
        key_id: key,
        key: k.into(),
        fingerprint: [1; 32],
        expired_before: Timestamp::from_millis(T0.as_millis() - DAY),
        stale_before: Timestamp::from_millis(T0.as_millis() - 60_000),
        now: T0,
    };
    for k in ["kept", "erased"] {
        assert_eq!(
            s.idempotency_begin(&begin(k)).await.unwrap(),
            IdempotencyState::Started
        );
    }
    let response = format!("{{\"user_id\":\"{}\"}}", user.0);
    s.idempotency_finish(ORG, key, "kept", T0, Some(&response), Some(user))
        .await
        .unwrap();
    s.erase_person(&email("erased@example.com"), T0)
        .await
        .expect("erase");
    s.idempotency_finish(ORG, key, "erased", T0, Some(&response), Some(user))
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin(&begin("erased")).await.unwrap(),
        IdempotencyState::Started,
        "the record of a response naming an erased user is gone"
    );
    assert_eq!(
        s.idempotency_begin(&begin("kept")).await.unwrap(),
        IdempotencyState::Started,
        "erasure deleted the stored response naming the user"
    );
}
