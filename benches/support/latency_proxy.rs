//! A TCP proxy for the PostgreSQL benches: it stands between the bench and the server,
//! delays every byte by a fixed time in each direction (a server across a network instead of
//! on loopback), and counts round trips.
//!
//! A round trip is counted each time a client sends after its connection last carried bytes
//! from the server: a client that sends three statements together and then waits is one
//! round trip, one that waits for each is three. Pipelined requests are therefore counted as
//! the wire sees them.
//!
//! Plain threads and blocking sockets, two per direction per connection: a reader stamps each
//! chunk with the time it arrived, a writer holds it until that time plus the delay. The
//! delay is `std::thread::sleep`, which on Linux overshoots by tens of microseconds; the
//! bench prints the round trip it measured through the proxy, not only the one asked for.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running proxy (it runs until the process ends).
pub(crate) struct LatencyProxy {
    /// Where clients connect.
    pub(crate) addr: SocketAddr,
    round_trips: Arc<AtomicU64>,
}

impl LatencyProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`, each
    /// byte `one_way` later than it arrived.
    pub(crate) fn start(upstream: SocketAddr, one_way: Duration) -> LatencyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = round_trips.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for s in [&client, &server] {
                    s.set_nodelay(true).expect("nodelay");
                }
                // Starts as if the server had spoken, so a connection's first send counts.
                let server_spoke = Arc::new(AtomicBool::new(true));
                let to_server = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let to_client = (server, client);
                let (flag, count) = (server_spoke.clone(), counter.clone());
                pipe(to_server.0, to_server.1, one_way, move || {
                    if flag.swap(false, Ordering::AcqRel) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
                pipe(to_client.0, to_client.1, one_way, move || {
                    server_spoke.store(true, Ordering::Release);
                });
            }
        });
        LatencyProxy { addr, round_trips }
    }

    /// Round trips counted so far, over every connection.
    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read; `on_read` runs as each chunk
/// arrives.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    on_read: impl Fn() + Send + 'static,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    on_read();
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer once it has sent what is queued.
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
