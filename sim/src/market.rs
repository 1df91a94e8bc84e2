//! The simulated market: the listings of every configured city, simulated time, and the
//! events that happen as it advances.
//!
//! Time advances in whole simulated hours ("ticks") counted from the start. At the start
//! of each tick every market draws its events for that hour from its own generator,
//! seeded by (seed, market, tick), and from its state at that instant; the events are then
//! applied in time order. Stopping inside an hour keeps that hour's remaining events for
//! the next advance, so where an advance stops never changes what happens: the market at
//! a given simulated time is the same whatever steps led there.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet, VecDeque};

use chrono::{DateTime, Datelike as _, TimeDelta, Timelike as _, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::MarketConfig;
use crate::error::SimError;
use crate::generate::{
    MarketContext, ZipArea, charm, create_listing, cut_fraction, cut_price, nice_price,
    price_scale, raise_price, rise_fraction, zip_areas,
};
use crate::listing::{ListingStatus, PriceChange, SimListing};
use crate::profiles::{MarketProfile, builtin_markets, slug};
use crate::random::{hash_bytes, normal, poisson, stream};
use crate::truth::{EventKind, GroundTruthEvent};

/// Longest stretch of simulated time one call may advance.
pub const MAX_ADVANCE_DAYS: i64 = 400;
/// Sold and withdrawn listings stay visible to "recently sold" / "off market" searches
/// for this long.
pub const RECENT_DAYS: i64 = 90;

const INIT_SALT: u64 = 0x1217;
const TICK_SALT: u64 = 0x71C;
const TICK_MILLIS: i64 = 3_600_000;

/// A listing's place: (market position, listing position within it).
pub(crate) type ListingRef = (u32, u32);

/// Per-day event rates of one market, per listing in the relevant state.
#[derive(Debug, Clone, Copy)]
struct Rates {
    /// Active to pending.
    pending: f64,
    /// Active to withdrawn.
    withdraw: f64,
    /// Pending to sold.
    close: f64,
    /// Pending back to active (the deal fell through).
    fall_through: f64,
    cut: f64,
    rise: f64,
    /// New listings per live listing, which keeps the market near its size.
    new_per_live: f64,
    /// Expected pending share of live listings.
    pending_share: f64,
}

impl Rates {
    fn for_profile(profile: &MarketProfile) -> Self {
        let exit = std::f64::consts::LN_2 / f64::from(profile.median_days_on_market);
        let pending = exit * 0.8;
        let withdraw = exit * 0.2;
        let close = 1.0 / 32.0;
        let fall_through = 0.0025;
        let pace = f64::from(profile.median_days_on_market) / 45.0;
        // Stationary pending/active ratio: inflow to pending = outflow from it.
        let ratio = pending / (close + fall_through);
        Self {
            pending,
            withdraw,
            close,
            fall_through,
            cut: 0.0055 * pace.sqrt(),
            rise: 0.0006 / pace.sqrt(),
            new_per_live: (withdraw + ratio * close) / (1.0 + ratio),
            pending_share: ratio / (1.0 + ratio),
        }
    }
}

/// Orders of a market's listings, kept sorted as events apply (a binary-search insert
/// or removal per change), so requests only walk them. Keys end in the zpid, so every
/// order is total and deterministic.
#[derive(Debug, Clone, Default)]
pub(crate) struct AreaView {
    /// Active and pending, by (on-market time, zpid descending); read reversed for newest
    /// first.
    by_listed: Vec<u32>,
    /// Active and pending by (price, zpid).
    pub by_price: Vec<u32>,
    /// Sold in the last [`RECENT_DAYS`], by (close time, zpid descending).
    sold: Vec<u32>,
    /// Withdrawn in the last [`RECENT_DAYS`], by (off-market time, zpid descending).
    withdrawn: Vec<u32>,
    /// Every listing by (modification time, zpid).
    pub by_modification: Vec<u32>,
}

impl AreaView {
    /// Active and pending, newest first (on-market time descending, zpid ascending).
    pub fn newest_first(&self) -> std::iter::Rev<std::slice::Iter<'_, u32>> {
        self.by_listed.iter().rev()
    }

    /// Recent sales, latest first.
    pub fn sold_latest_first(&self) -> std::iter::Rev<std::slice::Iter<'_, u32>> {
        self.sold.iter().rev()
    }

    /// Recent withdrawals, latest first.
    pub fn withdrawn_latest_first(&self) -> std::iter::Rev<std::slice::Iter<'_, u32>> {
        self.withdrawn.iter().rev()
    }
}

fn listed_key(l: &SimListing) -> (DateTime<Utc>, Reverse<u64>) {
    (l.on_market_at, Reverse(l.zpid))
}

fn price_key(l: &SimListing) -> (u64, u64) {
    (l.list_price, l.zpid)
}

fn closed_key(l: &SimListing) -> (Option<DateTime<Utc>>, Reverse<u64>) {
    (l.closed_at, Reverse(l.zpid))
}

fn modified_key(l: &SimListing) -> (DateTime<Utc>, u64) {
    (l.modified_at, l.zpid)
}

fn insert_by<K: Ord>(
    order: &mut Vec<u32>,
    listings: &[SimListing],
    position: u32,
    key: fn(&SimListing) -> K,
) {
    let wanted = key(&listings[position as usize]);
    let at = order.partition_point(|&i| key(&listings[i as usize]) < wanted);
    order.insert(at, position);
}

/// Removes a listing from an order; call it before the listing's key changes.
fn remove_by<K: Ord>(
    order: &mut Vec<u32>,
    listings: &[SimListing],
    position: u32,
    key: fn(&SimListing) -> K,
) {
    let wanted = key(&listings[position as usize]);
    let at = order.partition_point(|&i| key(&listings[i as usize]) < wanted);
    if order.get(at) == Some(&position) {
        order.remove(at);
    } else if let Some(found) = order.iter().position(|&i| i == position) {
        order.remove(found);
    }
}

fn sorted_by<K: Ord>(
    mut order: Vec<u32>,
    listings: &[SimListing],
    key: fn(&SimListing) -> K,
) -> Vec<u32> {
    order.sort_unstable_by_key(|&i| key(&listings[i as usize]));
    order
}

/// One simulated city.
#[derive(Debug, Clone)]
pub(crate) struct Area {
    pub profile: &'static MarketProfile,
    pub builtin_index: u64,
    pub key: String,
    key_hash: u64,
    zips: Vec<ZipArea>,
    price_scale: f64,
    /// Every listing ever, in creation order; positions never change.
    pub listings: Vec<SimListing>,
    /// Positions of active listings, ascending.
    active: Vec<u32>,
    /// Positions of pending listings, ascending.
    pending: Vec<u32>,
    next_serial: u64,
    used_lines: HashSet<String>,
    rates: Rates,
    pub view: AreaView,
}

impl Area {
    fn live_count(&self) -> usize {
        self.active.len() + self.pending.len()
    }
}

/// What an advance did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AdvanceReport {
    #[serde(with = "crate::time_format::serde_millis")]
    pub from: DateTime<Utc>,
    #[serde(with = "crate::time_format::serde_millis")]
    pub to: DateTime<Utc>,
    /// Events that happened in `(from, to]`.
    pub events: usize,
}

/// Counts of one market at the current simulated time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketSummary {
    pub key: String,
    pub city: String,
    pub state: String,
    pub active: usize,
    pub pending: usize,
    /// Sold since the listings' history began (including before the start).
    pub sold: usize,
    pub withdrawn: usize,
    /// Median list price of the active listings.
    pub median_active_price: Option<u64>,
}

/// An event drawn at the start of its hour, applied when simulated time reaches it.
#[derive(Debug, Clone)]
struct Planned {
    at: DateTime<Utc>,
    area: usize,
    /// Draw order within the hour, the last tie-breaker.
    order: u32,
    listing: u32,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    New(Box<SimListing>),
    PriceChange { new: u64 },
    ToPending,
    BackToActive,
    Sold { close_price: u64 },
    Withdrawn,
}

/// The whole simulated market. Deterministic: the same seed, configuration and sequence
/// of advances give the same listings and events, byte for byte.
#[derive(Debug, Clone)]
pub struct Market {
    seed: u64,
    config: MarketConfig,
    now: DateTime<Utc>,
    areas: Vec<Area>,
    /// Drawn events not applied yet (all later than `now`), in application order.
    planned: VecDeque<Planned>,
    /// The next hour whose events have not been drawn.
    next_tick: i64,
    events: Vec<GroundTruthEvent>,
    /// Market key -> position.
    keys: BTreeMap<String, usize>,
    /// ZIP code -> market position.
    zips: BTreeMap<&'static str, usize>,
}

impl Market {
    /// A market at `config.start`, its initial listings drawn from `seed`.
    pub fn new(seed: u64, config: MarketConfig) -> Result<Self, SimError> {
        config.validate()?;
        let builtins = builtin_markets();
        let known = || {
            builtins
                .iter()
                .map(MarketProfile::key)
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Market order is key order, whatever order the configuration names them in.
        let mut selected: BTreeMap<String, usize> = BTreeMap::new();
        if config.markets.is_empty() {
            for (index, profile) in builtins.iter().enumerate() {
                selected.insert(profile.key(), index);
            }
        } else {
            for wanted in &config.markets {
                let key = slug(wanted);
                let index = builtins
                    .iter()
                    .position(|p| p.key() == key)
                    .ok_or_else(|| SimError::UnknownMarket {
                        key: wanted.clone(),
                        known: known(),
                    })?;
                selected.insert(key, index);
            }
        }

        let start = config.start;
        let mut areas = Vec::with_capacity(selected.len());
        for (key, builtin_index) in selected {
            let profile = &builtins[builtin_index];
            let zips = zip_areas(profile);
            let price_scale = price_scale(profile, &zips);
            let mut area = Area {
                profile,
                builtin_index: builtin_index as u64,
                key_hash: hash_bytes(key.as_bytes()),
                zips,
                price_scale,
                key,
                listings: Vec::new(),
                active: Vec::new(),
                pending: Vec::new(),
                next_serial: 0,
                used_lines: HashSet::new(),
                rates: Rates::for_profile(profile),
                view: AreaView::default(),
            };
            populate(&mut area, seed, start, config.listings_per_market);
            areas.push(area);
        }

        let mut keys = BTreeMap::new();
        let mut zips = BTreeMap::new();
        for (position, area) in areas.iter().enumerate() {
            keys.insert(area.key.clone(), position);
            for zip in area.profile.zips {
                zips.insert(*zip, position);
            }
        }
        let mut market = Self {
            seed,
            config,
            now: start,
            areas,
            planned: VecDeque::new(),
            next_tick: 0,
            events: Vec::new(),
            keys,
            zips,
        };
        for area in &mut market.areas {
            build_views(area, start);
        }
        Ok(market)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn config(&self) -> &MarketConfig {
        &self.config
    }

    /// Simulated time the market started at.
    pub fn start(&self) -> DateTime<Utc> {
        self.config.start
    }

    /// Current simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Keys of the simulated markets, in order.
    pub fn market_keys(&self) -> Vec<&str> {
        self.areas.iter().map(|a| a.key.as_str()).collect()
    }

    /// Profile of a simulated market.
    pub fn profile(&self, key: &str) -> Option<&'static MarketProfile> {
        self.keys.get(key).map(|&i| self.areas[i].profile)
    }

    /// Every listing of a market ever (sold and withdrawn included), in creation order.
    pub fn listings(&self, key: &str) -> Option<&[SimListing]> {
        self.keys
            .get(key)
            .map(|&i| self.areas[i].listings.as_slice())
    }

    /// Every listing of every market.
    pub fn all_listings(&self) -> impl Iterator<Item = &SimListing> {
        self.areas.iter().flat_map(|a| a.listings.iter())
    }

    /// Every event so far, in the order they happened.
    pub fn events(&self) -> &[GroundTruthEvent] {
        &self.events
    }

    /// Events with `from < at <= to`: what changed between an observation at `from` and
    /// one at `to`.
    pub fn ground_truth(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> &[GroundTruthEvent] {
        let low = self.events.partition_point(|e| e.at <= from);
        let high = self.events.partition_point(|e| e.at <= to);
        self.events.get(low..high).unwrap_or(&[])
    }

    /// Counts per market.
    pub fn summary(&self) -> Vec<MarketSummary> {
        self.areas
            .iter()
            .map(|area| {
                let count = |status| area.listings.iter().filter(|l| l.status == status).count();
                let mut prices: Vec<u64> = area
                    .active
                    .iter()
                    .map(|&i| area.listings[i as usize].list_price)
                    .collect();
                prices.sort_unstable();
                MarketSummary {
                    key: area.key.clone(),
                    city: area.profile.city.to_owned(),
                    state: area.profile.state.to_owned(),
                    active: area.active.len(),
                    pending: area.pending.len(),
                    sold: count(ListingStatus::Sold),
                    withdrawn: count(ListingStatus::Withdrawn),
                    median_active_price: prices.get(prices.len() / 2).copied(),
                }
            })
            .collect()
    }

    /// Advances simulated time by `by`.
    pub fn advance(&mut self, by: TimeDelta) -> Result<AdvanceReport, SimError> {
        let target = self
            .now
            .checked_add_signed(by)
            .ok_or(SimError::AdvanceTooLong {
                requested: by,
                max: TimeDelta::days(MAX_ADVANCE_DAYS),
            })?;
        self.advance_to(target)
    }

    /// Advances simulated time to `target`, applying every event up to and including it.
    pub fn advance_to(&mut self, target: DateTime<Utc>) -> Result<AdvanceReport, SimError> {
        let from = self.now;
        if target < from {
            return Err(SimError::TimeBackwards { now: from, target });
        }
        let max = TimeDelta::days(MAX_ADVANCE_DAYS);
        if target - from > max {
            return Err(SimError::AdvanceTooLong {
                requested: target - from,
                max,
            });
        }
        let before = self.events.len();
        loop {
            while self.planned.front().is_some_and(|p| p.at <= target) {
                if let Some(planned) = self.planned.pop_front() {
                    self.apply(planned);
                }
            }
            if !self.planned.is_empty() {
                break;
            }
            // Every drawn event is applied: the next hour starts from the state at its start.
            let tick_start = self.tick_start(self.next_tick);
            if tick_start >= target {
                break;
            }
            self.draw_tick(self.next_tick);
            self.next_tick += 1;
        }
        self.now = target;
        let recent = target - TimeDelta::days(RECENT_DAYS);
        for area in &mut self.areas {
            expire_recent(area, recent);
        }
        Ok(AdvanceReport {
            from,
            to: target,
            events: self.events.len() - before,
        })
    }

    fn tick_start(&self, tick: i64) -> DateTime<Utc> {
        self.config.start + TimeDelta::milliseconds(tick * TICK_MILLIS)
    }

    pub(crate) fn areas(&self) -> &[Area] {
        &self.areas
    }

    pub(crate) fn listing(&self, at: ListingRef) -> &SimListing {
        &self.areas[at.0 as usize].listings[at.1 as usize]
    }

    /// The market named by a search location: a market key or `City, ST` in any case and
    /// spacing (`Nashville, TN`, `nashville-tn`), or a ZIP code (then also the ZIP).
    pub(crate) fn resolve_location(&self, text: &str) -> Option<(usize, Option<&'static str>)> {
        let text = text.trim();
        let digits = text.get(..5).unwrap_or(text);
        if digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return self
                .zips
                .get_key_value(digits)
                .map(|(zip, &area)| (area, Some(*zip)));
        }
        self.keys.get(&slug(text)).map(|&area| (area, None))
    }

    /// The market of a city and state (case-insensitive).
    pub(crate) fn area_of_city(&self, city: &str, state: &str) -> Option<usize> {
        self.keys
            .get(&crate::profiles::market_key(city, state))
            .copied()
    }

    /// The market of a ZIP code.
    pub(crate) fn area_of_zip(&self, zip: &str) -> Option<(usize, &'static str)> {
        self.zips
            .get_key_value(zip.trim())
            .map(|(zip, &area)| (area, *zip))
    }

    /// Draws the events of hour `tick` of every market and queues them in time order.
    fn draw_tick(&mut self, tick: i64) {
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
        }
        drawn.sort_by_key(|p| (p.at, p.area, p.order));
        self.planned.extend(drawn);
    }

    fn apply(&mut self, planned: Planned) {
        let Planned {
            at,
            area: area_position,
            listing: position,
            action,
            ..
        } = planned;
        let area = &mut self.areas[area_position];
        let kind = match action {
            Action::New(listing) => {
                let position = area.listings.len() as u32;
                let price = listing.list_price;
                area.listings.push(*listing);
                // Positions only grow, so pushing keeps `active` sorted.
                area.active.push(position);
                let view = &mut area.view;
                insert_by(&mut view.by_listed, &area.listings, position, listed_key);
                insert_by(&mut view.by_price, &area.listings, position, price_key);
                insert_by(
                    &mut view.by_modification,
                    &area.listings,
                    position,
                    modified_key,
                );
                let ids = area.listings[position as usize].ids.clone();
                self.record(
                    at,
                    area_position,
                    ids,
                    EventKind::New {
                        price,
                        status: ListingStatus::Active,
                    },
                );
                return;
            }
            Action::PriceChange { new } => {
                let listing = &area.listings[position as usize];
                let old = listing.list_price;
                if !listing.status.is_live() || new == old {
                    return;
                }
                remove_by(&mut area.view.by_price, &area.listings, position, price_key);
                let listing = &mut area.listings[position as usize];
                listing.last_price_change = Some(PriceChange { old, new, at });
                listing.list_price = new;
                listing.overpricing *= new as f64 / old as f64;
                insert_by(&mut area.view.by_price, &area.listings, position, price_key);
                EventKind::PriceChange { old, new }
            }
            Action::ToPending => {
                if !move_between(&mut area.active, &mut area.pending, position) {
                    return;
                }
                let listing = &mut area.listings[position as usize];
                listing.status = ListingStatus::Pending;
                listing.pending_at = Some(at);
                listing.status_changed_at = at;
                EventKind::StatusChange {
                    old: ListingStatus::Active,
                    new: ListingStatus::Pending,
                }
            }
            Action::BackToActive => {
                if !move_between(&mut area.pending, &mut area.active, position) {
                    return;
                }
                let listing = &mut area.listings[position as usize];
                listing.status = ListingStatus::Active;
                listing.pending_at = None;
                listing.status_changed_at = at;
                EventKind::StatusChange {
                    old: ListingStatus::Pending,
                    new: ListingStatus::Active,
                }
            }
            Action::Sold { close_price } => {
                if !remove_sorted(&mut area.pending, position) {
                    return;
                }
                take_off_market(area, position);
                let listing = &mut area.listings[position as usize];
                listing.status = ListingStatus::Sold;
                listing.closed_at = Some(at);
                listing.close_price = Some(close_price);
                listing.status_changed_at = at;
                insert_by(&mut area.view.sold, &area.listings, position, closed_key);
                EventKind::Delisted {
                    old: ListingStatus::Pending,
                    new: ListingStatus::Sold,
                }
            }
            Action::Withdrawn => {
                if !remove_sorted(&mut area.active, position) {
                    return;
                }
                take_off_market(area, position);
                let listing = &mut area.listings[position as usize];
                listing.status = ListingStatus::Withdrawn;
                listing.closed_at = Some(at);
                listing.status_changed_at = at;
                insert_by(
                    &mut area.view.withdrawn,
                    &area.listings,
                    position,
                    closed_key,
                );
                EventKind::Delisted {
                    old: ListingStatus::Active,
                    new: ListingStatus::Withdrawn,
                }
            }
        };
        // Every change is a modification: the listing moves to the end of that order.
        remove_by(
            &mut area.view.by_modification,
            &area.listings,
            position,
            modified_key,
        );
        area.listings[position as usize].modified_at = at;
        insert_by(
            &mut area.view.by_modification,
            &area.listings,
            position,
            modified_key,
        );
        let ids = area.listings[position as usize].ids.clone();
        self.record(at, area_position, ids, kind);
    }

    fn record(
        &mut self,
        at: DateTime<Utc>,
        area: usize,
        ids: crate::listing::SourceIds,
        kind: EventKind,
    ) {
        let seq = self.events.len() as u64 + 1;
        self.events.push(GroundTruthEvent {
            seq,
            at,
            market: self.areas[area].key.clone(),
            ids,
            kind,
        });
    }
}

/// Sorts every order of a market from scratch (once, at the start).
fn build_views(area: &mut Area, now: DateTime<Utc>) {
    let listings = &area.listings;
    let live: Vec<u32> = area.active.iter().chain(&area.pending).copied().collect();
    let recent = now - TimeDelta::days(RECENT_DAYS);
    let closed_with = |status: ListingStatus| {
        (0..listings.len() as u32)
            .filter(|&i| {
                let l = &listings[i as usize];
                l.status == status && l.closed_at.is_some_and(|t| t > recent)
            })
            .collect::<Vec<u32>>()
    };
    area.view = AreaView {
        by_listed: sorted_by(live.clone(), listings, listed_key),
        by_price: sorted_by(live, listings, price_key),
        sold: sorted_by(closed_with(ListingStatus::Sold), listings, closed_key),
        withdrawn: sorted_by(closed_with(ListingStatus::Withdrawn), listings, closed_key),
        by_modification: sorted_by((0..listings.len() as u32).collect(), listings, modified_key),
    };
}

/// Drops sales and withdrawals older than `recent` from the recent orders.
fn expire_recent(area: &mut Area, recent: DateTime<Utc>) {
    let listings = &area.listings;
    for order in [&mut area.view.sold, &mut area.view.withdrawn] {
        let old =
            order.partition_point(|&i| listings[i as usize].closed_at.is_none_or(|t| t <= recent));
        order.drain(..old);
    }
}

/// Removes a listing leaving the market from the for-sale orders.
fn take_off_market(area: &mut Area, position: u32) {
    remove_by(
        &mut area.view.by_listed,
        &area.listings,
        position,
        listed_key,
    );
    remove_by(&mut area.view.by_price, &area.listings, position, price_key);
}

fn remove_sorted(positions: &mut Vec<u32>, position: u32) -> bool {
    match positions.binary_search(&position) {
        Ok(found) => {
            positions.remove(found);
            true
        }
        Err(_) => false,
    }
}

fn insert_sorted(positions: &mut Vec<u32>, position: u32) {
    if let Err(at) = positions.binary_search(&position) {
        positions.insert(at, position);
    }
}

fn move_between(from: &mut Vec<u32>, to: &mut Vec<u32>, position: u32) -> bool {
    if remove_sorted(from, position) {
        insert_sorted(to, position);
        true
    } else {
        false
    }
}

/// An exponential draw with the given mean, conditioned on being below `cap` (drawn by
/// inversion, so no mass piles up at the cap).
fn exponential_below(rng: &mut ChaCha8Rng, mean: f64, cap: f64) -> f64 {
    let reach = 1.0 - (-cap / mean).exp();
    -mean * (1.0 - rng.random::<f64>() * reach).ln()
}

fn days(days: f64) -> TimeDelta {
    TimeDelta::milliseconds((days * 86_400_000.0).round() as i64)
}

fn close_price(rng: &mut ChaCha8Rng, listing: &SimListing) -> u64 {
    let base = if listing.placeholder_price {
        listing.fair_value
    } else {
        listing.list_price
    };
    let ratio = (0.985 + 0.025 * normal(rng)).clamp(0.85, 1.15);
    ((base as f64 * ratio / 500.0).round() as u64).max(1) * 500
}

/// The market as it stands at `start`: `count` live listings with histories that began
/// before it, plus the sales and withdrawals of the month before.
fn populate(area: &mut Area, seed: u64, start: DateTime<Utc>, count: u32) {
    let mut rng = stream(&[seed, area.key_hash, INIT_SALT]);
    let rates = area.rates;
    let active_mean_days = 1.0 / (rates.pending + rates.withdraw);
    let pending_mean_days = 1.0 / (rates.close + rates.fall_through);
    let history_days = 30.0;
    let sold_count = (f64::from(count) * rates.pending_share * rates.close * history_days).round();
    let withdrawn_count =
        (f64::from(count) * (1.0 - rates.pending_share) * rates.withdraw * history_days).round();

    #[derive(Clone, Copy)]
    enum Start {
        Live,
        Sold,
        Withdrawn,
    }
    let plan = std::iter::repeat_n(Start::Live, count as usize)
        .chain(std::iter::repeat_n(Start::Sold, sold_count as usize))
        .chain(std::iter::repeat_n(
            Start::Withdrawn,
            withdrawn_count as usize,
        ));

    for kind in plan {
        let (on_market_at, pending_at, closed_at, status) = match kind {
            Start::Live if rng.random::<f64>() < rates.pending_share => {
                let pending_at =
                    start - days(exponential_below(&mut rng, pending_mean_days, 120.0));
                let on_market_at =
                    pending_at - days(1.0 + exponential_below(&mut rng, active_mean_days, 365.0));
                (on_market_at, Some(pending_at), None, ListingStatus::Pending)
            }
            Start::Live => {
                // One in twenty is stale: months on the market.
                let age = if rng.random::<f64>() < 0.05 {
                    rng.random_range(90.0..400.0)
                } else {
                    exponential_below(&mut rng, active_mean_days, 720.0)
                };
                (start - days(age), None, None, ListingStatus::Active)
            }
            Start::Sold => {
                let closed_at = start - days(rng.random_range(0.0..history_days));
                let pending_at = closed_at - days(exponential_below(&mut rng, 32.0, 90.0));
                let on_market_at =
                    pending_at - days(1.0 + exponential_below(&mut rng, active_mean_days, 365.0));
                (
                    on_market_at,
                    Some(pending_at),
                    Some(closed_at),
                    ListingStatus::Sold,
                )
            }
            Start::Withdrawn => {
                let closed_at = start - days(rng.random_range(0.0..history_days));
                let on_market_at =
                    closed_at - days(14.0 + exponential_below(&mut rng, active_mean_days, 500.0));
                (
                    on_market_at,
                    None,
                    Some(closed_at),
                    ListingStatus::Withdrawn,
                )
            }
        };
        let serial = area.next_serial;
        area.next_serial += 1;
        let ctx = MarketContext {
            seed,
            profile: area.profile,
            builtin_index: area.builtin_index,
            key: &area.key,
            zips: &area.zips,
            price_scale: area.price_scale,
        };
        let mut listing =
            create_listing(&ctx, &mut rng, serial, on_market_at, &mut area.used_lines);

        // A price cut before the start, more likely the longer the listing was active.
        let active_until = pending_at.or(closed_at).unwrap_or(start);
        let active_days = (active_until - on_market_at).num_milliseconds() as f64 / 86_400_000.0;
        let cut_chance = 1.0 - (-rates.cut * 0.9 * (active_days - 7.0).max(0.0)).exp();
        if !listing.placeholder_price && rng.random::<f64>() < cut_chance {
            let at = on_market_at + days(7.0 + rng.random::<f64>() * (active_days - 7.0));
            let fraction = cut_fraction(&mut rng);
            let new = listing.list_price;
            let old = nice_price(new as f64 / (1.0 - fraction), charm(&mut rng)).max(new + 1_000);
            listing.original_list_price = old;
            listing.last_price_change = Some(PriceChange { old, new, at });
        }

        listing.status = status;
        listing.pending_at = pending_at;
        listing.closed_at = closed_at;
        if status == ListingStatus::Sold {
            listing.close_price = Some(close_price(&mut rng, &listing));
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

        let position = area.listings.len() as u32;
        area.listings.push(listing);
        match status {
            ListingStatus::Active => area.active.push(position),
            ListingStatus::Pending => area.pending.push(position),
            ListingStatus::Sold | ListingStatus::Withdrawn => {}
        }
    }
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
    let mut order = 0u32;
    let at = |rng: &mut ChaCha8Rng| {
        tick_start + TimeDelta::milliseconds(rng.random_range(1..=TICK_MILLIS))
    };
    let mut plan = |out: &mut Vec<Planned>, at: DateTime<Utc>, listing: u32, action: Action| {
        out.push(Planned {
            at,
            area: area_position,
            order,
            listing,
            action,
        });
        order += 1;
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
        plan(out, when, i, Action::ToPending);
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
        plan(out, when, i, Action::Withdrawn);
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
        plan(out, when, i, Action::PriceChange { new });
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
        plan(out, when, i, Action::PriceChange { new });
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
        plan(out, when, i, Action::Sold { close_price });
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
        plan(out, when, i, Action::BackToActive);
    }

    // New listings, pulled back towards the configured size when the market drifts.
    let live = area.live_count().max(1) as f64;
    let target = f64::from(target_live);
    let reversion = (target / live).powi(2).clamp(0.25, 4.0);
    let new_count = poisson(&mut rng, target * rates.new_per_live * hourly * reversion);
    for _ in 0..new_count {
        let when = at(&mut rng);
        let serial = area.next_serial;
        area.next_serial += 1;
        let ctx = MarketContext {
            seed,
            profile: area.profile,
            builtin_index: area.builtin_index,
            key: &area.key,
            zips: &area.zips,
            price_scale: area.price_scale,
        };
        let listing = create_listing(&ctx, &mut rng, serial, when, &mut area.used_lines);
        plan(out, when, u32::MAX, Action::New(Box::new(listing)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_config(markets: &[&str], listings: u32) -> MarketConfig {
        MarketConfig {
            markets: markets.iter().map(|m| (*m).to_owned()).collect(),
            listings_per_market: listings,
            ..MarketConfig::default()
        }
    }

    fn fingerprint(market: &Market) -> String {
        let listings: Vec<String> = market.all_listings().map(|l| format!("{l:?}")).collect();
        let events = serde_json::to_string(market.events()).expect("events serialise");
        format!("{}|{}|{events}", market.now(), listings.join("\n"))
    }

    #[test]
    fn same_seed_same_market_and_history() {
        let config = small_config(&["nashville-tn", "syracuse-ny"], 800);
        let mut a = Market::new(42, config.clone()).expect("market");
        let mut b = Market::new(42, config.clone()).expect("market");
        assert_eq!(fingerprint(&a), fingerprint(&b));
        a.advance(TimeDelta::hours(30)).expect("advance");
        b.advance(TimeDelta::hours(30)).expect("advance");
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert!(!a.events().is_empty());

        let mut other = Market::new(43, config).expect("market");
        other.advance(TimeDelta::hours(30)).expect("advance");
        assert_ne!(fingerprint(&a), fingerprint(&other));
    }

    #[test]
    fn where_advances_stop_does_not_change_the_market() {
        let config = small_config(&["austin-tx", "miami-fl"], 600);
        let mut one_step = Market::new(7, config.clone()).expect("market");
        one_step.advance(TimeDelta::hours(50)).expect("advance");

        let mut many_steps = Market::new(7, config).expect("market");
        let start = many_steps.now();
        for minutes in [1, 59, 60, 7, 293, 1_000, 17] {
            many_steps
                .advance(TimeDelta::minutes(minutes))
                .expect("advance");
        }
        many_steps
            .advance_to(start + TimeDelta::hours(50))
            .expect("advance");
        assert_eq!(fingerprint(&one_step), fingerprint(&many_steps));
    }

    #[test]
    fn markets_evolve_independently_of_which_others_are_simulated() {
        let mut alone = Market::new(3, small_config(&["cleveland-oh"], 500)).expect("market");
        let mut together =
            Market::new(3, small_config(&["cleveland-oh", "denver-co"], 500)).expect("market");
        alone.advance(TimeDelta::hours(24)).expect("advance");
        together.advance(TimeDelta::hours(24)).expect("advance");
        let cleveland = |m: &Market| {
            m.events()
                .iter()
                .filter(|e| e.market == "cleveland-oh")
                .map(|e| (e.at, e.ids.clone(), e.kind))
                .collect::<Vec<_>>()
        };
        assert_eq!(cleveland(&alone), cleveland(&together));
        assert_eq!(
            alone.listings("cleveland-oh"),
            together.listings("cleveland-oh")
        );
    }

    #[test]
    fn time_only_moves_forward_within_bounds() {
        let mut market = Market::new(1, small_config(&["boston-ma"], 100)).expect("market");
        let start = market.now();
        assert!(matches!(
            market.advance_to(start - TimeDelta::seconds(1)),
            Err(SimError::TimeBackwards { .. })
        ));
        assert!(matches!(
            market.advance(TimeDelta::days(MAX_ADVANCE_DAYS + 1)),
            Err(SimError::AdvanceTooLong { .. })
        ));
        let report = market.advance(TimeDelta::zero()).expect("no-op advance");
        assert_eq!((report.from, report.to, report.events), (start, start, 0));
        assert!(Market::new(1, small_config(&["atlantis-xx"], 10)).is_err());
    }

    /// Replays the ground truth over the listings' state before an advance and checks it
    /// lands exactly on their state after it, and that every event is consistent with the
    /// state it applies to.
    #[test]
    fn ground_truth_replays_to_the_new_state() {
        let mut market =
            Market::new(11, small_config(&["seattle-wa", "tampa-fl"], 1_000)).expect("market");
        market.advance(TimeDelta::hours(5)).expect("advance");
        let state = |m: &Market| {
            m.all_listings()
                .map(|l| (l.ids.zpid.clone(), (l.list_price, l.status)))
                .collect::<BTreeMap<_, _>>()
        };
        let mut replayed = state(&market);
        let t1 = market.now();
        market.advance(TimeDelta::hours(72)).expect("advance");
        let t2 = market.now();
        let events = market.ground_truth(t1, t2);
        assert!(!events.is_empty());
        assert!(
            events
                .windows(2)
                .all(|w| w[0].at <= w[1].at && w[0].seq < w[1].seq)
        );
        assert!(events.iter().all(|e| e.at > t1 && e.at <= t2));
        for event in events {
            let zpid = event.ids.zpid.clone();
            match event.kind {
                EventKind::New { price, status } => {
                    assert!(replayed.insert(zpid, (price, status)).is_none());
                }
                EventKind::PriceChange { old, new } => {
                    let entry = replayed.get_mut(&zpid).expect("known listing");
                    assert_eq!(entry.0, old);
                    assert!(entry.1.is_live());
                    entry.0 = new;
                }
                EventKind::StatusChange { old, new } | EventKind::Delisted { old, new } => {
                    let entry = replayed.get_mut(&zpid).expect("known listing");
                    assert_eq!(entry.1, old);
                    entry.1 = new;
                }
            }
        }
        assert_eq!(replayed, state(&market));
        // Every kind of event happens in three days of two markets.
        let kinds: HashSet<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert!(market.ground_truth(t2, t1).is_empty());
        assert_eq!(
            market.ground_truth(market.start(), t2).len(),
            market.events().len()
        );
    }

    #[test]
    fn market_behaves_like_a_real_one_over_a_month() {
        let mut market = Market::new(5, small_config(&["nashville-tn"], 3_000)).expect("market");
        let initial = market.summary()[0].clone();
        let t0 = market.now();
        market.advance(TimeDelta::days(30)).expect("advance");
        let after = market.summary()[0].clone();

        // Inventory stays near its configured size and the pending ratio is plausible.
        let live = (after.active + after.pending) as f64;
        assert!((live / 3_000.0 - 1.0).abs() < 0.2, "{after:?}");
        let pending_ratio = after.pending as f64 / after.active as f64;
        assert!((0.2..1.0).contains(&pending_ratio), "{pending_ratio}");
        let median = after.median_active_price.expect("active listings") as f64;
        assert!((median / 560_000.0 - 1.0).abs() < 0.1, "median {median}");
        assert!(initial.sold > 0 && initial.withdrawn > 0, "{initial:?}");

        let events = market.ground_truth(t0, market.now());
        let count = |name: &str| events.iter().filter(|e| e.kind.name() == name).count();
        let new = count("new") as f64;
        // Realtor.com-style weekly new listings: roughly 5-20% of inventory per week.
        let weekly_new_share = new / 30.0 * 7.0 / 3_000.0;
        assert!(
            (0.03..0.2).contains(&weekly_new_share),
            "{weekly_new_share}"
        );

        let cuts: Vec<f64> = events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::PriceChange { old, new } if new < old => {
                    Some((old - new) as f64 / old as f64)
                }
                _ => None,
            })
            .collect();
        let rises = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::PriceChange { old, new } if new > old))
            .count();
        // About 15-25% of active listings take a cut in a month.
        let cut_share = cuts.len() as f64 / initial.active as f64;
        assert!((0.08..0.4).contains(&cut_share), "cut share {cut_share}");
        assert!(
            rises > 0 && rises < cuts.len() / 4,
            "{rises} rises, {} cuts",
            cuts.len()
        );
        let typical = cuts.iter().filter(|c| (0.015..=0.11).contains(*c)).count() as f64;
        let deep = cuts.iter().filter(|c| **c > 0.15).count();
        assert!(
            typical / cuts.len() as f64 > 0.6,
            "{typical} of {}",
            cuts.len()
        );
        assert!(deep >= 5, "{deep} cuts deeper than 15%");
    }

    /// The orders kept up to date event by event equal the orders sorted from scratch.
    #[test]
    fn incrementally_kept_orders_match_a_fresh_sort() {
        let mut market =
            Market::new(21, small_config(&["phoenix-az", "chicago-il"], 700)).expect("market");
        for hours in [3, 20, 200, 1_500, 1] {
            market.advance(TimeDelta::hours(hours)).expect("advance");
            let now = market.now();
            for area in &market.areas {
                let mut fresh = area.clone();
                build_views(&mut fresh, now);
                assert_eq!(area.view.by_listed, fresh.view.by_listed);
                assert_eq!(area.view.by_price, fresh.view.by_price);
                assert_eq!(area.view.sold, fresh.view.sold);
                assert_eq!(area.view.withdrawn, fresh.view.withdrawn);
                assert_eq!(area.view.by_modification, fresh.view.by_modification);
            }
        }
    }

    #[test]
    fn activity_scales_event_rates() {
        let mut calm = Market::new(9, small_config(&["denver-co"], 1_000)).expect("market");
        let mut busy = Market::new(
            9,
            MarketConfig {
                activity: 5.0,
                ..small_config(&["denver-co"], 1_000)
            },
        )
        .expect("market");
        calm.advance(TimeDelta::days(2)).expect("advance");
        busy.advance(TimeDelta::days(2)).expect("advance");
        let ratio = busy.events().len() as f64 / calm.events().len() as f64;
        assert!((3.0..7.0).contains(&ratio), "{ratio}");
    }

    #[test]
    fn locations_resolve_by_city_key_and_zip() {
        let market =
            Market::new(1, small_config(&["nashville-tn", "st-louis-mo"], 10)).expect("market");
        let nashville = market.keys["nashville-tn"];
        assert_eq!(
            market.resolve_location("Nashville, TN"),
            Some((nashville, None))
        );
        assert_eq!(
            market.resolve_location(" nashville-tn "),
            Some((nashville, None))
        );
        assert_eq!(
            market.resolve_location("37201"),
            Some((nashville, Some("37201")))
        );
        assert!(market.resolve_location("St. Louis, MO").is_some());
        assert_eq!(market.resolve_location("Austin, TX"), None);
        assert_eq!(market.resolve_location("99999"), None);
    }
}
