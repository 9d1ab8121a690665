//! Delivery in the model: rendering from live invitations, retries with backoff.

use super::*;
use invites_core::MailerMode;
use invites_core::sanitize_header;
use std::time::Duration;

impl Model {
    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        let mut d = self.settings.base_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.settings.max_backoff {
                break;
            }
        }
        d.min(self.settings.max_backoff)
    }

    // ----- bulk invites -----------------------------------------------------------------

    pub(super) fn deliver_now(&mut self, message: MessageId) -> EmailStatus {
        let i = self
            .outbox
            .iter()
            .position(|m| m.id == message)
            .expect("just stored");
        let attempt = self.outbox[i].attempts + 1;
        match self.deliver(i, attempt) {
            Delivery::Sent => EmailStatus::Sent,
            Delivery::Failed => EmailStatus::Failed,
            Delivery::Cancelled => EmailStatus::NotSent,
            Delivery::Retry => EmailStatus::Queued,
        }
    }

    /// The message announcing the live invitations of a batch, if it has any.
    pub(super) fn render(&self, message: &OutboxMessage) -> Option<EmailMessage> {
        let batch = &self.batches[self.batch_index(message.batch_id)?];
        let url = message.accept_url.clone()?;
        let mut live: Vec<&InvitationRecord> = self
            .batch_invitations(batch.id)
            .into_iter()
            .map(|i| &self.invitations[i])
            .filter(|i| self.is_live(i))
            .collect();
        live.sort_by(|a, b| (&a.target_name, a.target).cmp(&(&b.target_name, b.target)));
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
            accept_url: url,
        };
        let r = DefaultRenderer::default().render(&email);
        Some(EmailMessage {
            id: message.id,
            batch_id: batch.id,
            to: batch.email.clone(),
            subject: sanitize_header(&r.subject),
            text: r.text,
            html: r.html,
        })
    }

    /// One attempt, `attempts` being its number (counted by the claim for a claimed message).
    pub(super) fn deliver(&mut self, index: usize, attempts: u32) -> Delivery {
        let now = self.now;
        let Some(rendered) = self.render(&self.outbox[index]) else {
            let m = &mut self.outbox[index];
            m.status = MessageStatus::Cancelled;
            m.attempts = attempts - 1; // nothing sent: the claim's count is given back
            m.accept_url = None;
            return Delivery::Cancelled;
        };
        let retry_at = plus(now, self.backoff(attempts));
        let max_attempts = self.settings.max_attempts;
        let mode = self.mailer;
        let m = &mut self.outbox[index];
        let (organization, batch, id) = (m.organization, m.batch_id, m.id);
        m.attempts = attempts;
        let delivery = match mode {
            MailerMode::Ok => {
                self.sent.push(rendered);
                m.status = MessageStatus::Sent;
                m.accept_url = None;
                Delivery::Sent
            }
            MailerMode::FailTransient if attempts < max_attempts => {
                m.next_attempt_at = retry_at;
                m.last_error = Some(
                    MailError::transient("recording mailer set to fail (transient)").to_string(),
                );
                Delivery::Retry
            }
            MailerMode::FailTransient => {
                m.status = MessageStatus::Failed;
                m.accept_url = None;
                m.last_error = Some(
                    MailError::transient("recording mailer set to fail (transient)").to_string(),
                );
                Delivery::Failed
            }
            // The operation strategies never pick it: a sender-wide failure pauses the
            // service's delivery (per-process state the model does not keep); the pause is
            // tested on its own in the core's `outbox_delivery` tests.
            MailerMode::FailMisconfigured => {
                unreachable!("the reference model is never driven with a misconfigured mailer")
            }
            MailerMode::FailPermanent => {
                m.status = MessageStatus::Failed;
                m.accept_url = None;
                m.last_error = Some(
                    MailError::permanent("recording mailer set to fail (permanent)").to_string(),
                );
                Delivery::Failed
            }
        };
        match delivery {
            Delivery::Sent => self.emit(organization, None, NewEvent::email_sent(batch, id)),
            Delivery::Failed => self.emit(organization, None, NewEvent::email_failed(batch, id)),
            Delivery::Retry | Delivery::Cancelled => {}
        }
        delivery
    }

    /// `InviteService::deliver_due`: claims the queued messages that are due (oldest due
    /// first, at most `batch_size`, each leased), then tries each once.
    pub fn deliver_due(&mut self) -> DeliveryReport {
        let now = self.now;
        let mut due: Vec<usize> = (0..self.outbox.len())
            .filter(|i| {
                self.outbox[*i].status == MessageStatus::Queued
                    && self.outbox[*i].next_attempt_at <= now
            })
            .collect();
        due.sort_by_key(|i| {
            let m = &self.outbox[*i];
            (m.next_attempt_at, m.created_at, m.id)
        });
        due.truncate(self.settings.batch_size);
        // The claim leases each message and counts its attempt (a cancelled one keeps it).
        for i in &due {
            self.outbox[*i].next_attempt_at = plus(now, self.settings.lease);
            self.outbox[*i].attempts += 1;
        }
        let mut report = DeliveryReport::default();
        for i in due {
            let attempt = self.outbox[i].attempts;
            match self.deliver(i, attempt) {
                Delivery::Sent => report.sent += 1,
                Delivery::Retry => report.retried += 1,
                Delivery::Failed => report.failed += 1,
                Delivery::Cancelled => report.cancelled += 1,
            }
        }
        report
    }

    // ----- the lifecycle ----------------------------------------------------------------
}
