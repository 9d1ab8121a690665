//! The outbox: rendering a batch from its live invitations, delivering, recording the outcome with
//! backoff.

use super::*;
use crate::error::{InviteError, StoreError};
use crate::mail::{BatchEmail, EmailMessage, EmailTarget, Mailer, sanitize_header};
use crate::observe::Operation;
use crate::response::EmailStatus;
use crate::store::{BatchRecord, DeliveryUpdate, InvitationRecord, OutboxMessage};
use crate::time::Timestamp;

pub(super) enum Delivered {
    Sent,
    Retry,
    Failed,
    Cancelled,
}

impl InviteService {
    /// Delivers a freshly stored message; the response reports `sent` only when the mailer
    /// accepted it.
    pub(super) async fn deliver_now(&self, message: &OutboxMessage) -> EmailStatus {
        match self.deliver_observed(message, self.now()).await {
            Ok(Delivered::Sent) => EmailStatus::Sent,
            Ok(Delivered::Failed) => EmailStatus::Failed,
            Ok(Delivered::Cancelled) => EmailStatus::NotSent,
            Ok(Delivered::Retry) => EmailStatus::Queued,
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

    pub(super) async fn deliver(
        &self,
        message: &OutboxMessage,
        now: Timestamp,
    ) -> Result<Delivered, StoreError> {
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
                self.store
                    .record_delivery(
                        message.id,
                        DeliveryUpdate::Failed {
                            attempts: message.attempts,
                            error: format!("not sent: {e}"),
                        },
                    )
                    .await?;
                return Ok(Delivered::Failed);
            }
            Err(e) => return Err(e),
        };
        let rendered = batch.as_ref().and_then(|b| self.render(b, message, now));
        let Some(rendered) = rendered else {
            self.store
                .record_delivery(message.id, DeliveryUpdate::Cancelled)
                .await?;
            return Ok(Delivered::Cancelled);
        };
        let attempts = message.attempts + 1;
        match self.mailer.send(&rendered).await {
            Ok(()) => {
                self.store
                    .record_delivery(message.id, DeliveryUpdate::Sent { attempts })
                    .await?;
                Ok(Delivered::Sent)
            }
            Err(e) if e.is_retryable() && attempts < self.config.delivery.max_attempts => {
                let next_attempt_at =
                    now.plus(self.config.delivery.retry_wait(attempts, e.retry_after()));
                self.store
                    .record_delivery(
                        message.id,
                        DeliveryUpdate::Retry {
                            attempts,
                            next_attempt_at,
                            error: e.to_string(),
                        },
                    )
                    .await?;
                Ok(Delivered::Retry)
            }
            Err(e) => {
                self.store
                    .record_delivery(
                        message.id,
                        DeliveryUpdate::Failed {
                            attempts,
                            error: e.to_string(),
                        },
                    )
                    .await?;
                Ok(Delivered::Failed)
            }
        }
    }

    /// Delivers queued messages that are due: renders each from its batch's live invitations
    /// (a batch with none left is cancelled, never sent), hands it to the mailer, and records
    /// the outcome; transient errors back off exponentially (or wait out the mailer's
    /// [`retry_after`](crate::MailError::retry_after) hint when it is longer, never beyond
    /// `max_backoff`), permanent ones or too many attempts mark the message failed.
    ///
    /// Messages are claimed for [`DeliveryPolicy::lease`](crate::DeliveryPolicy::lease); once that has run out (slow sends),
    /// the call stops and leaves the rest for a later call, so a claimed message is never sent
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
        let policy = &self.config.delivery;
        let lease_until = now.plus(policy.lease);
        let due = self
            .store
            .claim_due_messages(now, lease_until, policy.batch_size)
            .await?;
        let mut report = DeliveryReport::default();
        for message in &due {
            // The claim is a lease: once it has run out another deliverer may claim the same
            // messages, so this one stops sending; the rest come back when their lease ends.
            if self.now() >= lease_until {
                break;
            }
            match self.deliver_observed(message, now).await {
                Ok(Delivered::Sent) => report.sent += 1,
                Ok(Delivered::Retry) => report.retried += 1,
                Ok(Delivered::Failed) => report.failed += 1,
                Ok(Delivered::Cancelled) => report.cancelled += 1,
                Err(e) => {
                    note_dropped("deliver", &e);
                    report.store_errors += 1;
                }
            }
        }
        Ok(report)
    }
}
