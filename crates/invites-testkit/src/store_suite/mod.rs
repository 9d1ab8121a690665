//! The store suite: the contract of the storage port ([`MembershipStore`] and its seven parts,
//! plus [`Directory`] and [`Inspect`]), checked method by method against a backend, below the
//! service. The conformance suite ([`conformance`](crate::conformance)) checks what a user of
//! `InviteService` sees; this suite checks what a backend author implements, so a third
//! backend gets both for free.
//!
//! Every check is a plain `pub async fn` taking a fresh, empty backend (each seeds its own
//! two organizations), in the manner of `object_store`'s `integration` module: call them one
//! by one, or expand them all with [`store_suite!`](crate::store_suite!). What a backend can do beyond the port is
//! an argument, not a fork of the suite: the fault checks take a [`FaultInjector`] and are
//! expanded by [`store_fault_suite!`](crate::store_fault_suite!) for backends that have one (SQLite injects faults with
//! triggers; the in-memory backend applies each target with infallible code, so it cannot
//! fail half-way and has none).
//!
//! ```ignore
//! // crates/my-backend/tests/store_suite.rs
//! use std::sync::Arc;
//! invites_testkit::store_suite!(async { Arc::new(my_backend::Store::open_temp().await.unwrap()) });
//! ```
//!
//! [`MembershipStore`]: invites_core::MembershipStore
//! [`Directory`]: invites_core::Directory
//! [`Inspect`]: invites_core::Inspect

mod access;
mod backlog;
mod bulk;
mod concurrency;
mod events;
mod faults;
mod idempotency;
mod lifecycle;
mod not_found;
mod outbox;
mod reads;
mod retention;
mod support;

pub use access::*;
pub use backlog::*;
pub use bulk::*;
pub use concurrency::*;
pub use events::*;
pub use faults::*;
pub use idempotency::*;
pub use lifecycle::*;
pub use not_found::*;
pub use outbox::*;
pub use reads::*;
pub use retention::*;

use async_trait::async_trait;
use invites_core::{Email, TargetId};
use std::fmt::Debug;

/// Makes a backend's own writes fail, from inside, for the fault checks of the store suite.
/// Each injected failure is permanent (not retryable), like a constraint violation, and stays
/// until the end of the test.
#[async_trait]
pub trait FaultInjector: Send + Sync + Debug {
    /// From now on, inserting a membership of `target` or an invitation to it fails inside
    /// that target's unit (so the unit, and only it, is rolled back).
    async fn fail_unit(&self, target: TargetId);

    /// From now on, storing an outbox message to `recipient` fails (inside the unit that
    /// stores it).
    async fn fail_outbox(&self, recipient: &Email);

    /// From now on, inserting a membership of `target` or an invitation to it succeeds, but
    /// the commit of the call (or group of calls) that did it fails.
    async fn fail_commit(&self, target: TargetId);
}

/// Expands to the store suite for one backend: one `#[tokio::test]` per check of
/// [`store_suite`](mod@crate::store_suite) that needs no fault injection, each with a fresh
/// backend from the async factory expression (as [`conformance_suite!`](crate::conformance_suite)).
/// Tests run on a multi-threaded runtime with two workers, so the concurrency checks really
/// race.
#[macro_export]
macro_rules! store_suite {
    ($factory:expr $(,)?) => {
        $crate::__store_tests! {
            $factory;
            direct_add_follows_the_precedence_and_supersedes_pending_invitations,
            email_mode_creates_one_batch_one_message_and_replaces_expired_invitations,
            accepting_a_batch_creates_a_verified_user_and_reports_each_invitation,
            a_claim_counts_an_attempt_and_a_deferral_applies_only_under_its_lease,
            a_finish_naming_an_erased_user_leaves_no_record,
            failed_messages_lists_a_window_page_by_page,
            accepting_after_expiry_and_as_member_or_org_member,
            rotating_a_batch_renews_pending_invitations_and_replaces_the_queued_message,
            the_outbox_is_claimed_with_a_lease_and_records_deliveries,
            the_outbox_backlog_counts_queued_messages_and_names_the_oldest,
            a_late_delivery_record_does_not_revive_a_message_that_left_the_queue,
            idempotency_records_start_complete_expire_and_are_taken_over_when_stale,
            listing_filters_by_derived_status_and_pages_by_keyset,
            listing_is_scoped_in_the_query,
            the_directory_is_idempotent_and_refuses_conflicts,
            the_snapshot_is_in_canonical_order,
            not_found_is_a_value_and_other_organizations_look_missing,
            concurrent_adds_of_one_email_create_one_user_and_one_membership_each,
            concurrent_invitations_leave_one_pending_per_target,
            concurrent_claims_never_return_one_message_twice,
            concurrent_begins_of_one_key_start_once,
            purging_deletes_what_is_older_than_the_cutoff_and_keeps_the_rest,
            storage_stops_growing_when_purged,
            purges_racing_resends_keep_each_batch_whole,
            access_paths_reports_every_path_and_none_for_a_missing_website,
            list_members_pages_by_user_id_within_the_organization,
            list_user_websites_pages_within_the_organization_and_the_allowlist,
            change_member_applies_decide_change,
            erase_person_deletes_every_row_of_the_person_and_nothing_else,
            the_directory_takes_access_away,
            every_change_writes_its_events_in_order,
            events_are_read_by_position_and_purged_oldest_first,
            directory_changes_and_erasure_in_the_log,
        }
    };
}

/// Expands to the fault checks of the store suite for one backend. The async factory
/// expression yields `(Arc<dyn Backend>, Arc<dyn FaultInjector>)`, both over one fresh store.
#[macro_export]
macro_rules! store_fault_suite {
    ($factory:expr $(,)?) => {
        $crate::__store_fault_tests! {
            $factory;
            a_failing_target_is_rolled_back_to_its_savepoint_and_the_others_commit,
            when_the_first_target_fails_the_user_is_created_in_the_next_ones_savepoint,
            a_batch_where_every_target_fails_creates_no_user,
            a_failing_invitation_leaves_no_batch_when_nothing_else_succeeds,
            a_batch_whose_message_cannot_be_stored_creates_nothing,
            a_failed_commit_of_add_members_stores_nothing,
            a_failed_commit_of_create_invitations_stores_nothing,
            a_failed_commit_of_accept_batch_stores_nothing,
        }
    };
}

/// Implementation detail of [`store_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __store_tests {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend: ::std::sync::Arc<dyn $crate::Backend> = ($factory).await;
                $crate::store_suite::$name(backend).await;
            }
        )*
    };
}

/// Implementation detail of [`store_fault_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __store_fault_tests {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (backend, faults): (
                    ::std::sync::Arc<dyn $crate::Backend>,
                    ::std::sync::Arc<dyn $crate::store_suite::FaultInjector>,
                ) = ($factory).await;
                $crate::store_suite::$name(backend, faults).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every check is listed in exactly one of the two macros, and the macros list nothing
    /// else.
    #[test]
    fn the_macros_list_every_check() {
        let sources = [
            include_str!("access.rs"),
            include_str!("backlog.rs"),
            include_str!("bulk.rs"),
            include_str!("concurrency.rs"),
            include_str!("events.rs"),
            include_str!("faults.rs"),
            include_str!("idempotency.rs"),
            include_str!("lifecycle.rs"),
            include_str!("not_found.rs"),
            include_str!("outbox.rs"),
            include_str!("reads.rs"),
            include_str!("retention.rs"),
        ];
        let names: Vec<&str> = sources
            .iter()
            .flat_map(|src| {
                src.match_indices("\npub async fn ").map(|(i, m)| {
                    let rest = &src[i + m.len()..];
                    &rest[..rest.find('(').expect("a signature")]
                })
            })
            .collect();
        let this = include_str!("mod.rs");
        let macros = &this[this.find("macro_rules! store_suite").expect("macro")..];
        let listed: Vec<&str> = macros
            .lines()
            .map(str::trim)
            .filter(|t| {
                t.ends_with(',')
                    && t.len() > 1
                    && t[..t.len() - 1]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_')
            })
            .map(|t| &t[..t.len() - 1])
            .collect();
        for name in &names {
            assert_eq!(
                listed.iter().filter(|l| *l == name).count(),
                1,
                "{name} must be listed once"
            );
        }
        assert_eq!(listed.len(), names.len(), "no stale names: {listed:?}");
    }
}
