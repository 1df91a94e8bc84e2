//! The API's answers, built from the stores: one market's report (what `realty report
//! --json` prints too), the watched markets' headlines, a market's history, the pipeline's
//! health. Field names are stable: the OpenAPI document describes them.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::routes::Granularity;
use realty_metrics::aggregate::MarketFigures;
use realty_metrics::aggregate::history::Trends;
use realty_metrics::items::MarketSnapshotItem;
use realty_metrics::ports::Period;
use realty_metrics::process::with_open_periods;
use realty_metrics::reader::MarketReader;
use realty_metrics::values::ValueCounts;
use realty_model::format::{MONEY_DECIMALS, rounded};
use realty_model::listing::{AreaUnit, CENTS_PER_DOLLAR, MarketUnits, SQFT_PER_SQUARE_METRE};
use realty_model::markets::ConfigSnapshot;
use realty_model::ports::PortError;
use realty_model::scope::Scope;

/// Days of daily snapshots a market report carries (and its trends are computed over).
pub const REPORT_DAYS: i64 = 60;
/// Hours of hourly snapshots a market report carries.
pub const REPORT_HOURS: i64 = 48;

/// One snapshot: the period (`2026-11-21` for a day, `2026-11-21T18:00:00Z` for the hour
/// starting then), the market's figures at its end, and for a day the moving averages and
/// trends the metrics function stored with it (`None` on hours, and on days written before
/// they were stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotView {
    pub period: String,
    pub figures: MarketFigures,
    pub trends: Option<Trends>,
}

impl From<MarketSnapshotItem> for SnapshotView {
    fn from(item: MarketSnapshotItem) -> Self {
        let period = match item.period {
            Period::Day(d) => d.to_string(),
            Period::Hour(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        Self {
            period,
            figures: item.figures,
            trends: item.trends,
        }
    }
}

/// Active listings in one band of prices per sqft: bands 2 % wide, each named by its middle
/// to the whole dollar (what a chart of them resolves).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributionBucket {
    pub price_per_sqft: f64,
    pub listings: u64,
}

/// The bands of [`DistributionBucket`] over a market's prices per sqft (minor units).
fn distribution(prices_per_sqft: &ValueCounts) -> Vec<DistributionBucket> {
    let mut bands: Vec<DistributionBucket> = Vec::new();
    for (minor, listings) in prices_per_sqft.bucketed().values() {
        let price_per_sqft = (minor as f64 / CENTS_PER_DOLLAR as f64).round();
        match bands.last_mut() {
            // Bands under a few dollars round to the same dollar: one band.
            Some(last) if last.price_per_sqft == price_per_sqft => last.listings += listings,
            _ => bands.push(DistributionBucket {
                price_per_sqft,
                listings,
            }),
        }
    }
    bands
}

/// A market's live figures, moving averages and trends, and its latest snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketReport {
    pub market: String,
    pub scope_key: String,
    pub live: MarketFigures,
    /// The latest day's stored trends (all `None` until a day is written with them).
    pub trends: Trends,
    pub daily: Vec<SnapshotView>,
    pub hourly: Vec<SnapshotView>,
    /// The active listings' prices per sqft, ascending.
    pub price_per_sqft_distribution: Vec<DistributionBucket>,
    /// What the amounts are counted in: the market's currency (`USD`, `MAD`; `None` for a
    /// country this build knows no currency of) and its unit of area.
    pub units: MarketUnits,
    /// Markets measured in square metres (outside the US): the figures per square metre.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_square_metre: Option<PerSquareMetre>,
}

/// A market's medians per square metre, in its currency, to the cent. The metrics keep them
/// per sqft (of listings whose area the source gave in whole square metres, converted and
/// rounded to whole sqft), so these are those times 10.7639: within 0.2 % of the medians of
/// the listings' own areas (the rounding, at 25 m² and above).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerSquareMetre {
    pub median_price: Option<f64>,
    pub median_rent: Option<f64>,
}

impl PerSquareMetre {
    pub fn of(figures: &MarketFigures) -> Self {
        let per_sqm = |per_sqft: Option<f64>| {
            per_sqft.map(|v| rounded(v * SQFT_PER_SQUARE_METRE, MONEY_DECIMALS))
        };
        Self {
            median_price: per_sqm(figures.median_price_per_sqft),
            median_rent: per_sqm(figures.median_rent_per_sqft),
        }
    }
}

/// The scope a market names: a city-state is its all-types city scope; a full key
/// (`zip#37201#condo`) names itself.
pub fn scope_of(market: &str) -> String {
    if market.contains('#') {
        market.to_owned()
    } else {
        Scope::city(market).key()
    }
}

/// One market's report; `None` when the market has no figures yet.
pub async fn market_report(
    reader: &impl MarketReader,
    market: &str,
) -> Result<Option<MarketReport>, PortError> {
    let scope_key = scope_of(market);
    let Some(live) = reader.live(&scope_key).await? else {
        return Ok(None);
    };
    let as_of = live.as_of.unwrap_or_else(Utc::now);
    let stored = live
        .into_stored()
        .map_err(|e| PortError::new("read market item", format!("{scope_key}: {e}")))?;
    let figures = stored.aggregate.figures();
    // The stored (closed) periods, and the open ones from the live item just read.
    let read = async |from: String, to: String| {
        let closed = reader.stored_snapshots(&scope_key, &from, &to).await?;
        Ok::<_, PortError>(with_open_periods(
            &scope_key,
            closed,
            Some(&stored.aggregate),
            &from,
            &to,
        ))
    };
    // The last REPORT_DAYS days and REPORT_HOURS hours, each counting the one of `as_of`.
    let daily = read(
        Period::Day((as_of - Duration::days(REPORT_DAYS - 1)).date_naive()).sort_key(),
        Period::Day(as_of.date_naive()).sort_key(),
    )
    .await?;
    let hourly = read(
        Period::hour_of(as_of - Duration::hours(REPORT_HOURS - 1)).sort_key(),
        Period::hour_of(as_of).sort_key(),
    )
    .await?;
    let price_per_sqft_distribution = distribution(&stored.aggregate.price_per_sqft);
    let trends = daily
        .iter()
        .rev()
        .find(|s| s.period == Period::Day(as_of.date_naive()))
        .and_then(|s| s.trends.clone())
        .unwrap_or_default();
    let units = MarketUnits::of(market);
    Ok(Some(MarketReport {
        market: market.to_owned(),
        per_square_metre: (units.area == AreaUnit::Sqm).then(|| PerSquareMetre::of(&figures)),
        units,
        trends,
        live: figures,
        scope_key,
        daily: daily.into_iter().map(SnapshotView::from).collect(),
        hourly: hourly.into_iter().map(SnapshotView::from).collect(),
        price_per_sqft_distribution,
    }))
}

/// A watched market at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketHeadline {
    pub market: String,
    pub sources: Vec<String>,
    /// `None` until the metrics function has seen the market's listings.
    pub as_of: Option<DateTime<Utc>>,
    pub active_listings: Option<i64>,
    pub median_price: Option<f64>,
    pub median_price_change_7d_pct: Option<f64>,
    pub price_cuts_7d: Option<i64>,
}

/// A page of watched markets; `next` is the `after` of the next page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketList {
    pub markets: Vec<MarketHeadline>,
    pub next: Option<String>,
}

/// Markets whose live items one request reads at once.
const MARKET_READS_IN_FLIGHT: usize = 8;

/// A market's live figures and the trends of its open day, as its report shows them, from
/// its live item alone (the day's trends come from the closes the item keeps); `None` when
/// the market has no figures yet.
async fn headline_figures(
    reader: &impl MarketReader,
    market: &str,
) -> Result<Option<(MarketFigures, Trends)>, PortError> {
    let scope_key = scope_of(market);
    let Some(live) = reader.live(&scope_key).await? else {
        return Ok(None);
    };
    let stored = live
        .into_stored()
        .map_err(|e| PortError::new("read market item", format!("{scope_key}: {e}")))?;
    let trends = realty_metrics::process::open_snapshots(&scope_key, &stored.aggregate)
        .into_iter()
        .find(|s| matches!(s.period, Period::Day(_)))
        .and_then(|s| s.trends)
        .unwrap_or_default();
    Ok(Some((stored.aggregate.figures(), trends)))
}

/// The watched markets after `after`, `limit` of them, with their headline figures.
pub async fn market_list(
    reader: &impl MarketReader,
    config: &ConfigSnapshot,
    limit: usize,
    after: Option<&str>,
) -> Result<MarketList, PortError> {
    let mut watched: Vec<_> = config
        .markets
        .iter()
        .filter(|m| after.is_none_or(|a| m.market.as_str() > a))
        .collect();
    watched.sort_by(|a, b| a.market.cmp(&b.market));
    let more = watched.len() > limit;
    watched.truncate(limit);
    // A headline is its market's live item alone (one read, where a whole report took three),
    // read a few markets at a time: a page of 200 was 600 reads one after another.
    // Owned items: see `recent_alerts`.
    let names: Vec<(String, Vec<String>)> = watched
        .iter()
        .map(|m| (m.market.clone(), m.sources.clone()))
        .collect();
    let markets = futures::stream::iter(names)
        .map(|(market, sources)| async move {
            let headline = headline_figures(reader, &market).await?;
            Ok::<_, PortError>(MarketHeadline {
                market,
                sources,
                as_of: headline.as_ref().and_then(|(f, _)| f.as_of),
                active_listings: headline.as_ref().map(|(f, _)| f.active_listings),
                median_price: headline.as_ref().and_then(|(f, _)| f.median_price),
                median_price_change_7d_pct: headline
                    .as_ref()
                    .and_then(|(_, t)| t.median_price_change_7d_pct),
                price_cuts_7d: headline.as_ref().map(|(f, _)| f.price_cuts_7d),
            })
        })
        .buffered(MARKET_READS_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    let next = more
        .then(|| watched.last().map(|m| m.market.clone()))
        .flatten();
    Ok(MarketList { markets, next })
}

/// A market's snapshots over a range of days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub market: String,
    /// `day` or `hour`.
    pub period: &'static str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub snapshots: Vec<SnapshotView>,
}

/// The snapshots from `from` to `to` (whole days, inclusive; checked by
/// [`super::routes::history_range`]).
pub async fn history(
    reader: &impl MarketReader,
    market: &str,
    granularity: Granularity,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<History, PortError> {
    let (first, last, period) = match granularity {
        Granularity::Day => (
            Period::Day(from).sort_key(),
            Period::Day(to).sort_key(),
            "day",
        ),
        Granularity::Hour => (
            format!("H#{}T00", from.format("%Y-%m-%d")),
            format!("H#{}T23", to.format("%Y-%m-%d")),
            "hour",
        ),
    };
    let snapshots = reader.snapshots(&scope_of(market), &first, &last).await?;
    Ok(History {
        market: market.to_owned(),
        period,
        from,
        to,
        snapshots: snapshots.into_iter().map(SnapshotView::from).collect(),
    })
}

/// When each watched market last had news, and each source was last polled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub markets: Vec<MarketHealth>,
    pub sources: Vec<SourceHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketHealth {
    pub market: String,
    pub last_event_at: Option<DateTime<Utc>>,
    pub minutes_since_event: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceHealth {
    pub source: String,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub requests_this_month: u64,
    pub monthly_budget: Option<u64>,
}

/// The health of what the configuration store says was polled.
pub fn health(config: &ConfigSnapshot, now: DateTime<Utc>) -> Health {
    let markets = config
        .markets
        .iter()
        .map(|m| {
            let last = config
                .polls
                .values()
                .filter(|p| p.market == m.market)
                .filter_map(|p| p.last_event_at)
                .max();
            MarketHealth {
                market: m.market.clone(),
                last_event_at: last,
                minutes_since_event: last.map(|t| (now - t).num_minutes().max(0)),
            }
        })
        .collect();
    let mut names: Vec<&str> = config
        .markets
        .iter()
        .flat_map(|m| m.sources.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    let sources = names
        .into_iter()
        .map(|s| SourceHealth {
            source: s.to_owned(),
            last_poll_at: config
                .polls
                .values()
                .filter(|p| p.source == s)
                .map(|p| p.polled_at)
                .max(),
            requests_this_month: config.used.get(s).copied().unwrap_or(0),
            monthly_budget: config.budgets.get(s).copied(),
        })
        .collect();
    Health { markets, sources }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use realty_metrics::memory::MemoryStores;
    use realty_metrics::process::process_batch;
    use realty_metrics::testing::{SHARD, block_on, listing, records_of};
    use realty_model::listing::{ListingEvent, ListingStatus};
    use realty_model::markets::WatchedMarket;

    fn watched(market: &str) -> WatchedMarket {
        serde_json::from_value(serde_json::json!({
            "market": market, "sources": ["zillow"], "poll_every_minutes": 60
        }))
        .expect("a watched market")
    }

    #[test]
    fn units_are_those_of_the_place_a_key_names() {
        let dirhams = MarketUnits::of("ma/casablanca");
        assert_eq!(
            (dirhams.currency, dirhams.area),
            (Some("MAD"), AreaUnit::Sqm)
        );
        for key in ["city#ma/casablanca#condo", "zip#ma/20000#all"] {
            assert_eq!(MarketUnits::of(key), dirhams, "{key}");
        }
        let dollars = MarketUnits::of("nashville-tn");
        assert_eq!(
            (dollars.currency, dollars.area),
            (Some("USD"), AreaUnit::Sqft)
        );
        for key in ["city#nashville-tn#all", "zip#37201#condo"] {
            assert_eq!(MarketUnits::of(key), dollars, "{key}");
        }
    }

    /// A report carries the last 60 days and 48 hours, each counting the one of its last
    /// event, of a market with a snapshot for every one of them and more before.
    #[test]
    fn a_report_carries_its_days_and_hours_exactly() {
        let start = Utc
            .with_ymd_and_hms(2026, 9, 1, 12, 0, 0)
            .single()
            .expect("time");
        let mut times: Vec<_> = (0..70).map(|d| start + Duration::days(d)).collect();
        let last_day = start + Duration::days(70);
        times.extend((0..60).map(|h| last_day + Duration::hours(h)));
        let events: Vec<ListingEvent> = times
            .iter()
            .enumerate()
            .map(|(n, at)| {
                let n = u32::try_from(n).expect("few");
                let l = listing(n, 0, 30_000_000, ListingStatus::Active, *at);
                ListingEvent::new_listing(l, "poll")
            })
            .collect();
        let stores = MemoryStores::default();
        let records = records_of(&events);
        // A batch a day, then one an hour, as the stream would bring them.
        for one in records.chunks(1) {
            let outcome = block_on(process_batch(&stores.ports(), SHARD, one));
            assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
        }
        let report = block_on(market_report(&stores, "nashville-tn"))
            .expect("a report")
            .expect("figures");
        assert_eq!(
            (report.daily.len(), report.hourly.len()),
            (REPORT_DAYS as usize, REPORT_HOURS as usize)
        );
    }

    /// A market's headline is what its report shows (live figures, the open day's 7-day
    /// change), read from its live item alone.
    #[test]
    fn a_headline_is_its_report_s_figures() {
        let day = |d: i64| {
            Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
                .single()
                .expect("time")
                + Duration::days(d)
        };
        let stores = MemoryStores::default();
        let mut current: Vec<_> = (0..24u32)
            .map(|n| {
                let price = 30_000_000 + i64::from(n) * 1_000_000;
                listing(n, n as usize, price, ListingStatus::Active, day(0))
            })
            .collect();
        let mut events: Vec<ListingEvent> = current
            .iter()
            .map(|l| ListingEvent::new_listing(l.clone(), "poll-0"))
            .collect();
        let mut sent = 0;
        for d in 1..=10 {
            // Every day a third of the listings cut their price by 2 %.
            for l in current.iter_mut().skip(d as usize % 3).step_by(3) {
                let mut after = l.clone();
                after.price_minor = l.price_minor / 50 * 49;
                after.observed_at = day(d);
                events.push(ListingEvent::changed(l, after.clone(), "poll").expect("a change"));
                *l = after;
            }
            let records = records_of(&events);
            let outcome = block_on(process_batch(&stores.ports(), SHARD, &records[sent..]));
            assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
            sent = records.len();
        }
        let config = ConfigSnapshot {
            markets: ["nashville-tn", "nowhere-zz", "syracuse-ny"]
                .map(watched)
                .to_vec(),
            ..Default::default()
        };
        let list = block_on(market_list(&stores, &config, 10, None)).expect("a list");
        assert_eq!(list.markets.len(), 3);
        for headline in &list.markets {
            let report = block_on(market_report(&stores, &headline.market)).expect("a report");
            let Some(report) = report else {
                assert_eq!(headline.as_of, None, "{}", headline.market);
                continue;
            };
            assert!(report.trends.median_price_change_7d_pct.is_some());
            assert_eq!(
                (
                    headline.as_of,
                    headline.active_listings,
                    headline.median_price,
                    headline.median_price_change_7d_pct,
                    headline.price_cuts_7d
                ),
                (
                    report.live.as_of,
                    Some(report.live.active_listings),
                    report.live.median_price,
                    report.trends.median_price_change_7d_pct,
                    Some(report.live.price_cuts_7d)
                ),
                "{}",
                headline.market
            );
        }
    }
}
