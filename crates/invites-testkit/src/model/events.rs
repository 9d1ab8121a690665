//! The event log in the model (docs/contract.md §12), written from the `invites_core::events`
//! module docs: each change appends its events at the organization's next positions, in the
//! order those docs give.

use super::*;
use std::collections::BTreeSet;

impl Model {
    /// Appends one event of `organization`, caused by `actor`, at the model's clock.
    pub(super) fn emit(
        &mut self,
        organization: OrganizationId,
        actor: Option<ApiKeyId>,
        event: NewEvent,
    ) {
        let seq = self.event_seq.entry(organization).or_insert(0);
        *seq += 1;
        let ctx = EventContext {
            organization,
            actor,
            at: self.now,
        };
        self.events.push(event.at_position(&ctx, *seq));
    }

    /// Every stored event of `organization`, by position.
    pub fn events(&self, organization: OrganizationId) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.organization == organization)
            .cloned()
            .collect()
    }

    /// Every organization that has had an event.
    pub fn event_organizations(&self) -> BTreeSet<OrganizationId> {
        self.event_seq.keys().copied().collect()
    }

    /// Erasure's part of the log: the user's id leaves every event.
    pub(super) fn forget_in_events(&mut self, user: UserId) {
        for e in &mut self.events {
            if e.user == Some(user) {
                e.user = None;
            }
        }
    }

    /// The purge's part: events older than `before` go; positions are not reused.
    pub(super) fn purge_events(&mut self, before: Timestamp) -> u64 {
        let n = self.events.len();
        self.events.retain(|e| e.at >= before);
        (n - self.events.len()) as u64
    }
}
