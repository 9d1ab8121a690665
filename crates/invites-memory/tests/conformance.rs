//! The shared conformance suite (`invites_testkit::conformance`) run against [`MemoryStore`],
//! a fresh store per test.

use invites_memory::MemoryStore;
use std::sync::Arc;

invites_testkit::conformance_suite!(async { Arc::new(MemoryStore::new()) });
