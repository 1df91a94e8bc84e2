//! Drawing each hour's events: which listings go pending, sell, are withdrawn or change
//! price, and how many new ones come on the market.

use std::collections::HashSet;

use chrono::{DateTime, Datelike as _, TimeDelta, Timelike as _, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::events::{Action, HourPlan, Planned};
use super::rentals::{draw_rental_tick, rental_target};
use super::{Area, Market, TICK_MILLIS};
use crate::generate::{charm, cut_fraction, cut_price, raise_price, rise_fraction};
use crate::listing::SimListing;
use crate::profiles::MarketProfile;
use crate::random::{normal, poisson, stream};

const TICK_SALT: u64 = 0x71C;

impl Market {
    /// Draws the events of hour `tick` of every market and queues them in time order.
    pub(super) fn draw_tick(&mut self, tick: i64) {
        let tick_start = self.tick_start(tick);
        let mut drawn = Vec::new();
        for (position, area) in self.areas.iter_mut().enumerate() {
            draw_area_tick(
                area,
                position,
                self.seed,
                tick,
                tick_start,
                self.config.activity,
                self.config.listings_per_market,
                &mut drawn,
            );
            let hourly = time_weight(area.profile, tick_start) * self.config.activity / 24.0;
            draw_rental_tick(
                area,
                position,
                self.seed,
                tick,
                tick_start,
                hourly,
                rental_target(self.config.listings_per_market),
                &mut drawn,
            );
        }
        drawn.sort_by_key(|p| (p.at, p.area, p.order));
        self.planned.extend(drawn);
    }
}

pub(super) fn close_price(rng: &mut ChaCha8Rng, listing: &SimListing) -> u64 {
    let base = if listing.placeholder_price {
        listing.fair_value
    } else {
        listing.list_price
    };
    let ratio = (0.985 + 0.025 * normal(rng)).clamp(0.85, 1.15);
    ((base as f64 * ratio / 500.0).round() as u64).max(1) * 500
}

/// Relative activity by local hour: listing agents work office hours.
const HOUR_WEIGHTS: [f64; 24] = [
    0.15, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.3, 1.7, 1.8, 1.8, 1.7, 1.7, 1.8, 1.8, 1.7, 1.5, 1.2,
    0.9, 0.7, 0.5, 0.35, 0.25,
];
/// Relative activity by local weekday, Monday first: new listings peak on Thursdays.
const WEEKDAY_WEIGHTS: [f64; 7] = [1.05, 1.05, 1.1, 1.25, 1.2, 0.75, 0.6];

fn time_weight(profile: &MarketProfile, at: DateTime<Utc>) -> f64 {
    let local = at + TimeDelta::hours(i64::from(profile.utc_offset_hours));
    let hour_mean = HOUR_WEIGHTS.iter().sum::<f64>() / 24.0;
    let day_mean = WEEKDAY_WEIGHTS.iter().sum::<f64>() / 7.0;
    let hour = HOUR_WEIGHTS[local.hour() as usize % 24] / hour_mean;
    let day = WEEKDAY_WEIGHTS[local.weekday().num_days_from_monday() as usize % 7] / day_mean;
    hour * day
}

/// Draws, by thinning, which of `candidates` an event happens to in one hour: a Poisson
/// number of proposals at the highest rate, each kept with probability weight / max.
fn thinned(
    rng: &mut ChaCha8Rng,
    candidates: &[u32],
    hourly_rate: f64,
    max_weight: f64,
    touched: &mut HashSet<u32>,
    mut weight: impl FnMut(u32) -> f64,
) -> Vec<u32> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let proposals = poisson(rng, candidates.len() as f64 * hourly_rate * max_weight);
    let mut picked = Vec::new();
    for _ in 0..proposals {
        let candidate = candidates[rng.random_range(0..candidates.len())];
        let keep: f64 = rng.random();
        // One event per listing per hour keeps every drawn event valid when applied.
        if !touched.contains(&candidate) && keep * max_weight < weight(candidate) {
            touched.insert(candidate);
            picked.push(candidate);
        }
    }
    picked
}

#[allow(clippy::too_many_arguments)]
fn draw_area_tick(
    area: &mut Area,
    area_position: usize,
    seed: u64,
    tick: i64,
    tick_start: DateTime<Utc>,
    activity: f64,
    target_live: u32,
    out: &mut Vec<Planned>,
) {
    let mut rng = stream(&[seed, area.key_hash, tick as u64, TICK_SALT]);
    let hourly = time_weight(area.profile, tick_start) * activity / 24.0;
    let rates = area.rates;
    let mut touched = HashSet::new();
    let at = |rng: &mut ChaCha8Rng| {
        tick_start + TimeDelta::milliseconds(rng.random_range(1..=TICK_MILLIS))
    };
    let mut plan = HourPlan {
        out,
        area: area_position,
        order: 0,
    };

    let listings = &area.listings;
    let days_on_market = |i: u32| {
        (tick_start - listings[i as usize].on_market_at).num_milliseconds() as f64 / 86_400_000.0
    };
    let overpricing = |i: u32| listings[i as usize].overpricing;
    let placeholder = |i: u32| listings[i as usize].placeholder_price;

    // Active listings: go pending (underpriced ones sooner), get withdrawn (stale ones
    // more), get cut (overpriced and stale ones more, rarely twice in two weeks), rarely
    // get raised.
    for i in thinned(
        &mut rng,
        &area.active,
        rates.pending * hourly,
        2.0,
        &mut touched,
        |i| (-(overpricing(i) - 1.0) * 6.0).exp().clamp(0.3, 2.0),
    ) {
        let when = at(&mut rng);
        plan.push(when, i, Action::ToPending);
    }
    for i in thinned(
        &mut rng,
        &area.active,
        rates.withdraw * hourly,
        3.0,
        &mut touched,
        |i| (0.5 + days_on_market(i) / 90.0).min(3.0),
    ) {
        let when = at(&mut rng);
        plan.push(when, i, Action::Withdrawn);
    }
    let recently_changed = |i: u32| {
        listings[i as usize]
            .last_price_change
            .is_some_and(|c| tick_start - c.at < TimeDelta::days(14))
    };
    for i in thinned(
        &mut rng,
        &area.active,
        rates.cut * hourly,
        3.0,
        &mut touched,
        |i| {
            if placeholder(i) {
                return 0.0;
            }
            let dom = days_on_market(i);
            let dom_factor = if dom < 7.0 {
                0.1
            } else {
                (0.5 + dom / 60.0).min(2.0)
            };
            let recent = if recently_changed(i) { 0.3 } else { 1.0 };
            (dom_factor * recent * ((overpricing(i) - 1.0) * 6.0).exp()).clamp(0.0, 3.0)
        },
    ) {
        let when = at(&mut rng);
        let old = listings[i as usize].list_price;
        let fraction = cut_fraction(&mut rng);
        let new = cut_price(old, fraction, charm(&mut rng));
        plan.push(when, i, Action::PriceChange { new });
    }
    for i in thinned(
        &mut rng,
        &area.active,
        rates.rise * hourly,
        3.0,
        &mut touched,
        |i| {
            if placeholder(i) {
                return 0.0;
            }
            (-(overpricing(i) - 1.0) * 10.0).exp().clamp(0.2, 3.0)
        },
    ) {
        let when = at(&mut rng);
        let old = listings[i as usize].list_price;
        let new = raise_price(old, rise_fraction(&mut rng), charm(&mut rng));
        plan.push(when, i, Action::PriceChange { new });
    }

    // Pending listings: close, or fall back to active.
    for i in thinned(
        &mut rng,
        &area.pending,
        rates.close * hourly,
        1.0,
        &mut touched,
        |_| 1.0,
    ) {
        let when = at(&mut rng);
        let close_price = close_price(&mut rng, &listings[i as usize]);
        plan.push(when, i, Action::Sold { close_price });
    }
    for i in thinned(
        &mut rng,
        &area.pending,
        rates.fall_through * hourly,
        1.0,
        &mut touched,
        |_| 1.0,
    ) {
        let when = at(&mut rng);
        plan.push(when, i, Action::BackToActive);
    }

    // New listings, pulled back towards the configured size when the market drifts.
    let live = area.live_count().max(1) as f64;
    let target = f64::from(target_live);
    let reversion = (target / live).powi(2).clamp(0.25, 4.0);
    let new_count = poisson(&mut rng, target * rates.new_per_live * hourly * reversion);
    for _ in 0..new_count {
        let when = at(&mut rng);
        let listing = area.create_listing(seed, &mut rng, when);
        plan.push(when, u32::MAX, Action::New(Box::new(listing)));
    }
}
