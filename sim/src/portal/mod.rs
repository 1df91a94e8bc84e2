//! Property portals without an API (Avito.ma, Mubawab.ma) for Moroccan markets: classified
//! ads posted by owners and agencies, their prices edited, then taken down, served as the
//! portals' search pages (HTML in French, prices in dirhams), with ground truth.
//!
//! A classified ad has no MLS life (no pending, no closing): it is on the page or it is not.
//! Each ad's whole life (when it is posted, its price edits, when it comes down) is drawn
//! from the seed alone, so the ads of a search at any simulated time are a pure function of
//! the seed and that time: the portals follow the US market's clock with nothing to advance.

pub(crate) mod avito;
pub(crate) mod mubawab;
pub(crate) mod pages;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::random::{hash_words, lognormal, stream};
use crate::slug::slug;
use crate::truth::EventKind;

/// Live ads per search (city, offer, kind of property) when not configured; each city's
/// are this times its [`MoroccanCity::size`].
pub const DEFAULT_ADS_PER_SEARCH: u32 = 60;
/// Most live ads per search.
pub const MAX_ADS_PER_SEARCH: u32 = 5_000;

/// Mean days an ad stays up.
const MEAN_LIFETIME_DAYS: f64 = 45.0;
/// How far before the start ads begin to be posted: long enough for the number of live ads
/// to have settled by the start.
const WARM_UP_DAYS: f64 = 6.0 * MEAN_LIFETIME_DAYS;
/// Ads one search can post in its whole history (ids are numbered within it).
const MAX_ADS_PER_SEGMENT: u64 = 100_000;
const SALT: u64 = 0xAD5;

/// A property portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Portal {
    Avito,
    Mubawab,
}

impl Portal {
    pub const ALL: [Portal; 2] = [Portal::Avito, Portal::Mubawab];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avito => "avito",
            Self::Mubawab => "mubawab",
        }
    }

    /// Where the portal's real pages live: the links on the simulated pages point there,
    /// as the real pages' do.
    pub fn origin(self) -> &'static str {
        match self {
            Self::Avito => "https://www.avito.ma",
            Self::Mubawab => "https://www.mubawab.ma",
        }
    }

    /// Ads on one search page.
    pub fn page_size(self) -> usize {
        match self {
            Self::Avito => avito::ADS_PER_PAGE,
            Self::Mubawab => mubawab::CARDS_PER_PAGE,
        }
    }

    fn tag(self) -> u64 {
        match self {
            Self::Avito => 1,
            Self::Mubawab => 2,
        }
    }

    /// First ad number: real Avito numbers are eight digits, Mubawab's seven.
    fn first_id(self) -> u64 {
        match self {
            Self::Avito => 56_000_000,
            Self::Mubawab => 7_000_000,
        }
    }
}

/// For sale or to let (by the month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdOffer {
    Sale,
    Rent,
}

impl AdOffer {
    /// The verb both portals' search addresses use (`à_vendre`, `a-louer`).
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Self::Sale => "vendre",
            Self::Rent => "louer",
        }
    }

    fn from_verb(verb: &str) -> Option<Self> {
        [Self::Sale, Self::Rent]
            .into_iter()
            .find(|o| o.verb() == verb)
    }
}

/// A search address's category and verb (`appartements`, `à_vendre`), split at `joint`.
pub(crate) fn parse_search(search: &str, joint: &str) -> Option<(AdKind, AdOffer)> {
    let (category, verb) = search.split_once(joint)?;
    let kind = [AdKind::Apartment, AdKind::House]
        .into_iter()
        .find(|k| k.category() == category)?;
    Some((kind, AdOffer::from_verb(verb)?))
}

/// The kinds of property the simulated portals list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdKind {
    Apartment,
    /// A house or villa.
    House,
}

impl AdKind {
    /// The category both portals' search addresses use.
    pub(crate) fn category(self) -> &'static str {
        match self {
            Self::Apartment => "appartements",
            Self::House => "maisons",
        }
    }
}

/// A Moroccan city the portals are simulated for. Price levels are rounded public figures
/// of 2024-2025 asking prices; they shape the draws, they are not data about real ads.
#[derive(Debug, Clone, PartialEq)]
pub struct MoroccanCity {
    /// As the portals write it (`Casablanca`).
    pub name: &'static str,
    /// Neighbourhoods as the portals name them.
    pub neighbourhoods: &'static [&'static str],
    /// Median asking price of a flat, dirhams per square metre.
    pub sale_mad_per_sqm: f64,
    /// Median monthly rent of a flat, dirhams per square metre.
    pub rent_mad_per_sqm: f64,
    /// The city's searches' size against the configured ads per search (Casablanca's are
    /// the largest).
    pub size: f64,
}

impl MoroccanCity {
    /// The market key the pipeline uses (`ma/casablanca`).
    pub fn market_key(&self) -> String {
        format!("ma/{}", slug(self.name))
    }

    /// The city's slug in the portals' search URLs (`casablanca`).
    pub fn url_slug(&self) -> String {
        slug(self.name)
    }
}

const MOROCCAN_CITIES: &[MoroccanCity] = &[
    MoroccanCity {
        name: "Casablanca",
        neighbourhoods: &[
            "Maârif",
            "Gauthier",
            "Racine",
            "Bourgogne Ouest",
            "Ain Diab",
            "Les princesses",
            "Sidi Maârouf",
            "Aïn Sebaâ",
            "CIL (Hay Salam)",
            "Casablanca Finance City",
            "Oasis",
            "Hay Hassani",
        ],
        sale_mad_per_sqm: 13_500.0,
        rent_mad_per_sqm: 95.0,
        size: 1.0,
    },
    MoroccanCity {
        name: "Rabat",
        neighbourhoods: &[
            "Agdal",
            "Hay Riad",
            "Souissi",
            "Hassan - Centre Ville",
            "Les Orangers",
            "Océan",
            "Aviation",
        ],
        sale_mad_per_sqm: 12_500.0,
        rent_mad_per_sqm: 85.0,
        size: 0.6,
    },
    MoroccanCity {
        name: "Marrakech",
        neighbourhoods: &[
            "Guéliz",
            "Hivernage",
            "Route de l'Ourika",
            "Targa",
            "Médina",
            "Palmeraie",
            "Route de Casablanca",
        ],
        sale_mad_per_sqm: 10_500.0,
        rent_mad_per_sqm: 70.0,
        size: 0.3,
    },
];

/// The Moroccan cities the portals are simulated for.
pub fn moroccan_cities() -> &'static [MoroccanCity] {
    MOROCCAN_CITIES
}

/// Equipment an ad may list, as the French pages label it.
const EQUIPMENT: &[&str] = &[
    "Ascenseur",
    "Terrasse",
    "Parking",
    "Piscine",
    "Jardin",
    "Balcon",
    "Climatisation",
    "Concierge",
    "Meublé",
    "Chauffage",
];

/// One classified ad over its whole life.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalAd {
    pub portal: Portal,
    /// `ma/casablanca`.
    pub market: String,
    pub city: &'static str,
    /// The ad number (Avito `listId`, Mubawab `adId`).
    pub id: String,
    pub offer: AdOffer,
    pub kind: AdKind,
    /// `None` for an ad in no particular neighbourhood ("Autre secteur").
    pub neighbourhood: Option<&'static str>,
    /// `None` for an ad that shows no price ("Prix non spécifié"): never a listing.
    pub first_price: Option<u64>,
    /// Price edits: when, and the new price.
    pub price_edits: Vec<(DateTime<Utc>, u64)>,
    /// `None` when the ad states no surface.
    pub area_sqm: Option<u32>,
    pub bedrooms: u8,
    pub bathrooms: Option<u8>,
    pub private_seller: bool,
    pub equipment: Vec<&'static str>,
    pub photos: u8,
    /// Featured ("à la une"): shown at the top of every page of its search.
    pub featured: bool,
    /// Titles in Arabic occur on Avito.
    pub arabic_title: bool,
    pub posted_at: DateTime<Utc>,
    pub removed_at: DateTime<Utc>,
}

impl PortalAd {
    /// Up at `at`.
    pub fn live_at(&self, at: DateTime<Utc>) -> bool {
        self.posted_at <= at && at < self.removed_at
    }

    /// The asking price at `at`.
    pub fn price_at(&self, at: DateTime<Utc>) -> Option<u64> {
        let mut price = self.first_price?;
        for (when, new) in &self.price_edits {
            if *when <= at {
                price = *new;
            }
        }
        Some(price)
    }

    /// Rooms in all ("pièces"): the bedrooms and a living room.
    pub fn rooms(&self) -> u8 {
        self.bedrooms + 1
    }
}

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
    /// Index into [`moroccan_cities`].
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

fn days(days: f64) -> TimeDelta {
    TimeDelta::milliseconds((days * 86_400_000.0).round() as i64)
}

/// Rounds to a step an asking price is written in: 10,000 DH for sales, 500 DH for rents.
fn asking(raw: f64, offer: AdOffer) -> u64 {
    let step = match offer {
        AdOffer::Sale => 10_000.0,
        AdOffer::Rent => 500.0,
    };
    ((raw / step).round().max(1.0) * step) as u64
}

fn draw_ad(
    rng: &mut rand_chacha::ChaCha8Rng,
    search: Search,
    city: &'static MoroccanCity,
    id: String,
    posted_at: DateTime<Utc>,
) -> PortalAd {
    let lifetime = -(1.0 - rng.random::<f64>()).ln() * MEAN_LIFETIME_DAYS;
    let removed_at = posted_at + days(lifetime.max(0.05));
    let (median_area, per_sqm_factor) = match search.kind {
        AdKind::Apartment => (95.0, 1.0),
        AdKind::House => (260.0, 0.85),
    };
    let area = lognormal(rng, median_area, 0.35).clamp(25.0, 1_500.0);
    let per_sqm = match search.offer {
        AdOffer::Sale => city.sale_mad_per_sqm,
        AdOffer::Rent => city.rent_mad_per_sqm,
    } * per_sqm_factor;
    let price = asking(area * lognormal(rng, per_sqm, 0.25), search.offer);
    // About one Avito ad in three shows no surface (search pages of 2024); Mubawab's cards
    // nearly always do.
    let missing_area = match search.portal {
        Portal::Avito => 0.3,
        Portal::Mubawab => 0.05,
    };
    let area_sqm = (rng.random::<f64>() >= missing_area).then_some(area.round() as u32);
    let first_price = (rng.random::<f64>() >= 0.04).then_some(price);
    let mut edits = Vec::new();
    for _ in 0..rng.random_range(0..=2u32) {
        if rng.random::<f64>() < 0.6 {
            edits.push(rng.random::<f64>());
        }
    }
    edits.sort_by(f64::total_cmp);
    let mut current = price;
    let mut price_edits = Vec::new();
    for fraction in edits {
        let change = if rng.random::<f64>() < 0.8 {
            1.0 - rng.random_range(0.03..0.12)
        } else {
            1.0 + rng.random_range(0.02..0.06)
        };
        let new = asking(current as f64 * change, search.offer);
        if new != current {
            price_edits.push((posted_at + days(lifetime * fraction), new));
            current = new;
        }
    }
    let bedrooms = ((area / 35.0).round() as u8).clamp(1, 6);
    let bathrooms =
        (rng.random::<f64>() >= 0.06).then(|| 1 + u8::from(area > 90.0) + u8::from(area > 180.0));
    let neighbourhood = (rng.random::<f64>() >= 0.08)
        .then(|| city.neighbourhoods[rng.random_range(0..city.neighbourhoods.len())]);
    PortalAd {
        portal: search.portal,
        market: city.market_key(),
        city: city.name,
        id,
        offer: search.offer,
        kind: search.kind,
        neighbourhood,
        first_price,
        price_edits,
        area_sqm,
        bedrooms,
        bathrooms,
        private_seller: rng.random::<f64>() < 0.55,
        equipment: EQUIPMENT
            .iter()
            .copied()
            .filter(|_| rng.random::<f64>() < 0.25)
            .collect(),
        photos: rng.random_range(0..=8),
        featured: rng.random::<f64>() < 0.05,
        arabic_title: rng.random::<f64>() < 0.1,
        posted_at,
        removed_at,
    }
}

/// A relative date as Avito writes it (`il y a 7 minutes`, `il y a 3 jours`, `il y a 2 mois`).
pub(crate) fn relative_date(posted_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let age = (now - posted_at).max(TimeDelta::zero());
    let (n, unit) = if age < TimeDelta::hours(1) {
        (age.num_minutes(), "minute")
    } else if age < TimeDelta::days(1) {
        (age.num_hours(), "heure")
    } else if age < TimeDelta::days(7) {
        (age.num_days(), "jour")
    } else if age < TimeDelta::days(35) {
        (age.num_weeks(), "semaine")
    } else {
        (age.num_days() / 30, "mois")
    };
    let plural = if n > 1 && unit != "mois" { "s" } else { "" };
    format!("il y a {n} {unit}{plural}")
}

/// Groups of three digits split by a no-break space, as the French pages write prices
/// (`1 250 000`).
pub(crate) fn french_number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{a0}');
        }
        out.push(c);
    }
    out
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn portals() -> Portals {
        Portals::new(7, crate::default_start(), 60)
    }

    #[test]
    fn searches_hover_around_their_size_and_repeat() {
        let search = Search {
            portal: Portal::Avito,
            city: 0,
            offer: AdOffer::Sale,
            kind: AdKind::Apartment,
        };
        let at = crate::default_start();
        let (featured, others) = portals().live(search, at);
        let live = featured.len() + others.len();
        assert!((35..=90).contains(&live), "{live} live ads");
        assert_eq!(portals().live(search, at), (featured, others));
        let ids: std::collections::BTreeSet<_> = portals()
            .ads(search, at)
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids.len(), portals().ads(search, at).len(), "ids are unique");
    }

    #[test]
    fn an_ad_page_answers_while_the_ad_is_up_and_404_after() {
        let p = portals();
        let t0 = crate::default_start();
        let t1 = t0 + TimeDelta::days(20);
        for portal in Portal::ALL {
            let search = Search {
                portal,
                city: 1,
                offer: AdOffer::Sale,
                kind: AdKind::House,
            };
            let path = |id: &str| match portal {
                Portal::Avito => format!("/fr/rabat/villas_et_riads/Villa_a_vendre_{id}.htm"),
                Portal::Mubawab => format!("/fr/a/{id}/villa-a-vendre"),
            };
            let status =
                |id: &str, at| pages::answer(&p, portal, &path(id), None, at, false).status;
            let ads = p.ads(search, t0);
            let up = ads.iter().find(|ad| ad.live_at(t0) && !ad.live_at(t1));
            let up = up.expect("an ad up at t0 and down by t1");
            assert_eq!(p.ad(portal, &up.id, t0).as_ref(), Some(up));
            assert_eq!(status(&up.id, t0), 200, "{portal:?} {}", up.id);
            assert_eq!(status(&up.id, t1), 404, "{portal:?} {} taken down", up.id);
            // A number never given, and one of the other portal's range.
            let unknown = (portal.first_id() + 99_999).to_string();
            assert_eq!(status(&unknown, t1), 404);
            assert_eq!(p.ad(portal, "12", t1), None);
        }
    }

    #[test]
    fn prices_are_in_plausible_dirhams() {
        for search in Portals::searches() {
            for ad in portals().ads(search, crate::default_start()) {
                let Some(price) = ad.first_price else {
                    continue;
                };
                let range = match ad.offer {
                    AdOffer::Sale => 100_000..=200_000_000,
                    AdOffer::Rent => 500..=500_000,
                };
                assert!(range.contains(&price), "{ad:?}");
            }
        }
    }

    #[test]
    fn ground_truth_follows_the_live_ads() {
        let p = portals();
        let t0 = crate::default_start();
        let t1 = t0 + TimeDelta::days(3);
        let search = Search {
            portal: Portal::Mubawab,
            city: 1,
            offer: AdOffer::Rent,
            kind: AdKind::House,
        };
        let live = |at| {
            let (f, o) = p.live(search, at);
            f.into_iter()
                .chain(o)
                .map(|a| a.id)
                .collect::<std::collections::BTreeSet<_>>()
        };
        let mut expected = live(t0);
        for e in p.ground_truth(t0, t1) {
            if e.portal != search.portal || e.market != "ma/rabat" {
                continue;
            }
            let ad = p.ads(search, t1).into_iter().find(|a| a.id == e.id);
            if ad.is_none() {
                continue;
            }
            match e.kind {
                EventKind::New { .. } => assert!(expected.insert(e.id)),
                EventKind::Delisted { .. } => assert!(expected.remove(&e.id)),
                _ => {}
            }
        }
        assert_eq!(expected, live(t1));
    }

    #[test]
    fn french_dates_and_numbers() {
        let now = crate::default_start();
        assert_eq!(
            relative_date(now - TimeDelta::minutes(7), now),
            "il y a 7 minutes"
        );
        assert_eq!(
            relative_date(now - TimeDelta::hours(1), now),
            "il y a 1 heure"
        );
        assert_eq!(
            relative_date(now - TimeDelta::days(3), now),
            "il y a 3 jours"
        );
        assert_eq!(
            relative_date(now - TimeDelta::days(70), now),
            "il y a 2 mois"
        );
        assert_eq!(french_number(1_250_000), "1\u{a0}250\u{a0}000");
        assert_eq!(french_number(950), "950");
    }

    #[test]
    fn featured_ads_top_every_page() {
        let p = portals();
        let search = Search {
            portal: Portal::Avito,
            city: 0,
            offer: AdOffer::Sale,
            kind: AdKind::Apartment,
        };
        let (featured, others) = p.live(search, crate::default_start());
        let (first, more) = page_of(&featured, &others, 1, 10);
        let (second, _) = page_of(&featured, &others, 2, 10);
        let shown = featured.len().min(2);
        assert_eq!(first[..shown], second[..shown]);
        assert!(more);
    }

    #[test]
    fn featured_ads_past_a_quarter_page_take_their_place_among_the_others() {
        let p = portals();
        let search = Search {
            portal: Portal::Avito,
            city: 0,
            offer: AdOffer::Sale,
            kind: AdKind::Apartment,
        };
        let (featured, others) = p.live(search, crate::default_start());
        // Every live ad a featured one: 2 atop each page of 8, the rest in date order once.
        let all: Vec<PortalAd> = featured.iter().chain(&others).cloned().collect();
        let mut seen = Vec::new();
        let mut page = 1;
        loop {
            let (ads, more) = page_of(&all, &[], page, 8);
            assert_eq!(ads[..2], all[..2]);
            seen.extend(ads[2..].iter().map(|a| a.id.clone()));
            if !more {
                break;
            }
            page += 1;
        }
        let mut rest = all[2..].to_vec();
        rest.sort_by(|a, b| b.posted_at.cmp(&a.posted_at).then(a.id.cmp(&b.id)));
        let expected: Vec<String> = rest.into_iter().map(|a| a.id).collect();
        assert_eq!(seen, expected);
    }
}
