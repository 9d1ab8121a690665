//! Validated values: [`Email`], [`Role`], [`OrgRole`], [`PersonName`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// A normalised email address: trimmed, validated with the `email_address` crate, lowercase.
///
/// `User@Example.COM` and ` user@example.com ` are the same `Email`. A value of this type
/// has always been validated.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// Why a string is not an [`Email`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EmailError(&'static str);

impl EmailError {
    /// A short reason.
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

impl Email {
    /// Longest accepted address, in bytes (RFC 5321 path limit).
    pub const MAX_LEN: usize = 254;

    /// Normalises and validates `raw`.
    ///
    /// # Errors
    /// [`EmailError`] when the trimmed value is empty, too long, contains a control character,
    /// or is not a valid address.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError("must not be empty"));
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(EmailError("is longer than 254 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(EmailError("contains a control character"));
        }
        if !email_address::EmailAddress::is_valid(trimmed) {
            return Err(EmailError("is not a valid email address"));
        }
        // Display names ("Bob <bob@x>") are valid for the crate but not for us.
        if trimmed.contains(['<', '>', ' ']) {
            return Err(EmailError("must be a bare address"));
        }
        Ok(Email(trimmed.to_lowercase()))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The role granted on a website or group.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Can manage the target.
    Admin,
    /// Can see the target. The default.
    #[default]
    Viewer,
}

impl Role {
    /// `"admin"` or `"viewer"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role of an organization member, who reaches every website and group of the org.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Owns the organization.
    Owner,
    /// Administers the organization.
    Admin,
    /// Sees the whole organization.
    Viewer,
}

impl OrgRole {
    /// `"owner"`, `"admin"` or `"viewer"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Admin => "admin",
            OrgRole::Viewer => "viewer",
        }
    }

    /// Parses [`OrgRole::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(OrgRole::Owner),
            "admin" => Some(OrgRole::Admin),
            "viewer" => Some(OrgRole::Viewer),
            _ => None,
        }
    }
}

/// A validated first or last name: trimmed, 1 to 100 characters, no control characters.
///
/// An empty (or all-whitespace) name in a request is treated as absent.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Trims and validates `raw`; `Ok(None)` when it is empty after trimming.
    ///
    /// # Errors
    /// A static reason when the name is too long or holds a control character (CR and LF
    /// included, so a name can never inject a mail header).
    pub fn parse(raw: &str) -> Result<Option<Self>, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err("is longer than 100 characters");
        }
        if trimmed.chars().any(char::is_control) {
            return Err("contains a control character");
        }
        Ok(Some(PersonName(trimmed.to_owned())))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let a = Email::parse("  User@Example.COM ").unwrap();
        let b = Email::parse("user@example.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "user@example.com");
    }

    #[test]
    fn bad_emails_are_rejected() {
        for raw in [
            "",
            "   ",
            "no-at-sign",
            "a@",
            "@b.com",
            "a b@c.com",
            "Bob <b@c.com>",
            "a@b.com\r\nBcc: x@y.z",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn names_are_trimmed_bounded_and_clean() {
        assert_eq!(
            PersonName::parse("  Ann ").unwrap().unwrap().as_str(),
            "Ann"
        );
        assert_eq!(PersonName::parse("   ").unwrap(), None);
        assert!(PersonName::parse(&"x".repeat(100)).unwrap().is_some());
        assert!(PersonName::parse(&"x".repeat(101)).is_err());
        assert!(PersonName::parse("Ann\r\nBcc: evil").is_err());
        assert!(PersonName::parse("A\u{7}").is_err());
    }
}
