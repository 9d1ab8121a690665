//! Retention: what a purge may delete ([`purge_cutoffs`], [`message_is_purgeable`],
//! [`batch_is_purgeable`]). A store deletes in bulk, by cutoff, so its SQL states the same
//! predicate (written out on each function); the store suite checks every backend against
//! the same cases.

use super::delivery_record_applies;
use crate::store::MessageStatus;
use crate::time::Timestamp;
use std::time::Duration;

/// Whether an outbox message with this status has left the queue for good: it is never
/// claimed again and no delivery record applies to it any more
/// ([`delivery_record_applies`]). Every status but `Queued`.
pub fn message_is_finished(status: MessageStatus) -> bool {
    !delivery_record_applies(status)
}

/// The statuses that are not finished ([`message_is_finished`]), for a backend that names
/// them in its SQL.
pub fn unfinished_statuses() -> impl Iterator<Item = MessageStatus> {
    MessageStatus::ALL
        .into_iter()
        .filter(|s| !message_is_finished(*s))
}

/// The cutoffs of one purge at `now`: everything a purge deletes is dated strictly before
/// them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PurgeCutoffs {
    /// Idempotency records created before this are dead
    /// ([`idempotency_is_expired`](super::idempotency_is_expired)): `now` minus the
    /// idempotency time to live, the same `expired_before` a begin at `now` uses.
    pub idempotency_before: Timestamp,
    /// Finished history older than this goes: `now` minus the retention
    /// ([`RetentionPolicy::history`](crate::RetentionPolicy::history)).
    pub history_before: Timestamp,
}

/// The cutoffs of a purge at `now` with these settings (saturating at the earliest time).
pub fn purge_cutoffs(now: Timestamp, idempotency_ttl: Duration, history: Duration) -> PurgeCutoffs {
    PurgeCutoffs {
        idempotency_before: now.minus(idempotency_ttl),
        history_before: now.minus(history),
    }
}

/// The facts of one outbox message for
/// [`OutboxStore::purge_messages`](crate::OutboxStore::purge_messages).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MessageRetentionFacts {
    /// Its status.
    pub status: MessageStatus,
    /// Its `next_attempt_at`: for a finished message, the end of its last lease (or the due
    /// time it was stored or rescheduled with), the last time a deliverer may have held it.
    pub next_attempt_at: Timestamp,
    /// It is the newest message of its batch (by `(created_at, id)`).
    pub newest_of_batch: bool,
}

/// Whether a purge with `before` ([`PurgeCutoffs::history_before`]) deletes this message on
/// its own: finished ([`message_is_finished`]), its `next_attempt_at` strictly before
/// `before`, and not the newest message of its batch. The newest one stays as long as its
/// batch (it is the delivery status that lists and batch views show) and goes with it
/// ([`batch_is_purgeable`]).
///
/// In SQL: `status <> 'queued' AND next_attempt_at < $before AND EXISTS (a message of the
/// same batch with a greater (created_at, id))`.
pub fn message_is_purgeable(facts: &MessageRetentionFacts, before: Timestamp) -> bool {
    message_is_finished(facts.status) && facts.next_attempt_at < before && !facts.newest_of_batch
}

/// The facts of one batch for
/// [`LifecycleStore::purge_batches`](crate::LifecycleStore::purge_batches).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BatchRetentionFacts {
    /// When it was last (re)sent.
    pub last_sent_at: Timestamp,
    /// The latest `expires_at` among its invitations (`None`: it has none left, e.g. after
    /// `delete_website`).
    pub latest_expiry: Option<Timestamp>,
    /// The latest `next_attempt_at` among its outbox messages (`None`: none).
    pub latest_message_at: Option<Timestamp>,
    /// One of its messages is not finished ([`message_is_finished`]).
    pub queued_message: bool,
}

/// Whether a purge with `before` ([`PurgeCutoffs::history_before`]) deletes this batch with
/// all its invitations and messages: it is *dead* and has been for longer than the
/// retention. That is, strictly before `before`: it was last sent; **every** invitation of
/// it expired (so none is live, and any accept, which needs a live invitation, happened
/// before that too; a stored-pending one expired that long ago can no longer be resent);
/// and every message of it was last held by a deliverer; and no message of it is queued.
/// Whatever an invitation's status (accepted, revoked, superseded, replaced, pending), its
/// history is kept for at least the retention after it stopped being acceptable.
///
/// In SQL: `last_sent_at < $before AND NOT EXISTS (an invitation of the batch with
/// expires_at >= $before) AND NOT EXISTS (a message of the batch with status = 'queued' OR
/// next_attempt_at >= $before)`.
pub fn batch_is_purgeable(facts: &BatchRetentionFacts, before: Timestamp) -> bool {
    facts.last_sent_at < before
        && facts.latest_expiry.is_none_or(|e| e < before)
        && facts.latest_message_at.is_none_or(|m| m < before)
        && !facts.queued_message
}

#[cfg(test)]
mod tests {
    use super::super::idempotency_is_expired;
    use super::*;

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn cutoffs_subtract_and_saturate() {
        let c = purge_cutoffs(ts(10_000), Duration::from_secs(2), Duration::from_secs(5));
        assert_eq!(c.idempotency_before, ts(8_000));
        assert_eq!(c.history_before, ts(5_000));
        assert!(idempotency_is_expired(ts(7_999), c.idempotency_before));
        assert!(!idempotency_is_expired(ts(8_000), c.idempotency_before));
        let c = purge_cutoffs(ts(i64::MIN + 1), Duration::MAX, Duration::MAX);
        assert_eq!(c.history_before, ts(i64::MIN));
    }

    #[test]
    fn only_finished_old_messages_that_are_not_their_batchs_newest_go() {
        let before = ts(100);
        let mut purgeable = 0;
        for status in MessageStatus::ALL {
            for at in [99, 100, 101] {
                for newest_of_batch in [false, true] {
                    let facts = MessageRetentionFacts {
                        status,
                        next_attempt_at: ts(at),
                        newest_of_batch,
                    };
                    let want = status != MessageStatus::Queued && at < 100 && !newest_of_batch;
                    assert_eq!(message_is_purgeable(&facts, before), want, "{facts:?}");
                    purgeable += usize::from(want);
                }
            }
        }
        // The three finished statuses, dated 99, not their batch's newest.
        assert_eq!(purgeable, 3);
        assert_eq!(
            unfinished_statuses().collect::<Vec<_>>(),
            vec![MessageStatus::Queued]
        );
    }

    #[test]
    fn a_batch_goes_only_when_everything_about_it_is_older_than_the_cutoff() {
        let before = ts(100);
        let times = [None, Some(99), Some(100), Some(101)];
        let mut purgeable = 0;
        for last_sent in [99, 100] {
            for expiry in times {
                for message in times {
                    for queued_message in [false, true] {
                        let facts = BatchRetentionFacts {
                            last_sent_at: ts(last_sent),
                            latest_expiry: expiry.map(ts),
                            latest_message_at: message.map(ts),
                            queued_message,
                        };
                        let want = last_sent < 100
                            && expiry.is_none_or(|e| e < 100)
                            && message.is_none_or(|m| m < 100)
                            && !queued_message;
                        assert_eq!(batch_is_purgeable(&facts, before), want, "{facts:?}");
                        purgeable += usize::from(want);
                    }
                }
            }
        }
        assert_eq!(purgeable, 4);
    }
}
