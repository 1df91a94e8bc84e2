//! One full read of a market's property portal searches.

use chrono::{DateTime, Utc};

use super::tally::{Tally, take_page};
use super::{MarketSearch, ReadStats, SourceEndpoint};
use crate::detect::PollState;
use crate::fetch::{FetchError, HttpPolicy, RateLimiter};
use crate::portal::implausibly_empty_searches;
use crate::raw::KeepPages;

/// One full read of a market's portal searches (flats and houses of the offer), as
/// [`crate::portal::read_pages`] fetches them.
#[allow(clippy::too_many_arguments)]
pub(super) async fn read_portal(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    MarketSearch { market, offer, .. }: MarketSearch<'_>,
    observed_at: DateTime<Utc>,
    previous: &PollState,
    pages: &impl KeepPages,
    stats: &mut ReadStats,
) -> Result<Tally, FetchError> {
    let crawler = endpoint
        .crawler
        .as_ref()
        .ok_or_else(|| FetchError::NotThatApi {
            url: endpoint.base_url.clone(),
            error: "no crawler configured for this portal".into(),
        })?;
    let read = crate::portal::read_pages(
        client,
        limiter,
        policy,
        endpoint.kind,
        &endpoint.base_url,
        crawler,
        market,
        offer,
        observed_at,
    )
    .await?;
    let mut tally = Tally::new();
    for fetched in read.pages {
        take_page(&mut tally, fetched, pages, stats).await;
    }
    tally.expect(read.expected);
    let emptied = implausibly_empty_searches(previous, offer, &read.empty_searches);
    if !emptied.is_empty() {
        tracing::warn!(
            market,
            source = endpoint.kind.as_str(),
            searches = ?emptied,
            "a search said it had no result where the last read found listings: the read is incomplete, and the missing listings' own pages are asked"
        );
    }
    // Incomplete, and out of the pages' reach: what is missing is asked of its own page.
    let unreachable = read.unreachable || !emptied.is_empty();
    tally.unreachable |= unreachable;
    stats.crawl_limited |= unreachable;
    Ok(tally)
}
