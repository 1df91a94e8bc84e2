//! Reads the report's figures from a stack's market table with the API's own views.

use anyhow::Result;
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_core::api::views::market_report;

use super::data::MarketSection;

/// The sections of `markets` (city-state keys) that have figures, each as the API's
/// `GET /markets/{market}` answers it; alerts are the caller's to add.
pub async fn gather(store: &DynamoMarketStore, markets: &[String]) -> Result<Vec<MarketSection>> {
    let mut out = Vec::with_capacity(markets.len());
    for market in markets {
        if let Some(report) = market_report(store, market).await? {
            out.push(MarketSection {
                report,
                alerts: Vec::new(),
            });
        }
    }
    Ok(out)
}
