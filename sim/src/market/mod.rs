//! The simulated market: the listings of every configured city, simulated time, and the
//! events that happen as it advances.
//!
//! Time advances in whole simulated hours ("ticks") counted from the start. At the start
//! of each tick every market draws its events for that hour from its own generator,
//! seeded by (seed, market, tick), and from its state at that instant; the events are then
//! applied in time order. Stopping inside an hour keeps that hour's remaining events for
//! the next advance, so where an advance stops never changes what happens: the market at
//! a given simulated time is the same whatever steps led there.

mod events;
mod populate;
mod rates;
mod rentals;
mod ticks;
mod views;

use std::collections::{BTreeMap, HashSet, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::MarketConfig;
use crate::error::SimError;
use crate::generate::{
    MarketContext, ZipArea, create_listing, listing_of_type, price_scale, zip_areas,
};
use crate::listing::{ListingStatus, PropertyType, SimListing};
use crate::profiles::{MarketProfile, builtin_markets};
use crate::random::hash_bytes;
use crate::slug::slug;
use crate::truth::GroundTruthEvent;

use events::Planned;
use populate::populate;
use rates::Rates;
use rentals::{populate_rentals, rental_target};
pub(crate) use views::AreaView;
use views::{build_views, expire_recent};

/// Longest stretch of simulated time one call may advance.
pub const MAX_ADVANCE_DAYS: i64 = 400;
/// Sold and withdrawn listings stay visible to "recently sold" / "off market" searches
/// for this long.
pub const RECENT_DAYS: i64 = 90;

const TICK_MILLIS: i64 = 3_600_000;

/// A listing's place: (market position, listing position within it). A rental's position
/// carries [`RENTAL_BIT`] and indexes the market's rentals.
pub(crate) type ListingRef = (u32, u32);

/// Marks a [`ListingRef`] position as a rental's.
pub(crate) const RENTAL_BIT: u32 = 1 << 31;

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
    /// Every rental ever, in creation order (see `rentals.rs`).
    pub rentals: Vec<SimListing>,
    /// Positions of listed rentals, ascending.
    pub active_rentals: Vec<u32>,
    next_rental_serial: u64,
    rental_lines: HashSet<String>,
}

impl Area {
    /// A market with no listing yet: its ZIP areas and price scale drawn from its profile.
    fn empty(profile: &'static MarketProfile, builtin_index: usize, key: String) -> Self {
        let zips = zip_areas(profile);
        let price_scale = price_scale(profile, &zips);
        Self {
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
            rentals: Vec::new(),
            active_rentals: Vec::new(),
            next_rental_serial: 0,
            rental_lines: HashSet::new(),
        }
    }

    fn live_count(&self) -> usize {
        self.active.len() + self.pending.len()
    }

    /// Draws the market's next new listing, on the market from `on_market_at`.
    fn create_listing(
        &mut self,
        seed: u64,
        rng: &mut ChaCha8Rng,
        on_market_at: DateTime<Utc>,
    ) -> SimListing {
        let serial = self.next_serial;
        self.next_serial += 1;
        self.draw_listing(seed, rng, serial, on_market_at, None)
    }

    /// Draws the house with ids `serial`: a sale listing of the market's type mix, or a
    /// rental of `rental_type` (rentals' addresses are kept apart, so drawing them never
    /// changes a sale listing's).
    fn draw_listing(
        &mut self,
        seed: u64,
        rng: &mut ChaCha8Rng,
        serial: u64,
        on_market_at: DateTime<Utc>,
        rental_type: Option<PropertyType>,
    ) -> SimListing {
        let ctx = MarketContext {
            seed,
            profile: self.profile,
            builtin_index: self.builtin_index,
            key: &self.key,
            zips: &self.zips,
            price_scale: self.price_scale,
        };
        match rental_type {
            None => create_listing(&ctx, rng, serial, on_market_at, &mut self.used_lines),
            Some(kind) => listing_of_type(
                &ctx,
                rng,
                kind,
                serial,
                on_market_at,
                &mut self.rental_lines,
            ),
        }
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
    /// Every rental event so far, apart from the sale listings' (own `seq` numbers).
    rental_events: Vec<GroundTruthEvent>,
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
        let start = config.start;
        let mut areas = Vec::new();
        for (key, builtin_index) in selected_markets(&config)? {
            let mut area = Area::empty(&builtins[builtin_index], builtin_index, key);
            populate(&mut area, seed, start, config.listings_per_market);
            let rentals = rental_target(config.listings_per_market);
            populate_rentals(&mut area, seed, start, rentals);
            areas.push(area);
        }
        let (keys, zips) = positions(&areas);
        let mut market = Self {
            seed,
            config,
            now: start,
            areas,
            planned: VecDeque::new(),
            next_tick: 0,
            events: Vec::new(),
            rental_events: Vec::new(),
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

    /// Every rental of a market ever (taken ones included), in creation order.
    pub fn rentals(&self, key: &str) -> Option<&[SimListing]> {
        self.keys
            .get(key)
            .map(|&i| self.areas[i].rentals.as_slice())
    }

    /// Every rental event so far, in the order they happened.
    pub fn rental_events(&self) -> &[GroundTruthEvent] {
        &self.rental_events
    }

    /// Rental events with `from < at <= to` (rentals only; see [`Market::ground_truth`]).
    pub fn rental_ground_truth(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> &[GroundTruthEvent] {
        let low = self.rental_events.partition_point(|e| e.at <= from);
        let high = self.rental_events.partition_point(|e| e.at <= to);
        self.rental_events.get(low..high).unwrap_or(&[])
    }

    /// Every listing of every market.
    pub fn all_listings(&self) -> impl Iterator<Item = &SimListing> {
        self.areas.iter().flat_map(|a| a.listings.iter())
    }

    /// Every event so far, in the order they happened.
    pub fn events(&self) -> &[GroundTruthEvent] {
        &self.events
    }

    /// Sale-listing events with `from < at <= to`: what changed between an observation at `from` and
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
        let area = &self.areas[at.0 as usize];
        if at.1 & RENTAL_BIT != 0 {
            &area.rentals[(at.1 & !RENTAL_BIT) as usize]
        } else {
            &area.listings[at.1 as usize]
        }
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
}

/// The configured markets (every built-in one when none is named): key -> position in
/// [`builtin_markets`], in key order whatever order the configuration names them in.
fn selected_markets(config: &MarketConfig) -> Result<BTreeMap<String, usize>, SimError> {
    let builtins = builtin_markets();
    let mut selected: BTreeMap<String, usize> = BTreeMap::new();
    if config.markets.is_empty() {
        for (index, profile) in builtins.iter().enumerate() {
            selected.insert(profile.key(), index);
        }
        return Ok(selected);
    }
    for wanted in &config.markets {
        let key = slug(wanted);
        let index = builtins
            .iter()
            .position(|p| p.key() == key)
            .ok_or_else(|| SimError::UnknownMarket {
                key: wanted.clone(),
                known: builtins
                    .iter()
                    .map(MarketProfile::key)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        selected.insert(key, index);
    }
    Ok(selected)
}

/// Market key -> position, and ZIP code -> market position.
fn positions(areas: &[Area]) -> (BTreeMap<String, usize>, BTreeMap<&'static str, usize>) {
    let mut keys = BTreeMap::new();
    let mut zips = BTreeMap::new();
    for (position, area) in areas.iter().enumerate() {
        keys.insert(area.key.clone(), position);
        for zip in area.profile.zips {
            zips.insert(*zip, position);
        }
    }
    (keys, zips)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::EventKind;

    pub(super) fn small_config(markets: &[&str], listings: u32) -> MarketConfig {
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
