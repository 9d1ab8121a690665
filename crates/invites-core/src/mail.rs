//! The consolidated email: [`EmailMessage`], the [`Mailer`] port and the replaceable
//! [`EmailRenderer`].

use crate::error::MailError;
use crate::ids::{BatchId, MessageId, TargetKind};
use crate::time::Timestamp;
use crate::values::{Email, PersonName, Role};
use async_trait::async_trait;
use std::fmt::{self, Debug, Write as _};
use std::sync::Arc;

/// One rendered message, ready for a mailer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EmailMessage {
    /// Stable across delivery attempts: a mailer can use it (e.g. as `Message-ID`) to drop
    /// duplicates, since delivery is at least once.
    pub id: MessageId,
    /// The batch it announces.
    pub batch_id: BatchId,
    /// Recipient (normalised).
    pub to: Email,
    /// Subject, one line, no control characters.
    pub subject: String,
    /// Plain text part.
    pub text: String,
    /// HTML part; every interpolated value escaped.
    pub html: String,
}

/// Delivers one rendered message. Implemented by the host (SMTP, an HTTP mail API, ...).
#[async_trait]
pub trait Mailer: Send + Sync + Debug + 'static {
    /// Sends `message`.
    ///
    /// # Errors
    /// [`MailError::transient`] when a retry may help (optionally with
    /// [`MailError::with_retry_after`]), [`MailError::permanent`] when this message cannot be
    /// delivered, [`MailError::misconfigured`] when the mailer itself is (bad credentials, ...).
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError>;
}

#[async_trait]
impl<T: Mailer + ?Sized> Mailer for Arc<T> {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        (**self).send(message).await
    }
}

/// One target as listed in the email.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EmailTarget {
    /// Website or group.
    pub kind: TargetKind,
    /// Display name (host data; escaped in HTML).
    pub name: String,
    /// Role granted.
    pub role: Role,
}

/// Everything a renderer may use.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BatchEmail {
    /// Recipient.
    pub to: Email,
    /// The invitee's first name, if given.
    pub first_name: Option<PersonName>,
    /// The live targets, sorted by name (then id) by the service.
    pub targets: Vec<EmailTarget>,
    /// When the invitations expire (the earliest, if they differ).
    pub expires_at: Timestamp,
    /// The one accept link.
    pub accept_url: String,
}

/// The parts a renderer produces.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RenderedEmail {
    /// Subject; the service removes control characters from it whatever the renderer does.
    pub subject: String,
    /// Plain text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// Turns a batch into a message. Hosts replace [`DefaultRenderer`] for their own wording and
/// branding; they must escape what they interpolate into HTML (see [`escape_html`]).
pub trait EmailRenderer: Send + Sync + Debug + 'static {
    /// Renders the message.
    fn render(&self, email: &BatchEmail) -> RenderedEmail;
}

/// The built-in renderer: a subject naming how many targets, the list with roles, the expiry,
/// one accept link; text and HTML parts.
#[derive(Clone, Debug)]
pub struct DefaultRenderer {
    /// Product name used in the subject and greeting, e.g. "Acme Analytics".
    pub product_name: String,
}

impl Default for DefaultRenderer {
    fn default() -> Self {
        DefaultRenderer {
            product_name: "our service".to_owned(),
        }
    }
}

fn count_noun(targets: &[EmailTarget]) -> String {
    let n = targets.len();
    let all_groups = targets.iter().all(|t| t.kind == TargetKind::Group);
    let noun = if all_groups { "group" } else { "website" };
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

impl EmailRenderer for DefaultRenderer {
    fn render(&self, e: &BatchEmail) -> RenderedEmail {
        let what = count_noun(&e.targets);
        let subject = format!("You're invited to {what} on {}", self.product_name);
        let greeting = match &e.first_name {
            Some(n) => format!("Hello {n},"),
            None => "Hello,".to_owned(),
        };
        let expires = e.expires_at.to_human();

        let mut text = format!(
            "{greeting}\n\nYou have been invited to {what} on {}:\n\n",
            self.product_name
        );
        for t in &e.targets {
            let _ = writeln!(text, "  - {} ({}, {})", t.name, t.kind.noun(), t.role);
        }
        let _ = write!(
            text,
            "\nAccept all of them with this link:\n{}\n\nThe invitation expires on {expires}.\n\
             If you did not expect it, ignore this email.\n",
            e.accept_url
        );

        let mut html = String::from("<!DOCTYPE html>\n<html><body>\n");
        let _ = write!(
            html,
            "<p>{}</p>\n<p>You have been invited to {} on {}:</p>\n<ul>\n",
            escape_html(&greeting),
            escape_html(&what),
            escape_html(&self.product_name)
        );
        for t in &e.targets {
            let _ = writeln!(
                html,
                "<li><strong>{}</strong> ({}, {})</li>",
                escape_html(&t.name),
                t.kind.noun(),
                t.role
            );
        }
        let _ = write!(
            html,
            "</ul>\n<p><a href=\"{url}\">Accept the invitation</a></p>\n\
             <p>The invitation expires on {}.</p>\n<p>If you did not expect it, ignore this email.</p>\n\
             </body></html>\n",
            escape_html(&expires),
            url = escape_html(&e.accept_url)
        );
        RenderedEmail {
            subject,
            text,
            html,
        }
    }
}

/// Escapes `& < > " '` for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Makes a header value safe: control characters (CR, LF, tab, ...) become spaces.
pub fn sanitize_header(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl fmt::Display for EmailMessage {
    /// A readable dump (for logs and the quickstart's printing mailer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Message-Id: <{}@invites>", self.id)?;
        writeln!(f, "To: {}", self.to)?;
        writeln!(f, "Subject: {}", self.subject)?;
        writeln!(f, "\n--- text/plain ---\n{}", self.text)?;
        write!(f, "--- text/html ---\n{}", self.html)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> BatchEmail {
        BatchEmail {
            to: Email::parse("ann@example.com").unwrap(),
            first_name: PersonName::parse("<Ann>").unwrap(),
            targets: vec![
                EmailTarget {
                    kind: TargetKind::Website,
                    name: name.to_owned(),
                    role: Role::Admin,
                },
                EmailTarget {
                    kind: TargetKind::Website,
                    name: "Blog".to_owned(),
                    role: Role::Admin,
                },
            ],
            expires_at: Timestamp::from_millis(1_796_000_000_000),
            accept_url: "https://app.example.com/accept?token=abc&x=\"1\"".to_owned(),
        }
    }

    #[test]
    fn html_escapes_every_value() {
        let r = DefaultRenderer::default().render(&sample("<script>alert('x')</script> & co"));
        assert!(!r.html.contains("<script>"));
        assert!(
            r.html
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co")
        );
        assert!(r.html.contains("Hello &lt;Ann&gt;,"));
        assert!(
            r.html
                .contains("href=\"https://app.example.com/accept?token=abc&amp;x=&quot;1&quot;\"")
        );
        // The plain part keeps the raw text.
        assert!(
            r.text
                .contains("<script>alert('x')</script> & co (website, admin)")
        );
    }

    #[test]
    fn subject_counts_targets() {
        let r = DefaultRenderer {
            product_name: "Acme".into(),
        }
        .render(&sample("Shop"));
        assert_eq!(r.subject, "You're invited to 2 websites on Acme");
        let mut one = sample("Shop");
        one.targets.truncate(1);
        one.targets[0].kind = TargetKind::Group;
        assert_eq!(
            DefaultRenderer {
                product_name: "Acme".into()
            }
            .render(&one)
            .subject,
            "You're invited to 1 group on Acme"
        );
    }

    #[test]
    fn header_sanitizer_removes_line_breaks() {
        assert_eq!(sanitize_header("a\r\nBcc: x"), "a  Bcc: x");
    }
}
