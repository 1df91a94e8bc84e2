//! The report as one self-contained HTML page: summary table, latency, and per market its
//! figures, four charts and alerts.

use std::fmt::Write as _;

use chrono::NaiveDate;
use realty_core::format::dollars;

use super::chart::{bar_chart, histogram_chart, line_chart};
use super::data::{MarketReport, Report};
use super::escape;

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:+.1}%"))
}

fn market_section(out: &mut String, index: usize, m: &MarketReport) {
    let f = &m.live;
    let _ = write!(
        out,
        r#"<section class="market"><h2>{}</h2><p class="figures">{} active, {} pending &middot; median {} &middot; average {} &middot; median {} /sqft &middot; 7-day trend {} &middot; cuts (7 days) {} &middot; alerts {} &middot; as of {}</p>"#,
        escape(&m.market),
        f.active_listings,
        f.pending_listings,
        dollars(f.median_price),
        dollars(f.average_price),
        dollars(f.median_price_per_sqft),
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
                dollars(Some(a.old_price)),
                dollars(Some(a.new_price)),
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
            dollars(m.live.median_price),
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
    use crate::html::data::{DailyPoint, LatencySummary};
    use chrono::DateTime;
    use realty_core::metrics::aggregate::MarketFigures;
    use realty_core::metrics::history::Trends;

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
}
