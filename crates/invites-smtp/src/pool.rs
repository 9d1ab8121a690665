//! The connection pool: open SMTP connections kept between sends.
//!
//! A connection is the send's own value while the send runs, and goes back to the pool only
//! once the server has answered the whole message. A send that does not finish (the whole-send
//! timeout fired, or the caller dropped the future: an HTTP client that went away during an
//! inline send) drops its connection with it, which closes the socket; the next message never
//! reads replies meant for another. (lettre's own pool hands a connection back from the
//! guard's `Drop`, mid-conversation or not, and discards only those it knows are broken.)
//!
//! A connection taken from the pool is checked with `NOOP` first, so one the server closed
//! while it sat idle is replaced by a new one. At most `pool_max_size` connections wait in the
//! pool (more may be open while sends run at once; the extra ones say `QUIT` when they are
//! done), and one left unused for `pool_idle_timeout` is closed by a reaper task that runs only
//! while the pool holds connections.

use crate::config::{Security, SmtpConfig};
use crate::mailer::{SmtpError, cannot_carry, classify};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::extension::{MailBodyParameter, MailParameter};
use lettre::transport::smtp::{self};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a new connection is made: TCP (or TLS from the first byte), `EHLO`, `STARTTLS` and
/// `EHLO` again when required, `AUTH` when credentials are set.
pub(crate) struct Connector {
    host: String,
    port: u16,
    connect_timeout: Duration,
    hello: ClientId,
    tls: Option<(Security, TlsParameters)>,
    credentials: Option<Credentials>,
}

impl Connector {
    /// For `config`, with `tls` built from it (`None` for [`Security::None`]).
    pub(crate) fn new(config: &SmtpConfig, tls: Option<TlsParameters>) -> Self {
        Connector {
            host: config.host.clone(),
            port: config.port,
            connect_timeout: config.timeout,
            hello: config
                .hello_name
                .clone()
                .map_or_else(ClientId::default, ClientId::Domain),
            tls: tls.map(|params| (config.security, params)),
            credentials: config
                .login
                .as_ref()
                .map(|l| Credentials::new(l.user.clone(), l.password.clone())),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, smtp::Error> {
        let implicit = match &self.tls {
            Some((Security::ImplicitTls, params)) => Some(params.clone()),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.connect_timeout),
            &self.hello,
            implicit,
            None,
        )
        .await?;
        if let Some((Security::StartTls, params)) = &self.tls {
            // Refuses (a client error) when the server does not offer STARTTLS.
            conn.starttls(params.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

/// The pool; clones of the mailer share one.
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    connector: Connector,
    max_idle: usize,
    idle_timeout: Duration,
    /// Bounds a `QUIT` on a connection being let go.
    quit_timeout: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Oldest first: sends take the newest (the end), so the front is the next to expire.
    idle: Vec<Parked>,
    /// The reaper task, while there is one; it clears this itself (under the lock) when the
    /// pool is empty and it ends.
    reaper: Option<JoinHandle<()>>,
}

struct Parked {
    conn: AsyncSmtpConnection,
    since: Instant,
}

impl Pool {
    pub(crate) fn new(connector: Connector, config: &SmtpConfig) -> Self {
        Pool {
            shared: Arc::new(Shared {
                connector,
                max_idle: usize::try_from(config.pool_max_size).unwrap_or(usize::MAX),
                idle_timeout: config.pool_idle_timeout,
                quit_timeout: config.timeout,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Sends one message over a pooled or new connection. The connection returns to the pool
    /// only when this completes with the server's answer to the whole message (or with a
    /// refusal made before any command); an error from the server or the network, or this
    /// future being dropped, closes it.
    ///
    /// # Errors
    /// [`SmtpError`] as [`classify`] tells, or [`cannot_carry`]'s refusal.
    pub(crate) async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), SmtpError> {
        // A permanent refusal before any message is named (the greeting, EHLO, AUTH) is the
        // sender's: every message would meet it.
        let mut conn = self
            .checkout()
            .await
            .map_err(|e| sender_wide(classify(&e), "connecting"))?;
        if let Some(refusal) = cannot_carry(conn.server_info(), envelope, email) {
            // Nothing was sent: the connection is as clean as it came.
            self.park(conn);
            return Err(refusal);
        }
        let mut options = Vec::new();
        if envelope
            .to()
            .iter()
            .chain(envelope.from())
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii())
        {
            options.push(MailParameter::SmtpUtfEight);
        }
        if !email.is_ascii() {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        // The conversation lettre's `send` has, one command at a time, so a refusal of
        // `MAIL FROM` (the sender: a blocklist, a quota, an unauthorised address) is told
        // apart from one of `RCPT TO` or the message (this message's).
        if let Err(e) = conn
            .command(Mail::new(envelope.from().cloned(), options))
            .await
        {
            conn.abort().await;
            return Err(sender_wide(classify(&e), "at MAIL FROM"));
        }
        for to in envelope.to() {
            if let Err(e) = conn.command(Rcpt::new(to.clone(), vec![])).await {
                conn.abort().await;
                return Err(classify(&e));
            }
        }
        let sent = match conn.command(Data).await {
            Ok(_) => conn.message(email).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(_) => {
                self.park(conn);
                Ok(())
            }
            // Said QUIT and closed: a refused message leaves no half-open transaction.
            Err(e) => {
                conn.abort().await;
                Err(classify(&e))
            }
        }
    }

    /// A connection that answers `NOOP`, from the pool, else a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, smtp::Error> {
        while let Some(mut conn) = self.take_idle() {
            if conn.test_connected().await {
                return Ok(conn);
            }
            // Closed by the server while it sat idle: dropped, try the next.
        }
        self.shared.connector.connect().await
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut state = self.shared.lock();
        while let Some(parked) = state.idle.pop() {
            if parked.since.elapsed() < self.shared.idle_timeout {
                return Some(parked.conn);
            }
            // Expired before the reaper got to it: closed (dropped) here.
        }
        None
    }

    /// Hands a connection that finished its send back to the pool, or lets it go with `QUIT`
    /// when the pool is full.
    fn park(&self, conn: AsyncSmtpConnection) {
        let mut state = self.shared.lock();
        if state.idle.len() >= self.shared.max_idle {
            drop(state);
            tokio::spawn(quit(conn, self.shared.quit_timeout));
            return;
        }
        state.idle.push(Parked {
            conn,
            since: Instant::now(),
        });
        // A reaper cancelled with an earlier runtime counts as gone.
        if state.reaper.as_ref().is_none_or(JoinHandle::is_finished) {
            state.reaper = Some(tokio::spawn(reap(Arc::downgrade(&self.shared))));
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement, so a panic elsewhere leaves it usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        // Say QUIT when a runtime is at hand; otherwise dropping closes the sockets.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            for parked in idle {
                runtime.spawn(quit(parked.conn, self.quit_timeout));
            }
        }
    }
}

/// Closes the pool's connections once they have been idle for the idle timeout; ends when
/// the pool is empty or gone.
async fn reap(shared: Weak<Shared>) {
    loop {
        let (expired, wake, quit_timeout) = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut state = shared.lock();
            let now = Instant::now();
            let n = state
                .idle
                .partition_point(|p| now.duration_since(p.since) >= shared.idle_timeout);
            let expired: Vec<Parked> = state.idle.drain(..n).collect();
            let wake = state.idle.first().map(|p| p.since + shared.idle_timeout);
            if wake.is_none() {
                state.reaper = None;
            }
            (expired, wake, shared.quit_timeout)
        };
        for parked in expired {
            quit(parked.conn, quit_timeout).await;
        }
        match wake {
            Some(at) => tokio::time::sleep_until(at).await,
            None => return,
        }
    }
}

/// Says `QUIT` (bounded by `timeout`) and closes.
async fn quit(mut conn: AsyncSmtpConnection, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, conn.quit()).await;
}

/// A permanent refusal met before any recipient or message was named is the sender's (see
/// `SmtpErrorKind::Misconfigured`), except a size refusal (552, this message's). Transient
/// failures, and refusals already classified, stay as they are.
fn sender_wide(e: SmtpError, stage: &str) -> SmtpError {
    match (e.kind(), e.reply_code()) {
        (crate::SmtpErrorKind::Rejected, Some(code)) if code != 552 => {
            SmtpError::sender_refused(code, stage)
        }
        _ => e,
    }
}
