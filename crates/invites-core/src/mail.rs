//! The consolidated email: [`EmailMessage`], the [`Mailer`] port and the replaceable
//! [`EmailRenderer`].

use crate::error::MailError;
use crate::ids::{BatchId, MessageId, TargetKind};
use crate::invitee::{Email, PersonName, Role, is_hidden_or_control};
use crate::time::Timestamp;
use async_trait::async_trait;
use std::fmt::{self, Debug, Write as _};
use std::sync::Arc;

/// One rendered message, ready for a mailer.
///
/// Its bodies hold the live accept link, so neither `Debug` nor `Display` prints them:
/// `Debug` shows their sizes, `Display` the headers and sizes.
#[derive(Clone, PartialEq, Eq)]
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

    /// The longest one [`send`](Mailer::send) can take before the mailer gives up on it (its
    /// own timeout), or `None` if it does not bound its sends. The outbox starts a send only
    /// while the claim's lease has at least this long left, so a send never outlives its
    /// claim and no second deliverer sends the same message meanwhile; with `None` it assumes
    /// half the lease ([`DeliveryPolicy::lease`](crate::DeliveryPolicy::lease)). A mailer
    /// that talks to a network should bound its sends and say so here.
    fn send_timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

#[async_trait]
impl<T: Mailer + ?Sized> Mailer for Arc<T> {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        (**self).send(message).await
    }
    fn send_timeout(&self) -> Option<std::time::Duration> {
        (**self).send_timeout()
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

/// Everything a renderer may use. `Debug` redacts the accept link.
///
/// Target names come from the host's directory, not from the request, and are untrusted all
/// the same: a renderer must keep them from forging lines or markup (see [`plain_line`] and
/// [`escape_html`]).
#[derive(Clone, PartialEq, Eq)]
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

/// The parts a renderer produces. `Debug` shows the subject and the sizes of the bodies
/// (which hold the accept link).
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// Subject; the service removes control characters from it whatever the renderer does.
    pub subject: String,
    /// Plain text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// Turns a batch into a message. Hosts replace [`DefaultRenderer`] for their own wording and
/// branding; they must pass what they interpolate through [`plain_line`] (text) and
/// [`escape_html`] (HTML), as the default does.
pub trait EmailRenderer: Send + Sync + Debug + 'static {
    /// Renders the message.
    fn render(&self, email: &BatchEmail) -> RenderedEmail;
}

/// The built-in renderer: a subject naming how many targets, the list with roles, the expiry,
/// one accept link; text and HTML parts.
///
/// Every interpolated value (product name, first name, target names) goes through
/// [`plain_line`] first, so a directory name holding CR, LF, U+2028 or a bidirectional control
/// stays on its own line and cannot fake the link line; in HTML it is then escaped with
/// [`escape_html`], so it cannot add markup.
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
        let product = plain_line(&self.product_name);
        let subject = format!("You're invited to {what} on {product}");
        let greeting = match &e.first_name {
            Some(n) => format!("Hello {},", plain_line(n.as_str())),
            None => "Hello,".to_owned(),
        };
        let expires = e.expires_at.to_human();
        let url = e.accept_url.as_str();

        let mut text = format!("{greeting}\n\nYou have been invited to {what} on {product}:\n\n");
        for t in &e.targets {
            let _ = writeln!(
                text,
                "  - {} ({}, {})",
                plain_line(&t.name),
                t.kind.noun(),
                t.role
            );
        }
        let _ = write!(
            text,
            "\nAccept all of them with this link:\n{url}\n\nThe invitation expires on {expires}.\n\
             If you did not expect it, ignore this email.\n",
        );

        let mut html = String::from("<!DOCTYPE html>\n<html><body>\n");
        let _ = write!(
            html,
            "<p>{}</p>\n<p>You have been invited to {} on {}:</p>\n<ul>\n",
            escape_html(&greeting),
            escape_html(&what),
            escape_html(&product)
        );
        for t in &e.targets {
            let _ = writeln!(
                html,
                "<li><strong>{}</strong> ({}, {})</li>",
                escape_html(&plain_line(&t.name)),
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
            url = escape_html(url)
        );
        RenderedEmail {
            subject,
            text,
            html,
        }
    }
}

/// Makes untrusted text safe to put on one line of a plain-text part: every character of the
/// Unicode categories Cc (CR, LF, tab, NEL, ...), Cf (bidirectional controls, zero-width
/// characters), Zl and Zp (U+2028, U+2029) becomes a space, so the text can neither start a
/// new line nor reorder what follows it.
pub fn plain_line(s: &str) -> String {
    s.chars()
        .map(|c| if is_hidden_or_control(c) { ' ' } else { c })
        .collect()
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

/// Makes a header value safe: control characters (CR, LF, tab, ...), line separators and
/// invisible format characters become spaces (the same rule as [`plain_line`]).
pub fn sanitize_header(s: &str) -> String {
    plain_line(s)
}

/// Whether `domain` may stand after the `@` of a `Message-ID` (`<message-id@domain>`) as the
/// mail transports write it: non-empty, only ASCII letters, digits, `.`, `-` and `_`, so a
/// configured value can never break the header.
///
/// ```
/// use invites_core::is_message_id_domain;
/// assert!(is_message_id_domain("mail.acme.test"));
/// assert!(!is_message_id_domain("a>b") && !is_message_id_domain("a b") && !is_message_id_domain(""));
/// ```
pub fn is_message_id_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A body part, shown by size only: it holds the accept link.
struct Body<'a>(&'a str);

impl Debug for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", crate::REDACTED, self.0.len())
    }
}

impl Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let EmailMessage {
            id,
            batch_id,
            to,
            subject,
            text,
            html,
        } = self;
        f.debug_struct("EmailMessage")
            .field("id", id)
            .field("batch_id", batch_id)
            .field("to", to)
            .field("subject", subject)
            .field("text", &Body(text))
            .field("html", &Body(html))
            .finish()
    }
}

impl Debug for BatchEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BatchEmail {
            to,
            first_name,
            targets,
            expires_at,
            accept_url,
        } = self;
        f.debug_struct("BatchEmail")
            .field("to", to)
            .field("first_name", first_name)
            .field("targets", targets)
            .field("expires_at", expires_at)
            .field("accept_url", &crate::redact::Redacted(accept_url))
            .finish()
    }
}

impl Debug for RenderedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RenderedEmail {
            subject,
            text,
            html,
        } = self;
        f.debug_struct("RenderedEmail")
            .field("subject", subject)
            .field("text", &Body(text))
            .field("html", &Body(html))
            .finish()
    }
}

impl fmt::Display for EmailMessage {
    /// The headers and the sizes of the parts, for logs and printing mailers. The bodies are
    /// not shown: they hold the live accept link. A mailer that must show a body (a
    /// development console) prints `text` itself, knowingly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Message-Id: <{}@invites>", self.id)?;
        writeln!(f, "To: {}", self.to)?;
        writeln!(f, "Subject: {}", sanitize_header(&self.subject))?;
        write!(
            f,
            "(text/plain {} bytes, text/html {} bytes: {})",
            self.text.len(),
            self.html.len(),
            crate::REDACTED
        )
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
        assert_eq!(sanitize_header("a\u{2028}b\u{202e}c\u{85}d"), "a b c d");
    }

    /// Directory names are untrusted: before, a name with a line break (CR/LF, U+2028, NEL)
    /// wrote its own lines into the text part, e.g. a fake link line.
    #[test]
    fn hostile_directory_names_cannot_forge_lines_or_markup() {
        let forged = "Shop\r\n\r\nAccept all of them with this link:\r\nhttps://evil.test/\u{2028}Line\u{2029}Para\u{85}Nel\u{202e}gnp.exe";
        let mut e = sample(forged);
        e.targets.push(EmailTarget {
            kind: TargetKind::Group,
            name: "<img src=x onerror=alert(1)>\n<a href=\"https://evil.test\">".to_owned(),
            role: Role::Viewer,
        });
        let renderer = DefaultRenderer {
            product_name: "Acme\r\nBcc: victim@evil.test\u{2028}<b>".into(),
        };
        let r = renderer.render(&e);
        // Exactly the lines the template writes: nothing a name adds.
        let expected_lines = 2 + 2 + 3 + 1 + 2 + 1 + 2;
        assert_eq!(r.text.lines().count(), expected_lines, "{}", r.text);
        for bad in ['\r', '\u{2028}', '\u{2029}', '\u{85}', '\u{202e}'] {
            assert!(!r.text.contains(bad), "{bad:?} in the text part");
            assert!(!r.html.contains(bad), "{bad:?} in the HTML part");
            assert!(!r.subject.contains(bad), "{bad:?} in the subject");
        }
        assert!(!r.subject.contains('\n'));
        // The one link line is the real one.
        let links: Vec<&str> = r.text.lines().filter(|l| l.starts_with("http")).collect();
        assert_eq!(links, [e.accept_url.as_str()]);
        let listed = r.text.lines().find(|l| l.contains("Shop")).unwrap();
        assert!(
            listed.starts_with("  - Shop    Accept all of them with this link:"),
            "{listed}"
        );
        // No markup from a name or the product.
        assert!(!r.html.contains("<img") && !r.html.contains("<b>"));
        assert!(r.html.contains(
            "&lt;img src=x onerror=alert(1)&gt; &lt;a href=&quot;https://evil.test&quot;&gt;"
        ));
        assert_eq!(r.html.matches("<a ").count(), 1);
        assert_eq!(r.html.matches("<li>").count(), 3);
    }

    #[test]
    fn debug_and_display_never_show_the_link_or_bodies() {
        let e = sample("Shop");
        let r = DefaultRenderer::default().render(&e);
        let m = EmailMessage {
            id: crate::ids::MessageId(uuid::Uuid::from_u128(1)),
            batch_id: crate::ids::BatchId(uuid::Uuid::from_u128(2)),
            to: e.to.clone(),
            subject: r.subject.clone(),
            text: r.text.clone(),
            html: r.html.clone(),
        };
        for shown in [
            format!("{e:?}"),
            format!("{e:#?}"),
            format!("{r:?}"),
            format!("{r:#?}"),
            format!("{m:?}"),
            format!("{m:#?}"),
            format!("{m}"),
        ] {
            assert!(!shown.contains("token=abc"), "{shown}");
            assert!(!shown.contains("Accept all of them"), "a body in {shown}");
            assert!(shown.contains(crate::REDACTED), "{shown}");
        }
        assert!(format!("{m}").contains("Subject: You're invited to 2 websites"));
    }
}
