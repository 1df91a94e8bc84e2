//! The market report as data ([`Report`], read from a stack's market table by [`gather`](fn@gather)
//! with the API's views: market report, lists of interest, alert feed) and as one self-contained HTML page ([`render`]): the dashboard's
//! own uPlot, formats, charts and list rows inlined with the data, so the page draws the
//! same charts as the dashboard, offline (file://, no network).

mod data;
mod gather;
mod page;

pub use data::{LatencySummary, MarketSection, Report};
pub use gather::{gather, section};
pub use page::render;
