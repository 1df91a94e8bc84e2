//! Rentals: homes for rent in each market, apart from the sale listings (their own ids,
//! random streams and ground truth, so the sale market is the same with or without them).
//! A rental's `list_price` is its monthly rent, tied to what the home would sell for by
//! the market's gross rent yield; rentals come on the market, change rent and are taken.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::events::{Action, HourPlan, Planned, remove_sorted};
use super::{Area, Market, TICK_MILLIS};
use crate::listing::{ListingStatus, PriceChange, PropertyType, SimListing};
use crate::random::{normal, poisson, stream, weighted_index};
use crate::truth::{EventKind, GroundTruthEvent};

/// Rental serials start here, far above any sale listing's, so a rental's ids are never
/// a sale listing's (see `source_ids`: each market's zpid block holds ~5.8 million serials).
const RENTAL_SERIAL_BASE: u64 = 4_000_000;
/// Rentals per live sale listing at the start (a third: rentals read quickly).
const RENTALS_PER_SALE_LISTING: f64 = 1.0 / 3.0;
/// Median days a rental stays listed before it is taken.
const MEDIAN_RENTAL_DAYS: f64 = 21.0;
/// Rent changes per active rental per day (four in five are cuts).
const RENT_CHANGE_RATE: f64 = 0.012;
/// Share of rentals listed without their living area.
const NO_AREA_SHARE: f64 = 0.2;
/// Rental types: apartments, condos, single-family houses, townhouses.
const RENTAL_TYPES: [(PropertyType, f64); 4] = [
    (PropertyType::Apartment, 0.45),
    (PropertyType::Condo, 0.15),
    (PropertyType::SingleFamily, 0.32),
    (PropertyType::Townhouse, 0.08),
];
const RENT_INIT_SALT: u64 = 0x4E47;
const RENT_TICK_SALT: u64 = 0x4E71;
/// Rental events are drawn after the hour's sale events: their order numbers start here.
const RENT_ORDER_BASE: u32 = 1 << 24;

/// How many rentals a market of `live_sale_listings` keeps.
pub(super) fn rental_target(live_sale_listings: u32) -> u32 {
    (f64::from(live_sale_listings) * RENTALS_PER_SALE_LISTING).ceil() as u32
}

/// A monthly rent as landlords write them: whole $25 steps, at least $300.
pub(crate) fn nice_rent(raw: f64) -> u64 {
    ((raw / 25.0).round() as u64 * 25).max(300)
}

/// A new rent `fraction` away from `old` (a cut when negative), always a different rent.
fn changed_rent(old: u64, fraction: f64) -> u64 {
    let new = nice_rent(old as f64 * (1.0 + fraction));
    match new.cmp(&old) {
        std::cmp::Ordering::Equal if fraction < 0.0 => old.saturating_sub(25).max(1),
        std::cmp::Ordering::Equal => old + 25,
        _ => new,
    }
}

impl Area {
    /// Draws the market's next rental, listed from `on_market_at`.
    fn create_rental(
        &mut self,
        seed: u64,
        rng: &mut ChaCha8Rng,
        on_market_at: DateTime<Utc>,
    ) -> SimListing {
        let serial = RENTAL_SERIAL_BASE + self.next_rental_serial;
        self.next_rental_serial += 1;
        let weights: Vec<f64> = RENTAL_TYPES.iter().map(|(_, w)| *w).collect();
        let property_type = RENTAL_TYPES[weighted_index(rng, &weights)].0;
        let mut listing = self.draw_listing(seed, rng, serial, on_market_at, Some(property_type));
        // The rent the home would fetch: its value times the market's gross yield, a
        // little more for a unit (smaller homes rent dearer per dollar of value).
        let unit_factor = if property_type == PropertyType::Apartment {
            1.08
        } else {
            1.0
        };
        let asking = (0.05 * normal(rng)).exp();
        let fair_rent =
            listing.fair_value as f64 * self.profile.gross_rent_yield * unit_factor / 12.0;
        let rent = nice_rent(fair_rent * asking);
        if rng.random::<f64>() < NO_AREA_SHARE {
            listing.living_area_sqft = None;
        }
        listing.rental = true;
        listing.list_price = rent;
        listing.original_list_price = rent;
        listing.overpricing = asking;
        listing.rent_estimate = None;
        listing.value_estimate = None;
        listing.lot_acres = None;
        listing.placeholder_price = false;
        listing
    }
}

fn days(days: f64) -> TimeDelta {
    TimeDelta::milliseconds((days * 86_400_000.0).round() as i64)
}

/// Daily rate at which an active rental is taken.
fn taken_rate() -> f64 {
    std::f64::consts::LN_2 / MEDIAN_RENTAL_DAYS
}

/// The rentals listed at `start`, listed over the weeks before it.
pub(super) fn populate_rentals(area: &mut Area, seed: u64, start: DateTime<Utc>, count: u32) {
    let mut rng = stream(&[seed, area.key_hash, RENT_INIT_SALT]);
    for _ in 0..count {
        let age = -(1.0 - rng.random::<f64>()).ln() / taken_rate();
        let on_market_at = start - days(age.min(180.0));
        let mut rental = area.create_rental(seed, &mut rng, on_market_at);
        if age > 14.0 && rng.random::<f64>() < 0.3 {
            // A cut made before the start.
            let at = on_market_at + days(7.0 + rng.random::<f64>() * (age.min(180.0) - 7.0));
            let new = rental.list_price;
            let old = changed_rent(new, 0.03 + 0.05 * rng.random::<f64>());
            rental.original_list_price = old;
            rental.last_price_change = Some(PriceChange { old, new, at });
            rental.modified_at = at;
        }
        let position = area.rentals.len() as u32;
        area.rentals.push(rental);
        area.active_rentals.push(position);
    }
}

/// Draws one hour of a market's rentals: taken, re-priced, newly listed.
#[allow(clippy::too_many_arguments)]
pub(super) fn draw_rental_tick(
    area: &mut Area,
    area_position: usize,
    seed: u64,
    tick: i64,
    tick_start: DateTime<Utc>,
    hourly: f64,
    target: u32,
    out: &mut Vec<Planned>,
) {
    let mut rng = stream(&[seed, area.key_hash, tick as u64, RENT_TICK_SALT]);
    let at = |rng: &mut ChaCha8Rng| {
        tick_start + TimeDelta::milliseconds(rng.random_range(1..=TICK_MILLIS))
    };
    let mut plan = HourPlan {
        out,
        area: area_position,
        order: RENT_ORDER_BASE,
    };
    let active = &area.active_rentals;
    let mut touched = HashSet::new();
    let mut pick = |rng: &mut ChaCha8Rng, rate: f64| -> Vec<u32> {
        if active.is_empty() {
            return Vec::new();
        }
        let n = poisson(rng, active.len() as f64 * rate * hourly);
        (0..n)
            .map(|_| active[rng.random_range(0..active.len())])
            // One event per rental per hour keeps every drawn event valid when applied.
            .filter(|i| touched.insert(*i))
            .collect()
    };
    for i in pick(&mut rng, taken_rate()) {
        let when = at(&mut rng);
        plan.push(when, i, Action::RentalTaken);
    }
    for i in pick(&mut rng, RENT_CHANGE_RATE) {
        let old = area.rentals[i as usize].list_price;
        let fraction = if rng.random::<f64>() < 0.8 {
            -(0.02 + 0.06 * rng.random::<f64>())
        } else {
            0.02 + 0.04 * rng.random::<f64>()
        };
        let new = changed_rent(old, fraction);
        let when = at(&mut rng);
        plan.push(when, i, Action::RentChange { new });
    }
    // New rentals replace the taken ones, pulled back towards the target count.
    let live = area.active_rentals.len().max(1) as f64;
    let reversion = (f64::from(target) / live).powi(2).clamp(0.25, 4.0);
    let new_count = poisson(
        &mut rng,
        f64::from(target) * taken_rate() * hourly * reversion,
    );
    for _ in 0..new_count {
        let when = at(&mut rng);
        let rental = area.create_rental(seed, &mut rng, when);
        plan.push(when, u32::MAX, Action::RentalNew(Box::new(rental)));
    }
}

impl Market {
    /// Applies a rental event (see [`Action::is_rental`]).
    pub(super) fn apply_rental(&mut self, p: Planned) {
        let area = &mut self.areas[p.area];
        let (position, kind) = match p.action {
            Action::RentalNew(rental) => {
                let position = area.rentals.len() as u32;
                let price = rental.list_price;
                area.rentals.push(*rental);
                area.active_rentals.push(position);
                let kind = EventKind::New {
                    price,
                    status: ListingStatus::Active,
                };
                (position, kind)
            }
            Action::RentChange { new } => {
                let rental = &mut area.rentals[p.listing as usize];
                let old = rental.list_price;
                if rental.status != ListingStatus::Active || new == old {
                    return;
                }
                rental.last_price_change = Some(PriceChange { old, new, at: p.at });
                rental.list_price = new;
                rental.modified_at = p.at;
                (p.listing, EventKind::PriceChange { old, new })
            }
            Action::RentalTaken => {
                if !remove_sorted(&mut area.active_rentals, p.listing) {
                    return;
                }
                let rental = &mut area.rentals[p.listing as usize];
                rental.status = ListingStatus::Withdrawn;
                rental.closed_at = Some(p.at);
                rental.status_changed_at = p.at;
                rental.modified_at = p.at;
                let kind = EventKind::Delisted {
                    old: ListingStatus::Active,
                    new: ListingStatus::Withdrawn,
                };
                (p.listing, kind)
            }
            _ => return,
        };
        let ids = area.rentals[position as usize].ids.clone();
        let seq = self.rental_events.len() as u64 + 1;
        self.rental_events.push(GroundTruthEvent {
            seq,
            at: p.at,
            market: area.key.clone(),
            ids,
            kind,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::market::tests::small_config;

    #[test]
    fn rents_follow_prices_by_the_yield_and_grow_with_bedrooms() {
        let market =
            Market::new(3, small_config(&["nashville-tn", "syracuse-ny"], 3_000)).expect("market");
        for key in ["nashville-tn", "syracuse-ny"] {
            let rentals = market.rentals(key).expect("rentals");
            assert_eq!(rentals.len(), 1_000);
            let profile = market.profile(key).expect("profile");
            let ids: BTreeSet<&str> = rentals.iter().map(|r| r.ids.zpid.as_str()).collect();
            assert_eq!(ids.len(), rentals.len());
            let sale_ids: BTreeSet<&str> = market
                .listings(key)
                .expect("listings")
                .iter()
                .map(|l| l.ids.zpid.as_str())
                .collect();
            assert!(ids.is_disjoint(&sale_ids));
            let mut by_beds: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
            let mut without_area = 0;
            for r in rentals {
                assert!(r.rental && r.status == ListingStatus::Active);
                let beds = r.beds.expect("every rental states its bedrooms");
                by_beds.entry(beds).or_default().push(r.list_price);
                without_area += usize::from(r.living_area_sqft.is_none());
                assert!(
                    [
                        PropertyType::Apartment,
                        PropertyType::Condo,
                        PropertyType::SingleFamily,
                        PropertyType::Townhouse
                    ]
                    .contains(&r.property_type)
                );
                assert_eq!(r.list_price % 25, 0);
            }
            assert!((100..350).contains(&without_area), "{without_area}");
            let median = |v: &mut Vec<u64>| {
                v.sort_unstable();
                v[v.len() / 2]
            };
            let medians: Vec<(u8, u64)> = by_beds
                .iter_mut()
                .filter(|(_, v)| v.len() >= 30)
                .map(|(b, v)| (*b, median(v)))
                .collect();
            assert!(medians.len() >= 3, "{medians:?}");
            assert!(
                medians.windows(2).all(|w| w[0].1 < w[1].1),
                "{key}: more bedrooms, more rent: {medians:?}"
            );
            // A gross yield near the profile's: a year of median rent over the median price.
            let mut rents: Vec<u64> = rentals.iter().map(|r| r.list_price).collect();
            let rent = median(&mut rents) as f64;
            let price = profile.median_list_price as f64;
            let gross_yield = rent * 12.0 / price;
            assert!(
                (gross_yield / profile.gross_rent_yield - 1.0).abs() < 0.45,
                "{key}: yield {gross_yield} vs {}",
                profile.gross_rent_yield
            );
        }
    }

    /// Rentals come, change rent and go; their ground truth replays to their state and
    /// never names a sale listing.
    #[test]
    fn rentals_churn_with_their_own_ground_truth() {
        let mut market = Market::new(8, small_config(&["nashville-tn"], 900)).expect("market");
        let state = |m: &Market| {
            m.rentals("nashville-tn")
                .expect("rentals")
                .iter()
                .map(|r| (r.ids.zpid.clone(), (r.list_price, r.status)))
                .collect::<BTreeMap<_, _>>()
        };
        let mut replayed = state(&market);
        let t0 = market.now();
        market.advance(TimeDelta::days(7)).expect("advance");
        let events = market.rental_ground_truth(t0, market.now());
        let mut kinds = BTreeSet::new();
        for e in events {
            kinds.insert(e.kind.name());
            match e.kind {
                EventKind::New { price, status } => {
                    assert!(
                        replayed
                            .insert(e.ids.zpid.clone(), (price, status))
                            .is_none()
                    );
                }
                EventKind::PriceChange { old, new } => {
                    let entry = replayed.get_mut(&e.ids.zpid).expect("known rental");
                    assert_eq!(entry.0, old);
                    entry.0 = new;
                }
                EventKind::Delisted { old, new } => {
                    let entry = replayed.get_mut(&e.ids.zpid).expect("known rental");
                    assert_eq!(entry.1, old);
                    entry.1 = new;
                }
                EventKind::StatusChange { .. } => panic!("a rental never goes pending"),
            }
        }
        assert_eq!(replayed, state(&market));
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        let active = market.rentals("nashville-tn").expect("rentals");
        let live = active
            .iter()
            .filter(|r| r.status == ListingStatus::Active)
            .count();
        assert!((live as f64 / 300.0 - 1.0).abs() < 0.25, "{live} rentals");
        // Sale events never name a rental.
        let rental_ids: BTreeSet<&str> = active.iter().map(|r| r.ids.zpid.as_str()).collect();
        assert!(
            market
                .events()
                .iter()
                .all(|e| !rental_ids.contains(e.ids.zpid.as_str()))
        );
    }
}
