//! Identifier newtypes. Each wraps a [`Uuid`] so that a website id can never be passed
//! where a group id is expected.

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
