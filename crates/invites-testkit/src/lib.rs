//! Test kit of the invites library.
//!
//! - [`conformance`]: the suite every backend must pass, written once as plain `pub async fn`s
//!   over a [`Backend`]; [`conformance_suite!`] turns it into `#[tokio::test]`s for a backend.
//! - [`store_suite`](mod@store_suite): the contract of the storage port itself, method by method, as plain
//!   `pub async fn`s; [`store_suite!`](crate::store_suite!) and [`store_fault_suite!`] expand it for a backend.
//! - Test doubles: [`ManualClock`], [`SeededRandom`], [`FaultyStore`] (fails chosen targets or
//!   whole operations), and the recording mailer of `invites-core` (feature `test-util`), re-exported.
//! - [`mailer_suite`]: the receiving-side checks every real mail transport passes.
//! - [`unreadable`]: stored rows a backend cannot decode must block nothing else (backends that
//!   re-read rows plant them with raw SQL through a [`unreadable::Planter`]).
//! - Fixtures: [`World`] seeds an organization with websites, groups, users and org members.
//! - [`workload`] and [`processes`]: random requests, and child processes that log what they
//!   were told and are killed mid-write, for the tests of several processes on one database.
//! - Property testing: [`strategies`] (proptest strategies over the seeded world), [`model`]
//!   (a plain reference model of the service) and [`differential`] (random operation
//!   sequences run on backends and on the model, docs/contract.md §9 invariant 10, with the access of
//!   every user to every website compared after each change, invariant 14).
//!
//! ```
//! use invites_testkit::{Harness, World};
//! use invites_core::{BulkInviteRequest, InviteMethod, OutcomeCode};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = invites_memory::MemoryStore::new();
//! let world = World::seed(&store).await;
//! let h = Harness::new(store);
//! let r = h.service
//!     .bulk_invite(&world.global_key(), BulkInviteRequest::websites(InviteMethod::Direct, "new@example.com", [world.websites[0]]))
//!     .await
//!     .unwrap();
//! assert_eq!(r.results[0].code, OutcomeCode::Added);
//! # });
//! ```

pub mod conformance;
mod deterministic;
pub mod differential;
mod faulty_store;
mod fixtures;
pub mod mailer_suite;
pub mod model;
pub mod processes;
pub mod store_suite;
pub mod strategies;
pub mod unreadable;
pub mod webhook_suite;
pub mod workload;

pub use deterministic::{ManualClock, SeededRandom};
pub use faulty_store::{Fault, FaultyStore};
pub use fixtures::{Backend, Harness, World, as_store};
pub use invites_core::{MailerMode, RecordingMailer};
