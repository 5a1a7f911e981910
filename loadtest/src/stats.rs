//! Recording: one HdrHistogram per operation kind (microseconds), outcome counts, and
//! the generator's own health (dropped and late sends), turned into summaries.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ops::{OpKind, Outcome};

/// Largest latency a histogram holds (an hour, in microseconds); larger values saturate.
const HIGHEST_US: u64 = 3_600_000_000;
/// A send later than this after its intended time counts as late.
pub const LATE_SEND: Duration = Duration::from_millis(10);

/// An empty latency histogram: 1 µs to an hour at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds")
}

/// Record one latency in microseconds (0 becomes 1, beyond the range saturates).
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    histogram.saturating_record(micros.max(1));
}

/// What one kind of operation saw during a phase.
pub struct KindStats {
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    pub expected: BTreeMap<&'static str, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Response body bytes received.
    pub received: u64,
}

/// Shared by the scheduler and every request task of one phase.
pub struct Recorder {
    kinds: Vec<Mutex<KindStats>>,
    pub outstanding: AtomicUsize,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub completed: AtomicU64,
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    max_lag_us: AtomicU64,
    late: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            kinds: OpKind::ALL
                .iter()
                .map(|_| {
                    Mutex::new(KindStats {
                        latency_us: histogram(),
                        ok: 0,
                        expected: BTreeMap::new(),
                        errors: BTreeMap::new(),
                        received: 0,
                    })
                })
                .collect(),
            outstanding: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            skipped: Mutex::new(BTreeMap::new()),
            max_lag_us: AtomicU64::new(0),
            late: AtomicU64::new(0),
        }
    }
}

impl Recorder {
    /// A finished request; `latency` runs from its intended send time, `received` is
    /// its response body's length.
    pub fn record(&self, kind: OpKind, outcome: Outcome, latency: Duration, received: u64) {
        if let Outcome::Skipped(reason) = outcome {
            *self.skipped.lock().unwrap().entry(reason).or_default() += 1;
            return;
        }
        self.completed.fetch_add(1, Ordering::Relaxed);
        let mut stats = self.kinds[kind.index()].lock().unwrap();
        record(&mut stats.latency_us, latency.as_micros() as u64);
        stats.received += received;
        match outcome {
            Outcome::Ok => stats.ok += 1,
            Outcome::Expected(what) => *stats.expected.entry(what).or_default() += 1,
            Outcome::Error(what) => *stats.errors.entry(what).or_default() += 1,
            Outcome::Skipped(_) => unreachable!("handled above"),
        }
    }

    /// How late the scheduler handed a request over.
    pub fn note_lag(&self, lag: Duration) {
        let micros = lag.as_micros() as u64;
        self.max_lag_us.fetch_max(micros, Ordering::Relaxed);
        if lag > LATE_SEND {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// All latencies of the phase in one histogram.
    pub fn combined(&self) -> Histogram<u64> {
        let mut all = histogram();
        for kind in &self.kinds {
            all.add(&kind.lock().unwrap().latency_us)
                .expect("same bounds");
        }
        all
    }

    /// Unexpected errors so far.
    pub fn errors(&self) -> u64 {
        self.kinds
            .iter()
            .map(|k| k.lock().unwrap().errors.values().sum::<u64>())
            .sum()
    }

    pub fn skipped(&self) -> BTreeMap<String, u64> {
        self.skipped
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    pub fn max_lag(&self) -> Duration {
        Duration::from_micros(self.max_lag_us.load(Ordering::Relaxed))
    }

    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Per-kind summaries of the kinds that saw requests, and their histograms.
    pub fn summaries(&self, elapsed: Duration) -> Vec<(OpSummary, Histogram<u64>)> {
        OpKind::ALL
            .iter()
            .filter_map(|kind| {
                let stats = self.kinds[kind.index()].lock().unwrap();
                let requests = stats.latency_us.len();
                (requests > 0).then(|| {
                    let summary = OpSummary {
                        op: kind.name().to_owned(),
                        requests,
                        ok: stats.ok,
                        expected: stats
                            .expected
                            .iter()
                            .map(|(k, v)| (k.to_string(), *v))
                            .collect(),
                        errors: stats.errors.clone(),
                        rps: requests as f64 / elapsed.as_secs_f64().max(1e-9),
                        latency_ms: Percentiles::of(&stats.latency_us),
                        response_bytes: stats.received as f64 / requests as f64,
                    };
                    (summary, stats.latency_us.clone())
                })
            })
            .collect()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }

    /// Each percentile of `self` divided by the same percentile of `base`.
    pub fn ratio_to(&self, base: &Percentiles) -> Percentiles {
        let r = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Percentiles {
            p50: r(self.p50, base.p50),
            p90: r(self.p90, base.p90),
            p99: r(self.p99, base.p99),
            p999: r(self.p999, base.p999),
            max: r(self.max, base.max),
            mean: r(self.mean, base.mean),
        }
    }
}

/// One operation kind over one phase.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct OpSummary {
    pub op: String,
    /// Requests answered (or timed out); skipped draws are not requests.
    pub requests: u64,
    pub ok: u64,
    /// Refusals the run provokes on purpose, by reason (e.g. `slot_taken`).
    pub expected: BTreeMap<String, u64>,
    /// Unexpected answers by `"<status> <code>"` (or transport failure).
    pub errors: BTreeMap<String, u64>,
    pub rps: f64,
    pub latency_ms: Percentiles,
    /// Mean response body, bytes (what the operation costs to send, read and parse).
    #[serde(default)]
    pub response_bytes: f64,
}
