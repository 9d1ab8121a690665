//! `SmtpMailer`'s connections on the wire, against the stub SMTP server of `tests/stub`: a
//! send that did not finish (timed out, or its future dropped) never leaves its connection
//! for the next message; the pool keeps, reuses, replaces and closes connections as
//! documented; a message the server cannot take for what it is (a non-ASCII address without
//! `SMTPUTF8`) fails alone. These need nothing installed and always run.

mod stub;

use invites_core::Mailer;
use invites_smtp::{Security, SmtpConfig, SmtpConfigBuilder, SmtpMailer};
use invites_testkit::mailer_suite::sample_message;
use std::time::Duration;
use stub::{Script, Stub};

fn config(stub: &Stub) -> SmtpConfigBuilder {
    SmtpConfig::builder("127.0.0.1")
        .port(stub.port())
        .security(Security::None)
        .from("invites@acme.test")
        .hello_name("client.acme.test")
}

fn mailer(b: SmtpConfigBuilder) -> SmtpMailer {
    SmtpMailer::new(b.build().expect("config")).expect("mailer")
}

/// One pooled connection and a send timeout of 300 ms.
fn tight(stub: &Stub) -> SmtpMailer {
    mailer(
        config(stub)
            .pool_max_size(1)
            .send_timeout(Duration::from_millis(300)),
    )
}

const LATE: Duration = Duration::from_secs(1);

/// Sends message A (to a@example.com), which the server answers too late: the send fails
/// as a transient timeout.
async fn send_a_and_time_out(m: &SmtpMailer) {
    let e = m
        .send(&sample_message(1, "a@example.com"))
        .await
        .unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("timed out"),
        "{e}"
    );
}

#[tokio::test]
async fn a_send_timed_out_before_its_mail_reply_leaves_no_connection_for_the_next_message() {
    let stub = Stub::start(Script::default().delay_mail(LATE)).await;
    let m = tight(&stub);
    send_a_and_time_out(&m).await;

    // The server answers A's MAIL after the client gave up on it.
    let a_conn = stub.log().first_command("MAIL").expect("A's MAIL arrived");
    stub.wait_for(|l| l.replied(a_conn, "2.1.0")).await;

    m.send(&sample_message(2, "b@example.com"))
        .await
        .expect("B, a healthy recipient, is sent");
    let log = stub.log();
    let replies = log.replies();
    assert!(
        replies.iter().all(|(_, r)| !r.starts_with("503")),
        "no command out of order: {replies:?}"
    );
    let rcpts = log.commands("RCPT");
    assert_eq!(rcpts.len(), 1, "{rcpts:?}");
    assert_ne!(rcpts[0].0, a_conn, "B's RCPT is not on A's connection");
    let stored = log.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].rcpts, ["b@example.com"]);
}

#[tokio::test]
async fn a_send_timed_out_before_its_data_reply_never_lends_that_reply_to_the_next_message() {
    let stub = Stub::start(
        Script::default()
            .data_reply("a@example.com", LATE, "250 2.0.0 queued as A")
            .data_reply("b@example.com", Duration::ZERO, "554 5.6.0 content refused"),
    )
    .await;
    let m = tight(&stub);
    send_a_and_time_out(&m).await;
    let a_conn = stub.log().first_command("MAIL").expect("A's MAIL arrived");
    stub.wait_for(|l| l.replied(a_conn, "queued as A")).await;

    let e = m
        .send(&sample_message(2, "b@example.com"))
        .await
        .expect_err("the server refused B: it must not be reported sent");
    assert!(!e.is_retryable() && !e.is_misconfigured(), "{e}");
    assert!(e.to_string().contains("554 (5.6.0)"), "{e}");
    let log = stub.log();
    assert!(
        log.stored().iter().all(|s| s.rcpts != ["b@example.com"]),
        "the server kept nothing for B"
    );
    assert!(
        log.commands("RCPT")
            .iter()
            .all(|(conn, line)| *conn != a_conn || line.contains("a@example.com")),
        "B's conversation is not on A's connection"
    );
}

#[tokio::test]
async fn a_send_dropped_mid_conversation_leaves_the_pool_to_serve_the_next_ones_right() {
    // The send timeout is long: here the caller drops the future (as when the HTTP client of
    // an inline send goes away) while the server still owes the reply to A's MAIL.
    let stub = Stub::start(Script::default().delay_mail(Duration::from_millis(300))).await;
    let m = mailer(config(&stub).pool_max_size(1));
    {
        let a = sample_message(1, "a@example.com");
        let sending = m.send(&a);
        tokio::select! {
            r = sending => panic!("the send finished before it could be dropped: {r:?}"),
            () = stub.wait_for(|l| l.first_command("MAIL").is_some()) => {}
        }
    }
    let a_conn = stub.log().first_command("MAIL").expect("A's MAIL arrived");
    stub.wait_for(|l| l.replied(a_conn, "2.1.0")).await;

    for (n, to) in [(2, "b@example.com"), (3, "c@example.com")] {
        m.send(&sample_message(n, to))
            .await
            .expect("the next messages are sent");
    }
    stub.wait_for(|l| l.closed(a_conn)).await;
    let log = stub.log();
    assert!(log.replies().iter().all(|(_, r)| !r.starts_with("503")));
    let stored = log.stored();
    let rcpts: Vec<_> = stored.iter().map(|s| s.rcpts.join(",")).collect();
    assert_eq!(rcpts, ["b@example.com", "c@example.com"]);
    assert!(
        stored.iter().all(|s| s.conn != a_conn),
        "not on A's connection"
    );
    assert_eq!(
        stored[0].conn, stored[1].conn,
        "B's connection is reused for C"
    );
    let message_ids: Vec<_> = stored
        .iter()
        .map(|s| {
            s.data
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .expect("a Message-ID")
                .to_owned()
        })
        .collect();
    assert_ne!(message_ids[0], message_ids[1], "each its own message");
}

#[tokio::test]
async fn a_non_ascii_address_without_smtputf8_fails_that_message_alone() {
    let stub = Stub::start(Script::default()).await; // no SMTPUTF8 advertised
    let m = mailer(config(&stub));
    let e = m
        .send(&sample_message(1, "jörg@example.com"))
        .await
        .unwrap_err();
    assert!(
        !e.is_retryable() && !e.is_misconfigured(),
        "permanent for this message, not the account: {e}"
    );
    assert!(e.to_string().contains("SMTPUTF8"), "{e}");
    assert!(
        !e.to_string().contains("jörg"),
        "no address in the error: {e}"
    );
    assert!(stub.log().commands("MAIL").is_empty(), "nothing was sent");

    // The account is fine: the next message goes out, on the same clean connection.
    m.send(&sample_message(2, "ann@example.com"))
        .await
        .expect("sent");
    let log = stub.log();
    assert_eq!(log.stored().len(), 1);
    assert_eq!(log.opened(), 1);
}

#[tokio::test]
async fn a_non_ascii_address_goes_out_to_a_server_with_smtputf8() {
    let stub = Stub::start(Script::default().smtputf8()).await;
    let m = mailer(config(&stub));
    m.send(&sample_message(1, "jörg@example.com"))
        .await
        .expect("sent");
    let log = stub.log();
    let mail = log.commands("MAIL");
    assert!(mail[0].1.contains("SMTPUTF8"), "{mail:?}");
    assert_eq!(log.stored()[0].rcpts, ["jörg@example.com"]);
}

#[tokio::test]
async fn messages_in_turn_share_one_connection() {
    let stub = Stub::start(Script::default()).await;
    let m = mailer(config(&stub).pool_max_size(2));
    for n in 0..5 {
        m.send(&sample_message(n, "ann@example.com"))
            .await
            .expect("sent");
    }
    let log = stub.log();
    assert_eq!(log.stored().len(), 5);
    assert_eq!(log.opened(), 1, "one connection, reused");
    let ehlo = log.commands("EHLO");
    assert_eq!(
        ehlo,
        [(1, "EHLO client.acme.test".to_owned())],
        "the hello name"
    );
    assert_eq!(log.commands("NOOP").len(), 4, "checked before each reuse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_keeps_at_most_pool_max_size_connections() {
    let stub = Stub::start(Script::default()).await;
    let m = mailer(config(&stub).pool_max_size(1));
    let (a, b) = (
        sample_message(1, "a@example.com"),
        sample_message(2, "b@example.com"),
    );
    let (ra, rb) = tokio::join!(m.send(&a), m.send(&b));
    ra.expect("A sent");
    rb.expect("B sent");
    assert_eq!(stub.log().opened(), 2, "two sends at once, two connections");
    // Only one goes back to the pool; the other is closed.
    stub.wait_for(|l| l.closed(1) || l.closed(2)).await;
    let log = stub.log();
    let kept = if log.closed(1) { 2 } else { 1 };
    assert!(
        log.commands("QUIT").iter().any(|(c, _)| *c != kept),
        "the extra one said QUIT"
    );
    m.send(&sample_message(3, "c@example.com"))
        .await
        .expect("C sent");
    let log = stub.log();
    assert_eq!(log.opened(), 2, "C reused the kept connection");
    assert_eq!(log.stored().last().expect("C").conn, kept);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let stub = Stub::start(Script::default()).await;
    let m = mailer(config(&stub).pool_idle_timeout(Duration::from_millis(200)));
    m.send(&sample_message(1, "ann@example.com"))
        .await
        .expect("sent");
    stub.wait_for(|l| l.closed(1)).await;
    assert_eq!(stub.log().commands("QUIT").len(), 1, "closed with QUIT");
    m.send(&sample_message(2, "ann@example.com"))
        .await
        .expect("sent on a new connection");
    assert_eq!(stub.log().opened(), 2);
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced() {
    let stub = Stub::start(Script::default().close_after_data()).await;
    let m = mailer(config(&stub));
    m.send(&sample_message(1, "ann@example.com"))
        .await
        .expect("sent");
    stub.wait_for(|l| l.closed(1)).await;
    m.send(&sample_message(2, "ann@example.com"))
        .await
        .expect("sent on a new connection");
    let log = stub.log();
    assert_eq!(log.stored().len(), 2);
    assert_eq!(log.opened(), 2);
}

/// Issue 17 item 2: a 5xx reply to `MAIL FROM` (a blocklisted sender, a daily quota) refuses
/// the sender, not the message: it is `misconfigured`, so the outbox pauses delivery instead
/// of failing every queued message in one pass. A 5xx to the message itself stays this
/// message's (`permanent`).
#[tokio::test]
async fn a_refused_sender_is_the_senders_fault_and_a_refused_message_is_the_messages() {
    let stub = Stub::start(Script::default().refuse_mail("550 5.7.1 sender blocklisted")).await;
    let m = tight(&stub);
    let e = m
        .send(&sample_message(1, "a@example.com"))
        .await
        .unwrap_err();
    assert!(e.is_misconfigured(), "{e}");
    assert!(e.to_string().contains("550"), "{e}");
    assert!(stub.log().commands("RCPT").is_empty(), "no recipient named");

    let stub = Stub::start(Script::default().data_reply(
        "b@example.com",
        Duration::ZERO,
        "554 5.6.0 content refused",
    ))
    .await;
    let m = tight(&stub);
    let e = m
        .send(&sample_message(2, "b@example.com"))
        .await
        .unwrap_err();
    assert!(!e.is_misconfigured() && !e.is_retryable(), "{e}");
}
