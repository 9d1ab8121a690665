//! The mailer suite: the behaviour every real [`Mailer`] transport (SMTP, an HTTP mail API,
//! ...) must show at the receiving side, written once as plain `pub async fn`s.
//!
//! A transport's test gives the suite its mailer, pointed at a real or stub receiving server,
//! and an [`Inbox`]: a way to read back what that server got, as [`Received`] values (an SMTP
//! test parses the stored MIME; an HTTP API test decodes the stored request). Each check
//! sends messages built by the core's [`DefaultRenderer`] from hostile-looking host data
//! ([`sample_message`]) and checks:
//!
//! - one message arrives per send, for the recipient and nobody else;
//! - the message is `multipart/alternative` with the text and HTML parts intact;
//! - the `Message-ID` is derived from the stable [`MessageId`]: the same on a retry of the
//!   same message, different for another message;
//! - the HTML part arrives escaped and the accept link arrives whole in both parts;
//! - no header carries anything from the message but the recipient address and the subject.
//!
//! ```ignore
//! invites_testkit::mailer_suite::run_all(&mailer, &inbox).await;
//! ```
//!
//! For what happens after a send, [`MailerSetup`] wires the mailer under test into a service
//! over an in-memory store, and [`closed_port`] stands for a server that is down.
//!
//! Nothing here sleeps or polls: a transport reports success only once the receiving side
//! has the message, so the inbox must hold it when `send` returns.

use crate::{Harness, ManualClock, World};
use async_trait::async_trait;
use invites_core::{
    BatchEmail, BatchId, DefaultRenderer, Email, EmailMessage, EmailRenderer, EmailTarget, Inspect,
    InviteService, Mailer, MessageId, OutboxMessage, PersonName, Role, TargetKind, Timestamp,
};
use invites_memory::MemoryStore;
use std::sync::Arc;
use uuid::Uuid;

/// One message as the receiving side got it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Who the transport handed the message to: the SMTP envelope's `RCPT TO`, an API's
    /// recipient field.
    pub recipients: Vec<String>,
    /// Every header the message carried, name lower-cased, value decoded (RFC 2047), in order.
    pub headers: Vec<(String, String)>,
    /// The MIME structure, e.g. `multipart/alternative(text/plain,text/html)`.
    pub structure: String,
    /// The decoded `text/plain` part.
    pub text: String,
    /// The decoded `text/html` part.
    pub html: String,
}

impl Received {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the receiving side of a transport holds.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Every message received so far, oldest first.
    async fn received(&self) -> Vec<Received>;
}

/// The structure a transport must produce.
pub const ALTERNATIVE: &str = "multipart/alternative(text/plain,text/html)";

/// A target name a directory could hold: markup, quotes and an ampersand.
pub const HOSTILE_NAME: &str = "<script>alert('x')</script> & \"Co\"";

/// The accept URL base of sample messages; the `&` must arrive as `&amp;` in HTML.
pub const SAMPLE_LINK_BASE: &str = "https://app.acme.test/invites/accept?lang=en&token=";

/// A message as the service would render it for batch `n`, to `to`: a hostile target name,
/// non-ASCII text in the subject and the body, a line longer than any transport may send
/// unwrapped, and an accept link with a 64-character token.
///
/// # Panics
/// If `to` is not a valid address.
pub fn sample_message(n: u128, to: &str) -> EmailMessage {
    let to = Email::parse(to).expect("a valid sample address");
    let token = format!("{:064x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let email = BatchEmail {
        to: to.clone(),
        first_name: PersonName::parse("Zoë <b>").expect("a valid name"),
        targets: vec![
            EmailTarget {
                kind: TargetKind::Website,
                name: HOSTILE_NAME.to_owned(),
                role: Role::Admin,
            },
            EmailTarget {
                kind: TargetKind::Website,
                name: "Café Ünïcode ✓".to_owned(),
                role: Role::Viewer,
            },
            EmailTarget {
                kind: TargetKind::Website,
                name: format!("A very long name {}", "x".repeat(180)),
                role: Role::Viewer,
            },
        ],
        expires_at: Timestamp::from_millis(1_796_288_400_000),
        accept_url: format!("{SAMPLE_LINK_BASE}{token}"),
    };
    let rendered = DefaultRenderer {
        product_name: "Acme Shop ✓".to_owned(),
    }
    .render(&email);
    EmailMessage {
        id: MessageId(Uuid::from_u128(0x4D00_0000 + n)),
        batch_id: BatchId(Uuid::from_u128(0xBA00_0000 + n)),
        to,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
    }
}

/// The accept link inside a sample message.
///
/// # Panics
/// If `message` has no link.
pub fn link_of(message: &EmailMessage) -> String {
    let start = message.text.find(SAMPLE_LINK_BASE).expect("a link");
    message.text[start..start + SAMPLE_LINK_BASE.len() + 64].to_owned()
}

/// Line endings as `\n`, no trailing line break: what survives any MIME transport.
pub fn normalize(body: &str) -> String {
    body.replace("\r\n", "\n").trim_end_matches('\n').to_owned()
}

async fn send_one(mailer: &dyn Mailer, inbox: &dyn Inbox, message: &EmailMessage) -> Received {
    let before = inbox.received().await.len();
    mailer
        .send(message)
        .await
        .expect("the transport accepts the message");
    let after = inbox.received().await;
    assert_eq!(
        after.len(),
        before + 1,
        "exactly one message arrives per send, by the time send returns"
    );
    after.last().cloned().expect("one message")
}

/// Each send delivers exactly one message, to the message's recipient and nobody else.
pub async fn one_message_per_send(mailer: &dyn Mailer, inbox: &dyn Inbox) {
    let first = sample_message(1, "ann@example.com");
    let second = sample_message(2, "bob@example.org");
    let got = send_one(mailer, inbox, &first).await;
    assert_eq!(got.recipients, vec!["ann@example.com".to_owned()]);
    let got = send_one(mailer, inbox, &second).await;
    assert_eq!(got.recipients, vec!["bob@example.org".to_owned()]);
}

/// The message is `multipart/alternative`, text first, and both parts arrive as rendered
/// (line endings aside): non-ASCII text and long lines included.
pub async fn both_parts_arrive_intact(mailer: &dyn Mailer, inbox: &dyn Inbox) {
    let message = sample_message(3, "ann@example.com");
    let got = send_one(mailer, inbox, &message).await;
    assert_eq!(got.structure, ALTERNATIVE);
    assert_eq!(normalize(&got.text), normalize(&message.text));
    assert_eq!(normalize(&got.html), normalize(&message.html));
    assert!(got.text.contains("Café Ünïcode ✓"));
    assert_eq!(got.header("subject"), Some(message.subject.as_str()));
}

/// The `Message-ID` is derived from the stable message id: a second attempt at the same
/// message carries the same one (so a receiver can drop the duplicate), another message
/// another one.
pub async fn message_id_is_stable_per_message_id(mailer: &dyn Mailer, inbox: &dyn Inbox) {
    let message = sample_message(4, "ann@example.com");
    let other = sample_message(5, "ann@example.com");
    let first = send_one(mailer, inbox, &message).await;
    let retry = send_one(mailer, inbox, &message).await;
    let another = send_one(mailer, inbox, &other).await;
    let id = |r: &Received| {
        let ids = r.headers_named("message-id");
        assert_eq!(ids.len(), 1, "one Message-ID header");
        ids[0].to_owned()
    };
    let (a, b, c) = (id(&first), id(&retry), id(&another));
    assert_eq!(a, b, "the same message keeps its Message-ID");
    assert_ne!(a, c, "another message gets another Message-ID");
    assert!(
        a.contains(&message.id.to_string()),
        "{a} names the message id"
    );
    assert!(
        a.starts_with('<') && a.ends_with('>') && a.contains('@'),
        "{a} is an RFC 5322 msg-id"
    );
}

/// Host data arrives escaped in the HTML part and as typed in the text part.
pub async fn html_arrives_escaped(mailer: &dyn Mailer, inbox: &dyn Inbox) {
    let message = sample_message(6, "ann@example.com");
    let got = send_one(mailer, inbox, &message).await;
    assert!(
        !got.html.contains("<script>"),
        "no raw markup from host data"
    );
    assert!(
        got.html
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Co&quot;")
    );
    assert!(got.html.contains("Hello Zoë &lt;b&gt;,"));
    assert!(got.text.contains(HOSTILE_NAME));
}

/// The one accept link arrives whole: verbatim in the text part, attribute-escaped in the
/// HTML part's `href`.
pub async fn accept_link_arrives_whole(mailer: &dyn Mailer, inbox: &dyn Inbox) {
    let message = sample_message(7, "ann@example.com");
    let link = link_of(&message);
    let got = send_one(mailer, inbox, &message).await;
    assert_eq!(got.text.matches(&link).count(), 1, "one link in the text");
    let href = format!("href=\"{}\"", link.replace('&', "&amp;"));
    assert_eq!(got.html.matches(&href).count(), 1, "one link in the HTML");
}

/// Headers carry nothing from the message but the bare recipient address and the subject:
/// no display name from the request, no copies, no names, no link.
pub async fn headers_carry_only_the_recipient(mailer: &dyn Mailer, inbox: &dyn Inbox) {
    let message = sample_message(8, "ann@example.com");
    let link = link_of(&message);
    let got = send_one(mailer, inbox, &message).await;
    let to = got.headers_named("to");
    assert_eq!(to.len(), 1);
    assert_eq!(
        to[0].trim_matches(|c| c == '<' || c == '>'),
        "ann@example.com"
    );
    for forbidden in ["cc", "bcc", "resent-to", "resent-cc", "resent-bcc"] {
        assert!(got.header(forbidden).is_none(), "no {forbidden} header");
    }
    for (name, value) in &got.headers {
        for secret in [
            link.as_str(),
            &link[SAMPLE_LINK_BASE.len()..],
            "Zoë",
            "script",
        ] {
            assert!(
                !value.contains(secret),
                "header {name} carries message data"
            );
        }
    }
}

/// Every check above, in turn.
pub async fn run_all(mailer: &dyn Mailer, inbox: &dyn Inbox) {
    one_message_per_send(mailer, inbox).await;
    both_parts_arrive_intact(mailer, inbox).await;
    message_id_is_stable_per_message_id(mailer, inbox).await;
    html_arrives_escaped(mailer, inbox).await;
    accept_link_arrives_whole(mailer, inbox).await;
    headers_carry_only_the_recipient(mailer, inbox).await;
}

/// A service sending through the mailer under test, for a transport's tests that follow a
/// message through the outbox: a fresh in-memory store seeded with a [`World`], a
/// [`ManualClock`] and the configuration of [`Harness::config`] (accept links under
/// [`Harness::ACCEPT_URL_BASE`], seeded randomness).
#[derive(Clone, Debug)]
pub struct MailerSetup {
    /// The service, wired to the mailer under test.
    pub service: InviteService,
    /// Its store, for reading the outbox back and adding host data.
    pub store: MemoryStore,
    /// Its clock: advance it to make a retry due.
    pub clock: ManualClock,
    /// What the store was seeded with.
    pub world: World,
}

impl MailerSetup {
    /// The service over `mailer`, its randomness seeded with `seed`.
    pub async fn new(mailer: impl Mailer, seed: u64) -> Self {
        let store = MemoryStore::new();
        let world = World::seed(&store).await;
        let clock = ManualClock::standard();
        let service = InviteService::new(
            Arc::new(store.clone()),
            Arc::new(mailer),
            Harness::config(&clock, seed),
        );
        MailerSetup {
            service,
            store,
            clock,
            world,
        }
    }

    /// The outbox's only message, as stored now.
    ///
    /// # Panics
    /// If the store cannot be read, or the outbox does not hold exactly one message.
    pub async fn outbox(&self) -> OutboxMessage {
        let s = self.store.snapshot().await.expect("snapshot");
        assert_eq!(s.outbox.len(), 1);
        s.outbox[0].clone()
    }
}

/// A port on the loopback address where nothing listens (bound, then let go), for a transport
/// whose server is down.
///
/// # Panics
/// If no port can be bound.
#[must_use]
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The suite against an in-process transport that delivers faithfully, and against ones
    /// that break each rule: the suite must pass the first and catch every other.
    #[derive(Debug)]
    struct Loopback {
        fault: Option<&'static str>,
        got: Mutex<Vec<Received>>,
    }

    #[async_trait]
    impl Mailer for Loopback {
        async fn send(&self, m: &EmailMessage) -> Result<(), invites_core::MailError> {
            let mut headers = vec![
                ("to".to_owned(), m.to.to_string()),
                ("subject".to_owned(), m.subject.clone()),
                ("message-id".to_owned(), format!("<{}@acme.test>", m.id)),
            ];
            let mut r = Received {
                recipients: vec![m.to.to_string()],
                headers: Vec::new(),
                structure: ALTERNATIVE.to_owned(),
                text: m.text.replace('\n', "\r\n"),
                html: m.html.clone(),
            };
            let mut times = 1;
            match self.fault {
                Some("twice") => times = 2,
                Some("bcc") => headers.push(("bcc".into(), "x@y.test".into())),
                Some("random-id") => headers[2].1 = format!("<{}@acme.test>", self.got_len()),
                Some("unescaped") => r.html = r.html.replace("&lt;", "<"),
                Some("only-html") => r.structure = "text/html".into(),
                Some("display-name") => headers[0].1 = format!("Zoë <{}>", m.to),
                _ => {}
            }
            r.headers = headers;
            for _ in 0..times {
                self.got.lock().unwrap().push(r.clone());
            }
            Ok(())
        }
    }

    impl Loopback {
        fn got_len(&self) -> usize {
            self.got.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl Inbox for Loopback {
        async fn received(&self) -> Vec<Received> {
            self.got.lock().unwrap().clone()
        }
    }

    fn run(fault: Option<&'static str>) -> bool {
        let t = Loopback {
            fault,
            got: Mutex::new(Vec::new()),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(run_all(&t, &t));
        }))
        .is_ok()
    }

    #[test]
    fn a_faithful_transport_passes() {
        assert!(run(None));
    }

    #[test]
    fn every_broken_transport_fails() {
        for fault in [
            "twice",
            "bcc",
            "random-id",
            "unescaped",
            "only-html",
            "display-name",
        ] {
            assert!(!run(Some(fault)), "the suite misses {fault}");
        }
    }
}
