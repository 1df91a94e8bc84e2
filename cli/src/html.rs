//! The market report as data ([`Report`], read from a stack's market table by [`gather`])
//! and as one self-contained HTML page ([`render`]): charts are inline SVG drawn here, so
//! the page works offline and needs no script.

use std::fmt::Write as _;

use anyhow::Result;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_core::alerts::message::AlertBody;
use realty_core::metrics::aggregate::{MarketFigures, Scope};
use realty_core::metrics::history::{Trends, trends};
use realty_core::metrics::ports::Period;
use serde::{Deserialize, Serialize};

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    pub generated_at: DateTime<Utc>,
    /// Where the figures were read: an endpoint, or `AWS stack NAME`.
    pub source: String,
    pub markets: Vec<MarketReport>,
    /// Alert latency from the poller's PutRecords to the SNS publish, when measured.
    pub latency: Option<LatencySummary>,
    /// How the figures came about, for a demo run.
    pub run: Option<serde_json::Value>,
}

/// One market (its city-wide, all-types scope).
#[derive(Debug, Clone, Serialize)]
pub struct MarketReport {
    pub market: String,
    pub scope_key: String,
    pub live: MarketFigures,
    pub trends: Trends,
    pub daily: Vec<DailyPoint>,
    /// Price per sqft of the active listings: (bucket value in dollars, listings).
    pub price_per_sqft_histogram: Vec<(f64, u64)>,
    pub alerts: Vec<AlertBody>,
}

/// A market on one day: its daily snapshot, with the moving averages as of that day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DailyPoint {
    pub date: NaiveDate,
    pub median_price: Option<f64>,
    pub median_price_ma_7d: Option<f64>,
    pub median_price_ma_30d: Option<f64>,
    pub active_listings: i64,
    pub pending_listings: i64,
    pub new_listings: i64,
    pub price_cuts: i64,
    pub delistings: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencySummary {
    pub alerts: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Nearest-rank percentiles of `samples_ms`; `None` without samples.
    pub fn of(samples_ms: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples_ms
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let n = sorted.len();
            let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            sorted[i]
        };
        (!sorted.is_empty()).then(|| Self {
            alerts: sorted.len(),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
        })
    }
}

/// Reads the report of `markets` (city-state keys) from a market table: each market's
/// live item and its daily snapshots of the last `days` days before its as-of time.
pub async fn gather(
    store: &DynamoMarketStore,
    markets: &[String],
    days: i64,
) -> Result<Vec<MarketReport>> {
    let mut out = Vec::with_capacity(markets.len());
    for market in markets {
        let scope_key = Scope::city(market).key();
        let Some(live) = store.live(&scope_key).await? else {
            continue;
        };
        let as_of = live.as_of.unwrap_or_else(Utc::now);
        let snapshots = store
            .snapshots(
                &scope_key,
                &Period::Day((as_of - Duration::days(days)).date_naive()).sort_key(),
                &Period::Day(as_of.date_naive()).sort_key(),
            )
            .await?;
        let by_day: Vec<(NaiveDate, MarketFigures)> = snapshots
            .iter()
            .filter_map(|s| match s.period {
                Period::Day(d) => Some((d, s.figures.clone())),
                Period::Hour(_) => None,
            })
            .collect();
        let daily = by_day
            .iter()
            .map(|(date, f)| {
                let t = trends(&by_day, *date);
                DailyPoint {
                    date: *date,
                    median_price: f.median_price,
                    median_price_ma_7d: t.median_price_ma_7d,
                    median_price_ma_30d: t.median_price_ma_30d,
                    active_listings: f.active_listings,
                    pending_listings: f.pending_listings,
                    new_listings: f.new_listings_today,
                    price_cuts: f.price_cuts_today,
                    delistings: f.delistings_today,
                }
            })
            .collect();
        let figures = live.figures.clone();
        let stored = live.into_stored()?;
        let histogram = stored
            .aggregate
            .price_per_sqft
            .buckets()
            .map(|(minor, count)| (minor / 100.0, count))
            .collect();
        out.push(MarketReport {
            market: market.clone(),
            trends: trends(&by_day, as_of.date_naive()),
            scope_key,
            live: figures,
            daily,
            price_per_sqft_histogram: histogram,
            alerts: Vec::new(),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn money(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        let whole = v.round() as i64;
        let digits = whole.abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{}${grouped}", if whole < 0 { "-" } else { "" })
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:+.1}%"))
}

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
fn line_chart(
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
fn bar_chart(id: &str, title: &str, dates: &[NaiveDate], series: &[(&str, Vec<f64>)]) -> String {
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
fn histogram_chart(id: &str, title: &str, buckets: &[(f64, u64)]) -> String {
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

fn market_section(out: &mut String, index: usize, m: &MarketReport) {
    let f = &m.live;
    let _ = write!(
        out,
        r#"<section class="market"><h2>{}</h2><p class="figures">{} active, {} pending &middot; median {} &middot; average {} &middot; median {} /sqft &middot; 7-day trend {} &middot; cuts (7 days) {} &middot; alerts {} &middot; as of {}</p>"#,
        escape(&m.market),
        f.active_listings,
        f.pending_listings,
        money(f.median_price),
        money(f.average_price),
        money(f.median_price_per_sqft),
        pct(m.trends.median_price_change_7d_pct),
        f.price_cuts_7d,
        m.alerts.len(),
        f.as_of
            .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
    );
    let dates: Vec<NaiveDate> = m.daily.iter().map(|d| d.date).collect();
    out.push_str(r#"<div class="charts">"#);
    out.push_str(&line_chart(
        &format!("m{index}-median"),
        "Median list price, 7- and 30-day moving averages",
        &dates,
        &[
            ("median", m.daily.iter().map(|d| d.median_price).collect()),
            (
                "7-day MA",
                m.daily.iter().map(|d| d.median_price_ma_7d).collect(),
            ),
            (
                "30-day MA",
                m.daily.iter().map(|d| d.median_price_ma_30d).collect(),
            ),
        ],
        false,
    ));
    out.push_str(&line_chart(
        &format!("m{index}-inventory"),
        "Inventory (end of day)",
        &dates,
        &[
            (
                "active",
                m.daily
                    .iter()
                    .map(|d| Some(d.active_listings as f64))
                    .collect(),
            ),
            (
                "pending",
                m.daily
                    .iter()
                    .map(|d| Some(d.pending_listings as f64))
                    .collect(),
            ),
        ],
        true,
    ));
    out.push_str(&bar_chart(
        &format!("m{index}-flow"),
        "New listings and price cuts per day",
        &dates,
        &[
            (
                "new listings",
                m.daily.iter().map(|d| d.new_listings as f64).collect(),
            ),
            (
                "price cuts",
                m.daily.iter().map(|d| d.price_cuts as f64).collect(),
            ),
        ],
    ));
    out.push_str(&histogram_chart(
        &format!("m{index}-ppsf"),
        "Price per sqft of active listings",
        &m.price_per_sqft_histogram,
    ));
    out.push_str("</div>");
    if m.alerts.is_empty() {
        out.push_str("<p>No alerts raised.</p>");
    } else {
        out.push_str(r#"<table class="alerts"><thead><tr><th>seen</th><th>alert</th><th>listing</th><th>address</th><th>old</th><th>new</th><th>drop</th><th>$/sqft vs median</th></tr></thead><tbody>"#);
        for a in &m.alerts {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{}</td></tr>",
                a.observed_at.format("%Y-%m-%d %H:%M"),
                escape(a.alert_type.as_str()),
                escape(&a.listing_id),
                escape(&a.address),
                money(Some(a.old_price)),
                money(Some(a.new_price)),
                a.drop_pct,
                a.price_per_sqft_to_median
                    .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

/// The report as one HTML page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} h1{{margin-bottom:4px}}
.charts{{display:flex;flex-wrap:wrap;gap:12px}} .chart{{border:1px solid #ddd}}
table{{border-collapse:collapse;font-size:13px;margin:8px 0}} td,th{{border:1px solid #ddd;padding:3px 6px;text-align:right}}
td:nth-child(2),td:nth-child(3),td:nth-child(4),th{{text-align:left}} .meta{{color:#555;font-size:13px}}
</style></head><body><h1>{title}</h1><p class="meta">generated {generated} from {source}</p>"#,
        title = escape(&report.title),
        generated = report.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        source = escape(&report.source)
    );
    out.push_str(r#"<table class="summary"><thead><tr><th>market</th><th>active</th><th>median price</th><th>7-day trend</th><th>price cuts (7 days)</th><th>alerts</th></tr></thead><tbody>"#);
    for m in &report.markets {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.market),
            m.live.active_listings,
            money(m.live.median_price),
            pct(m.trends.median_price_change_7d_pct),
            m.live.price_cuts_7d,
            m.alerts.len()
        );
    }
    out.push_str("</tbody></table>");
    if let Some(l) = &report.latency {
        let _ = write!(
            out,
            r#"<p class="latency">Alert latency, poller PutRecords to SNS publish, over {} alerts: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms.</p>"#,
            l.alerts, l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    for (i, m) in report.markets.iter().enumerate() {
        market_section(&mut out, i, m);
    }
    if let Some(run) = &report.run {
        let _ = write!(
            out,
            r#"<details><summary>run</summary><pre>{}</pre></details>"#,
            escape(&serde_json::to_string_pretty(run).unwrap_or_default())
        );
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let day = |n: u32| NaiveDate::from_ymd_opt(2025, 3, n).unwrap_or_default();
        let daily = (3..10)
            .map(|n| DailyPoint {
                date: day(n),
                median_price: Some(300_000.0 + f64::from(n) * 1_000.0),
                median_price_ma_7d: Some(300_000.0),
                median_price_ma_30d: (n > 4).then_some(299_000.0),
                active_listings: 200,
                pending_listings: 100,
                new_listings: i64::from(n),
                price_cuts: 2,
                delistings: 1,
            })
            .collect();
        Report {
            title: "t <&>".into(),
            generated_at: DateTime::from_timestamp(1_741_000_000, 0).unwrap_or_default(),
            source: "here".into(),
            markets: vec![MarketReport {
                market: "nashville-tn".into(),
                scope_key: "city#nashville-tn#all".into(),
                live: MarketFigures::default(),
                trends: Trends::default(),
                daily,
                price_per_sqft_histogram: vec![(100.0, 3), (102.0, 5), (300.0, 1)],
                alerts: Vec::new(),
            }],
            latency: LatencySummary::of(&[5.0, 1.0, 3.0]),
            run: None,
        }
    }

    #[test]
    fn renders_four_charts_per_market_and_escapes_text() {
        let html = render(&sample());
        assert_eq!(html.matches("<svg class=\"chart\"").count(), 4);
        assert_eq!(html.matches("</svg>").count(), 4);
        assert!(html.contains("t &lt;&amp;&gt;"));
        assert!(!html.contains("NaN") && !html.contains("inf"));
        // Gaps in a series start a new sub-path.
        assert!(html.contains("<path d=\"M"));
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        let l = LatencySummary::of(&samples).unwrap_or_else(|| unreachable!());
        assert_eq!(
            (l.p50_ms, l.p99_ms, l.max_ms, l.alerts),
            (100.0, 198.0, 200.0, 200)
        );
        assert!(LatencySummary::of(&[]).is_none());
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(money(Some(1_234_567.4)), "$1,234,567");
        assert_eq!(money(Some(-950.0)), "-$950");
    }
}
