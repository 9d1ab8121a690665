//! Connection helpers shared by the tests that reach the server another way than the test
//! URL does: as another role, or through a proxy.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::net::{SocketAddr, ToSocketAddrs};
use tokio_postgres::config::Host;
use tokio_postgres::{Config, NoTls};

/// How [`pool`] reaches the database of a URL.
#[derive(Clone, Copy, Default)]
pub(crate) struct Via<'a> {
    /// Log in as this role with this password instead of the URL's.
    pub(crate) login: Option<(&'a str, &'a str)>,
    /// Connect to this address (a proxy) instead of the URL's host, without TLS.
    pub(crate) addr: Option<SocketAddr>,
}

/// A pool of up to `size` connections to the database named by `url`, reached `via`.
///
/// # Panics
/// When `url` does not parse.
pub(crate) fn pool(url: &str, via: Via<'_>, size: usize) -> Pool {
    let base: Config = url.parse().expect("a PostgreSQL URL");
    let mut config = Config::new();
    if let Some(db) = base.get_dbname() {
        config.dbname(db);
    }
    match via.login {
        Some((user, password)) => {
            config.user(user).password(password);
        }
        None => {
            if let Some(user) = base.get_user() {
                config.user(user);
            }
            if let Some(password) = base.get_password() {
                config.password(password);
            }
        }
    }
    match via.addr {
        Some(addr) => {
            config
                .host(addr.ip().to_string())
                .port(addr.port())
                .ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        None => {
            for host in base.get_hosts() {
                match host {
                    Host::Tcp(name) => config.host(name),
                    Host::Unix(path) => config.host_path(path),
                };
            }
            for port in base.get_ports() {
                config.port(*port);
            }
        }
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .expect("a pool")
}

/// The TCP address of the server named by `url`.
///
/// # Panics
/// When the URL names a unix socket (the proxy forwards TCP only).
#[allow(dead_code)]
pub(crate) fn server_addr(url: &str) -> SocketAddr {
    let config: Config = url.parse().expect("a PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        _ => panic!("this test needs a server reached over TCP (INVITES_PG_URL names a socket)"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .expect("resolve the server")
        .next()
        .expect("an address")
}
