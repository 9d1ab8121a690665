//! The outbox: rendering a batch from its live invitations, delivering, recording the outcome with
//! backoff; pausing on a sender-wide failure; surviving a panic; re-queueing failed messages.

use super::unwind::catch_unwind;
use super::*;
use crate::error::{InviteError, MailError, StoreError};
use crate::ids::MessageId;
use crate::mail::{BatchEmail, EmailMessage, EmailTarget, Mailer, sanitize_header};
use crate::observe::Operation;
use crate::response::EmailStatus;
use crate::store::{
    BatchRecord, DeliveryUpdate, InvitationRecord, MessageStatus, OutboxMessage, RotateBatch,
    RotateFact,
};
use crate::time::Timestamp;
use crate::tokens::AcceptToken;
use std::time::Duration;

pub(super) enum Delivered {
    Sent,
    Retry,
    Failed,
    Cancelled,
    /// The mailer blamed the sender: delivery is paused, the message is back in the queue.
    Paused,
}

/// Sender-wide failures in a row, and until when delivery waits. Shared by the clones of a
/// service (one per process); each app server pauses on its own.
#[derive(Debug, Default)]
pub(super) struct PauseState {
    current: Option<DeliveryPause>,
}

/// How many failed messages [`InviteService::requeue_failed`] reads per store call.
const REQUEUE_PAGE: usize = 100;

impl InviteService {
    /// Records a delivery outcome at the clock's now (the time of its event, if any).
    async fn record(&self, id: MessageId, update: DeliveryUpdate) -> Result<(), StoreError> {
        self.store.record_delivery(id, update, self.now()).await
    }

    /// Delivers a freshly stored message; the response reports `sent` only when the mailer
    /// accepted it.
    ///
    /// The message was stored leased until `message.next_attempt_at`; the send starts only if
    /// it can end before that (the mailer's [`send_timeout`](Mailer::send_timeout)), and not
    /// while delivery is paused: otherwise the message stays queued for the worker.
    pub(super) async fn deliver_now(&self, message: &OutboxMessage) -> EmailStatus {
        let now = self.now();
        if self.paused_until(now).is_some()
            || now.plus(self.send_bound()) >= message.next_attempt_at
        {
            return EmailStatus::Queued;
        }
        match self.deliver_observed(message, message.attempts + 1).await {
            Ok((Delivered::Sent, _)) => EmailStatus::Sent,
            Ok((Delivered::Failed, _)) => EmailStatus::Failed,
            Ok((Delivered::Cancelled, _)) => EmailStatus::NotSent,
            Ok((Delivered::Retry | Delivered::Paused, _)) => EmailStatus::Queued,
            Err(e) => {
                // Stored and leased: the delivery worker picks it up once the lease runs out.
                note_dropped("deliver", &e);
                EmailStatus::Queued
            }
        }
    }

    /// Renders the message of a batch from its live invitations.
    pub(super) fn render(
        &self,
        batch: &BatchRecord,
        message: &OutboxMessage,
        now: Timestamp,
    ) -> Option<EmailMessage> {
        let mut live: Vec<&InvitationRecord> = batch
            .invitations
            .iter()
            .filter(|i| i.is_live(now))
            .collect();
        // Listed by name (then id), so the email reads the same whatever the ids are.
        live.sort_by(|a, b| (&a.target_name, a.target).cmp(&(&b.target_name, b.target)));
        let accept_url = message.accept_url.clone()?;
        let expires_at = live.iter().map(|i| i.expires_at).min()?;
        let email = BatchEmail {
            to: batch.email.clone(),
            first_name: live.iter().find_map(|i| i.first_name.clone()),
            targets: live
                .iter()
                .map(|i| EmailTarget {
                    kind: i.target.kind(),
                    name: i.target_name.clone(),
                    role: i.role,
                })
                .collect(),
            expires_at,
            accept_url,
        };
        let rendered = self.config.renderer.render(&email);
        Some(EmailMessage {
            id: message.id,
            batch_id: batch.id,
            to: batch.email.clone(),
            subject: sanitize_header(&rendered.subject),
            text: rendered.text,
            html: rendered.html,
        })
    }

    /// The longest a send may take: the mailer's own bound, or half the lease.
    fn send_bound(&self) -> Duration {
        self.mailer
            .send_timeout()
            .unwrap_or(self.config.delivery.lease / 2)
    }

    /// [`deliver`](Self::deliver) with a panic in the renderer, the mailer or the store
    /// caught: the attempt counts (retried, or set aside as failed after `max_attempts`), a
    /// warning says so, and the caller goes on. The flag is true when it panicked.
    pub(super) async fn deliver_guarded(
        &self,
        message: &OutboxMessage,
        attempt: u32,
    ) -> Result<(Delivered, bool), StoreError> {
        match catch_unwind(self.deliver(message, attempt)).await {
            Ok(delivered) => delivered.map(|d| (d, false)),
            Err(panic) => {
                let what = super::unwind::panic_text(&panic);
                tracing::warn!(
                    message_id = %message.id,
                    attempt,
                    panic = what,
                    "delivering a message panicked; the attempt counts and delivery goes on"
                );
                let now = self.now();
                let error = format!("delivery panicked: {what}");
                let (update, delivered) = if attempt < self.config.delivery.max_attempts {
                    let next_attempt_at = now.plus(self.config.delivery.retry_wait(attempt, None));
                    let update = DeliveryUpdate::Retry {
                        attempts: attempt,
                        next_attempt_at,
                        error,
                    };
                    (update, Delivered::Retry)
                } else {
                    let update = DeliveryUpdate::Failed {
                        attempts: attempt,
                        error,
                    };
                    (update, Delivered::Failed)
                };
                self.record(message.id, update).await?;
                Ok((delivered, true))
            }
        }
    }

    /// One attempt (`attempt`: this attempt's number, counted by the claim for a claimed
    /// message). Every time in it, the retry's included, is taken when it happens, not at the
    /// start of the pass.
    pub(super) async fn deliver(
        &self,
        message: &OutboxMessage,
        attempt: u32,
    ) -> Result<Delivered, StoreError> {
        let max_attempts = self.config.delivery.max_attempts;
        if attempt > max_attempts {
            // Claimed `max_attempts` times already without an outcome recorded: every one of
            // those attempts ended the process (a crash or an abort mid-send). Set aside.
            let error = format!(
                "not sent: {} attempts ended without an outcome (the process stopped mid-send)",
                attempt - 1
            );
            self.record(
                message.id,
                DeliveryUpdate::Failed {
                    attempts: attempt - 1,
                    error,
                },
            )
            .await?;
            return Ok(Delivered::Failed);
        }
        let batch = match self
            .store
            .get_batch(message.organization, message.batch_id)
            .await
        {
            Ok(batch) => batch,
            // The store cannot read the batch (a row it cannot decode): no retry will help, so
            // the message is given up with the store's reason (a column, never a value) instead
            // of coming back after every lease.
            Err(e @ StoreError::Incompatible { .. }) => {
                note_dropped("deliver: batch cannot be read", &e);
                crate::observe::set_aside();
                self.record(
                    message.id,
                    DeliveryUpdate::Failed {
                        attempts: attempt - 1,
                        error: format!("not sent: {e}"),
                    },
                )
                .await?;
                return Ok(Delivered::Failed);
            }
            Err(e) => return Err(e),
        };
        let rendered = batch
            .as_ref()
            .and_then(|b| self.render(b, message, self.now()));
        let Some(rendered) = rendered else {
            self.record(
                message.id,
                DeliveryUpdate::Cancelled {
                    attempts: attempt - 1,
                },
            )
            .await?;
            return Ok(Delivered::Cancelled);
        };
        let result = self.mailer.send(&rendered).await;
        let now = self.now();
        let update = match result {
            Ok(()) => {
                self.resume_delivery();
                self.record(message.id, DeliveryUpdate::Sent { attempts: attempt })
                    .await?;
                return Ok(Delivered::Sent);
            }
            Err(e) if e.is_misconfigured() => {
                // The sender's fault, not this message's: the attempt does not count.
                let until = self.pause_delivery(now, &e);
                self.record(
                    message.id,
                    DeliveryUpdate::Retry {
                        attempts: attempt - 1,
                        next_attempt_at: until,
                        error: e.to_string(),
                    },
                )
                .await?;
                return Ok(Delivered::Paused);
            }
            Err(e) if e.is_retryable() && attempt < max_attempts => {
                self.resume_delivery();
                DeliveryUpdate::Retry {
                    attempts: attempt,
                    next_attempt_at: now
                        .plus(self.config.delivery.retry_wait(attempt, e.retry_after())),
                    error: e.to_string(),
                }
            }
            Err(e) => {
                self.resume_delivery();
                DeliveryUpdate::Failed {
                    attempts: attempt,
                    error: e.to_string(),
                }
            }
        };
        let delivered = match update {
            DeliveryUpdate::Retry { .. } => Delivered::Retry,
            _ => Delivered::Failed,
        };
        self.record(message.id, update).await?;
        Ok(delivered)
    }

    /// Pauses delivery after a sender-wide failure: the pause doubles with each failure in a
    /// row (the delivery backoff). Returns when delivery resumes.
    fn pause_delivery(&self, now: Timestamp, error: &MailError) -> Timestamp {
        let mut state = self.pause.lock().unwrap_or_else(|p| p.into_inner());
        let failures = state.current.as_ref().map_or(0, |p| p.failures) + 1;
        let until = now.plus(self.config.delivery.backoff(failures));
        tracing::warn!(
            failures,
            resumes_in_secs = now.seconds_until(until),
            error = %error,
            "mail delivery paused: the mailer refused the sender, not a message; \
             messages stay queued"
        );
        state.current = Some(DeliveryPause {
            until,
            failures,
            error: error.to_string(),
        });
        until
    }

    /// A send got past the sender (sent, or refused for the message itself): not paused.
    fn resume_delivery(&self) {
        let mut state = self.pause.lock().unwrap_or_else(|p| p.into_inner());
        if state.current.take().is_some() {
            tracing::info!("mail delivery resumed");
        }
    }

    /// The end of the current pause, if delivery is paused at `now`.
    fn paused_until(&self, now: Timestamp) -> Option<Timestamp> {
        let state = self.pause.lock().unwrap_or_else(|p| p.into_inner());
        state
            .current
            .as_ref()
            .map(|p| p.until)
            .filter(|until| now < *until)
    }

    /// Whether delivery is paused by a sender-wide mail failure (a
    /// [`MailError::misconfigured`](crate::MailError::misconfigured): bad credentials, a
    /// suspended account, a server refusing the sender), and until when. `None` while
    /// delivering normally. The pause ends by itself: after it, the next delivery call tries
    /// one message; success resumes delivery, another sender-wide failure pauses it twice as
    /// long (up to the delivery policy's `max_backoff`). The state is per process.
    pub fn delivery_pause(&self) -> Option<DeliveryPause> {
        let state = self.pause.lock().unwrap_or_else(|p| p.into_inner());
        state.current.clone()
    }

    /// Delivers queued messages that are due: renders each from its batch's live invitations
    /// (a batch with none left is cancelled, never sent), hands it to the mailer, and records
    /// the outcome; transient errors back off exponentially from the time of that attempt (or
    /// wait out the mailer's [`retry_after`](crate::MailError::retry_after) hint when it is
    /// longer, never beyond `max_backoff`), permanent ones or too many attempts mark the
    /// message failed.
    ///
    /// **A sender-wide failure pauses delivery** ([`MailError::misconfigured`](
    /// crate::MailError::misconfigured): bad credentials, a suspended account, a server
    /// refusing the sender). The message stays queued without counting the attempt, the rest
    /// of the claimed messages are put back unattempted (`deferred`), a warning is logged, and
    /// calls claim nothing until the pause ends ([`delivery_pause`](Self::delivery_pause)).
    /// One misconfigured account can no longer burn the queue in one pass.
    ///
    /// **A panic** in the renderer, the mailer or the store while delivering one message is
    /// caught: the attempt counts (the claim counted it), the message is retried with backoff
    /// or, after `max_attempts`, set aside as failed, and the other messages are delivered.
    /// A message whose attempts all ended the process (claimed `max_attempts` times without
    /// an outcome) is set aside too.
    ///
    /// Messages are claimed for [`DeliveryPolicy::lease`](crate::DeliveryPolicy::lease). A
    /// send starts only while the lease has at least the mailer's
    /// [`send_timeout`](Mailer::send_timeout) left; once it has not, the call puts the rest
    /// back (due at once, attempts restored) and returns, so a claimed message is never sent
    /// by two deliverers while its claim holds.
    ///
    /// One row the store cannot read never stops the others: a due message whose own row
    /// cannot be decoded is set aside by the store's claim (marked failed, never returned), and
    /// a message whose batch cannot be read ([`StoreError::Incompatible`] from `get_batch`) is
    /// marked failed here, with the reason in `last_error`, and counted as `failed`.
    ///
    /// # Errors
    /// [`InviteError::Unavailable`] if the due messages cannot be claimed. Failures on single
    /// messages are counted in the report; those messages come back after their lease.
    #[tracing::instrument(
        name = "deliver_due",
        skip_all,
        fields(
            sent,
            retried,
            failed,
            cancelled,
            store_errors,
            deferred,
            panicked,
            queued,
            oldest_queued_age_seconds,
            outcome,
            duration_seconds
        )
    )]
    pub async fn deliver_due(&self) -> Result<DeliveryReport, InviteError> {
        let report = self
            .observed(Operation::DeliverDue, self.deliver_pass())
            .await;
        self.observe_backlog().await;
        report
    }

    async fn deliver_pass(&self) -> Result<DeliveryReport, InviteError> {
        let now = self.now();
        let mut report = DeliveryReport::default();
        if let Some(until) = self.paused_until(now) {
            report.paused_until = Some(until);
            return Ok(report);
        }
        let policy = &self.config.delivery;
        let lease_until = now.plus(policy.lease);
        let due = self
            .store
            .claim_due_messages(now, lease_until, policy.batch_size)
            .await?;
        let bound = self.send_bound();
        let mut rest = due.iter();
        while let Some(message) = rest.next() {
            // The claim is a lease: a send that could outlive it might run beside another
            // deliverer's send of the same message, so none starts that late.
            if self.now().plus(bound) >= lease_until {
                let back = std::iter::once(message).chain(rest.by_ref());
                report.deferred += self.put_back(back, self.now(), lease_until).await;
                break;
            }
            match self.deliver_observed(message, message.attempts).await {
                Ok((delivered, panicked)) => {
                    report.panicked += usize::from(panicked);
                    match delivered {
                        Delivered::Sent => report.sent += 1,
                        Delivered::Retry => report.retried += 1,
                        Delivered::Failed => report.failed += 1,
                        Delivered::Cancelled => report.cancelled += 1,
                        Delivered::Paused => {
                            report.deferred += 1;
                            let until = self.paused_until(self.now()).unwrap_or(now);
                            report.deferred +=
                                self.put_back(rest.by_ref(), until, lease_until).await;
                            report.paused_until = Some(until);
                            break;
                        }
                    }
                }
                Err(e) => {
                    note_dropped("deliver", &e);
                    report.store_errors += 1;
                }
            }
        }
        Ok(report)
    }

    /// Puts claimed messages back unattempted: due at `due_at`, the claim's attempt given
    /// back, fenced by the claim's lease. Returns how many it put back; one that cannot be
    /// (a store error) comes back after its lease, with the attempt counted.
    async fn put_back<'a>(
        &self,
        messages: impl Iterator<Item = &'a OutboxMessage>,
        due_at: Timestamp,
        leased_until: Timestamp,
    ) -> usize {
        let mut n = 0;
        for message in messages {
            let update = DeliveryUpdate::Deferred {
                attempts: message.attempts.saturating_sub(1),
                next_attempt_at: due_at,
                leased_until,
            };
            match self.record(message.id, update).await {
                Ok(()) => n += 1,
                Err(e) => note_dropped("deliver: put back", &e),
            }
        }
        n
    }

    /// Sends again, with a new link, the batches whose message **failed** and was created in
    /// `[created_from, created_until)`: a host's recovery after an outage or a
    /// misconfiguration that failed mail. For each failed message that is still the newest of
    /// its batch, the batch is rotated as [`resend`](Self::resend) does, without its rate
    /// limit and without a principal: a new token (the failed message's link was cleared when
    /// it failed and never reached anyone), the batch's pending and expired invitations
    /// renewed, and a new message queued, due at once, for the delivery worker. A batch sent
    /// again since, or with no pending or expired invitation left, is skipped.
    ///
    /// A host call for operators: it is not scoped to an organization.
    ///
    /// # Errors
    /// [`InviteError::Validation`] (field `created_until`) if the window is empty or
    /// reversed; [`InviteError::Unavailable`] if the store fails (the batches rotated before
    /// the failure stay rotated; calling again is safe: they are no longer failed).
    #[tracing::instrument(name = "requeue_failed", skip_all, fields(created_from = %created_from, created_until = %created_until))]
    pub async fn requeue_failed(
        &self,
        created_from: Timestamp,
        created_until: Timestamp,
    ) -> Result<RequeueReport, InviteError> {
        if created_until <= created_from {
            return Err(InviteError::Validation {
                code: crate::error::ErrorCode::InvalidQuery,
                field: "created_until".into(),
                reason: "must be after created_from".into(),
            });
        }
        let mut report = RequeueReport::default();
        let mut after = None;
        loop {
            let page = self
                .store
                .failed_messages(created_from, created_until, after, REQUEUE_PAGE)
                .await?;
            for message in &page {
                report.failed_found += 1;
                if self.requeue_one(message).await? {
                    report.requeued += 1;
                } else {
                    report.skipped += 1;
                }
            }
            match page.last() {
                Some(last) if page.len() == REQUEUE_PAGE => {
                    after = Some((last.created_at, last.id))
                }
                _ => return Ok(report),
            }
        }
    }

    async fn requeue_one(&self, message: &OutboxMessage) -> Result<bool, StoreError> {
        let newest = self
            .store
            .batch_messages(message.batch_id)
            .await?
            .into_iter()
            .max_by_key(|m| (m.created_at, m.id));
        if newest.is_none_or(|m| m.id != message.id || m.status != MessageStatus::Failed) {
            return Ok(false);
        }
        let now = self.now();
        let token = AcceptToken::generate(self.config.random.as_ref());
        let cmd = RotateBatch {
            organization: message.organization,
            batch_id: message.batch_id,
            new_token_hash: token.hash(),
            expires_at: now.plus(self.config.invitation_ttl),
            message_id: MessageId(self.config.random.uuid()),
            accept_url: self.config.accept_url(&token),
            message_due_at: now,
            not_sent_after: now,
            now,
            actor: None,
        };
        Ok(matches!(
            self.store.rotate_batch(&cmd).await?,
            RotateFact::Rotated { .. }
        ))
    }
}
