//! Reads the report's figures from a stack's market table with the API's own views: what
//! `GET /markets/{m}`, `GET /markets/{m}/listings?kind=` and `GET /alerts?market=` answer.

use std::collections::BTreeMap;

use anyhow::Result;
use realty_api::lists::{listings_of_interest, recent_alerts};
use realty_api::views::{MarketReport, market_report};
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_model::state::InterestKind;

use super::data::MarketSection;

/// Listings per list of interest (as many as the dashboard shows).
const LISTINGS_PER_LIST: usize = 10;
/// Alerts read per page of the feed (the API's most), and the most a market's section
/// holds: past it the report says the newest.
const ALERTS_PER_PAGE: usize = 100;
pub const MAX_ALERTS: usize = 5_000;

/// The sections of `markets` (city-state keys) that have figures.
pub async fn gather(store: &DynamoMarketStore, markets: &[String]) -> Result<Vec<MarketSection>> {
    let mut out = Vec::with_capacity(markets.len());
    for market in markets {
        if let Some(report) = market_report(store, market).await? {
            out.push(section(store, report).await?);
        }
    }
    Ok(out)
}

/// A market's report with its lists of interest and its alerts, newest first.
pub async fn section(store: &DynamoMarketStore, report: MarketReport) -> Result<MarketSection> {
    let market = report.market.clone();
    // What the API would answer now: entries past their TTL that DynamoDB has not yet
    // deleted are left out.
    let now = chrono::Utc::now();
    let mut listings = BTreeMap::new();
    for kind in InterestKind::ALL {
        // The market has a report, so it has figures: a list is always there (maybe empty).
        let list = listings_of_interest(store, &market, kind, LISTINGS_PER_LIST, None, now).await?;
        listings.insert(kind.as_str(), list.map(|l| l.listings).unwrap_or_default());
    }
    let mut alerts = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = recent_alerts(
            store,
            std::slice::from_ref(&market),
            None,
            ALERTS_PER_PAGE,
            before.as_deref(),
            now,
        )
        .await?;
        alerts.extend(page.alerts);
        match page.next {
            Some(next) if alerts.len() < MAX_ALERTS => before = Some(next),
            _ => break,
        }
    }
    alerts.truncate(MAX_ALERTS);
    Ok(MarketSection {
        report,
        listings,
        alerts,
    })
}
