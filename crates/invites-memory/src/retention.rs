//! The purge: facts gathered from the maps, the decision from `invites_core::rules`.

use crate::State;
use invites_core::rules::{self, BatchRetentionFacts, MessageRetentionFacts};
use invites_core::{BatchId, MessageId, PurgedBatches, Timestamp};
use std::collections::BTreeMap;

impl State {
    /// The newest message (by `(created_at, id)`) of every batch that has one.
    fn newest_messages(&self) -> BTreeMap<BatchId, MessageId> {
        let mut newest: BTreeMap<BatchId, (Timestamp, MessageId)> = BTreeMap::new();
        for m in self.outbox.values() {
            let entry = newest.entry(m.batch_id).or_insert((m.created_at, m.id));
            *entry = (*entry).max((m.created_at, m.id));
        }
        newest.into_iter().map(|(b, (_, m))| (b, m)).collect()
    }

    fn batch_facts(&self, id: BatchId, last_sent_at: Timestamp) -> BatchRetentionFacts {
        let invitations = self.batch_invitations.get(&id).into_iter().flatten();
        let messages = || self.outbox.values().filter(move |m| m.batch_id == id);
        BatchRetentionFacts {
            last_sent_at,
            latest_expiry: invitations
                .filter_map(|i| self.invitations.get(i))
                .map(|i| i.expires_at)
                .max(),
            latest_message_at: messages().map(|m| m.next_attempt_at).max(),
            queued_message: messages().any(|m| !rules::message_is_finished(m.status)),
        }
    }

    pub(crate) fn purge_batches(&mut self, before: Timestamp, limit: usize) -> PurgedBatches {
        let mut candidates: Vec<(Timestamp, BatchId)> = self
            .batches
            .iter()
            .filter(|(_, b)| b.last_sent_at < before)
            .map(|(id, b)| (b.last_sent_at, *id))
            .collect();
        candidates.sort();
        let dead: Vec<BatchId> = candidates
            .into_iter()
            .filter(|(sent, id)| rules::batch_is_purgeable(&self.batch_facts(*id, *sent), before))
            .map(|(_, id)| id)
            .take(limit)
            .collect();
        let mut purged = PurgedBatches::default();
        for id in dead {
            let Some(batch) = self.batches.remove(&id) else {
                continue;
            };
            self.tokens.remove(&batch.token_hash);
            for inv in self.batch_invitations.remove(&id).unwrap_or_default() {
                if let Some(record) = self.invitations.remove(&inv) {
                    // A stored-pending one (expired long ago) frees its (target, email) slot.
                    let slot = (record.target, record.email);
                    if self.pending.get(&slot) == Some(&inv) {
                        self.pending.remove(&slot);
                    }
                    purged.invitations += 1;
                }
            }
            let before_len = self.outbox.len();
            self.outbox.retain(|_, m| m.batch_id != id);
            purged.messages += (before_len - self.outbox.len()) as u64;
            purged.batches += 1;
        }
        purged
    }

    pub(crate) fn purge_messages(&mut self, before: Timestamp, limit: usize) -> u64 {
        let newest = self.newest_messages();
        let mut doomed: Vec<(Timestamp, MessageId)> = self
            .outbox
            .values()
            .filter(|m| {
                let facts = MessageRetentionFacts {
                    status: m.status,
                    next_attempt_at: m.next_attempt_at,
                    newest_of_batch: newest.get(&m.batch_id) == Some(&m.id),
                };
                rules::message_is_purgeable(&facts, before)
            })
            .map(|m| (m.next_attempt_at, m.id))
            .collect();
        doomed.sort();
        doomed.truncate(limit);
        for (_, id) in &doomed {
            self.outbox.remove(id);
        }
        doomed.len() as u64
    }

    pub(crate) fn purge_idempotency(&mut self, expired_before: Timestamp, limit: usize) -> u64 {
        let mut doomed: Vec<_> = self
            .idempotency
            .iter()
            .filter(|(_, r)| rules::idempotency_is_expired(r.created_at, expired_before))
            .map(|(k, r)| (r.created_at, k.clone()))
            .collect();
        doomed.sort();
        doomed.truncate(limit);
        for (_, key) in &doomed {
            self.idempotency.remove(key);
        }
        doomed.len() as u64
    }
}
