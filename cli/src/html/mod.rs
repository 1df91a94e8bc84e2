//! The market report as data ([`Report`], read from a stack's market table by [`gather`])
//! and as one self-contained HTML page ([`render`]): charts are inline SVG drawn here, so
//! the page works offline and needs no script.

mod chart;
mod data;
mod gather;
mod page;

pub use data::{LatencySummary, Report};
pub use gather::gather;
pub use page::render;

/// Text made safe inside HTML and SVG elements and attributes alike (both quotes escaped).
fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}
