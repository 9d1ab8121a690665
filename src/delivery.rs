//! Runs [`InviteService::deliver_due`] as a tokio task on an interval until told to stop,
//! and [`InviteService::purge_expired`] every
//! [`RetentionPolicy::interval`](invites_core::RetentionPolicy::interval) (default hourly).
//!
//! ```
//! use invites::delivery::DeliveryWorker;
//! # use invites::prelude::*;
//! # use std::sync::Arc;
//! # use std::time::Duration;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let service = InviteService::new(
//! #     Arc::new(invites::memory::MemoryStore::new()),
//! #     Arc::new(invites::memory::RecordingMailer::new_ok()),
//! #     InviteConfig::new("https://app.example/accept").unwrap(),
//! # );
//! let worker = DeliveryWorker::spawn(service.clone(), Duration::from_secs(10));
//! // ... serve requests ...
//! let totals = worker.stop().await;
//! assert_eq!(totals.failed, 0);
//! # });
//! ```

use invites_core::{DeliveryReport, InviteService, PurgeReport};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// What a [`DeliveryWorker`] did over its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DeliveryTotals {
    /// `deliver_due` calls made.
    pub runs: u64,
    /// Messages delivered.
    pub sent: usize,
    /// Transient failures rescheduled.
    pub retried: usize,
    /// Messages given up.
    pub failed: usize,
    /// Messages cancelled (no live invitation left).
    pub cancelled: usize,
    /// Calls or messages that met a store error (retried on a later tick), failed purges
    /// included.
    pub store_errors: usize,
    /// `purge_expired` calls made.
    pub purges: u64,
    /// What they deleted, summed.
    pub purged: PurgeReport,
}

impl DeliveryTotals {
    fn add(&mut self, r: &DeliveryReport) {
        self.sent += r.sent;
        self.retried += r.retried;
        self.failed += r.failed;
        self.cancelled += r.cancelled;
        self.store_errors += r.store_errors;
    }
}

/// A background task delivering due outbox messages every `interval`. When a call handled a
/// full batch (`DeliveryPolicy::batch_size` messages), it calls again at once to drain a
/// backlog. After the deliveries of the first tick, and of the first tick once
/// `RetentionPolicy::interval` has passed since the last purge, it runs
/// [`InviteService::purge_expired`] (which deletes in short bounded transactions until nothing
/// expired is left), so storage stops growing without a cron job. Several workers on one
/// store may purge at once. Dropping the worker without [`DeliveryWorker::stop`] lets the
/// task run on until the runtime shuts down.
#[derive(Debug)]
pub struct DeliveryWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<DeliveryTotals>,
}

impl DeliveryWorker {
    /// Spawns the task on the current tokio runtime; the first run is immediate.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if `interval` is zero.
    pub fn spawn(service: InviteService, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut totals = DeliveryTotals::default();
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            // At least 1 by construction (`DeliveryPolicy::with_batch_size`), so a run that
            // handled nothing always ends the drain loop.
            let batch_size = service.config().delivery().batch_size().max(1);
            let purge_interval = service.config().retention().interval();
            let mut next_purge = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    biased;
                    _ = stopped.changed() => break,
                    _ = ticks.tick() => {}
                }
                loop {
                    totals.runs += 1;
                    match service.deliver_due().await {
                        Ok(report) => {
                            totals.add(&report);
                            let handled = report.sent
                                + report.retried
                                + report.failed
                                + report.cancelled
                                + report.store_errors;
                            if handled < batch_size || *stopped.borrow() {
                                break;
                            }
                        }
                        Err(_) => {
                            totals.store_errors += 1;
                            break;
                        }
                    }
                }
                if tokio::time::Instant::now() >= next_purge && !*stopped.borrow() {
                    totals.purges += 1;
                    match service.purge_expired().await {
                        Ok(report) => totals.purged.add(&report),
                        Err(_) => totals.store_errors += 1,
                    }
                    next_purge = tokio::time::Instant::now() + purge_interval;
                }
            }
            totals
        });
        DeliveryWorker { stop, task }
    }

    /// Asks the task to stop, waits for the run in progress (if any) to finish, and returns
    /// the totals.
    ///
    /// # Panics
    /// If the task panicked.
    pub async fn stop(self) -> DeliveryTotals {
        let _ = self.stop.send(true);
        self.task.await.expect("the delivery task panicked")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use invites_core::{BulkInviteRequest, DeliveryPolicy, InviteMethod};
    use invites_core::{MailerMode, RecordingMailer};
    use invites_memory::MemoryStore;
    use invites_testkit::{Harness, ManualClock, World};
    use std::sync::Arc;

    /// With the smallest batch size the worker drains a backlog in one tick, one full batch
    /// after another, and stops calling once a call comes back short.
    #[tokio::test(start_paused = true)]
    async fn smallest_batch_size_drains_then_rests() {
        let store = MemoryStore::new();
        let world = World::seed(&store).await;
        let clock = ManualClock::standard();
        let mailer = RecordingMailer::new_ok();
        let policy = DeliveryPolicy::default().with_batch_size(1).unwrap();
        let config = Harness::config(&clock, 7).with_delivery_policy(policy);
        let service = InviteService::new(Arc::new(store), Arc::new(mailer.clone()), config);
        mailer.set_mode(MailerMode::FailTransient);
        for (i, site) in world.websites[..3].iter().enumerate() {
            let to = format!("user{i}@example.test");
            let req = BulkInviteRequest::websites(InviteMethod::Email, &to, [*site]);
            service.bulk_invite(&world.global_key(), req).await.unwrap();
        }
        mailer.set_mode(MailerMode::Ok);
        clock.advance(policy.max_backoff());

        let worker = DeliveryWorker::spawn(service, Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let totals = worker.stop().await;
        assert_eq!(totals.sent, 3);
        assert_eq!(
            totals.runs, 4,
            "three full batches, then one empty call: {totals:?}"
        );
    }
}
