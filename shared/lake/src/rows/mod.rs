//! The curated lake's rows (docs/lake.md): what the Iceberg tables `listing_events`,
//! `listings` and `market_daily` hold, as plain types, and the pure steps that make them:
//! an event's stable id, an event flattened to typed columns, the current state of every
//! listing merged from its events, and a market day from its daily snapshot. `realty-lake`
//! writes and reads these rows as Arrow batches in Iceberg tables.

mod checks;
mod tables;

pub use checks::{
    CheckResult, EventChecks, LakeRows, Outside, daily_counts, run_checks, run_checks_with,
};
pub use tables::{
    EventRow, ListingRow, ListingsMerge, MarketDayRow, event_id, market_daily_rows, market_day_row,
    merge_listings, newest_per_listing,
};

#[cfg(test)]
mod tests;
