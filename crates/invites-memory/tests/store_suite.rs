//! The store suite (`invites_testkit::store_suite`) run against [`MemoryStore`], a fresh store
//! per check. The fault checks do not apply: the memory store applies each target with
//! infallible code, so it cannot fail half-way.

use invites_memory::MemoryStore;
use std::sync::Arc;

invites_testkit::store_suite!(async { Arc::new(MemoryStore::new()) });
