//! The page's charts as inline SVG: frame, round ticks, axes and legend, and the line, bar
//! and histogram charts drawn on them. Every chart is an `<svg class="chart">` whose data
//! points carry the class `datum` and a `<title>` tooltip.

use std::fmt::Write as _;

use chrono::NaiveDate;

use super::escape;

/// Round numbers for an axis from `low` to `high`: about `count` ticks.
fn ticks(low: f64, high: f64, count: usize) -> Vec<f64> {
    if !(low.is_finite() && high.is_finite()) || high <= low {
        return vec![low];
    }
    let raw = (high - low) / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut t = (low / step).ceil() * step;
    let mut out = Vec::new();
    while t <= high + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 40.0;
const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

/// The frame of a chart: `<svg>` with its title, y grid and labels; returns the y mapping.
fn frame(
    svg: &mut String,
    id: &str,
    title: &str,
    y_low: f64,
    y_high: f64,
) -> impl Fn(f64) -> f64 + use<> {
    let _ = write!(
        svg,
        r##"<svg class="chart" id="{id}" data-chart="{id}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}"><title>{title}</title><rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text x="{LEFT}" y="18" font-size="13" font-weight="bold">{title}</text>"##,
        title = escape(title)
    );
    let span = if y_high > y_low { y_high - y_low } else { 1.0 };
    let plot_height = HEIGHT - TOP - BOTTOM;
    let y = move |v: f64| TOP + plot_height * (1.0 - (v - y_low) / span);
    for t in ticks(y_low, y_high, 5) {
        let py = y(t);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{lx}" y="{ty:.1}" font-size="10" text-anchor="end">{label}</text>"##,
            x2 = WIDTH - RIGHT,
            lx = LEFT - 4.0,
            ty = py + 3.0,
            label = short_number(t)
        );
    }
    y
}

fn legend(svg: &mut String, names: &[&str]) {
    // A row of its own under the title.
    let mut x = LEFT;
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="24" width="10" height="10" fill="{color}"/><text x="{tx:.1}" y="33" font-size="10">{name}</text>"#,
            tx = x + 14.0,
            name = escape(name)
        );
        x += 100.0;
    }
}

/// Value range of the series, padded a little; (0, 1) when there is nothing.
fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        low = low.min(v);
        high = high.max(v);
    }
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        low = low.min(0.0);
    }
    let pad = ((high - low) * 0.08).max(high.abs() * 0.01).max(1.0);
    (if from_zero { low } else { low - pad }, high + pad)
}

fn x_labels(svg: &mut String, dates: &[NaiveDate], x: &dyn Fn(usize) -> f64) {
    let n = dates.len();
    let every = n.div_ceil(8).max(1);
    for (i, d) in dates.iter().enumerate() {
        if i.is_multiple_of(every) || i + 1 == n {
            let _ = write!(
                svg,
                r#"<text x="{px:.1}" y="{py}" font-size="10" text-anchor="middle">{label}</text>"#,
                px = x(i),
                py = HEIGHT - BOTTOM + 14.0,
                label = d.format("%b %d")
            );
        }
    }
}

/// A line chart of several series over days (gaps where a value is missing).
pub(super) fn line_chart(
    id: &str,
    title: &str,
    dates: &[NaiveDate],
    series: &[(&str, Vec<Option<f64>>)],
    from_zero: bool,
) -> String {
    let mut svg = String::new();
    let (low, high) = range(
        series.iter().flat_map(|(_, v)| v.iter().flatten().copied()),
        from_zero,
    );
    let y = frame(&mut svg, id, title, low, high);
    let n = dates.len().max(1);
    let plot_width = WIDTH - LEFT - RIGHT;
    let x = |i: usize| {
        if n == 1 {
            LEFT + plot_width / 2.0
        } else {
            LEFT + plot_width * i as f64 / (n - 1) as f64
        }
    };
    for (s, (_, values)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let mut path = String::new();
        let mut pen_down = false;
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            svg,
            r#"<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>"#
        );
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    svg,
                    r#"<circle class="datum" cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{}: {}</title></circle>"#,
                    x(i),
                    y(*v),
                    dates[i],
                    short_number(*v)
                );
            }
        }
    }
    x_labels(&mut svg, dates, &x);
    legend(
        &mut svg,
        &series.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
    );
    svg.push_str("</svg>");
    svg
}

/// Grouped bars per day.
pub(super) fn bar_chart(
    id: &str,
    title: &str,
    dates: &[NaiveDate],
    series: &[(&str, Vec<f64>)],
) -> String {
    let mut svg = String::new();
    let (_, high) = range(series.iter().flat_map(|(_, v)| v.iter().copied()), true);
    let y = frame(&mut svg, id, title, 0.0, high);
    let n = dates.len().max(1);
    let plot_width = WIDTH - LEFT - RIGHT;
    let slot = plot_width / n as f64;
    let bar = (slot * 0.8 / series.len().max(1) as f64).max(1.0);
    for (s, (_, values)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        for (i, v) in values.iter().enumerate() {
            let top = y(*v);
            let _ = write!(
                svg,
                r#"<rect class="datum" x="{:.1}" y="{top:.1}" width="{bar:.1}" height="{:.1}" fill="{color}"><title>{}: {v}</title></rect>"#,
                LEFT + slot * i as f64 + slot * 0.1 + bar * s as f64,
                (y(0.0) - top).max(0.0),
                dates[i]
            );
        }
    }
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    x_labels(&mut svg, dates, &x);
    legend(
        &mut svg,
        &series.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
    );
    svg.push_str("</svg>");
    svg
}

/// The price-per-sqft distribution: one bar per 2 % bucket.
pub(super) fn histogram_chart(id: &str, title: &str, buckets: &[(f64, u64)]) -> String {
    let mut svg = String::new();
    let (_, high) = range(buckets.iter().map(|(_, c)| *c as f64), true);
    let y = frame(&mut svg, id, title, 0.0, high);
    let plot_width = WIDTH - LEFT - RIGHT;
    let (low_v, high_v) = match (buckets.first(), buckets.last()) {
        (Some((a, _)), Some((b, _))) if b > a => (a.ln(), b.ln()),
        (Some((a, _)), _) => (a.ln() - 0.1, a.ln() + 0.1),
        _ => (0.0, 1.0),
    };
    // Buckets are 2 % wide: equal widths on a log axis.
    let x =
        |v: f64| LEFT + plot_width * 0.02 + plot_width * 0.96 * (v.ln() - low_v) / (high_v - low_v);
    let width = (plot_width * 0.96 * 1.02f64.ln() / (high_v - low_v)).clamp(1.0, 40.0);
    for (v, c) in buckets {
        let top = y(*c as f64);
        let _ = write!(
            svg,
            r##"<rect class="datum" x="{:.1}" y="{top:.1}" width="{width:.1}" height="{:.1}" fill="#1f77b4"><title>${v:.0}/sqft: {c}</title></rect>"##,
            x(*v) - width / 2.0,
            (y(0.0) - top).max(0.0)
        );
    }
    if let (Some((a, _)), Some((b, _))) = (buckets.first(), buckets.last()) {
        for v in [*a, (a * b).sqrt(), *b] {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">${v:.0}</text>"#,
                x(v),
                HEIGHT - BOTTOM + 14.0
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">price per sqft (log scale)</text>"#,
        LEFT + plot_width / 2.0,
        HEIGHT - 8.0
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use realty_core::format::dollars;

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(dollars(Some(1_234_567.4)), "$1,234,567");
        assert_eq!(dollars(Some(-950.0)), "-$950");
    }
}
