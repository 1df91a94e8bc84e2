//! The report as one self-contained HTML page: the dashboard's stylesheets and scripts
//! ([`ASSETS`]: uPlot, formats, charts, list rows) inlined, the report's data as JSON, and
//! `report.js` building the page from it. Nothing is fetched: it opens from a file.

use std::fmt::Write as _;

use realty_api::dashboard::ASSETS;

use super::data::Report;

/// The report's own script and the few rules the dashboard's stylesheet lacks.
const REPORT_JS: &str = include_str!("report.js");
const REPORT_CSS: &str = "main { padding-bottom: 2rem; } .market { border-top: 1px solid var(--line); margin-top: 1.5rem; } \
.market h3 { margin: 1rem 0 0.5rem; } .alerts { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 0 0.75rem; } \
details { margin: 0.5rem 0; } pre { white-space: pre-wrap; font-size: 0.8rem; }";

/// The dashboard's files the report inlines, in the order they load.
const STYLES: [&str; 2] = ["uPlot.min.css", "style.css"];
const SCRIPTS: [&str; 4] = ["uPlot.iife.min.js", "format.js", "charts.js", "lists.js"];

fn dashboard_file(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or("", |a| a.body)
}

/// Text made safe inside HTML elements and attributes.
fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

/// The report as one HTML page.
pub fn render(report: &Report) -> Result<String, serde_json::Error> {
    // `<` written as its JSON escape: the data can never close its <script> element.
    let data = serde_json::to_string(report)?.replace('<', "\\u003c");
    let title = escape(&report.title);
    let mut out = String::with_capacity(256 * 1024 + data.len());
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>"#
    );
    for name in STYLES {
        let _ = write!(out, "<style>{}</style>", dashboard_file(name));
    }
    let _ = write!(
        out,
        r#"<style>{REPORT_CSS}</style></head><body><header><h1>{title}</h1><p class="quiet" id="source"></p></header><main id="report"><p>This report draws its tables and charts with JavaScript: open it in a browser with scripts allowed.</p></main><script type="application/json" id="report-data">{data}</script>"#
    );
    for name in SCRIPTS {
        let _ = write!(out, "<script>{}</script>", dashboard_file(name));
    }
    let _ = writeln!(out, "<script>{REPORT_JS}</script></body></html>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::data::{LatencySummary, MarketSection};
    use chrono::DateTime;
    use realty_api::views::MarketReport;
    use realty_metrics::aggregate::MarketFigures;
    use realty_metrics::aggregate::history::Trends;

    fn sample() -> Report {
        Report {
            title: "t <&>".into(),
            generated_at: DateTime::from_timestamp(1_741_000_000, 0).unwrap_or_default(),
            source: "</script><b>here".into(),
            markets: vec![MarketSection {
                report: MarketReport {
                    market: "nashville-tn".into(),
                    scope_key: "city#nashville-tn#all".into(),
                    live: MarketFigures::default(),
                    trends: Trends::default(),
                    daily: Vec::new(),
                    hourly: Vec::new(),
                    price_per_sqft_distribution: Vec::new(),
                    units: realty_model::listing::MarketUnits::of("nashville-tn"),
                    per_square_metre: None,
                },
                listings: Default::default(),
                alerts: Vec::new(),
            }],
            latency: LatencySummary::of(&[5.0, 1.0, 3.0]),
            run: None,
        }
    }

    #[test]
    fn inlines_the_dashboards_files_and_data_that_cannot_close_its_script() {
        let html = render(&sample()).unwrap_or_default();
        for name in STYLES.iter().chain(SCRIPTS.iter()) {
            let body = dashboard_file(name);
            assert!(
                !body.is_empty() && html.contains(body),
                "{name} is not inlined"
            );
            assert!(
                !body.to_ascii_lowercase().contains("</script"),
                "{name} would close its element"
            );
        }
        assert!(!REPORT_JS.contains("</script"));
        assert!(html.contains("<title>t &lt;&amp;&gt;</title>"));
        // The data's one <script> closes where the page does, not inside the data.
        let data = html
            .split(r#"<script type="application/json" id="report-data">"#)
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap_or_default();
        let parsed: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        assert_eq!(parsed["source"], "</script><b>here");
        assert_eq!(parsed["markets"][0]["market"], "nashville-tn");
        assert!(parsed["markets"][0]["daily"].is_array());
    }
}
