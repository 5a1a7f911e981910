//! The throughput plot of a step run: for `/healthz` and for the mix, the throughput
//! each step achieved and the p99 of all its requests, against the rate it offered, with
//! each workload's knee (its highest sustainable rate) and the p99 limit drawn in. Where
//! the percentile plot ([`crate::plot`]) shows one step, this one shows the whole search:
//! where throughput stops following the offered rate and where p99 leaves the limit.
//!
//! It is drawn from what the JSON report keeps of every step (offered and achieved rate,
//! p99, held or not), so a saved report (`--from-report`) draws the same plot the run
//! did. Self-contained SVG, as the percentile plot is.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::driver::Phase;
use crate::plot::{escape, format_ms};
use crate::report::{Report, Run};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 780.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 60.0;
/// Between the throughput panel and the p99 panel.
const GAP: f64 = 50.0;
const PANEL_H: f64 = (HEIGHT - TOP - BOTTOM - GAP) / 2.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
/// `/healthz` in grey, the mix in a strong colour: the mix is the figure the reader
/// came for, `/healthz` the yardstick.
const BASELINE_COLOUR: &str = "#7f7f7f";
const MIX_COLOUR: &str = "#d62728";
/// A generous width of one character of the 12 px labels, to keep a label inside the
/// panel.
const LABEL_CHAR_W: f64 = 7.0;
/// About this many ticks on the rate axes.
const TICKS: f64 = 6.0;

/// One run of one step, as the report keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct Point {
    /// The rate offered (`target_rps`).
    pub offered_rps: f64,
    /// The rate answered (`achieved_rps`).
    pub achieved_rps: f64,
    /// The p99 of all the step's requests, ms.
    pub p99_ms: f64,
    /// Whether the step met the p99 and error limits.
    pub held: bool,
}

impl Point {
    fn of(phase: &Phase) -> Point {
        Point {
            offered_rps: phase.target_rps,
            achieved_rps: phase.achieved_rps,
            p99_ms: phase.all.p99,
            held: phase.sustainable,
        }
    }
}

/// One workload's steps, ready to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    /// Every run of every step, in the order run (a failed step's rerun and the
    /// bisections included): each is drawn as a marker.
    pub runs: Vec<Point>,
    /// One point per offered rate, rising: the run the search counted at that rate (one
    /// that held, if any did: a rate counts as held if any of its runs held), else the
    /// run with the lowest p99. The lines go through these.
    pub line: Vec<Point>,
    /// The highest offered rate that held, as the report's `sustainable_rps`.
    pub knee_rps: Option<f64>,
}

impl Series {
    pub fn new(label: impl Into<String>, runs: Vec<Point>) -> Series {
        let mut line: Vec<Point> = Vec::new();
        for run in &runs {
            match line.iter_mut().find(|p| p.offered_rps == run.offered_rps) {
                Some(kept) if counts_before(run, kept) => *kept = *run,
                Some(_) => {}
                None => line.push(*run),
            }
        }
        line.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
        let knee_rps = runs
            .iter()
            .filter(|p| p.held)
            .map(|p| p.offered_rps)
            .max_by(f64::total_cmp);
        Series {
            label: label.into(),
            runs,
            line,
            knee_rps,
        }
    }
}

/// Whether `a` is the run to show at its rate rather than `b`: held before not held,
/// then the lower p99.
fn counts_before(a: &Point, b: &Point) -> bool {
    (a.held, -a.p99_ms) > (b.held, -b.p99_ms)
}

/// What the plot shows: a title, the limit and the two workloads.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    pub subtitle: String,
    pub p99_limit_ms: f64,
    /// `/healthz` first (when the run had a baseline), then the mix.
    pub series: Vec<Series>,
}

/// The part of a saved JSON report the chart reads; every other field is ignored, so
/// reports from older versions of the tool (with fewer fields) are read too.
#[derive(Debug, Deserialize)]
struct Saved {
    date: String,
    machine: SavedMachine,
    settings: SavedSettings,
    baseline: Option<SavedRun>,
    mix: SavedRun,
}

#[derive(Debug, Deserialize)]
struct SavedMachine {
    cpus: usize,
    cpu_model: String,
}

#[derive(Debug, Deserialize)]
struct SavedSettings {
    mode: String,
    p99_limit_ms: f64,
}

#[derive(Debug, Deserialize)]
struct SavedRun {
    steps: Vec<SavedStep>,
}

#[derive(Debug, Deserialize)]
struct SavedStep {
    target_rps: f64,
    achieved_rps: f64,
    all: SavedPercentiles,
    sustainable: bool,
}

#[derive(Debug, Deserialize)]
struct SavedPercentiles {
    p99: f64,
}

impl Chart {
    /// The chart of a step run's report; an error for a fixed-rate run (one offered
    /// rate: nothing to draw against).
    pub fn of_report(report: &Report) -> anyhow::Result<Chart> {
        anyhow::ensure!(
            report.settings.mode == "step",
            "the throughput plot needs a step run (--step); this one ran at a fixed rate"
        );
        let points = |run: &Run| run.steps.iter().map(Point::of).collect();
        Ok(Chart::new(
            &report.date,
            report.machine.cpus,
            &report.machine.cpu_model,
            report.settings.p99_limit_ms,
            report.baseline.as_ref().map(points),
            points(&report.mix),
        ))
    }

    /// The chart of a report saved with `--json`.
    pub fn of_saved(json: &str) -> anyhow::Result<Chart> {
        let saved: Saved =
            serde_json::from_str(json).context("not a navaro-loadtest JSON report (--json)")?;
        anyhow::ensure!(
            saved.settings.mode == "step",
            "the throughput plot needs a step run's report; this one is mode `{}`",
            saved.settings.mode
        );
        let points = |run: &SavedRun| {
            run.steps
                .iter()
                .map(|s| Point {
                    offered_rps: s.target_rps,
                    achieved_rps: s.achieved_rps,
                    p99_ms: s.all.p99,
                    held: s.sustainable,
                })
                .collect()
        };
        Ok(Chart::new(
            &saved.date,
            saved.machine.cpus,
            &saved.machine.cpu_model,
            saved.settings.p99_limit_ms,
            saved.baseline.as_ref().map(points),
            points(&saved.mix),
        ))
    }

    fn new(
        date: &str,
        cpus: usize,
        cpu_model: &str,
        p99_limit_ms: f64,
        baseline: Option<Vec<Point>>,
        mix: Vec<Point>,
    ) -> Chart {
        let mut series: Vec<Series> = baseline
            .map(|runs| Series::new("/healthz", runs))
            .into_iter()
            .collect();
        series.push(Series::new("mix", mix));
        let held = |s: &Series| match s.knee_rps {
            Some(rps) => format!("{} held {}/s", s.label, thousands(rps)),
            None => format!("{}: no step held", s.label),
        };
        let mut subtitle = series.iter().map(held).collect::<Vec<_>>().join(", ");
        if let [base, mix] = &series[..]
            && let (Some(b), Some(m)) = (base.knee_rps, mix.knee_rps)
        {
            let _ = write!(subtitle, " (ratio {:.2})", m / b);
        }
        let _ = write!(subtitle, "; generator on {cpu_model}, {cpus} CPUs");
        Chart {
            title: format!(
                "Navaro step run, {}: throughput and p99 against offered rate",
                date.get(..10).unwrap_or(date)
            ),
            subtitle,
            p99_limit_ms,
            series,
        }
    }

    /// Write the SVG to `path`.
    pub fn write_svg(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.svg()).with_context(|| format!("writing {}", path.display()))
    }
}

/// Where a step run writes its throughput plot when only `--plot` names a file: beside
/// it, `-throughput` added to its name (`docs/loadtest-step.svg` gives
/// `docs/loadtest-step-throughput.svg`).
pub fn beside(plot: &Path) -> PathBuf {
    let stem = plot.file_stem().unwrap_or_default().to_string_lossy();
    plot.with_file_name(format!("{stem}-throughput.svg"))
}

/// Scales shared by both panels.
struct Axes {
    x_max: f64,
    x_step: f64,
    p99_lo: f64,
    p99_hi: f64,
}

impl Axes {
    fn of(chart: &Chart) -> Axes {
        let points = || chart.series.iter().flat_map(|s| s.runs.iter());
        let most = points()
            .map(|p| p.offered_rps.max(p.achieved_rps))
            .fold(1.0, f64::max);
        let x_step = nice_step(most / TICKS);
        let x_max = (most * 1.02 / x_step).ceil() * x_step;
        let p99s = || {
            points()
                .map(|p| p.p99_ms)
                .filter(|ms| *ms > 0.0)
                .chain([chart.p99_limit_ms])
        };
        let lo = p99s().fold(f64::INFINITY, f64::min).max(0.001);
        let hi = p99s().fold(0.0, f64::max).max(lo * 10.0);
        Axes {
            x_max,
            x_step,
            p99_lo: 10f64.powf(lo.log10().floor()),
            p99_hi: 10f64.powf(hi.log10().ceil()),
        }
    }

    fn x(&self, rps: f64) -> f64 {
        LEFT + rps / self.x_max * PLOT_W
    }

    /// The throughput panel, the top one: the same scale as the x axis, so that
    /// "achieved = offered" is the diagonal.
    fn y_rps(&self, rps: f64) -> f64 {
        TOP + PANEL_H - rps.clamp(0.0, self.x_max) / self.x_max * PANEL_H
    }

    /// The p99 panel, the bottom one, log scale.
    fn y_p99(&self, ms: f64) -> f64 {
        let (lo, hi) = (self.p99_lo.log10(), self.p99_hi.log10());
        let top = TOP + PANEL_H + GAP;
        top + PANEL_H - (ms.clamp(self.p99_lo, self.p99_hi).log10() - lo) / (hi - lo) * PANEL_H
    }
}

impl Chart {
    /// The SVG text.
    pub fn svg(&self) -> String {
        let axes = Axes::of(self);
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        for (y, size, text) in [(24.0, 15, &self.title), (44.0, 12, &self.subtitle)] {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{y}" text-anchor="middle" font-size="{size}">{}</text>"#,
                LEFT + PLOT_W / 2.0,
                escape(text)
            );
        }
        self.grid(&mut out, &axes);
        for (n, series) in self.series.iter().enumerate() {
            draw_series(&mut out, &axes, series, self.colour(series), n);
        }
        self.legend(&mut out);
        out.push_str("</svg>\n");
        out
    }

    fn colour(&self, series: &Series) -> &'static str {
        if series.label == "mix" {
            MIX_COLOUR
        } else {
            BASELINE_COLOUR
        }
    }

    /// Both panels' frames, grids, axis labels, the diagonal and the p99 limit.
    fn grid(&self, out: &mut String, axes: &Axes) {
        let (top, bottom) = (TOP, TOP + PANEL_H + GAP);
        let mut rps = 0.0;
        while rps <= axes.x_max + 1e-9 {
            let x = axes.x(rps);
            for panel in [top, bottom] {
                let _ = writeln!(
                    out,
                    r##"<line x1="{x:.1}" y1="{panel:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e4e4e4"/>"##,
                    panel + PANEL_H
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                bottom + PANEL_H + 18.0,
                short_rps(rps)
            );
            let y = axes.y_rps(rps);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + PLOT_W,
                LEFT - 6.0,
                y + 4.0,
                short_rps(rps)
            );
            rps += axes.x_step;
        }
        let mut decade = axes.p99_lo.log10().round() as i32;
        while 10f64.powi(decade) <= axes.p99_hi * 1.001 {
            let y = axes.y_p99(10f64.powi(decade));
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + PLOT_W,
                LEFT - 6.0,
                y + 4.0,
                format_ms(10f64.powi(decade))
            );
            decade += 1;
        }
        for panel in [top, bottom] {
            let _ = writeln!(
                out,
                r##"<rect x="{LEFT}" y="{panel:.1}" width="{PLOT_W}" height="{PANEL_H}" fill="none" stroke="#333"/>"##
            );
        }
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="2 3"/>"##,
            axes.x(0.0),
            axes.y_rps(0.0),
            axes.x(axes.x_max),
            axes.y_rps(axes.x_max)
        );
        let limit = axes.y_p99(self.p99_limit_ms);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{limit:.1}" x2="{:.1}" y2="{limit:.1}" stroke="#333" stroke-dasharray="8 4"/>"##,
            LEFT + PLOT_W,
        );
        for (y, text) in [
            (top + PANEL_H / 2.0, "throughput achieved, req/s"),
            (bottom + PANEL_H / 2.0, "p99 of all requests, ms (log)"),
        ] {
            let _ = writeln!(
                out,
                r#"<text transform="translate(20 {y:.1}) rotate(-90)" text-anchor="middle">{text}</text>"#
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">offered rate, req/s (each step of the search; a failed step's rerun and the bisections too)</text>"#,
            LEFT + PLOT_W / 2.0,
            HEIGHT - 14.0
        );
    }

    fn legend(&self, out: &mut String) {
        let x = LEFT + PLOT_W + 16.0;
        let mut y = TOP + 12.0;
        for series in &self.series {
            let colour = self.colour(series);
            let _ = writeln!(
                out,
                r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                x + 22.0,
                x + 28.0,
                y + 4.0,
                escape(&series.label)
            );
            y += 20.0;
        }
        let (cx, x2) = (x + 11.0, x + 22.0);
        let limit = format!("p99 limit, {} ms", format_ms(self.p99_limit_ms));
        let keys = [
            (
                format!(r##"<circle cx="{cx:.1}" cy="{y:.1}" r="4" fill="#555"/>"##),
                "step held",
            ),
            (
                format!(
                    r##"<circle cx="{cx:.1}" cy="{:.1}" r="4" fill="white" stroke="#555" stroke-width="1.5"/>"##,
                    y + 20.0
                ),
                "step not held",
            ),
            (
                format!(
                    r##"<line x1="{x:.1}" y1="{0:.1}" x2="{x2:.1}" y2="{0:.1}" stroke="#555" stroke-dasharray="4 3"/>"##,
                    y + 40.0
                ),
                "knee: highest rate held",
            ),
            (
                format!(
                    r##"<line x1="{x:.1}" y1="{0:.1}" x2="{x2:.1}" y2="{0:.1}" stroke="#999" stroke-dasharray="2 3"/>"##,
                    y + 60.0
                ),
                "achieved = offered",
            ),
            (
                format!(
                    r##"<line x1="{x:.1}" y1="{0:.1}" x2="{x2:.1}" y2="{0:.1}" stroke="#333" stroke-dasharray="8 4"/>"##,
                    y + 80.0
                ),
                &limit,
            ),
        ];
        for (shape, text) in keys {
            let _ = writeln!(
                out,
                r#"{shape}<text x="{:.1}" y="{:.1}">{text}</text>"#,
                x + 28.0,
                y + 4.0
            );
            y += 20.0;
        }
    }
}

/// One workload: its line and markers in both panels, and its knee.
fn draw_series(out: &mut String, axes: &Axes, series: &Series, colour: &str, n: usize) {
    let polyline = |y_of: &dyn Fn(&Point) -> f64| {
        series
            .line
            .iter()
            .map(|p| format!("{:.1},{:.1}", axes.x(p.offered_rps), y_of(p)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rps_line = polyline(&|p| axes.y_rps(p.achieved_rps));
    let p99_line = polyline(&|p| axes.y_p99(p.p99_ms));
    for points in [rps_line, p99_line] {
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>"#
        );
    }
    for p in &series.runs {
        let fill = if p.held { colour } else { "white" };
        for y in [axes.y_rps(p.achieved_rps), axes.y_p99(p.p99_ms)] {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{y:.1}" r="4" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>"#,
                axes.x(p.offered_rps)
            );
        }
    }
    if let Some(knee) = series.knee_rps {
        let x = axes.x(knee);
        let label = format!("{} held {}/s", series.label, thousands(knee));
        // Left of the line when the label would run past the panel's right edge.
        let (label_x, anchor) = if x + 5.0 + LABEL_CHAR_W * label.len() as f64 > LEFT + PLOT_W {
            (x - 5.0, "end")
        } else {
            (x + 5.0, "start")
        };
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="{colour}" stroke-dasharray="4 3"/><text x="{label_x:.1}" y="{:.1}" text-anchor="{anchor}" fill="{colour}">{}</text>"#,
            TOP + 2.0 * PANEL_H + GAP,
            TOP + 16.0 + n as f64 * 16.0,
            escape(&label)
        );
    }
}

/// A round step (1, 2 or 5 times a power of ten) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

/// `25k`, `2.5k`, `500`.
fn short_rps(rps: f64) -> String {
    if rps >= 1000.0 {
        let k = rps / 1000.0;
        if k.fract().abs() < 1e-9 {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else {
        format!("{rps:.0}")
    }
}

/// `10,183`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(offered_rps: f64, achieved_rps: f64, p99_ms: f64, held: bool) -> Point {
        Point {
            offered_rps,
            achieved_rps,
            p99_ms,
            held,
        }
    }

    /// A search as the driver runs it: rising steps, a failed step run again, then
    /// bisections, one of which fails once and holds on its rerun.
    #[test]
    fn the_line_has_one_point_per_rate_the_one_the_search_counted() {
        let runs = vec![
            point(4000.0, 3990.0, 5.0, true),
            point(4800.0, 4790.0, 9.0, true),
            point(5760.0, 5100.0, 400.0, false),
            point(5760.0, 5300.0, 250.0, false),
            point(5258.0, 5240.0, 30.0, true),
            point(5501.0, 5400.0, 140.0, false),
            point(5501.0, 5490.0, 60.0, true),
            point(5380.0, 5370.0, 80.0, true),
        ];
        let series = Series::new("mix", runs.clone());
        assert_eq!(series.runs, runs, "every run is kept, in the order run");
        assert_eq!(
            series.line,
            [
                runs[0], runs[1], runs[4], runs[7], // rising
                runs[6], // 5,501: the rerun that held
                runs[3], // 5,760: neither held; the lower p99
            ]
        );
        assert_eq!(series.knee_rps, Some(5501.0));

        let none_held = Series::new("mix", vec![point(50.0, 50.0, 2.0, false)]);
        assert_eq!(none_held.knee_rps, None);
        assert_eq!(none_held.line.len(), 1);
    }

    /// Every step report in `docs/` draws: its knees are the reports' own highest
    /// sustainable rates, its lines one point per distinct rate, and the subtitle's
    /// ratio the report's.
    #[test]
    fn the_saved_step_reports_in_docs_draw_with_their_own_knees() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        for name in [
            "loadtest-step.json",
            "loadtest-step-runs.json",
            "loadtest-step-days.json",
        ] {
            let text = std::fs::read_to_string(docs.join(name)).unwrap();
            let chart = Chart::of_saved(&text).unwrap();
            let report: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(chart.series.len(), 2, "{name}");
            for (series, key) in chart.series.iter().zip(["baseline", "mix"]) {
                let run = &report[key];
                assert_eq!(series.knee_rps, run["sustainable_rps"].as_f64(), "{name}");
                assert_eq!(
                    series.runs.len(),
                    run["steps"].as_array().unwrap().len(),
                    "{name}"
                );
                let mut rates: Vec<f64> = series.runs.iter().map(|p| p.offered_rps).collect();
                rates.sort_by(f64::total_cmp);
                rates.dedup();
                let line: Vec<f64> = series.line.iter().map(|p| p.offered_rps).collect();
                assert_eq!(line, rates, "{name}");
            }
            let ratio = report["comparison"]["throughput_ratio"].as_f64().unwrap();
            assert!(
                chart.subtitle.contains(&format!("(ratio {ratio:.2})")),
                "{name}: {}",
                chart.subtitle
            );
            let svg = chart.svg();
            assert!(svg.ends_with("</svg>\n"));
            assert_eq!(svg.matches("<polyline").count(), 4, "{name}");
        }
    }

    #[test]
    fn a_fixed_rate_report_is_refused() {
        let text = r#"{"date":"2026-12-07T00:00:00Z","machine":{"cpus":2,"cpu_model":"x"},
            "settings":{"mode":"fixed","p99_limit_ms":100.0},"baseline":null,
            "mix":{"steps":[]}}"#;
        let error = Chart::of_saved(text).unwrap_err().to_string();
        assert!(error.contains("step run"), "{error}");
        assert!(Chart::of_saved("{}").is_err());
    }

    #[test]
    fn beside_the_percentile_plot() {
        assert_eq!(
            beside(Path::new("docs/loadtest-step.svg")),
            Path::new("docs/loadtest-step-throughput.svg")
        );
        assert_eq!(thousands(10182.7), "10,183");
        assert_eq!(thousands(512.0), "512");
        assert_eq!(short_rps(25000.0), "25k");
        assert_eq!(short_rps(2500.0), "2.5k");
        assert_eq!(nice_step(29720.0 / TICKS), 5000.0);
        assert_eq!(nice_step(4100.0), 5000.0);
    }
}
