//! The sweeper: [`InviteService::purge_expired`] deletes what the retention rules
//! ([`rules::purge_cutoffs`](crate::rules::purge_cutoffs) and the predicates next to it) say
//! has expired, in bounded store calls.

use super::*;
use crate::error::InviteError;
use crate::observe::Operation;
use crate::rules;
use crate::service::views::PurgeReport;

/// Calls `step` until a call deletes fewer than `limit` rows (as `count` reads its result),
/// handing each result to `add`.
async fn drain<R, Fut>(
    limit: usize,
    mut step: impl FnMut() -> Fut,
    count: impl Fn(&R) -> u64,
    mut add: impl FnMut(R),
) -> Result<(), StoreError>
where
    Fut: std::future::Future<Output = Result<R, StoreError>>,
{
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    loop {
        let result = step().await?;
        let deleted = count(&result);
        add(result);
        if deleted < limit {
            return Ok(());
        }
    }
}

impl InviteService {
    /// Deletes what has outlived its use, so storage stops growing with traffic (the crate
    /// docs, "Retention", say exactly what goes and what stays): idempotency records older
    /// than the idempotency time to live; dead batches (every invitation expired, nothing
    /// queued) last touched more than [`RetentionPolicy::history`](crate::RetentionPolicy::history)
    /// ago, with their invitations and messages; and finished outbox messages as old, except
    /// the newest of each kept batch; events older than the history window (a reader that
    /// falls further behind than that sees a gap in positions). Users and memberships are
    /// never deleted.
    ///
    /// The cutoffs come from the service clock at the start of the call. The store is asked
    /// in calls of at most [`RetentionPolicy::batch_size`](crate::RetentionPolicy::batch_size)
    /// rows (each one short transaction, so no lock is held for long), again until a call
    /// comes back short. Safe to run from several processes at once: each row goes once.
    ///
    /// # Errors
    /// [`InviteError::Unavailable`] when a store call fails; what earlier calls deleted stays
    /// deleted, and the next purge goes on from there.
    #[tracing::instrument(
        name = "purge_expired",
        skip_all,
        fields(
            batches,
            invitations,
            messages,
            idempotency_records,
            events,
            outcome,
            duration_seconds
        )
    )]
    pub async fn purge_expired(&self) -> Result<PurgeReport, InviteError> {
        self.observed(Operation::PurgeExpired, self.purge_expired_inner())
            .await
    }

    async fn purge_expired_inner(&self) -> Result<PurgeReport, InviteError> {
        let policy = self.config.retention;
        let cutoffs = rules::purge_cutoffs(self.now(), self.config.idempotency_ttl, policy.history);
        let limit = policy.batch_size;
        let mut report = PurgeReport::default();
        // Batches first: they take their own messages, which the message purge then never
        // has to look at.
        drain(
            limit,
            || self.store.purge_batches(cutoffs.history_before, limit),
            |b| b.batches,
            |b| {
                report.batches += b.batches;
                report.invitations += b.invitations;
                report.messages += b.messages;
            },
        )
        .await?;
        drain(
            limit,
            || self.store.purge_messages(cutoffs.history_before, limit),
            |n| *n,
            |n| report.messages += n,
        )
        .await?;
        drain(
            limit,
            || {
                self.store
                    .purge_idempotency(cutoffs.idempotency_before, limit)
            },
            |n| *n,
            |n| report.idempotency_records += n,
        )
        .await?;
        drain(
            limit,
            || self.store.purge_events(cutoffs.history_before, limit),
            |n| *n,
            |n| report.events += n,
        )
        .await?;
        Ok(report)
    }
}
