//! The market report as data ([`Report`], read from a stack's market table by [`gather`])
//! and as one self-contained HTML page ([`render`]): charts are inline SVG drawn here, so
//! the page works offline and needs no script.

mod chart;
mod data;
mod gather;
mod page;

pub use data::{DailyPoint, LatencySummary, MarketReport, Report};
pub use gather::gather;
pub use page::render;

/// Text made safe inside HTML and SVG elements and attributes alike.
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
