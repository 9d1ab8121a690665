//! [`InviteService`]: the rules of bulk invites over the ports, one file per capability:
//! [`bulk`] (the bulk request), [`idempotency`], [`delivery`]
//! (the outbox), [`accept`] (preview and accept), [`manage`] (revoke, resend, batch view,
//! listing), [`retention`] (the purge) and [`views`] (what the lifecycle calls return).

mod accept;
mod access;
mod bulk;
mod delivery;
mod events;
mod idempotency;
mod manage;
mod observed;
mod retention;
mod unwind;
mod views;

use crate::config::InviteConfig;
pub use access::{
    MemberChangeResponse, MemberOutcome, MemberPage, MemberView, WebsiteAccessPage,
    WebsiteAccessView,
};
pub use events::MAX_EVENT_PAGE;
pub use views::{
    AcceptResponse, AcceptResult, BatchView, DeliveryPause, DeliveryReport, InvitationPage,
    InvitationPreview, InvitationView, MessageView, PreviewItem, PurgeReport, RequeueReport,
    ResendResponse, RevokeResponse,
};

use crate::error::{ErrorCode, InviteError, StoreError};
use crate::ids::TargetId;
use crate::mail::Mailer;
use crate::port::MembershipStore;
use crate::time::Timestamp;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The bulk invite service. Cheap to share (`Arc` it, or clone the ports into several).
///
/// See the crate docs for an end-to-end example.
#[derive(Clone)]
pub struct InviteService {
    store: Arc<dyn MembershipStore>,
    mailer: Arc<dyn Mailer>,
    config: InviteConfig,
    /// Whether delivery is paused by a sender-wide mail failure (shared by clones).
    pause: Arc<Mutex<delivery::PauseState>>,
}

impl fmt::Debug for InviteService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteService")
            .field("store", &self.store)
            .field("mailer", &self.mailer)
            .field("config", &self.config)
            .finish()
    }
}

impl InviteService {
    /// A service over a store and a mailer. Every store call goes through a tracing wrapper
    /// (a span per call, see [`observe`](crate::observe)), so
    /// [`InviteService::store`] is that wrapper.
    pub fn new(
        store: Arc<dyn MembershipStore>,
        mailer: Arc<dyn Mailer>,
        config: InviteConfig,
    ) -> Self {
        InviteService {
            store: Arc::new(crate::traced::TracedStore::new(store)),
            mailer,
            config,
            pause: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InviteConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MembershipStore> {
        &self.store
    }

    pub(super) fn now(&self) -> Timestamp {
        self.config.clock.now()
    }
}

/// Every store error the service does not return passes through here: the response stays
/// true without the step that failed (a per-target unit reported as `internal_error`, a
/// best-effort read, a delivery left to the worker). Each becomes a `warn` event with the
/// context and the error's kind, and a count ([`observe::dropped`](crate::observe)).
pub(super) fn note_dropped(context: &'static str, error: &StoreError) {
    crate::observe::dropped(context, error);
}

/// `result` as an `Option`, its error noted by [`note_dropped`].
pub(super) fn dropped_ok<T>(context: &'static str, result: Result<T, StoreError>) -> Option<T> {
    result.map_err(|e| note_dropped(context, &e)).ok()
}

pub(super) fn forbidden(target: TargetId) -> InviteError {
    InviteError::Forbidden {
        code: ErrorCode::Forbidden,
        reason: format!(
            "API key does not have access to this {}",
            target.kind().noun()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::manage::parse_cursor;
    use super::*;
    use crate::{BulkInviteRequest, InvitationId, Principal};

    #[test]
    fn futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        fn check(s: &InviteService, p: &Principal, r: BulkInviteRequest) {
            is_send(&s.bulk_invite(p, r));
            is_send(&s.deliver_due());
            is_send(&s.purge_expired());
            is_send(&s.accept("t", None));
        }
        let _ = check;
    }

    #[test]
    fn cursors_round_trip() {
        let id = InvitationId(uuid::Uuid::from_u128(5));
        let c = format!("{}.{}", 42, id);
        assert_eq!(parse_cursor(&c), Some((Timestamp::from_millis(42), id)));
        assert_eq!(parse_cursor("nope"), None);
    }
}
