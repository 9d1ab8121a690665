//! A stub SMTP server on a tokio `TcpListener` for the tests on the wire: it speaks real SMTP
//! (greeting, `EHLO`, `MAIL`, `RCPT`, `DATA` with dot-stuffing, `RSET`, `NOOP`, `QUIT`),
//! keeps the state of each connection's transaction as a real server does (a second `MAIL`
//! inside a transaction is refused with `503 5.5.1`), answers each command in order, and
//! records every command, reply and stored message per connection. A [`Script`] makes it
//! answer late or refuse, so a test can tell which reply reached which message.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the stub answers; the default accepts everything at once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Script {
    /// The reply to the server's n-th `MAIL` (counted over all connections) is held this long.
    mail_delays: VecDeque<Duration>,
    /// By the transaction's first recipient: how long the reply to the final `.` is held and
    /// what it is.
    data_replies: HashMap<String, (Duration, String)>,
    /// Whether `EHLO` advertises `SMTPUTF8`.
    smtputf8: bool,
    /// Close the connection (without a word) right after answering each `.`.
    close_after_data: bool,
    /// Refuse every `MAIL FROM` with this reply (a blocklisted sender, a quota).
    refuse_mail: Option<String>,
}

impl Script {
    /// Holds the reply to the next `MAIL` (the first not yet given a delay) for `delay`.
    #[must_use]
    pub(crate) fn delay_mail(mut self, delay: Duration) -> Self {
        self.mail_delays.push_back(delay);
        self
    }

    /// Answers the final `.` of a message to `rcpt` with `reply` after `delay`.
    #[must_use]
    pub(crate) fn data_reply(mut self, rcpt: &str, delay: Duration, reply: &str) -> Self {
        self.data_replies
            .insert(rcpt.to_owned(), (delay, reply.to_owned()));
        self
    }

    /// Advertises `SMTPUTF8` (not by default).
    #[must_use]
    pub(crate) fn smtputf8(mut self) -> Self {
        self.smtputf8 = true;
        self
    }

    /// Answers every `MAIL FROM` with `reply` (a permanent refusal of the sender).
    #[must_use]
    pub(crate) fn refuse_mail(mut self, reply: &str) -> Self {
        self.refuse_mail = Some(reply.to_owned());
        self
    }

    /// Closes each connection right after answering a message's `.`.
    #[must_use]
    pub(crate) fn close_after_data(mut self) -> Self {
        self.close_after_data = true;
        self
    }
}

/// A message the stub accepted (a 2xx reply to its `.`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The connection it came over.
    pub(crate) conn: usize,
    /// The `RCPT TO` addresses.
    pub(crate) rcpts: Vec<String>,
    /// The data, dot-stuffing undone.
    pub(crate) data: String,
}

/// What happened on the wire, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Connection `n` was accepted.
    Opened(usize),
    /// A command line arrived on a connection (without CRLF; the data is not logged here).
    Command(usize, String),
    /// A reply was written (or its write failed because the client had gone) on a connection;
    /// a multi-line reply is one event.
    Reply(usize, String),
    /// A connection ended (the client closed it, or the server did after `QUIT`).
    Closed(usize),
    /// A message was accepted.
    Stored(Stored),
}

/// Everything the stub saw so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    /// In order.
    pub(crate) events: Vec<Event>,
}

impl Log {
    /// The connection of the first command starting with `prefix` (e.g. `"MAIL"`), and its
    /// position.
    pub(crate) fn first_command(&self, prefix: &str) -> Option<usize> {
        self.events.iter().find_map(|e| match e {
            Event::Command(conn, line) if line.starts_with(prefix) => Some(*conn),
            _ => None,
        })
    }

    /// Every command starting with `prefix`, with its connection.
    pub(crate) fn commands(&self, prefix: &str) -> Vec<(usize, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Command(conn, line) if line.starts_with(prefix) => {
                    Some((*conn, line.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Every reply written on any connection, with its connection.
    pub(crate) fn replies(&self) -> Vec<(usize, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Reply(conn, text) => Some((*conn, text.clone())),
                _ => None,
            })
            .collect()
    }

    /// Whether a reply containing `text` was written on `conn`.
    pub(crate) fn replied(&self, conn: usize, text: &str) -> bool {
        self.replies()
            .iter()
            .any(|(c, r)| *c == conn && r.contains(text))
    }

    /// Every accepted message.
    pub(crate) fn stored(&self) -> Vec<Stored> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Stored(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Connections opened so far.
    pub(crate) fn opened(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Opened(_)))
            .count()
    }

    /// Whether connection `conn` has ended.
    pub(crate) fn closed(&self, conn: usize) -> bool {
        self.events.contains(&Event::Closed(conn))
    }
}

/// A running stub; stops listening on drop (open connections end with the test's runtime).
pub(crate) struct Stub {
    port: u16,
    log: Arc<watch::Sender<Log>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Stub {
    /// Listens on a free loopback port.
    pub(crate) async fn start(script: Script) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(watch::Sender::new(Log::default()));
        let script = Arc::new(Mutex::new(script));
        let accept = {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut next = 0;
                while let Ok((sock, _)) = listener.accept().await {
                    next += 1;
                    let conn = Conn {
                        id: next,
                        log: Arc::clone(&log),
                        script: Arc::clone(&script),
                    };
                    tokio::spawn(conn.serve(sock));
                }
            })
        };
        Stub { port, log, accept }
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// What it saw so far.
    pub(crate) fn log(&self) -> Log {
        self.log.borrow().clone()
    }

    /// Waits until `done` holds for the log (at most 10 s, then panics with the log).
    pub(crate) async fn wait_for(&self, done: impl Fn(&Log) -> bool) {
        let mut rx = self.log.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| done(l))).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the stub never got there: {:#?}",
            self.log().events
        );
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One connection's server side.
struct Conn {
    id: usize,
    log: Arc<watch::Sender<Log>>,
    script: Arc<Mutex<Script>>,
}

impl Conn {
    fn record(&self, event: Event) {
        self.log.send_modify(|l| l.events.push(event));
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().expect("script lock")
    }

    async fn reply(&self, w: &mut tokio::net::tcp::OwnedWriteHalf, delay: Duration, text: &str) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut wire = text.replace('\n', "\r\n");
        wire.push_str("\r\n");
        // The client may have gone meanwhile: the reply is logged as written either way.
        let _ = w.write_all(wire.as_bytes()).await;
        self.record(Event::Reply(self.id, text.to_owned()));
    }

    async fn serve(self, sock: TcpStream) {
        self.record(Event::Opened(self.id));
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        self.reply(&mut w, Duration::ZERO, "220 stub.test ESMTP")
            .await;
        let mut from: Option<String> = None;
        let mut rcpts: Vec<String> = Vec::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            self.record(Event::Command(self.id, line.clone()));
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => {
                    let utf8 = if self.script().smtputf8 {
                        "250-SMTPUTF8\n"
                    } else {
                        ""
                    };
                    let text = format!("250-stub.test\n250-8BITMIME\n{utf8}250 SIZE 10000000");
                    self.reply(&mut w, Duration::ZERO, &text).await;
                }
                "HELO" => self.reply(&mut w, Duration::ZERO, "250 stub.test").await,
                "NOOP" => self.reply(&mut w, Duration::ZERO, "250 2.0.0 OK").await,
                "RSET" => {
                    from = None;
                    rcpts.clear();
                    self.reply(&mut w, Duration::ZERO, "250 2.0.0 OK").await;
                }
                "QUIT" => {
                    self.reply(&mut w, Duration::ZERO, "221 2.0.0 bye").await;
                    break;
                }
                "MAIL" if from.is_some() => {
                    self.reply(&mut w, Duration::ZERO, "503 5.5.1 nested MAIL command")
                        .await;
                }
                "MAIL" if self.script().refuse_mail.is_some() => {
                    let reply = self.script().refuse_mail.clone().unwrap_or_default();
                    self.reply(&mut w, Duration::ZERO, &reply).await;
                }
                "MAIL" => {
                    from = Some(angle(&line));
                    let delay = self.script().mail_delays.pop_front().unwrap_or_default();
                    self.reply(&mut w, delay, "250 2.1.0 sender OK").await;
                }
                "RCPT" if from.is_none() => {
                    self.reply(&mut w, Duration::ZERO, "503 5.5.1 MAIL first")
                        .await;
                }
                "RCPT" => {
                    rcpts.push(angle(&line));
                    self.reply(&mut w, Duration::ZERO, "250 2.1.5 recipient OK")
                        .await;
                }
                "DATA" if rcpts.is_empty() => {
                    self.reply(&mut w, Duration::ZERO, "503 5.5.1 RCPT first")
                        .await;
                }
                "DATA" => {
                    self.reply(&mut w, Duration::ZERO, "354 end with <CRLF>.<CRLF>")
                        .await;
                    let Some(data) = read_data(&mut r).await else {
                        break;
                    };
                    let (delay, reply, close) = {
                        let s = self.script();
                        let (delay, reply) = s
                            .data_replies
                            .get(&rcpts[0])
                            .cloned()
                            .unwrap_or((Duration::ZERO, "250 2.0.0 queued".to_owned()));
                        (delay, reply, s.close_after_data)
                    };
                    if reply.starts_with('2') {
                        self.record(Event::Stored(Stored {
                            conn: self.id,
                            rcpts: std::mem::take(&mut rcpts),
                            data,
                        }));
                    }
                    from = None;
                    rcpts.clear();
                    self.reply(&mut w, delay, &reply).await;
                    if close {
                        break;
                    }
                }
                _ => {
                    self.reply(&mut w, Duration::ZERO, "500 5.5.2 unknown command")
                        .await;
                }
            }
        }
        drop(w);
        self.record(Event::Closed(self.id));
    }
}

/// The address between `<` and `>` in a `MAIL FROM:`/`RCPT TO:` line.
fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}

/// The data up to the lone `.`, dot-stuffing undone; `None` if the client went away first.
async fn read_data(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut data = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == ".\r\n" {
            return Some(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}
