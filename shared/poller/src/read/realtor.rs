//! One full read of a market's Realtor.com search.

use chrono::{DateTime, Utc};

use super::request::{Post, rapidapi_headers};
use super::search::market_place;
use super::tally::{Tally, take_page};
use super::{MarketSearch, ReadStats, SourceEndpoint};
use crate::fetch::{FetchError, HttpPolicy, RateLimiter, fetch_page};
use crate::raw::KeepPages;
use realty_model::listing::Offer;
use realty_sources::realtor::{RealtorArea, RealtorPaging, RealtorSearch, RealtorStatus};
use realty_sources::{Paging, realtor};

/// Most pages one Realtor.com read asks for (200 results each, 50,000 in all: more than any
/// US city lists for sale): an API that keeps answering is cut off, the read incomplete.
pub const MAX_REALTOR_PAGES: u32 = 250;

/// One read, page by page by `offset` towards the first page's `total`; stopped, incomplete,
/// at [`MAX_REALTOR_PAGES`] or at a page that adds no listing not already read.
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
    // What the first page said the query holds: later pages page towards it.
    let mut total = None;
    let mut pages_read = 0u32;
    while let Some(s) = search.take() {
        if pages_read == MAX_REALTOR_PAGES {
            tracing::warn!(
                market,
                pages = pages_read,
                ?total,
                "Realtor.com read stopped at its page limit: the read is incomplete"
            );
            tally.bounded = true;
            break;
        }
        pages_read += 1;
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
        let ids_before = tally.known_ids();
        let Paging::Realtor(paging) = take_page(&mut tally, fetched, pages, stats).await else {
            continue;
        };
        // `home_search: null` has no total: an answer, but not "nothing for sale".
        if pages_read == 1 {
            total = paging.total;
        }
        if paging.records_on_page > 0 && tally.known_ids() == ids_before {
            // Records, none of them new (or none with an id): the API repeats a page
            // (ignores `offset`), and paging on would bring the same ones until `total`.
            tracing::warn!(
                market,
                offset = s.offset,
                "a Realtor.com page added no new listing: the read is incomplete"
            );
            tally.bounded = true;
            break;
        }
        search = s.next_page(&RealtorPaging { total, ..paging });
    }
    tally.expect(total);
    Ok(tally)
}
