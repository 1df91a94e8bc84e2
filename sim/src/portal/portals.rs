//! The simulated portals: their searches, the ads of a search at any time, its pages, and
//! the ground truth of the ads.

use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::ads::{MEAN_LIFETIME_DAYS, days, draw_ad};
use super::cities::MOROCCAN_CITIES;
use super::{AdKind, AdOffer, Portal, PortalAd};
use crate::random::{hash_words, stream};
use crate::truth::EventKind;

/// How far before the start ads begin to be posted: long enough for the number of live ads
/// to have settled by the start.
const WARM_UP_DAYS: f64 = 6.0 * MEAN_LIFETIME_DAYS;
/// Ads one search can post in its whole history (ids are numbered within it).
const MAX_ADS_PER_SEGMENT: u64 = 100_000;
const SALT: u64 = 0xAD5;

/// One thing that happened to one ad, as [`crate::GroundTruthEvent`] for the APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalTruthEvent {
    #[serde(with = "crate::time_format::serde_millis")]
    pub at: DateTime<Utc>,
    pub portal: Portal,
    /// `ma/casablanca`.
    pub market: String,
    /// The ad number.
    pub id: String,
    /// Whether the ad shows a price (an ad without one is never a listing).
    pub priced: bool,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// One search of a portal: a city's ads of one offer and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Search {
    pub portal: Portal,
    /// Index into [`moroccan_cities`](super::moroccan_cities).
    pub city: usize,
    pub offer: AdOffer,
    pub kind: AdKind,
}

impl Search {
    fn index(self) -> u64 {
        (self.city as u64) * 4
            + match self.offer {
                AdOffer::Sale => 0,
                AdOffer::Rent => 2,
            }
            + match self.kind {
                AdKind::Apartment => 0,
                AdKind::House => 1,
            }
    }
}

/// The simulated portals: which cities, how many live ads per search, the page layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Portals {
    seed: u64,
    start: DateTime<Utc>,
    ads_per_search: u32,
}

impl Portals {
    pub fn new(seed: u64, start: DateTime<Utc>, ads_per_search: u32) -> Self {
        Self {
            seed,
            start,
            ads_per_search,
        }
    }

    /// Every ad of `search` posted up to `until`, oldest first.
    pub fn ads(&self, search: Search, until: DateTime<Utc>) -> Vec<PortalAd> {
        let Some(city) = MOROCCAN_CITIES.get(search.city) else {
            return Vec::new();
        };
        let rate_per_day = f64::from(self.ads_per_search) * city.size / MEAN_LIFETIME_DAYS;
        let segment = hash_words(&[self.seed, search.portal.tag(), search.index(), SALT]);
        let mut posted_at = self.start - days(WARM_UP_DAYS);
        let mut ads = Vec::new();
        for serial in 0..MAX_ADS_PER_SEGMENT {
            let mut rng = stream(&[segment, serial]);
            let gap: f64 = -(1.0 - rng.random::<f64>()).ln() / rate_per_day;
            posted_at += days(gap);
            if posted_at > until {
                break;
            }
            let id = search.portal.first_id() + search.index() * MAX_ADS_PER_SEGMENT + serial;
            ads.push(draw_ad(&mut rng, search, city, id.to_string(), posted_at));
        }
        ads
    }

    /// The ad numbered `id` on `portal` as posted up to `at` (up or taken down since); `None`
    /// for a number not given by then. A number names its search and its place in it.
    pub fn ad(&self, portal: Portal, id: &str, at: DateTime<Utc>) -> Option<PortalAd> {
        let offset = id.parse::<u64>().ok()?.checked_sub(portal.first_id())?;
        let (index, serial) = (offset / MAX_ADS_PER_SEGMENT, offset % MAX_ADS_PER_SEGMENT);
        let search = Self::searches().find(|s| s.portal == portal && s.index() == index)?;
        self.ads(search, at)
            .into_iter()
            .nth(usize::try_from(serial).ok()?)
            .filter(|ad| ad.id == id)
    }

    /// The ads of `search` up at `at`: the featured ones (shown atop every page), then the
    /// others, newest first.
    pub fn live(&self, search: Search, at: DateTime<Utc>) -> (Vec<PortalAd>, Vec<PortalAd>) {
        let mut live: Vec<PortalAd> = self
            .ads(search, at)
            .into_iter()
            .filter(|ad| ad.live_at(at))
            .collect();
        live.sort_by(|a, b| b.posted_at.cmp(&a.posted_at).then(a.id.cmp(&b.id)));
        live.into_iter().partition(|ad| ad.featured)
    }

    /// Page `page` (from 1) of `search` at `at`, as the portal serves it: its ads, whether
    /// a page follows, and the search's total.
    pub fn page(
        &self,
        search: Search,
        at: DateTime<Utc>,
        page: usize,
    ) -> (Vec<PortalAd>, bool, usize) {
        let (featured, others) = self.live(search, at);
        let (ads, more) = page_of(&featured, &others, page, search.portal.page_size());
        (ads, more, featured.len() + others.len())
    }

    /// Every search of every portal.
    pub fn searches() -> impl Iterator<Item = Search> {
        Portal::ALL.into_iter().flat_map(|portal| {
            (0..MOROCCAN_CITIES.len()).flat_map(move |city| {
                [AdOffer::Sale, AdOffer::Rent]
                    .into_iter()
                    .flat_map(move |offer| {
                        [AdKind::Apartment, AdKind::House]
                            .into_iter()
                            .map(move |kind| Search {
                                portal,
                                city,
                                offer,
                                kind,
                            })
                    })
            })
        })
    }

    /// What happened to the portals' ads with `from < at <= to`, in time order.
    pub fn ground_truth(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<PortalTruthEvent> {
        let mut events = Vec::new();
        for search in Self::searches() {
            for ad in self.ads(search, to) {
                let event = |at, kind| PortalTruthEvent {
                    at,
                    portal: ad.portal,
                    market: ad.market.clone(),
                    id: ad.id.clone(),
                    priced: ad.first_price.is_some(),
                    kind,
                };
                let within = |at: DateTime<Utc>| from < at && at <= to;
                if within(ad.posted_at) {
                    events.push(event(
                        ad.posted_at,
                        EventKind::New {
                            price: ad.first_price.unwrap_or(0),
                            status: crate::ListingStatus::Active,
                        },
                    ));
                }
                let mut price = ad.first_price.unwrap_or(0);
                for (at, new) in &ad.price_edits {
                    if within(*at) && *at < ad.removed_at {
                        events.push(event(
                            *at,
                            EventKind::PriceChange {
                                old: price,
                                new: *new,
                            },
                        ));
                    }
                    price = *new;
                }
                if within(ad.removed_at) {
                    events.push(event(
                        ad.removed_at,
                        EventKind::Delisted {
                            old: crate::ListingStatus::Active,
                            new: crate::ListingStatus::Withdrawn,
                        },
                    ));
                }
            }
        }
        events.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        events
    }
}

/// A page of a search: the featured ads (at most a quarter of a page: those past it take
/// their place among the others), then the page's share of the others; and whether a page
/// follows.
pub(crate) fn page_of(
    featured: &[PortalAd],
    others: &[PortalAd],
    page: usize,
    page_size: usize,
) -> (Vec<PortalAd>, bool) {
    let shown = featured.len().min(page_size / 4);
    let mut rest: Vec<&PortalAd> = featured[shown..].iter().chain(others).collect();
    rest.sort_by(|a, b| b.posted_at.cmp(&a.posted_at).then(a.id.cmp(&b.id)));
    let per_page = page_size - shown;
    let start = (page.max(1) - 1).saturating_mul(per_page);
    let more = start.saturating_add(per_page) < rest.len();
    let mut ads: Vec<PortalAd> = featured[..shown].to_vec();
    ads.extend(rest.into_iter().skip(start).take(per_page).cloned());
    (ads, more)
}
