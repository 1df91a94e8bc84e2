//! Crawling a property portal (Avito.ma, Mubawab.ma) politely: the site's robots.txt read
//! and obeyed, one request at a time per site, spaced by the source's rate limiter, backing
//! off on 429 and 503 as every fetch does; and layout drift told from an empty market: a
//! page that parses to nothing, or listings that lost what the last read found on them, is
//! a failed read ([`FetchError::LayoutDrift`]) from which nothing is published or delisted.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::detect::PollState;
use super::fetch::{FetchError, HttpPolicy, PageRequest, RateLimiter, fetch_page, read_text};
use crate::listing::{Listing, Offer, PropertyType};
use crate::sources::portal::crawl::{PortalSearch, RobotsRules};
use crate::sources::portal::{avito, mubawab};
use crate::sources::{Page, Paging, SourceError, SourceKind};

/// How long a site's robots.txt is kept before it is read again (Google's cache: a day).
pub const ROBOTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Most pages of one search read in one poll: at the default rate (a request every 5 s),
/// a market's four searches (flats and houses, sale and let) take under two minutes, inside
/// the poller's timeout. The pages are newest first, so a larger search still yields its new
/// ads and recent price edits; its read is incomplete and delists nothing.
pub const MAX_PORTAL_PAGES: u32 = 5;

/// The kinds of property read for each market: the portals' flat and house searches.
pub const PORTAL_PROPERTY_TYPES: [PropertyType; 2] =
    [PropertyType::Apartment, PropertyType::SingleFamily];

/// A share of the listings seen in both reads that lost a field, past which the field is
/// taken to have moved on the page, not off the listings.
const DRIFT_SHARE: f64 = 0.5;
/// Fewer listings that had a field than this say nothing about a layout.
const DRIFT_MIN_LISTINGS: usize = 5;

/// What one portal's crawler keeps between requests: its user agent, one request at a time
/// to the site, and the site's robots.txt.
#[derive(Debug)]
pub struct PortalCrawler {
    pub user_agent: String,
    /// Held through each request: concurrency of one per site whatever the poll's.
    gate: Mutex<()>,
    robots: Mutex<Option<(Instant, RobotsRules)>>,
}

impl PortalCrawler {
    pub fn new(user_agent: String) -> Self {
        Self {
            user_agent,
            gate: Mutex::new(()),
            robots: Mutex::new(None),
        }
    }
}

struct PortalGet<'a> {
    url: String,
    user_agent: &'a str,
}

impl PageRequest for PortalGet<'_> {
    fn build(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client
            .get(&self.url)
            .header(reqwest::header::USER_AGENT, self.user_agent)
            .header(reqwest::header::ACCEPT, "text/html")
            .header(reqwest::header::ACCEPT_LANGUAGE, "fr")
    }
    fn url(&self) -> String {
        self.url.clone()
    }
}

/// The site's rules, read at `{base}/robots.txt` when not read in the last
/// [`ROBOTS_MAX_AGE`]: a 404 (or other 4xx) allows everything, as RFC 9309 says; a robots.txt
/// that cannot be read (5xx, a timeout) allows nothing this poll.
async fn robots(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    crawler: &PortalCrawler,
    base: &str,
) -> Result<RobotsRules, FetchError> {
    let mut cached = crawler.robots.lock().await;
    if let Some((at, rules)) = cached.as_ref()
        && at.elapsed() < ROBOTS_MAX_AGE
    {
        return Ok(rules.clone());
    }
    let url = format!("{}/robots.txt", base.trim_end_matches('/'));
    let request = PortalGet {
        url: url.clone(),
        user_agent: &crawler.user_agent,
    };
    let rules = {
        let _one_at_a_time = crawler.gate.lock().await;
        match read_text(client, limiter, policy, &request).await {
            Ok(body) => RobotsRules::parse(&body),
            Err(FetchError::Refused { status, .. }) if (400..500).contains(&status) => {
                RobotsRules::parse(b"")
            }
            Err(error) => {
                return Err(FetchError::Disallowed {
                    url,
                    reason: format!(
                        "its robots.txt could not be read ({error}), so nothing may be"
                    ),
                });
            }
        }
    };
    *cached = Some((Instant::now(), rules.clone()));
    Ok(rules)
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
    pub pages: Vec<super::fetch::Fetched>,
    /// The listings the searches say they hold, summed; `None` when any did not say.
    pub expected: Option<u64>,
    /// Pages the read could not reach: disallowed by robots.txt, or past
    /// [`MAX_PORTAL_PAGES`].
    pub unreachable: bool,
}

/// Reads every page of a market's searches (flats and houses of `offer`) that robots.txt
/// allows, one request at a time. A search's first page disallowed fails the read; a later
/// page disallowed (Mubawab disallows them all) leaves the read incomplete.
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
    let rules = robots(client, limiter, policy, crawler, base).await?;
    let parse = |bytes: &[u8]| -> Result<Page, SourceError> {
        match kind {
            SourceKind::Avito => avito::parse_page(bytes, observed_at),
            _ => mubawab::parse_page(bytes, observed_at),
        }
    };
    let mut out = PortalPages {
        pages: Vec::new(),
        expected: Some(0),
        unreachable: false,
    };
    for property_type in PORTAL_PROPERTY_TYPES {
        let search = PortalSearch {
            city_slug: city.clone(),
            offer,
            property_type,
        };
        let mut page = 1;
        loop {
            let url = search_url(kind, base, &search, page)?;
            if !rules.allows(&url) {
                if page == 1 {
                    return Err(FetchError::Disallowed {
                        url,
                        reason: "the site's robots.txt disallows it".into(),
                    });
                }
                out.unreachable = true;
                break;
            }
            let fetched = {
                let _one_at_a_time = crawler.gate.lock().await;
                fetch_page(
                    client,
                    limiter,
                    policy,
                    &PortalGet {
                        url,
                        user_agent: &crawler.user_agent,
                    },
                    parse,
                )
                .await?
            };
            let Paging::Portal(paging) = &fetched.page.paging else {
                break;
            };
            let next = paging.next_page.is_some();
            if page == 1 {
                out.expected = out.expected.zip(paging.total_results).map(|(a, b)| a + b);
            }
            out.pages.push(fetched);
            if !next {
                break;
            }
            if page >= MAX_PORTAL_PAGES {
                out.unreachable = true;
                break;
            }
            page += 1;
        }
    }
    Ok(out)
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

/// Layout drift in a read that found listings: of the listings in both this read and the
/// last, those that had a field and lost it all at once, for most of them. A listing losing a
/// field is the seller's edit; most of a market losing it at once is the page.
pub fn lost_fields(previous: &PollState, listings: &BTreeMap<String, Listing>) -> Option<String> {
    let mut lost = Vec::new();
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
mod tests {
    use super::*;
    use crate::sources::portal::avito;

    fn listings() -> BTreeMap<String, Listing> {
        let page = include_bytes!("../../tests/fixtures/avito_search_appartements_a_vendre.html");
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
        assert_eq!(lost_fields(&before, &listings()), None);
        let mut now = listings();
        for listing in now.values_mut() {
            listing.beds = None;
        }
        let drift = lost_fields(&before, &now).expect("drift");
        assert!(drift.contains("bedrooms"), "{drift}");
        // A few sellers removing a field is not drift.
        let mut now = listings();
        for listing in now.values_mut().take(3) {
            listing.beds = None;
        }
        assert_eq!(lost_fields(&before, &now), None);
        // Listings new to this read say nothing either way.
        assert_eq!(lost_fields(&PollState::default(), &BTreeMap::new()), None);
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
