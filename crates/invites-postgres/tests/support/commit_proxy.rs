//! A TCP proxy between a store and PostgreSQL that cuts one connection at its COMMIT, as a
//! network or a crashed load balancer can: after the server committed, so the answer never
//! reaches the store ([`Cut::AnswerLost`]); before the `COMMIT` reaches the server
//! ([`Cut::CommitLost`]); with the `COMMIT` reaching the server only later
//! ([`Cut::CommitLate`]); or with the server's side left open, the transaction still in
//! progress ([`Cut::ServerHeld`]). Everything else passes unchanged.
//!
//! It reads the PostgreSQL wire protocol just enough to find message boundaries (a type
//! byte and a 4-byte length; the client's first message, the startup packet, has no type
//! byte) and recognises two messages: the client's simple `Query` "COMMIT" (`Q`) and the
//! server's `CommandComplete` "COMMIT" (`C`). Clients must connect without TLS
//! (`sslmode=disable`), which the tests' pools do.
//!
//! Plain threads and blocking sockets, one per direction per connection. A cut is armed
//! once and fires on the first matching message of any connection, then disarms.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the next COMMIT's connection is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The server's `CommandComplete` for `COMMIT` is dropped with everything after it, and
    /// both sides are closed: the transaction committed, the client never hears so.
    AnswerLost,
    /// The client's `COMMIT` is dropped with everything after it (what came before it is
    /// forwarded), and both sides are closed: the server rolls back.
    CommitLost,
    /// The client's side is closed at its `COMMIT`; the `COMMIT` reaches the server this long
    /// after (a slow network), and the server's side is closed once it had time to commit.
    CommitLate(Duration),
    /// The client's side is closed at its `COMMIT`, which is dropped; the server's side stays
    /// open (the server sees a quiet client), so its transaction stays in progress, holding
    /// its locks, until the database is dropped.
    ServerHeld,
}

/// A running proxy (its threads run until the process ends).
pub(crate) struct CommitProxy {
    /// Where clients connect.
    pub(crate) addr: SocketAddr,
    armed: Arc<Mutex<Option<Cut>>>,
    fired: Arc<AtomicUsize>,
}

impl CommitProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub(crate) fn start(upstream: SocketAddr) -> CommitProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let armed = Arc::new(Mutex::new(None));
        let fired = Arc::new(AtomicUsize::new(0));
        let (arm, count) = (armed.clone(), fired.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let link = Link {
                    client,
                    server,
                    armed: arm.clone(),
                    fired: count.clone(),
                };
                let (to_server, to_client) = (link.clone(), link);
                std::thread::spawn(move || to_server.pipe(Direction::ToServer));
                std::thread::spawn(move || to_client.pipe(Direction::ToClient));
            }
        });
        CommitProxy { addr, armed, fired }
    }

    /// Arms `cut` for the next matching message.
    pub(crate) fn arm(&self, cut: Cut) {
        *self.armed.lock().expect("proxy lock") = Some(cut);
    }

    /// How many cuts fired so far.
    pub(crate) fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// One proxied connection: both sockets and the proxy's trigger.
struct Link {
    client: TcpStream,
    server: TcpStream,
    armed: Arc<Mutex<Option<Cut>>>,
    fired: Arc<AtomicUsize>,
}

impl Clone for Link {
    fn clone(&self) -> Link {
        Link {
            client: self.client.try_clone().expect("clone the client socket"),
            server: self.server.try_clone().expect("clone the server socket"),
            armed: self.armed.clone(),
            fired: self.fired.clone(),
        }
    }
}

impl Link {
    /// Copies one direction message by message until either side closes or a cut fires.
    fn pipe(self, direction: Direction) {
        let (mut from, mut to) = match direction {
            Direction::ToServer => (self.client.try_clone(), self.server.try_clone()),
            Direction::ToClient => (self.server.try_clone(), self.client.try_clone()),
        };
        let (Ok(from), Ok(to)) = (from.as_mut(), to.as_mut()) else {
            return;
        };
        // The client's first message (the startup packet) has no type byte.
        let mut untyped_first = direction == Direction::ToServer;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            // Forward every complete message, unless one of them is where a cut fires.
            let mut at = 0;
            loop {
                let header = if untyped_first { 4 } else { 5 };
                let Some(len_bytes) = pending.get(at + header - 4..at + header) else {
                    break;
                };
                let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
                assert!(
                    len >= 4,
                    "not the PostgreSQL protocol: a message length below 4"
                );
                let end = at + header - 4 + len;
                if pending.len() < end {
                    break;
                }
                let cut = if untyped_first {
                    None
                } else {
                    self.cut_at(direction, pending[at], &pending[at + 5..end])
                };
                if let Some(cut) = cut {
                    let _ = to.write_all(&pending[..at]);
                    self.fired.fetch_add(1, Ordering::SeqCst);
                    let _ = self.client.shutdown(Shutdown::Both);
                    match cut {
                        Cut::AnswerLost | Cut::CommitLost => {}
                        Cut::CommitLate(delay) => {
                            std::thread::sleep(delay);
                            let _ = to.write_all(&pending[at..end]);
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        // This thread keeps the server's socket open until the process
                        // ends (the test drops the database, which ends the session).
                        Cut::ServerHeld => loop {
                            std::thread::park();
                        },
                    }
                    let _ = self.server.shutdown(Shutdown::Both);
                    return;
                }
                untyped_first = false;
                at = end;
            }
            if at > 0 {
                if to.write_all(&pending[..at]).is_err() {
                    break;
                }
                pending.drain(..at);
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    /// The armed cut that fires at the message (`kind`, `body`) travelling in `direction`,
    /// if any (it is disarmed).
    fn cut_at(&self, direction: Direction, kind: u8, body: &[u8]) -> Option<Cut> {
        if body != b"COMMIT\0" {
            return None;
        }
        let mut armed = self.armed.lock().expect("proxy lock");
        let fires = matches!(
            (direction, kind, *armed),
            (Direction::ToClient, b'C', Some(Cut::AnswerLost))
                | (
                    Direction::ToServer,
                    b'Q',
                    Some(Cut::CommitLost | Cut::CommitLate(_) | Cut::ServerHeld)
                )
        );
        if fires { armed.take() } else { None }
    }
}
