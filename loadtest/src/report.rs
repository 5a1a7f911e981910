//! The report: what ran where, the baseline and mix phases, their comparison, push
//! latency and verification; rendered as a terminal table and as JSON.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;

use crate::driver::Phase;
use crate::options::{AcceptEncoding, AvailabilityForm, Mix, Options};
use crate::stats::{OpSummary, Percentiles};
use crate::verify::Verification;

/// How push latency is measured, stated in every report.
pub const PUSH_DEFINITION: &str = "from the instant the write (uncontended booking or queue join) was \
    handed to the HTTP client to the instant its booking.confirmed / queue.joined frame was \
    read by an owner's live-feed subscriber on the same machine";

/// The whole report, also the JSON file.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When the run started (UTC).
    pub date: String,
    pub machine: Machine,
    pub url: String,
    pub settings: Settings,
    /// The `/healthz` runs (absent with `--no-baseline`).
    pub baseline: Option<Run>,
    pub mix: Run,
    pub comparison: Option<Comparison>,
    pub push: Push,
    pub verification: Option<Verification>,
}

/// Where the run happened; the server and the generator share it.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub os: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            os: std::env::consts::OS.to_owned(),
        }
    }
}

/// The run's shape, so the figures can be reproduced.
#[derive(Debug, Serialize)]
pub struct Settings {
    pub mode: &'static str,
    pub establishments: usize,
    pub staff: usize,
    pub customers: usize,
    pub subscribers: usize,
    pub mix: Mix,
    pub availability_form: AvailabilityForm,
    /// The `Accept-Encoding` of the mix's reads.
    pub accept_encoding: AcceptEncoding,
    pub contention: u32,
    /// Queued customers from which a walk-in reads the queue instead of joining; `0`
    /// never.
    pub queue_balk: usize,
    pub p99_limit_ms: f64,
    pub max_error_ratio: f64,
    pub max_outstanding: usize,
    /// Requests due within one tick of this length were sent together at its end.
    pub send_tick_ms: f64,
    /// Worker threads of the runtime the generator ran on (the binary's `--threads`, or
    /// an in-process caller's own runtime).
    pub threads: usize,
    /// Step mode: the factor between rising steps and the bisections after the first
    /// failure.
    pub step_factor: f64,
    pub refine: u32,
    /// Step mode: how many more runs a failed step got at its rate before it counted.
    pub step_retries: u32,
}

impl Settings {
    pub fn of(options: &Options) -> Settings {
        Settings {
            mode: if options.step { "step" } else { "fixed" },
            establishments: options.establishments,
            staff: options.staff,
            customers: options.customers,
            subscribers: options.subscribers,
            mix: options.mix,
            availability_form: options.availability_form,
            accept_encoding: options.accept_encoding,
            contention: options.contention,
            queue_balk: options.queue_balk,
            p99_limit_ms: options.p99_limit_ms,
            max_error_ratio: options.max_error_ratio,
            max_outstanding: options.max_outstanding,
            send_tick_ms: options.send_tick.as_secs_f64() * 1e3,
            threads: tokio::runtime::Handle::try_current()
                .map_or(options.threads, |runtime| runtime.metrics().num_workers()),
            step_factor: options.step_factor,
            refine: options.refine,
            step_retries: options.step_retries,
        }
    }
}

/// The phases of one workload: one in fixed mode, every step in step mode.
#[derive(Debug, Serialize)]
pub struct Run {
    pub steps: Vec<Phase>,
    /// The index of the phase the tables report: the highest sustainable step, or the
    /// only phase in fixed mode.
    pub reported: Option<usize>,
    /// The highest sustainable target rate (step mode) or `None`.
    pub sustainable_rps: Option<f64>,
}

impl Run {
    pub fn new(steps: Vec<Phase>, step_mode: bool) -> Run {
        // The highest sustainable rate, wherever it came in the search's order.
        let best = steps
            .iter()
            .enumerate()
            .filter(|(_, p)| p.sustainable)
            .max_by(|(_, a), (_, b)| a.target_rps.total_cmp(&b.target_rps))
            .map(|(i, _)| i);
        let reported = if step_mode {
            best
        } else {
            steps.len().checked_sub(1)
        };
        Run {
            sustainable_rps: best.filter(|_| step_mode).map(|i| steps[i].target_rps),
            reported,
            steps,
        }
    }

    pub fn phase(&self) -> Option<&Phase> {
        self.reported.map(|i| &self.steps[i])
    }
}

/// The mix against the baseline of the same run.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// Mix throughput over baseline throughput: the highest sustainable rates in step
    /// mode, the achieved rates of the two phases in fixed mode.
    pub throughput_ratio: f64,
    /// Each percentile of all mix requests over the same percentile of `/healthz`.
    pub latency_ratio: Percentiles,
}

/// Live-feed health over the whole run.
#[derive(Debug, Serialize)]
pub struct Push {
    pub definition: &'static str,
    pub subscribers: usize,
    pub frames: u64,
    pub matched: u64,
    /// Subscribers that ended before the run did, by reason.
    pub ended_early: std::collections::BTreeMap<String, u64>,
}

impl Report {
    /// Write the JSON file.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Navaro load test, {}, {} ({} CPUs, {}), {}",
            self.date, m.cpu_model, m.cpus, m.os, self.url
        );
        let s = &self.settings;
        let _ = writeln!(
            out,
            "mode {}: {} establishments x {} staff, {} customers, {} subscribers, {}, availability as {}, reads accepting {}, {}, generator on {} thread(s); p99 limit {} ms, error limit {}%",
            s.mode,
            s.establishments,
            s.staff,
            s.customers,
            s.subscribers,
            match s.queue_balk {
                0 => "walk-ins join every queue".to_owned(),
                n => format!("walk-ins read a queue of {n} instead of joining"),
            },
            s.availability_form
                .to_possible_value()
                .expect("every form has a name")
                .get_name(),
            s.accept_encoding
                .to_possible_value()
                .expect("every encoding has a name")
                .get_name(),
            if s.send_tick_ms > 0.0 {
                format!("sends batched every {} ms", s.send_tick_ms)
            } else {
                "each request sent at its instant".to_owned()
            },
            s.threads,
            s.p99_limit_ms,
            s.max_error_ratio * 100.0
        );
        if s.mode == "step" && s.step_retries > 0 {
            let _ = writeln!(
                out,
                "a failed step is run again up to {} time(s) at its rate and fails only if every run does",
                s.step_retries
            );
        }
        out.push('\n');
        for (name, run) in [
            ("baseline /healthz", self.baseline.as_ref()),
            ("mix", Some(&self.mix)),
        ] {
            let Some(run) = run else { continue };
            if run.steps.len() > 1 || s.mode == "step" {
                for phase in &run.steps {
                    let _ = writeln!(out, "  {}", crate::driver::step_line(phase));
                }
            }
            match (run.phase(), run.sustainable_rps) {
                (Some(p), Some(rate)) => {
                    let _ = writeln!(
                        out,
                        "{name}: highest sustainable rate {rate:.0}/s (achieved {:.0}/s); {}",
                        p.achieved_rps,
                        crate::driver::cpu_line(p)
                    );
                }
                (Some(p), None) => {
                    let _ = writeln!(
                        out,
                        "{name}: offered {:.0}/s, achieved {:.0}/s; {}",
                        p.target_rps,
                        p.achieved_rps,
                        crate::driver::cpu_line(p)
                    );
                }
                (None, _) => {
                    let _ = writeln!(out, "{name}: no sustainable step (even the first failed)");
                }
            }
        }
        if let Some(c) = &self.comparison {
            let _ = writeln!(
                out,
                "mix / baseline throughput: {:.2}; latency p50 x{:.2}, p90 x{:.2}, p99 x{:.2}, p99.9 x{:.2}",
                c.throughput_ratio,
                c.latency_ratio.p50,
                c.latency_ratio.p90,
                c.latency_ratio.p99,
                c.latency_ratio.p999
            );
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>9} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "operation",
            "requests",
            "ok",
            "expected",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "KB/resp"
        );
        if let Some(phase) = self.baseline.as_ref().and_then(Run::phase) {
            for op in &phase.ops {
                row(&mut out, op);
            }
        }
        if let Some(phase) = self.mix.phase() {
            for op in &phase.ops {
                row(&mut out, op);
            }
            let expected: u64 = phase.ops.iter().flat_map(|o| o.expected.values()).sum();
            let all = OpSummary {
                op: "all (mix)".to_owned(),
                requests: phase.completed,
                ok: phase.ops.iter().map(|o| o.ok).sum(),
                expected: [("all".to_owned(), expected)].into(),
                errors: [("all".to_owned(), phase.unexpected_errors)].into(),
                rps: phase.achieved_rps,
                latency_ms: phase.all,
                response_bytes: phase
                    .ops
                    .iter()
                    .map(|o| o.response_bytes * o.requests as f64)
                    .sum::<f64>()
                    / phase.completed.max(1) as f64,
            };
            row(&mut out, &all);
            if let Some(push) = &phase.push_ms {
                let _ = writeln!(
                    out,
                    "{:<16} {:>9} {:>9} {:>9} {:>7} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                    "ws push",
                    phase.push_samples,
                    "",
                    "",
                    "",
                    "",
                    push.p50,
                    push.p90,
                    push.p99,
                    push.p999,
                    push.max
                );
            }
            out.push('\n');
            for op in &phase.ops {
                for (what, n) in op.expected.iter() {
                    let _ = writeln!(out, "expected  {:<16} {what}: {n}", op.op);
                }
                for (what, n) in op.errors.iter() {
                    let _ = writeln!(out, "ERROR     {:<16} {what}: {n}", op.op);
                }
            }
            for (why, n) in &phase.skipped {
                let _ = writeln!(out, "skipped   {why}: {n}");
            }
            let _ = writeln!(
                out,
                "generator: {} dropped (over {} in flight), {} sends more than 10 ms late, max send lag {:.1} ms",
                phase.dropped, s.max_outstanding, phase.late_sends, phase.max_send_lag_ms
            );
        }
        let p = &self.push;
        let _ = writeln!(
            out,
            "live feed: {} subscribers, {} frames, {} matched to a write; ended early: {:?}\n  push latency is measured {}",
            p.subscribers, p.frames, p.matched, p.ended_early, p.definition
        );
        match &self.verification {
            Some(v) => {
                let _ = writeln!(
                    out,
                    "verification {}: {} days listed, {} bookings listed; {} created (expect {} confirmed, {} cancelled, {} unknown); {} overlaps, {} missing or changed, {} list errors",
                    if v.passed { "PASSED" } else { "FAILED" },
                    v.days_listed,
                    v.bookings_listed,
                    v.created,
                    v.expected_confirmed,
                    v.expected_cancelled,
                    v.unknown,
                    v.overlaps,
                    v.missing,
                    v.list_errors
                );
                for finding in &v.findings {
                    let _ = writeln!(out, "  {finding}");
                }
            }
            None => out.push_str("verification skipped\n"),
        }
        out
    }
}

fn row(out: &mut String, op: &OpSummary) {
    let l = &op.latency_ms;
    let _ = writeln!(
        out,
        "{:<16} {:>9} {:>9} {:>9} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        op.op,
        op.requests,
        op.ok,
        op.expected.values().sum::<u64>(),
        op.errors.values().sum::<u64>(),
        op.rps,
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max,
        op.response_bytes / 1000.0
    );
}
