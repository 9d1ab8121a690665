//! The sender checks every mail transport makes when it is configured: a `From` and an
//! optional `Reply-To` that must be mailboxes, and the domain of its `Message-ID`s. Each
//! transport parses mailboxes with its own type (lettre's `Mailbox` for SMTP, an [`Email`] for
//! Postmark); the fields named, the reasons given and the default domain are decided here, once.

use crate::invitee::Email;
use crate::mail::is_message_id_domain;

/// A sender value a transport cannot use: the field it was given as (`from`, `reply_to`,
/// `message_id_domain`) and why, in words. A transport turns it into its own configuration
/// error, keeping both.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{field} {reason}")]
pub struct SenderError {
    field: &'static str,
    reason: &'static str,
}

impl SenderError {
    /// The offending field: `from`, `reply_to` or `message_id_domain`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value cannot be used.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// The reason given for a `From` or `Reply-To` that `parse` refused.
const NOT_A_MAILBOX: &str = "is not an address or Name <address>";

/// Parses the sender `from` and, when given, `reply_to` with the transport's own `parse`
/// (`None` for a value that is not a mailbox).
///
/// ```
/// use invites_core::{check_sender, mailbox_address};
/// let (from, reply_to) =
///     check_sender("Acme <invites@acme.test>", Some("help@acme.test"), mailbox_address).unwrap();
/// assert_eq!((from.domain(), reply_to.unwrap().as_str()), ("acme.test", "help@acme.test"));
/// let e = check_sender("Acme", None, mailbox_address).unwrap_err();
/// assert_eq!(e.field(), "from");
/// ```
///
/// # Errors
/// [`SenderError`] naming `from`, or else `reply_to`, whichever `parse` refused first.
pub fn check_sender<M>(
    from: &str,
    reply_to: Option<&str>,
    parse: impl Fn(&str) -> Option<M>,
) -> Result<(M, Option<M>), SenderError> {
    let from = parse(from).ok_or(SenderError {
        field: "from",
        reason: NOT_A_MAILBOX,
    })?;
    let reply_to = match reply_to {
        Some(r) => Some(parse(r).ok_or(SenderError {
            field: "reply_to",
            reason: NOT_A_MAILBOX,
        })?),
        None => None,
    };
    Ok((from, reply_to))
}

/// The domain of every `Message-ID` a transport writes: `configured`, or else the sender's
/// domain; either way one that [`is_message_id_domain`] allows.
///
/// ```
/// use invites_core::check_message_id_domain;
/// assert_eq!(check_message_id_domain(None, "acme.test").unwrap(), "acme.test");
/// assert_eq!(check_message_id_domain(Some("mail.acme.test".into()), "acme.test").unwrap(), "mail.acme.test");
/// assert_eq!(check_message_id_domain(Some("a b".into()), "acme.test").unwrap_err().field(), "message_id_domain");
/// ```
///
/// # Errors
/// [`SenderError`] naming `message_id_domain` when the domain (configured or the sender's)
/// holds anything but ASCII letters, digits, `.`, `-` and `_`, or is empty.
pub fn check_message_id_domain(
    configured: Option<String>,
    sender_domain: &str,
) -> Result<String, SenderError> {
    let domain = configured.unwrap_or_else(|| sender_domain.to_owned());
    if !is_message_id_domain(&domain) {
        return Err(SenderError {
            field: "message_id_domain",
            reason: "must be a plain domain (letters, digits, '.', '-', '_')",
        });
    }
    Ok(domain)
}

/// The address of `address` or `Name <address>`, for a transport that has no mailbox type of
/// its own: the text after the last `<` up to a closing `>` (or all of it), parsed as an
/// [`Email`]. `None` if that is not an address, or anything (the name too) holds a control
/// character such as a line break. Surrounding white space is ignored.
///
/// ```
/// use invites_core::mailbox_address;
/// assert_eq!(mailbox_address(" Acme <Invites@Acme.test> ").unwrap().as_str(), "invites@acme.test");
/// assert!(mailbox_address("Acme <invites@acme.test").is_none());
/// assert!(mailbox_address("Acme\r\nBcc: x@y.test <invites@acme.test>").is_none());
/// ```
pub fn mailbox_address(s: &str) -> Option<Email> {
    let s = s.trim();
    if s.chars().any(char::is_control) {
        return None;
    }
    let address = match s.rfind('<') {
        Some(i) => s[i + 1..].strip_suffix('>')?,
        None => s,
    };
    Email::parse(address).ok()
}
