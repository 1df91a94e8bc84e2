//! A market's listings of interest: its latest price cuts, and the listings that were
//! undervalued or anomalous when last judged. The metrics function keeps them as a small
//! per-market index in the market table (`pk` = `interest#<market>`), judged from the
//! listing's new state and its market's figures after the batch, so the API reads a
//! market's lists with one Query each (docs/metrics.md, "Listings of interest").
//!
//! Price cuts are a log (one entry per cut, kept [`PRICE_CUT_DAYS`]). Undervalued and
//! anomalous are sets: the listing's state records which it is in
//! ([`realty_model::state::ListingState::interest`]), so the event that takes it out
//! deletes its entry without a read. Market figures move without the listing's own events,
//! so readers judge each entry again against the live figures (with the ratio it was
//! indexed with) before showing it.

use std::collections::BTreeMap;
use std::hash::Hasher;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::aggregate::rents::{YieldBasis, listing_gross_yield};
use super::aggregate::{MarketFigures, Standing, minor_per_sqft};
use crate::batch::MarketStanding;
use realty_model::format::{FRACTION_DECIMALS, MONEY_DECIMALS, major, rounded};
use realty_model::listing::address_line;
use realty_model::listing::{Listing, Offer};
use realty_model::scope::{city_scope_key, property_type_name};
use realty_model::state::{AppliedEvent, InterestKind, ListingState};

/// Price-cut entries expire this long after the cut.
pub const PRICE_CUT_DAYS: i64 = 30;
/// Undervalued and anomalous entries expire this long after the listing's last event (a
/// listing whose end the pipeline never saw does not stay listed for ever).
pub const SET_ENTRY_DAYS: i64 = 90;
/// Prefix of the index's partition keys.
pub const INTEREST_KEY_PREFIX: &str = "interest#";

/// Which side of its market's anomaly bounds a listing's price per sqft lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    Low,
    High,
}

/// How the index judges listings (the alerts' `UndervaluedRatio`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InterestRules {
    /// Undervalued: price per sqft at or below this fraction of its market's median.
    pub undervalued_ratio: f64,
}

impl InterestRules {
    /// The rules from the environment: `REALTY_UNDERVALUED_RATIO` (the alerts' setting,
    /// checked as the alerts function checks it; unset: the default).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, realty_model::config::ConfigError> {
        Ok(Self {
            undervalued_ratio: realty_model::config::undervalued_ratio(&lookup)?,
        })
    }
}

impl Default for InterestRules {
    fn default() -> Self {
        Self {
            undervalued_ratio: realty_model::config::DEFAULT_UNDERVALUED_RATIO,
        }
    }
}

/// What a list shows of a listing (prices in major units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterestingListing {
    pub listing_id: String,
    pub source: String,
    pub url: Option<String>,
    pub address: String,
    pub market: String,
    pub zip: Option<String>,
    pub property_type: String,
    pub status: String,
    pub currency: String,
    pub price: f64,
    pub living_area_sqft: Option<u32>,
    pub beds: Option<u16>,
    pub baths: Option<f32>,
    pub price_per_sqft: Option<f64>,
    pub observed_at: DateTime<Utc>,
    /// A cut's price before it, and its size in percent of it (two decimals).
    pub previous_price: Option<f64>,
    pub cut_pct: Option<f64>,
    /// The median the listing was judged against (undervalued, anomalous).
    pub market_median_price_per_sqft: Option<f64>,
    pub price_per_sqft_to_median: Option<f64>,
    pub anomaly: Option<Anomaly>,
    /// Yearly rent / price: its market's median rent for its bedrooms, else its own rent
    /// estimate (`gross_yield_basis` says which; docs/metrics.md).
    #[serde(default)]
    pub gross_yield: Option<f64>,
    #[serde(default)]
    pub gross_yield_basis: Option<YieldBasis>,
}

/// One entry of the index.
#[derive(Debug, Clone, PartialEq)]
pub struct InterestEntry {
    pub market: String,
    pub sort_key: String,
    pub listing: InterestingListing,
    /// The undervalued ratio the entry was judged with (readers judge it again with it).
    pub undervalued_ratio: Option<f64>,
    /// TTL, epoch seconds.
    pub expires_at: i64,
}

/// A write to the index.
#[derive(Debug, Clone, PartialEq)]
pub enum InterestWrite {
    Put(Box<InterestEntry>),
    Delete { market: String, sort_key: String },
}

/// The index's partition key of a market (`interest#nashville-tn`).
pub fn interest_key(market: &str) -> String {
    format!("{INTEREST_KEY_PREFIX}{market}")
}

/// A short stable name of a listing for sort keys (listing ids can be long; sort keys are
/// capped at 1,024 bytes): FNV-1a 64, written as 16 hex digits.
fn listing_hash(listing_id: &str) -> u64 {
    let mut hash = fnv::FnvHasher::default();
    hash.write(listing_id.as_bytes());
    hash.finish()
}

/// The sort key of a listing's entry in a set (`undervalued#<hash>`), or of a cut
/// (`price_cut#2026-11-21T18:02:11Z#<hash>`: newest last, so a reverse Query reads the
/// latest first). The hash is 16 hex digits, written after the kind's prefix in its string.
pub fn sort_key(kind: InterestKind, listing_id: &str, at: DateTime<Utc>) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(kind.as_str().len() + "#2026-11-21T18:02:11Z#".len() + 16);
    key.push_str(kind.as_str());
    key.push('#');
    if kind == InterestKind::PriceCut {
        // RFC 3339 in whole seconds with `Z`: `%Y-%m-%dT%H:%M:%SZ` without parsing a format
        // string for every entry.
        key.push_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        key.push('#');
    }
    // Writing to a String cannot fail.
    let _ = write!(key, "{:016x}", listing_hash(listing_id));
    key
}

/// A listing's price per sqft in major units, to the cent (as its markets count it), where
/// its living area is known.
fn price_per_sqft(listing: &Listing) -> Option<f64> {
    listing
        .living_area_sqft
        .filter(|a| *a > 0)
        .map(|a| major(minor_per_sqft(listing.price_minor, a)))
}

fn summary(listing: &Listing) -> InterestingListing {
    let price_per_sqft = price_per_sqft(listing);
    InterestingListing {
        listing_id: listing.id.as_str().to_owned(),
        source: listing.source.as_str().to_owned(),
        url: listing.source_url.clone(),
        address: address_line(&listing.address),
        market: listing.market.city_state.clone(),
        zip: listing.market.zip.clone(),
        property_type: property_type_name(listing.property_type).to_owned(),
        status: listing.status.as_str().to_owned(),
        currency: listing.currency.clone(),
        price: major(listing.price_minor),
        living_area_sqft: listing.living_area_sqft,
        beds: listing.beds,
        baths: listing.baths,
        price_per_sqft,
        observed_at: listing.observed_at,
        previous_price: None,
        cut_pct: None,
        market_median_price_per_sqft: None,
        price_per_sqft_to_median: None,
        anomaly: None,
        gross_yield: None,
        gross_yield_basis: None,
    }
}

/// `entry` with the listing's gross yield against its city's rents.
fn with_yield(
    mut entry: InterestingListing,
    listing: &Listing,
    city: Option<&MarketFigures>,
) -> InterestingListing {
    let rents = city.map_or(&[][..], |f| f.rents_by_bedrooms.as_slice());
    // A multi-family home's bedrooms are several homes': a fourplex of 2-bedroom units is no
    // 4-bedroom house, and its market-rent yield would be half its own. Its rent estimate
    // only.
    let beds = listing
        .beds
        .filter(|_| listing.property_type != realty_model::listing::PropertyType::MultiFamily);
    if let Some((y, basis)) = listing_gross_yield(
        listing.price_minor,
        beds,
        listing.rent_estimate_minor,
        rents,
    ) {
        entry.gross_yield = Some(rounded(y, FRACTION_DECIMALS));
        entry.gross_yield_basis = Some(basis);
    }
    entry
}

/// The median price per sqft a listing is compared with: its city's for its property type,
/// else, when that has no median, its city's for all types (as the undervalued alert picks
/// it); `None` (not judged) when the batch did not bring its type's figures: a listing
/// whose event moved no market is in this batch's figures only through other listings, and
/// the all-types median is no stand-in for a type's (a condo at $310 a sq ft is undervalued
/// against condos' $400 and dear against all homes' $250).
fn median_for(
    listing: &Listing,
    city: Option<&MarketFigures>,
    figures: &BTreeMap<String, MarketFigures>,
) -> Option<f64> {
    let typed = figures.get(&city_scope_key(
        &listing.market.city_state,
        Some(listing.property_type),
    ))?;
    [Some(typed), city]
        .into_iter()
        .find_map(|f| f?.median_price_per_sqft_to_judge())
}

/// Whether a listing with `price_per_sqft` is undervalued against `median` at `ratio`.
pub fn is_undervalued(price_per_sqft: f64, median: f64, ratio: f64) -> bool {
    median > 0.0 && price_per_sqft <= ratio * median * (1.0 + 1e-12)
}

/// Which side of `figures`' anomaly bounds `price_per_sqft` lies, if outside them.
pub fn anomaly_of(price_per_sqft: f64, figures: &MarketFigures) -> Option<Anomaly> {
    match (
        figures.price_per_sqft_anomaly_below,
        figures.price_per_sqft_anomaly_above,
    ) {
        (Some(low), _) if price_per_sqft < low => Some(Anomaly::Low),
        (_, Some(high)) if price_per_sqft > high => Some(Anomaly::High),
        _ => None,
    }
}

/// The listing's moves through the events this batch applied, in order: (as it was before
/// each, as the event left it), from `old` (nothing before a first sight). The events are
/// those of `new.recent_events` after `old`'s last; a batch of more than
/// [`realty_model::state::MAX_RECENT_EVENTS`] of them judges its earliest together.
fn applied_moves(
    old: Option<&ListingState>,
    new: &ListingState,
) -> Vec<(AppliedEvent, AppliedEvent)> {
    let recent = &new.recent_events;
    let start = old
        .and_then(|o| o.recent_events.last())
        .and_then(|last| recent.iter().rposition(|e| e == last))
        .map_or(0, |i| i + 1);
    let mut before = old.map(AppliedEvent::from);
    let mut moves = Vec::new();
    for after in &recent[start..] {
        if let Some(before) = before.replace(after.clone()) {
            moves.push((before, after.clone()));
        }
    }
    moves
}

/// The index writes one listing's move from `old` to `new` calls for, judged against the
/// market figures after the batch (`figures`, by scope key; markets missing from it are not
/// judged, and the listing's set entries stay as they are). Updates `new.interest`.
pub fn judge(
    old: Option<&ListingState>,
    new: &mut ListingState,
    figures: &BTreeMap<String, MarketFigures>,
    rules: &InterestRules,
) -> Vec<InterestWrite> {
    let market = new.listing.market.city_state.clone();
    let mut writes = Vec::new();
    let city = figures.get(&city_scope_key(&market, None));
    price_cut_writes(old, new, &market, city, &mut writes);
    leave_old_city(old, new, &market, &mut writes);
    judge_lists(new, &market, city, figures, rules, &mut writes);
    writes
}

/// Every cut of the events this batch applied, as the market's counters count them: a sale
/// listing that stayed on the market, each against the price before it (two cuts in one
/// batch are two entries; a cut and a rise back none; a return from a withdrawal at a lower
/// price is a new listing, no cut). Each is a price-cut entry in `writes`.
fn price_cut_writes(
    old: Option<&ListingState>,
    new: &ListingState,
    market: &str,
    city: Option<&MarketFigures>,
    writes: &mut Vec<InterestWrite>,
) {
    let listing = &new.listing;
    for (before, after) in applied_moves(old, new) {
        let is_cut = !before.delisted
            && !after.delisted
            && before.offer == Offer::Sale
            && after.offer == Offer::Sale
            && before.status.moves_market_prices()
            && after.status.moves_market_prices()
            && after.price_minor < before.price_minor
            && before.price_minor > 0;
        if !is_cut {
            continue;
        }
        let (from, to) = (before.price_minor, after.price_minor);
        let mut cut = listing.clone();
        cut.price_minor = to;
        cut.status = after.status;
        cut.observed_at = after.observed_at;
        let mut entry = with_yield(summary(&cut), &cut, city);
        entry.previous_price = Some(major(from));
        // Rounded down as the alert's `drop_pct`: a 14.996 % cut read 15 % here, under a
        // 15 % alert threshold that did not fire.
        entry.cut_pct = Some(realty_model::price_move::PriceMove::between(from, to).drop_pct());
        writes.push(InterestWrite::Put(Box::new(InterestEntry {
            sort_key: sort_key(
                InterestKind::PriceCut,
                listing.id.as_str(),
                after.observed_at,
            ),
            market: market.to_owned(),
            listing: entry,
            undervalued_ratio: None,
            expires_at: (after.observed_at + Duration::days(PRICE_CUT_DAYS)).timestamp(),
        })));
    }
}

/// A listing that moved to another city than `old`'s (its address corrected) leaves the old
/// one's lists: its entries there are deleted, and it is judged afresh in the new one
/// (`market`). Before, the delete went to the new city's key, and the old entry stayed on
/// its list for 90 days.
fn leave_old_city(
    old: Option<&ListingState>,
    new: &mut ListingState,
    market: &str,
    writes: &mut Vec<InterestWrite>,
) {
    let at = new.version.observed_at;
    if let Some(old) = old.filter(|o| o.listing.market.city_state != market) {
        for kind in std::mem::take(&mut new.interest) {
            writes.push(InterestWrite::Delete {
                market: old.listing.market.city_state.clone(),
                sort_key: sort_key(kind, new.listing.id.as_str(), at),
            });
        }
    }
}

/// The listing judged for the undervalued and anomalous lists of `market`: an entry put
/// where it qualifies, deleted where it no longer does, and `new.interest` kept to match.
fn judge_lists(
    new: &mut ListingState,
    market: &str,
    city: Option<&MarketFigures>,
    figures: &BTreeMap<String, MarketFigures>,
    rules: &InterestRules,
    writes: &mut Vec<InterestWrite>,
) {
    let listing = &new.listing;
    let at = new.version.observed_at;
    let median = median_for(listing, city, figures);
    let active = new.standing() == Some(Standing::Active);
    let ppsf = price_per_sqft(listing);
    let judged = [
        (
            InterestKind::Undervalued,
            median.map(|m| {
                active && ppsf.is_some_and(|p| is_undervalued(p, m, rules.undervalued_ratio))
            }),
        ),
        (
            InterestKind::Anomalous,
            city.map(|f| active && ppsf.and_then(|p| anomaly_of(p, f)).is_some()),
        ),
    ];
    for (kind, qualifies) in judged {
        // Not judged (no figures for its market after the batch): left as it is. A listing
        // leaving the market (delisted, sold, no longer active) is judged as not qualifying.
        let qualifies = match qualifies {
            Some(q) => q,
            None if !active => false,
            None => continue,
        };
        let listed = new.interest.contains(&kind);
        if !qualifies && !listed {
            continue;
        }
        let key = sort_key(kind, listing.id.as_str(), at);
        if qualifies {
            let mut entry = with_yield(summary(listing), listing, city);
            // An anomaly is told against the figures that bound it: its city's.
            let median = match kind {
                InterestKind::Anomalous => city.and_then(|f| f.median_price_per_sqft),
                _ => median,
            };
            entry.market_median_price_per_sqft = median.map(|m| rounded(m, MONEY_DECIMALS));
            entry.price_per_sqft_to_median = match (ppsf, median) {
                (Some(p), Some(m)) => Some((p / m * 1e4).round() / 1e4),
                _ => None,
            };
            if kind == InterestKind::Anomalous {
                entry.anomaly = ppsf.zip(city).and_then(|(p, f)| anomaly_of(p, f));
            }
            writes.push(InterestWrite::Put(Box::new(InterestEntry {
                market: market.to_owned(),
                sort_key: key,
                listing: entry,
                undervalued_ratio: (kind == InterestKind::Undervalued)
                    .then_some(rules.undervalued_ratio),
                expires_at: (at + Duration::days(SET_ENTRY_DAYS)).timestamp(),
            })));
            if !listed {
                new.interest.push(kind);
                new.interest.sort();
            }
        } else if listed {
            writes.push(InterestWrite::Delete {
                market: market.to_owned(),
                sort_key: key,
            });
            new.interest.retain(|k| *k != kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::tests::listing;
    use realty_model::listing::ListingStatus;

    /// A minute of the morning the tests' events are observed in.
    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
            .single()
            .expect("time")
            + Duration::minutes(minute)
    }

    /// A listing is judged against its type's median, the all-types one only when its type
    /// has none or too few listings for one, and not at all when the batch did not bring
    /// its type's figures.
    #[test]
    fn the_median_is_the_listing_s_type_s_when_the_batch_read_it() {
        let l = listing(1, 0, 30_000_000, ListingStatus::Active, at(0));
        // `with_area` of 100 active listings have a price per sqft.
        let with_median = |m: Option<f64>, with_area: i64| MarketFigures {
            median_price_per_sqft: m,
            active_listings: 100,
            price_per_sqft_listings: with_area,
            ..MarketFigures::default()
        };
        let enough = crate::aggregate::MIN_LISTINGS_FOR_ANOMALIES as i64;
        let city = with_median(Some(250.0), 100);
        let typed_key = city_scope_key(&l.market.city_state, Some(l.property_type));
        let mut figures = BTreeMap::new();
        assert_eq!(median_for(&l, Some(&city), &figures), None);
        figures.insert(typed_key.clone(), with_median(None, enough));
        assert_eq!(median_for(&l, Some(&city), &figures), Some(250.0));
        figures.insert(typed_key.clone(), with_median(Some(400.0), enough - 1));
        assert_eq!(median_for(&l, Some(&city), &figures), Some(250.0));
        figures.insert(typed_key, with_median(Some(400.0), enough));
        assert_eq!(median_for(&l, Some(&city), &figures), Some(400.0));
        // A city as small judges nothing.
        let small_city = with_median(Some(250.0), enough - 1);
        figures.clear();
        figures.insert(
            city_scope_key(&l.market.city_state, Some(l.property_type)),
            with_median(Some(400.0), 3),
        );
        assert_eq!(median_for(&l, Some(&small_city), &figures), None);
    }

    /// A fourplex's yield is its own rent estimate's, never the 4-bedroom houses' rent.
    #[test]
    fn a_multi_family_home_s_yield_is_its_rent_estimate_s() {
        let mut l = listing(1, 0, 120_000_000, ListingStatus::Active, at(0));
        l.beds = Some(4);
        l.rent_estimate_minor = Some(600_000);
        let city = MarketFigures {
            rents_by_bedrooms: vec![crate::aggregate::rents::BedroomRents {
                bedrooms: crate::aggregate::rents::BedroomGroup::of(4),
                rentals: 10,
                median_rent: Some(3_000.0),
                sale_listings: 1,
                median_price: None,
                gross_yield: None,
                price_to_rent: None,
            }],
            ..MarketFigures::default()
        };
        let house = with_yield(summary(&l), &l, Some(&city));
        assert_eq!(house.gross_yield_basis, Some(YieldBasis::MarketRents));
        assert_eq!(house.gross_yield, Some(0.03));
        l.property_type = realty_model::listing::PropertyType::MultiFamily;
        let fourplex = with_yield(summary(&l), &l, Some(&city));
        assert_eq!(fourplex.gross_yield_basis, Some(YieldBasis::RentEstimates));
        assert_eq!(fourplex.gross_yield, Some(0.06));
    }

    #[test]
    fn sort_keys_stay_short_and_order_cuts_by_time() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 21, 18, 2, 11)
            .single()
            .expect("time");
        let long = "x".repeat(5_000);
        let key = sort_key(InterestKind::PriceCut, &long, at);
        assert_eq!(key.len(), "price_cut#2026-11-21T18:02:11Z#".len() + 16);
        assert!(key.starts_with("price_cut#2026-11-21T18:02:11Z#"));
        assert!(
            sort_key(InterestKind::PriceCut, "a", at)
                < sort_key(InterestKind::PriceCut, "a", at + Duration::seconds(1))
        );
        assert_eq!(
            sort_key(InterestKind::Undervalued, &long, at).len(),
            "undervalued#".len() + 16
        );
        // The keys entries were written under before: whole seconds (truncated), `Z`.
        for at in [
            at,
            at + Duration::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(1999, 1, 2, 3, 4, 5)
                .single()
                .expect("time"),
            Utc.with_ymd_and_hms(2099, 12, 31, 23, 59, 59)
                .single()
                .expect("time")
                + Duration::milliseconds(500),
        ] {
            let key = sort_key(InterestKind::PriceCut, "a", at);
            let stamp = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            assert_eq!(key, format!("price_cut#{stamp}#{:016x}", listing_hash("a")));
        }
    }
}
