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

use invites_core::{DeliveryReport, InviteService, PurgeReport, Timestamp};
use std::sync::{Arc, Mutex};
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
    /// Claimed messages put back unattempted (delivery paused, or a lease too short).
    pub deferred: usize,
    /// Panics caught: in one message's delivery (that attempt counted) or in a whole call
    /// (the worker went on at the next tick).
    pub panics: usize,
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
        self.deferred += r.deferred;
        self.panics += r.panicked;
        self.store_errors += r.store_errors;
    }
}

/// What a [`DeliveryWorker`] reports about itself ([`DeliveryWorker::health`]): enough for a
/// health route to tell a working worker from a stalled, paused or dead one.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct WorkerHealth {
    /// Whether the task is still running (false once stopped, or if it ended any other way).
    pub running: bool,
    /// When the last tick ended, on the service's clock; `None` before the first. A worker
    /// whose last tick is older than a few intervals is stalled (a store or mailer call that
    /// does not return).
    pub last_tick: Option<Timestamp>,
    /// The last problem a tick met, as text: a claim or purge that failed, a sender-wide mail
    /// failure, a panic. Cleared by a tick that met none. Never a token or an address.
    pub last_error: Option<String>,
    /// Set while delivery is paused by a sender-wide mail failure: when it resumes.
    pub paused_until: Option<Timestamp>,
    /// What it did so far.
    pub totals: DeliveryTotals,
}

/// A background task delivering due outbox messages every `interval`. When a call handled a
/// full batch (`DeliveryPolicy::batch_size` messages), it calls again at once to drain a
/// backlog. After the deliveries of the first tick, and of the first tick once
/// `RetentionPolicy::interval` has passed since the last purge, it runs
/// [`InviteService::purge_expired`] (which deletes in short bounded transactions until nothing
/// expired is left), so storage stops growing without a cron job. Several workers on one
/// store may purge at once. Dropping the worker without [`DeliveryWorker::stop`] lets the
/// task run on until the runtime shuts down.
///
/// The task survives what goes wrong on a tick: a store or mailer error is counted and retried
/// on a later tick, and a panic anywhere in a tick (a mailer, renderer or store that panics)
/// is caught, counted in [`DeliveryTotals::panics`] and reported in
/// [`WorkerHealth::last_error`]; one message that panics uses up its attempts and is set aside
/// while the others are delivered. While delivery is paused by a sender-wide failure
/// ([`InviteService::delivery_pause`]), ticks claim nothing and the health says until when.
#[derive(Debug)]
pub struct DeliveryWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    shared: Arc<Mutex<WorkerHealth>>,
}

impl DeliveryWorker {
    /// Spawns the task on the current tokio runtime; the first run is immediate.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if `interval` is zero.
    pub fn spawn(service: InviteService, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::new(Mutex::new(WorkerHealth {
            running: true,
            ..WorkerHealth::default()
        }));
        let health = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let purge_interval = service.config().retention().interval();
            let mut next_purge = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    biased;
                    _ = stopped.changed() => break,
                    _ = ticks.tick() => {}
                }
                let purge = tokio::time::Instant::now() >= next_purge;
                // The tick runs as its own task, so a panic in it ends that task only.
                let tick = tokio::spawn(tick(service.clone(), purge, stopped.clone()));
                let outcome = match tick.await {
                    Ok(outcome) => outcome,
                    Err(e) => TickOutcome::panicked(e.is_panic()),
                };
                if purge {
                    next_purge = tokio::time::Instant::now() + purge_interval;
                }
                let mut h = lock(&health);
                outcome.apply(&mut h.totals);
                h.last_error = outcome.error;
                h.paused_until = service.delivery_pause().map(|p| p.until);
                h.last_tick = Some(service.config().clock().now());
            }
            lock(&health).running = false;
        });
        DeliveryWorker { stop, task, shared }
    }

    /// The worker's state now: running or not, the last tick, the last problem, the pause,
    /// the totals.
    pub fn health(&self) -> WorkerHealth {
        let mut h = lock(&self.shared).clone();
        h.running &= !self.task.is_finished();
        h
    }

    /// A cheap, cloneable reader of [`health`](Self::health) for a health route, which
    /// outlives no stop: after [`stop`](Self::stop) it reports `running: false`.
    pub fn health_handle(&self) -> HealthHandle {
        HealthHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Asks the task to stop, waits for the run in progress (if any) to finish, and returns
    /// the totals. Never panics: the task catches what its ticks do.
    pub async fn stop(self) -> DeliveryTotals {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let mut h = lock(&self.shared);
        h.running = false;
        h.totals
    }
}

/// Reads a [`DeliveryWorker`]'s health from anywhere (a health route's handler).
#[derive(Clone, Debug)]
pub struct HealthHandle {
    shared: Arc<Mutex<WorkerHealth>>,
}

impl HealthHandle {
    /// The worker's state now (as [`DeliveryWorker::health`]).
    pub fn get(&self) -> WorkerHealth {
        lock(&self.shared).clone()
    }
}

fn lock(m: &Mutex<WorkerHealth>) -> std::sync::MutexGuard<'_, WorkerHealth> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one tick did, added to the totals by the loop.
#[derive(Default)]
struct TickOutcome {
    runs: u64,
    report: DeliveryReport,
    store_errors: usize,
    panics: usize,
    purged: Option<PurgeReport>,
    purges: u64,
    error: Option<String>,
}

impl TickOutcome {
    fn panicked(is_panic: bool) -> Self {
        TickOutcome {
            panics: usize::from(is_panic),
            error: Some("a delivery tick panicked; the worker goes on".into()),
            ..TickOutcome::default()
        }
    }

    fn apply(&self, totals: &mut DeliveryTotals) {
        totals.runs += self.runs;
        totals.add(&self.report);
        totals.store_errors += self.store_errors;
        totals.panics += self.panics;
        totals.purges += self.purges;
        if let Some(p) = &self.purged {
            totals.purged.add(p);
        }
    }
}

/// One tick: deliver until a call comes back short (a backlog drains at once), then purge if
/// it is time.
async fn tick(service: InviteService, purge: bool, stopped: watch::Receiver<bool>) -> TickOutcome {
    let mut out = TickOutcome::default();
    // At least 1 by construction (`DeliveryPolicy::with_batch_size`), so a run that handled
    // nothing always ends the drain loop.
    let batch_size = service.config().delivery().batch_size().max(1);
    loop {
        out.runs += 1;
        match service.deliver_due().await {
            Ok(report) => {
                add_report(&mut out.report, &report);
                if let Some(until) = report.paused_until {
                    let error = service.delivery_pause().map(|p| p.error);
                    out.error = Some(format!(
                        "delivery paused until {} (sender-wide mail failure: {})",
                        until.to_rfc3339(),
                        error.as_deref().unwrap_or("unknown")
                    ));
                    break;
                }
                if report.panicked > 0 {
                    out.error =
                        Some("delivering a message panicked; it was set aside or retried".into());
                }
                let handled = report.sent
                    + report.retried
                    + report.failed
                    + report.cancelled
                    + report.store_errors
                    + report.deferred;
                if handled < batch_size || report.deferred > 0 || *stopped.borrow() {
                    break;
                }
            }
            Err(e) => {
                out.store_errors += 1;
                out.error = Some(format!("claiming due messages failed: {e}"));
                break;
            }
        }
    }
    if purge && !*stopped.borrow() {
        out.purges += 1;
        match service.purge_expired().await {
            Ok(report) => out.purged = Some(report),
            Err(e) => {
                out.store_errors += 1;
                out.error = Some(format!("purge failed: {e}"));
            }
        }
    }
    out
}

fn add_report(sum: &mut DeliveryReport, r: &DeliveryReport) {
    sum.sent += r.sent;
    sum.retried += r.retried;
    sum.failed += r.failed;
    sum.cancelled += r.cancelled;
    sum.store_errors += r.store_errors;
    sum.deferred += r.deferred;
    sum.panicked += r.panicked;
    sum.paused_until = r.paused_until.or(sum.paused_until);
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

    /// Delegates to a recording mailer, but panics for one recipient.
    #[derive(Debug)]
    struct PanicsFor(RecordingMailer, &'static str);

    #[async_trait::async_trait]
    impl invites_core::Mailer for PanicsFor {
        async fn send(
            &self,
            message: &invites_core::EmailMessage,
        ) -> Result<(), invites_core::MailError> {
            if message.to.as_str() == self.1 {
                panic!("a mailer bug for one recipient");
            }
            self.0.send(message).await
        }
    }

    /// Issue 17 item 4: a mailer that panicked for one recipient ended the worker task for
    /// good (later messages stayed queued through 12 ticks, and `stop()` panicked). The worker
    /// now goes on: the message behind the poison one is sent on the same tick, the poison
    /// message is set aside after its attempts, the health reports the panic, and `stop`
    /// returns the totals.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_mailer_does_not_stop_the_worker() {
        let store = MemoryStore::new();
        let world = World::seed(&store).await;
        let clock = ManualClock::standard();
        let recorder = RecordingMailer::new_ok();
        let mailer = PanicsFor(recorder.clone(), "poison@example.test");
        let policy = DeliveryPolicy::default().with_max_attempts(3).unwrap();
        let config = Harness::config(&clock, 7).with_delivery_policy(policy);
        let service = InviteService::new(Arc::new(store.clone()), Arc::new(mailer), config);
        recorder.set_mode(MailerMode::FailTransient);
        for to in ["poison@example.test", "fine@example.test"] {
            let req = BulkInviteRequest::websites(InviteMethod::Email, to, [world.websites[0]]);
            service.bulk_invite(&world.global_key(), req).await.unwrap();
        }
        recorder.set_mode(MailerMode::Ok);
        clock.advance(policy.max_backoff());

        let worker = DeliveryWorker::spawn(service.clone(), Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let health = worker.health();
        assert!(health.running, "{health:?}");
        assert_eq!(health.totals.sent, 1, "the message behind it was sent");
        assert_eq!(health.totals.panics, 1);
        assert!(health.last_error.as_deref().unwrap().contains("panicked"));
        assert!(health.last_tick.is_some());
        for _ in 0..3 {
            clock.advance(policy.max_backoff());
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let health = worker.health();
        assert!(health.running);
        assert_eq!(
            (health.totals.panics, health.totals.failed),
            (2, 1),
            "{health:?}"
        );
        let totals = worker.stop().await;
        assert_eq!(totals.sent, 1);
        let outbox = invites_core::Inspect::snapshot(&store)
            .await
            .unwrap()
            .outbox;
        assert!(
            outbox
                .iter()
                .all(|m| m.status != invites_core::MessageStatus::Queued),
            "nothing left queued: {outbox:?}"
        );
    }

    /// A mailer that blames the sender pauses delivery; the health says until when and why,
    /// and the queue is kept.
    #[tokio::test(start_paused = true)]
    async fn a_paused_delivery_shows_in_the_health() {
        let store = MemoryStore::new();
        let world = World::seed(&store).await;
        let clock = ManualClock::standard();
        let mailer = RecordingMailer::new_ok();
        let config = Harness::config(&clock, 7);
        let service = InviteService::new(Arc::new(store), Arc::new(mailer.clone()), config);
        mailer.set_mode(MailerMode::FailTransient);
        let req =
            BulkInviteRequest::websites(InviteMethod::Email, "a@example.test", [world.websites[0]]);
        service.bulk_invite(&world.global_key(), req).await.unwrap();
        mailer.set_mode(MailerMode::FailMisconfigured);
        clock.advance(service.config().delivery().max_backoff());
        let worker = DeliveryWorker::spawn(service.clone(), Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let health = worker.health();
        assert!(health.paused_until.is_some(), "{health:?}");
        assert!(health.last_error.as_deref().unwrap().contains("paused"));
        assert_eq!((health.totals.failed, health.totals.deferred), (0, 1));
        worker.stop().await;
    }
}
