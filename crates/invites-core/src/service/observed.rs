//! The service's side of [`observe`](crate::observe): how each public operation ended (its
//! span's fields, the request metrics), the delivery of one message in its own span, the
//! outbox gauges. The spans themselves open with the `#[instrument]` of each operation.

use super::delivery::Delivered;
use super::*;
use crate::error::InviteError;
use crate::observe::{self, Operation};
use crate::request::ValidatedRequest;
use crate::response::{BulkInviteResponse, TargetResult};
use crate::store::OutboxMessage;
use std::future::Future;
use std::time::Instant;
use tracing::{Instrument, Span, field};

/// What a successful result of an operation adds to its span (counts, ids, statuses).
pub(super) trait Observed {
    fn observe(&self, span: &Span);
}

impl InviteService {
    /// Runs `work`, the body of the public operation `op`, inside that operation's span (the
    /// current one, opened by its `#[instrument]`), then records its outcome and duration in
    /// the span and the request metrics.
    pub(super) async fn observed<T: Observed>(
        &self,
        op: Operation,
        work: impl Future<Output = Result<T, InviteError>>,
    ) -> Result<T, InviteError> {
        let started = Instant::now();
        let result = work.await;
        let span = Span::current();
        if let Ok(value) = &result {
            value.observe(&span);
        }
        observe::finish(op, started.elapsed(), observe::outcome(&result), &span);
        result
    }

    /// Records a validated bulk request in its operation's span: the method, the number of
    /// targets and the invitee's keyed hash (never the address).
    pub(super) fn observe_request(&self, req: &ValidatedRequest) {
        let span = Span::current();
        span.record("method", req.method.as_str());
        span.record("targets", req.targets.len());
        // The keyed hash is an HMAC: computed only when a subscriber records this span.
        if !span.is_disabled() {
            span.record("invitee", observe::invitee(&self.config, &req.email));
        }
    }

    /// [`InviteService::deliver`] in its own `deliver` span, its result counted.
    pub(super) async fn deliver_observed(
        &self,
        message: &OutboxMessage,
        attempt: u32,
    ) -> Result<(Delivered, bool), StoreError> {
        let span = tracing::info_span!(
            "deliver",
            batch_id = %message.batch_id,
            attempt,
            result = field::Empty,
        );
        let result = self
            .deliver_guarded(message, attempt)
            .instrument(span.clone())
            .await;
        let label = match &result {
            Ok((Delivered::Sent, _)) => "sent",
            Ok((Delivered::Retry, _)) => "retried",
            Ok((Delivered::Failed, _)) => "failed",
            Ok((Delivered::Cancelled, _)) => "cancelled",
            Ok((Delivered::Paused, _)) => "paused",
            Err(_) => "store_error",
        };
        if matches!(result, Ok((_, true))) {
            observe::delivery("panicked");
        }
        span.record("result", label);
        observe::delivery(label);
        result
    }

    /// Reads the outbox backlog into the gauges and the current (`deliver_due`) span. A store
    /// that cannot tell leaves them unset; a failed read is a dropped error.
    pub(super) async fn observe_backlog(&self) {
        match self.store.outbox_backlog().await {
            Ok(Some(b)) => observe::backlog(&b, self.now(), &Span::current()),
            Ok(None) => {}
            Err(e) => note_dropped("outbox_backlog", &e),
        }
    }
}

/// `succeeded` and `failed` of a list of per-target results.
fn record_counts<'a>(span: &Span, results: impl IntoIterator<Item = &'a TargetResult>) {
    let (mut ok, mut failed) = (0usize, 0usize);
    for r in results {
        if r.success {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    span.record("succeeded", ok);
    span.record("failed", failed);
}

impl Observed for BulkInviteResponse {
    fn observe(&self, span: &Span) {
        span.record("succeeded", self.summary.succeeded);
        span.record("failed", self.summary.failed);
        if let Some(email) = &self.email {
            span.record("email", observe::email_status(email.status));
            if let Some(batch) = email.batch_id {
                span.record("batch_id", field::display(batch));
            }
        }
    }
}

impl Observed for InvitationPreview {
    fn observe(&self, span: &Span) {
        span.record("batch_id", field::display(self.batch_id));
        span.record("targets", self.invitations.len());
    }
}

impl Observed for AcceptResponse {
    fn observe(&self, span: &Span) {
        record_counts(span, self.results.iter().map(|r| &r.result));
        observe::targets("accept", self.results.iter().map(|r| &r.result));
    }
}

impl Observed for RevokeResponse {
    fn observe(&self, span: &Span) {
        span.record("changed", self.changed);
    }
}

impl Observed for ResendResponse {
    fn observe(&self, span: &Span) {
        span.record("renewed", self.renewed);
        span.record("email", observe::email_status(self.email.status));
    }
}

impl Observed for BatchView {
    fn observe(&self, span: &Span) {
        span.record("targets", self.invitations.len());
        span.record("messages", self.messages.len());
    }
}

impl Observed for InvitationPage {
    fn observe(&self, span: &Span) {
        span.record("items", self.items.len());
    }
}

impl Observed for DeliveryReport {
    fn observe(&self, span: &Span) {
        span.record("sent", self.sent);
        span.record("retried", self.retried);
        span.record("failed", self.failed);
        span.record("cancelled", self.cancelled);
        span.record("store_errors", self.store_errors);
        span.record("deferred", self.deferred);
        span.record("panicked", self.panicked);
    }
}

impl Observed for PurgeReport {
    fn observe(&self, span: &Span) {
        span.record("batches", self.batches);
        span.record("invitations", self.invitations);
        span.record("messages", self.messages);
        span.record("idempotency_records", self.idempotency_records);
        span.record("events", self.events);
        observe::purged("batches", self.batches);
        observe::purged("invitations", self.invitations);
        observe::purged("messages", self.messages);
        observe::purged("idempotency_records", self.idempotency_records);
        observe::purged("events", self.events);
    }
}
