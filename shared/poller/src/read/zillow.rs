//! One full read of a market's Zillow search, its price range split into bands whose
//! results the pages can reach.

use chrono::{DateTime, Utc};

use super::request::{Get, rapidapi_headers};
use super::search::market_place;
use super::tally::{Tally, take_page};
use super::{MarketSearch, ReadStats, SourceEndpoint};
use crate::fetch::{FetchError, HttpPolicy, RateLimiter, fetch_page};
use crate::raw::KeepPages;
use realty_model::listing::Offer;
use realty_model::markets::PriceBand;
use realty_sources::zillow::{BandPlan, BandSchedule, ZillowSearch, ZillowStatusType};
use realty_sources::{Paging, zillow};

#[allow(clippy::too_many_arguments)]
pub(super) async fn read_zillow(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    MarketSearch {
        market,
        filter,
        offer,
    }: MarketSearch<'_>,
    observed_at: DateTime<Utc>,
    pages: &impl KeepPages,
    stats: &mut ReadStats,
) -> Result<Tally, FetchError> {
    let (city, state) = market_place(endpoint, market)?;
    let (status_type, home_types, prices) = match offer {
        Offer::Sale => (
            ZillowStatusType::ForSale,
            filter.home_types.clone(),
            filter.prices,
        ),
        Offer::Rent => (ZillowStatusType::ForRent, Vec::new(), PriceBand::ALL),
    };
    let url = format!(
        "{}/propertyExtendedSearch",
        endpoint.base_url.trim_end_matches('/')
    );
    let parse = |b: &[u8]| zillow::parse_page(b, observed_at);
    let mut tally = Tally::new();
    let mut schedule = BandSchedule::new(prices);
    while let Some(scheduled) = schedule.next_band() {
        let search = ZillowSearch {
            locations: vec![format!("{city}, {state}")],
            status_type,
            home_types: home_types.clone(),
            price_band: scheduled.band,
        };
        let request = |page: u32| -> Result<Get, FetchError> {
            let query = search
                .query_params(page)
                .map_err(|e| FetchError::NotThatApi {
                    url: url.clone(),
                    error: e.to_string(),
                })?;
            Ok(Get {
                url: url.clone(),
                query,
                headers: rapidapi_headers(endpoint),
            })
        };
        let first = fetch_page(client, limiter, policy, &request(1)?, parse).await?;
        let Paging::Zillow(paging) = take_page(&mut tally, first, pages, stats).await else {
            tally.expect(None);
            continue;
        };
        match schedule.plan(scheduled, &paging) {
            // Page 1 of the whole band was read, but the halves count its listings.
            BandPlan::Split { .. } => continue,
            BandPlan::Stop(why) => {
                tracing::warn!(market, band = ?scheduled.band, total = ?paging.total_result_count, ?why, "price bands stopped: the read is incomplete");
                tally.bounded = true;
            }
            BandPlan::Fetch {
                last_page,
                unreachable_results,
            } => {
                tally.unreachable |= unreachable_results > 0;
                // A bare `props` array says nothing of how many there are.
                tally.expect(paging.total_result_count);
                for n in 2..=last_page {
                    let fetched = fetch_page(client, limiter, policy, &request(n)?, parse).await?;
                    take_page(&mut tally, fetched, pages, stats).await;
                }
            }
        }
    }
    Ok(tally)
}
