//! The latency plot: one percentile curve per operation, drawn as a self-contained SVG
//! (no font or image libraries). The x axis is logarithmic in 1 / (1 - percentile), as
//! HdrHistogram's plots are, from 0% to 99.999%; the y axis is logarithmic in
//! milliseconds, so fast reads and slow writes fit one chart.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 600.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 210.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// The x axis ends at 99.999% (five nines: log10 of 1 / (1 - p) = 5).
const MAX_NINES: f64 = 5.0;
/// Points per curve.
const POINTS: usize = 250;
const COLOURS: [&str; 13] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000", "#aec7e8", "#98df8a",
];

/// One curve: a label, its histogram (microseconds) and whether to dash it.
pub struct Curve<'a> {
    pub label: String,
    pub histogram: &'a Histogram<u64>,
    pub dashed: bool,
}

/// Write the plot to `path`.
pub fn write_svg(path: &Path, title: &str, curves: &[Curve<'_>]) -> anyhow::Result<()> {
    std::fs::write(path, svg(title, curves)).with_context(|| format!("writing {}", path.display()))
}

/// The SVG text.
pub fn svg(title: &str, curves: &[Curve<'_>]) -> String {
    let curves: Vec<&Curve<'_>> = curves.iter().filter(|c| !c.histogram.is_empty()).collect();
    let (lo_ms, hi_ms) = y_range(&curves);
    let (y_lo, y_hi) = (lo_ms.log10(), hi_ms.log10());
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |nines: f64| LEFT + nines / MAX_NINES * plot_w;
    let y_of = |ms: f64| TOP + plot_h - (ms.max(lo_ms).log10() - y_lo) / (y_hi - y_lo) * plot_h;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Grid and axes.
    for (nines, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let x = x_of(nines);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    let mut decade = lo_ms.log10().floor() as i32;
    while f64::from(decade) <= y_hi + 1e-9 {
        let ms = 10f64.powi(decade);
        if ms >= lo_ms * 0.999 {
            let y = y_of(ms);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                format_ms(ms)
            );
        }
        decade += 1;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile (log scale of 1/(1-p))</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">latency, ms (log)</text>"#,
        TOP + plot_h / 2.0
    );
    for (n, curve) in curves.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let mut points = String::new();
        for i in 0..=POINTS {
            let nines = MAX_NINES * i as f64 / POINTS as f64;
            let quantile = 1.0 - 10f64.powf(-nines);
            let ms = curve.histogram.value_at_quantile(quantile) as f64 / 1000.0;
            let _ = write!(points, "{:.1},{:.1} ", x_of(nines), y_of(ms));
        }
        let dash = if curve.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.8"{dash} points="{}"/>"#,
            points.trim_end()
        );
        let y = TOP + 10.0 + n as f64 * 18.0;
        let x = LEFT + plot_w + 14.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2.5"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 22.0,
            x + 28.0,
            y + 4.0,
            escape(&curve.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Whole decades of milliseconds around every curve's minimum and maximum.
fn y_range(curves: &[&Curve<'_>]) -> (f64, f64) {
    let lo = curves
        .iter()
        .map(|c| c.histogram.min() as f64 / 1000.0)
        .fold(f64::INFINITY, f64::min);
    let hi = curves
        .iter()
        .map(|c| c.histogram.max() as f64 / 1000.0)
        .fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (0.01, 1000.0);
    }
    let lo = 10f64.powf(lo.max(0.001).log10().floor());
    let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
    (lo, hi)
}

pub(crate) fn format_ms(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms}")
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_polyline_per_non_empty_curve() {
        let mut fast = crate::stats::histogram();
        let mut slow = crate::stats::histogram();
        for v in 1..1000u64 {
            fast.record(100 + v).unwrap();
            slow.record(10_000 + v * 50).unwrap();
        }
        let empty = crate::stats::histogram();
        let curves = [
            Curve {
                label: "fast".into(),
                histogram: &fast,
                dashed: false,
            },
            Curve {
                label: "slow <x>".into(),
                histogram: &slow,
                dashed: true,
            },
            Curve {
                label: "empty".into(),
                histogram: &empty,
                dashed: false,
            },
        ];
        let text = svg("t", &curves);
        assert_eq!(text.matches("<polyline").count(), 2);
        assert!(text.contains("slow &lt;x&gt;"));
        assert!(text.ends_with("</svg>\n"));
    }
}
