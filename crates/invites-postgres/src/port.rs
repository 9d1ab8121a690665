//! The store ports of `invites-core`, implemented by [`PgStore`]: each method maps this
//! crate's error to a [`StoreError`] and calls the operation's module.

use crate::{
    PgStore, access, backlog, bulk, change, directory, erase, events, lifecycle, outbox, purge,
};
use async_trait::async_trait;
use invites_core::access::{
    AccessFacts, ChangeFact, ChangeMember, ErasureReport, MemberQuery, MemberRecord,
    UserWebsiteRecord, UserWebsitesQuery,
};
use invites_core::observe::OutboxBacklog;
use invites_core::{
    AcceptBatch, AcceptOutcome, AccessStore, AddMembers, AddMembersOutcome, ApiKeyId, BatchId,
    BatchRecord, BulkStore, CreateInvitations, CreateInvitationsOutcome, DeliveryUpdate, Directory,
    Email, Event, EventStore, Group, GroupId, IdempotencyBegin, IdempotencyState, IdempotencyStore,
    Inspect, InvitationId, InvitationQuery, InvitationRecord, LifecycleStore, MessageId, OrgRole,
    OrganizationId, OutboxMessage, OutboxStore, PurgedBatches, ReadStore, RevokeFact,
    RevokeInvitation, RotateBatch, RotateFact, Snapshot, StoreError, Timestamp, TokenHash, User,
    UserId, Website, WebsiteId,
};

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl BulkStore for PgStore {
    async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError> {
        Ok(bulk::add_members(self, cmd).await?)
    }

    async fn create_invitations(
        &self,
        cmd: &CreateInvitations,
    ) -> Result<CreateInvitationsOutcome, StoreError> {
        Ok(bulk::create_invitations(self, cmd).await?)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ReadStore for PgStore {
    async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError> {
        Ok(lifecycle::find_user(self, email).await?)
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(lifecycle::get_user(self, id).await?)
    }

    async fn find_batch_by_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<BatchRecord>, StoreError> {
        Ok(lifecycle::find_batch_by_token(self, hash).await?)
    }

    async fn get_batch(
        &self,
        organization: OrganizationId,
        batch: BatchId,
    ) -> Result<Option<BatchRecord>, StoreError> {
        Ok(lifecycle::get_batch(self, organization, batch).await?)
    }

    async fn get_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        Ok(lifecycle::get_invitation(self, organization, id).await?)
    }

    async fn list_invitations(
        &self,
        query: &InvitationQuery,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        Ok(lifecycle::list_invitations(self, query).await?)
    }

    async fn outbox_backlog(&self) -> Result<Option<OutboxBacklog>, StoreError> {
        Ok(Some(backlog::outbox_backlog(self).await?))
    }

    fn db_system_name(&self) -> &'static str {
        "postgresql"
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl OutboxStore for PgStore {
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(outbox::claim_due_messages(self, now, lease_until, limit).await?)
    }

    async fn record_delivery(
        &self,
        id: MessageId,
        update: DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        Ok(outbox::record_delivery(self, id, &update, now).await?)
    }

    async fn batch_messages(&self, batch: BatchId) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(outbox::batch_messages(self, batch).await?)
    }

    async fn failed_messages(
        &self,
        created_from: Timestamp,
        created_until: Timestamp,
        after: Option<(Timestamp, MessageId)>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(outbox::failed_messages(self, created_from, created_until, after, limit).await?)
    }

    async fn purge_messages(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        Ok(purge::purge_messages(self, before, limit).await?)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl LifecycleStore for PgStore {
    async fn accept_batch(&self, cmd: &AcceptBatch) -> Result<Option<AcceptOutcome>, StoreError> {
        Ok(lifecycle::accept_batch(self, cmd).await?)
    }

    async fn revoke_invitation(&self, cmd: &RevokeInvitation) -> Result<RevokeFact, StoreError> {
        Ok(lifecycle::revoke_invitation(self, cmd).await?)
    }

    async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError> {
        Ok(lifecycle::rotate_batch(self, cmd).await?)
    }

    async fn purge_batches(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<PurgedBatches, StoreError> {
        Ok(purge::purge_batches(self, before, limit).await?)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl IdempotencyStore for PgStore {
    async fn idempotency_begin(
        &self,
        begin: &IdempotencyBegin,
    ) -> Result<IdempotencyState, StoreError> {
        Ok(lifecycle::idempotency_begin(self, begin).await?)
    }

    async fn idempotency_finish(
        &self,
        organization: OrganizationId,
        key_id: ApiKeyId,
        key: &str,
        started_at: Timestamp,
        response: Option<&str>,
        names_user: Option<UserId>,
    ) -> Result<(), StoreError> {
        Ok(lifecycle::idempotency_finish(
            self,
            organization,
            key_id,
            key,
            started_at,
            response,
            names_user,
        )
        .await?)
    }

    async fn purge_idempotency(
        &self,
        expired_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        Ok(purge::purge_idempotency(self, expired_before, limit).await?)
    }
}

#[async_trait]
impl Directory for PgStore {
    async fn create_organization(&self, id: OrganizationId, name: &str) -> Result<(), StoreError> {
        Ok(directory::create_organization(self, id, name).await?)
    }

    async fn create_website(&self, website: &Website) -> Result<(), StoreError> {
        Ok(directory::create_website(self, website).await?)
    }

    async fn create_group(&self, group: &Group) -> Result<(), StoreError> {
        Ok(directory::create_group(self, group).await?)
    }

    async fn add_website_to_group(
        &self,
        group: GroupId,
        website: WebsiteId,
    ) -> Result<(), StoreError> {
        Ok(directory::add_website_to_group(self, group, website).await?)
    }

    async fn create_user(&self, user: &User) -> Result<UserId, StoreError> {
        Ok(directory::create_user(self, user).await?)
    }

    async fn add_org_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
    ) -> Result<(), StoreError> {
        Ok(directory::add_org_member(self, organization, user, role).await?)
    }

    async fn delete_website(&self, id: WebsiteId, at: Timestamp) -> Result<(), StoreError> {
        Ok(directory::delete_website(self, id, at).await?)
    }

    async fn remove_org_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(directory::remove_org_member(self, organization, user, at).await?)
    }

    async fn set_org_role(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(directory::set_org_role(self, organization, user, role, at).await?)
    }

    async fn remove_website_from_group(
        &self,
        group: GroupId,
        website: WebsiteId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(directory::remove_website_from_group(self, group, website, at).await?)
    }

    async fn delete_group(&self, id: GroupId, at: Timestamp) -> Result<bool, StoreError> {
        Ok(directory::delete_group(self, id, at).await?)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl AccessStore for PgStore {
    async fn access_paths(
        &self,
        user: UserId,
        website: WebsiteId,
    ) -> Result<Option<AccessFacts>, StoreError> {
        Ok(access::access_paths(self, user, website).await?)
    }

    async fn list_members(&self, q: &MemberQuery) -> Result<Option<Vec<MemberRecord>>, StoreError> {
        Ok(access::list_members(self, q).await?)
    }

    async fn list_user_websites(
        &self,
        q: &UserWebsitesQuery,
    ) -> Result<Vec<UserWebsiteRecord>, StoreError> {
        Ok(access::list_user_websites(self, q).await?)
    }

    async fn change_member(&self, cmd: &ChangeMember) -> Result<ChangeFact, StoreError> {
        Ok(change::change_member(self, cmd).await?)
    }

    async fn erase_person(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<ErasureReport, StoreError> {
        Ok(erase::erase_person(self, email, now).await?)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl EventStore for PgStore {
    async fn read_events(
        &self,
        organization: OrganizationId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(events::read_events(self, organization, after, limit).await?)
    }

    async fn purge_events(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        Ok(events::purge_events(self, before, limit).await?)
    }
}

#[async_trait]
impl Inspect for PgStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(directory::snapshot(self).await?)
    }
}
