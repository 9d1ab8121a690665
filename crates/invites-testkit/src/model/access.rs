//! Who has access, and taking it back (docs/contract.md §11) in the model, written from the contract and the
//! service's documentation (not from `invites_core::access`): the access rule stated once
//! ([`Model::paths`]: the paths; [`strongest`]: the strongest wins), the member lists, the
//! membership changes, erasure, and the directory's other half.

use super::*;

/// The website role an organization role reaches every website with: owner and admin as
/// `admin`, viewer as `viewer` (docs/contract.md §11).
fn org_grants(role: OrgRole) -> Role {
    match role {
        OrgRole::Owner | OrgRole::Admin => Role::Admin,
        OrgRole::Viewer => Role::Viewer,
    }
}

fn grants(path: &AccessPath) -> Role {
    match path {
        AccessPath::Direct { role } | AccessPath::Group { role, .. } => *role,
        AccessPath::Organization { org_role } => org_grants(*org_role),
    }
}

/// The access `paths` give: `admin` if any path grants `admin`, else `viewer`; `None` without
/// a path. The paths are kept as given (the model builds them in the canonical order).
fn strongest(paths: Vec<AccessPath>) -> Option<Access> {
    let first = paths.first()?;
    let role = if paths.iter().any(|p| grants(p) == Role::Admin) {
        Role::Admin
    } else {
        grants(first)
    };
    Some(Access { role, paths })
}

fn check_limit(limit: usize) -> Result<(), InviteError> {
    if limit == 0 || limit > 500 {
        return Err(invalid(
            ErrorCode::InvalidQuery,
            "limit",
            "must be 1 to 500",
        ));
    }
    Ok(())
}

fn parse_cursor(cursor: Option<&str>) -> Result<Option<uuid::Uuid>, InviteError> {
    cursor
        .map(|c| {
            uuid::Uuid::try_parse(c).map_err(|_| invalid(ErrorCode::InvalidQuery, "cursor", ""))
        })
        .transpose()
}

/// Deletes the items `gone` holds for; how many.
fn count<T>(v: &mut Vec<T>, gone: impl Fn(&T) -> bool) -> u64 {
    let before = v.len();
    v.retain(|x| !gone(x));
    (before - v.len()) as u64
}

fn change(target: TargetId, user: UserId, code: MemberOutcome) -> MemberChangeResponse {
    MemberChangeResponse {
        target,
        user_id: user,
        code,
        role: None,
        revoked_invitations: 0,
    }
}

impl Model {
    /// The groups that hold `website`, by id.
    fn groups_holding(&self, website: WebsiteId) -> Vec<GroupId> {
        let mut v: Vec<GroupId> = self
            .group_websites
            .iter()
            .filter(|(_, w)| *w == website)
            .map(|(g, _)| *g)
            .collect();
        v.sort();
        v
    }

    fn membership_role(&self, t: TargetId, user: UserId) -> Option<Role> {
        self.memberships
            .iter()
            .find(|m| m.target == t && m.user == user)
            .map(|m| m.role)
    }

    /// Every path from `user` to `website`, in the canonical order: the website membership,
    /// then the memberships of the groups holding the website (by group id), then the
    /// membership of the website's organization. Empty for an unknown website.
    pub(super) fn paths(&self, user: UserId, website: WebsiteId) -> Vec<AccessPath> {
        let Some(org) = self.target_org(TargetId::Website(website)) else {
            return Vec::new();
        };
        let mut paths = Vec::new();
        if let Some(role) = self.membership_role(TargetId::Website(website), user) {
            paths.push(AccessPath::Direct { role });
        }
        for group in self.groups_holding(website) {
            if let Some(role) = self.membership_role(TargetId::Group(group), user) {
                paths.push(AccessPath::Group { group, role });
            }
        }
        if let Some((_, _, org_role)) = self
            .org_members
            .iter()
            .find(|(o, u, _)| *o == org && *u == user)
        {
            paths.push(AccessPath::Organization {
                org_role: *org_role,
            });
        }
        paths
    }

    /// `InviteService::access`: the strongest of the user's paths to the website, with every
    /// path; `None` without a path or for an unknown website.
    pub fn access(&self, user: UserId, website: WebsiteId) -> Option<Access> {
        strongest(self.paths(user, website))
    }

    /// `InviteService::members_of`: a page of the users who reach a website (by any path) or
    /// the explicit members of a group, by user id.
    ///
    /// # Errors
    /// `invalid_query` (limit, then cursor), `forbidden` (the key does not reach the target),
    /// `not_found` (no such target in the caller's organization).
    pub fn members_of(
        &self,
        principal: &Principal,
        target: TargetId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MemberPage, InviteError> {
        check_limit(limit)?;
        let after = parse_cursor(cursor)?.map(UserId);
        if !reaches(principal, target) {
            return Err(forbidden(target));
        }
        if self.target_org(target) != Some(principal.organization) {
            return Err(InviteError::NotFound { what: "target" });
        }
        let mut users: Vec<&User> = self.users.iter().collect();
        users.sort_by_key(|u| u.id);
        let items: Vec<MemberView> = users
            .into_iter()
            .filter(|u| after.is_none_or(|a| u.id > a))
            .filter_map(|u| {
                let paths = match target {
                    TargetId::Website(w) => self.paths(u.id, w),
                    TargetId::Group(group) => self
                        .membership_role(target, u.id)
                        .map(|role| AccessPath::Group { group, role })
                        .into_iter()
                        .collect(),
                };
                let access = strongest(paths)?;
                Some(MemberView {
                    user_id: u.id,
                    email: u.email.clone(),
                    role: access.role,
                    access: access.paths,
                })
            })
            .take(limit)
            .collect();
        let next_cursor = (items.len() == limit)
            .then(|| items.last().map(|m| m.user_id.0.to_string()))
            .flatten();
        Ok(MemberPage { items, next_cursor })
    }

    /// `InviteService::websites_of`: a page of the caller's organization's websites the user
    /// reaches (a scoped key: only its websites), by website id.
    ///
    /// # Errors
    /// `invalid_query` (limit, then cursor).
    pub fn websites_of(
        &self,
        principal: &Principal,
        user: UserId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<WebsiteAccessPage, InviteError> {
        check_limit(limit)?;
        let after = parse_cursor(cursor)?.map(WebsiteId);
        let mut websites: Vec<&Website> = self
            .websites
            .iter()
            .filter(|w| w.organization == principal.organization)
            .filter(|w| reaches(principal, TargetId::Website(w.id)))
            .collect();
        websites.sort_by_key(|w| w.id);
        let items: Vec<WebsiteAccessView> = websites
            .into_iter()
            .filter(|w| after.is_none_or(|a| w.id > a))
            .filter_map(|w| {
                let access = self.access(user, w.id)?;
                Some(WebsiteAccessView {
                    website_id: w.id,
                    name: w.name.clone(),
                    role: access.role,
                    access: access.paths,
                })
            })
            .take(limit)
            .collect();
        let next_cursor = (items.len() == limit)
            .then(|| items.last().map(|w| w.website_id.0.to_string()))
            .flatten();
        Ok(WebsiteAccessPage { items, next_cursor })
    }

    /// The outcome of a change of `user`'s explicit membership of `target` that does not get
    /// to the membership, if any: the key does not reach the target, the target is not in the
    /// organization, or there is no explicit membership.
    fn refuse_change(
        &self,
        principal: &Principal,
        target: TargetId,
        user: UserId,
    ) -> Option<MemberChangeResponse> {
        let code = if !reaches(principal, target) {
            MemberOutcome::Forbidden
        } else if self.target_org(target) != Some(principal.organization) {
            MemberOutcome::TargetNotFound
        } else if self.membership_role(target, user).is_some() {
            return None;
        } else if self.is_org_member(principal.organization, user) {
            MemberOutcome::HasOrgAccess
        } else {
            MemberOutcome::NotAMember
        };
        Some(change(target, user, code))
    }

    /// `InviteService::set_member_role`: `updated`, `unchanged`, `not_a_member`,
    /// `has_org_access`, `forbidden` or `target_not_found`.
    pub fn set_member_role(
        &mut self,
        principal: &Principal,
        target: TargetId,
        user: UserId,
        role: Role,
    ) -> MemberChangeResponse {
        if let Some(refused) = self.refuse_change(principal, target, user) {
            return refused;
        }
        let m = self
            .memberships
            .iter_mut()
            .find(|m| m.target == target && m.user == user)
            .expect("checked by refuse_change");
        let code = if m.role == role {
            MemberOutcome::Unchanged
        } else {
            m.role = role;
            self.emit(
                principal.organization,
                Some(principal.key_id),
                NewEvent::member_role_changed(target, user, role),
            );
            MemberOutcome::Updated
        };
        MemberChangeResponse {
            role: Some(role),
            ..change(target, user, code)
        }
    }

    /// `InviteService::remove_member`: deletes the explicit membership and revokes the live
    /// invitations to the same target for the user's email (`removed`), or refuses as
    /// [`Model::set_member_role`] does.
    pub fn remove_member(
        &mut self,
        principal: &Principal,
        target: TargetId,
        user: UserId,
    ) -> MemberChangeResponse {
        if let Some(refused) = self.refuse_change(principal, target, user) {
            return refused;
        }
        self.memberships
            .retain(|m| !(m.target == target && m.user == user));
        let email = self
            .users
            .iter()
            .find(|u| u.id == user)
            .map(|u| u.email.clone());
        let now = self.now;
        let mut events = vec![NewEvent::member_removed(target, user)];
        for inv in &mut self.invitations {
            let live = inv.status == StoredStatus::Pending && now < inv.expires_at;
            if live && inv.target == target && Some(&inv.email) == email.as_ref() {
                inv.status = StoredStatus::Revoked;
                events.push(NewEvent::invitation_revoked(target, inv.id, inv.batch_id));
            }
        }
        let revoked = events.len() - 1;
        for e in events {
            self.emit(principal.organization, Some(principal.key_id), e);
        }
        MemberChangeResponse {
            revoked_invitations: revoked,
            ..change(target, user, MemberOutcome::Removed)
        }
    }

    /// `InviteService::erase_person`: deletes the user with the address and all its
    /// memberships, every invitation, batch and outbox message to the address, and every
    /// stored idempotent response naming the user.
    ///
    /// # Errors
    /// `invalid_email` (field `email`).
    pub fn erase_person(&mut self, email: &str) -> Result<ErasureReport, InviteError> {
        let email =
            Email::parse(email).map_err(|_| invalid(ErrorCode::InvalidEmail, "email", ""))?;
        let mut report = ErasureReport::default();
        // Every organization it deletes something of gets `person_erased`.
        let mut touched = std::collections::BTreeSet::new();
        touched.extend(
            self.invitations
                .iter()
                .filter(|i| i.email == email)
                .map(|i| i.organization),
        );
        touched.extend(
            self.batches
                .iter()
                .filter(|b| b.email == email)
                .map(|b| b.organization),
        );
        touched.extend(
            self.outbox
                .iter()
                .filter(|m| m.recipient == email)
                .map(|m| m.organization),
        );
        if let Some(user) = self.find_user(&email).map(|u| u.id) {
            touched.extend(
                self.memberships
                    .iter()
                    .filter(|m| m.user == user)
                    .filter_map(|m| self.target_org(m.target)),
            );
            touched.extend(
                self.org_members
                    .iter()
                    .filter(|(_, u, _)| *u == user)
                    .map(|(o, _, _)| *o),
            );
            self.forget_in_events(user);
            report.user = Some(user);
            self.users.retain(|u| u.id != user);
            report.memberships = count(&mut self.memberships, |m| m.user == user);
            report.org_memberships = count(&mut self.org_members, |(_, u, _)| *u == user);
            let names = |r: &BulkInviteResponse| {
                r.user_id == Some(user) || r.results.iter().any(|t| t.user_id == Some(user))
            };
            report.idempotency_records = count(&mut self.idempotency, |r| names(&r.response));
        }
        report.invitations = count(&mut self.invitations, |i| i.email == email);
        report.batches = count(&mut self.batches, |b| b.email == email);
        report.messages = count(&mut self.outbox, |m| m.recipient == email);
        for organization in touched {
            self.emit(organization, None, NewEvent::person_erased());
        }
        Ok(report)
    }

    // ----- the directory's other half ---------------------------------------------------

    /// Takes a user out of an organization; whether it was a member.
    pub fn remove_org_member(&mut self, organization: OrganizationId, user: UserId) -> bool {
        let before = self.org_members.len();
        self.org_members
            .retain(|(o, u, _)| !(*o == organization && *u == user));
        let removed = self.org_members.len() < before;
        if removed {
            self.emit(organization, None, NewEvent::org_member_removed(user));
        }
        removed
    }

    /// Changes an organization member's role; whether the user is a member (a non-member is
    /// not added).
    pub fn set_org_role(
        &mut self,
        organization: OrganizationId,
        user: UserId,
        role: OrgRole,
    ) -> bool {
        match self
            .org_members
            .iter_mut()
            .find(|(o, u, _)| *o == organization && *u == user)
        {
            Some(m) => {
                if m.2 != role {
                    m.2 = role;
                    self.emit(
                        organization,
                        None,
                        NewEvent::org_member_role_changed(user, role),
                    );
                }
                true
            }
            None => false,
        }
    }

    /// Puts a website into a group of the same organization; `false` (refused, nothing
    /// changed) for an unknown group or website or two organizations.
    pub fn add_website_to_group(&mut self, group: GroupId, website: WebsiteId) -> bool {
        let g = self.target_org(TargetId::Group(group));
        if g.is_none() || g != self.target_org(TargetId::Website(website)) {
            return false;
        }
        if !self.group_websites.contains(&(group, website)) {
            self.group_websites.push((group, website));
        }
        true
    }

    /// Takes a website out of a group; whether it was in it.
    pub fn remove_website_from_group(&mut self, group: GroupId, website: WebsiteId) -> bool {
        let before = self.group_websites.len();
        self.group_websites.retain(|l| *l != (group, website));
        let removed = self.group_websites.len() < before;
        if let Some(org) = self.target_org(TargetId::Group(group)).filter(|_| removed) {
            self.emit(
                org,
                None,
                NewEvent::website_removed_from_group(group, website),
            );
        }
        removed
    }

    /// Deletes a group with its memberships, website links and invitations (batches and
    /// outbox rows stay); whether it existed.
    pub fn delete_group(&mut self, id: GroupId) -> bool {
        let t = TargetId::Group(id);
        let existed = self.groups.iter().any(|g| g.id == id);
        if let Some(org) = self.target_org(t) {
            self.emit(org, None, NewEvent::group_deleted(id));
        }
        self.groups.retain(|g| g.id != id);
        self.group_websites.retain(|(g, _)| *g != id);
        self.memberships.retain(|m| m.target != t);
        self.invitations.retain(|i| i.target != t);
        existed
    }
}
