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
    s.idempotency_finish(ORG, key, "k1", T0, Some("{\"stale\":true}"))
        .await
        .unwrap();
    s.idempotency_finish(ORG, key, "k1", T0, None)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin(&begin(1, at(120_002))).await.unwrap(),
        IdempotencyState::InProgress {
            fingerprint: [1; 32]
        },
        "a stale run's finish must not touch the record that replaced it"
    );
    s.idempotency_finish(ORG, key, "k1", at(120_000), Some("{\"ok\":true}"))
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
    s.idempotency_finish(ORG, key, "k1", at(120_000 + DAY + 1), None)
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
