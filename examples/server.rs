//! The HTTP API, ready to curl: `cargo run --example server --features axum`.
//!
//! - Storage: `invites-server.db` (SQLite) in the current directory, created on first run.
//! - A demo organization "Acme" with five websites and two groups, seeded idempotently
//!   (re-running changes nothing), and two demo API keys printed at start: a global one and
//!   one scoped to two websites. A tiny `PrincipalResolver` maps the `x-api-key` header.
//! - Mail: each email is written as an `.eml` file into `./outbox-mail/` (lettre builds the
//!   message and writes the file, `support/eml_folder.rs`); open it in a mail client to find
//!   the accept link (in a text editor the text part is quoted-printable: `=3D` is `=`, and a
//!   `=` at the end of a line joins it to the next). With `INVITES_SMTP_URL` (build with
//!   `--features axum,smtp`) or `POSTMARK_SERVER_TOKEN` (`--features axum,postmark`), plus
//!   `INVITES_MAIL_FROM`, it sends real email instead.
//! - The accept link opens `GET /accept?token=…` on this server: a minimal page that shows
//!   the invitations (preview) and accepts them with a button (POST), sent with
//!   `Cache-Control: no-store` and `Referrer-Policy: no-referrer` since its URL holds the token
//!   (`support/accept_page.rs`); after accepting it names each website or group and what
//!   happened to it. That page is the host's part; the API itself takes tokens only
//!   in JSON bodies.
//! - The delivery worker (`invites::delivery`) retries queued emails every 5 seconds.
//! - Logs (`tracing`) on stderr, filtered by `RUST_LOG` (default `info`), JSON lines with
//!   `INVITES_LOG_JSON=1`; metrics in Prometheus' text format at `GET /metrics`.
//!
//! Options (flags win over environment variables): `--addr HOST:PORT` or `INVITES_ADDR`
//! (default `127.0.0.1:8080`), `--db PATH` or `INVITES_DB`, `--mail-dir DIR` or
//! `INVITES_MAIL_DIR`, `--resend-interval SECONDS` or `INVITES_RESEND_INTERVAL` (the least
//! time between two sends of one batch, default 60; `.ci/steps/http.sh` uses 1). The API is
//! under `/api/v1`, its OpenAPI document at `/api/v1/openapi.json`. Stop with Ctrl-C.

use async_trait::async_trait;
use axum::http::request::Parts;
use invites::axum::{AuthError, InvitesApi, PrincipalResolver};
use invites::core::Group;
use invites::delivery::DeliveryWorker;
use invites::prelude::*;
use invites::sqlite::SqliteStore;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[path = "support/accept_page.rs"]
mod accept_page;
#[path = "support/eml_folder.rs"]
mod eml_folder;
#[path = "support/mail_from_env.rs"]
mod mail_from_env;
#[path = "support/observability.rs"]
mod observability;

use eml_folder::EmlFolderMailer;

const GLOBAL_KEY: &str = "demo-global-key";
const SCOPED_KEY: &str = "demo-scoped-key";

const SITES: [(&str, &str); 5] = [
    ("Shop", "https://shop.acme.test"),
    ("Blog", "https://blog.acme.test"),
    ("Docs", "https://docs.acme.test"),
    ("Status", "https://status.acme.test"),
    ("Careers", "https://careers.acme.test"),
];

fn org() -> OrganizationId {
    OrganizationId(Uuid::from_u128(0xAC3E))
}

fn site(i: usize) -> WebsiteId {
    WebsiteId(Uuid::from_u128(0x5170 + i as u128))
}

fn group(i: u128) -> GroupId {
    GroupId(Uuid::from_u128(0x6400 + i))
}

/// Settings from flags, then the environment, then defaults.
struct Settings {
    addr: String,
    db: PathBuf,
    mail_dir: PathBuf,
    resend_interval: Duration,
}

impl Settings {
    fn read() -> Result<Self, String> {
        let mut addr = std::env::var("INVITES_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
        let mut db = std::env::var("INVITES_DB").unwrap_or_else(|_| "invites-server.db".into());
        let mut mail_dir =
            std::env::var("INVITES_MAIL_DIR").unwrap_or_else(|_| "outbox-mail".into());
        let mut resend = std::env::var("INVITES_RESEND_INTERVAL").unwrap_or_else(|_| "60".into());
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--addr" => &mut addr,
                "--db" => &mut db,
                "--mail-dir" => &mut mail_dir,
                "--resend-interval" => &mut resend,
                "-h" | "--help" => {
                    return Err(
                        "usage: server [--addr HOST:PORT] [--db PATH] [--mail-dir DIR] \
                         [--resend-interval SECONDS]"
                            .into(),
                    );
                }
                other => return Err(format!("unknown argument {other:?}; try --help")),
            };
            *slot = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        }
        let resend_interval = resend
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("--resend-interval needs whole seconds, not {resend:?}"))?;
        Ok(Settings {
            addr,
            db: db.into(),
            mail_dir: mail_dir.into(),
            resend_interval,
        })
    }
}

/// The demo's global key: it reaches everything of the organization.
fn global_key() -> Principal {
    Principal::global(org(), ApiKeyId(Uuid::from_u128(0x4E1)))
}

/// Maps the demo keys of the `x-api-key` header to their principals.
#[derive(Debug)]
struct DemoKeys(HashMap<&'static str, Principal>);

impl DemoKeys {
    fn new() -> Self {
        let global = global_key();
        let scoped =
            Principal::websites(org(), ApiKeyId(Uuid::from_u128(0x4E2)), [site(0), site(1)]);
        DemoKeys(HashMap::from([(GLOBAL_KEY, global), (SCOPED_KEY, scoped)]))
    }
}

#[async_trait]
impl PrincipalResolver for DemoKeys {
    async fn resolve(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let sent = parts.headers.get("x-api-key").ok_or(AuthError::Missing)?;
        let sent = sent.to_str().map_err(|_| AuthError::Invalid)?;
        self.0.get(sent).cloned().ok_or(AuthError::Invalid)
    }
}

/// The one place that picks the mail transport: SMTP or Postmark when the environment
/// configures one (see `support/mail_from_env.rs`; build with `--features smtp` or
/// `postmark`), else `.eml` files in the mail folder.
fn choose_mailer(settings: &Settings) -> Result<Arc<dyn Mailer>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&settings.mail_dir)?;
    mail_from_env::from_env(Arc::new(EmlFolderMailer::new(
        &settings.mail_dir,
        "Acme <no-reply@acme.test>",
        "invites.acme.test",
    )?))
}

/// Creates the demo organization, websites and groups; every row has a fixed id and existing
/// rows are left alone, so a second run is a no-op.
async fn seed(store: &SqliteStore) -> Result<(), Box<dyn std::error::Error>> {
    store.create_organization(org(), "Acme").await?;
    for (i, (name, url)) in SITES.iter().enumerate() {
        store
            .create_website(&Website {
                id: site(i),
                organization: org(),
                name: (*name).into(),
                url: (*url).into(),
            })
            .await?;
    }
    for (id, name, members) in [
        (group(1), "Marketing", [0, 1]),
        (group(2), "Engineering", [2, 3]),
    ] {
        store
            .create_group(&Group {
                id,
                organization: org(),
                name: name.into(),
            })
            .await?;
        for m in members {
            store.add_website_to_group(id, site(m)).await?;
        }
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `GET /health`: the delivery worker's state as JSON; 503 when it stopped or is paused by a
/// sender-wide mail failure, so a load balancer or a probe sees a stalled worker.
async fn health(handle: invites::delivery::HealthHandle) -> axum::response::Response {
    use axum::response::IntoResponse;
    let h = handle.get();
    let ok = h.running && h.paused_until.is_none();
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "running": h.running,
        "last_tick": h.last_tick.map(|t| t.to_rfc3339()),
        "last_error": h.last_error,
        "paused_until": h.paused_until.map(|t| t.to_rfc3339()),
        "totals": {
            "runs": h.totals.runs,
            "sent": h.totals.sent,
            "retried": h.totals.retried,
            "failed": h.totals.failed,
            "cancelled": h.totals.cancelled,
            "deferred": h.totals.deferred,
            "panics": h.totals.panics,
            "store_errors": h.totals.store_errors,
            "purges": h.totals.purges,
        },
    });
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::read()?;
    let metrics_route = observability::install()?;
    let store = SqliteStore::open(&settings.db).await?;
    seed(&store).await?;

    let listener = tokio::net::TcpListener::bind(&settings.addr).await?;
    let addr = listener.local_addr()?;
    let config = InviteConfig::new(format!("http://{addr}/accept"))?
        .with_resend_interval(settings.resend_interval)?;
    let service = InviteService::new(Arc::new(store), choose_mailer(&settings)?, config);
    let worker = DeliveryWorker::spawn(service.clone(), Duration::from_secs(5));
    let health_handle = worker.health_handle();

    let api = InvitesApi::new(service.clone()).with_resolver(DemoKeys::new());
    let app = axum::Router::new()
        .nest("/api/v1", invites::axum::router(api))
        .merge(accept_page::routes(service, global_key()))
        .route("/metrics", metrics_route)
        .route(
            "/health",
            axum::routing::get(move || health(health_handle.clone())),
        );

    println!(
        "invites demo server on http://{addr}/api/v1 (OpenAPI: http://{addr}/api/v1/openapi.json)"
    );
    println!(
        "database: {}   emails: {}/",
        settings.db.display(),
        settings.mail_dir.display()
    );
    println!("global API key: {GLOBAL_KEY}");
    println!(
        "scoped API key: {SCOPED_KEY} (websites {} and {} only)",
        site(0),
        site(1)
    );
    for (i, (name, _)) in SITES.iter().enumerate() {
        println!("website {name:8} {}", site(i));
    }
    println!(
        "group   Marketing {}   group Engineering {}",
        group(1),
        group(2)
    );

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    let totals = worker.stop().await;
    println!("stopped; the delivery worker sent {} email(s)", totals.sent);
    Ok(())
}
