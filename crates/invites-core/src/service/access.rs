//! Who has access, and taking it back (contract §11): the access check a host authorizes
//! with, the member lists, membership changes with typed outcomes, and erasure of a person.

use super::manage::MAX_PAGE;
use super::*;
use crate::access::{
    Access, AccessPath, ChangeFact, ChangeMember, ErasureReport, MemberChange, MemberQuery,
    UserWebsitesQuery,
};
use crate::error::{ErrorCode, InviteError};
use crate::ids::{UserId, WebsiteId};
use crate::invitee::{Email, Role};
use crate::principal::{KeyScope, Principal};
use serde::{Deserialize, Serialize};

/// One member of a target ([`InviteService::members_of`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MemberView {
    /// The user.
    pub user_id: UserId,
    /// The user's email (normalised).
    pub email: Email,
    /// The effective role: the strongest of `access`.
    pub role: Role,
    /// Every path by which the user reaches the target.
    pub access: Vec<AccessPath>,
}

/// A page of [`MemberView`]s.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MemberPage {
    /// The members, by user id.
    pub items: Vec<MemberView>,
    /// Pass to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// One website a user reaches ([`InviteService::websites_of`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WebsiteAccessView {
    /// The website.
    pub website_id: WebsiteId,
    /// Its display name.
    pub name: String,
    /// The effective role: the strongest of `access`.
    pub role: Role,
    /// Every path by which the user reaches it.
    pub access: Vec<AccessPath>,
}

/// A page of [`WebsiteAccessView`]s.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WebsiteAccessPage {
    /// The websites, by id.
    pub items: Vec<WebsiteAccessView>,
    /// Pass to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// The outcome of a membership change, a stable code like the bulk results'.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberOutcome {
    /// The role was changed.
    Updated,
    /// The membership was deleted (and the user's live invitations to the target revoked).
    Removed,
    /// The membership already had that role.
    Unchanged,
    /// The user has no explicit membership of the target.
    NotAMember,
    /// The user's access comes from the organization and cannot be changed here.
    HasOrgAccess,
    /// The API key does not reach the target (a website-scoped key outside its allowlist,
    /// or any group).
    Forbidden,
    /// No such target in the caller's organization.
    TargetNotFound,
}

impl MemberOutcome {
    /// The stable code, e.g. `"not_a_member"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MemberOutcome::Updated => "updated",
            MemberOutcome::Removed => "removed",
            MemberOutcome::Unchanged => "unchanged",
            MemberOutcome::NotAMember => "not_a_member",
            MemberOutcome::HasOrgAccess => "has_org_access",
            MemberOutcome::Forbidden => "forbidden",
            MemberOutcome::TargetNotFound => "target_not_found",
        }
    }

    /// Whether the call changed something.
    pub fn is_change(&self) -> bool {
        matches!(self, MemberOutcome::Updated | MemberOutcome::Removed)
    }
}

/// What [`InviteService::set_member_role`] or [`InviteService::remove_member`] did.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MemberChangeResponse {
    /// The target, as asked.
    pub target: TargetId,
    /// The user, as asked.
    pub user_id: UserId,
    /// What happened.
    pub code: MemberOutcome,
    /// The role now (after `updated`; the unchanged role after `unchanged`), if the user has
    /// an explicit membership left.
    pub role: Option<Role>,
    /// Live invitations of the user to the target revoked with a removal.
    pub revoked_invitations: usize,
}

impl InviteService {
    /// The access check a host makes on every request of its own users: `user`'s effective
    /// role on `website` and every path that grants it (direct, through a named group, or
    /// through the organization; the strongest wins), or `None` when the user has no access
    /// or there is no such website. A host call: no principal, one indexed read per path kind.
    ///
    /// # Errors
    /// [`InviteError::Unavailable`] if the store fails.
    #[tracing::instrument(name = "access", skip_all, fields(user_id = %user, website_id = %website))]
    pub async fn access(
        &self,
        user: UserId,
        website: WebsiteId,
    ) -> Result<Option<Access>, InviteError> {
        let facts = self.store.access_paths(user, website).await?;
        Ok(facts.and_then(|f| Access::from_paths(f.paths)))
    }

    /// A page of the members of a website (everyone who reaches it: direct members, members
    /// of groups that contain it, organization members; each once with its effective role
    /// and every path) or of a group (its explicit members), by user id. Pending invitations
    /// to the target are listed by [`list_invitations`](Self::list_invitations) with
    /// [`InvitationFilter::Target`](crate::InvitationFilter::Target).
    ///
    /// Principal-scoped: another organization's target is `not_found`, like a missing one; a
    /// website-scoped key may list only its websites (`forbidden` otherwise, and for groups).
    ///
    /// # Errors
    /// `invalid_query` (field `limit`: 1 to 500; field `cursor`: not a cursor this API
    /// returned), [`InviteError::Forbidden`], [`InviteError::NotFound`],
    /// [`InviteError::Unavailable`].
    #[tracing::instrument(name = "members_of", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, items))]
    pub async fn members_of(
        &self,
        principal: &Principal,
        target: TargetId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MemberPage, InviteError> {
        check_limit(limit)?;
        let after = parse_id_cursor(cursor)?.map(UserId);
        if !principal.reaches(target) {
            return Err(forbidden(target));
        }
        let q = MemberQuery {
            organization: principal.organization,
            target,
            after,
            limit,
        };
        let records = self
            .store
            .list_members(&q)
            .await?
            .ok_or(InviteError::NotFound { what: "target" })?;
        let next_cursor = (records.len() == limit)
            .then(|| records.last().map(|r| r.user.0.to_string()))
            .flatten();
        let items: Vec<MemberView> = records
            .into_iter()
            .filter_map(|r| {
                let access = Access::from_paths(r.paths)?;
                Some(MemberView {
                    user_id: r.user,
                    email: r.email,
                    role: access.role,
                    access: access.paths,
                })
            })
            .collect();
        tracing::Span::current().record("items", items.len());
        Ok(MemberPage { items, next_cursor })
    }

    /// A page of the websites of the caller's organization that `user` reaches, each once
    /// with its effective role and every path, by website id. A website-scoped key sees only
    /// its websites (filtered before paging). An unknown user, or one of another
    /// organization, has an empty list: no key learns whether a user exists elsewhere.
    ///
    /// # Errors
    /// `invalid_query` (field `limit` or `cursor`), [`InviteError::Unavailable`].
    #[tracing::instrument(name = "websites_of", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, items))]
    pub async fn websites_of(
        &self,
        principal: &Principal,
        user: UserId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<WebsiteAccessPage, InviteError> {
        check_limit(limit)?;
        let after = parse_id_cursor(cursor)?.map(WebsiteId);
        let websites = match &principal.scope {
            KeyScope::Global => None,
            KeyScope::Websites(allow) => Some(allow.iter().copied().collect()),
        };
        let q = UserWebsitesQuery {
            organization: principal.organization,
            user,
            after,
            limit,
            websites,
        };
        let records = self.store.list_user_websites(&q).await?;
        let next_cursor = (records.len() == limit)
            .then(|| records.last().map(|r| r.website.0.to_string()))
            .flatten();
        let items: Vec<WebsiteAccessView> = records
            .into_iter()
            .filter_map(|r| {
                let access = Access::from_paths(r.paths)?;
                Some(WebsiteAccessView {
                    website_id: r.website,
                    name: r.name,
                    role: access.role,
                    access: access.paths,
                })
            })
            .collect();
        tracing::Span::current().record("items", items.len());
        Ok(WebsiteAccessPage { items, next_cursor })
    }

    /// Changes the role of `user`'s explicit membership of `target` (a website or a group).
    /// Outcomes: `updated`, `unchanged`, `not_a_member`, `has_org_access` (no explicit
    /// membership, the access comes from the organization), `forbidden` (the key does not
    /// reach the target), `target_not_found` (another organization's target looks the same).
    ///
    /// # Errors
    /// [`InviteError::Unavailable`] if the store fails (nothing changed).
    #[tracing::instrument(name = "set_member_role", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, outcome))]
    pub async fn set_member_role(
        &self,
        principal: &Principal,
        target: TargetId,
        user: UserId,
        role: Role,
    ) -> Result<MemberChangeResponse, InviteError> {
        self.change_member(principal, target, user, MemberChange::SetRole(role))
            .await
    }

    /// Removes `user`'s explicit membership of `target` (a website or a group) and revokes
    /// the user's live invitations to the same target, so a pending link cannot grant the
    /// access back. Outcomes: `removed`, `not_a_member`, `has_org_access`, `forbidden`,
    /// `target_not_found`. Access the user has through a group or the organization stays
    /// (see [`access`](Self::access)).
    ///
    /// # Errors
    /// [`InviteError::Unavailable`] if the store fails (nothing changed).
    #[tracing::instrument(name = "remove_member", skip_all, fields(organization_id = %principal.organization, key_id = %principal.key_id, outcome))]
    pub async fn remove_member(
        &self,
        principal: &Principal,
        target: TargetId,
        user: UserId,
    ) -> Result<MemberChangeResponse, InviteError> {
        self.change_member(principal, target, user, MemberChange::Remove)
            .await
    }

    async fn change_member(
        &self,
        principal: &Principal,
        target: TargetId,
        user: UserId,
        change: MemberChange,
    ) -> Result<MemberChangeResponse, InviteError> {
        let respond = |code, role, revoked_invitations| {
            tracing::Span::current().record("outcome", MemberOutcome::as_str(&code));
            MemberChangeResponse {
                target,
                user_id: user,
                code,
                role,
                revoked_invitations,
            }
        };
        if !principal.reaches(target) {
            return Ok(respond(MemberOutcome::Forbidden, None, 0));
        }
        let cmd = ChangeMember {
            organization: principal.organization,
            target,
            user,
            change,
            now: self.now(),
            actor: Some(principal.key_id),
        };
        let new_role = match change {
            MemberChange::SetRole(role) => Some(role),
            MemberChange::Remove => None,
        };
        Ok(match self.store.change_member(&cmd).await? {
            ChangeFact::Updated { .. } => respond(MemberOutcome::Updated, new_role, 0),
            ChangeFact::Removed { revoked, .. } => respond(MemberOutcome::Removed, None, revoked),
            ChangeFact::Unchanged => respond(MemberOutcome::Unchanged, new_role, 0),
            ChangeFact::NotAMember => respond(MemberOutcome::NotAMember, None, 0),
            ChangeFact::OrgMember => respond(MemberOutcome::HasOrgAccess, None, 0),
            ChangeFact::TargetNotFound => respond(MemberOutcome::TargetNotFound, None, 0),
        })
    }

    /// Erases a person (a host call, global across organizations; never expose it to an
    /// organization's API key): in one transaction the store deletes the user with `email`
    /// and every membership, every invitation and batch to the address (so every accept link
    /// dies), every outbox message to it, and every stored idempotency response naming the
    /// user. Afterwards no stored row holds the address, the names or the user id. A request
    /// racing it either completes before (and is erased) or after (and starts clean).
    ///
    /// # Errors
    /// `invalid_email` (field `email`) if the address is not valid; nothing changed.
    /// [`InviteError::Unavailable`] if the store fails (nothing changed).
    #[tracing::instrument(name = "erase_person", skip_all)]
    pub async fn erase_person(&self, email: &str) -> Result<ErasureReport, InviteError> {
        let email = Email::parse(email)
            .map_err(|e| InviteError::validation(ErrorCode::InvalidEmail, "email", e.reason()))?;
        Ok(self.store.erase_person(&email, self.now()).await?)
    }
}

fn check_limit(limit: usize) -> Result<(), InviteError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(InviteError::validation(
            ErrorCode::InvalidQuery,
            "limit",
            "must be 1 to 500",
        ));
    }
    Ok(())
}

/// A page cursor of the access lists: the last id of the previous page.
fn parse_id_cursor(cursor: Option<&str>) -> Result<Option<uuid::Uuid>, InviteError> {
    cursor
        .map(|c| {
            uuid::Uuid::parse_str(c).map_err(|_| {
                InviteError::validation(
                    ErrorCode::InvalidQuery,
                    "cursor",
                    "is not a cursor this API returned",
                )
            })
        })
        .transpose()
}
