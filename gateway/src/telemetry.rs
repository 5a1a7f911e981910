//! Logs and metrics (the request id is [`crate::layers`]'s).
//!
//! Metrics go to a process-global Prometheus recorder (installed once; tests that build
//! several applications in one process share it). Per route: `http_requests_total`
//! {method, route, status} and the `http_request_duration_seconds` histogram; plus
//! `navaro_connections_open`, `navaro_live_subscribers`, `navaro_commands_total`
//! {kind, outcome}, `navaro_rate_limited_total`, `navaro_http_shed_total`, `navaro_live_frames_total` and
//! `navaro_live_disconnects_total` {reason}, `navaro_availability_days_total` {outcome:
//! reused from the engine's day cache, or computed}; from the stores, `navaro_store_reachable`,
//! `navaro_store_refused_total` and `navaro_store_saturated_total`, and the journal's
//! `navaro_journal_*`.

use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use navaro_config::LogSettings;
use tower::{Layer, Service};
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

/// The process's standard metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`, `process_threads`, …), read
/// from the OS at each scrape.
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

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
                PROCESS.get_or_init(metrics_process::Collector::default).describe();
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

/// The metrics in Prometheus text format, the process's read anew.
pub fn render_metrics() -> String {
    if let Some(process) = PROCESS.get() {
        process.collect();
    }
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

/// Route layer: count and time each request by its method, route template and status.
///
/// A tower layer rather than a `from_fn` middleware, which boxes a future and clones the
/// services below it on every request; and the two metrics of each method, route and
/// status are registered once and kept ([`RequestMetrics`]), instead of three label
/// strings made and looked up in the recorder's registry on every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Track;

impl<S> Layer<S> for Track {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

/// The service [`Track`] wraps around a route.
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
}

impl<S, E> Service<Request> for Tracked<S>
where
    S: Service<Request, Response = Response, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let labels = (
            request.method().clone(),
            request.extensions().get::<MatchedPath>().cloned(),
        );
        TrackedFuture {
            started: Instant::now(),
            labels: Some(labels),
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's answer, counted and timed when it is ready.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        labels: Option<(Method, Option<MatchedPath>)>,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some((method, route))) = (&result, this.labels.take()) {
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            if response.status().is_server_error() {
                SERVER_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            RequestMetrics::of(&method, route, response.status().as_u16())
                .record(this.started.elapsed());
        }
        Poll::Ready(result)
    }
}

/// Answers with a 5xx status since this process started (the admin's "errors" counter;
/// `/metrics` has them by route and status).
static SERVER_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many answers had a 5xx status since this process started.
pub fn server_errors() -> u64 {
    SERVER_ERRORS.load(std::sync::atomic::Ordering::Relaxed)
}

/// `http_requests_total` and `http_request_duration_seconds` of one method, route and
/// status.
#[derive(Clone)]
struct RequestMetrics {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Routes times methods times statuses: a few hundred at most.
const KEPT_REQUEST_METRICS: usize = 1024;

/// The registered metrics, once the Prometheus recorder is installed (before it, the
/// macros hand out handles that record nothing, which must not be kept).
static REQUEST_METRICS: OnceLock<quick_cache::sync::Cache<MetricsKey, RequestMetrics>> =
    OnceLock::new();

impl RequestMetrics {
    fn of(method: &Method, route: &str, status: u16) -> RequestMetrics {
        let Some(Some(_)) = PROMETHEUS.get() else {
            return RequestMetrics::register(method, route, status);
        };
        let kept =
            REQUEST_METRICS.get_or_init(|| quick_cache::sync::Cache::new(KEPT_REQUEST_METRICS));
        let key = MetricsKeyRef {
            method,
            route,
            status,
        };
        if let Some(metrics) = kept.get(&key) {
            return metrics;
        }
        let metrics = RequestMetrics::register(method, route, status);
        kept.insert(
            MetricsKey {
                method: method.clone(),
                route: route.into(),
                status,
            },
            metrics.clone(),
        );
        metrics
    }

    fn register(method: &Method, route: &str, status: u16) -> RequestMetrics {
        let (method, route) = (method.as_str().to_owned(), route.to_owned());
        RequestMetrics {
            requests: metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()),
            duration: metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route),
        }
    }

    fn record(&self, elapsed: Duration) {
        self.requests.increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// What [`RequestMetrics`] are kept under.
#[derive(Debug, PartialEq, Eq)]
struct MetricsKey {
    method: Method,
    route: Box<str>,
    status: u16,
}

/// A [`MetricsKey`] borrowed from the request, to look it up without allocating.
struct MetricsKeyRef<'a> {
    method: &'a Method,
    route: &'a str,
    status: u16,
}

// Both keys hash the same fields the same way, as `Equivalent` requires.
impl Hash for MetricsKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.method.as_str(), &*self.route, self.status).hash(state);
    }
}

impl Hash for MetricsKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.method.as_str(), self.route, self.status).hash(state);
    }
}

impl quick_cache::Equivalent<MetricsKey> for MetricsKeyRef<'_> {
    fn equivalent(&self, key: &MetricsKey) -> bool {
        *self.method == key.method && self.route == &*key.route && self.status == key.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &str, method: &str, status: u16) -> Option<u64> {
        let series = format!(
            r#"http_requests_total{{method="{method}",route="/test/tracked/{{id}}",status="{status}"}} "#
        );
        let line = text.lines().find(|l| l.starts_with(&series))?;
        line[series.len()..].trim().parse().ok()
    }

    #[test]
    fn request_metrics_are_kept_per_method_route_and_status_and_count_each_request() {
        install_metrics();
        let route = "/test/tracked/{id}";
        for _ in 0..3 {
            RequestMetrics::of(&Method::GET, route, 200).record(Duration::from_millis(1));
        }
        RequestMetrics::of(&Method::POST, route, 200).record(Duration::from_millis(1));
        RequestMetrics::of(&Method::GET, route, 404).record(Duration::from_millis(1));

        let kept = REQUEST_METRICS
            .get()
            .expect("kept once the recorder is installed");
        for (method, status) in [(Method::GET, 200), (Method::POST, 200), (Method::GET, 404)] {
            let key = MetricsKeyRef {
                method: &method,
                route,
                status,
            };
            assert!(kept.get(&key).is_some(), "{method} {status} not kept");
        }
        let text = PROMETHEUS.get().unwrap().as_ref().unwrap().render();
        assert_eq!(count(&text, "GET", 200), Some(3), "{text}");
        assert_eq!(count(&text, "POST", 200), Some(1), "{text}");
        assert_eq!(count(&text, "GET", 404), Some(1), "{text}");
    }
}
