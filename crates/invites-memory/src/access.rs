//! [`AccessStore`] for [`MemoryStore`]: the paths a user reaches a website by, member lists,
//! membership changes and erasure, each under the store's one lock (so each is atomic).

use crate::{MemoryStore, State};
use async_trait::async_trait;
use invites_core::access::{
    AccessFacts, ChangeDecision, ChangeFact, ChangeMember, ErasureReport, MemberQuery,
    MemberRecord, UserWebsiteRecord, UserWebsitesQuery, decide_change, revoked_by_removal,
};
use invites_core::rules::TargetAccess;
use invites_core::{
    AccessPath, AccessStore, Email, EventContext, InvitationRecord, NewEvent, OrganizationId,
    StoreError, StoredStatus, TargetId, Timestamp, UserId, WebsiteId,
};
use std::collections::{BTreeMap, BTreeSet};

impl State {
    /// Every path from `user` to `website` (of organization `org`).
    fn paths(&self, org: OrganizationId, user: UserId, website: WebsiteId) -> Vec<AccessPath> {
        let mut paths = Vec::new();
        if let Some((role, _)) = self.memberships.get(&(TargetId::Website(website), user)) {
            paths.push(AccessPath::Direct { role: *role });
        }
        for (group, _) in self.group_websites.iter().filter(|(_, w)| *w == website) {
            if let Some((role, _)) = self.memberships.get(&(TargetId::Group(*group), user)) {
                paths.push(AccessPath::Group {
                    group: *group,
                    role: *role,
                });
            }
        }
        if let Some(org_role) = self.org_members.get(&(org, user)) {
            paths.push(AccessPath::Organization {
                org_role: *org_role,
            });
        }
        paths
    }
}

#[async_trait]
impl AccessStore for MemoryStore {
    async fn access_paths(
        &self,
        user: UserId,
        website: WebsiteId,
    ) -> Result<Option<AccessFacts>, StoreError> {
        let s = self.lock();
        let Some(w) = s.websites.get(&website) else {
            return Ok(None);
        };
        Ok(Some(AccessFacts {
            organization: w.organization,
            paths: s.paths(w.organization, user, website),
        }))
    }

    async fn list_members(&self, q: &MemberQuery) -> Result<Option<Vec<MemberRecord>>, StoreError> {
        let s = self.lock();
        if s.target_org(q.target) != Some(q.organization) {
            return Ok(None);
        }
        let mut users: BTreeMap<UserId, Vec<AccessPath>> = BTreeMap::new();
        match q.target {
            TargetId::Group(g) => {
                for ((t, u), (role, _)) in &s.memberships {
                    if *t == q.target {
                        users.entry(*u).or_default().push(AccessPath::Group {
                            group: g,
                            role: *role,
                        });
                    }
                }
            }
            TargetId::Website(w) => {
                let candidates: Vec<UserId> = s
                    .memberships
                    .keys()
                    .filter(|(t, _)| match t {
                        TargetId::Website(x) => *x == w,
                        TargetId::Group(g) => s.group_websites.contains(&(*g, w)),
                    })
                    .map(|(_, u)| *u)
                    .chain(
                        s.org_members
                            .keys()
                            .filter(|(o, _)| *o == q.organization)
                            .map(|(_, u)| *u),
                    )
                    .collect();
                for u in candidates {
                    users.insert(u, s.paths(q.organization, u, w));
                }
            }
        }
        Ok(Some(
            users
                .into_iter()
                .filter(|(u, _)| q.after.is_none_or(|a| *u > a))
                .filter_map(|(u, paths)| {
                    let email = s.users.get(&u)?.email.clone();
                    Some(MemberRecord {
                        user: u,
                        email,
                        paths,
                    })
                })
                .take(q.limit)
                .collect(),
        ))
    }

    async fn list_user_websites(
        &self,
        q: &UserWebsitesQuery,
    ) -> Result<Vec<UserWebsiteRecord>, StoreError> {
        let s = self.lock();
        Ok(s.websites
            .values()
            .filter(|w| w.organization == q.organization)
            .filter(|w| q.after.is_none_or(|a| w.id > a))
            .filter(|w| {
                q.websites
                    .as_ref()
                    .is_none_or(|allow| allow.contains(&w.id))
            })
            .filter_map(|w| {
                let paths = s.paths(q.organization, q.user, w.id);
                (!paths.is_empty()).then(|| UserWebsiteRecord {
                    website: w.id,
                    name: w.name.clone(),
                    paths,
                })
            })
            .take(q.limit)
            .collect())
    }

    async fn change_member(&self, cmd: &ChangeMember) -> Result<ChangeFact, StoreError> {
        let mut s = self.lock();
        let key = (cmd.target, cmd.user);
        let access = TargetAccess {
            exists: s.target_org(cmd.target) == Some(cmd.organization),
            membership: s.memberships.get(&key).map(|(r, _)| *r),
            org_member: s.org_members.contains_key(&(cmd.organization, cmd.user)),
        };
        let ctx = EventContext {
            organization: cmd.organization,
            actor: cmd.actor,
            at: cmd.now,
        };
        Ok(match decide_change(access, cmd.change) {
            ChangeDecision::Report(fact) => fact,
            ChangeDecision::Update(role) => {
                let entry = s.memberships.get_mut(&key).expect("read above");
                let from = entry.0;
                entry.0 = role;
                s.append_events(
                    ctx,
                    &[NewEvent::member_role_changed(cmd.target, cmd.user, role)],
                );
                ChangeFact::Updated { from }
            }
            ChangeDecision::Remove => {
                let (role, _) = s.memberships.remove(&key).expect("read above");
                let email = s.users.get(&cmd.user).map(|u| u.email.clone());
                let candidates: Vec<InvitationRecord> = s
                    .invitations
                    .values()
                    .filter(|i| i.target == cmd.target && Some(&i.email) == email.as_ref())
                    .cloned()
                    .collect();
                let revoked = revoked_by_removal(&candidates, cmd.now);
                let mut events = vec![NewEvent::member_removed(cmd.target, cmd.user)];
                for id in &revoked {
                    s.set_status(*id, StoredStatus::Revoked);
                    let batch = s.invitations[id].batch_id;
                    events.push(NewEvent::invitation_revoked(cmd.target, *id, batch));
                }
                s.append_events(ctx, &events);
                ChangeFact::Removed {
                    role,
                    revoked: revoked.len(),
                }
            }
        })
    }

    async fn erase_person(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<ErasureReport, StoreError> {
        let mut s = self.lock();
        let mut report = ErasureReport::default();
        // The organizations the erasure deletes something of: each gets `person_erased`.
        let mut touched = BTreeSet::new();
        if let Some(user) = s.users_by_email.remove(email) {
            s.users.remove(&user);
            report.user = Some(user);
            for e in s.events.values_mut() {
                if e.user == Some(user) {
                    e.user = None;
                }
            }
            for (t, _) in s.memberships.keys().filter(|(_, u)| *u == user) {
                touched.extend(s.target_org(*t));
            }
            touched.extend(
                s.org_members
                    .keys()
                    .filter(|(_, u)| *u == user)
                    .map(|k| k.0),
            );
            let before = s.memberships.len();
            s.memberships.retain(|(_, u), _| *u != user);
            report.memberships = (before - s.memberships.len()) as u64;
            let before = s.org_members.len();
            s.org_members.retain(|(_, u), _| *u != user);
            report.org_memberships = (before - s.org_members.len()) as u64;
            let needle = user.0.to_string();
            let before = s.idempotency.len();
            s.idempotency
                .retain(|_, r| !r.response.as_deref().is_some_and(|t| t.contains(&needle)));
            report.idempotency_records = (before - s.idempotency.len()) as u64;
        }
        let invitations: Vec<_> = s
            .invitations
            .values()
            .filter(|i| &i.email == email)
            .map(|i| i.id)
            .collect();
        for id in &invitations {
            if let Some(r) = s.invitations.remove(id) {
                touched.insert(r.organization);
                s.pending.remove(&(r.target, r.email));
            }
        }
        report.invitations = invitations.len() as u64;
        let batches: Vec<_> = s
            .batches
            .iter()
            .filter(|(_, b)| &b.email == email)
            .map(|(id, _)| *id)
            .collect();
        for id in &batches {
            if let Some(b) = s.batches.remove(id) {
                touched.insert(b.organization);
                s.tokens.remove(&b.token_hash);
            }
            s.batch_invitations.remove(id);
        }
        report.batches = batches.len() as u64;
        touched.extend(
            s.outbox
                .values()
                .filter(|m| &m.recipient == email || batches.contains(&m.batch_id))
                .map(|m| m.organization),
        );
        let before = s.outbox.len();
        s.outbox
            .retain(|_, m| &m.recipient != email && !batches.contains(&m.batch_id));
        report.messages = (before - s.outbox.len()) as u64;
        for organization in touched {
            s.append_events(
                EventContext {
                    organization,
                    actor: None,
                    at: now,
                },
                &[NewEvent::person_erased()],
            );
        }
        Ok(report)
    }
}
