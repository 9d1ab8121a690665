//! `SmtpMailer` against a real SMTP server: aiosmtpd, run by `tests/smtp_server.py` (one
//! server per test, on a free port, in plain, STARTTLS or implicit-TLS mode). Each test
//! parses what the server stored.
//!
//! Needs a Python with aiosmtpd: set `INVITES_SMTP_PYTHON` to it (`.ci/steps/mail.sh` does).
//! Without it each test prints one `skipped:` line, or panics under
//! `INVITES_REQUIRE_SERVERS=1`. The tests that need no SMTP server (a server that is down,
//! one that never answers) always run.

use async_trait::async_trait;
use invites_core::*;
use invites_smtp::{Security, SmtpConfig, SmtpConfigBuilder, SmtpMailer};
use invites_testkit::Harness;
use invites_testkit::mailer_suite::{self, Inbox, MailerSetup, Received};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON_VAR: &str = "INVITES_SMTP_PYTHON";

/// The Python to run the server with, or `None` (after the one skip line) when not set.
fn python() -> Option<String> {
    match std::env::var(PYTHON_VAR) {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("INVITES_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "INVITES_REQUIRE_SERVERS=1 but {PYTHON_VAR} (a Python with aiosmtpd) is not set"
            );
            println!(
                "skipped: needs a Python with aiosmtpd for a real SMTP server; set {PYTHON_VAR}"
            );
            None
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Plain,
    StartTls,
    Tls,
}

/// A self-signed certificate for 127.0.0.1 and localhost, written where the server reads it.
struct Cert {
    pem: String,
    cert_path: PathBuf,
    key_path: PathBuf,
}

fn make_cert(dir: &Path) -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let pem = ck.cert.pem();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &pem).expect("write cert");
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).expect("write key");
    Cert {
        pem,
        cert_path,
        key_path,
    }
}

/// One running aiosmtpd; stopped (stdin closed, then killed) on drop.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    dir: tempfile::TempDir,
    cert: Option<Cert>,
}

impl Server {
    fn start(mode: Mode, auth: Option<&str>) -> Option<Server> {
        let python = python()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(script).arg("--dir").arg(dir.path());
        let cert = (mode != Mode::Plain).then(|| make_cert(dir.path()));
        if let Some(c) = &cert {
            cmd.arg("--cert")
                .arg(&c.cert_path)
                .arg("--key")
                .arg(&c.key_path);
        }
        cmd.arg("--mode").arg(match mode {
            Mode::Plain => "plain",
            Mode::StartTls => "starttls",
            Mode::Tls => "tls",
        });
        if let Some(a) = auth {
            cmd.arg("--auth").arg(a);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server script");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the server's first line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP server did not start (is aiosmtpd installed for {PYTHON_VAR}?)")
            });
        Some(Server {
            child,
            stdin,
            port,
            dir,
            cert,
        })
    }

    /// Makes the server answer `reply` to `RCPT TO:<address>` for each pair, and accept
    /// every other recipient.
    fn set_rules(&self, rules: &[(&str, &str)]) {
        let map: serde_json::Map<String, serde_json::Value> = rules
            .iter()
            .map(|(a, r)| ((*a).to_owned(), (*r).into()))
            .collect();
        let tmp = self.dir.path().join("rules.json.tmp");
        std::fs::write(&tmp, serde_json::Value::Object(map).to_string()).expect("rules");
        std::fs::rename(tmp, self.dir.path().join("rules.json")).expect("rules");
    }

    /// Stored messages, oldest first: the envelope and the raw bytes.
    fn stored(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut metas: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("rules.json"))
            .collect();
        metas.sort();
        metas
            .into_iter()
            .map(|meta| {
                let envelope = serde_json::from_slice(&std::fs::read(&meta).expect("meta"))
                    .expect("meta json");
                let raw = std::fs::read(meta.with_extension("eml")).expect("eml");
                (envelope, raw)
            })
            .collect()
    }

    /// A mailer configuration for this server.
    fn config(&self, security: Security) -> SmtpConfigBuilder {
        SmtpConfig::builder("127.0.0.1")
            .port(self.port)
            .security(security)
            .from("Acme Invites <invites@acme.test>")
            .reply_to("support@acme.test")
            .message_id_domain("invites.acme.test")
            .hello_name("client.acme.test")
            .send_timeout(Duration::from_secs(10))
    }

    fn trusting(&self, b: SmtpConfigBuilder) -> SmtpConfigBuilder {
        b.add_root_certificate_pem(self.cert.as_ref().expect("a TLS server").pem.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses a stored message the way a receiving system would.
fn parse(envelope: &serde_json::Value, raw: &[u8]) -> Received {
    let msg = MessageParser::default()
        .parse(raw)
        .expect("a parsable message");
    let headers = msg
        .headers()
        .iter()
        .map(|h| {
            (
                h.name().to_ascii_lowercase(),
                header_text(h.name(), h.value()),
            )
        })
        .collect();
    let root = msg.part(0).expect("root part");
    let ctype = |p: &mail_parser::MessagePart| {
        p.content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default()
    };
    let (mut text, mut html, mut children) = (String::new(), String::new(), Vec::new());
    for id in root.sub_parts().unwrap_or(&[]) {
        let part = msg.part(*id).expect("part");
        children.push(ctype(part));
        match &part.body {
            PartType::Text(t) => text = t.to_string(),
            PartType::Html(h) => html = h.to_string(),
            _ => {}
        }
    }
    Received {
        recipients: envelope["rcpt_tos"]
            .as_array()
            .expect("rcpt_tos")
            .iter()
            .map(|v| v.as_str().expect("address").to_owned())
            .collect(),
        headers,
        structure: format!("{}({})", ctype(root), children.join(",")),
        text,
        html,
    }
}

fn header_text(name: &str, v: &HeaderValue) -> String {
    let addr = |a: &mail_parser::Addr| match (&a.name, &a.address) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (None, Some(e)) => e.to_string(),
        (n, None) => n.as_deref().unwrap_or("").to_owned(),
    };
    match v {
        HeaderValue::Text(t) if name.eq_ignore_ascii_case("message-id") => format!("<{t}>"),
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(", "),
        HeaderValue::Address(Address::List(l)) => l.iter().map(addr).collect::<Vec<_>>().join(", "),
        HeaderValue::Address(Address::Group(g)) => g
            .iter()
            .flat_map(|g| g.addresses.iter().map(addr))
            .collect::<Vec<_>>()
            .join(", "),
        HeaderValue::DateTime(d) => d.to_rfc3339(),
        HeaderValue::ContentType(c) => format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")),
        other => format!("{other:?}"),
    }
}

#[async_trait]
impl Inbox for Server {
    async fn received(&self) -> Vec<Received> {
        self.stored().iter().map(|(e, raw)| parse(e, raw)).collect()
    }
}

fn mailer(b: SmtpConfigBuilder) -> SmtpMailer {
    SmtpMailer::new(b.build().expect("config")).expect("mailer")
}

// ---------------------------------------------------------------------------------------------
// The shared mailer suite, over every security mode.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn suite_over_plain_smtp() {
    let Some(server) = Server::start(Mode::Plain, None) else {
        return;
    };
    let m = mailer(server.config(Security::None));
    mailer_suite::run_all(&m, &server).await;
    let (envelope, raw) = server.stored().remove(0);
    assert_eq!(envelope["mail_from"], "invites@acme.test");
    let raw = String::from_utf8(raw).expect("ASCII on the wire");
    assert!(
        raw.contains("From: \"Acme Invites\" <invites@acme.test>")
            || raw.contains("From: Acme Invites <invites@acme.test>"),
        "{raw}"
    );
    assert!(raw.contains("Reply-To: support@acme.test"));
    assert!(raw.contains("MIME-Version: 1.0"));
}

#[tokio::test]
async fn suite_over_starttls_with_a_trusted_self_signed_certificate_and_login() {
    let Some(server) = Server::start(Mode::StartTls, Some("mailer:s3cret pass")) else {
        return;
    };
    let m = mailer(
        server
            .trusting(server.config(Security::StartTls))
            .credentials("mailer", "s3cret pass"),
    );
    assert!(!format!("{m:?}").contains("s3cret"));
    mailer_suite::run_all(&m, &server).await;
    for (envelope, _) in server.stored() {
        assert_eq!(envelope["tls"], true, "sent after STARTTLS");
        assert_eq!(envelope["authenticated"], true, "logged in");
    }
}

#[tokio::test]
async fn suite_over_implicit_tls() {
    let Some(server) = Server::start(Mode::Tls, None) else {
        return;
    };
    let m = mailer(server.trusting(server.config(Security::ImplicitTls)));
    mailer_suite::run_all(&m, &server).await;
    assert!(server.stored().iter().all(|(e, _)| e["tls"] == true));
}

/// Connections are pooled: messages sent in turn share one connection (a connection is back
/// in the pool as soon as its send is done).
#[tokio::test]
async fn the_pool_reuses_connections() {
    let Some(server) = Server::start(Mode::Plain, None) else {
        return;
    };
    let m = mailer(server.config(Security::None).pool_max_size(2));
    for n in 0..6 {
        m.send(&mailer_suite::sample_message(n, "ann@example.com"))
            .await
            .expect("sent");
    }
    let mut ports: Vec<String> = server
        .stored()
        .iter()
        .map(|(e, _)| e["peer_port"].to_string())
        .collect();
    assert_eq!(ports.len(), 6);
    ports.sort();
    ports.dedup();
    assert_eq!(
        ports.len(),
        1,
        "six messages over one connection: {ports:?}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_as_transient() {
    let Some(server) = Server::start(Mode::StartTls, None) else {
        return;
    };
    // The system roots do not know the self-signed certificate.
    let m = mailer(server.config(Security::StartTls));
    let e = m
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");
    assert!(server.stored().is_empty(), "nothing delivered");
}

#[tokio::test]
async fn plain_smtp_to_a_starttls_only_server_does_not_deliver() {
    let Some(server) = Server::start(Mode::StartTls, None) else {
        return;
    };
    let m = mailer(server.config(Security::None));
    let e = m
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    // aiosmtpd answers "530 Must issue a STARTTLS command first".
    assert!(e.is_misconfigured(), "{e}");
    assert!(server.stored().is_empty());
}

#[tokio::test]
async fn a_refused_login_is_reported_as_misconfigured() {
    let Some(server) = Server::start(Mode::StartTls, Some("mailer:right")) else {
        return;
    };
    let m = mailer(
        server
            .trusting(server.config(Security::StartTls))
            .credentials("mailer", "wrong"),
    );
    let e = m
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    assert!(e.is_misconfigured() && !e.is_retryable(), "{e}");
    assert!(e.to_string().contains("535"), "{e}");
    assert!(!e.to_string().contains("wrong"), "{e}");
    assert!(server.stored().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Through the service and its outbox.
// ---------------------------------------------------------------------------------------------

const HOSTILE_SITE: &str = "<b>Shop</b> & \"Co\"";

/// A website of the organization whose name is [`HOSTILE_SITE`].
const HOSTILE: WebsiteId = WebsiteId(uuid::Uuid::from_u128(0x5EE));

async fn setup(mailer: SmtpMailer) -> MailerSetup {
    let s = MailerSetup::new(mailer, 7).await;
    s.store
        .create_website(&Website {
            id: HOSTILE,
            organization: s.world.org,
            name: HOSTILE_SITE.into(),
            url: "https://hostile.acme.test".into(),
        })
        .await
        .expect("website");
    s
}

/// Invites `to` by email to the first two websites and, between them, the hostile one.
async fn invite(s: &MailerSetup, to: &str) -> BulkInviteResponse {
    let w = &s.world.websites;
    let req = BulkInviteRequest::websites(InviteMethod::Email, to, [w[0], HOSTILE, w[1]]);
    s.service
        .bulk_invite(&s.world.global_key(), req)
        .await
        .expect("processed")
}

#[tokio::test]
async fn an_email_request_delivers_exactly_one_parsable_message() {
    let Some(server) = Server::start(Mode::Plain, None) else {
        return;
    };
    let s = setup(mailer(server.config(Security::None))).await;
    let r = invite(&s, "Ann@Example.com").await;
    assert_eq!(r.summary.succeeded, 3);
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Sent));
    let stored = server.stored();
    assert_eq!(stored.len(), 1, "one consolidated message");
    let got = parse(&stored[0].0, &stored[0].1);
    let row = s.outbox().await;
    assert_eq!(row.status, MessageStatus::Sent);

    assert_eq!(got.recipients, vec!["ann@example.com".to_owned()]);
    assert_eq!(got.structure, mailer_suite::ALTERNATIVE);
    assert_eq!(
        got.header("message-id"),
        Some(format!("<{}@invites.acme.test>", row.id).as_str())
    );
    assert_eq!(
        got.header("subject"),
        Some("You're invited to 3 websites on our service")
    );
    for name in ["Site 0", "Site 1"] {
        assert!(got.text.contains(name) && got.html.contains(name));
    }
    assert!(got.text.contains(HOSTILE_SITE), "raw in the text part");
    assert!(
        !got.html.contains("<b>Shop"),
        "no raw markup in the HTML part"
    );
    assert!(
        got.html
            .contains("&lt;b&gt;Shop&lt;/b&gt; &amp; &quot;Co&quot;")
    );

    // The accept link in the received message is the live one.
    let base = format!("{}?token=", Harness::ACCEPT_URL_BASE);
    let start = got.text.find(&base).expect("a link in the text") + base.len();
    let token = &got.text[start..start + 64];
    assert!(got.html.contains(&format!("href=\"{base}{token}\"")));
    let accepted = s.service.accept(token, None).await.expect("the link works");
    assert!(
        accepted
            .results
            .iter()
            .all(|r| r.result.code == OutcomeCode::Added)
    );
}

#[tokio::test]
async fn a_451_reply_keeps_the_message_queued_until_a_later_delivery() {
    let Some(server) = Server::start(Mode::Plain, None) else {
        return;
    };
    server.set_rules(&[("ann@example.com", "451 4.3.0 Mailbox ann@example.com busy")]);
    let s = setup(mailer(server.config(Security::None))).await;
    let r = invite(&s, "ann@example.com").await;
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    let row = s.outbox().await;
    assert_eq!((row.status, row.attempts), (MessageStatus::Queued, 1));
    let error = row.last_error.expect("an error");
    assert!(error.contains("451 (4.3.0)"), "{error}");
    assert!(
        !error.contains("ann@"),
        "no address in the stored error: {error}"
    );
    assert!(server.stored().is_empty());

    // Still refusing at the next attempt: retried again.
    let policy = s.service.config().delivery();
    s.clock.advance(policy.backoff(1));
    assert_eq!(s.service.deliver_due().await.expect("deliver").retried, 1);
    assert!(server.stored().is_empty());

    server.set_rules(&[]);
    s.clock.advance(policy.backoff(2));
    let report = s.service.deliver_due().await.expect("deliver");
    assert_eq!(report.sent, 1);
    let row = s.outbox().await;
    assert_eq!((row.status, row.attempts), (MessageStatus::Sent, 3));
    assert_eq!(server.stored().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_550_reply_marks_the_message_failed() {
    let Some(server) = Server::start(Mode::Plain, None) else {
        return;
    };
    server.set_rules(&[("gone@example.com", "550 5.1.1 No such user here")]);
    let s = setup(mailer(server.config(Security::None))).await;
    let r = invite(&s, "gone@example.com").await;
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Failed));
    let row = s.outbox().await;
    assert_eq!((row.status, row.attempts), (MessageStatus::Failed, 1));
    assert_eq!(row.accept_url, None);
    assert!(row.last_error.expect("error").contains("550 (5.1.1)"));
    s.clock.advance(Duration::from_secs(86_400));
    assert_eq!(
        s.service.deliver_due().await.expect("deliver"),
        DeliveryReport::default()
    );
    assert!(server.stored().is_empty());
}

#[tokio::test]
async fn replies_to_the_data_are_classified_too() {
    let Some(server) = Server::start(Mode::Plain, None) else {
        return;
    };
    let m = mailer(server.config(Security::None));
    let send = |to: &'static str| {
        let m = m.clone();
        async move {
            m.send(&mailer_suite::sample_message(9, to))
                .await
                .unwrap_err()
        }
    };
    server.set_rules(&[
        (
            "data:busy@example.com",
            "452 4.3.1 Insufficient system storage",
        ),
        ("data:spam@example.com", "554 5.6.0 Content rejected"),
    ]);
    let e = send("busy@example.com").await;
    assert!(
        e.is_retryable() && e.to_string().contains("452 (4.3.1)"),
        "{e}"
    );
    let e = send("spam@example.com").await;
    assert!(!e.is_retryable() && !e.is_misconfigured(), "{e}");
    assert!(e.to_string().contains("554 (5.6.0)"), "{e}");
    assert!(server.stored().is_empty());
}

// ---------------------------------------------------------------------------------------------
// No server: these need no Python and always run.
// ---------------------------------------------------------------------------------------------

fn local_config(port: u16) -> SmtpConfigBuilder {
    SmtpConfig::builder("127.0.0.1")
        .port(port)
        .security(Security::None)
        .from("invites@acme.test")
}

#[tokio::test]
async fn a_server_that_is_down_is_transient() {
    let m = mailer(local_config(mailer_suite::closed_port()));
    let e = m
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    assert!(e.is_retryable() && !e.is_misconfigured(), "{e}");
    assert!(
        e.to_string()
            .contains("connection failed (connection refused)"),
        "{e}"
    );

    let s = setup(m).await;
    let r = invite(&s, "ann@example.com").await;
    assert_eq!(r.email.map(|e| e.status), Some(EmailStatus::Queued));
    assert_eq!(s.outbox().await.status, MessageStatus::Queued);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock); // accept, never greet
        }
    });
    let m = mailer(local_config(port).send_timeout(Duration::from_millis(300)));
    let started = Instant::now();
    let e = m
        .send(&mailer_suite::sample_message(1, "ann@example.com"))
        .await
        .unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("timed out"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    hold.abort();
}
