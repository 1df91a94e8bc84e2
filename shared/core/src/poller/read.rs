//! Reading one market from one source, page by page, into a [`MarketRead`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};

use super::detect::{MarketRead, PollState};
use super::fetch::{FetchError, Fetched, HttpPolicy, PageRequest, RateLimiter, fetch_page};
use super::portal::{PortalCrawler, lost_fields};
use super::raw::{KeepPages, Kept};
use crate::listing::{Listing, Offer};
use crate::sources::realtor::{RealtorArea, RealtorSearch, RealtorStatus};
use crate::sources::reso::ResoSync;
use crate::sources::zillow::{
    BandPlan, PriceBand, ZillowHomeType, ZillowSearch, ZillowStatusType, plan_price_band,
};
use crate::sources::{Paging, Reject, SourceKind, realtor, reso, zillow};

/// What a watched market narrows its search to (Zillow's home types and price range; the
/// other sources read the whole market). A listing leaving the range leaves the market read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchFilter {
    /// Empty for every home type.
    pub home_types: Vec<ZillowHomeType>,
    pub prices: PriceBand,
    /// RESO: an OData condition ANDed to the market's city and state (MLS-specific fields,
    /// such as `OriginatingSystemName`), checked by [`reso::check_raw_filter`].
    pub reso_filter: Option<String>,
}

impl Default for SearchFilter {
    fn default() -> Self {
        Self {
            home_types: Vec::new(),
            prices: PriceBand::ALL,
            reso_filter: None,
        }
    }
}

/// One market to read, and how its search is narrowed.
#[derive(Debug, Clone, Copy)]
pub struct MarketSearch<'a> {
    /// City-state key (`nashville-tn`).
    pub market: &'a str,
    pub filter: &'a SearchFilter,
    /// Sale listings, or rentals (Zillow `ForRent`, Realtor.com `for_rent`: the whole
    /// market's rentals, the filter's sale prices and home types left out).
    pub offer: Offer,
}

/// Whether a source offers rentals to read apart from its sale listings (a RESO feed
/// carries its leases with the sales).
pub fn reads_rentals(kind: SourceKind) -> bool {
    matches!(
        kind,
        SourceKind::Zillow | SourceKind::Realtor | SourceKind::Avito | SourceKind::Mubawab
    )
}

/// Where and how to reach one source. `Debug` leaves the key out.
#[derive(Clone)]
pub struct SourceEndpoint {
    pub kind: SourceKind,
    /// Base URL: `https://zillow-com1.p.rapidapi.com`, or a simulator's.
    pub base_url: String,
    /// RapidAPI key (Zillow, Realtor.com); empty for RESO.
    pub key: String,
    /// RESO's bearer token or client credentials, with the cached access token.
    pub reso_auth: Option<std::sync::Arc<super::reso_auth::ResoAuth>>,
    /// RESO: how often a market is read whole (the only read that may infer delistings).
    pub reso_full_read_every: chrono::TimeDelta,
    /// Portals: the crawler's user agent, its one-request-at-a-time gate and the site's
    /// robots.txt.
    pub crawler: Option<std::sync::Arc<PortalCrawler>>,
}

impl std::fmt::Debug for SourceEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceEndpoint")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("key", &super::config::REDACTED)
            .field("reso_auth", &self.reso_auth)
            .field("crawler", &self.crawler)
            .finish()
    }
}

/// What reading a market produced, besides its listings.
#[derive(Debug, Clone, Default)]
pub struct ReadStats {
    pub pages: u32,
    pub retries: u32,
    pub rejects: Vec<Reject>,
    /// Extra full reads made because the pages did not add up (a listing moved between pages).
    pub rereads: u32,
    /// Extra full reads made to confirm that listings missing from a complete read are gone
    /// (a listing can move out of sight while the counts still add up).
    pub reconciliations: u32,
    /// Pages kept in the raw layer, pages over its size bound, and pages it failed to keep.
    pub raw_archived: u32,
    pub raw_oversized: u32,
    pub raw_failed: u32,
    /// A portal read stopped where the crawl is bounded (pages robots.txt disallows, or
    /// past [`super::portal::MAX_PORTAL_PAGES`]): incomplete by design, not by fault.
    pub crawl_limited: bool,
    /// Ad pages asked for after a crawl-limited read ([`super::gone`]).
    pub ad_pages_checked: u32,
    /// The page of an ad the read saw was gone (404, 410): ad pages have moved, no ad page
    /// was believed.
    pub ad_pages_untrusted: bool,
}

impl ReadStats {
    fn count_kept(&mut self, kept: Kept) {
        match kept {
            Kept::Archived => self.raw_archived += 1,
            Kept::Oversized => self.raw_oversized += 1,
            Kept::Failed => self.raw_failed += 1,
            Kept::Off => {}
        }
    }
}

/// Keeps a fetched page in the raw layer, then counts it in `tally`.
async fn take_page(
    tally: &mut Tally,
    fetched: Fetched,
    pages: &impl KeepPages,
    stats: &mut ReadStats,
) -> Paging {
    stats.count_kept(pages.keep(&fetched.body).await);
    tally.add_page(fetched, stats)
}

/// Most full reads of a market in one poll: the first, rereads when the pages do not add
/// up, and one reconciliation read.
pub const MAX_READ_PASSES: u32 = 4;

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

pub(super) struct Get {
    pub(super) url: String,
    pub(super) query: Vec<(&'static str, String)>,
    pub(super) headers: Vec<(&'static str, String)>,
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

/// Reads one market: every page, re-reading when the pages do not add up to the total the
/// source reports (a listing moved between pages), and once more when a complete read misses
/// listings of `previous` (a listing can move out of sight while the counts add up: a
/// price cut across a band edge between band reads, a delete plus an insert while paging).
/// A listing missing from two complete reads is gone; one seen by either read is not.
/// Every page fetched is handed to `pages` (the raw layer) before it is counted.
#[allow(clippy::too_many_arguments)]
pub async fn read_market(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    search: MarketSearch<'_>,
    previous: &PollState,
    observed_at: DateTime<Utc>,
    pages: &impl KeepPages,
) -> Result<(MarketRead, ReadStats), FetchError> {
    if search.offer == Offer::Rent && !reads_rentals(endpoint.kind) {
        return Err(FetchError::NotThatApi {
            url: endpoint.base_url.clone(),
            error: format!(
                "{} has no rental search: its rentals come with its sale listings",
                endpoint.kind.as_str()
            ),
        });
    }
    let mut stats = ReadStats::default();
    let mut union = Tally::default();
    let mut complete_passes = 0;
    for pass_number in 0..MAX_READ_PASSES {
        if pass_number > 0 {
            // Why this pass is made: to confirm missing listings, or because the last one
            // did not add up.
            if complete_passes > 0 {
                stats.reconciliations += 1;
            } else {
                stats.rereads += 1;
            }
        }
        let pass = match endpoint.kind {
            SourceKind::Zillow => {
                read_zillow(
                    client,
                    limiter,
                    policy,
                    endpoint,
                    search,
                    observed_at,
                    pages,
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
                    search,
                    observed_at,
                    pages,
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
                    search,
                    previous,
                    observed_at,
                    pages,
                    stats,
                )
                .await;
            }
            SourceKind::Avito | SourceKind::Mubawab => {
                read_portal(
                    client,
                    limiter,
                    policy,
                    endpoint,
                    search,
                    observed_at,
                    pages,
                    &mut stats,
                )
                .await?
            }
            SourceKind::File => {
                return Err(FetchError::NotThatApi {
                    url: endpoint.base_url.clone(),
                    error: endpoint.kind.why_not_polled().into(),
                });
            }
        };
        let pass_complete = pass.complete();
        // Pages robots.txt disallows stay so: another pass would not reach them.
        let out_of_reach = endpoint.kind.is_portal() && pass.unreachable;
        union.merge(pass);
        if endpoint.kind.is_portal()
            && let Some(error) = lost_fields(previous, &union.listings, &union.rejected_ids)
        {
            return Err(FetchError::LayoutDrift {
                url: endpoint.base_url.clone(),
                error,
            });
        }
        if out_of_reach {
            break;
        }
        if !pass_complete {
            continue;
        }
        complete_passes += 1;
        let unexplained = previous
            .listings
            .keys()
            .any(|id| !union.listings.contains_key(id) && !union.rejected_ids.contains(id));
        if !unexplained || complete_passes == 2 {
            return Ok((union.into_read(true), stats));
        }
    }
    let mut read = union.into_read(false);
    // Listings past the pages a poll may read: their own pages say whether they are gone.
    // robots.txt was read a moment ago for the pages and is kept (if it must be read again
    // and cannot be, no page is checked; the read stands).
    if stats.crawl_limited
        && let Some(crawler) = &endpoint.crawler
        && let Ok(rules) =
            super::portal::robots(client, limiter, policy, crawler, &endpoint.base_url).await
    {
        let checks = super::gone::check_gone(
            client,
            limiter,
            policy,
            endpoint.kind,
            &endpoint.base_url,
            crawler,
            &rules,
            previous,
            &read,
            observed_at,
        )
        .await;
        stats.ad_pages_checked = checks.asked;
        stats.ad_pages_untrusted = checks.untrusted;
        read.gone_ids = checks.gone;
        read.asked_not_gone_ids = checks.asked_not_gone;
    }
    Ok((read, stats))
}

/// What one full read (or the union of several) saw.
#[derive(Debug, Default)]
struct Tally {
    listings: BTreeMap<String, Listing>,
    /// Ids of rejected records, not also read as listings.
    rejected_ids: BTreeSet<String>,
    /// Rejected records without a usable id: they could be any listing.
    anonymous_rejects: u64,
    /// What the source said it holds, summed over the queries; `None` when any query did
    /// not say (a bare `props` array, a null search).
    expected: Option<u64>,
    /// Results the queries' pages cannot reach.
    unreachable: bool,
}

impl Tally {
    fn new() -> Self {
        Self {
            expected: Some(0),
            ..Self::default()
        }
    }

    fn add_page(&mut self, fetched: Fetched, stats: &mut ReadStats) -> Paging {
        stats.pages += 1;
        stats.retries += fetched.retries;
        let mut page = fetched.page;
        for reject in &page.rejects {
            match &reject.source_id {
                Some(id) => {
                    self.rejected_ids.insert(id.clone());
                }
                None => self.anonymous_rejects += 1,
            }
        }
        stats.rejects.append(&mut page.rejects);
        for l in page.listings.drain(..) {
            self.listings.insert(l.id.as_str().to_owned(), l);
        }
        page.paging
    }

    fn expect(&mut self, total: Option<u64>) {
        self.expected = match (self.expected, total) {
            // A sum past u64 (a hostile total) says nothing: never complete.
            (Some(sum), Some(total)) => sum.checked_add(total),
            _ => None,
        };
    }

    /// Complete: the source said how many it holds, every page was reachable, every
    /// rejected record is a known listing, and listings plus rejects reach the total.
    fn complete(&self) -> bool {
        let Some(expected) = self.expected else {
            return false;
        };
        let rejected_only = self
            .rejected_ids
            .iter()
            .filter(|id| !self.listings.contains_key(*id))
            .count() as u64;
        !self.unreachable
            && self.anonymous_rejects == 0
            && self.listings.len() as u64 + rejected_only >= expected
    }

    fn merge(&mut self, other: Tally) {
        self.listings.extend(other.listings);
        self.rejected_ids.extend(other.rejected_ids);
    }

    fn into_read(self, complete: bool) -> MarketRead {
        let rejected_ids = self
            .rejected_ids
            .into_iter()
            .filter(|id| !self.listings.contains_key(id))
            .collect();
        MarketRead {
            listings: self.listings.into_values().collect(),
            complete,
            cursor: None,
            rejected_ids,
            gone_ids: BTreeSet::new(),
            asked_not_gone_ids: BTreeSet::new(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_zillow(
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
    let mut bands = VecDeque::from([prices]);
    while let Some(band) = bands.pop_front() {
        let search = ZillowSearch {
            locations: vec![format!("{city}, {state}")],
            status_type,
            home_types: home_types.clone(),
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
        let Paging::Zillow(paging) = take_page(&mut tally, first, pages, stats).await else {
            tally.expect(None);
            continue;
        };
        match plan_price_band(band, &paging) {
            BandPlan::Split { lower, upper } => {
                // Page 1 of the whole band was read, but the halves count its listings.
                bands.push_back(lower);
                bands.push_back(upper);
                continue;
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

#[allow(clippy::too_many_arguments)]
async fn read_realtor(
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

/// One full read of a market's portal searches (flats and houses of the offer), as
/// [`super::portal::read_pages`] fetches them.
#[allow(clippy::too_many_arguments)]
async fn read_portal(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    MarketSearch { market, offer, .. }: MarketSearch<'_>,
    observed_at: DateTime<Utc>,
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
    let read = super::portal::read_pages(
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
    tally.unreachable |= read.unreachable;
    stats.crawl_limited |= read.unreachable;
    Ok(tally)
}

/// Most pages one RESO read follows (`$top` 1000 each): a feed that keeps linking on is
/// cut off rather than read forever; the cursor then stays where it was.
pub const MAX_RESO_PAGES: u32 = 500;

/// RESO feeds are read incrementally (changes since the cursor), so a listing's absence says
/// nothing: its end comes as a status (Closed, Withdrawn, Delete...). Such a read is never
/// `complete`. Every `reso_full_read_every` (and at the first poll) the market is read whole
/// with `$count=true`; that read is complete when its records add up to the count, and is
/// the only one from which a missing record is a delisting. The request names the market (`City`, `StateOrProvince` and the market's raw
/// filter), selects the fields read, and follows `@odata.nextLink` on the same server only.
#[allow(clippy::too_many_arguments)]
async fn read_reso(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    search: MarketSearch<'_>,
    previous: &PollState,
    observed_at: DateTime<Utc>,
    raw_pages: &impl KeepPages,
    mut stats: ReadStats,
) -> Result<(MarketRead, ReadStats), FetchError> {
    let cursor = previous.cursor;
    // A feed that never gave a count (never a complete read) is not read whole again:
    // nothing could be inferred from it.
    let full = cursor.is_none()
        || previous
            .last_complete_read
            .is_some_and(|at| observed_at - at >= endpoint.reso_full_read_every);
    let base = format!("{}/Property", endpoint.base_url.trim_end_matches('/'));
    let refused = |error: String| FetchError::NotThatApi {
        url: base.clone(),
        error,
    };
    let (city, state) = market_place(endpoint, search.market)?;
    if let Some(raw) = &search.filter.reso_filter {
        reso::check_raw_filter(raw).map_err(refused)?;
    }
    let sync = ResoSync {
        modified_since: if full { None } else { cursor },
        count: full,
        top: 1000,
        extra_filter: Some(reso::market_filter(
            &city,
            &state,
            search.filter.reso_filter.as_deref(),
        )),
    };
    let query = sync.query_params().map_err(|e| refused(e.to_string()))?;
    let auth = endpoint
        .reso_auth
        .as_ref()
        .ok_or_else(|| refused("no RESO token or client credentials".into()))?;
    let token = auth
        .bearer(client, policy.timeout)
        .await
        .map_err(|e| refused(e.to_string()))?;
    let headers = vec![("Authorization", format!("Bearer {token}"))];
    let parse = |b: &[u8]| reso::parse_page(b, observed_at);
    let mut tally = Tally::new();
    let mut next = Some(Get {
        url: base.clone(),
        query,
        headers: headers.clone(),
    });
    let mut newest = cursor;
    let mut pages = 0u32;
    let mut total = None;
    while let Some(request) = next.take() {
        pages += 1;
        if pages > MAX_RESO_PAGES {
            return Err(refused(format!(
                "more than {MAX_RESO_PAGES} pages: narrow the market's filter"
            )));
        }
        let fetched = match fetch_page(client, limiter, policy, &request, parse).await {
            Ok(fetched) => fetched,
            Err(error) => {
                // A token the server no longer takes is not sent again.
                if matches!(error, FetchError::Refused { status: 401, .. }) {
                    auth.invalidate().await;
                }
                return Err(error);
            }
        };
        if let Paging::Reso(paging) = &take_page(&mut tally, fetched, raw_pages, &mut stats).await {
            newest = newest.max(paging.max_modification_timestamp);
            if pages == 1 {
                total = paging.count;
            }
            next = match &paging.next_link {
                Some(link) => Some(Get {
                    url: same_origin_link(&base, link).map_err(refused)?,
                    query: Vec::new(),
                    headers: headers.clone(),
                }),
                None => None,
            };
        }
    }
    let complete = if full {
        tally.expect(total);
        tally.complete()
    } else {
        false
    };
    let mut read = tally.into_read(complete);
    read.cursor = newest;
    Ok((read, stats))
}

/// `@odata.nextLink` resolved against the first request, refused unless it stays on the
/// same scheme, host and port: the bearer token goes with it.
pub fn same_origin_link(base: &str, link: &str) -> Result<String, String> {
    let base = reqwest::Url::parse(base).map_err(|e| format!("base URL: {e}"))?;
    let next = base
        .join(link)
        .map_err(|e| format!("@odata.nextLink is not a URL: {e}"))?;
    if next.origin() != base.origin() {
        return Err(format!(
            "@odata.nextLink leads to another server ({}): not followed",
            next.origin().ascii_serialization()
        ));
    }
    Ok(next.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::RecordPosition;

    fn tally_of(listings: usize, rejects: &[Option<&str>], total: Option<u64>) -> Tally {
        let page = include_bytes!(
            "../../tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        );
        let mut page = zillow::parse_page(page, Utc::now()).expect("fixture");
        page.listings.truncate(listings);
        assert_eq!(page.listings.len(), listings);
        page.rejects = rejects
            .iter()
            .enumerate()
            .map(|(i, id)| Reject {
                source_id: id.map(str::to_owned),
                position: RecordPosition::Index(i),
                reason: "price: \"call for price\"".into(),
            })
            .collect();
        let mut tally = Tally::new();
        tally.add_page(
            Fetched {
                page,
                retries: 0,
                body: Vec::new(),
            },
            &mut ReadStats::default(),
        );
        tally.expect(total);
        tally
    }

    #[test]
    fn a_read_is_complete_only_when_a_total_accounts_for_every_record() {
        assert!(tally_of(3, &[], Some(3)).complete());
        assert!(tally_of(3, &[Some("zillow:9")], Some(4)).complete());
        // No total: never complete, however much was read.
        assert!(!tally_of(3, &[], None).complete());
        // Short of the total.
        assert!(!tally_of(3, &[], Some(4)).complete());
        // A reject without an id could be any listing.
        assert!(!tally_of(3, &[None], Some(4)).complete());
        // A reject counted once however often it was read.
        assert!(!tally_of(3, &[Some("zillow:9"), Some("zillow:9")], Some(5)).complete());
    }

    #[test]
    fn next_links_stay_on_the_server() {
        let base = "https://api.example-mls.test/odata/Property";
        assert_eq!(
            same_origin_link(
                base,
                "https://api.example-mls.test/odata/Property?$skip=1000"
            ),
            Ok("https://api.example-mls.test/odata/Property?$skip=1000".into())
        );
        assert_eq!(
            same_origin_link(base, "/odata/Property?$skip=1000"),
            Ok("https://api.example-mls.test/odata/Property?$skip=1000".into())
        );
        for elsewhere in [
            "https://evil.example.test/odata/Property?$skip=1000",
            "http://api.example-mls.test/odata/Property?$skip=1000",
            "https://api.example-mls.test:8443/odata/Property",
            "//evil.example.test/x",
        ] {
            assert!(same_origin_link(base, elsewhere).is_err(), "{elsewhere}");
        }
    }

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
