//! Reading one market from one source, page by page, into a [`MarketRead`].

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};

use super::detect::MarketRead;
use super::fetch::{FetchError, Fetched, HttpPolicy, PageRequest, RateLimiter, fetch_page};
use crate::listing::Listing;
use crate::sources::realtor::{RealtorArea, RealtorSearch, RealtorStatus};
use crate::sources::reso::ResoSync;
use crate::sources::zillow::{
    BandPlan, PriceBand, ZillowSearch, ZillowStatusType, plan_price_band,
};
use crate::sources::{Page, Paging, Reject, SourceKind, realtor, reso, zillow};

/// Where and how to reach one source.
#[derive(Debug, Clone)]
pub struct SourceEndpoint {
    pub kind: SourceKind,
    /// Base URL: `https://zillow-com1.p.rapidapi.com`, or a simulator's.
    pub base_url: String,
    /// RapidAPI key (Zillow, Realtor.com) or bearer token (RESO).
    pub key: String,
}

/// What reading a market produced, besides its listings.
#[derive(Debug, Clone, Default)]
pub struct ReadStats {
    pub pages: u32,
    pub retries: u32,
    pub rejects: Vec<Reject>,
    /// Extra full reads made because the pages did not add up (a listing moved between pages).
    pub rereads: u32,
}

/// A market key (`san-francisco-ca`) as a city and a state code.
pub fn city_and_state(market: &str) -> Option<(String, String)> {
    let (city, state) = market.rsplit_once('-')?;
    if city.is_empty() || state.len() != 2 {
        return None;
    }
    let city = city
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    Some((city, state.to_uppercase()))
}

/// [`city_and_state`], or the error a poll of that market reports.
fn market_place(endpoint: &SourceEndpoint, market: &str) -> Result<(String, String), FetchError> {
    city_and_state(market).ok_or_else(|| FetchError::NotThatApi {
        url: endpoint.base_url.clone(),
        error: format!("market {market:?} is not a city-state key such as nashville-tn"),
    })
}

struct Get {
    url: String,
    query: Vec<(&'static str, String)>,
    headers: Vec<(&'static str, String)>,
}

impl PageRequest for Get {
    fn build(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut r = client.get(&self.url).query(&self.query);
        for (k, v) in &self.headers {
            r = r.header(*k, v);
        }
        r
    }
    fn url(&self) -> String {
        self.url.clone()
    }
}

struct Post {
    url: String,
    body: serde_json::Value,
    headers: Vec<(&'static str, String)>,
}

impl PageRequest for Post {
    fn build(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut r = client.post(&self.url).json(&self.body);
        for (k, v) in &self.headers {
            r = r.header(*k, v);
        }
        r
    }
    fn url(&self) -> String {
        self.url.clone()
    }
}

fn rapidapi_headers(endpoint: &SourceEndpoint) -> Vec<(&'static str, String)> {
    let host = endpoint
        .base_url
        .split("://")
        .nth(1)
        .unwrap_or(&endpoint.base_url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    vec![
        ("X-RapidAPI-Key", endpoint.key.clone()),
        ("X-RapidAPI-Host", host),
    ]
}

/// Reads one market: every page, re-reading once more when the pages do not add up to the
/// total the source reports (so a listing that moved between pages is not taken for
/// delisted).
pub async fn read_market(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    market: &str,
    cursor: Option<DateTime<Utc>>,
    observed_at: DateTime<Utc>,
) -> Result<(MarketRead, ReadStats), FetchError> {
    let mut stats = ReadStats::default();
    let mut union: BTreeMap<String, Listing> = BTreeMap::new();
    let mut read = MarketRead::default();
    for pass in 0..3 {
        let pass_read = match endpoint.kind {
            SourceKind::Zillow => {
                read_zillow(
                    client,
                    limiter,
                    policy,
                    endpoint,
                    market,
                    observed_at,
                    &mut stats,
                )
                .await?
            }
            SourceKind::Realtor => {
                read_realtor(
                    client,
                    limiter,
                    policy,
                    endpoint,
                    market,
                    observed_at,
                    &mut stats,
                )
                .await?
            }
            SourceKind::Reso => {
                return read_reso(
                    client,
                    limiter,
                    policy,
                    endpoint,
                    cursor,
                    observed_at,
                    stats,
                )
                .await;
            }
            SourceKind::File => {
                return Err(FetchError::NotThatApi {
                    url: endpoint.base_url.clone(),
                    error: "file exports are replayed with realty, not polled".into(),
                });
            }
        };
        for l in pass_read.listings {
            union.insert(l.id.as_str().to_owned(), l);
        }
        read.complete = pass_read.complete;
        if pass_read.complete {
            break;
        }
        if pass < 2 {
            stats.rereads += 1;
        }
    }
    read.listings = union.into_values().collect();
    Ok((read, stats))
}

fn tally(fetched: Fetched, stats: &mut ReadStats, seen: &mut BTreeMap<String, Listing>) -> Page {
    stats.pages += 1;
    stats.retries += fetched.retries;
    let mut page = fetched.page;
    stats.rejects.append(&mut page.rejects);
    for l in page.listings.drain(..) {
        seen.insert(l.id.as_str().to_owned(), l);
    }
    page
}

async fn read_zillow(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    market: &str,
    observed_at: DateTime<Utc>,
    stats: &mut ReadStats,
) -> Result<MarketRead, FetchError> {
    let (city, state) = market_place(endpoint, market)?;
    let url = format!(
        "{}/propertyExtendedSearch",
        endpoint.base_url.trim_end_matches('/')
    );
    let parse = |b: &[u8]| zillow::parse_page(b, observed_at);
    let mut seen = BTreeMap::new();
    let mut expected: u64 = 0;
    let mut complete = true;
    let mut bands = VecDeque::from([PriceBand::ALL]);
    while let Some(band) = bands.pop_front() {
        let search = ZillowSearch {
            locations: vec![format!("{city}, {state}")],
            status_type: ZillowStatusType::ForSale,
            home_types: Vec::new(),
            price_band: band,
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
        let page = tally(first, stats, &mut seen);
        let Paging::Zillow(paging) = page.paging else {
            continue;
        };
        match plan_price_band(band, &paging) {
            BandPlan::Split { lower, upper } => {
                bands.push_back(lower);
                bands.push_back(upper);
                continue;
            }
            BandPlan::Fetch {
                last_page,
                unreachable_results,
            } => {
                if unreachable_results > 0 {
                    complete = false;
                }
                expected += paging.total_result_count.unwrap_or(0);
                for n in 2..=last_page {
                    let fetched = fetch_page(client, limiter, policy, &request(n)?, parse).await?;
                    tally(fetched, stats, &mut seen);
                }
            }
        }
    }
    // The source's own counts include records we reject; a shortfall beyond them means a
    // listing moved between pages while they were read.
    let accounted = seen.len() as u64 + stats.rejects.len() as u64;
    Ok(MarketRead {
        listings: seen.into_values().collect(),
        complete: complete && accounted >= expected,
        cursor: None,
    })
}

async fn read_realtor(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    market: &str,
    observed_at: DateTime<Utc>,
    stats: &mut ReadStats,
) -> Result<MarketRead, FetchError> {
    let (city, state_code) = market_place(endpoint, market)?;
    let url = format!(
        "{}/properties/v3/list",
        endpoint.base_url.trim_end_matches('/')
    );
    let parse = |b: &[u8]| realtor::parse_page(b, observed_at);
    let mut seen = BTreeMap::new();
    let mut search = Some(RealtorSearch::first_page(
        RealtorArea::City { city, state_code },
        vec![RealtorStatus::ForSale],
    ));
    let mut expected = 0;
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
        let page = tally(fetched, stats, &mut seen);
        if let Paging::Realtor(paging) = &page.paging {
            expected = paging.total.unwrap_or(0);
            search = s.next_page(paging);
        }
    }
    let accounted = seen.len() as u64 + stats.rejects.len() as u64;
    Ok(MarketRead {
        listings: seen.into_values().collect(),
        complete: accounted >= expected,
        cursor: None,
    })
}

/// RESO feeds are read incrementally (changes since the cursor), so a listing's absence says
/// nothing: its end comes as a status (Closed, Withdrawn, Delete...). Such a read is never
/// `complete`.
async fn read_reso(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    cursor: Option<DateTime<Utc>>,
    observed_at: DateTime<Utc>,
    mut stats: ReadStats,
) -> Result<(MarketRead, ReadStats), FetchError> {
    let base = format!("{}/Property", endpoint.base_url.trim_end_matches('/'));
    let sync = ResoSync {
        modified_after: cursor,
        top: 1000,
        extra_filter: None,
    };
    let query = sync.query_params().map_err(|e| FetchError::NotThatApi {
        url: base.clone(),
        error: e.to_string(),
    })?;
    let headers = vec![("Authorization", format!("Bearer {}", endpoint.key))];
    let parse = |b: &[u8]| reso::parse_page(b, observed_at);
    let mut seen = BTreeMap::new();
    let mut next = Some(Get {
        url: base,
        query,
        headers: headers.clone(),
    });
    let mut newest = cursor;
    while let Some(request) = next.take() {
        let fetched = fetch_page(client, limiter, policy, &request, parse).await?;
        let page = tally(fetched, &mut stats, &mut seen);
        if let Paging::Reso(paging) = &page.paging {
            newest = newest.max(paging.max_modification_timestamp);
            next = paging.next_link.clone().map(|link| Get {
                url: link,
                query: Vec::new(),
                headers: headers.clone(),
            });
        }
    }
    Ok((
        MarketRead {
            listings: seen.into_values().collect(),
            complete: false,
            cursor: newest,
        },
        stats,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_keys_become_city_and_state() {
        assert_eq!(
            city_and_state("nashville-tn"),
            Some(("Nashville".into(), "TN".into()))
        );
        assert_eq!(
            city_and_state("san-francisco-ca"),
            Some(("San Francisco".into(), "CA".into()))
        );
        assert_eq!(city_and_state("nowhere"), None);
        assert_eq!(city_and_state("-tn"), None);
    }
}
