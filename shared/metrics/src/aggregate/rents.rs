//! A market's rents, and the yields they give when matched with its sale prices by size
//! (`docs/metrics.md`, "Rents and yields").
//!
//! Rentals (`offer: rent`, active) contribute their monthly rent to the market's rents,
//! overall and by bedroom group; sale listings contribute their price to the sale prices of
//! their bedroom group. Market yields come from the two sides matched group by group, so a
//! market of studios for rent and four-bed houses for sale is not read as a high-yield
//! market. Like every other figure, the values only ever see contributions (add, remove), so
//! the same exactly-once rules apply to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::minor_per_sqft;
use crate::histogram::LogHistogram;
use crate::values::ValueCounts;
use realty_model::format::{FRACTION_DECIMALS, PERCENT_DECIMALS, major, rounded};
use realty_model::varint::{DecodeError, get_varint, put_varint};

/// Active rentals a bedroom group needs before its median rent is matched with sale prices.
pub const MIN_RENTALS_TO_MATCH: u64 = 3;

/// The size classes rents are matched by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BedroomGroup {
    #[serde(rename = "0")]
    Studio,
    #[serde(rename = "1")]
    One,
    #[serde(rename = "2")]
    Two,
    #[serde(rename = "3")]
    Three,
    #[serde(rename = "4+")]
    FourPlus,
}

impl BedroomGroup {
    pub const ALL: [Self; 5] = [
        Self::Studio,
        Self::One,
        Self::Two,
        Self::Three,
        Self::FourPlus,
    ];

    pub fn of(beds: u16) -> Self {
        match beds {
            0 => Self::Studio,
            1 => Self::One,
            2 => Self::Two,
            3 => Self::Three,
            _ => Self::FourPlus,
        }
    }

    /// `0` (studio), `1`, `2`, `3` or `4+`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Studio => "0",
            Self::One => "1",
            Self::Two => "2",
            Self::Three => "3",
            Self::FourPlus => "4+",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }
}

/// Values by bedroom group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByBedrooms(pub BTreeMap<BedroomGroup, ValueCounts>);

impl ByBedrooms {
    fn add(&mut self, group: BedroomGroup, value: i64) {
        self.0.entry(group).or_default().add(value);
    }

    fn remove(&mut self, group: BedroomGroup, value: i64) -> Result<(), i64> {
        let Some(values) = self.0.get_mut(&group) else {
            return Err(value);
        };
        let removed = values.remove(value);
        if values.count() == 0 {
            self.0.remove(&group);
        }
        removed
    }

    fn get(&self, group: BedroomGroup) -> Option<&ValueCounts> {
        self.0.get(&group)
    }

    /// All groups' values together.
    pub fn all(&self) -> Result<ValueCounts, DecodeError> {
        self.0
            .values()
            .try_fold(ValueCounts::default(), |mut all, group| {
                all.merge(group).map(|()| all)
            })
    }

    /// Per group: its code (one byte), the length of its values' encoding (varint), the
    /// encoding. Empty groups are not stored.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (group, values) in &self.0 {
            let bytes = values.encode();
            out.push(group.code());
            put_varint(&mut out, bytes.len() as u64);
            out.extend_from_slice(&bytes);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_groups(bytes, ValueCounts::decode)
    }

    /// The groups of an item written before 2026-11-29, each a histogram read as its
    /// midpoints ([`ValueCounts::from_log_histogram`]).
    pub fn decode_legacy(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_groups(bytes, |group| {
            LogHistogram::decode(group).map(|h| ValueCounts::from_log_histogram(&h, 1.0))
        })
    }

    fn decode_groups(
        bytes: &[u8],
        decode: impl Fn(&[u8]) -> Result<ValueCounts, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let mut groups = BTreeMap::new();
        let mut pos = 0;
        while let Some(&code) = bytes.get(pos) {
            pos += 1;
            let group =
                BedroomGroup::from_code(code).ok_or(DecodeError("unknown bedroom group"))?;
            let len = usize::try_from(get_varint(bytes, &mut pos)?)
                .map_err(|_| DecodeError("group length out of range"))?;
            let histogram = pos
                .checked_add(len)
                .and_then(|end| bytes.get(pos..end))
                .ok_or(DecodeError("truncated group histogram"))?;
            pos += len;
            if groups.insert(group, decode(histogram)?).is_some() {
                return Err(DecodeError("bedroom group twice"));
            }
        }
        Ok(Self(groups))
    }
}

/// What a market knows of its rents and of its sale prices by size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RentAggregate {
    /// Active rentals.
    pub rentals: i64,
    /// Monthly rents (minor units) of active rentals.
    pub rent: ValueCounts,
    /// Monthly rent per sqft (minor units, rounded) of active rentals with a living area.
    pub rent_per_sqft: ValueCounts,
    /// Monthly rents of active rentals with a bedroom count.
    pub rent_by_bedrooms: ByBedrooms,
    /// Prices of active sale listings with a bedroom count.
    pub price_by_bedrooms: ByBedrooms,
}

/// A removal the aggregate could not make in full: which values, which value.
pub type RentUnderflow = (&'static str, i64);

impl RentAggregate {
    /// Adds (`sign` 1) or removes (-1) an active rental.
    pub fn rental(
        &mut self,
        rent_minor: i64,
        living_area_sqft: Option<u32>,
        beds: Option<u16>,
        sign: i64,
    ) -> Vec<RentUnderflow> {
        let mut underflows = Vec::new();
        self.rentals += sign;
        if sign < 0 && self.rentals < 0 {
            underflows.push(("rentals", 0));
        }
        let per_sqft = living_area_sqft.map(|a| minor_per_sqft(rent_minor, a));
        for (what, values, value) in [
            ("rent", &mut self.rent, Some(rent_minor)),
            ("rent_per_sqft", &mut self.rent_per_sqft, per_sqft),
        ] {
            if let Some(v) = value {
                if sign > 0 {
                    values.add(v);
                } else if let Err(value) = values.remove(v) {
                    underflows.push((what, value));
                }
            }
        }
        if let Some(Err(value)) =
            beds.map(|b| apply(&mut self.rent_by_bedrooms, b, rent_minor, sign))
        {
            underflows.push(("rent_by_bedrooms", value));
        }
        underflows
    }

    /// Adds (`sign` 1) or removes (-1) an active sale listing's price to its size class.
    pub fn sale(&mut self, price_minor: i64, beds: Option<u16>, sign: i64) -> Vec<RentUnderflow> {
        match beds {
            Some(beds) => apply(&mut self.price_by_bedrooms, beds, price_minor, sign)
                .err()
                .map(|value| vec![("price_by_bedrooms", value)])
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The market's rent figures, and its yields where its rents can be matched with its
    /// sale prices (else from `estimate_yield`, the median of the listings' own rent
    /// estimates' yields, where there is one).
    pub fn figures(&self, estimate_yield: Option<f64>) -> RentFigures {
        let mut by_bedrooms = Vec::new();
        // Σ n·median price and Σ n·12·median rent over the matched groups, n = sale listings.
        let (mut prices, mut yearly_rents) = (0.0, 0.0);
        for group in BedroomGroup::ALL {
            let rents = self.rent_by_bedrooms.get(group);
            let prices_of = self.price_by_bedrooms.get(group);
            if rents.is_none() && prices_of.is_none() {
                continue;
            }
            let rentals = rents.map_or(0, ValueCounts::count);
            let sale_listings = prices_of.map_or(0, ValueCounts::count);
            let median_rent = rents.and_then(ValueCounts::median);
            let median_price = prices_of.and_then(ValueCounts::median);
            let matched = match (median_rent, median_price) {
                (Some(r), Some(p)) if rentals >= MIN_RENTALS_TO_MATCH && p > 0 && r > 0 => {
                    let (r, p) = (r as f64, p as f64);
                    prices += sale_listings as f64 * p;
                    yearly_rents += sale_listings as f64 * 12.0 * r;
                    Some(12.0 * r / p)
                }
                _ => None,
            };
            by_bedrooms.push(BedroomRents {
                bedrooms: group,
                rentals: rentals as i64,
                median_rent: median_rent.map(major),
                sale_listings: sale_listings as i64,
                median_price: median_price.map(major),
                gross_yield: matched.map(|y| rounded(y, FRACTION_DECIMALS)),
                price_to_rent: matched.map(|y| rounded(1.0 / y, PERCENT_DECIMALS)),
            });
        }
        let (gross_yield, yield_basis) = if yearly_rents > 0.0 && prices > 0.0 {
            (Some(yearly_rents / prices), Some(YieldBasis::MarketRents))
        } else {
            match estimate_yield {
                Some(y) if y > 0.0 => (Some(y), Some(YieldBasis::RentEstimates)),
                _ => (None, None),
            }
        };
        let price_to_rent = match yield_basis {
            Some(YieldBasis::RentEstimates) => gross_yield.map(estimate_price_to_rent),
            _ => gross_yield.map(|y| rounded(1.0 / y, PERCENT_DECIMALS)),
        };
        RentFigures {
            active_rentals: self.rentals,
            median_rent: self.rent.median().map(major),
            median_rent_per_sqft: self.rent_per_sqft.median().map(major),
            rents_by_bedrooms: by_bedrooms,
            gross_yield: gross_yield.map(|y| rounded(y, FRACTION_DECIMALS)),
            price_to_rent,
            yield_basis,
        }
    }
}

/// The price-to-rent ratio of a yield from rent estimates, to the decimals it has: that
/// yield is the median of yields held to a basis point, so its inverse is off by up to half a
/// basis point's worth, 0.00005 × ratio² (0.008 at 13, 0.02 at 20, 0.08 at 40).
fn estimate_price_to_rent(gross_yield: f64) -> f64 {
    let ratio = 1.0 / gross_yield;
    rounded(ratio, estimate_price_to_rent_decimals(ratio))
}

/// The decimals a price-to-rent `ratio` from rent estimates is published with: the most
/// (up to two) whose half unit covers half a basis point of yield; whole numbers at worst.
pub fn estimate_price_to_rent_decimals(ratio: f64) -> i32 {
    let error = 0.5e-4 * ratio * ratio;
    (1..=PERCENT_DECIMALS)
        .rev()
        .find(|&d| error <= 0.5 / 10f64.powi(d))
        .unwrap_or(0)
}

fn apply(groups: &mut ByBedrooms, beds: u16, value: i64, sign: i64) -> Result<(), i64> {
    let group = BedroomGroup::of(beds);
    if sign > 0 {
        groups.add(group, value);
        Ok(())
    } else {
        groups.remove(group, value)
    }
}

/// One sale listing's gross yield: 12 × its market's median rent for its size class (where
/// the class has [`MIN_RENTALS_TO_MATCH`] rentals), else 12 × its own rent estimate, over its
/// price.
pub fn listing_gross_yield(
    price_minor: i64,
    beds: Option<u16>,
    rent_estimate_minor: Option<i64>,
    market: &[BedroomRents],
) -> Option<(f64, YieldBasis)> {
    if price_minor <= 0 {
        return None;
    }
    let price = major(price_minor);
    let market_rent = beds.and_then(|b| {
        let class = BedroomGroup::of(b);
        market
            .iter()
            .find(|r| r.bedrooms == class && r.rentals >= MIN_RENTALS_TO_MATCH as i64)
            .and_then(|r| r.median_rent)
    });
    match (market_rent, rent_estimate_minor.filter(|r| *r > 0)) {
        (Some(rent), _) => Some((12.0 * rent / price, YieldBasis::MarketRents)),
        (None, Some(estimate)) => Some((
            12.0 * estimate as f64 / price_minor as f64,
            YieldBasis::RentEstimates,
        )),
        (None, None) => None,
    }
}

/// Where a market's yield comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum YieldBasis {
    /// The market's own rents matched with its sale prices by bedrooms.
    MarketRents,
    /// No size class could be matched: the median of the sale listings' own rent estimates
    /// (Zillow's `rentZestimate`).
    RentEstimates,
}

/// One size class's rents and prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BedroomRents {
    pub bedrooms: BedroomGroup,
    pub rentals: i64,
    /// Median monthly rent (dollars).
    pub median_rent: Option<f64>,
    pub sale_listings: i64,
    pub median_price: Option<f64>,
    /// 12 × median rent / median price, where the class has enough rentals and a sale.
    pub gross_yield: Option<f64>,
    /// median price / (12 × median rent), likewise.
    pub price_to_rent: Option<f64>,
}

/// The rent figures of a market (part of [`super::MarketFigures`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RentFigures {
    pub active_rentals: i64,
    pub median_rent: Option<f64>,
    pub median_rent_per_sqft: Option<f64>,
    pub rents_by_bedrooms: Vec<BedroomRents>,
    pub gross_yield: Option<f64>,
    pub price_to_rent: Option<f64>,
    pub yield_basis: Option<YieldBasis>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dollars(d: i64) -> i64 {
        d * 100
    }

    /// A yield from rent estimates is held to a basis point: its price-to-rent shows the
    /// decimals that leaves (7.68 % is 13.0208..., true anywhere from 13.012 to 13.029).
    #[test]
    fn a_price_to_rent_from_estimates_shows_only_the_decimals_it_has() {
        let r = RentAggregate::default();
        let f = r.figures(Some(0.0768));
        assert_eq!(f.yield_basis, Some(YieldBasis::RentEstimates));
        assert_eq!(f.price_to_rent, Some(13.0));
        assert_eq!(r.figures(Some(0.125)).price_to_rent, Some(8.0));
        assert_eq!(r.figures(Some(0.1234)).price_to_rent, Some(8.1));
        assert_eq!(r.figures(Some(0.1301)).price_to_rent, Some(7.69));
        assert_eq!(r.figures(Some(0.0251)).price_to_rent, Some(40.0));
        for (ratio, decimals) in [(9.9, 2), (10.1, 1), (31.6, 1), (31.7, 0), (80.0, 0)] {
            assert_eq!(estimate_price_to_rent_decimals(ratio), decimals, "{ratio}");
        }
    }

    #[test]
    fn yields_match_rents_and_prices_by_bedrooms() {
        let mut r = RentAggregate::default();
        // Two-bed flats rent for $1,500 and sell for $300,000; four-bed houses rent for
        // $3,000 and sell for $900,000.
        for _ in 0..3 {
            r.rental(dollars(1_500), Some(1_000), Some(2), 1);
            r.rental(dollars(3_000), Some(2_500), Some(5), 1);
        }
        r.sale(dollars(300_000), Some(2), 1);
        for _ in 0..3 {
            r.sale(dollars(900_000), Some(4), 1);
        }
        let f = r.figures(Some(0.5));
        assert_eq!(f.active_rentals, 6);
        assert_eq!(f.yield_basis, Some(YieldBasis::MarketRents));
        // (1 × 300k + 3 × 900k) / (1 × 18k + 3 × 36k) = 3,000k / 126k = 23.8095...
        assert_eq!(f.price_to_rent, Some(23.81));
        assert_eq!(f.gross_yield, Some(0.042));
        let two = &f.rents_by_bedrooms[0];
        assert_eq!(
            (two.bedrooms, two.rentals, two.sale_listings),
            (BedroomGroup::Two, 3, 1)
        );
        assert_eq!(
            (two.gross_yield, two.price_to_rent),
            (Some(0.06), Some(16.67))
        );
        let four = &f.rents_by_bedrooms[1];
        assert_eq!(four.bedrooms, BedroomGroup::FourPlus);
        // $1.50 and $1.20 a sqft, three each: the lower middle.
        assert_eq!(f.median_rent_per_sqft, Some(1.2));
    }

    #[test]
    fn a_listing_yields_its_class_rent_else_its_own_estimate() {
        let mut r = RentAggregate::default();
        for _ in 0..3 {
            r.rental(dollars(1_500), None, Some(2), 1);
        }
        r.rental(dollars(2_500), None, Some(3), 1);
        let market = r.figures(None).rents_by_bedrooms;
        let two = listing_gross_yield(dollars(300_000), Some(2), Some(dollars(9_000)), &market);
        assert_eq!(two, Some((0.06, YieldBasis::MarketRents)));
        // One three-bed rental is not a market rent: the listing's own estimate is used.
        let three = listing_gross_yield(dollars(400_000), Some(3), Some(dollars(2_000)), &market);
        assert_eq!(three, Some((0.06, YieldBasis::RentEstimates)));
        assert_eq!(
            listing_gross_yield(dollars(400_000), None, None, &market),
            None
        );
    }

    #[test]
    fn too_few_rentals_fall_back_to_the_listings_estimates() {
        let mut r = RentAggregate::default();
        r.rental(dollars(1_500), None, Some(2), 1);
        r.rental(dollars(1_600), None, Some(2), 1);
        r.sale(dollars(300_000), Some(2), 1);
        let f = r.figures(Some(0.05));
        assert_eq!(f.yield_basis, Some(YieldBasis::RentEstimates));
        assert_eq!(f.gross_yield, Some(0.05));
        assert_eq!(f.rents_by_bedrooms[0].gross_yield, None);
        assert_eq!(r.figures(None).gross_yield, None);
    }

    #[test]
    fn adding_then_removing_leaves_nothing() {
        let mut r = RentAggregate::default();
        assert!(r.rental(dollars(2_000), Some(900), Some(1), 1).is_empty());
        assert!(r.sale(dollars(250_000), Some(1), 1).is_empty());
        assert!(r.rental(dollars(2_000), Some(900), Some(1), -1).is_empty());
        assert!(r.sale(dollars(250_000), Some(1), -1).is_empty());
        assert_eq!(r, RentAggregate::default());
        let underflows = r.rental(dollars(2_000), Some(900), Some(1), -1);
        let whats: Vec<&str> = underflows.iter().map(|(w, _)| *w).collect();
        assert_eq!(
            whats,
            ["rentals", "rent", "rent_per_sqft", "rent_by_bedrooms"]
        );
    }

    #[test]
    fn groups_encode_and_decode_and_corrupt_bytes_are_refused() {
        let mut r = RentAggregate::default();
        for beds in 0..7 {
            r.rental(dollars(1_000 + i64::from(beds) * 400), None, Some(beds), 1);
        }
        let bytes = r.rent_by_bedrooms.encode();
        assert_eq!(ByBedrooms::decode(&bytes).unwrap(), r.rent_by_bedrooms);
        assert_eq!(ByBedrooms::decode(&[]).unwrap(), ByBedrooms::default());
        for bad in [
            &[9u8, 0][..],
            &[0, 5, 1],
            &[0],
            &[0, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(ByBedrooms::decode(bad).is_err(), "{bad:?}");
        }
        let twice = [bytes.clone(), bytes].concat();
        assert!(ByBedrooms::decode(&twice).is_err());
    }
}
