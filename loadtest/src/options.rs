//! Command-line options, shared by the binary and by in-process callers (tests).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

/// What to provision, how hard to push and where to write the report.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "navaro-loadtest",
    about = "Open-loop load generator for the Navaro API",
    long_about = "Provisions its own establishments, staff, services and customers through the \
                  public API, drives a booking + queue mix at a constant arrival rate (latency \
                  measured from the intended send time), compares it with /healthz on the same \
                  server, verifies the bookings afterwards and writes a report."
)]
pub struct Options {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Establishments to create.
    #[arg(long, default_value_t = 20)]
    pub establishments: usize,
    /// Staff members per establishment (each one also a queue lane).
    #[arg(long, default_value_t = 4)]
    pub staff: usize,
    /// Customer accounts to register; every booking and ticket belongs to one of them.
    #[arg(long, default_value_t = 200)]
    pub customers: usize,
    /// WebSocket subscribers (owners on establishment live feeds) measuring push latency.
    #[arg(long, default_value_t = 20)]
    pub subscribers: usize,
    /// Bookings made per establishment during provisioning, so that cancels and
    /// reschedules have work from the first second.
    #[arg(long, default_value_t = 16)]
    pub seed_bookings: usize,
    /// Arrival rate of the mix (requests per second) outside step mode.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Length of the measured phase (baseline and mix each) outside step mode.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unrecorded mix load before measuring, at the first measured rate.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Step mode: raise the rate step by step until a step is not sustainable, for the
    /// baseline and for the mix, and report the highest sustainable rate of each.
    #[arg(long)]
    pub step: bool,
    /// First rate in step mode.
    #[arg(long, default_value_t = 1000.0)]
    pub start_rate: f64,
    /// Each step's rate is the previous one times this.
    #[arg(long, default_value_t = 1.25)]
    pub step_factor: f64,
    /// Step mode: after the first step that is not sustainable, this many more steps
    /// bisect between the highest rate that held and the lowest that did not.
    #[arg(long, default_value_t = 3)]
    pub refine: u32,
    /// Step mode: a step that is not sustainable is run this many more times at the same
    /// rate, and counts as failed only if every run fails. On two shared cores a single
    /// stall of the box ends a search anywhere: one evening's `/healthz` searches ended
    /// at 14k and at 29k with the same binaries.
    #[arg(long, default_value_t = 1)]
    pub step_retries: u32,
    /// Step mode never goes above this rate.
    #[arg(long, default_value_t = 200_000.0)]
    pub max_rate: f64,
    /// Length of each step.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub step_duration: Duration,
    /// A step is sustainable only while the p99 of all its requests stays at or below this.
    #[arg(long, default_value_t = 100.0)]
    pub p99_limit_ms: f64,
    /// A step is sustainable only while unexpected errors plus dropped requests stay at
    /// or below this fraction of what was scheduled.
    #[arg(long, default_value_t = 0.01)]
    pub max_error_ratio: f64,
    /// Most requests in flight at once; a request due beyond it is dropped and counted
    /// (the generator never slows down silently).
    #[arg(long, default_value_t = 8192)]
    pub max_outstanding: usize,
    /// Requests due within one tick of this length go out together at its end, so the
    /// generator wakes once per tick instead of once per request; `0` sends each at its
    /// own instant. Latency is measured from each request's intended instant either
    /// way, so the wait for the tick (at most its length) is in every figure. Waking
    /// once per request costs the box about as much CPU as the server's work on a
    /// `/healthz` (see the README), so the default is 1 ms.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub send_tick: Duration,
    /// A request that has no answer after this long counts as a `timeout` error.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Weights of the operations in the mix.
    #[arg(long, default_value = Mix::DEFAULT)]
    pub mix: Mix,
    /// The form of the availability answers the mix asks for: `slots`, API.md's one
    /// entry per start, or `runs`, the same starts run-length encoded (`form=runs`).
    #[arg(long, value_enum, default_value_t = AvailabilityForm::Slots)]
    pub availability_form: AvailabilityForm,
    /// The `Accept-Encoding` of the mix's reads: `gzip`, as browsers and the apps' HTTP
    /// stacks send it (the server compresses the default availability form), or
    /// `identity` for plain bodies. Compressed bodies are counted, not decoded.
    #[arg(long, value_enum, default_value_t = AcceptEncoding::Gzip)]
    pub accept_encoding: AcceptEncoding,
    /// Contended bookings aim at one popular slot this many times before moving on to
    /// the next one: one attempt wins, the rest get 409 `slot_unavailable`.
    #[arg(long, default_value_t = 4)]
    pub contention: u32,
    /// A walk-in who finds this many of the run's customers already in an
    /// establishment's queue reads the queue instead of joining it (`queue_read` in the
    /// report), so that queues stay short; `0` never balks (see the README).
    #[arg(long, default_value_t = 12)]
    pub queue_balk: usize,
    /// Skip the `/healthz` baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Skip the verification through the API after the run.
    #[arg(long)]
    pub no_verify: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the latency plot (SVG, percentile curve per operation) here. A step run
    /// also writes its throughput plot beside it (`-throughput` added to the name)
    /// unless `--throughput-plot` names another file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Step mode: write the throughput plot here (SVG: throughput achieved and p99
    /// against offered rate, for `/healthz` and the mix, every step of the search).
    #[arg(long)]
    pub throughput_plot: Option<PathBuf>,
    /// Send no load: read a JSON report a step run saved (`--json`) and draw its
    /// throughput plot, to `--throughput-plot` or beside the report (`-throughput.svg`).
    /// The percentile plot needs the histograms, which the JSON does not keep.
    #[arg(long, value_name = "REPORT.json")]
    pub from_report: Option<PathBuf>,
    /// No progress bar (also hidden automatically when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Worker threads of the generator's runtime, when run as the binary (an in-process
    /// caller drives the generator on its own runtime). On two cores shared with the
    /// server and Postgres, one thread costs the box less than two and leaves the server
    /// more (see the README); give it more when the generator has a machine of its own.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seed of the operation and target choices, so runs are repeatable.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The `form` of the mix's availability queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityForm {
    Slots,
    Runs,
}

/// The `Accept-Encoding` of the mix's reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceptEncoding {
    Gzip,
    Identity,
}

impl AcceptEncoding {
    /// The header's value; none for `identity`, which a request without the header gets.
    pub fn header(self) -> Option<&'static str> {
        match self {
            AcceptEncoding::Gzip => Some("gzip"),
            AcceptEncoding::Identity => None,
        }
    }
}

/// Relative weights of the operations the mix draws from.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Mix {
    pub availability: u32,
    pub establishment: u32,
    pub book: u32,
    pub contended: u32,
    pub cancel: u32,
    pub reschedule: u32,
    pub join: u32,
    /// Queue advances: each is the next step of one staff lane (call next, start or
    /// finish), so calls run at about a third of this weight.
    pub advance: u32,
    /// `GET /healthz`: none in the default mix; `--mix healthz=1` runs the trivial
    /// endpoint at a fixed rate, for comparing costs per request.
    pub healthz: u32,
}

impl Mix {
    /// 78% reads, 22% writes; queue advances at three times the joins so the queue
    /// drains as fast as it fills.
    pub const DEFAULT: &'static str =
        "avail=45,est=33,book=6,contended=3,cancel=2,reschedule=3,join=2,advance=6";

    /// The total of the weights.
    pub fn total(&self) -> u32 {
        self.availability
            + self.establishment
            + self.book
            + self.contended
            + self.cancel
            + self.reschedule
            + self.join
            + self.advance
            + self.healthz
    }
}

impl FromStr for Mix {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Mix> {
        let mut mix = Mix {
            availability: 0,
            establishment: 0,
            book: 0,
            contended: 0,
            cancel: 0,
            reschedule: 0,
            join: 0,
            advance: 0,
            healthz: 0,
        };
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("`{part}`: expected name=weight"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .with_context(|| format!("`{part}`: weight"))?;
            let slot = match name.trim() {
                "avail" | "availability" => &mut mix.availability,
                "est" | "establishment" => &mut mix.establishment,
                "book" => &mut mix.book,
                "contended" => &mut mix.contended,
                "cancel" => &mut mix.cancel,
                "reschedule" => &mut mix.reschedule,
                "join" => &mut mix.join,
                "advance" => &mut mix.advance,
                "healthz" => &mut mix.healthz,
                other => bail!(
                    "unknown operation `{other}` (avail, est, book, contended, cancel, reschedule, join, advance, healthz)"
                ),
            };
            *slot = weight;
        }
        if mix.total() == 0 {
            bail!("the mix has no weight");
        }
        Ok(mix)
    }
}

/// `250ms`, `10s`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .with_context(|| format!("duration `{text}`"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => bail!("duration `{text}`: unknown unit `{other}` (ms, s, m)"),
    };
    anyhow::ensure!(
        seconds.is_finite() && seconds >= 0.0,
        "duration `{text}` is negative"
    );
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mix_parses_and_weighs_100() {
        assert_eq!(Mix::from_str(Mix::DEFAULT).unwrap().total(), 100);
        assert!(Mix::from_str("book=1,nope=2").is_err());
        let healthz = Mix::from_str("healthz=1").unwrap();
        assert_eq!(healthz.total(), 1);
        assert_eq!(
            crate::ops::Draw::pick(&healthz, 12345),
            crate::ops::Draw::Healthz
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    }
}
