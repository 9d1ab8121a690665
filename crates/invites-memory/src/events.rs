//! [`EventStore`] for [`MemoryStore`]: the log is a map by (organization, position); the
//! store's one lock makes every call's events contiguous and in commit order.

use crate::MemoryStore;
use async_trait::async_trait;
use invites_core::{Event, EventStore, OrganizationId, StoreError, Timestamp};

#[async_trait]
impl EventStore for MemoryStore {
    async fn read_events(
        &self,
        organization: OrganizationId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let s = self.lock();
        Ok(s.events
            .range((organization, after.saturating_add(1))..=(organization, u64::MAX))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn purge_events(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let mut s = self.lock();
        let mut old: Vec<(Timestamp, (OrganizationId, u64))> = s
            .events
            .iter()
            .filter(|(_, e)| e.at < before)
            .map(|(k, e)| (e.at, *k))
            .collect();
        old.sort_unstable();
        old.truncate(limit);
        for (_, k) in &old {
            s.events.remove(k);
        }
        Ok(old.len() as u64)
    }
}
