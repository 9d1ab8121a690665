//! Identifier newtypes. Each wraps a [`Uuid`] so that a website id can never be passed
//! where a group id is expected.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

id_type!(
    /// An organization (tenant).
    OrganizationId
);
id_type!(
    /// A website, one kind of invite target.
    WebsiteId
);
id_type!(
    /// A group of websites, the other kind of invite target.
    GroupId
);
id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// One invitation (one target, one email).
    InvitationId
);
id_type!(
    /// The invitations created by one email-mode request.
    BatchId
);
id_type!(
    /// One outbox message; stable across delivery attempts so mailers can drop duplicates.
    MessageId
);
id_type!(
    /// An API key, as resolved by the host.
    ApiKeyId
);
id_type!(
    /// A webhook endpoint of an organization.
    EndpointId
);

/// See [`UserId::time_ordered`].
fn time_ordered_uuid(now: Timestamp, random: Uuid) -> Uuid {
    let millis = u64::try_from(now.as_millis()).unwrap_or(0);
    let mut rest = [0u8; 10];
    rest.copy_from_slice(&random.as_bytes()[6..]);
    uuid::Builder::from_unix_timestamp_millis(millis, &rest).into_uuid()
}

impl InvitationId {
    /// A new invitation id, time-ordered (see [`UserId::time_ordered`]).
    pub fn time_ordered(now: Timestamp, random: Uuid) -> Self {
        InvitationId(time_ordered_uuid(now, random))
    }
}

impl UserId {
    /// A new id: a version 7 UUID whose first 48 bits are `now` (Unix milliseconds) and whose
    /// other 74 variable bits are those of `random` (a random UUID).
    ///
    /// The core gives time-ordered ids to what a bulk request writes many rows for (its
    /// invitations, and the user its memberships point at): such ids land next to each
    /// other, after the ones before, in any index keyed by them, so a store's write touches a
    /// few B-tree pages instead of one random page per row. The random part keeps them
    /// unguessable; ids are not secrets anyway (tokens are), but they do reveal their creation
    /// time, as `created_at` does.
    pub fn time_ordered(now: Timestamp, random: Uuid) -> Self {
        UserId(time_ordered_uuid(now, random))
    }
}

/// A target of a bulk invite: a website or a group.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum TargetId {
    /// A website.
    Website(WebsiteId),
    /// A group.
    Group(GroupId),
}

impl TargetId {
    /// Which kind of target this is.
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetId::Website(_) => TargetKind::Website,
            TargetId::Group(_) => TargetKind::Group,
        }
    }

    /// The raw UUID.
    pub fn uuid(&self) -> Uuid {
        match self {
            TargetId::Website(id) => id.0,
            TargetId::Group(id) => id.0,
        }
    }
}

/// The kind of a target.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Websites.
    Website,
    /// Groups.
    Group,
}

impl TargetKind {
    /// `"website"` or `"group"`, as used in messages.
    pub fn noun(&self) -> &'static str {
        match self {
            TargetKind::Website => "website",
            TargetKind::Group => "group",
        }
    }

    /// `"Website"` or `"Group"`.
    pub fn title(&self) -> &'static str {
        match self {
            TargetKind::Website => "Website",
            TargetKind::Group => "Group",
        }
    }

    /// The stable storage tag: `"website"` or `"group"`.
    pub fn as_str(&self) -> &'static str {
        self.noun()
    }

    /// Parses [`TargetKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "website" => Some(TargetKind::Website),
            "group" => Some(TargetKind::Group),
            _ => None,
        }
    }

    /// Builds a [`TargetId`] of this kind.
    pub fn with_id(&self, id: Uuid) -> TargetId {
        match self {
            TargetKind::Website => TargetId::Website(WebsiteId(id)),
            TargetKind::Group => TargetId::Group(GroupId(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_ids_sort_by_time_and_keep_the_random_bits() {
        let random = Uuid::from_u128(u128::MAX);
        let a = InvitationId::time_ordered(Timestamp::from_millis(1_000), random);
        let b = InvitationId::time_ordered(Timestamp::from_millis(1_001), Uuid::nil());
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b);
        // 74 variable bits come from `random`: all ones here, apart from version and variant.
        assert_eq!(&a.0.as_bytes()[9..], &[0xff; 7]);
        let u = UserId::time_ordered(Timestamp::from_millis(-5), random);
        assert_eq!(
            &u.0.as_bytes()[..6],
            &[0; 6],
            "times before 1970 clamp to zero"
        );
    }
}
