//! Reading a property portal (Avito.ma, Mubawab.ma): one full read of a market's searches
//! (`read_portal`, the pages fetched by [`read_pages`] and parsed by
//! `realty_sources::portal`), crawled politely: the site's robots.txt read and obeyed, one
//! request at a time per site ([`PortalCrawler`]), spaced by the source's rate limiter,
//! backing off on 429 and 503 as every fetch does; and layout drift told from an empty
//! market: a page that parses to nothing, or listings that lost what the last read found on
//! them ([`lost_fields`]), is a failed read ([`FetchError::LayoutDrift`]) from which nothing
//! is published or delisted.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::request::Get;
use super::tally::{Tally, take_page};
use super::{MarketSearch, ReadStats, SourceEndpoint};
use crate::fetch::{FetchError, Fetched, HttpPolicy, RateLimiter, fetch_page, read_text};
use crate::hops;
use crate::raw::KeepPages;
use crate::state::PollState;
use realty_model::listing::{Listing, Offer, PropertyType};
use realty_model::markets::SourceKind;
use realty_sources::portal::crawl::{PortalSearch, RobotsRules};
use realty_sources::portal::{avito, mubawab};
use realty_sources::{Page, Paging, SourceError};

/// How long a site's robots.txt is kept before it is read again (Google's cache: a day).
pub const ROBOTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Most pages of one search read in one poll: at the default rate (a request every 5 s),
/// a market's four searches (flats and houses, sale and let) take under two minutes, inside
/// the poller's timeout. The pages are newest first, so a larger search still yields its new
/// ads and the edits of the ads on those pages; its read is incomplete and delists nothing.
pub const MAX_PORTAL_PAGES: u32 = 5;

/// The kinds of property read for each market: the portals' flat and house searches.
pub const PORTAL_PROPERTY_TYPES: [PropertyType; 2] =
    [PropertyType::Apartment, PropertyType::SingleFamily];

/// A share of the listings seen in both reads that lost a field, past which the field is
/// taken to have moved on the page, not off the listings.
const DRIFT_SHARE: f64 = 0.5;
/// Fewer listings that had a field than this say nothing about a layout.
const DRIFT_MIN_LISTINGS: usize = 5;

/// How long a robots.txt that could not be read keeps the site uncrawled before it is asked
/// for again: every market of the poll is not to ask again.
pub const ROBOTS_RETRY_AFTER: Duration = Duration::from_secs(10 * 60);

/// The time one poll spends crawling one site: no page is requested past it (the read ends
/// there, as at a page robots.txt disallows; a request already waiting its turn at the rate
/// limiter may finish a few seconds later). Inside the poller's 300 s timeout with the APIs'
/// reads beside it.
pub const PORTAL_RUN_BUDGET: Duration = Duration::from_secs(150);

/// What one portal's crawler keeps between requests and polls: its user agent, one request
/// at a time to the site, the site's robots.txt, and when this poll began crawling it.
#[derive(Debug)]
pub struct PortalCrawler {
    pub user_agent: String,
    /// Held through each request: concurrency of one per site whatever the poll's.
    gate: Mutex<()>,
    /// The rules, or why they could not be read, and when.
    robots: Mutex<Option<(Instant, Result<RobotsRules, String>)>>,
    run_started: std::sync::Mutex<Option<Instant>>,
    /// The time one poll spends crawling the site ([`PORTAL_RUN_BUDGET`]).
    run_budget: Duration,
}

impl PortalCrawler {
    pub fn new(user_agent: String) -> Self {
        Self {
            user_agent,
            gate: Mutex::new(()),
            robots: Mutex::new(None),
            run_started: std::sync::Mutex::new(None),
            run_budget: PORTAL_RUN_BUDGET,
        }
    }

    /// The crawler with another time a poll spends on the site than [`PORTAL_RUN_BUDGET`]
    /// (tests that bound a poll's requests to the site).
    pub fn with_run_budget(self, run_budget: Duration) -> Self {
        Self { run_budget, ..self }
    }

    /// A poll starts: its crawl of this site gets a fresh run budget.
    pub fn start_run(&self) {
        *self
            .run_started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    /// What is left of this poll's time for the site (all of it before a poll starts).
    pub fn time_left(&self) -> Duration {
        let started = *self
            .run_started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        started.map_or(self.run_budget, |at| {
            self.run_budget.saturating_sub(at.elapsed())
        })
    }

    /// The site's turn for one request: the gate, held until the guard drops; `None` once
    /// this poll's time for the site is spent (checked with the gate held: markets waiting
    /// their turn see the time spent).
    pub(crate) async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let turn = self.gate.lock().await;
        (!self.time_left().is_zero()).then_some(turn)
    }
}

impl PortalCrawler {
    /// A GET of `url` as this crawler sends it: its user agent, asking for French HTML.
    pub(crate) fn get(&self, url: String) -> Get {
        Get {
            url,
            query: Vec::new(),
            headers: vec![
                ("User-Agent", self.user_agent.clone()),
                ("Accept", "text/html".to_owned()),
                ("Accept-Language", "fr".to_owned()),
            ],
        }
    }
}

/// The site's rules, read at `{base}/robots.txt` when not read in the last
/// [`ROBOTS_MAX_AGE`]: a 404 (or other 4xx) allows everything, as RFC 9309 says; a robots.txt
/// that cannot be read (5xx, a timeout, a redirect off the site or past [`hops::MAX_HOPS`])
/// allows nothing, for [`ROBOTS_RETRY_AFTER`].
pub(crate) async fn robots(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    crawler: &PortalCrawler,
    base: &str,
) -> Result<RobotsRules, FetchError> {
    let url = format!("{}/robots.txt", base.trim_end_matches('/'));
    let disallowed = |why: &str| FetchError::Disallowed {
        url: url.clone(),
        reason: format!("its robots.txt could not be read ({why}), so nothing may be"),
    };
    let mut cached = crawler.robots.lock().await;
    match cached.as_ref() {
        Some((at, Ok(rules))) if at.elapsed() < ROBOTS_MAX_AGE => return Ok(rules.clone()),
        Some((at, Err(why))) if at.elapsed() < ROBOTS_RETRY_AFTER => return Err(disallowed(why)),
        _ => {}
    }
    let read = {
        let _one_at_a_time = crawler.gate.lock().await;
        // Redirects are followed on the site only (RFC 9309 allows other hosts; a robots.txt
        // elsewhere is not taken for this site's): one that leaves it is a robots.txt that
        // could not be read.
        let fetch = |url: String| {
            let request = crawler.get(url);
            async move { read_text(client, limiter, policy, &request).await }
        };
        hops::fetch_following(url.clone(), fetch, |to| hops::site_path(base, to).is_some()).await
    };
    let rules = match read {
        Ok(body) => Ok(RobotsRules::parse(&body)),
        Err(FetchError::Refused { status, .. }) if (400..500).contains(&status) => {
            Ok(RobotsRules::parse(b""))
        }
        Err(error) => Err(error.to_string()),
    };
    *cached = Some((Instant::now(), rules.clone()));
    rules.map_err(|why| disallowed(&why))
}

/// Whether the site's `rules` allow `url`.
pub(crate) fn allowed(rules: &RobotsRules, base: &str, url: &str) -> bool {
    rules.allows(&site_url(base, url))
}

/// `url` as robots.txt rules read it: its path from the site's root, which is `base` (a
/// simulator serves a portal under a path prefix that stands for its host).
fn site_url(base: &str, url: &str) -> String {
    let base = base.trim_end_matches('/');
    match url.strip_prefix(base) {
        Some(path) if path.starts_with('/') => format!("https://site{path}"),
        _ => url.to_owned(),
    }
}

/// The portal's own slug of a market's city: `ma/casablanca` is `casablanca`; Avito joins
/// words with `_` (`el_jadida`), Mubawab with `-` (`dar-bouazza`).
pub fn city_slug(kind: SourceKind, market: &str) -> Option<String> {
    let (country, city) = market.split_once('/')?;
    if country.len() != 2 || city.is_empty() {
        return None;
    }
    Some(match kind {
        SourceKind::Avito => city.replace('-', "_"),
        _ => city.to_owned(),
    })
}

fn search_url(
    kind: SourceKind,
    base: &str,
    search: &PortalSearch,
    page: u32,
) -> Result<String, FetchError> {
    let url = match kind {
        SourceKind::Avito => search.avito_url(base, page),
        _ => search.mubawab_url(base, page),
    };
    url.map_err(|e| FetchError::NotThatApi {
        url: base.to_owned(),
        error: e.to_string(),
    })
}

/// What the pages of one market read gave, for the caller's tally.
pub struct PortalPages {
    pub pages: Vec<Fetched>,
    /// The listings the searches say they hold, summed; `None` when any did not say.
    pub expected: Option<u64>,
    /// Pages the read did not reach: disallowed by robots.txt, past [`MAX_PORTAL_PAGES`] or
    /// this poll's [`PORTAL_RUN_BUDGET`], or a later page that held nothing.
    pub unreachable: bool,
    /// The property types whose search said it had no result at all.
    pub empty_searches: Vec<PropertyType>,
}

/// Of `empty` searches (property types whose search of `offer` said it had no result), those
/// of which the last state held listings: one search renamed or redirected to an empty one
/// while the other reads as before must not delist a whole property type. The evidence of
/// a market's houses all gone at once is each one's own page gone, not one empty search,
/// just as [`crate::detect::implausibly_empty`] holds for a whole read.
pub fn implausibly_empty_searches(
    previous: &PollState,
    offer: Offer,
    empty: &[PropertyType],
) -> Vec<PropertyType> {
    empty
        .iter()
        .copied()
        .filter(|t| {
            previous
                .listings
                .values()
                .any(|l| l.property_type == *t && l.offer == offer)
        })
        .collect()
}

/// One full read of a market's portal searches (flats and houses of the offer), as
/// [`read_pages`] fetches them.
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
    let read = read_pages(
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

/// What every request of one portal read goes through.
struct Crawl<'a> {
    client: &'a reqwest::Client,
    limiter: &'a RateLimiter,
    policy: &'a HttpPolicy,
    kind: SourceKind,
    base: &'a str,
    crawler: &'a PortalCrawler,
    rules: RobotsRules,
    observed_at: DateTime<Utc>,
}

/// Reads every page of a market's searches (flats and houses of `offer`) that robots.txt
/// allows, one request at a time, while a search has more than its pages showed (its stated
/// total, or a `rel=next` link). A search's first page disallowed, one that no longer reads
/// ([`FetchError::LayoutDrift`]), or one redirected anywhere but its own address (another
/// city, a wider search: never this market's listings), fails the read; a later page
/// disallowed (Mubawab disallows them all), past the bounds, empty (listings removed while
/// paging) or redirected so ends the search there and leaves the read incomplete.
#[allow(clippy::too_many_arguments)]
pub async fn read_pages(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    kind: SourceKind,
    base: &str,
    crawler: &PortalCrawler,
    market: &str,
    offer: Offer,
    observed_at: DateTime<Utc>,
) -> Result<PortalPages, FetchError> {
    let city = city_slug(kind, market).ok_or_else(|| FetchError::NotThatApi {
        url: base.to_owned(),
        error: format!("market {market:?} is not a key such as ma/casablanca"),
    })?;
    let crawl = Crawl {
        rules: robots(client, limiter, policy, crawler, base).await?,
        client,
        limiter,
        policy,
        kind,
        base,
        crawler,
        observed_at,
    };
    let mut out = PortalPages {
        pages: Vec::new(),
        expected: Some(0),
        unreachable: false,
        empty_searches: Vec::new(),
    };
    for property_type in PORTAL_PROPERTY_TYPES {
        let search = PortalSearch {
            city_slug: city.clone(),
            offer,
            property_type,
        };
        crawl.read_search(&search, &mut out).await?;
    }
    Ok(out)
}

impl Crawl<'_> {
    /// Reads the pages of one search into `out` ([`read_pages`]).
    async fn read_search(
        &self,
        search: &PortalSearch,
        out: &mut PortalPages,
    ) -> Result<(), FetchError> {
        // Records of the search seen so far (featured ads repeat on every page).
        let mut seen = BTreeSet::new();
        let mut total = None;
        for page in 1..=MAX_PORTAL_PAGES + 1 {
            let url = search_url(self.kind, self.base, search, page)?;
            if page > MAX_PORTAL_PAGES {
                out.unreachable = true;
                break;
            }
            if !allowed(&self.rules, self.base, &url) {
                if page == 1 {
                    return Err(FetchError::Disallowed {
                        url,
                        reason: "the site's robots.txt disallows it".into(),
                    });
                }
                out.unreachable = true;
                break;
            }
            let fetched = match self.fetch_search_page(url).await {
                Some(Ok(fetched)) => fetched,
                Some(Err(error)) if page == 1 => return Err(error),
                // Past the first page, a page of nothing is the search's end moving while
                // it was read (listings taken down), not the layout; a page sent elsewhere
                // is not the search's either.
                Some(Err(FetchError::LayoutDrift { .. } | FetchError::Redirected { .. })) => {
                    out.unreachable = true;
                    break;
                }
                Some(Err(error)) => return Err(error),
                None => {
                    if page == 1 {
                        // A search not read this poll: it says nothing of its total.
                        out.expected = None;
                    }
                    out.unreachable = true;
                    break;
                }
            };
            let Paging::Portal(paging) = &fetched.page.paging else {
                break;
            };
            if page == 1 {
                total = paging.total_results;
                out.expected = out.expected.zip(total).and_then(|(a, b)| a.checked_add(b));
            }
            let before = seen.len();
            add_records(&mut seen, &fetched.page, page);
            if total.is_some_and(|total| seen.len() as u64 > total) {
                // More records than the stated total (a total that leaves out featured ads,
                // say): the total is not the search's count, and cannot make a read complete.
                out.expected = None;
            }
            let grew = seen.len() > before;
            let more = paging.next_page.is_some()
                || total.is_some_and(|total| (seen.len() as u64) < total);
            out.pages.push(fetched);
            if more && !grew {
                // The pages stopped adding records before the search said it ended.
                out.unreachable = true;
            }
            if !more || !grew {
                break;
            }
        }
        if total == Some(0) && seen.is_empty() {
            out.empty_searches.push(search.property_type);
        }
        Ok(())
    }

    /// One search page at `url`, its redirects followed only to the same search on the site
    /// (its address less a trailing slash, any query), where robots.txt allows; `None` when
    /// this poll's time for the site is spent.
    async fn fetch_search_page(&self, url: String) -> Option<Result<Fetched, FetchError>> {
        let observed_at = self.observed_at;
        let kind = self.kind;
        let parse = move |bytes: &[u8]| -> Result<Page, SourceError> {
            match kind {
                SourceKind::Avito => avito::parse_page(bytes, observed_at),
                _ => mubawab::parse_page(bytes, observed_at),
            }
        };
        let own_path = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| hops::site_path(self.base, &u))
            .map(|p| decoded_path(&p));
        let same_search = |to: &reqwest::Url| {
            own_path.is_some()
                && hops::site_path(self.base, to).map(|p| decoded_path(&p)) == own_path
                && allowed(&self.rules, self.base, to.as_str())
        };
        let fetch = |url: String| {
            let request = self.crawler.get(url);
            async move { fetch_page(self.client, self.limiter, self.policy, &request, parse).await }
        };
        // The gate is held through the hops: still one request at a time.
        let turn = self.crawler.turn().await?;
        let fetched = hops::fetch_following(url, fetch, same_search).await;
        drop(turn);
        if let Err(FetchError::Redirected { url, location, .. }) = &fetched {
            tracing::warn!(%url, %location, "a search page redirected elsewhere than its own address: not this market's, not read");
        }
        Some(fetched)
    }
}

/// Adds the records of `page` (number `number` of its search) to those of the search `seen`:
/// its listings' ids, and its rejects' (or their place, for one without an id).
fn add_records(seen: &mut BTreeSet<String>, page: &Page, number: u32) {
    seen.extend(page.listings.iter().map(|l| l.id.as_str().to_owned()));
    seen.extend(page.rejects.iter().enumerate().map(|(i, r)| {
        r.source_id
            .clone()
            .unwrap_or_else(|| format!("page {number} record {i}"))
    }));
}

/// A path percent-decoded, less a trailing slash: two spellings of one address compare equal.
fn decoded_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .trim_end_matches('/')
        .to_owned()
}

/// Whether a listing has a field.
type Has = fn(&Listing) -> bool;

/// Fields a layout change loses first: each one's name and whether a listing has it.
const WATCHED_FIELDS: [(&str, Has); 4] = [
    ("surface", |l| {
        l.details.living_area_sqm.is_some() || l.lot_size_sqft.is_some()
    }),
    ("bedrooms", |l| l.beds.is_some()),
    ("bathrooms", |l| l.baths.is_some()),
    ("neighbourhood", |l| l.address.neighbourhood.is_some()),
];

/// Layout drift in a read that found records: of the last read's listings found again,
/// most now rejected (a required field, such as the price, no longer read), or most of those
/// that had a field having lost it all at once. A listing losing a field, or turning "price
/// on request", is the seller's edit; most of a market doing so at once is the page.
pub fn lost_fields(
    previous: &PollState,
    listings: &BTreeMap<String, Listing>,
    rejected_ids: &BTreeSet<String>,
) -> Option<String> {
    let mut lost = Vec::new();
    let found_again = previous
        .listings
        .keys()
        .filter(|id| listings.contains_key(*id) || rejected_ids.contains(*id))
        .count();
    let now_rejected = previous
        .listings
        .keys()
        .filter(|id| rejected_ids.contains(*id) && !listings.contains_key(*id))
        .count();
    if now_rejected >= DRIFT_MIN_LISTINGS && now_rejected as f64 > DRIFT_SHARE * found_again as f64
    {
        lost.push(format!(
            "a required field ({now_rejected} of {found_again} listings found again are now \
             rejected)"
        ));
    }
    for (name, has) in WATCHED_FIELDS {
        let (mut had, mut gone) = (0usize, 0usize);
        for (id, before) in &previous.listings {
            let Some(now) = listings.get(id) else {
                continue;
            };
            if has(before) {
                had += 1;
                gone += usize::from(!has(now));
            }
        }
        if had >= DRIFT_MIN_LISTINGS && gone as f64 > DRIFT_SHARE * had as f64 {
            lost.push(format!("{name} ({gone} of {had})"));
        }
    }
    (!lost.is_empty()).then(|| {
        format!(
            "listings lost what the last read found on them: {}; see docs/sources.md, \"When a \
             portal changes\"",
            lost.join(", ")
        )
    })
}

#[cfg(test)]
#[path = "portal_hops_tests.rs"]
mod hops_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use realty_sources::portal::avito;

    fn listings() -> BTreeMap<String, Listing> {
        let page = include_bytes!(
            "../../../sources/tests/fixtures/avito_search_appartements_a_vendre.html"
        );
        avito::parse_page(page, Utc::now())
            .expect("fixture")
            .listings
            .into_iter()
            .map(|l| (l.id.as_str().to_owned(), l))
            .collect()
    }

    #[test]
    fn a_field_lost_by_most_listings_at_once_is_drift() {
        let before = PollState {
            listings: listings(),
            ..PollState::default()
        };
        assert_eq!(lost_fields(&before, &listings(), &BTreeSet::new()), None);
        let mut now = listings();
        for listing in now.values_mut() {
            listing.beds = None;
        }
        let drift = lost_fields(&before, &now, &BTreeSet::new()).expect("drift");
        assert!(drift.contains("bedrooms"), "{drift}");
        // A few sellers removing a field is not drift.
        let mut now = listings();
        for listing in now.values_mut().take(3) {
            listing.beds = None;
        }
        assert_eq!(lost_fields(&before, &now, &BTreeSet::new()), None);
        // Listings new to this read say nothing either way.
        assert_eq!(
            lost_fields(&PollState::default(), &BTreeMap::new(), &BTreeSet::new()),
            None
        );
        // Most listings now rejected (their price no longer read): drift; a few: not.
        let ids: Vec<String> = listings().into_keys().collect();
        let rejected_first = |n: usize| {
            let mut now = listings();
            let mut rejected = BTreeSet::new();
            for id in &ids[..n] {
                now.remove(id);
                rejected.insert(id.clone());
            }
            lost_fields(&before, &now, &rejected)
        };
        let drift = rejected_first(20).expect("drift");
        assert!(drift.contains("now rejected"), "{drift}");
        assert_eq!(rejected_first(4), None);
    }

    #[test]
    fn robots_rules_read_paths_from_the_sites_root() {
        let rules = RobotsRules::parse(b"User-agent: *\nDisallow: /fr/st/\n");
        let base = "http://127.0.0.1:9/mubawab";
        let page = "http://127.0.0.1:9/mubawab/fr/st/casablanca/maisons-a-louer";
        assert_eq!(
            site_url(base, page),
            "https://site/fr/st/casablanca/maisons-a-louer"
        );
        assert!(!rules.allows(&site_url(base, page)));
        assert!(rules.allows(&site_url(base, "http://127.0.0.1:9/mubawab/fr/sd/x")));
        // At a site's own root, the URL is matched as it is.
        let real = "https://www.mubawab.ma/fr/st/rabat/appartements-a-vendre";
        assert!(!rules.allows(&site_url("https://www.mubawab.ma", real)));
    }

    #[test]
    fn market_keys_become_each_portals_city_slug() {
        assert_eq!(
            city_slug(SourceKind::Avito, "ma/el-jadida").as_deref(),
            Some("el_jadida")
        );
        assert_eq!(
            city_slug(SourceKind::Mubawab, "ma/dar-bouazza").as_deref(),
            Some("dar-bouazza")
        );
        assert_eq!(city_slug(SourceKind::Avito, "nashville-tn"), None);
        assert_eq!(city_slug(SourceKind::Avito, "ma/"), None);
    }
}
