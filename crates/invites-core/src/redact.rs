//! `Debug` for the public types that carry a live accept link, with the link redacted.
//!
//! An accept link opens a batch of invitations to whoever holds it, so it must never reach a
//! log line, a panic message or an error. The types that carry one keep their fields public
//! (stores build and read them) but implement `Debug` here, printing [`REDACTED`] in place of
//! the link. Each impl destructures its type exhaustively, so adding a field is a compile
//! error here until it is decided whether the field is secret.
//!
//! The mail types ([`EmailMessage`](crate::EmailMessage) and friends, whose bodies hold the
//! link) have their impls beside them in `mail.rs`; [`AcceptToken`](crate::AcceptToken)'s is
//! in `random.rs`.

use crate::store::{NewBatch, OutboxMessage, RotateBatch};
use std::fmt;

/// What `Debug` and `Display` print instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// Formats as [`REDACTED`] (or `None` for an absent secret).
pub(crate) struct Redacted<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: ?Sized> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// An optional secret: `Some([redacted])` or `None`, so `Debug` still tells whether it is set.
pub(crate) struct RedactedOption<'a, T>(pub(crate) &'a Option<T>);

impl<T> fmt::Debug for RedactedOption<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => f.debug_tuple("Some").field(&Redacted(s)).finish(),
            None => f.write_str("None"),
        }
    }
}

impl fmt::Debug for NewBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NewBatch {
            id,
            token_hash,
            message_id,
            accept_url,
            message_due_at,
        } = self;
        f.debug_struct("NewBatch")
            .field("id", id)
            .field("token_hash", token_hash)
            .field("message_id", message_id)
            .field("accept_url", &Redacted(accept_url))
            .field("message_due_at", message_due_at)
            .finish()
    }
}

impl fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OutboxMessage {
            id,
            batch_id,
            organization,
            recipient,
            accept_url,
            status,
            attempts,
            next_attempt_at,
            created_at,
            last_error,
        } = self;
        f.debug_struct("OutboxMessage")
            .field("id", id)
            .field("batch_id", batch_id)
            .field("organization", organization)
            .field("recipient", recipient)
            .field("accept_url", &RedactedOption(accept_url))
            .field("status", status)
            .field("attempts", attempts)
            .field("next_attempt_at", next_attempt_at)
            .field("created_at", created_at)
            .field("last_error", last_error)
            .finish()
    }
}

impl fmt::Debug for RotateBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RotateBatch {
            organization,
            batch_id,
            new_token_hash,
            expires_at,
            message_id,
            accept_url,
            message_due_at,
            not_sent_after,
            now,
            actor,
        } = self;
        f.debug_struct("RotateBatch")
            .field("organization", organization)
            .field("batch_id", batch_id)
            .field("new_token_hash", new_token_hash)
            .field("expires_at", expires_at)
            .field("message_id", message_id)
            .field("accept_url", &Redacted(accept_url))
            .field("message_due_at", message_due_at)
            .field("not_sent_after", not_sent_after)
            .field("now", now)
            .field("actor", actor)
            .finish()
    }
}
