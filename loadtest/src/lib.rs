//! `navaro-loadtest`: an open-loop load generator for the Navaro HTTP and WebSocket API.
//!
//! [`run`] does a whole run against a server that is already up:
//!
//! 1. [`world`] provisions establishments (staff, services, hours), owners and customers
//!    through the public API, and seeds a few bookings;
//! 2. [`live`] opens WebSocket subscribers that measure push latency;
//! 3. [`driver`] sends `/healthz` (the baseline: the HTTP stack alone) and then the
//!    operation mix of [`ops`] at a constant arrival rate, or in step mode at rising
//!    rates until p99 or the error rate passes its limit; [`stats`] keeps one
//!    HdrHistogram per operation, with latency measured from each request's intended
//!    send time;
//! 4. [`verify`] lists every touched day's bookings and checks that nothing overlaps and
//!    every 201 is still there;
//! 5. [`report`] renders the terminal table and the JSON file, [`plot`] the SVG of
//!    latency percentiles and, in step mode, [`throughput`] the SVG of throughput and
//!    p99 against offered rate (also drawn from a saved report by [`replot`]).
//!
//! The binary (`src/main.rs`) only parses [`Options`] and calls [`run`]; the end-to-end
//! test in `gateway/tests/loadtest.rs` calls [`run`] in-process against the real server.

pub mod driver;
pub mod http;
pub mod live;
pub mod ops;
pub mod options;
pub mod plot;
pub mod report;
pub mod stats;
pub mod throughput;
pub mod verify;
pub mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use jiff::Timestamp;
use tokio::sync::watch;

use crate::driver::{Driver, Workload};
use crate::http::Http;
use crate::ops::{Draw, Outcome, execute};
pub use crate::options::Options;
use crate::plot::Curve;
use crate::report::{Comparison, Machine, Push, Report, Run, Settings};
use crate::world::World;

/// How long [`run`] waits for the server's `/healthz` to answer 200.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// A whole run: provision, load, verify, report (and write the JSON and SVG files when
/// the options name them).
pub async fn run(options: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !options.step || options.step_factor > 1.0,
        "--step-factor must be greater than 1 (it is {})",
        options.step_factor
    );
    anyhow::ensure!(
        options.step || options.throughput_plot.is_none(),
        "--throughput-plot needs --step: a fixed-rate run offers one rate"
    );
    let date = Timestamp::now().to_string();
    let http = Http::new(&options.url)?.reading(options.accept_encoding.header());
    wait_healthy(&http).await?;
    say(
        &options,
        "provisioning establishments, staff, services and customers",
    );
    let world = Arc::new(World::provision(&http, &options).await?);
    seed(&world, options.seed_bookings).await?;
    let (stop, stopped) = watch::channel(false);
    let subscribers = live::subscribe(&world, options.subscribers, stopped).await?;
    let mut driver = Driver::new(world.clone(), options.clone());
    let first_rate = if options.step {
        options.start_rate
    } else {
        options.rate
    };
    warm_up(&mut driver, first_rate).await;
    let baseline = if options.no_baseline {
        None
    } else {
        let baseline = measure(&mut driver, Workload::Baseline).await;
        // Each workload starts from the same connections: none left over from the
        // baseline's last step, and a fresh warm-up.
        world.http.reset_pool();
        warm_up(&mut driver, first_rate).await;
        Some(baseline)
    };
    let mix = measure(&mut driver, Workload::Mix).await;
    let _ = stop.send(true);
    for subscriber in subscribers {
        let _ = subscriber.await;
    }
    let verification = if options.no_verify {
        None
    } else {
        say(&options, "verifying bookings through the API");
        Some(verify::verify(&world).await)
    };
    let report = Report {
        date,
        machine: Machine::this(),
        url: options.url.clone(),
        settings: Settings::of(&options),
        comparison: compare(baseline.as_ref(), &mix, options.step),
        baseline,
        mix,
        push: Push {
            definition: report::PUSH_DEFINITION,
            subscribers: options.subscribers,
            frames: world.push.frames.load(std::sync::atomic::Ordering::Relaxed),
            matched: world
                .push
                .matched
                .load(std::sync::atomic::Ordering::Relaxed),
            ended_early: world.push.ended.lock().unwrap().clone(),
        },
        verification,
    };
    if let Some(path) = &options.json {
        report.write_json(path)?;
    }
    if let Some(path) = &options.plot {
        write_plot(&report, path)?;
    }
    let beside_plot = options.plot.as_deref().filter(|_| options.step);
    if let Some(path) = options
        .throughput_plot
        .clone()
        .or_else(|| beside_plot.map(throughput::beside))
    {
        throughput::Chart::of_report(&report)?.write_svg(&path)?;
    }
    Ok(report)
}

/// `--from-report`: draw the throughput plot of a saved step report, sending no load.
/// Returns where it was written.
pub fn replot(
    report: &std::path::Path,
    to: Option<&std::path::Path>,
) -> anyhow::Result<std::path::PathBuf> {
    let text =
        std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    let chart = throughput::Chart::of_saved(&text).with_context(|| report.display().to_string())?;
    let path = to.map_or_else(|| throughput::beside(report), std::path::Path::to_path_buf);
    chart.write_svg(&path)?;
    Ok(path)
}

/// Unrecorded mix load at the first measured rate: connections opened, actors started,
/// caches filled before anything is measured.
async fn warm_up(driver: &mut Driver, rate: f64) {
    let options = driver.options.clone();
    if !options.warmup.is_zero() {
        say(&options, "warming up (not recorded)");
        driver.phase(Workload::Mix, rate, options.warmup).await;
    }
}

async fn measure(driver: &mut Driver, workload: Workload) -> Run {
    let options = driver.options.clone();
    let steps = if options.step {
        driver.search(workload).await
    } else {
        vec![driver.phase(workload, options.rate, options.duration).await]
    };
    Run::new(steps, options.step)
}

fn compare(baseline: Option<&Run>, mix: &Run, step_mode: bool) -> Option<Comparison> {
    let (base_run, base, this) = (baseline?, baseline?.phase()?, mix.phase()?);
    let throughput_ratio = if step_mode {
        mix.sustainable_rps? / base_run.sustainable_rps?
    } else {
        this.achieved_rps / base.achieved_rps
    };
    Some(Comparison {
        throughput_ratio,
        latency_ratio: this.all.ratio_to(&base.all),
    })
}

fn write_plot(report: &Report, path: &std::path::Path) -> anyhow::Result<()> {
    let mut curves = Vec::new();
    let base = report.baseline.as_ref().and_then(Run::phase);
    for (label, histogram) in base.iter().flat_map(|p| p.histograms.iter()) {
        curves.push(Curve {
            label: format!("{label} (baseline)"),
            histogram,
            dashed: true,
        });
    }
    let mix = report.mix.phase();
    for (label, histogram) in mix.iter().flat_map(|p| p.histograms.iter()) {
        curves.push(Curve {
            label: label.clone(),
            histogram,
            dashed: label == "ws_push",
        });
    }
    let title = format!(
        "Navaro: mix at {}/s, /healthz at {}/s; {} ({} CPUs), {}",
        mix.map_or("-".to_owned(), |p| format!("{:.0}", p.target_rps)),
        base.map_or("-".to_owned(), |p| format!("{:.0}", p.target_rps)),
        report.machine.cpu_model,
        report.machine.cpus,
        report.date.get(..10).unwrap_or(&report.date)
    );
    plot::write_svg(path, &title, &curves)
}

/// Seeding bookings in flight at once: each holds a connection, and thousands at once
/// ran out of open files (`--seed-bookings 3000` over 20 establishments).
const SEED_IN_FLIGHT: usize = 64;

/// A few uncontended bookings per establishment, so cancels and reschedules have work
/// from the start of the first phase (or many, for a long history).
async fn seed(world: &World, per_establishment: usize) -> anyhow::Result<()> {
    let attempts = (0..world.establishments.len() * per_establishment).map(|n| {
        // The draw's establishment is `r % establishments`, so `n` walks through all.
        let r = n as u64;
        async move { execute(world, Draw::Book, r).await }
    });
    let mut results = futures::stream::iter(attempts).buffer_unordered(SEED_IN_FLIGHT);
    while let Some((_, outcome)) = results.next().await {
        if outcome != Outcome::Ok {
            anyhow::bail!("seeding bookings failed: {outcome:?}");
        }
    }
    Ok(())
}

async fn wait_healthy(http: &Http) -> anyhow::Result<()> {
    let deadline = Instant::now() + HEALTHY_TIMEOUT;
    loop {
        match http.get("/healthz").await {
            Ok(reply) if reply.status == 200 => return Ok(()),
            _ if Instant::now() > deadline => {
                return Err(anyhow::anyhow!("no healthy server")).context(http.base().to_owned());
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn say(options: &Options, what: &str) {
    if !options.quiet {
        eprintln!("navaro-loadtest: {what}");
    }
}
