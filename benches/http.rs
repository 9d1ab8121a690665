//! Criterion benchmarks of issue 11: a 50-target direct bulk invite through HTTP over
//! loopback (axum server, reqwest client, both in this process) beside the same request
//! in-process, in one run; and 8 concurrent HTTP clients against one.
//!
//! Run: `cargo bench --bench http --features axum` (results go into BENCHMARKS.md, the
//! `http` rows). Each bench has its own fresh SQLite file (seeded with 50 websites outside the
//! timed loop) and every timed request invites a never-seen email, so it really inserts.
//!
//! - `inprocess_direct_50`: what a host handler does without HTTP: parse the JSON body,
//!   `bulk_invite`, serialize the response, in a task on the runtime.
//! - `http_direct_50`: the same body, `POST /api/v1/invites/bulk` through a kept-alive
//!   connection; the client reads the whole response.
//! - `http_echo_2k`: the transport alone: the same body to a route that answers a fixed JSON
//!   body of the bulk response's size (same client, same `axum::serve`), so that what HTTP
//!   adds beyond loopback shows as `http_direct_50 - inprocess_direct_50 - http_echo_2k`.
//! - `http_direct_50_x1` / `http_direct_50_x8`: 8 requests per iteration from one client one
//!   after the other, and from 8 clients at once; the throughput ratio is x1 / x8.
//!
//! The clients run on their own single-thread runtime on the bench's thread, as a separate
//! client process would; the servers and the in-process baseline on a multi-thread runtime.
//! When `http_direct_50` is selected (or nothing is), the bench first prints the in-process
//! request, the HTTP request and the echo taken in turn, 1,000 rounds, medians.

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use invites::axum::{AuthError, InvitesApi, PrincipalResolver};
use invites::prelude::*;
use invites::sqlite::SqliteStore;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[path = "support/fixture.rs"]
mod fixture;
use fixture::{NullMailer, bench_dir};

/// Every request is the bench's global key.
#[derive(Debug)]
struct BenchKey;

#[async_trait]
impl PrincipalResolver for BenchKey {
    async fn resolve(&self, parts: &axum::http::request::Parts) -> Result<Principal, AuthError> {
        match parts.headers.get("x-api-key") {
            Some(v) if v == "bench" => Ok(key()),
            Some(_) => Err(AuthError::Invalid),
            None => Err(AuthError::Missing),
        }
    }
}

const SITES: usize = 50;
const CLIENTS: usize = 8;

fn org() -> OrganizationId {
    OrganizationId(Uuid::from_u128(0xB1))
}

fn key() -> Principal {
    Principal::global(org(), ApiKeyId(Uuid::from_u128(0xC2)))
}

fn site(i: usize) -> WebsiteId {
    WebsiteId(Uuid::from_u128(0x2_0000 + i as u128))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The JSON body of a 50-target direct invite of a never-seen email.
fn body() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let ids: Vec<String> = (0..SITES).map(|i| format!("\"{}\"", site(i))).collect();
    format!(
        r#"{{"invite_method":"direct","email":"http-{}-{n}@example.test","role":"viewer","website_ids":[{}]}}"#,
        std::process::id(),
        ids.join(",")
    )
}

/// A service over a fresh database file holding the bench organization and its websites.
async fn fresh_service(name: &str) -> InviteService {
    let path = bench_dir().join(format!("http-{name}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = SqliteStore::open(&path).await.unwrap();
    fixture::seed_websites(&store, org(), (0..SITES).map(site)).await;
    InviteService::new(
        Arc::new(store),
        Arc::new(NullMailer),
        InviteConfig::new("https://bench.test/accept").unwrap(),
    )
}

/// Serves `service` on a loopback port; returns the bulk endpoint's URL.
async fn serve(service: InviteService) -> String {
    let api = InvitesApi::new(service).with_resolver(BenchKey);
    let app = axum::Router::new().nest("/api/v1", invites::axum::router(api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/api/v1/invites/bulk")
}

/// Serves a route that reads a request body and answers a fixed JSON body of the size of the
/// bulk response, on a loopback port: what the transport alone costs (client, server, one
/// request and response of that size on a kept-alive connection, the task hops between
/// them). Returns its URL.
async fn serve_echo() -> String {
    let answer: &'static str = Box::leak(
        format!(
            r#"{{"results":[{}]}}"#,
            vec![r#"{"website_id":"00000000-0000-0000-0000-000000020000","success":true,"code":"added"}"#; SITES]
                .join(",")
        )
        .into_boxed_str(),
    );
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            black_box(body);
            ([("content-type", "application/json")], answer)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/echo")
}

async fn in_process(service: &InviteService) -> Vec<u8> {
    let body = body();
    let request = BulkInviteRequest::from_json(body.as_bytes()).unwrap();
    let response = service.bulk_invite(&key(), request).await.unwrap();
    debug_assert_eq!(response.summary.succeeded, SITES);
    serde_json::to_vec(&response).unwrap()
}

/// Sends one request and reads the whole response; returns its length.
async fn over_http(client: &reqwest::Client, url: &str) -> usize {
    let response = client
        .post(url)
        .header("x-api-key", "bench")
        .header("content-type", "application/json")
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().len()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn http_vs_in_process(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (local, url, url_many, url_echo) = rt.block_on(async {
        let local = fresh_service("inprocess").await;
        let url = serve(fresh_service("http").await).await;
        let url_many = serve(fresh_service("concurrent").await).await;
        (local, url, url_many, serve_echo().await)
    });
    // The clients stand for another process: their own single-thread runtime, driven by the
    // bench's thread (criterion's `to_async` blocks on it), so a response wakes the waiting
    // request directly, as it would in a separate client, instead of waking a server worker
    // that then wakes the bench's thread. The server and the in-process baseline run on the
    // server's multi-thread runtime, reached from the bench's thread in the same way (a
    // spawned task, awaited), so both sides pay one hop there and one back.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let one = client();
    let many: Vec<reqwest::Client> = (0..CLIENTS).map(|_| client()).collect();
    // Open the connections outside the timed loops (their tasks live on the client runtime).
    client_rt.block_on(async {
        over_http(&one, &url).await;
        for c in &many {
            over_http(c, &url_many).await;
        }
    });

    if selects_http_direct() {
        interleaved(&rt, &client_rt, &local, &one, &url, &url_echo);
    }

    let mut group = c.benchmark_group("http");
    // On a server runtime worker, like the server's handler, awaited from the bench's thread.
    group.bench_function("inprocess_direct_50", |b| {
        b.to_async(&client_rt).iter(|| {
            let local = local.clone();
            let task = rt.spawn(async move { in_process(&local).await });
            async move { black_box(task.await.unwrap()) }
        })
    });
    group.bench_function("http_direct_50", |b| {
        b.to_async(&client_rt)
            .iter(|| async { black_box(over_http(&one, &url).await) })
    });
    client_rt.block_on(over_http(&one, &url_echo));
    group.bench_function("http_echo_2k", |b| {
        b.to_async(&client_rt)
            .iter(|| async { black_box(over_http(&one, &url_echo).await) })
    });
    group.bench_function("http_direct_50_x1", |b| {
        b.to_async(&client_rt).iter(|| async {
            for _ in 0..CLIENTS {
                black_box(over_http(&many[0], &url_many).await);
            }
        })
    });
    group.bench_function("http_direct_50_x8", |b| {
        b.to_async(&client_rt).iter(|| async {
            let tasks: Vec<_> = many
                .iter()
                .map(|c| {
                    let (c, url) = (c.clone(), url_many.clone());
                    tokio::spawn(async move { over_http(&c, &url).await })
                })
                .collect();
            for t in tasks {
                black_box(t.await.unwrap());
            }
        })
    });
    group.finish();
}

/// Whether the command line measures `http_direct_50`: a bench run (`--bench`; `cargo test`
/// runs each bench once without it) with no filter (free arguments other than option values),
/// or one that names it.
fn selects_http_direct() -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        return false;
    }
    let free: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    free.iter().all(|a| a.parse::<f64>().is_ok())
        || free.iter().any(|a| a.contains("http_direct_50"))
}

/// The ratio the issue sets a target for, with the requests it compares taken in turn (the
/// order swapping every round), so a slow minute of this VM slows both sides alike: the
/// in-process request, the same request over HTTP, and the transport alone. Medians.
fn interleaved(
    rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    local: &InviteService,
    client: &reqwest::Client,
    url: &str,
    url_echo: &str,
) {
    const ROUNDS: usize = 1000;
    let mut times: [Vec<Duration>; 3] = Default::default();
    client_rt.block_on(async {
        over_http(client, url_echo).await;
        for round in 0..ROUNDS {
            for k in 0..3 {
                let which = (round + k) % 3;
                let start = Instant::now();
                match which {
                    0 => {
                        let local = local.clone();
                        black_box(
                            rt.spawn(async move { in_process(&local).await })
                                .await
                                .unwrap(),
                        );
                    }
                    1 => drop(black_box(over_http(client, url).await)),
                    _ => drop(black_box(over_http(client, url_echo).await)),
                }
                times[which].push(start.elapsed());
            }
        }
    });
    let [local_us, http_us, echo_us] = times.map(|mut t| {
        t.sort_unstable();
        t[t.len() / 2].as_secs_f64() * 1e6
    });
    println!(
        "interleaved, {ROUNDS} rounds (medians): in-process {local_us:.1} µs; over HTTP \
         {http_us:.1} µs = {:.3}x; the transport alone {echo_us:.1} µs",
        http_us / local_us
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = http_vs_in_process
}
criterion_main!(benches);
