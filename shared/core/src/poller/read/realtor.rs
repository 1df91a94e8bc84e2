//! One full read of a market's Realtor.com search.

use chrono::{DateTime, Utc};

use super::request::{Post, rapidapi_headers};
use super::search::market_place;
use super::tally::{Tally, take_page};
use super::{MarketSearch, ReadStats, SourceEndpoint};
use crate::listing::Offer;
use crate::poller::fetch::{FetchError, HttpPolicy, RateLimiter, fetch_page};
use crate::poller::raw::KeepPages;
use crate::sources::realtor::{RealtorArea, RealtorSearch, RealtorStatus};
use crate::sources::{Paging, realtor};

#[allow(clippy::too_many_arguments)]
pub(super) async fn read_realtor(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    MarketSearch { market, offer, .. }: MarketSearch<'_>,
    observed_at: DateTime<Utc>,
    pages: &impl KeepPages,
    stats: &mut ReadStats,
) -> Result<Tally, FetchError> {
    let (city, state_code) = market_place(endpoint, market)?;
    let status = match offer {
        Offer::Sale => RealtorStatus::ForSale,
        Offer::Rent => RealtorStatus::ForRent,
    };
    let url = format!(
        "{}/properties/v3/list",
        endpoint.base_url.trim_end_matches('/')
    );
    let parse = |b: &[u8]| realtor::parse_page(b, observed_at);
    let mut tally = Tally::new();
    let mut search = Some(RealtorSearch::first_page(
        RealtorArea::City { city, state_code },
        vec![status],
    ));
    let mut total = None;
    let mut first = true;
    while let Some(s) = search.take() {
        let body = s.body().map_err(|e| FetchError::NotThatApi {
            url: url.clone(),
            error: e.to_string(),
        })?;
        let fetched = fetch_page(
            client,
            limiter,
            policy,
            &Post {
                url: url.clone(),
                body,
                headers: rapidapi_headers(endpoint),
            },
            parse,
        )
        .await?;
        if let Paging::Realtor(paging) = take_page(&mut tally, fetched, pages, stats).await {
            // `home_search: null` has no total: an answer, but not "nothing for sale".
            if first {
                total = paging.total;
            }
            search = s.next_page(&paging);
        }
        first = false;
    }
    tally.expect(total);
    Ok(tally)
}
