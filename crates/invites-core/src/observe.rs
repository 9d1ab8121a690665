//! What an operator sees: the spans and metrics of [`InviteService`](crate::InviteService).
//!
//! The library only emits: spans and events through `tracing`, metrics through the `metrics`
//! facade. Without a subscriber or a recorder every call is a no-op; formatting, filtering and
//! exporting belong to the host (the demo server, `examples/server.rs`, installs a
//! `tracing-subscriber` and a Prometheus exporter). Call [`describe_metrics`] once after
//! installing a recorder so each metric carries its description and unit.
//!
//! # Spans
//!
//! Every field is bounded: ids, counts, codes and names from closed sets. An email address
//! appears only as `invitee`, a hash keyed with the host's secret
//! ([`InviteConfig::with_trace_key`](crate::InviteConfig::with_trace_key)); a name, a token,
//! an accept link or a request body never appears.
//!
//! | span (level) | of | fields |
//! |---|---|---|
//! | `bulk_invite` (info) | [`bulk_invite`](crate::InviteService::bulk_invite) | `organization_id`, `key_id`, `method`, `targets`, `invitee`, `succeeded`, `failed`, `batch_id`, `email` (the email status), `outcome`, `duration_seconds` |
//! | `bulk_invite_idempotent` (info) | [`bulk_invite_idempotent`](crate::InviteService::bulk_invite_idempotent) | the same, and `replayed` (a stored response was returned) |
//! | `preview` (info) | [`preview`](crate::InviteService::preview) | `batch_id`, `targets` (live invitations), `outcome`, `duration_seconds` |
//! | `accept` (info) | [`accept`](crate::InviteService::accept) | `batch_id`, `signed_in`, `succeeded`, `failed`, `outcome`, `duration_seconds` |
//! | `revoke` (info) | [`revoke`](crate::InviteService::revoke) | `organization_id`, `key_id`, `invite_id`, `changed`, `outcome`, `duration_seconds` |
//! | `resend` (info) | [`resend`](crate::InviteService::resend) | `organization_id`, `key_id`, `batch_id`, `renewed`, `email`, `outcome`, `duration_seconds` |
//! | `batch` (info) | [`batch`](crate::InviteService::batch) | `organization_id`, `key_id`, `batch_id`, `targets`, `messages`, `outcome`, `duration_seconds` |
//! | `list_invitations` (info) | [`list_invitations`](crate::InviteService::list_invitations) | `organization_id`, `key_id`, `filter` (`target`, `email` or `status`: the kind, never the value), `limit`, `items`, `outcome`, `duration_seconds` |
//! | `deliver_due` (info) | [`deliver_due`](crate::InviteService::deliver_due) | `sent`, `retried`, `failed`, `cancelled`, `store_errors`, `deferred`, `panicked`, `queued`, `oldest_queued_age_seconds`, `outcome`, `duration_seconds` |
//! | `purge_expired` (info) | [`purge_expired`](crate::InviteService::purge_expired) | `batches`, `invitations`, `messages`, `idempotency_records`, `outcome`, `duration_seconds` |
//! | `deliver` (info) | one message handed to the mailer (under `bulk_invite`, `bulk_invite_idempotent`, `resend` or `deliver_due`) | `batch_id`, `attempt`, `result` |
//! | one per store method (debug): `add_members`, `create_invitations`, `accept_batch`, `revoke_invitation`, `rotate_batch`, `purge_batches`, `claim_due_messages`, `record_delivery`, `batch_messages`, `purge_messages`, `idempotency_begin`, `idempotency_finish`, `purge_idempotency`, `find_user`, `get_user`, `find_batch_by_token`, `get_batch`, `get_invitation`, `list_invitations`, `outbox_backlog` | a call of the storage port, under the operation's span | `db.system.name` (`sqlite`, `postgresql`, `memory`; [`ReadStore::db_system_name`](crate::ReadStore::db_system_name)), `error.type` (`unavailable`, `backend`, `incompatible`) when it failed |
//!
//! `outcome` is `ok` or the error's code ([`ErrorCode::as_str`](crate::ErrorCode::as_str)).
//! A store error the service does not return (a target reported `internal_error`, a
//! best-effort read, a delivery left to the worker) is a `warn` event with `what` (the step
//! that dropped it) and `error.type` (its kind), never its message.
//!
//! # Metrics
//!
//! Labels take values from closed sets only: operation names, codes, results, kinds; never an
//! id, an address or a name.
//!
//! | name | type | unit | labels |
//! |---|---|---|---|
//! | `invites_requests_total` | counter | calls | `operation` (the ten operations above), `outcome` (`ok` or an error code) |
//! | `invites_request_duration_seconds` | histogram | seconds | `operation` |
//! | `invites_targets_total` | counter | targets | `method` (`direct`, `email`: a bulk request's; `accept`: the invitations an accept opened), `code` (an [`OutcomeCode`](crate::OutcomeCode)) |
//! | `invites_delivery_attempts_total` | counter | messages | `result`: `sent`, `retried`, `failed`, `cancelled` (no live invitation left), `paused` (the mailer refused the sender: delivery paused, the message kept queued), `store_error` (left for a later pass), and `panicked` once more for an attempt that panicked (also counted as `retried` or `failed`) |
//! | `invites_delivery_set_aside_total` | counter | messages | none: messages given up because their batch cannot be read (also counted as `failed`) |
//! | `invites_outbox_queued_messages` | gauge | messages | none: queued messages after the latest delivery pass |
//! | `invites_outbox_oldest_queued_age_seconds` | gauge | seconds | none: age of the oldest queued message then (0 when none) |
//! | `invites_purged_records_total` | counter | records | `kind`: `batches`, `invitations`, `messages`, `idempotency_records` |
//! | `invites_store_call_duration_seconds` | histogram | seconds | `method` (the store method) |
//! | `invites_store_errors_total` | counter | errors | `method`, `kind` (`unavailable`, `backend`, `incompatible`) |
//! | `invites_dropped_errors_total` | counter | errors | `what` (the step that dropped it), `kind` |
//!
//! Requests counted here are the service's calls; a request refused before it reaches the
//! service (an unknown API key, a body too large for the HTTP layer) is the host's to count.

use crate::config::InviteConfig;
use crate::error::{InviteError, StoreError};
use crate::invitee::Email;
use crate::response::{EmailStatus, TargetResult};
use crate::store::InvitationFilter;
use crate::time::Timestamp;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use std::time::Duration;
use tracing::Span;

/// How much the outbox holds: what [`ReadStore::outbox_backlog`](crate::ReadStore::outbox_backlog)
/// reads for the outbox gauges.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OutboxBacklog {
    /// Messages with status `Queued` (due or waiting for a retry or a lease).
    pub queued: u64,
    /// The `created_at` of the oldest queued message; `None` when `queued` is 0.
    pub oldest_created_at: Option<Timestamp>,
}

/// The metric names, in one place (the table in the module docs lists them).
pub(crate) mod name {
    pub(crate) const REQUESTS: &str = "invites_requests_total";
    pub(crate) const REQUEST_DURATION: &str = "invites_request_duration_seconds";
    pub(crate) const TARGETS: &str = "invites_targets_total";
    pub(crate) const DELIVERY_ATTEMPTS: &str = "invites_delivery_attempts_total";
    pub(crate) const DELIVERY_SET_ASIDE: &str = "invites_delivery_set_aside_total";
    pub(crate) const OUTBOX_QUEUED: &str = "invites_outbox_queued_messages";
    pub(crate) const OUTBOX_OLDEST_AGE: &str = "invites_outbox_oldest_queued_age_seconds";
    pub(crate) const PURGED: &str = "invites_purged_records_total";
    pub(crate) const STORE_DURATION: &str = "invites_store_call_duration_seconds";
    pub(crate) const STORE_ERRORS: &str = "invites_store_errors_total";
    pub(crate) const DROPPED_ERRORS: &str = "invites_dropped_errors_total";
}

/// Describes every metric of the table above (description and unit) to the installed
/// recorder. Call it once, after installing the recorder; without one it does nothing.
///
/// ```
/// // A host with a recorder (e.g. metrics-exporter-prometheus) installed:
/// invites_core::observe::describe_metrics();
/// ```
pub fn describe_metrics() {
    describe_counter!(
        name::REQUESTS,
        Unit::Count,
        "Calls of the invite service's public operations, by operation and outcome (ok or an error code)."
    );
    describe_histogram!(
        name::REQUEST_DURATION,
        Unit::Seconds,
        "Duration of the invite service's public operations, by operation."
    );
    describe_counter!(
        name::TARGETS,
        Unit::Count,
        "Per-target outcomes: of bulk requests by invite method (direct, email) and of accepts (accept), by outcome code."
    );
    describe_counter!(
        name::DELIVERY_ATTEMPTS,
        Unit::Count,
        "Outbox messages handed to delivery, by result (sent, retried, failed, cancelled, paused, store_error; panicked counted besides)."
    );
    describe_counter!(
        name::DELIVERY_SET_ASIDE,
        Unit::Count,
        "Outbox messages given up because their batch cannot be read (also counted as failed)."
    );
    describe_gauge!(
        name::OUTBOX_QUEUED,
        Unit::Count,
        "Queued outbox messages, read after the latest delivery pass."
    );
    describe_gauge!(
        name::OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest queued outbox message after the latest delivery pass (0 when none is queued)."
    );
    describe_counter!(
        name::PURGED,
        Unit::Count,
        "Records deleted by the retention purge, by kind (batches, invitations, messages, idempotency_records)."
    );
    describe_histogram!(
        name::STORE_DURATION,
        Unit::Seconds,
        "Duration of storage port calls, by store method."
    );
    describe_counter!(
        name::STORE_ERRORS,
        Unit::Count,
        "Failed storage port calls, by store method and error kind (unavailable, backend, incompatible)."
    );
    describe_counter!(
        name::DROPPED_ERRORS,
        Unit::Count,
        "Store errors the service did not return (reported per target, or left to a later pass), by step and error kind."
    );
}

/// The public operations of the service: the `operation` label and the span names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Operation {
    BulkInvite,
    BulkInviteIdempotent,
    Preview,
    Accept,
    Revoke,
    Resend,
    Batch,
    ListInvitations,
    DeliverDue,
    PurgeExpired,
}

impl Operation {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Operation::BulkInvite => "bulk_invite",
            Operation::BulkInviteIdempotent => "bulk_invite_idempotent",
            Operation::Preview => "preview",
            Operation::Accept => "accept",
            Operation::Revoke => "revoke",
            Operation::Resend => "resend",
            Operation::Batch => "batch",
            Operation::ListInvitations => "list_invitations",
            Operation::DeliverDue => "deliver_due",
            Operation::PurgeExpired => "purge_expired",
        }
    }
}

/// The kind of a store error: the `error.type` field and the `kind` label.
pub(crate) fn error_kind(error: &StoreError) -> &'static str {
    match error {
        StoreError::Unavailable { .. } => "unavailable",
        StoreError::Backend { .. } => "backend",
        StoreError::Incompatible { .. } => "incompatible",
    }
}

/// `ok`, or the error's code.
pub(crate) fn outcome<T>(result: &Result<T, InviteError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    }
}

/// Records how an operation ended: its outcome and duration in `span` (the operation's) and
/// in the request metrics.
pub(crate) fn finish(op: Operation, elapsed: Duration, outcome: &'static str, span: &Span) {
    let seconds = elapsed.as_secs_f64();
    span.record("outcome", outcome);
    span.record("duration_seconds", seconds);
    counter!(name::REQUESTS, "operation" => op.as_str(), "outcome" => outcome).increment(1);
    histogram!(name::REQUEST_DURATION, "operation" => op.as_str()).record(seconds);
}

/// Counts per-target outcomes (`method`: `direct`, `email` or `accept`): one increment per
/// distinct code, not per target, since the facade builds and hashes a key for every call
/// even when no recorder is installed (23,000 instructions per 50-target request before).
pub(crate) fn targets<'a>(
    method: &'static str,
    results: impl IntoIterator<Item = &'a TargetResult>,
) {
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    for r in results {
        let code = r.code.as_str();
        match counts.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => counts.push((code, 1)),
        }
    }
    for (code, n) in counts {
        counter!(name::TARGETS, "method" => method, "code" => code).increment(n);
    }
}

/// Counts one delivery by result.
pub(crate) fn delivery(result: &'static str) {
    counter!(name::DELIVERY_ATTEMPTS, "result" => result).increment(1);
}

/// Counts one message given up because its batch cannot be read.
pub(crate) fn set_aside() {
    counter!(name::DELIVERY_SET_ASIDE).increment(1);
}

/// Sets the outbox gauges (and the `deliver_due` span's fields) from a backlog read at `now`.
pub(crate) fn backlog(b: &OutboxBacklog, now: Timestamp, span: &Span) {
    let age = b.oldest_created_at.map_or(0.0, |t| {
        (now.as_millis().saturating_sub(t.as_millis())).max(0) as f64 / 1000.0
    });
    span.record("queued", b.queued);
    span.record("oldest_queued_age_seconds", age);
    gauge!(name::OUTBOX_QUEUED).set(b.queued as f64);
    gauge!(name::OUTBOX_OLDEST_AGE).set(age);
}

/// Counts purged records of one kind.
pub(crate) fn purged(kind: &'static str, n: u64) {
    if n > 0 {
        counter!(name::PURGED, "kind" => kind).increment(n);
    }
}

/// Records one store call's duration, and its error's kind.
pub(crate) fn store_call(method: &'static str, elapsed: Duration, error: Option<&StoreError>) {
    histogram!(name::STORE_DURATION, "method" => method).record(elapsed.as_secs_f64());
    if let Some(e) = error {
        counter!(name::STORE_ERRORS, "method" => method, "kind" => error_kind(e)).increment(1);
    }
}

/// A store error the service does not return: a warning with the step and the error's kind
/// (never its message, which may quote a backend's text), and a count.
pub(crate) fn dropped(what: &'static str, error: &StoreError) {
    let kind = error_kind(error);
    tracing::warn!(
        what,
        "error.type" = kind,
        "a store error was dropped; the response stays true without that step"
    );
    counter!(name::DROPPED_ERRORS, "what" => what, "kind" => kind).increment(1);
}

/// The hash that stands for an address in tracing fields, keyed with the config's trace key.
pub(crate) fn invitee(config: &InviteConfig, email: &Email) -> String {
    crate::invitee::keyed_hash_with(&config.trace_key, email.as_str())
}

/// The kind of a list filter, never its value.
pub(crate) fn filter_kind(filter: &InvitationFilter) -> &'static str {
    match filter {
        InvitationFilter::Target(_) => "target",
        InvitationFilter::Email(_) => "email",
        InvitationFilter::Status(_) => "status",
    }
}

/// The `email` field of the bulk and resend spans.
pub(crate) fn email_status(status: EmailStatus) -> &'static str {
    match status {
        EmailStatus::Sent => "sent",
        EmailStatus::Queued => "queued",
        EmailStatus::NotSent => "not_sent",
        EmailStatus::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> InviteConfig {
        InviteConfig::new("https://a.test/accept").unwrap()
    }

    #[test]
    fn the_invitee_hash_is_keyed_with_the_hosts_secret() {
        let email = Email::parse("Ann@Example.test").unwrap();
        let secret = b"sixteen bytes ok";
        let a = invitee(&config().with_trace_key(secret).unwrap(), &email);
        let b = invitee(&config().with_trace_key(secret).unwrap(), &email);
        let other = invitee(
            &config().with_trace_key(b"another secret!!").unwrap(),
            &email,
        );
        let unkeyed = invitee(&config(), &email);
        // One secret, one hash on every server; another secret (or none) gives another.
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_ne!(a, unkeyed);
        assert_eq!(a.len(), 16);
        assert!(!a.contains("ann") && !a.contains("example"));
        let short = config().with_trace_key(b"too short").unwrap_err();
        assert_eq!(short.field(), "trace_key");
        // The secret is never printed.
        let shown = format!("{:?}", config().with_trace_key(secret).unwrap());
        assert!(!shown.contains("sixteen"));
    }

    #[test]
    fn every_operation_has_its_own_label() {
        use Operation::*;
        let all = [
            BulkInvite,
            BulkInviteIdempotent,
            Preview,
            Accept,
            Revoke,
            Resend,
            Batch,
            ListInvitations,
            DeliverDue,
            PurgeExpired,
        ];
        let mut labels: Vec<&str> = all.iter().map(|o| o.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }
}
