//! The open-loop driver: a scheduler thread hands requests to the runtime at intended
//! times `t0 + i / rate`, whether or not earlier ones have finished, and every latency
//! runs from the intended time (so a stalled server or a late generator shows up in the
//! percentiles instead of being hidden: coordinated omission corrected). Step mode runs
//! phases at rising rates until one is not sustainable (in every run of it, see
//! [`Knee`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::http::counting_bytes;
use crate::ops::{Draw, OpKind, Outcome, execute, mix64};
use crate::options::Options;
use crate::stats::{OpSummary, Percentiles, Recorder};
use crate::world::World;

/// How often the progress bar's figures are refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Pause between steps, so one step's backlog does not spill into the next.
const STEP_PAUSE: Duration = Duration::from_secs(1);
/// After a failed step: the length of each unrecorded recovery phase at the first
/// step's rate, and how many are tried before going on regardless.
const RECOVERY_PHASE: Duration = Duration::from_secs(2);
const RECOVERY_TRIES: usize = 5;

/// What a phase sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// `GET /healthz` only: the HTTP stack alone.
    Baseline,
    /// The operation mix.
    Mix,
}

/// One phase at one rate.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub workload: Workload,
    pub target_rps: f64,
    pub duration_s: f64,
    /// Requests due in the phase (`rate x duration`).
    pub scheduled: u64,
    /// Due while `max_outstanding` were in flight, so never sent.
    pub dropped: u64,
    /// Drawn operations that had nothing to act on, by reason (nothing was sent).
    pub skipped: BTreeMap<String, u64>,
    /// Requests answered or timed out.
    pub completed: u64,
    /// From the first intended send to the last answer.
    pub elapsed_s: f64,
    /// `completed / elapsed_s`.
    pub achieved_rps: f64,
    /// Latest the scheduler handed a request over, after its intended time.
    pub max_send_lag_ms: f64,
    /// Sends more than 10 ms late (the generator could not keep up).
    pub late_sends: u64,
    pub unexpected_errors: u64,
    /// `(unexpected_errors + dropped) / scheduled`.
    pub error_ratio: f64,
    /// All requests of the phase.
    pub all: Percentiles,
    pub ops: Vec<OpSummary>,
    /// Push latency of the live feed during the phase (mix only).
    pub push_ms: Option<Percentiles>,
    pub push_samples: u64,
    /// Whether the phase met the p99 and error limits.
    pub sustainable: bool,
    /// The server's CPU per completed request over the phase, in µs: its
    /// `process_cpu_seconds_total` (`/metrics`) before and after, over `completed`.
    /// Everything the server did in that time counts (snapshots, upkeep). `None` when it
    /// does not report it.
    pub server_cpu_us: Option<f64>,
    /// The generator's own CPU per completed request over the phase, in µs.
    pub generator_cpu_us: Option<f64>,
    #[serde(skip)]
    pub histograms: Vec<(String, Histogram<u64>)>,
}

/// Runs phases against one world.
pub struct Driver {
    pub world: Arc<World>,
    pub options: Options,
    phases_run: u64,
}

impl Driver {
    pub fn new(world: Arc<World>, options: Options) -> Driver {
        Driver {
            world,
            options,
            phases_run: 0,
        }
    }

    /// One phase at `rate` for `duration`.
    pub async fn phase(&mut self, workload: Workload, rate: f64, duration: Duration) -> Phase {
        self.phases_run += 1;
        let recorder = Arc::new(Recorder::default());
        let scheduled = (rate * duration.as_secs_f64()).round() as u64;
        let bar = self.progress_bar(workload, rate, scheduled);
        let _ = self.world.push.take();
        let cpu_before = self.cpu_seconds().await;
        let started = Instant::now();
        let scheduler = {
            let (world, recorder) = (self.world.clone(), recorder.clone());
            let handle = tokio::runtime::Handle::current();
            let settings = Schedule {
                workload,
                rate,
                scheduled,
                seed: mix64(self.options.seed ^ self.phases_run.rotate_left(40)),
                max_outstanding: self.options.max_outstanding,
                timeout: self.options.request_timeout,
                mix: self.options.mix,
                tick: self.options.send_tick,
            };
            std::thread::Builder::new()
                .name("loadtest-scheduler".to_owned())
                .spawn(move || schedule(settings, started, world, recorder, handle))
                .expect("scheduler thread starts")
        };
        let drain_deadline = started + duration + self.options.request_timeout + STEP_PAUSE;
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            let sent =
                recorder.sent.load(Ordering::Relaxed) + recorder.dropped.load(Ordering::Relaxed);
            bar.set_position(sent);
            bar.set_message(progress_message(&recorder, started));
            let done = scheduler.is_finished() && recorder.outstanding.load(Ordering::Relaxed) == 0;
            if done || Instant::now() > drain_deadline {
                break;
            }
        }
        let elapsed = started.elapsed().max(duration);
        bar.finish_and_clear();
        let cpu_after = self.cpu_seconds().await;
        let mut phase = self.summarise(workload, rate, duration, scheduled, &recorder, elapsed);
        let per_request = |before: Option<f64>, after: Option<f64>| {
            let spent = after? - before?;
            (phase.completed > 0 && spent >= 0.0).then(|| spent * 1e6 / phase.completed as f64)
        };
        phase.server_cpu_us = per_request(cpu_before.0, cpu_after.0);
        phase.generator_cpu_us = per_request(cpu_before.1, cpu_after.1);
        phase
    }

    /// CPU seconds so far: the server's, from its `/metrics`, and the generator's own.
    async fn cpu_seconds(&self) -> (Option<f64>, Option<f64>) {
        let server = async {
            let reply = self.world.http.get("/metrics").await.ok()?;
            if reply.status != 200 {
                return None;
            }
            server_cpu_seconds(std::str::from_utf8(&reply.body).ok()?)
        };
        let generator = metrics_process::collector::collect().cpu_seconds_total;
        (server.await, generator)
    }

    fn summarise(
        &self,
        workload: Workload,
        rate: f64,
        duration: Duration,
        scheduled: u64,
        recorder: &Recorder,
        elapsed: Duration,
    ) -> Phase {
        let completed = recorder.completed.load(Ordering::Relaxed);
        let dropped = recorder.dropped.load(Ordering::Relaxed);
        let unexpected_errors = recorder.errors();
        let error_ratio = (unexpected_errors + dropped) as f64 / scheduled.max(1) as f64;
        let all = Percentiles::of(&recorder.combined());
        let mut histograms = Vec::new();
        let mut ops = Vec::new();
        for (summary, histogram) in recorder.summaries(elapsed) {
            histograms.push((summary.op.clone(), histogram));
            ops.push(summary);
        }
        let (push_ms, push_samples) = if workload == Workload::Mix {
            let push = self.world.push.take();
            let samples = push.len();
            let percentiles = (samples > 0).then(|| Percentiles::of(&push));
            histograms.push(("ws_push".to_owned(), push));
            (percentiles, samples)
        } else {
            (None, 0)
        };
        Phase {
            workload,
            target_rps: rate,
            duration_s: duration.as_secs_f64(),
            scheduled,
            dropped,
            skipped: recorder.skipped(),
            completed,
            elapsed_s: elapsed.as_secs_f64(),
            achieved_rps: completed as f64 / elapsed.as_secs_f64(),
            max_send_lag_ms: recorder.max_lag().as_secs_f64() * 1000.0,
            late_sends: recorder.late(),
            unexpected_errors,
            error_ratio,
            sustainable: all.p99 <= self.options.p99_limit_ms
                && error_ratio <= self.options.max_error_ratio,
            server_cpu_us: None,
            generator_cpu_us: None,
            all,
            ops,
            push_ms,
            push_samples,
            histograms,
        }
    }

    /// Step mode: phases at `start_rate`, then times `step_factor`, until one is not
    /// sustainable in any of its runs (`step_retries`) or the rate passes `max_rate`; then `refine` more steps between the
    /// highest sustainable and the lowest failed rate (see [`Knee`]). Returns every
    /// step, in the order run.
    pub async fn search(&mut self, workload: Workload) -> Vec<Phase> {
        let mut steps = Vec::new();
        let mut knee = Knee::new(&self.options);
        let mut rate = Some(self.options.start_rate);
        while let Some(now) = rate {
            let phase = self.phase(workload, now, self.options.step_duration).await;
            let sustainable = phase.sustainable;
            if !self.options.quiet {
                eprintln!("{}", step_line(&phase));
            }
            steps.push(phase);
            rate = knee.next(now, sustainable);
            tokio::time::sleep(STEP_PAUSE).await;
            if !sustainable && rate.is_some() {
                if knee.has_held() {
                    self.recover(workload).await;
                } else {
                    // Nothing held yet, not even the first step's rate: probing at it
                    // cannot tell a recovered server from an overloaded one, and the
                    // rerun that comes next runs at that rate anyway.
                    self.world.http.reset_pool();
                }
            }
        }
        steps
    }

    /// After a step that failed, before the next: an overloaded step leaves a
    /// connection open for each request it had in flight, and the server may still be
    /// working off its backlog (writes the client gave up on). Start over with an empty
    /// pool, then run unrecorded phases at the first step's rate until one is
    /// sustainable again (at most [`RECOVERY_TRIES`]), so that a bisection step fails
    /// only for its own rate, not for the backlog of the step before.
    async fn recover(&mut self, workload: Workload) {
        self.world.http.reset_pool();
        for _ in 0..RECOVERY_TRIES {
            let probe = self
                .phase(workload, self.options.start_rate, RECOVERY_PHASE)
                .await;
            if probe.sustainable {
                return;
            }
            self.world.http.reset_pool();
            tokio::time::sleep(STEP_PAUSE).await;
        }
        if !self.options.quiet {
            eprintln!("  (the server did not recover within {RECOVERY_TRIES} tries; going on)");
        }
    }

    fn progress_bar(&self, workload: Workload, rate: f64, scheduled: u64) -> ProgressBar {
        let bar = ProgressBar::new(scheduled);
        if self.options.quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let label = match workload {
            Workload::Baseline => "healthz",
            Workload::Mix => "mix",
        };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{label:>7} @ {rate:>7.0}/s [{{bar:30}}] {{pos}}/{{len}} {{elapsed}} {{msg}}"
            ))
            .expect("valid progress template")
            .progress_chars("=> "),
        );
        bar
    }
}

/// `process_cpu_seconds_total` in a Prometheus text page.
pub fn server_cpu_seconds(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix("process_cpu_seconds_total ")?
            .trim()
            .parse()
            .ok()
    })
}

/// One line per step, for the terminal.
pub fn step_line(phase: &Phase) -> String {
    format!(
        "{:?} step {:>8.0}/s: achieved {:>8.0}/s, p50 {:.2} ms, p99 {:.2} ms, errors+dropped {:.3}%, {} -> {}",
        phase.workload,
        phase.target_rps,
        phase.achieved_rps,
        phase.all.p50,
        phase.all.p99,
        phase.error_ratio * 100.0,
        cpu_line(phase),
        if phase.sustainable {
            "sustainable"
        } else {
            "NOT sustainable"
        }
    )
}

/// `CPU/request: server 92 µs, generator 51 µs` (`-` for what was not measured).
pub fn cpu_line(phase: &Phase) -> String {
    let us = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} µs"));
    format!(
        "CPU/request: server {}, generator {}",
        us(phase.server_cpu_us),
        us(phase.generator_cpu_us)
    )
}

fn progress_message(recorder: &Recorder, started: Instant) -> String {
    let completed = recorder.completed.load(Ordering::Relaxed);
    let rps = completed as f64 / started.elapsed().as_secs_f64().max(1e-3);
    let p99 = recorder.combined().value_at_quantile(0.99) as f64 / 1000.0;
    format!(
        "{rps:.0}/s done, p99 {p99:.1} ms, in flight {}, errors {}, dropped {}",
        recorder.outstanding.load(Ordering::Relaxed),
        recorder.errors(),
        recorder.dropped.load(Ordering::Relaxed)
    )
}

/// What the scheduler thread needs.
struct Schedule {
    workload: Workload,
    rate: f64,
    scheduled: u64,
    seed: u64,
    max_outstanding: usize,
    timeout: Duration,
    mix: crate::options::Mix,
    tick: Duration,
}

/// The scheduler thread: sleeps until each intended time (a thread sleep is precise to
/// tens of microseconds, unlike the runtime's millisecond timer), or with a tick until
/// the end of the tick that time falls in, then spawns every request that is due. It
/// never waits for answers.
fn schedule(
    settings: Schedule,
    started: Instant,
    world: Arc<World>,
    recorder: Arc<Recorder>,
    handle: tokio::runtime::Handle,
) {
    let interval = 1.0 / settings.rate;
    let intended = |i: u64| started + Duration::from_secs_f64(i as f64 * interval);
    let mut i = 0;
    while i < settings.scheduled {
        let next = intended(i);
        let now = Instant::now();
        if next > now {
            let wake = wake_at(started, next, settings.tick);
            std::thread::sleep(wake.saturating_duration_since(now));
        }
        let now = Instant::now();
        while i < settings.scheduled {
            let due = intended(i);
            if due > now {
                break;
            }
            send(&settings, i, due, &world, &recorder, &handle);
            i += 1;
        }
    }
}

/// When to wake for a request due at `next`: then, or with a tick the end of the tick
/// (counted from `started`) that `next` falls in.
fn wake_at(started: Instant, next: Instant, tick: Duration) -> Instant {
    if tick.is_zero() {
        return next;
    }
    let ticks = (next - started).as_secs_f64() / tick.as_secs_f64();
    started + Duration::from_secs_f64(ticks.ceil() * tick.as_secs_f64())
}

/// Spawn request `i`, due at `intended`, unless too many are in flight.
fn send(
    settings: &Schedule,
    i: u64,
    intended: Instant,
    world: &Arc<World>,
    recorder: &Arc<Recorder>,
    handle: &tokio::runtime::Handle,
) {
    recorder.note_lag(Instant::now().saturating_duration_since(intended));
    if recorder.outstanding.load(Ordering::Relaxed) >= settings.max_outstanding {
        recorder.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    recorder.outstanding.fetch_add(1, Ordering::Relaxed);
    recorder.sent.fetch_add(1, Ordering::Relaxed);
    let r = mix64(settings.seed.wrapping_add(i));
    let draw = match settings.workload {
        Workload::Baseline => Draw::Healthz,
        Workload::Mix => Draw::pick(&settings.mix, r),
    };
    let (world, recorder, timeout) = (world.clone(), recorder.clone(), settings.timeout);
    handle.spawn(async move {
        let operation = counting_bytes(execute(&world, draw, mix64(r)));
        let ((kind, outcome), received) = match tokio::time::timeout(timeout, operation).await {
            Ok(done) => done,
            Err(_) => ((kind_of(draw), Outcome::Error("timeout".to_owned())), 0),
        };
        recorder.record(kind, outcome, intended.elapsed(), received);
        recorder.outstanding.fetch_sub(1, Ordering::Relaxed);
    });
}

/// The kind a draw is counted under when it has no answer: a walk-in's as a join, even
/// one that read the queue instead, and an advance's as a call, whatever its step.
fn kind_of(draw: Draw) -> OpKind {
    match draw {
        Draw::Healthz => OpKind::Healthz,
        Draw::Availability => OpKind::Availability,
        Draw::Establishment => OpKind::Establishment,
        Draw::Book => OpKind::Book,
        Draw::BookContended => OpKind::BookContended,
        Draw::Cancel => OpKind::Cancel,
        Draw::Reschedule => OpKind::Reschedule,
        Draw::QueueJoin => OpKind::QueueJoin,
        Draw::QueueAdvance => OpKind::QueueCall,
    }
}

/// Step mode's search for the highest sustainable rate: up by `step_factor` until a
/// step fails, then `refine` bisections (geometric: the midpoint of 10,000 and 12,000
/// is 10,954) between the highest rate that held and the lowest that did not. Each
/// bisection halves the uncertainty: with a factor of 1.2 and 3 refinements the answer
/// is within 2.3% of the knee instead of 20%. A failed step is run again at the same
/// rate up to `retries` times and fails only if every run does, so one stall of the box
/// does not end the search; a rate counts as held when one of its runs held.
#[derive(Clone, Copy, Debug)]
pub struct Knee {
    factor: f64,
    max_rate: f64,
    refinements_left: u32,
    held: Option<f64>,
    failed: Option<f64>,
    retries: u32,
    /// The rate whose failures are being retried, and how many more runs it gets.
    retrying: Option<(f64, u32)>,
}

impl Knee {
    pub fn new(options: &Options) -> Knee {
        Knee {
            factor: options.step_factor,
            max_rate: options.max_rate,
            refinements_left: options.refine,
            held: None,
            failed: None,
            retries: options.step_retries,
            retrying: None,
        }
    }

    /// Whether any step so far was sustainable.
    pub fn has_held(&self) -> bool {
        self.held.is_some()
    }

    /// Record how the step at `rate` went; the next rate to try, or `None` when done.
    pub fn next(&mut self, rate: f64, sustainable: bool) -> Option<f64> {
        if !sustainable {
            let left = match self.retrying {
                Some((retried, left)) if retried == rate => left,
                _ => self.retries,
            };
            if left > 0 {
                self.retrying = Some((rate, left - 1));
                return Some(rate);
            }
        }
        if sustainable {
            self.held = Some(self.held.map_or(rate, |h| h.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
        match (self.held, self.failed) {
            (_, None) => Some(rate * self.factor).filter(|next| *next <= self.max_rate),
            (None, Some(_)) => None,
            (Some(held), Some(failed)) => {
                if self.refinements_left == 0 {
                    return None;
                }
                self.refinements_left -= 1;
                Some((held * failed).sqrt())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_cpu_seconds_are_read_from_its_metrics_page() {
        let page = "# HELP process_cpu_seconds_total Total user and system CPU time.\n\
                    # TYPE process_cpu_seconds_total gauge\n\
                    process_cpu_seconds_total_other 9\n\
                    process_cpu_seconds_total 12.345678\n\
                    process_threads 7\n";
        assert_eq!(server_cpu_seconds(page), Some(12.345678));
        assert_eq!(server_cpu_seconds("process_threads 7\n"), None);
    }

    fn knee(refine: u32) -> Knee {
        Knee {
            factor: 1.2,
            max_rate: 200_000.0,
            refinements_left: refine,
            held: None,
            failed: None,
            retries: 0,
            retrying: None,
        }
    }

    /// The rates a search tries against a server whose true knee is `limit`.
    fn tried(knee: Knee, start: f64, limit: f64) -> Vec<f64> {
        tried_with(knee, start, |rate, _| rate <= limit)
    }

    /// The rates a search tries when the `n`th step (from 0), at `rate`, holds if
    /// `holds(rate, n)`.
    fn tried_with(mut knee: Knee, start: f64, holds: impl Fn(f64, usize) -> bool) -> Vec<f64> {
        let mut rates = vec![start];
        loop {
            let rate = *rates.last().unwrap();
            match knee.next(rate, holds(rate, rates.len() - 1)) {
                Some(next) => rates.push(next),
                None => return rates,
            }
        }
    }

    #[test]
    fn a_failed_step_is_run_again_and_a_stall_does_not_end_the_search() {
        let retrying = Knee {
            retries: 1,
            ..knee(0)
        };
        // The second step (12,000) stalls once; its rerun holds and the search goes on
        // to the true knee at 15,000.
        let rates = tried_with(retrying, 10_000.0, |rate, n| n != 1 && rate <= 15_000.0);
        let rounded: Vec<u64> = rates.iter().map(|r| r.round() as u64).collect();
        assert_eq!(rounded, [10_000, 12_000, 12_000, 14_400, 17_280, 17_280]);
        // A rate that fails every run fails: once retried, the search ends there.
        assert_eq!(
            tried_with(retrying, 10_000.0, |_, _| false),
            [10_000.0, 10_000.0]
        );
        // Nothing has held before a failed first step's rerun (so no recovery probe
        // runs before it); after a rate held, something has.
        let mut first = retrying;
        assert_eq!(first.next(10_000.0, false), Some(10_000.0));
        assert!(!first.has_held());
        assert_eq!(first.next(10_000.0, true), Some(12_000.0));
        assert!(first.has_held());
        // Each failed rate gets its own reruns, bisections included.
        let bisecting = Knee {
            retries: 2,
            ..knee(1)
        };
        let rates = tried_with(bisecting, 10_000.0, |rate, _| rate <= 13_000.0);
        let rounded: Vec<u64> = rates.iter().map(|r| r.round() as u64).collect();
        assert_eq!(
            rounded,
            [
                10_000, 12_000, 14_400, 14_400, 14_400, 13_145, 13_145, 13_145
            ]
        );
        // A bisection's rerun that holds by chance counts as held (the answer is
        // optimistic): the next bisection is above it, between 13,145 and 14,400.
        let once = Knee {
            retries: 1,
            ..knee(2)
        };
        let rates = tried_with(once, 10_000.0, |rate, n| rate <= 13_000.0 || n == 5);
        let rounded: Vec<u64> = rates.iter().map(|r| r.round() as u64).collect();
        assert_eq!(
            rounded,
            [
                10_000, 12_000, 14_400, 14_400, 13_145, 13_145, 13_758, 13_758
            ]
        );
    }

    #[test]
    fn the_search_rises_by_the_factor_then_bisects_toward_the_knee() {
        let rates = tried(knee(3), 10_000.0, 13_000.0);
        let rounded: Vec<u64> = rates.iter().map(|r| r.round() as u64).collect();
        // 10,000 and 12,000 hold, 14,400 fails; then sqrt(12,000 x 14,400) = 13,145
        // fails, 12,560 holds, 12,849 holds.
        assert_eq!(rounded, [10_000, 12_000, 14_400, 13_145, 12_560, 12_849]);
        let best = rates
            .iter()
            .copied()
            .filter(|r| *r <= 13_000.0)
            .fold(0.0, f64::max);
        assert!(best / 13_000.0 > 0.977, "within 2.3% of the knee: {best}");
    }

    #[test]
    fn no_refinement_stops_at_the_first_failure_and_a_failed_first_step_ends_it() {
        assert_eq!(tried(knee(0), 10_000.0, 11_000.0), [10_000.0, 12_000.0]);
        assert_eq!(tried(knee(3), 10_000.0, 5_000.0), [10_000.0]);
    }

    #[test]
    fn the_search_never_passes_the_max_rate() {
        let mut capped = knee(3);
        capped.max_rate = 15_000.0;
        assert_eq!(
            tried(capped, 10_000.0, f64::INFINITY),
            [10_000.0, 12_000.0, 14_400.0]
        );
    }

    #[test]
    fn a_tick_wakes_at_its_end_never_before_the_request_is_due() {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let ms = Duration::from_millis(1);
        assert_eq!(wake_at(t0, at(300), Duration::ZERO), at(300));
        assert_eq!(wake_at(t0, at(300), ms), at(1000));
        assert_eq!(wake_at(t0, at(1000), ms), at(1000));
        assert_eq!(wake_at(t0, at(1001), ms), at(2000));
        for us in [1, 999, 1500, 2999, 123_456] {
            let wake = wake_at(t0, at(us), ms);
            assert!(wake >= at(us) && wake - at(us) < ms, "{us} us");
        }
    }
}
