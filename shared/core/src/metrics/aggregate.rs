//! Per-market aggregates: what one listing contributes, how contributions add up, and the
//! figures people read (`docs/metrics.md` defines each).
//!
//! A market is a scope: a geography (city-state or ZIP) and a property type (or all types).
//! Every sale listing counts in up to four scopes. Aggregates only ever see contributions
//! (add this listing's facts, remove them, count an event), which is what makes them
//! incremental and lets [`super::batch`] apply each contribution exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::histogram::{DayHistogram, HistogramDecodeError, LogHistogram};
use super::history::{Trends, trends};
use super::rents::{BedroomRents, ByBedrooms, RentAggregate, YieldBasis};
use crate::listing::{Listing, ListingStatus, Offer, PropertyType};

/// How long daily counters stay in the live item (the daily snapshots keep them after).
pub const DAILY_COUNTER_DAYS: i64 = 35;

/// |robust z| above which a listing's price per sqft is an anomaly for its market
/// (Iglewicz and Hoaglin's 3.5).
pub const ANOMALY_ROBUST_Z: f64 = 3.5;

/// Listings with a known price per sqft a market needs before anomalies are flagged.
pub const MIN_LISTINGS_FOR_ANOMALIES: u64 = 10;

/// Whether a listing counts as active or pending inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// For sale and taking offers (Realtor.com's active count: pending excluded).
    Active,
    /// Under contract or pending.
    Pending,
    /// For rent and available: `price_minor` is the monthly rent.
    Rental,
}

/// What a listing contributes to its markets: a sale listing its price, an available rental
/// its rent. Listings that are coming soon, sold, leased or off the market contribute
/// nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingFacts {
    pub standing: Standing,
    pub property_type: PropertyType,
    /// Shared with the facts' scopes ([`Self::scopes`]): a listing's four markets name two
    /// places, each allocated once.
    pub city_state: Arc<str>,
    pub zip: Option<Arc<str>>,
    pub price_minor: i64,
    pub living_area_sqft: Option<u32>,
    pub beds: Option<u16>,
    /// Days since 1970-01-01 of the on-market date.
    pub on_market_day: Option<i32>,
    pub rent_estimate_minor: Option<i64>,
    /// Price below the first price the pipeline saw for the listing.
    pub has_cut: bool,
}

impl ListingFacts {
    /// The facts of `listing`, whose first known price is `first_price_minor`.
    pub fn of(listing: &Listing, first_price_minor: i64) -> Option<Self> {
        let standing = match (listing.offer, listing.status) {
            (Offer::Sale, ListingStatus::Active) => Standing::Active,
            (Offer::Sale, ListingStatus::UnderContract | ListingStatus::Pending) => {
                Standing::Pending
            }
            (Offer::Rent, ListingStatus::Active) => Standing::Rental,
            _ => return None,
        };
        Some(Self {
            standing,
            property_type: listing.property_type,
            city_state: Arc::from(listing.market.city_state.as_str()),
            zip: listing.market.zip.as_deref().map(Arc::from),
            price_minor: listing.price_minor,
            living_area_sqft: listing.living_area_sqft.filter(|a| *a > 0),
            beds: listing.beds,
            on_market_day: listing.on_market_date.map(day_number),
            rent_estimate_minor: listing.rent_estimate_minor.filter(|r| *r > 0),
            has_cut: listing.price_minor < first_price_minor,
        })
    }

    /// Price per sqft in minor units, where the living area is known.
    pub fn price_per_sqft_minor(&self) -> Option<f64> {
        self.living_area_sqft
            .map(|a| self.price_minor as f64 / f64::from(a))
    }

    /// Gross rental yield (12 x monthly rent / price), where a rent estimate is known.
    pub fn gross_yield(&self) -> Option<f64> {
        self.rent_estimate_minor
            .map(|r| 12.0 * r as f64 / self.price_minor as f64)
    }

    /// The scopes these facts count in.
    pub fn scopes(&self) -> Vec<Scope> {
        scopes_of(
            Arc::clone(&self.city_state),
            self.zip.clone(),
            self.property_type,
        )
    }
}

/// Days since 1970-01-01.
pub fn day_number(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

/// The date of a day number.
pub fn day_date(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163)
}

/// A geography. Its name is shared: a batch names each market in every contribution to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Geo {
    CityState(Arc<str>),
    Zip(Arc<str>),
}

/// One market: a geography and a property type (`None` = all types).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub geo: Geo,
    pub property_type: Option<PropertyType>,
}

impl Ord for Scope {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let type_name = |s: &Self| s.property_type.map(property_type_name);
        self.geo
            .cmp(&other.geo)
            .then_with(|| type_name(self).cmp(&type_name(other)))
    }
}

impl PartialOrd for Scope {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Scope {
    /// The partition key of the scope's items: `city#nashville-tn#all`,
    /// `zip#37201#single_family`.
    pub fn key(&self) -> String {
        let (kind, name) = match &self.geo {
            Geo::CityState(c) => ("city", &**c),
            Geo::Zip(z) => ("zip", &**z),
        };
        scope_key(kind, name, self.property_type)
    }

    /// The all-types city scope of a market key (what `realty report --market` names).
    pub fn city(city_state: &str) -> Self {
        Self {
            geo: Geo::CityState(Arc::from(city_state)),
            property_type: None,
        }
    }
}

/// The key of a city market ([`Scope::key`]), without building its scope.
pub fn city_scope_key(city_state: &str, property_type: Option<PropertyType>) -> String {
    scope_key("city", city_state, property_type)
}

fn scope_key(kind: &str, name: &str, property_type: Option<PropertyType>) -> String {
    let property_type = property_type.map_or("all", property_type_name);
    // Sized once (`format!` grows its buffer): every market of every batch, and two city
    // markets of each listing judged, are looked up by key.
    [kind, name, property_type].join("#")
}

/// The snake_case name of a property type, as in the listing JSON.
pub fn property_type_name(t: PropertyType) -> &'static str {
    match t {
        PropertyType::SingleFamily => "single_family",
        PropertyType::Condo => "condo",
        PropertyType::Townhouse => "townhouse",
        PropertyType::MultiFamily => "multi_family",
        PropertyType::Land => "land",
        PropertyType::Apartment => "apartment",
        PropertyType::Manufactured => "manufactured",
        PropertyType::Other => "other",
    }
}

/// The scopes a listing in `city_state` (and `zip`) of `property_type` counts in: each
/// geography across types, then for its type.
pub fn scopes_of(
    city_state: Arc<str>,
    zip: Option<Arc<str>>,
    property_type: PropertyType,
) -> Vec<Scope> {
    let mut out = Vec::with_capacity(4);
    for geo in std::iter::once(Geo::CityState(city_state)).chain(zip.map(Geo::Zip)) {
        out.push(Scope {
            geo: geo.clone(),
            property_type: None,
        });
        out.push(Scope {
            geo,
            property_type: Some(property_type),
        });
    }
    out
}

/// An event counted per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    NewListing,
    PriceCut,
    PriceRise,
    Delisting,
}

/// Events of one day in one market.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyCounts {
    pub new_listings: i64,
    pub price_cuts: i64,
    pub price_rises: i64,
    pub delistings: i64,
    /// Sum of the cuts' sizes in basis points of the old price (integer, so sums are exact).
    pub cut_bp_sum: i64,
}

impl DailyCounts {
    fn add(&mut self, other: &DailyCounts) {
        self.new_listings += other.new_listings;
        self.price_cuts += other.price_cuts;
        self.price_rises += other.price_rises;
        self.delistings += other.delistings;
        self.cut_bp_sum += other.cut_bp_sum;
    }
}

/// One change to an aggregate. A listing's facts go to each of its (up to four) scopes:
/// shared, not copied.
#[derive(Debug, Clone, PartialEq)]
pub enum Contribution {
    Add(Arc<ListingFacts>),
    Remove(Arc<ListingFacts>),
    Count {
        day: NaiveDate,
        counter: Counter,
        cut_bp: i64,
    },
}

/// The live aggregate of one scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarketAggregate {
    pub active: i64,
    pub pending: i64,
    /// Sum of active listings' prices (minor units): the average is exact.
    pub price_sum_minor: i64,
    pub active_with_cut: i64,
    pub price: LogHistogram,
    pub price_per_sqft: LogHistogram,
    pub living_area: LogHistogram,
    /// Negated on-market days, so ascending order is ascending days on market.
    pub listed_day_negated: DayHistogram,
    /// Gross yields of active listings from their own rent estimates.
    pub gross_yield: LogHistogram,
    /// Rents, and sale prices by size to match them with.
    pub rents: RentAggregate,
    pub daily: BTreeMap<NaiveDate, DailyCounts>,
    /// Per day, the medians the market closed the day with (its daily snapshot's), kept as
    /// long as the daily counters: the moving averages and trends of a day's snapshot are
    /// computed from them when the day is written, without reading the snapshots back.
    pub closing: BTreeMap<NaiveDate, DayClose>,
    /// Latest `observed_at` applied.
    pub as_of: Option<DateTime<Utc>>,
}

/// The medians a market stood at when a day's snapshot was last written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DayClose {
    pub median_price: Option<f64>,
    pub median_price_per_sqft: Option<f64>,
}

impl From<&MarketFigures> for DayClose {
    fn from(f: &MarketFigures) -> Self {
        Self {
            median_price: f.median_price,
            median_price_per_sqft: f.median_price_per_sqft,
        }
    }
}

/// A contribution removed what the aggregate did not hold: its figures had drifted from its
/// listings (corruption, or a write lost outside the pipeline). The aggregate stays whole
/// (no negative bucket); the caller reports it with the market, and `realty reconcile`
/// repairs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Underflow {
    /// The figure that underflowed: a histogram (`price`, `price_per_sqft`, `living_area`,
    /// `gross_yield`, `listed_day`, `rent`, `rent_per_sqft`, `rent_by_bedrooms`,
    /// `price_by_bedrooms`) or a count (`active`, `pending`, `rentals`).
    pub what: &'static str,
    /// The histogram's bucket (the day number for `listed_day`; 0 for counts).
    pub bucket: i32,
}

impl MarketAggregate {
    /// Applies one contribution. Every removal it could not make in full is returned (the
    /// rest of the contribution is still applied).
    pub fn apply(&mut self, contribution: &Contribution) -> Vec<Underflow> {
        match contribution {
            Contribution::Add(f) => self.add_facts(f, 1),
            Contribution::Remove(f) => self.add_facts(f, -1),
            Contribution::Count {
                day,
                counter,
                cut_bp,
            } => {
                let counts = self.daily.entry(*day).or_default();
                match counter {
                    Counter::NewListing => counts.new_listings += 1,
                    Counter::PriceCut => {
                        counts.price_cuts += 1;
                        counts.cut_bp_sum += cut_bp;
                    }
                    Counter::PriceRise => counts.price_rises += 1,
                    Counter::Delisting => counts.delistings += 1,
                }
                Vec::new()
            }
        }
    }

    fn add_facts(&mut self, f: &ListingFacts, sign: i64) -> Vec<Underflow> {
        let mut underflows = Vec::new();
        let mut count = |what: &'static str, value: i64| {
            if sign < 0 && value < 0 {
                underflows.push(Underflow { what, bucket: 0 });
            }
        };
        match f.standing {
            Standing::Rental => {
                let rents = self
                    .rents
                    .rental(f.price_minor, f.living_area_sqft, f.beds, sign);
                underflows.extend(
                    rents
                        .into_iter()
                        .map(|(what, bucket)| Underflow { what, bucket }),
                );
            }
            Standing::Pending => {
                self.pending += sign;
                count("pending", self.pending);
            }
            Standing::Active => {
                self.active += sign;
                count("active", self.active);
                self.price_sum_minor += sign * f.price_minor;
                if f.has_cut {
                    self.active_with_cut += sign;
                }
                let values = [
                    ("price", &mut self.price, Some(f.price_minor as f64)),
                    (
                        "price_per_sqft",
                        &mut self.price_per_sqft,
                        f.price_per_sqft_minor(),
                    ),
                    (
                        "living_area",
                        &mut self.living_area,
                        f.living_area_sqft.map(f64::from),
                    ),
                    ("gross_yield", &mut self.gross_yield, f.gross_yield()),
                ];
                for (what, histogram, value) in values {
                    if let Some(v) = value {
                        if sign > 0 {
                            histogram.add(v);
                        } else if let Err(bucket) = histogram.remove(v) {
                            underflows.push(Underflow { what, bucket });
                        }
                    }
                }
                let by_size = self.rents.sale(f.price_minor, f.beds, sign);
                underflows.extend(
                    by_size
                        .into_iter()
                        .map(|(what, bucket)| Underflow { what, bucket }),
                );
                if let Some(day) = f.on_market_day {
                    if sign > 0 {
                        self.listed_day_negated.add(-day);
                    } else if let Err(negated) = self.listed_day_negated.remove(-day) {
                        underflows.push(Underflow {
                            what: "listed_day",
                            bucket: -negated,
                        });
                    }
                }
            }
        }
        underflows
    }

    /// Moves `as_of` forward and drops daily counters and closes older than
    /// [`DAILY_COUNTER_DAYS`].
    pub fn advance_to(&mut self, observed_at: DateTime<Utc>) {
        if self.as_of.is_none_or(|t| observed_at > t) {
            self.as_of = Some(observed_at);
        }
        if let Some(as_of) = self.as_of {
            let oldest = as_of.date_naive() - Duration::days(DAILY_COUNTER_DAYS);
            // Days are in order: drop from the front (this runs for every contribution, and
            // usually finds nothing to drop).
            drop_before(&mut self.daily, oldest);
            drop_before(&mut self.closing, oldest);
        }
    }

    /// Records `figures` as the close of `day` (the open day's, as of the newest
    /// contribution, is replaced until the day closes).
    pub fn record_close(&mut self, day: NaiveDate, figures: &MarketFigures) {
        self.closing.insert(day, DayClose::from(figures));
    }

    /// Records the figures a day's snapshot is written with as that day's close, and
    /// returns the day's trends as of then ([`crate::metrics::history::trends`] over the
    /// closes kept).
    pub fn close_day(&mut self, day: NaiveDate, figures: &MarketFigures) -> Trends {
        self.record_close(day, figures);
        trends(&self.closing, day)
    }

    /// The figures of this aggregate on the day of `as_of`.
    pub fn figures(&self) -> MarketFigures {
        let today = self.as_of.map(|t| t.date_naive());
        let counts_since = |days: i64| {
            let mut sum = DailyCounts::default();
            if let Some(today) = today {
                let first = today - Duration::days(days - 1);
                for (_, c) in self.daily.range(first..=today) {
                    sum.add(c);
                }
            }
            sum
        };
        let day = counts_since(1);
        let week = counts_since(7);
        let ratio = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
        let median_ppsf = self.price_per_sqft.median();
        let ppsf_mad = self.price_per_sqft.median_absolute_deviation();
        let rents = self.rents.figures(self.gross_yield.median());
        let bounds = self.anomaly_bounds();
        MarketFigures {
            as_of: self.as_of,
            active_listings: self.active,
            pending_listings: self.pending,
            total_listings: self.active + self.pending,
            pending_ratio: ratio(self.pending, self.active),
            median_price: self.price.median().map(to_major),
            average_price: ratio(self.price_sum_minor, self.active).map(to_major),
            median_price_per_sqft: median_ppsf.map(to_major),
            median_living_area_sqft: self.living_area.median(),
            median_days_on_market: match (today, self.listed_day_negated.quantile(0.5)) {
                (Some(t), Some(neg_day)) => Some(i64::from(day_number(t) + neg_day)),
                _ => None,
            },
            new_listings_today: day.new_listings,
            price_cuts_today: day.price_cuts,
            price_rises_today: day.price_rises,
            delistings_today: day.delistings,
            new_listings_7d: week.new_listings,
            price_cuts_7d: week.price_cuts,
            price_rises_7d: week.price_rises,
            delistings_7d: week.delistings,
            share_active_with_cut: ratio(self.active_with_cut, self.active),
            average_cut_pct_7d: ratio(week.cut_bp_sum, week.price_cuts).map(|bp| bp / 100.0),
            active_rentals: rents.active_rentals,
            median_rent: rents.median_rent,
            median_rent_per_sqft: rents.median_rent_per_sqft,
            rents_by_bedrooms: rents.rents_by_bedrooms,
            gross_yield: rents.gross_yield,
            price_to_rent: rents.price_to_rent,
            yield_basis: rents.yield_basis,
            price_per_sqft_mad: ppsf_mad.map(to_major),
            price_per_sqft_anomaly_below: bounds.map(|(low, _)| to_major(low)),
            price_per_sqft_anomaly_above: bounds.map(|(_, high)| to_major(high)),
            anomalous_listings: bounds.map_or(0, |b| self.anomalous_listings(b) as i64),
        }
    }

    /// The prices per sqft (minor units) outside which a listing is an anomaly: a robust
    /// z-score 0.6745 (ln x - ln median) / MAD(ln) beyond [`ANOMALY_ROBUST_Z`], on a log scale
    /// because prices are skewed (a linear one gave lower bounds below zero). `None` for
    /// markets too small or too uniform to judge.
    pub fn anomaly_bounds(&self) -> Option<(f64, f64)> {
        if self.price_per_sqft.count() < MIN_LISTINGS_FOR_ANOMALIES {
            return None;
        }
        let median = self.price_per_sqft.median()?;
        let mad = self.price_per_sqft.log_median_absolute_deviation()?;
        let reach = ANOMALY_ROBUST_Z * mad / 0.6745;
        (mad > 0.0).then(|| (median * (-reach).exp(), median * reach.exp()))
    }

    /// Active listings whose price per sqft lies outside [`Self::anomaly_bounds`].
    fn anomalous_listings(&self, (low, high): (f64, f64)) -> u64 {
        self.price_per_sqft
            .buckets()
            .filter(|(v, _)| *v < low || *v > high)
            .map(|(_, c)| c)
            .sum()
    }
}

/// Drops the entries of days before `oldest`.
fn drop_before<V>(days: &mut BTreeMap<NaiveDate, V>, oldest: NaiveDate) {
    while let Some(day) = days.first_entry() {
        if *day.key() >= oldest {
            break;
        }
        day.remove();
    }
}

fn to_major(minor: f64) -> f64 {
    minor / 100.0
}

/// What people read about a market. Prices are in major units (dollars).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarketFigures {
    pub as_of: Option<DateTime<Utc>>,
    pub active_listings: i64,
    pub pending_listings: i64,
    pub total_listings: i64,
    pub pending_ratio: Option<f64>,
    pub median_price: Option<f64>,
    pub average_price: Option<f64>,
    pub median_price_per_sqft: Option<f64>,
    pub median_living_area_sqft: Option<f64>,
    pub median_days_on_market: Option<i64>,
    pub new_listings_today: i64,
    pub price_cuts_today: i64,
    pub price_rises_today: i64,
    pub delistings_today: i64,
    pub new_listings_7d: i64,
    pub price_cuts_7d: i64,
    pub price_rises_7d: i64,
    pub delistings_7d: i64,
    pub share_active_with_cut: Option<f64>,
    pub average_cut_pct_7d: Option<f64>,
    /// Active rentals.
    #[serde(default)]
    pub active_rentals: i64,
    /// Median monthly rent of active rentals.
    #[serde(default)]
    pub median_rent: Option<f64>,
    #[serde(default)]
    pub median_rent_per_sqft: Option<f64>,
    /// Rents and sale prices by bedrooms, and the yields they give.
    #[serde(default)]
    pub rents_by_bedrooms: Vec<BedroomRents>,
    /// Yearly rent / price for the market's homes for sale (docs/metrics.md).
    #[serde(default, alias = "median_gross_yield")]
    pub gross_yield: Option<f64>,
    /// 1 / `gross_yield`.
    pub price_to_rent: Option<f64>,
    #[serde(default)]
    pub yield_basis: Option<YieldBasis>,
    pub price_per_sqft_mad: Option<f64>,
    /// A listing whose price per sqft is below this (or above the next) is an anomaly.
    pub price_per_sqft_anomaly_below: Option<f64>,
    pub price_per_sqft_anomaly_above: Option<f64>,
    /// Active listings outside those bounds.
    pub anomalous_listings: i64,
}

/// The aggregate's histograms, encoded, for storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedHistograms {
    /// Prices of active sale listings; `None` when stored as `price_by_bedrooms` and
    /// `price_without_beds` together (the same values: a regional item's price histogram,
    /// 230 of its 2,500 bytes, is mostly its by-bedroom ones again).
    pub price: Option<Vec<u8>>,
    /// Prices of active sale listings with no bedroom count, when `price` is `None`.
    pub price_without_beds: Vec<u8>,
    pub price_per_sqft: Vec<u8>,
    pub living_area: Vec<u8>,
    pub listed_day_negated: Vec<u8>,
    pub gross_yield: Vec<u8>,
    pub rent: Vec<u8>,
    pub rent_per_sqft: Vec<u8>,
    pub rent_by_bedrooms: Vec<u8>,
    pub price_by_bedrooms: Vec<u8>,
}

impl MarketAggregate {
    pub fn encode_histograms(&self) -> EncodedHistograms {
        let with_beds = self
            .rents
            .price_by_bedrooms
            .0
            .values()
            .try_fold(LogHistogram::default(), |mut all, group| {
                all.merge(group).map(|()| all)
            });
        // Drifted histograms (a group holding a price the whole does not) keep the whole.
        let (price, price_without_beds) = match with_beds
            .ok()
            .and_then(|with_beds| self.price.without(&with_beds))
        {
            Some(rest) => (None, rest.encode()),
            None => (Some(self.price.encode()), Vec::new()),
        };
        EncodedHistograms {
            price,
            price_without_beds,
            price_per_sqft: self.price_per_sqft.encode(),
            living_area: self.living_area.encode(),
            listed_day_negated: self.listed_day_negated.encode(),
            gross_yield: self.gross_yield.encode(),
            rent: self.rents.rent.encode(),
            rent_per_sqft: self.rents.rent_per_sqft.encode(),
            rent_by_bedrooms: self.rents.rent_by_bedrooms.encode(),
            price_by_bedrooms: self.rents.price_by_bedrooms.encode(),
        }
    }

    pub fn set_histograms(
        &mut self,
        encoded: &EncodedHistograms,
    ) -> Result<(), HistogramDecodeError> {
        self.price_per_sqft = LogHistogram::decode(&encoded.price_per_sqft)?;
        self.living_area = LogHistogram::decode(&encoded.living_area)?;
        self.listed_day_negated = DayHistogram::decode(&encoded.listed_day_negated)?;
        self.gross_yield = LogHistogram::decode(&encoded.gross_yield)?;
        self.rents.rent = LogHistogram::decode(&encoded.rent)?;
        self.rents.rent_per_sqft = LogHistogram::decode(&encoded.rent_per_sqft)?;
        self.rents.rent_by_bedrooms = ByBedrooms::decode(&encoded.rent_by_bedrooms)?;
        self.rents.price_by_bedrooms = ByBedrooms::decode(&encoded.price_by_bedrooms)?;
        self.price = match &encoded.price {
            Some(price) => LogHistogram::decode(price)?,
            None => {
                let mut price = LogHistogram::decode(&encoded.price_without_beds)?;
                for group in self.rents.price_by_bedrooms.0.values() {
                    price.merge(group)?;
                }
                price
            }
        };
        // Rentals are not kept as a count of their own: every rental has a rent.
        self.rents.rentals = self.rents.rent.count() as i64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(price: i64, area: u32, standing: Standing) -> ListingFacts {
        ListingFacts {
            standing,
            property_type: PropertyType::SingleFamily,
            city_state: "nashville-tn".into(),
            zip: Some("37201".into()),
            price_minor: price,
            living_area_sqft: Some(area),
            on_market_day: Some(20_000),
            beds: Some(3),
            rent_estimate_minor: Some(price / 200),
            has_cut: false,
        }
    }

    #[test]
    fn a_listing_counts_in_four_scopes() {
        let keys: Vec<String> = facts(1, 1, Standing::Active)
            .scopes()
            .iter()
            .map(Scope::key)
            .collect();
        assert_eq!(
            keys,
            [
                "city#nashville-tn#all",
                "city#nashville-tn#single_family",
                "zip#37201#all",
                "zip#37201#single_family"
            ]
        );
    }

    /// A skewed market (most homes near $200/sqft, a long tail of dear ones): the bounds stay
    /// above zero, the far tail and a give-away are flagged, the ordinary spread is not.
    #[test]
    fn anomaly_bounds_are_on_a_log_scale_and_never_below_zero() {
        let mut a = MarketAggregate::default();
        let per_sqft = [
            150, 170, 180, 190, 195, 200, 200, 205, 210, 220, 240, 260, 300, 380, 520, 900, 3_000,
        ];
        for (i, dollars) in per_sqft.iter().enumerate() {
            let area = 1_000 + i as u32;
            let f = facts(dollars * 100 * i64::from(area), area, Standing::Active);
            a.apply(&Contribution::Add(Arc::new(f)));
        }
        let cheap = facts(20 * 100 * 1_500, 1_500, Standing::Active);
        a.apply(&Contribution::Add(Arc::new(cheap)));
        let (low, high) = a.anomaly_bounds().expect("bounds");
        assert!(low > 0.0, "{low}");
        let ppsf = |dollars: f64| dollars * 100.0;
        assert!(low > ppsf(20.0) && low < ppsf(150.0), "{low}");
        assert!(high > ppsf(300.0) && high < ppsf(3_000.0), "{high}");
        let outside = per_sqft
            .iter()
            .chain(&[20])
            .filter(|d| ppsf(**d as f64) < low || ppsf(**d as f64) > high)
            .count() as i64;
        assert!(outside >= 2);
        assert_eq!(a.figures().anomalous_listings, outside);
    }

    #[test]
    fn add_then_remove_leaves_nothing() {
        let mut a = MarketAggregate::default();
        let f = facts(40_000_000, 2_000, Standing::Active);
        a.apply(&Contribution::Add(Arc::new(f.clone())));
        assert_eq!(a.active, 1);
        assert_eq!(a.price_sum_minor, 40_000_000);
        a.apply(&Contribution::Remove(Arc::new(f)));
        assert_eq!(a, MarketAggregate::default());
    }

    #[test]
    fn prices_are_stored_by_bedrooms_and_read_back_whole() {
        let mut a = MarketAggregate::default();
        for (i, beds) in [Some(1), Some(3), Some(3), None, Some(6)]
            .into_iter()
            .enumerate()
        {
            let mut f = facts(30_000_000 + 7_000_000 * i as i64, 1_500, Standing::Active);
            f.beds = beds;
            a.apply(&Contribution::Add(Arc::new(f)));
        }
        let encoded = a.encode_histograms();
        // Only the listing without a bedroom count is stored beside the by-bedroom groups.
        assert_eq!(encoded.price, None);
        assert_eq!(
            LogHistogram::decode(&encoded.price_without_beds)
                .unwrap()
                .count(),
            1
        );
        let mut back = MarketAggregate::default();
        back.set_histograms(&encoded).unwrap();
        assert_eq!(back.price, a.price);
        assert_eq!(back.figures().median_price, a.figures().median_price);

        // Drifted apart (a group holds a price the whole does not): the whole is stored.
        let mut drifted = a.clone();
        assert!(drifted.price.remove(30_000_000.0).is_ok());
        let encoded = drifted.encode_histograms();
        assert!(encoded.price.is_some());
        let mut back = MarketAggregate::default();
        back.set_histograms(&encoded).unwrap();
        assert_eq!(back.price, drifted.price);
    }

    #[test]
    fn removing_a_listing_the_market_does_not_hold_is_reported() {
        let mut a = MarketAggregate::default();
        let held = facts(40_000_000, 2_000, Standing::Active);
        assert!(a.apply(&Contribution::Add(Arc::new(held))).is_empty());
        let stranger = facts(90_000_000, 3_000, Standing::Active);
        let underflows = a.apply(&Contribution::Remove(Arc::new(stranger.clone())));
        let whats: Vec<&str> = underflows.iter().map(|u| u.what).collect();
        // The count goes to zero (one listing held, one removed): not an underflow; the
        // histograms where the stranger's bucket differs from the held listing's miss it.
        assert_eq!(
            whats,
            [
                "price",
                "price_per_sqft",
                "living_area",
                "price_by_bedrooms"
            ]
        );
        assert_eq!(
            underflows[0].bucket,
            LogHistogram::bucket_of(90_000_000.0).unwrap()
        );
        assert_eq!(a.price.count(), 1, "the held listing stays counted");
        let again = a.apply(&Contribution::Remove(Arc::new(stranger)));
        assert!(again.iter().any(|u| u.what == "active"), "{again:?}");
        assert!(
            again
                .iter()
                .any(|u| u.what == "listed_day" && u.bucket == 20_000)
        );
        assert!(again.iter().any(|u| u.what == "gross_yield"));
    }

    #[test]
    fn figures_of_a_small_market() {
        let mut a = MarketAggregate::default();
        for (price, area) in [
            (30_000_000, 1_500),
            (40_000_000, 2_000),
            (50_000_000, 2_500),
        ] {
            a.apply(&Contribution::Add(Arc::new(facts(
                price,
                area,
                Standing::Active,
            ))));
        }
        a.apply(&Contribution::Add(Arc::new(facts(
            60_000_000,
            3_000,
            Standing::Pending,
        ))));
        let day = NaiveDate::from_ymd_opt(2024, 10, 5).unwrap();
        a.apply(&Contribution::Count {
            day,
            counter: Counter::PriceCut,
            cut_bp: 1_000,
        });
        a.apply(&Contribution::Count {
            day,
            counter: Counter::PriceCut,
            cut_bp: 2_000,
        });
        a.advance_to(day.and_hms_opt(12, 0, 0).unwrap().and_utc());
        let f = a.figures();
        assert_eq!(
            (f.active_listings, f.pending_listings, f.total_listings),
            (3, 1, 4)
        );
        assert_eq!(f.average_price, Some(400_000.0));
        assert!((f.median_price.unwrap() / 400_000.0 - 1.0).abs() < 0.01);
        assert!((f.median_price_per_sqft.unwrap() / 200.0 - 1.0).abs() < 0.01);
        assert_eq!(f.price_cuts_today, 2);
        assert_eq!(f.average_cut_pct_7d, Some(15.0));
        assert!((f.gross_yield.unwrap() / 0.06 - 1.0).abs() < 0.01);
        assert_eq!(f.yield_basis, Some(YieldBasis::RentEstimates));
        assert_eq!(
            f.median_days_on_market,
            Some(i64::from(day_number(day) - 20_000))
        );
    }

    #[test]
    fn old_daily_counters_roll_off() {
        let mut a = MarketAggregate::default();
        let day = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        a.apply(&Contribution::Count {
            day,
            counter: Counter::NewListing,
            cut_bp: 0,
        });
        a.advance_to(
            (day + Duration::days(DAILY_COUNTER_DAYS + 1))
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
        );
        assert!(a.daily.is_empty());
    }
}
