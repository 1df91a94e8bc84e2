//! The API's lists: a market's listings of interest (the index the metrics function keeps,
//! judged again against the live figures) and the recent alerts (the feed the alerts
//! function keeps), newest first, paged by opaque tokens.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::views::scope_of;
use realty_alerts::feed::{AlertFeedItem, feed_key};
use realty_alerts::message::AlertBody;
use realty_alerts::rules::AlertKind;
use realty_metrics::aggregate::MarketFigures;
use realty_metrics::interest::{InterestingListing, anomaly_of, interest_key, is_undervalued};
use realty_metrics::items::{InterestItem, MarketLiveItem};
use realty_metrics::reader::MarketReader;
use realty_model::listing::PropertyType;
use realty_model::ports::PortError;
use realty_model::scope::Scope;
use realty_model::state::InterestKind;

/// Entries of a set (undervalued, anomalous) read to rank a market's list: a market's sets
/// hold the listings that qualified when last judged, a small share of its listings (about
/// 6 MB at this many, a few Query pages). A set past it is ranked from this many of its
/// entries, in key (hash) order, and the list says so (`complete: false`).
pub const MAX_SET_ENTRIES_READ: usize = 10_000;

/// One of a market's lists of interest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterestList {
    pub market: String,
    pub kind: &'static str,
    /// When the market's figures the list was judged against were last updated.
    pub as_of: Option<DateTime<Utc>>,
    pub listings: Vec<InterestingListing>,
    /// `after` of the next page (price cuts only: the two rankings are one page).
    pub next: Option<String>,
    /// Whether a ranking was made of every entry of its set; `false` when the set held more
    /// than [`MAX_SET_ENTRIES_READ`] (the first of them by key were ranked). Always `true` for
    /// the price cuts, which page instead.
    pub complete: bool,
}

/// A market's latest price cuts (newest first, a page of `limit` after the token `after`),
/// or its undervalued (lowest price per sqft against the median first) or anomalous listings
/// (furthest from the median first), `limit` of them, those that still qualify against the
/// market's live figures and have not expired by `now`; `None` when the market has no
/// figures yet.
pub async fn listings_of_interest(
    reader: &impl MarketReader,
    market: &str,
    kind: InterestKind,
    limit: usize,
    after: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<InterestList>, PortError> {
    let Some(city) = reader.live(&scope_of(market)).await? else {
        return Ok(None);
    };
    let as_of = city.as_of;
    let city = figures_of(&scope_of(market), &city)?;
    let key = interest_key(market);
    let prefix = kind.prefix();
    let mut list = InterestList {
        market: market.to_owned(),
        kind: kind.as_str(),
        as_of,
        listings: Vec::new(),
        next: None,
        complete: true,
    };
    if kind == InterestKind::PriceCut {
        let (items, next) = reader
            .latest::<InterestItem>(&key, &prefix, after, limit)
            .await?;
        let read = items.len();
        list.listings = items
            .into_iter()
            .filter(|i| !expired(i.expires_at, now))
            .map(|i| i.listing)
            .collect();
        // Cuts come newest first and all expire as long after they were made: past an
        // expired one, every older one has expired too.
        list.next = next.filter(|_| list.listings.len() == read);
        return Ok(Some(list));
    }
    let (mut items, more) = reader
        .latest::<InterestItem>(&key, &prefix, None, MAX_SET_ENTRIES_READ)
        .await?;
    items.retain(|i| !expired(i.expires_at, now));
    list.complete = more.is_none();
    if !list.complete {
        tracing::warn!(
            market,
            kind = kind.as_str(),
            "a list of interest ranked from part of its set"
        );
    }
    let typed = if kind == InterestKind::Undervalued {
        typed_figures(reader, market, &items).await?
    } else {
        BTreeMap::new()
    };
    let mut ranked: Vec<(f64, InterestingListing)> = items
        .into_iter()
        .filter_map(|item| ranked_listing(item, kind, &city, &typed))
        .collect();
    ranked.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then_with(|| a.1.listing_id.cmp(&b.1.listing_id))
    });
    list.listings = ranked.into_iter().take(limit).map(|(_, l)| l).collect();
    Ok(Some(list))
}

/// The market's figures for each property type of `items`, as the bargains were judged
/// (one read per type); `None` for a type without its own figures.
async fn typed_figures(
    reader: &impl MarketReader,
    market: &str,
    items: &[InterestItem],
) -> Result<BTreeMap<String, Option<MarketFigures>>, PortError> {
    let mut typed: BTreeMap<String, Option<MarketFigures>> = BTreeMap::new();
    for item in items {
        let t = &item.listing.property_type;
        if !typed.contains_key(t) {
            let figures = match typed_scope(market, t) {
                Some(key) => match reader.live(&key).await? {
                    Some(live) => Some(figures_of(&key, &live)?),
                    None => None,
                },
                None => None,
            };
            typed.insert(t.clone(), figures);
        }
    }
    Ok(typed)
}

/// An entry of a set (undervalued or anomalous) with its figures against the median, and
/// its rank (lowest first); `None` when it has no price per sqft, no median to judge it
/// against, or no longer qualifies.
fn ranked_listing(
    item: InterestItem,
    kind: InterestKind,
    city: &MarketFigures,
    typed: &BTreeMap<String, Option<MarketFigures>>,
) -> Option<(f64, InterestingListing)> {
    let mut listing = item.listing;
    let ppsf = listing.price_per_sqft?;
    // An anomaly is told and ranked against the figures that bound it (its city's);
    // a bargain against its type's median, as it was judged.
    let median = match kind {
        InterestKind::Anomalous => city.median_price_per_sqft.filter(|m| *m > 0.0),
        _ => typed
            .get(&listing.property_type)
            .and_then(|f| f.as_ref()?.median_price_per_sqft_to_judge())
            .or(city.median_price_per_sqft_to_judge()),
    }?;
    let to_median = (ppsf / median * 1e4).round() / 1e4;
    listing.market_median_price_per_sqft = Some((median * 100.0).round() / 100.0);
    listing.price_per_sqft_to_median = Some(to_median);
    let rank = match kind {
        InterestKind::Undervalued => {
            let ratio = item
                .undervalued_ratio
                .unwrap_or(realty_model::config::DEFAULT_UNDERVALUED_RATIO);
            if !is_undervalued(ppsf, median, ratio) {
                return None;
            }
            to_median
        }
        _ => {
            listing.anomaly = Some(anomaly_of(ppsf, city)?);
            -(to_median - 1.0).abs()
        }
    };
    Some((rank, listing))
}

/// Whether an item whose TTL is `expires_at` (epoch seconds) has expired by `now`: DynamoDB
/// deletes expired items only within a few days, and until then a Query still returns them.
fn expired(expires_at: i64, now: DateTime<Utc>) -> bool {
    expires_at <= now.timestamp()
}

/// Feed Queries one request has in flight at once.
const FEED_READS_IN_FLIGHT: usize = 8;

/// A page of recent alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertFeed {
    pub alerts: Vec<AlertBody>,
    /// `before` of the next page.
    pub next: Option<String>,
}

/// The alerts of `markets` (of type `kind`, or all), newest first, `limit` of them, older
/// than the token `before` (`<observed_at>#<hash>`, the position after a type's prefix in
/// the feed's sort keys, which orders alerts of every market and type alike), none expired
/// by `now`.
pub async fn recent_alerts(
    reader: &impl MarketReader,
    markets: &[String],
    kind: Option<AlertKind>,
    limit: usize,
    before: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AlertFeed, PortError> {
    let kinds: Vec<AlertKind> = match kind {
        Some(k) => vec![k],
        None => AlertKind::ALL.to_vec(),
    };
    // (position, body), from every market and type; each read stops at `limit`, so the
    // newest `limit` of all are among them.
    // One Query per market and type, a few at a time (in any order: the rows are sorted).
    // Owned: a future that borrows its item from the iterator is not `Send` for every
    // lifetime (a known limit of the compiler), which the local server's router requires.
    let reads: Vec<(String, AlertKind)> = markets
        .iter()
        .flat_map(|market| kinds.iter().map(move |k| (market.clone(), *k)))
        .collect();
    let pages: Vec<(Vec<(String, String)>, bool)> = futures::stream::iter(reads)
        .map(|(market, k)| async move {
            let prefix = format!("{}#", k.as_str());
            let below = before.map(|b| format!("{prefix}{b}"));
            let (page, next) = reader
                .latest::<AlertFeedItem>(&feed_key(&market), &prefix, below.as_deref(), limit)
                .await?;
            // Newest first, each in the feed as long: past one that has left it, all have.
            let live = page
                .iter()
                .take_while(|r| !expired(r.leaves_feed_at(), now))
                .count();
            let more = next.is_some() && live == page.len();
            let rows = page
                .into_iter()
                .take(live)
                .filter_map(|r| {
                    let position = r.sk.strip_prefix(&prefix)?.to_owned();
                    Some((position, r.body))
                })
                .collect();
            Ok::<_, PortError>((rows, more))
        })
        .buffer_unordered(FEED_READS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut more = pages.iter().any(|(_, next)| *next);
    let mut rows: Vec<(String, String)> = pages.into_iter().flat_map(|(r, _)| r).collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    more |= rows.len() > limit;
    rows.truncate(limit);
    let next = more.then(|| rows.last().map(|(p, _)| p.clone())).flatten();
    let mut alerts = Vec::with_capacity(rows.len());
    for (position, body) in rows {
        match serde_json::from_str::<AlertBody>(&body) {
            Ok(alert) => alerts.push(alert),
            // Written by this project's alerts function: one that does not read is logged
            // and left out rather than failing the page.
            Err(e) => tracing::warn!(position, error = %e, "unreadable alert in the feed"),
        }
    }
    Ok(AlertFeed { alerts, next })
}

/// The scope key of a market's property type (`city#nashville-tn#condo`), for a property
/// type named as in the listing JSON.
fn typed_scope(market: &str, property_type: &str) -> Option<String> {
    let t: PropertyType =
        serde_json::from_value(serde_json::Value::String(property_type.to_owned())).ok()?;
    Some(
        Scope {
            property_type: Some(t),
            ..Scope::city(market)
        }
        .key(),
    )
}

/// The figures of the live item of `scope_key`.
fn figures_of(scope_key: &str, live: &MarketLiveItem) -> Result<MarketFigures, PortError> {
    live.figures()
        .map_err(|e| PortError::new("read market item", format!("{scope_key}: {e}")))
}
