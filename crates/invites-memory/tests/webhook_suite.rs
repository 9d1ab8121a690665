//! The webhook store checks of `invites-testkit` on the in-memory backend.

use invites_memory::MemoryStore;
use std::sync::Arc;

invites_testkit::webhook_suite!(async { Arc::new(MemoryStore::new()) });
