//! The purge in the model, written from the crate docs' "Retention" (not from
//! `invites_core::rules`): dead batches, old finished messages but each kept batch's newest,
//! expired idempotency records.

use super::*;

impl Model {
    /// `InviteService::purge_expired` at the model's clock.
    pub fn purge_expired(&mut self) -> PurgeReport {
        let history_before = minus(self.now, self.settings.history);
        let keys_before = minus(self.now, self.settings.idempotency_ttl);
        let mut report = PurgeReport::default();

        // A batch is dead when it was last sent, every invitation expired and every message
        // was last held before the cutoff, and none of its messages is queued.
        let dead: Vec<BatchId> = self
            .batches
            .iter()
            .filter(|b| {
                b.last_sent_at < history_before
                    && self
                        .invitations
                        .iter()
                        .filter(|i| i.batch_id == b.id)
                        .all(|i| i.expires_at < history_before)
                    && self.outbox.iter().filter(|m| m.batch_id == b.id).all(|m| {
                        m.status != MessageStatus::Queued && m.next_attempt_at < history_before
                    })
            })
            .map(|b| b.id)
            .collect();
        report.batches = dead.len() as u64;
        let before = self.invitations.len();
        self.invitations.retain(|i| !dead.contains(&i.batch_id));
        report.invitations = (before - self.invitations.len()) as u64;
        let before = self.outbox.len();
        self.outbox.retain(|m| !dead.contains(&m.batch_id));
        self.batches.retain(|b| !dead.contains(&b.id));

        // A finished message last held before the cutoff goes, unless it is the newest of
        // its batch (by created_at, then id).
        let newest = |outbox: &[OutboxMessage], m: &OutboxMessage| {
            outbox
                .iter()
                .filter(|n| n.batch_id == m.batch_id)
                .all(|n| (n.created_at, n.id) <= (m.created_at, m.id))
        };
        let snapshot = self.outbox.clone();
        self.outbox.retain(|m| {
            m.status == MessageStatus::Queued
                || m.next_attempt_at >= history_before
                || newest(&snapshot, m)
        });
        report.messages = (before - self.outbox.len()) as u64;

        let before = self.idempotency.len();
        self.idempotency.retain(|r| r.created_at >= keys_before);
        report.idempotency_records = (before - self.idempotency.len()) as u64;
        report.events = self.purge_events(history_before);
        report
    }
}
