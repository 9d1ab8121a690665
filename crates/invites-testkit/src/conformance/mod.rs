//! The conformance suite: the one set of behaviour tests every storage backend passes.
//!
//! Each test is a plain `pub async fn name(backend: Arc<dyn Backend>)` that seeds a [`World`](crate::World)
//! into the fresh backend it is given, drives an [`InviteService`](invites_core::InviteService) through a
//! [`Harness`](crate::Harness)
//! (manual clock, seeded randomness, recording mailer), and checks what the service answers
//! and what [`Inspect::snapshot`](invites_core::Inspect::snapshot) shows afterwards. Tests match on outcome codes, error codes
//! and variants, never on message text, except the golden outcome texts docs/contract.md §3 fixes.
//! Nothing sleeps: time moves only through the [`ManualClock`](crate::ManualClock).
//!
//! A backend runs the whole suite with one [`conformance_suite!`](crate::conformance_suite)
//! invocation in its tests, given an async factory that makes a fresh, empty store:
//!
//! ```ignore
//! use std::sync::Arc;
//! invites_testkit::conformance_suite!(async { Arc::new(invites_memory::MemoryStore::new()) });
//! ```
//!
//! The macro holds the single list of tests; adding a test here means adding its name there
//! (a unit test of this crate checks that every `pub async fn` is listed). The checks are
//! grouped by concern, one file each; their helpers are in `support`.

mod accept;
mod access;
mod concurrency;
mod delivery;
mod direct;
mod email;
mod erasure;
mod events;
mod hostile;
mod idempotency;
mod manage;
mod outcomes;
mod requests;
mod retention;
mod support;

pub use accept::*;
pub use access::*;
pub use concurrency::*;
pub use delivery::*;
pub use direct::*;
pub use email::*;
pub use erasure::*;
pub use events::*;
pub use hostile::*;
pub use idempotency::*;
pub use manage::*;
pub use outcomes::*;
pub use requests::*;
pub use retention::*;

/// Expands to the whole conformance suite for one backend: one `#[tokio::test]` per suite
/// function of [`conformance`](crate::conformance), each with a fresh store.
///
/// The argument is an async factory expression: it is evaluated and awaited once per test and
/// must yield something that coerces to `Arc<dyn Backend>` (an `Arc` of any type implementing
/// `MembershipStore + Directory + Inspect`). A temp-file backend can keep its directory alive
/// inside the store, or leak it. The calling crate needs `tokio` (with the `macros`, `rt` and
/// `rt-multi-thread` features) as a dev-dependency; the concurrency test runs on a
/// multi-threaded runtime with two workers.
///
/// ```ignore
/// // crates/my-backend/tests/conformance.rs
/// use std::sync::Arc;
/// invites_testkit::conformance_suite!(async { Arc::new(my_backend::Store::open_temp().await.unwrap()) });
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr $(,)?) => {
        $crate::__conformance_tests! {
            $factory;
            direct_adds_and_creates_unverified_user,
            direct_keeps_existing_user_untouched,
            already_member_keeps_role,
            org_member_has_org_access,
            already_invited_blocks_second_invitation,
            target_not_found_is_uniform,
            scoped_key_forbidden_per_target,
            failing_target_is_internal_error_only,
            failing_batch_is_all_internal_error,
            events_are_read_by_cursor_and_name_no_one,
            failed_requests_leave_no_event,
            groups_are_targets,
            validation_rejections_change_nothing,
            group_ids_need_global_key,
            results_follow_request_order,
            direct_creates_no_user_without_success,
            direct_creates_user_once,
            direct_add_supersedes_live_invitation,
            email_sends_one_consolidated_message,
            email_not_sent_when_nothing_invited,
            email_mode_creates_no_user,
            outbox_is_stored_before_delivery,
            email_queued_when_mailer_fails,
            expired_or_revoked_invitation_does_not_block,
            email_is_case_insensitive,
            tokens_are_never_stored_or_listed,
            delivery_retries_with_exponential_backoff,
            permanent_mail_error_marks_failed,
            too_many_attempts_marks_failed,
            revoked_batch_is_cancelled_not_sent,
            queued_message_survives_store_error,
            preview_is_read_only,
            accept_creates_verified_user_and_memberships,
            accept_reports_per_invitation_codes,
            accept_reports_org_access,
            accept_verifies_existing_user,
            accept_with_other_signed_in_email_is_mismatch,
            token_is_single_use,
            expired_batch_token_is_invalid,
            revoke_rules,
            resend_rotates_token_and_renews,
            resend_renews_expired_invitations,
            resend_cancels_queued_message,
            resend_permissions_and_nothing_to_resend,
            list_invitations_filters_and_pages,
            scoped_listing_pages_only_what_the_key_reaches,
            idempotent_repeat_returns_stored_response,
            idempotency_key_expires,
            idempotency_ignores_invalid_requests,
            concurrent_idempotent_requests_execute_once,
            stale_in_progress_key_is_taken_over,
            failed_delivery_shows_in_batch_and_list,
            user_id_names_only_related_users,
            address_spellings_are_one_user_and_read_back,
            hostile_names_are_refused_or_neutralised,
            malformed_tokens_never_reach_the_store,
            formatted_values_never_show_a_live_token,
            delivery_stops_when_its_claim_runs_out,
            purge_keeps_idempotent_replays_and_frees_expired_keys,
            purge_keeps_what_hosts_see_and_drops_dead_batches,
            purge_one_row_per_call_reports_the_same,
            access_reports_every_path_and_the_strongest_wins,
            member_changes_have_typed_outcomes,
            removal_leaves_no_link_that_grants_it_back,
            member_lists_are_scoped_to_the_organization_and_the_key,
            member_lists_page_by_id,
            directory_changes_change_access,
            erasure_leaves_nothing_of_the_person,
        }

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_invites_keep_uniqueness() {
            let backend: ::std::sync::Arc<dyn $crate::Backend> = ($factory).await;
            $crate::conformance::concurrent_invites_keep_uniqueness(backend).await;
        }
    };
}
/// Implementation detail of [`conformance_suite!`]: one `#[tokio::test]` per name.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let backend: ::std::sync::Arc<dyn $crate::Backend> = ($factory).await;
                $crate::conformance::$name(backend).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every suite function is listed in the macro (and nothing else is).
    #[test]
    fn the_macro_lists_every_suite_function() {
        let src = [
            include_str!("accept.rs"),
            include_str!("access.rs"),
            include_str!("concurrency.rs"),
            include_str!("delivery.rs"),
            include_str!("direct.rs"),
            include_str!("email.rs"),
            include_str!("erasure.rs"),
            include_str!("events.rs"),
            include_str!("hostile.rs"),
            include_str!("idempotency.rs"),
            include_str!("manage.rs"),
            include_str!("outcomes.rs"),
            include_str!("requests.rs"),
            include_str!("retention.rs"),
        ]
        .concat();
        let this = include_str!("mod.rs");
        let macro_start = this
            .find("macro_rules! conformance_suite")
            .expect("the macro");
        let (functions, macro_text) = (src.as_str(), &this[macro_start..]);
        let names: Vec<&str> = functions
            .match_indices("\npub async fn ")
            .map(|(i, m)| {
                let rest = &functions[i + m.len()..];
                &rest[..rest.find('(').expect("a signature")]
            })
            .collect();
        assert!(names.len() >= 40, "{names:?}");
        for name in &names {
            let listed = macro_text.contains(&format!("            {name},\n"))
                || macro_text.contains(&format!("conformance::{name}(backend)"));
            assert!(listed, "{name} is not in conformance_suite!");
        }
        let listed = macro_text
            .lines()
            .filter(|l| {
                let t = l.trim();
                t.ends_with(',')
                    && t[..t.len() - 1]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_')
            })
            .count();
        assert_eq!(listed + 1, names.len(), "no stale names in the macro");
    }
}
