//! The caller: [`Principal`], resolved by the host from its API key.

use crate::ids::{ApiKeyId, OrganizationId, TargetId, WebsiteId};
use std::collections::BTreeSet;

/// What an API key may reach.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum KeyScope {
    /// Every website and group of the organization.
    Global,
    /// Only these websites; no groups.
    Websites(BTreeSet<WebsiteId>),
}

/// The authenticated caller.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Principal {
    /// The key's organization; every target outside it is "not found".
    pub organization: OrganizationId,
    /// The key, used to scope idempotency keys.
    pub key_id: ApiKeyId,
    /// What the key reaches.
    pub scope: KeyScope,
}

impl Principal {
    /// A global key.
    pub fn global(organization: OrganizationId, key_id: ApiKeyId) -> Self {
        Principal {
            organization,
            key_id,
            scope: KeyScope::Global,
        }
    }

    /// A key limited to some websites.
    pub fn websites(
        organization: OrganizationId,
        key_id: ApiKeyId,
        allow: impl IntoIterator<Item = WebsiteId>,
    ) -> Self {
        Principal {
            organization,
            key_id,
            scope: KeyScope::Websites(allow.into_iter().collect()),
        }
    }

    /// Whether the key is global.
    pub fn is_global(&self) -> bool {
        matches!(self.scope, KeyScope::Global)
    }

    /// Whether the key reaches `target` (before looking it up). Website-scoped keys reach only
    /// their websites and no group.
    pub fn reaches(&self, target: TargetId) -> bool {
        match (&self.scope, target) {
            (KeyScope::Global, _) => true,
            (KeyScope::Websites(allow), TargetId::Website(w)) => allow.contains(&w),
            (KeyScope::Websites(_), TargetId::Group(_)) => false,
        }
    }
}
