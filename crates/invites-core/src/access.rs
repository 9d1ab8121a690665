//! Who has access, and taking it back (contract §11): the data of the [`AccessStore`](
//! crate::AccessStore) port and the rules that decide what its facts mean.
//!
//! The rule is stated once, here: a user reaches a website through any of three *paths* —
//! `direct` (a website membership), `group` (a membership of a group that contains the
//! website; the group is named) and `organization` (an organization member: owner and admin
//! reach every website as `admin`, viewer as `viewer`). The **effective role** is the strongest
//! role of all paths ([`effective_role`]); every path is reported.

use crate::ids::{GroupId, InvitationId, OrganizationId, TargetId, UserId, WebsiteId};
use crate::invitee::{Email, OrgRole, Role};
use crate::rules::TargetAccess;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One way a user reaches a website (or, for a group's member list, the group).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccessPath {
    /// A membership of the website itself.
    Direct {
        /// The membership's role.
        role: Role,
    },
    /// A membership of a group that contains the website.
    Group {
        /// The group.
        group: GroupId,
        /// The group membership's role.
        role: Role,
    },
    /// An organization membership: reaches every website and group of the organization.
    Organization {
        /// The organization role.
        org_role: OrgRole,
    },
}

impl AccessPath {
    /// The website role this path grants ([`org_role_grants`] for an organization member).
    pub fn role(&self) -> Role {
        match self {
            AccessPath::Direct { role } | AccessPath::Group { role, .. } => *role,
            AccessPath::Organization { org_role } => org_role_grants(*org_role),
        }
    }

    /// `"direct"`, `"group"` or `"organization"`.
    pub fn kind(&self) -> &'static str {
        match self {
            AccessPath::Direct { .. } => "direct",
            AccessPath::Group { .. } => "group",
            AccessPath::Organization { .. } => "organization",
        }
    }
}

/// The website role an organization role grants: owner and admin reach every website as
/// `admin`, viewer as `viewer`.
pub fn org_role_grants(role: OrgRole) -> Role {
    match role {
        OrgRole::Owner | OrgRole::Admin => Role::Admin,
        OrgRole::Viewer => Role::Viewer,
    }
}

/// The strongest role of `paths` (`admin` over `viewer`), or `None` without a path.
pub fn effective_role(paths: &[AccessPath]) -> Option<Role> {
    paths.iter().map(AccessPath::role).max_by_key(|r| match r {
        Role::Admin => 1,
        Role::Viewer => 0,
    })
}

/// What [`InviteService::access`](crate::InviteService::access) answers: a user's effective
/// access to a website.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Access {
    /// The effective role: the strongest of `paths`.
    pub role: Role,
    /// Every path, in a canonical order (direct, then groups by id, then organization).
    pub paths: Vec<AccessPath>,
}

impl Access {
    /// The access `paths` grant, or `None` when there is none. Sorts the paths.
    pub fn from_paths(mut paths: Vec<AccessPath>) -> Option<Access> {
        paths.sort();
        paths.dedup();
        Some(Access {
            role: effective_role(&paths)?,
            paths,
        })
    }
}

/// What a store reads for `access(user, website)`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccessFacts {
    /// The website's organization.
    pub organization: OrganizationId,
    /// Every path from the user to the website (any order).
    pub paths: Vec<AccessPath>,
}

/// A page of a target's members ([`AccessStore::list_members`](crate::AccessStore::list_members)).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MemberQuery {
    /// The caller's organization: a target outside it is not found.
    pub organization: OrganizationId,
    /// A website (everyone who reaches it, by any path) or a group (its explicit members).
    pub target: TargetId,
    /// Resume after this user id (exclusive); `None` for the first page.
    pub after: Option<UserId>,
    /// Users per page, 1 to 500.
    pub limit: usize,
}

/// One member of a target, with every path by which it reaches the target.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The user.
    pub user: UserId,
    /// The user's (normalised) email.
    pub email: Email,
    /// Every path (for a group's list: its one `Group` membership).
    pub paths: Vec<AccessPath>,
}

/// A page of the websites one user reaches in an organization
/// ([`AccessStore::list_user_websites`](crate::AccessStore::list_user_websites)).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UserWebsitesQuery {
    /// The caller's organization: only its websites are listed.
    pub organization: OrganizationId,
    /// The user.
    pub user: UserId,
    /// Resume after this website id (exclusive); `None` for the first page.
    pub after: Option<WebsiteId>,
    /// Websites per page, 1 to 500.
    pub limit: usize,
    /// A website-scoped key's allowlist: only these websites are listed (applied before
    /// paging); `None` for every website of the organization.
    pub websites: Option<BTreeSet<WebsiteId>>,
}

/// One website a user reaches.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct UserWebsiteRecord {
    /// The website.
    pub website: WebsiteId,
    /// Its display name.
    pub name: String,
    /// Every path by which the user reaches it.
    pub paths: Vec<AccessPath>,
}

/// What a membership change does.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum MemberChange {
    /// Give the explicit membership this role.
    SetRole(Role),
    /// Delete the explicit membership, and revoke the user's live invitations to the same
    /// target (so a pending link cannot grant it back).
    Remove,
}

/// Change one explicit (website or group) membership
/// ([`AccessStore::change_member`](crate::AccessStore::change_member)).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChangeMember {
    /// The caller's organization.
    pub organization: OrganizationId,
    /// The website or group.
    pub target: TargetId,
    /// The member.
    pub user: UserId,
    /// What to do.
    pub change: MemberChange,
    /// Now (decides which invitations are live).
    pub now: Timestamp,
    /// The API key that asked, recorded on the events.
    pub actor: Option<crate::ids::ApiKeyId>,
}

/// What [`decide_change`] decided for a membership change.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChangeDecision {
    /// Set the membership's role to this.
    Update(Role),
    /// Delete the membership and revoke the user's live invitations to the target.
    Remove,
    /// Report this fact; change nothing.
    Report(ChangeFact),
}

/// What a store found or did for a [`ChangeMember`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ChangeFact {
    /// The role was changed.
    Updated {
        /// The role before.
        from: Role,
    },
    /// The membership was deleted; this many live invitations of the user (same target)
    /// were revoked with it.
    Removed {
        /// The role it had.
        role: Role,
        /// Live invitations revoked.
        revoked: usize,
    },
    /// The membership already had that role.
    Unchanged,
    /// No explicit membership (and no organization access either).
    NotAMember,
    /// No explicit membership, but the user is an organization member: the access comes from
    /// the organization and cannot be changed here.
    OrgMember,
    /// The target is not in the organization.
    TargetNotFound,
}

/// What to do with a membership change, from the facts read in the store's transaction
/// (`access.membership` is the explicit membership of (target, user)). The one definition of
/// every outcome of `set_member_role` and `remove_member`.
pub fn decide_change(access: TargetAccess, change: MemberChange) -> ChangeDecision {
    if !access.exists {
        return ChangeDecision::Report(ChangeFact::TargetNotFound);
    }
    match (access.membership, change) {
        (None, _) if access.org_member => ChangeDecision::Report(ChangeFact::OrgMember),
        (None, _) => ChangeDecision::Report(ChangeFact::NotAMember),
        (Some(current), MemberChange::SetRole(role)) if current == role => {
            ChangeDecision::Report(ChangeFact::Unchanged)
        }
        (Some(_), MemberChange::SetRole(role)) => ChangeDecision::Update(role),
        (Some(_), MemberChange::Remove) => ChangeDecision::Remove,
    }
}

/// What [`AccessStore::erase_person`](crate::AccessStore::erase_person) removed, per kind.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct ErasureReport {
    /// The user erased, if there was one with the address.
    pub user: Option<UserId>,
    /// Website and group memberships deleted.
    pub memberships: u64,
    /// Organization memberships deleted.
    pub org_memberships: u64,
    /// Invitations to the address deleted, in any status.
    pub invitations: u64,
    /// Batches to the address deleted (their accept links die with them).
    pub batches: u64,
    /// Outbox messages to the address deleted, queued or finished.
    pub messages: u64,
    /// Stored idempotency responses naming the user deleted.
    pub idempotency_records: u64,
}

/// The invitations a removal revokes: the ids of `candidates` (the user's invitations to the
/// target) that are live at `now`.
pub fn revoked_by_removal<'a>(
    candidates: impl IntoIterator<Item = &'a crate::InvitationRecord>,
    now: Timestamp,
) -> Vec<InvitationId> {
    candidates
        .into_iter()
        .filter(|i| i.is_live(now))
        .map(|i| i.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn g(n: u128) -> GroupId {
        GroupId(Uuid::from_u128(n))
    }

    #[test]
    fn the_strongest_path_wins_and_every_path_is_kept() {
        let viewer_group = AccessPath::Group {
            group: g(2),
            role: Role::Viewer,
        };
        let org_admin = AccessPath::Organization {
            org_role: OrgRole::Admin,
        };
        let a = Access::from_paths(vec![org_admin, viewer_group]).unwrap();
        assert_eq!(a.role, Role::Admin);
        assert_eq!(a.paths, vec![viewer_group, org_admin], "canonical order");
        let v = Access::from_paths(vec![AccessPath::Organization {
            org_role: OrgRole::Viewer,
        }])
        .unwrap();
        assert_eq!(v.role, Role::Viewer);
        assert_eq!(Access::from_paths(vec![]), None);
        assert_eq!(org_role_grants(OrgRole::Owner), Role::Admin);
    }

    #[test]
    fn every_change_outcome_has_one_definition() {
        let at = |exists, membership, org_member| TargetAccess {
            exists,
            membership,
            org_member,
        };
        use ChangeDecision as D;
        use ChangeFact as F;
        let set = MemberChange::SetRole(Role::Admin);
        assert_eq!(
            decide_change(at(false, Some(Role::Viewer), true), set),
            D::Report(F::TargetNotFound)
        );
        assert_eq!(
            decide_change(at(true, None, true), set),
            D::Report(F::OrgMember)
        );
        assert_eq!(
            decide_change(at(true, None, false), MemberChange::Remove),
            D::Report(F::NotAMember)
        );
        assert_eq!(
            decide_change(at(true, Some(Role::Admin), false), set),
            D::Report(F::Unchanged)
        );
        assert_eq!(
            decide_change(at(true, Some(Role::Viewer), true), set),
            D::Update(Role::Admin)
        );
        assert_eq!(
            decide_change(at(true, Some(Role::Viewer), true), MemberChange::Remove),
            D::Remove
        );
    }
}
