//! Drawing each hour's events: which listings go pending, sell, are withdrawn or change
//! price, and how many new ones come on the market.

use std::collections::HashSet;

use chrono::{DateTime, Datelike as _, TimeDelta, Timelike as _, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::events::{Action, HourPlan, Planned};
use super::rates::Rates;
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
    let mut draw = AreaTick {
        rng: stream(&[seed, area.key_hash, tick as u64, TICK_SALT]),
        tick_start,
        hourly: time_weight(area.profile, tick_start) * activity / 24.0,
        rates: area.rates,
        touched: HashSet::new(),
        plan: HourPlan {
            out,
            area: area_position,
            order: 0,
        },
    };
    // Active listings: go pending (underpriced ones sooner), get withdrawn (stale ones
    // more), get cut (overpriced and stale ones more, rarely twice in two weeks), rarely
    // get raised.
    draw.under_contract(area);
    draw.withdrawals(area);
    draw.price_cuts(area);
    draw.price_rises(area);
    // Pending listings: close, or fall back to active.
    draw.closings(area);
    draw.fall_throughs(area);
    draw.new_listings(area, seed, target_live);
}

/// The draws of one market's hour, in the order the stream `rng` is drawn from.
struct AreaTick<'a> {
    rng: ChaCha8Rng,
    tick_start: DateTime<Utc>,
    /// The hour's share of a day's events (time of day and week, and the activity).
    hourly: f64,
    rates: Rates,
    /// Listings with an event this hour (one each keeps every drawn event valid).
    touched: HashSet<u32>,
    plan: HourPlan<'a>,
}

impl AreaTick<'_> {
    /// A time within the hour.
    fn at(&mut self) -> DateTime<Utc> {
        self.tick_start + TimeDelta::milliseconds(self.rng.random_range(1..=TICK_MILLIS))
    }

    /// [`thinned`] at this hour's share of `daily_rate`.
    fn thinned(
        &mut self,
        candidates: &[u32],
        daily_rate: f64,
        max_weight: f64,
        weight: impl FnMut(u32) -> f64,
    ) -> Vec<u32> {
        thinned(
            &mut self.rng,
            candidates,
            daily_rate * self.hourly,
            max_weight,
            &mut self.touched,
            weight,
        )
    }

    /// Underpriced listings go pending sooner.
    fn under_contract(&mut self, area: &Area) {
        let listings = &area.listings;
        for i in self.thinned(&area.active, self.rates.pending, 2.0, |i| {
            (-(listings[i as usize].overpricing - 1.0) * 6.0)
                .exp()
                .clamp(0.3, 2.0)
        }) {
            let when = self.at();
            self.plan.push(when, i, Action::ToPending);
        }
    }

    /// Stale listings are withdrawn more.
    fn withdrawals(&mut self, area: &Area) {
        let (listings, now) = (&area.listings, self.tick_start);
        for i in self.thinned(&area.active, self.rates.withdraw, 3.0, |i| {
            (0.5 + days_on_market(&listings[i as usize], now) / 90.0).min(3.0)
        }) {
            let when = self.at();
            self.plan.push(when, i, Action::Withdrawn);
        }
    }

    /// Overpriced and stale listings are cut more, rarely twice in two weeks; never a
    /// placeholder price.
    fn price_cuts(&mut self, area: &Area) {
        let (listings, now) = (&area.listings, self.tick_start);
        for i in self.thinned(&area.active, self.rates.cut, 3.0, |i| {
            cut_weight(&listings[i as usize], now)
        }) {
            let when = self.at();
            let old = listings[i as usize].list_price;
            let fraction = cut_fraction(&mut self.rng);
            let new = cut_price(old, fraction, charm(&mut self.rng));
            self.plan.push(when, i, Action::PriceChange { new });
        }
    }

    /// Underpriced listings are rarely raised; never a placeholder price.
    fn price_rises(&mut self, area: &Area) {
        let listings = &area.listings;
        for i in self.thinned(&area.active, self.rates.rise, 3.0, |i| {
            let listing = &listings[i as usize];
            if listing.placeholder_price {
                return 0.0;
            }
            (-(listing.overpricing - 1.0) * 10.0).exp().clamp(0.2, 3.0)
        }) {
            let when = self.at();
            let old = listings[i as usize].list_price;
            let new = raise_price(old, rise_fraction(&mut self.rng), charm(&mut self.rng));
            self.plan.push(when, i, Action::PriceChange { new });
        }
    }

    fn closings(&mut self, area: &Area) {
        for i in self.thinned(&area.pending, self.rates.close, 1.0, |_| 1.0) {
            let when = self.at();
            let close_price = close_price(&mut self.rng, &area.listings[i as usize]);
            self.plan.push(when, i, Action::Sold { close_price });
        }
    }

    fn fall_throughs(&mut self, area: &Area) {
        for i in self.thinned(&area.pending, self.rates.fall_through, 1.0, |_| 1.0) {
            let when = self.at();
            self.plan.push(when, i, Action::BackToActive);
        }
    }

    /// New listings, pulled back towards the configured size when the market drifts.
    fn new_listings(&mut self, area: &mut Area, seed: u64, target_live: u32) {
        let live = area.live_count().max(1) as f64;
        let target = f64::from(target_live);
        let reversion = (target / live).powi(2).clamp(0.25, 4.0);
        let new_count = poisson(
            &mut self.rng,
            target * self.rates.new_per_live * self.hourly * reversion,
        );
        for _ in 0..new_count {
            let when = self.at();
            let listing = area.create_listing(seed, &mut self.rng, when);
            self.plan
                .push(when, u32::MAX, Action::New(Box::new(listing)));
        }
    }
}

fn days_on_market(listing: &SimListing, now: DateTime<Utc>) -> f64 {
    (now - listing.on_market_at).num_milliseconds() as f64 / 86_400_000.0
}

/// How much likelier than average a listing is to be cut: more when overpriced or stale,
/// much less within a week on the market or two weeks of its last change; never a
/// placeholder price.
fn cut_weight(listing: &SimListing, now: DateTime<Utc>) -> f64 {
    if listing.placeholder_price {
        return 0.0;
    }
    let dom = days_on_market(listing, now);
    let dom_factor = if dom < 7.0 {
        0.1
    } else {
        (0.5 + dom / 60.0).min(2.0)
    };
    let recently_changed = listing
        .last_price_change
        .is_some_and(|c| now - c.at < TimeDelta::days(14));
    let recent = if recently_changed { 0.3 } else { 1.0 };
    (dom_factor * recent * ((listing.overpricing - 1.0) * 6.0).exp()).clamp(0.0, 3.0)
}
