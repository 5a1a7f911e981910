//! Logs, request ids and metrics.
//!
//! Metrics go to a process-global Prometheus recorder (installed once; tests that build
//! several applications in one process share it). Per route: `http_requests_total`
//! {method, route, status} and the `http_request_duration_seconds` histogram; plus
//! `navaro_connections_open`, `navaro_live_subscribers`, `navaro_commands_total`
//! {kind, outcome}, `navaro_rate_limited_total`, `navaro_live_frames_total` and
//! `navaro_live_disconnects_total` {reason}, `navaro_availability_days_total` {outcome:
//! reused from the engine's day cache, or computed}; from the stores, `navaro_store_reachable`,
//! `navaro_store_refused_total` and `navaro_store_saturated_total`, and the journal's
//! `navaro_journal_*`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use navaro_config::LogSettings;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Latency buckets in seconds: fine below 10 ms, where the p99 budget lives.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often the recorder folds the histograms' raw samples into their buckets.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the Prometheus recorder (once per process), with its upkeep.
///
/// The recorder keeps every histogram sample (about 16 bytes, one a request) until it
/// is drained into the buckets, which only a scrape or an upkeep does: a server nobody
/// scraped grew by about 23 bytes a request until a thread ran the upkeep every
/// [`METRICS_UPKEEP_INTERVAL`]. A thread, not a task, so that it runs whatever runtime
/// (or none) the caller has.
pub fn install_metrics() {
    PROMETHEUS.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".to_owned()),
                LATENCY_BUCKETS_SECONDS,
            )
            .ok()?;
        match builder.install_recorder() {
            Ok(handle) => {
                let upkeep = handle.clone();
                let spawned = std::thread::Builder::new()
                    .name("metrics-upkeep".to_owned())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "metrics upkeep not started: only scrapes drain the histograms");
                }
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        }
    });
}

/// The metrics in Prometheus text format.
pub fn render_metrics() -> String {
    PROMETHEUS
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Set up logging: `RUST_LOG` if set, else the configured filter; text or JSON lines on
/// stdout. Idempotent (a second call is ignored).
pub fn init_logging(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // Colours only on a terminal: piped logs (systemd, tests) stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = if log.json {
        registry
            .with(tracing_subscriber::fmt::layer().json())
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_ansi(ansi))
            .try_init()
    };
}

/// Route-layer middleware: count and time each request by its route template.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
