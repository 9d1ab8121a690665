//! What the service returns besides the bulk response: previews, accept, revoke and resend results,
//! invitation and batch views, delivery reports.

use crate::ids::{BatchId, InvitationId, MessageId, TargetId, UserId};
use crate::invitee::{Email, Role};
use crate::response::{EmailReport, TargetResult};
use crate::store::{InvitationRecord, InvitationStatus, MessageStatus};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// What one `deliver_due` call did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Messages handed to the mailer.
    pub sent: usize,
    /// Transient failures, rescheduled.
    pub retried: usize,
    /// Given up.
    pub failed: usize,
    /// Not sent: no live invitation left.
    pub cancelled: usize,
    /// Messages skipped because the store failed; they are retried once their lease ends.
    pub store_errors: usize,
    /// Claimed messages put back in the queue unattempted: delivery paused on a sender-wide
    /// failure during this call, or the lease had too little time left for another send.
    pub deferred: usize,
    /// Attempts in which the renderer, the mailer or the store panicked; the worker went on,
    /// and each such attempt is also counted as `retried` or `failed` (set aside after the
    /// configured attempts).
    pub panicked: usize,
    /// Set while delivery is paused by a sender-wide failure ([`MailError::misconfigured`](
    /// crate::MailError::misconfigured)): the time it resumes. A paused call claims nothing.
    pub paused_until: Option<Timestamp>,
}

/// Delivery paused by a sender-wide mail failure ([`InviteService::delivery_pause`](
/// crate::InviteService::delivery_pause)).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DeliveryPause {
    /// When the next delivery call tries again.
    pub until: Timestamp,
    /// Sender-wide failures in a row; each doubles the pause (the delivery backoff, capped at
    /// its `max_backoff`).
    pub failures: u32,
    /// The last failure, as text (the mailer's error: never a token or a recipient).
    pub error: String,
}

/// What [`InviteService::requeue_failed`](crate::InviteService::requeue_failed) did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct RequeueReport {
    /// Failed messages found in the window.
    pub failed_found: usize,
    /// Batches sent again: a new link and a new message, queued and due at once.
    pub requeued: usize,
    /// Failed messages whose batch was sent again since, or has no pending or expired
    /// invitation left, or no longer exists: nothing to do.
    pub skipped: usize,
}

/// What one [`InviteService::purge_expired`](crate::InviteService::purge_expired) call
/// deleted, per kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct PurgeReport {
    /// Idempotency records past the idempotency time to live.
    pub idempotency_records: u64,
    /// Dead batches.
    pub batches: u64,
    /// Invitations, all of them with their dead batches.
    pub invitations: u64,
    /// Outbox messages: finished ones of kept batches, plus those of the dead batches.
    pub messages: u64,
    /// Events older than the history window.
    pub events: u64,
}

impl PurgeReport {
    /// Adds `other` to this report (a worker's totals).
    pub fn add(&mut self, other: &PurgeReport) {
        self.idempotency_records += other.idempotency_records;
        self.batches += other.batches;
        self.invitations += other.invitations;
        self.messages += other.messages;
        self.events += other.events;
    }

    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.idempotency_records + self.batches + self.invitations + self.messages + self.events
    }
}

/// One invitation as shown on an accept page.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PreviewItem {
    /// The invitation.
    pub invite_id: InvitationId,
    /// Its target.
    pub target: TargetId,
    /// The target's name.
    pub target_name: String,
    /// Role to be granted.
    pub role: Role,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// What a token opens (read-only).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvitationPreview {
    /// The batch.
    pub batch_id: BatchId,
    /// The invited address.
    pub email: Email,
    /// The live invitations, in request order.
    pub invitations: Vec<PreviewItem>,
}

/// One invitation's result of accepting.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AcceptResult {
    /// The invitation.
    pub invite_id: InvitationId,
    /// The target, named like in bulk results.
    #[serde(flatten)]
    pub result: TargetResult,
}

/// The result of accepting a token.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AcceptResponse {
    /// The user (found or created), now verified.
    pub user_id: UserId,
    /// Whether accepting created the user.
    pub user_created: bool,
    /// One result per invitation of the batch.
    pub results: Vec<AcceptResult>,
}

/// The result of revoking.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The invitation.
    pub invite_id: InvitationId,
    /// False when it was already revoked, superseded or replaced (revoking is harmless twice).
    pub changed: bool,
}

/// The result of a resend.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ResendResponse {
    /// The batch.
    pub batch_id: BatchId,
    /// Invitations whose expiry was reset.
    pub renewed: usize,
    /// The new message.
    pub email: EmailReport,
}

/// An invitation as listed (never with a token or hash).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvitationView {
    /// Id.
    pub id: InvitationId,
    /// Batch.
    pub batch_id: BatchId,
    /// Target.
    pub target: TargetId,
    /// Target name.
    pub target_name: String,
    /// Address.
    pub email: Email,
    /// Role.
    pub role: Role,
    /// Status at the time of listing (`expired` derived from the clock).
    pub status: InvitationStatus,
    /// Created.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Status of the batch's latest email (`failed` when delivery was given up); `None` if
    /// the batch has no message.
    pub delivery: Option<MessageStatus>,
}

/// One outbox message of a batch, as shown to the host (never with its link).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MessageView {
    /// The stable message id.
    pub id: MessageId,
    /// Queued, sent, failed or cancelled.
    pub status: MessageStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, as text.
    pub last_error: Option<String>,
    /// When the message was stored.
    pub created_at: Timestamp,
}

/// A batch with its invitations and its messages.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BatchView {
    /// The batch.
    pub batch_id: BatchId,
    /// The invited address.
    pub email: Email,
    /// Created.
    pub created_at: Timestamp,
    /// Last (re)sent.
    pub last_sent_at: Timestamp,
    /// Its invitations, status as of now.
    pub invitations: Vec<InvitationView>,
    /// Its messages, oldest first (a resend adds one).
    pub messages: Vec<MessageView>,
}

/// A page of invitations.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvitationPage {
    /// The items.
    pub items: Vec<InvitationView>,
    /// Pass to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

pub(super) fn view(
    r: InvitationRecord,
    now: Timestamp,
    delivery: Option<MessageStatus>,
) -> InvitationView {
    InvitationView {
        id: r.id,
        batch_id: r.batch_id,
        target: r.target,
        status: r.status_at(now),
        target_name: r.target_name,
        email: r.email,
        role: r.role,
        created_at: r.created_at,
        expires_at: r.expires_at,
        delivery,
    }
}
