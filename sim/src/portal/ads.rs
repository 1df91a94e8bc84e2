//! One classified ad over its whole life, and how it is drawn.

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng as _;

use super::cities::MoroccanCity;
use super::{AdKind, AdOffer, Portal, Search};
use crate::random::lognormal;

/// Mean days an ad stays up.
pub(super) const MEAN_LIFETIME_DAYS: f64 = 45.0;

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

pub(super) fn days(days: f64) -> TimeDelta {
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

pub(super) fn draw_ad(
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
