//! A store wrapper that injects faults: failing targets or whole operations, as a rolled-back
//! savepoint or a failed commit would leave them.

use async_trait::async_trait;
use invites_core::*;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Which faults a [`FaultyStore`] injects.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    /// Targets whose unit fails in batch operations (`add_members`, `create_invitations`).
    /// The store never sees them, exactly as if their savepoint had rolled back.
    pub failing_targets: BTreeSet<TargetId>,
    /// Every batch operation fails as a whole (as if the final commit failed).
    pub fail_batches: bool,
    /// Every other operation fails.
    pub fail_everything_else: bool,
}

/// Wraps a store and injects [`Fault`]s. Per-target faults are applied by removing the target
/// from the batch and reporting an error in its slot, which is what a rolled-back savepoint
/// leaves behind.
#[derive(Clone, Debug)]
pub struct FaultyStore {
    inner: Arc<dyn MembershipStore>,
    fault: Arc<Mutex<Fault>>,
}

fn injected() -> StoreError {
    StoreError::unavailable("injected fault")
}

impl FaultyStore {
    /// Wraps `inner` with no fault.
    pub fn new(inner: Arc<dyn MembershipStore>) -> Self {
        FaultyStore {
            inner,
            fault: Arc::new(Mutex::new(Fault::default())),
        }
    }

    /// Sets the faults.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    fn fault(&self) -> Fault {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn other(&self) -> Result<(), StoreError> {
        if self.fault().fail_everything_else {
            Err(injected())
        } else {
            Ok(())
        }
    }

    /// Splits `targets` into the ones passed on and a map to put the results back.
    fn split<T: Clone>(
        targets: &[T],
        key: impl Fn(&T) -> TargetId,
        f: &Fault,
    ) -> (Vec<T>, Vec<bool>) {
        let failing: Vec<bool> = targets
            .iter()
            .map(|t| f.failing_targets.contains(&key(t)))
            .collect();
        let pass = targets
            .iter()
            .zip(&failing)
            .filter(|(_, fail)| !**fail)
            .map(|(t, _)| t.clone())
            .collect();
        (pass, failing)
    }

    fn merge<F>(slots: Vec<TargetSlot<F>>, failing: &[bool]) -> Vec<TargetSlot<F>> {
        let mut it = slots.into_iter();
        failing
            .iter()
            .map(|fail| {
                if *fail {
                    Err(injected())
                } else {
                    it.next().unwrap_or_else(|| Err(injected()))
                }
            })
            .collect()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl BulkStore for FaultyStore {
    async fn add_members(&self, cmd: &AddMembers) -> Result<AddMembersOutcome, StoreError> {
        let f = self.fault();
        if f.fail_batches {
            return Err(injected());
        }
        let (pass, failing) = Self::split(&cmd.targets, |t| *t, &f);
        let mut inner_cmd = cmd.clone();
        inner_cmd.targets = pass;
        let out = if inner_cmd.targets.is_empty() {
            let user = self.inner.find_user(&cmd.email).await?.map(|u| UserRef {
                id: u.id,
                created: false,
            });
            AddMembersOutcome {
                user,
                targets: Vec::new(),
            }
        } else {
            self.inner.add_members(&inner_cmd).await?
        };
        Ok(AddMembersOutcome {
            user: out.user,
            targets: Self::merge(out.targets, &failing),
        })
    }

    async fn create_invitations(
        &self,
        cmd: &CreateInvitations,
    ) -> Result<CreateInvitationsOutcome, StoreError> {
        let f = self.fault();
        if f.fail_batches {
            return Err(injected());
        }
        let (pass, failing) = Self::split(&cmd.targets, |t| t.0, &f);
        let mut inner_cmd = cmd.clone();
        inner_cmd.targets = pass;
        let out = if inner_cmd.targets.is_empty() {
            let existing_user = self.inner.find_user(&cmd.email).await?.map(|u| u.id);
            CreateInvitationsOutcome {
                existing_user,
                targets: Vec::new(),
            }
        } else {
            self.inner.create_invitations(&inner_cmd).await?
        };
        Ok(CreateInvitationsOutcome {
            existing_user: out.existing_user,
            targets: Self::merge(out.targets, &failing),
        })
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl LifecycleStore for FaultyStore {
    async fn accept_batch(&self, cmd: &AcceptBatch) -> Result<Option<AcceptOutcome>, StoreError> {
        if self.fault().fail_batches {
            return Err(injected());
        }
        self.inner.accept_batch(cmd).await
    }

    async fn revoke_invitation(&self, cmd: &RevokeInvitation) -> Result<RevokeFact, StoreError> {
        self.other()?;
        self.inner.revoke_invitation(cmd).await
    }

    async fn rotate_batch(&self, cmd: &RotateBatch) -> Result<RotateFact, StoreError> {
        self.other()?;
        self.inner.rotate_batch(cmd).await
    }

    async fn purge_batches(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<PurgedBatches, StoreError> {
        self.other()?;
        self.inner.purge_batches(before, limit).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl OutboxStore for FaultyStore {
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.other()?;
        self.inner.claim_due_messages(now, lease_until, limit).await
    }

    async fn record_delivery(
        &self,
        id: MessageId,
        update: DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.other()?;
        self.inner.record_delivery(id, update, now).await
    }

    async fn batch_messages(&self, batch: BatchId) -> Result<Vec<OutboxMessage>, StoreError> {
        self.other()?;
        self.inner.batch_messages(batch).await
    }

    async fn failed_messages(
        &self,
        created_from: Timestamp,
        created_until: Timestamp,
        after: Option<(Timestamp, MessageId)>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.other()?;
        self.inner
            .failed_messages(created_from, created_until, after, limit)
            .await
    }

    async fn purge_messages(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.other()?;
        self.inner.purge_messages(before, limit).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl IdempotencyStore for FaultyStore {
    async fn idempotency_begin(
        &self,
        b: &IdempotencyBegin,
    ) -> Result<IdempotencyState, StoreError> {
        self.other()?;
        self.inner.idempotency_begin(b).await
    }

    async fn idempotency_finish(
        &self,
        o: OrganizationId,
        k: ApiKeyId,
        key: &str,
        started_at: Timestamp,
        r: Option<&str>,
        names_user: Option<UserId>,
    ) -> Result<(), StoreError> {
        self.other()?;
        self.inner
            .idempotency_finish(o, k, key, started_at, r, names_user)
            .await
    }

    async fn purge_idempotency(
        &self,
        expired_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        self.other()?;
        self.inner.purge_idempotency(expired_before, limit).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ReadStore for FaultyStore {
    async fn find_user(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.other()?;
        self.inner.find_user(email).await
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.other()?;
        self.inner.get_user(id).await
    }

    async fn find_batch_by_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<BatchRecord>, StoreError> {
        self.other()?;
        self.inner.find_batch_by_token(hash).await
    }

    async fn get_batch(
        &self,
        organization: OrganizationId,
        batch: BatchId,
    ) -> Result<Option<BatchRecord>, StoreError> {
        self.other()?;
        self.inner.get_batch(organization, batch).await
    }

    async fn get_invitation(
        &self,
        o: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        self.other()?;
        self.inner.get_invitation(o, id).await
    }

    async fn list_invitations(
        &self,
        q: &InvitationQuery,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        self.other()?;
        self.inner.list_invitations(q).await
    }

    async fn outbox_backlog(&self) -> Result<Option<observe::OutboxBacklog>, StoreError> {
        self.other()?;
        self.inner.outbox_backlog().await
    }

    fn db_system_name(&self) -> &'static str {
        self.inner.db_system_name()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl AccessStore for FaultyStore {
    async fn access_paths(
        &self,
        user: UserId,
        website: WebsiteId,
    ) -> Result<Option<access::AccessFacts>, StoreError> {
        self.other()?;
        self.inner.access_paths(user, website).await
    }

    async fn list_members(
        &self,
        q: &access::MemberQuery,
    ) -> Result<Option<Vec<access::MemberRecord>>, StoreError> {
        self.other()?;
        self.inner.list_members(q).await
    }

    async fn list_user_websites(
        &self,
        q: &access::UserWebsitesQuery,
    ) -> Result<Vec<access::UserWebsiteRecord>, StoreError> {
        self.other()?;
        self.inner.list_user_websites(q).await
    }

    async fn change_member(&self, cmd: &access::ChangeMember) -> Result<ChangeFact, StoreError> {
        self.other()?;
        self.inner.change_member(cmd).await
    }

    async fn erase_person(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<ErasureReport, StoreError> {
        self.other()?;
        self.inner.erase_person(email, now).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl EventStore for FaultyStore {
    async fn read_events(
        &self,
        organization: OrganizationId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.other()?;
        self.inner.read_events(organization, after, limit).await
    }

    async fn purge_events(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.other()?;
        self.inner.purge_events(before, limit).await
    }
}
