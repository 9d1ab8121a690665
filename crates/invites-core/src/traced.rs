//! [`TracedStore`]: the store wrapper that gives every call of the storage port its own span
//! (named after the port method, a child of the operation's span) and its duration and error
//! metrics. [`InviteService::new`](crate::InviteService::new) wraps the host's store in it.

use crate::access::{
    AccessFacts, ChangeFact, ChangeMember, ErasureReport, MemberQuery, MemberRecord,
    UserWebsiteRecord, UserWebsitesQuery,
};
use crate::error::StoreError;
use crate::events::{Event, EventStore};
use crate::ids::{ApiKeyId, BatchId, InvitationId, MessageId, OrganizationId, UserId, WebsiteId};
use crate::invitee::Email;
use crate::observe::{self, OutboxBacklog};
use crate::port::{
    AccessStore, BulkStore, IdempotencyStore, LifecycleStore, MembershipStore, OutboxStore,
    ReadStore,
};
use crate::store::{
    AcceptBatch, AcceptOutcome, AddMembers, AddMembersOutcome, BatchRecord, CreateInvitations,
    CreateInvitationsOutcome, DeliveryUpdate, IdempotencyBegin, IdempotencyState, InvitationQuery,
    InvitationRecord, OutboxMessage, PurgedBatches, RevokeFact, RevokeInvitation, RotateBatch,
    RotateFact, User,
};
use crate::time::Timestamp;
use crate::tokens::TokenHash;
use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tracing::{Instrument, Span};

/// Forwards every method to the wrapped store, each call in a `debug` span named after the
/// method with `db.system.name` (and `error.type` when it fails). Arguments are never
/// recorded: they hold addresses, names and token hashes.
#[derive(Debug)]
pub(crate) struct TracedStore {
    inner: Arc<dyn MembershipStore>,
    system: &'static str,
}

impl TracedStore {
    pub(crate) fn new(inner: Arc<dyn MembershipStore>) -> Self {
        let system = inner.db_system_name();
        TracedStore { inner, system }
    }
}

/// Runs one store call in `span`, then records its error kind and its metrics.
async fn call<T>(
    method: &'static str,
    span: Span,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = work.instrument(span.clone()).await;
    if let Err(e) = &result {
        span.record("error.type", observe::error_kind(e));
    }
    observe::store_call(method, started.elapsed(), result.as_ref().err());
    result
}

/// `call` with the span of `$method` (a literal: span names are static).
macro_rules! traced {
    ($self:ident, $method:literal, $work:expr) => {
        call(
            $method,
            tracing::debug_span!(
                $method,
                "db.system.name" = $self.system,
                "error.type" = tracing::field::Empty
            ),
            $work,
        )
        .await
    };
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl BulkStore for TracedStore {
    async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError> {
        traced!(self, "add_members", self.inner.add_members(cmd))
    }
    async fn create_invitations(
        &self,
        cmd: &CreateInvitations,
    ) -> Result<CreateInvitationsOutcome, StoreError> {
        traced!(
            self,
            "create_invitations",
            self.inner.create_invitations(cmd)
        )
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl LifecycleStore for TracedStore {
    async fn accept_batch(&self, cmd: &AcceptBatch) -> Result<Option<AcceptOutcome>, StoreError> {
        traced!(self, "accept_batch", self.inner.accept_batch(cmd))
    }
    async fn revoke_invitation(&self, cmd: &RevokeInvitation) -> Result<RevokeFact, StoreError> {
        traced!(self, "revoke_invitation", self.inner.revoke_invitation(cmd))
    }
    async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError> {
        traced!(self, "rotate_batch", self.inner.rotate_batch(cmd))
    }
    async fn purge_batches(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<PurgedBatches, StoreError> {
        traced!(
            self,
            "purge_batches",
            self.inner.purge_batches(before, limit)
        )
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl OutboxStore for TracedStore {
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        traced!(
            self,
            "claim_due_messages",
            self.inner.claim_due_messages(now, lease_until, limit)
        )
    }
    async fn record_delivery(
        &self,
        id: MessageId,
        update: DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        traced!(
            self,
            "record_delivery",
            self.inner.record_delivery(id, update, now)
        )
    }
    async fn batch_messages(&self, batch: BatchId) -> Result<Vec<OutboxMessage>, StoreError> {
        traced!(self, "batch_messages", self.inner.batch_messages(batch))
    }
    async fn failed_messages(
        &self,
        created_from: Timestamp,
        created_until: Timestamp,
        after: Option<(Timestamp, MessageId)>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        traced!(
            self,
            "failed_messages",
            self.inner
                .failed_messages(created_from, created_until, after, limit)
        )
    }
    async fn purge_messages(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        traced!(
            self,
            "purge_messages",
            self.inner.purge_messages(before, limit)
        )
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl IdempotencyStore for TracedStore {
    async fn idempotency_begin(
        &self,
        b: &IdempotencyBegin,
    ) -> Result<IdempotencyState, StoreError> {
        traced!(self, "idempotency_begin", self.inner.idempotency_begin(b))
    }
    async fn idempotency_finish(
        &self,
        o: OrganizationId,
        k: ApiKeyId,
        key: &str,
        started_at: Timestamp,
        response: Option<&str>,
        names_user: Option<UserId>,
    ) -> Result<(), StoreError> {
        traced!(
            self,
            "idempotency_finish",
            self.inner
                .idempotency_finish(o, k, key, started_at, response, names_user)
        )
    }
    async fn purge_idempotency(
        &self,
        expired_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        traced!(
            self,
            "purge_idempotency",
            self.inner.purge_idempotency(expired_before, limit)
        )
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ReadStore for TracedStore {
    async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError> {
        traced!(self, "find_user", self.inner.find_user(email))
    }
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        traced!(self, "get_user", self.inner.get_user(id))
    }
    async fn find_batch_by_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<BatchRecord>, StoreError> {
        traced!(
            self,
            "find_batch_by_token",
            self.inner.find_batch_by_token(hash)
        )
    }
    async fn get_batch(
        &self,
        o: OrganizationId,
        b: BatchId,
    ) -> Result<Option<BatchRecord>, StoreError> {
        traced!(self, "get_batch", self.inner.get_batch(o, b))
    }
    async fn get_invitation(
        &self,
        o: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        traced!(self, "get_invitation", self.inner.get_invitation(o, id))
    }
    async fn list_invitations(
        &self,
        q: &InvitationQuery,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        traced!(self, "list_invitations", self.inner.list_invitations(q))
    }
    async fn outbox_backlog(&self) -> Result<Option<OutboxBacklog>, StoreError> {
        traced!(self, "outbox_backlog", self.inner.outbox_backlog())
    }
    fn db_system_name(&self) -> &'static str {
        self.system
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl AccessStore for TracedStore {
    async fn access_paths(
        &self,
        user: UserId,
        website: WebsiteId,
    ) -> Result<Option<AccessFacts>, StoreError> {
        traced!(self, "access_paths", self.inner.access_paths(user, website))
    }
    async fn list_members(&self, q: &MemberQuery) -> Result<Option<Vec<MemberRecord>>, StoreError> {
        traced!(self, "list_members", self.inner.list_members(q))
    }
    async fn list_user_websites(
        &self,
        q: &UserWebsitesQuery,
    ) -> Result<Vec<UserWebsiteRecord>, StoreError> {
        traced!(self, "list_user_websites", self.inner.list_user_websites(q))
    }
    async fn change_member(&self, cmd: &ChangeMember) -> Result<ChangeFact, StoreError> {
        traced!(self, "change_member", self.inner.change_member(cmd))
    }
    async fn erase_person(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<ErasureReport, StoreError> {
        traced!(self, "erase_person", self.inner.erase_person(email, now))
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl EventStore for TracedStore {
    async fn read_events(
        &self,
        organization: OrganizationId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        traced!(
            self,
            "read_events",
            self.inner.read_events(organization, after, limit)
        )
    }
    async fn purge_events(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        traced!(self, "purge_events", self.inner.purge_events(before, limit))
    }
}
