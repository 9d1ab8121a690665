//! [`Directory`] and [`Inspect`] for [`MemoryStore`]: seeding what invites point at, and the
//! canonical snapshot.

use crate::{MemoryStore, conflict};
use async_trait::async_trait;
use invites_core::{
    Directory, EventContext, Group, GroupId, Inspect, InvitationId, InvitationRecord,
    MembershipRow, NewEvent, OrgRole, OrganizationId, OutboxMessage, Snapshot, StoreError,
    TargetId, Timestamp, User, UserId, Website, WebsiteId,
};

#[async_trait]
impl Directory for MemoryStore {
    async fn create_organization(&self, id: OrganizationId, name: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        match s.orgs.get(&id) {
            Some(n) if n != name => Err(conflict("organization exists with another name")),
            Some(_) => Ok(()),
            None => {
                s.orgs.insert(id, name.to_owned());
                Ok(())
            }
        }
    }

    async fn create_website(&self, w: &Website) -> Result<(), StoreError> {
        let mut s = self.lock();
        if !s.orgs.contains_key(&w.organization) {
            return Err(conflict("unknown organization"));
        }
        match s.websites.get(&w.id) {
            Some(existing) if existing != w => Err(conflict("website exists with other content")),
            Some(_) => Ok(()),
            None => {
                s.websites.insert(w.id, w.clone());
                Ok(())
            }
        }
    }

    async fn create_group(&self, g: &Group) -> Result<(), StoreError> {
        let mut s = self.lock();
        if !s.orgs.contains_key(&g.organization) {
            return Err(conflict("unknown organization"));
        }
        match s.groups.get(&g.id) {
            Some(existing) if existing != g => Err(conflict("group exists with other content")),
            Some(_) => Ok(()),
            None => {
                s.groups.insert(g.id, g.clone());
                Ok(())
            }
        }
    }

    async fn add_website_to_group(
        &self,
        group: GroupId,
        website: WebsiteId,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        match (s.groups.get(&group), s.websites.get(&website)) {
            (Some(g), Some(w)) if g.organization == w.organization => {
                s.group_websites.insert((group, website));
                Ok(())
            }
            _ => Err(conflict(
                "unknown group or website, or another organization",
            )),
        }
    }

    async fn create_user(&self, user: &User) -> Result<UserId, StoreError> {
        let mut s = self.lock();
        if let Some(id) = s.users_by_email.get(&user.email) {
            return Ok(*id);
        }
        if s.users.contains_key(&user.id) {
            return Err(conflict("user id exists with another email"));
        }
        s.insert_user(user.clone());
        Ok(user.id)
    }

    async fn add_org_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        if !s.orgs.contains_key(&organization) || !s.users.contains_key(&user) {
            return Err(conflict("unknown organization or user"));
        }
        s.org_members.insert((organization, user), role);
        Ok(())
    }

    async fn delete_website(&self, id: WebsiteId, at: Timestamp) -> Result<(), StoreError> {
        let mut s = self.lock();
        let removed = s.websites.remove(&id);
        s.group_websites.retain(|(_, w)| *w != id);
        s.drop_target(TargetId::Website(id));
        if let Some(w) = removed {
            s.append_events(ctx(w.organization, at), &[NewEvent::website_deleted(id)]);
        }
        Ok(())
    }

    async fn remove_org_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let was = s.org_members.remove(&(organization, user)).is_some();
        if was {
            s.append_events(ctx(organization, at), &[NewEvent::org_member_removed(user)]);
        }
        Ok(was)
    }

    async fn set_org_role(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let changed = match s.org_members.get_mut(&(organization, user)) {
            Some(r) => std::mem::replace(r, role) != role,
            None => return Ok(false),
        };
        if changed {
            s.append_events(
                ctx(organization, at),
                &[NewEvent::org_member_role_changed(user, role)],
            );
        }
        Ok(true)
    }

    async fn remove_website_from_group(
        &self,
        group: GroupId,
        website: WebsiteId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let was = s.group_websites.remove(&(group, website));
        if let Some(org) = s.groups.get(&group).map(|g| g.organization).filter(|_| was) {
            s.append_events(
                ctx(org, at),
                &[NewEvent::website_removed_from_group(group, website)],
            );
        }
        Ok(was)
    }

    async fn delete_group(&self, id: GroupId, at: Timestamp) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let removed = s.groups.remove(&id);
        s.group_websites.retain(|(g, _)| *g != id);
        s.drop_target(TargetId::Group(id));
        if let Some(g) = &removed {
            s.append_events(ctx(g.organization, at), &[NewEvent::group_deleted(id)]);
        }
        Ok(removed.is_some())
    }
}

/// The events of a Directory call: no API key.
fn ctx(organization: OrganizationId, at: Timestamp) -> EventContext {
    EventContext {
        organization,
        actor: None,
        at,
    }
}

impl crate::State {
    /// Deletes a deleted target's memberships and invitations (their batches stay, as the
    /// other invitations of a batch do).
    fn drop_target(&mut self, t: TargetId) {
        self.memberships.retain(|(target, _), _| *target != t);
        let gone: Vec<InvitationId> = self
            .invitations
            .values()
            .filter(|i| i.target == t)
            .map(|i| i.id)
            .collect();
        for inv in gone {
            if let Some(r) = self.invitations.remove(&inv) {
                self.pending.remove(&(r.target, r.email.clone()));
                if let Some(list) = self.batch_invitations.get_mut(&r.batch_id) {
                    list.retain(|i| *i != inv);
                }
            }
        }
    }
}

#[async_trait]
impl Inspect for MemoryStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let s = self.lock();
        let mut users: Vec<User> = s.users.values().cloned().collect();
        users.sort_by(|a, b| a.email.cmp(&b.email));
        let memberships = s
            .memberships
            .iter()
            .map(|((target, user), (role, created_at))| MembershipRow {
                target: *target,
                user: *user,
                role: *role,
                created_at: *created_at,
            })
            .collect();
        let org_members = s
            .org_members
            .iter()
            .map(|((o, u), r)| (*o, *u, *r))
            .collect();
        let mut invitations: Vec<InvitationRecord> = s
            .invitations
            .keys()
            .filter_map(|i| s.invitation(*i))
            .collect();
        invitations.sort_by_key(|i| (i.created_at, i.id));
        let batches = s
            .batches
            .iter()
            .map(|(id, b)| (*id, b.organization, b.email.clone(), b.created_at))
            .collect();
        let mut outbox: Vec<OutboxMessage> = s.outbox.values().cloned().collect();
        outbox.sort_by_key(|m| (m.created_at, m.id));
        Ok(Snapshot {
            users,
            memberships,
            org_members,
            invitations,
            batches,
            outbox,
        })
    }
}
