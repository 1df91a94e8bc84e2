//! Reads the report's figures from a stack's market table.

use anyhow::Result;
use chrono::{Duration, Utc};
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_core::metrics::aggregate::Scope;
use realty_core::metrics::ports::Period;

use super::data::{DailyPoint, MarketReport};

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
        // Each day's moving averages as the metrics function stored them with the day.
        let daily: Vec<DailyPoint> = snapshots
            .iter()
            .filter_map(|s| match s.period {
                Period::Day(date) => Some((date, &s.figures, s.trends.clone().unwrap_or_default())),
                Period::Hour(_) => None,
            })
            .map(|(date, f, t)| DailyPoint {
                date,
                median_price: f.median_price,
                median_price_ma_7d: t.median_price_ma_7d,
                median_price_ma_30d: t.median_price_ma_30d,
                active_listings: f.active_listings,
                pending_listings: f.pending_listings,
                new_listings: f.new_listings_today,
                price_cuts: f.price_cuts_today,
                delistings: f.delistings_today,
            })
            .collect();
        let latest_trends = snapshots
            .iter()
            .rev()
            .find(|s| s.period == Period::Day(as_of.date_naive()))
            .and_then(|s| s.trends.clone())
            .unwrap_or_default();
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
            trends: latest_trends,
            scope_key,
            live: figures,
            daily,
            price_per_sqft_histogram: histogram,
            alerts: Vec::new(),
        });
    }
    Ok(out)
}
