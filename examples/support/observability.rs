//! What the server example shows an operator (the library only emits; a host chooses how to
//! see it): `tracing` spans and events on stderr, filtered by `RUST_LOG` (default `info`),
//! as JSON lines with `INVITES_LOG_JSON=1`; the library's metrics in Prometheus' text format
//! at `GET /metrics`, rendered by `metrics-exporter-prometheus` on the example's own axum
//! router (the exporter runs no HTTP server of its own).

use axum::http::header::CONTENT_TYPE;
use axum::routing::{MethodRouter, get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Latency buckets in seconds: 100 µs to 10 s, for operations and store calls alike.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Installs the log subscriber and the Prometheus recorder; returns the `GET /metrics` route.
pub(crate) fn install<S: Clone + Send + Sync + 'static>()
-> Result<MethodRouter<S>, Box<dyn std::error::Error>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::CLOSE);
    if std::env::var("INVITES_LOG_JSON").is_ok_and(|v| v == "1") {
        logs.json()
            .with_current_span(true)
            .try_init()
            .map_err(|e| e.to_string())?;
    } else {
        logs.try_init().map_err(|e| e.to_string())?;
    }
    let handle: PrometheusHandle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)?
        .install_recorder()?;
    invites::core::observe::describe_metrics();
    Ok(get(move || {
        let handle = handle.clone();
        async move {
            handle.run_upkeep();
            (
                [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                handle.render(),
            )
        }
    }))
}
