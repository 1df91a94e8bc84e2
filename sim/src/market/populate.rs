//! The market as it stands at the start: live listings with histories, recent sales and
//! withdrawals.

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Area;
use super::ticks::close_price;
use crate::generate::{charm, cut_fraction, nice_price};
use crate::listing::{ListingStatus, PriceChange, SimListing};
use crate::random::stream;

const INIT_SALT: u64 = 0x1217;

/// An exponential draw with the given mean, conditioned on being below `cap` (drawn by
/// inversion, so no mass piles up at the cap).
fn exponential_below(rng: &mut ChaCha8Rng, mean: f64, cap: f64) -> f64 {
    let reach = 1.0 - (-cap / mean).exp();
    -mean * (1.0 - rng.random::<f64>() * reach).ln()
}

fn days(days: f64) -> TimeDelta {
    TimeDelta::milliseconds((days * 86_400_000.0).round() as i64)
}

/// Days of sales and withdrawals before the start.
const HISTORY_DAYS: f64 = 30.0;

/// The market as it stands at `start`: `count` live listings with histories that began
/// before it, plus the sales and withdrawals of the month before.
pub(super) fn populate(area: &mut Area, seed: u64, start: DateTime<Utc>, count: u32) {
    let mut rng = stream(&[seed, area.key_hash, INIT_SALT]);
    let rates = area.rates;
    let histories = Histories {
        start,
        active_mean_days: 1.0 / (rates.pending + rates.withdraw),
        pending_mean_days: 1.0 / (rates.close + rates.fall_through),
        pending_share: rates.pending_share,
    };
    let sold_count = (f64::from(count) * rates.pending_share * rates.close * HISTORY_DAYS).round();
    let withdrawn_count =
        (f64::from(count) * (1.0 - rates.pending_share) * rates.withdraw * HISTORY_DAYS).round();
    let plan = std::iter::repeat_n(Start::Live, count as usize)
        .chain(std::iter::repeat_n(Start::Sold, sold_count as usize))
        .chain(std::iter::repeat_n(
            Start::Withdrawn,
            withdrawn_count as usize,
        ));
    for kind in plan {
        let history = histories.draw(&mut rng, kind);
        let mut listing = area.create_listing(seed, &mut rng, history.on_market_at);
        cut_before_start(&mut rng, &mut listing, &history, start, rates.cut);
        history.settle(&mut rng, &mut listing);
        area.add_at_start(listing);
    }
}

/// Where a listing of the starting market stands.
#[derive(Clone, Copy)]
enum Start {
    Live,
    Sold,
    Withdrawn,
}

/// How long listings stay in each state, for histories that end at `start`.
struct Histories {
    start: DateTime<Utc>,
    active_mean_days: f64,
    pending_mean_days: f64,
    /// The share of live listings that are pending.
    pending_share: f64,
}

/// A listing's history before the start.
struct History {
    on_market_at: DateTime<Utc>,
    pending_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    status: ListingStatus,
}

impl Histories {
    fn draw(&self, rng: &mut ChaCha8Rng, kind: Start) -> History {
        let (start, active_mean_days) = (self.start, self.active_mean_days);
        let (on_market_at, pending_at, closed_at, status) = match kind {
            Start::Live if rng.random::<f64>() < self.pending_share => {
                let pending_at =
                    start - days(exponential_below(rng, self.pending_mean_days, 120.0));
                let on_market_at =
                    pending_at - days(1.0 + exponential_below(rng, active_mean_days, 365.0));
                (on_market_at, Some(pending_at), None, ListingStatus::Pending)
            }
            Start::Live => {
                // One in twenty is stale: months on the market.
                let age = if rng.random::<f64>() < 0.05 {
                    rng.random_range(90.0..400.0)
                } else {
                    exponential_below(rng, active_mean_days, 720.0)
                };
                (start - days(age), None, None, ListingStatus::Active)
            }
            Start::Sold => {
                let closed_at = start - days(rng.random_range(0.0..HISTORY_DAYS));
                let pending_at = closed_at - days(exponential_below(rng, 32.0, 90.0));
                let on_market_at =
                    pending_at - days(1.0 + exponential_below(rng, active_mean_days, 365.0));
                (
                    on_market_at,
                    Some(pending_at),
                    Some(closed_at),
                    ListingStatus::Sold,
                )
            }
            Start::Withdrawn => {
                let closed_at = start - days(rng.random_range(0.0..HISTORY_DAYS));
                let on_market_at =
                    closed_at - days(14.0 + exponential_below(rng, active_mean_days, 500.0));
                (
                    on_market_at,
                    None,
                    Some(closed_at),
                    ListingStatus::Withdrawn,
                )
            }
        };
        History {
            on_market_at,
            pending_at,
            closed_at,
            status,
        }
    }
}

/// A price cut before the start, more likely the longer the listing was active.
fn cut_before_start(
    rng: &mut ChaCha8Rng,
    listing: &mut SimListing,
    history: &History,
    start: DateTime<Utc>,
    daily_cut_rate: f64,
) {
    let on_market_at = history.on_market_at;
    let active_until = history.pending_at.or(history.closed_at).unwrap_or(start);
    let active_days = (active_until - on_market_at).num_milliseconds() as f64 / 86_400_000.0;
    let cut_chance = 1.0 - (-daily_cut_rate * 0.9 * (active_days - 7.0).max(0.0)).exp();
    if !listing.placeholder_price && rng.random::<f64>() < cut_chance {
        let at = on_market_at + days(7.0 + rng.random::<f64>() * (active_days - 7.0));
        let fraction = cut_fraction(rng);
        let new = listing.list_price;
        let old = nice_price(new as f64 / (1.0 - fraction), charm(rng)).max(new + 1_000);
        listing.original_list_price = old;
        listing.last_price_change = Some(PriceChange { old, new, at });
    }
}

impl History {
    /// The listing's status and its dates as of the start (a sale's price drawn).
    fn settle(&self, rng: &mut ChaCha8Rng, listing: &mut SimListing) {
        let Self {
            on_market_at,
            pending_at,
            closed_at,
            status,
        } = *self;
        listing.status = status;
        listing.pending_at = pending_at;
        listing.closed_at = closed_at;
        if status == ListingStatus::Sold {
            listing.close_price = Some(close_price(rng, listing));
        }
        listing.status_changed_at = closed_at.or(pending_at).unwrap_or(on_market_at);
        listing.modified_at = [
            Some(on_market_at),
            listing.last_price_change.map(|c| c.at),
            pending_at,
            closed_at,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(on_market_at);
    }
}

impl Area {
    /// Adds a listing of the starting market, live ones to their state's positions.
    fn add_at_start(&mut self, listing: SimListing) {
        let position = self.listings.len() as u32;
        let status = listing.status;
        self.listings.push(listing);
        match status {
            ListingStatus::Active => self.active.push(position),
            ListingStatus::Pending => self.pending.push(position),
            ListingStatus::Sold | ListingStatus::Withdrawn => {}
        }
    }
}
