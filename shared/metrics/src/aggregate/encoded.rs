//! A market aggregate's values encoded for storage ([`EncodedValues`]), and read back.

use super::MarketAggregate;
use crate::aggregate::rents::ByBedrooms;
use crate::histogram::{DayHistogram, LogHistogram};
use crate::values::ValueCounts;
use realty_model::varint::DecodeError;

/// The aggregate's values (and its on-market days), encoded, for storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedValues {
    /// Prices of active sale listings; `None` when stored as `price_by_bedrooms` and
    /// `price_without_beds` together (the same values: stored whole they would be a
    /// market's largest part twice).
    pub price: Option<Vec<u8>>,
    /// Prices of active sale listings with no bedroom count, when `price` is `None`.
    pub price_without_beds: Vec<u8>,
    pub price_per_sqft: Vec<u8>,
    pub living_area: Vec<u8>,
    pub listed_day_negated: Vec<u8>,
    pub gross_yield: Vec<u8>,
    /// Rents of active rentals; `None` when stored as `rent_by_bedrooms` and
    /// `rent_without_beds` together (as the prices; items before 2026-11-29 always hold it).
    pub rent: Option<Vec<u8>>,
    /// Rents of active rentals with no bedroom count, when `rent` is `None`.
    pub rent_without_beds: Vec<u8>,
    pub rent_per_sqft: Vec<u8>,
    pub rent_by_bedrooms: Vec<u8>,
    pub price_by_bedrooms: Vec<u8>,
}

/// Most bytes a market's values may take encoded exactly (before the item's compression):
/// past it they are stored bucketed, within 1 % and about 40 KB at most for any market.
/// DynamoDB's item limit is 400 KB; a city of 20,000 listings encodes its exact values into
/// about two thirds of this (docs/capacity.md, "Exact medians").
pub const MAX_EXACT_VALUE_BYTES: usize = 300 * 1024;

impl EncodedValues {
    /// The bytes of every part together.
    pub fn len(&self) -> usize {
        [
            self.price.as_deref(),
            Some(&self.price_without_beds),
            Some(&self.price_per_sqft),
            Some(&self.living_area),
            Some(&self.listed_day_negated),
            Some(&self.gross_yield),
            self.rent.as_deref(),
            Some(&self.rent_without_beds),
            Some(&self.rent_per_sqft),
            Some(&self.rent_by_bedrooms),
            Some(&self.price_by_bedrooms),
        ]
        .into_iter()
        .flatten()
        .map(<[u8]>::len)
        .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A decoder of one stored part.
type Decode<T> = fn(&[u8]) -> Result<T, DecodeError>;

/// What the encoded parts hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueLayout {
    /// Exact values ([`ValueCounts::encode`]): items written since 2026-11-29.
    Exact,
    /// Logarithmic histograms of 2 % buckets, gross yields as fractions: items written
    /// before, read as their buckets' midpoints ([`ValueCounts::from_log_histogram`]).
    LogHistograms,
}

/// `whole` stored apart from its groups only when the two have drifted apart (a group
/// holding a value the whole does not): `(None, the values without a group)` otherwise.
fn split_whole(whole: &ValueCounts, groups: &ByBedrooms) -> (Option<Vec<u8>>, Vec<u8>) {
    match groups
        .all()
        .ok()
        .and_then(|grouped| whole.without(&grouped))
    {
        Some(rest) => (None, rest.encode()),
        None => (Some(whole.encode()), Vec::new()),
    }
}

/// The whole of a split: `whole` if stored, else `rest` with every group's values.
fn join_whole(
    whole: Option<&[u8]>,
    rest: &[u8],
    groups: &ByBedrooms,
    decode: &impl Fn(&[u8]) -> Result<ValueCounts, DecodeError>,
) -> Result<ValueCounts, DecodeError> {
    if let Some(whole) = whole {
        return decode(whole);
    }
    let mut all = decode(rest)?;
    all.merge(&groups.all()?)?;
    Ok(all)
}

impl MarketAggregate {
    /// This aggregate with every set of values bucketed (its quantiles within 1 %): what a
    /// market too large to keep its values exactly stores ([`MAX_EXACT_VALUE_BYTES`]).
    pub fn bucketed(&self) -> Self {
        let by_bedrooms = |groups: &ByBedrooms| {
            ByBedrooms(groups.0.iter().map(|(g, v)| (*g, v.bucketed())).collect())
        };
        let mut out = self.clone();
        out.price = self.price.bucketed();
        out.price_per_sqft = self.price_per_sqft.bucketed();
        out.living_area = self.living_area.bucketed();
        out.gross_yield = self.gross_yield.bucketed();
        out.rents.rent = self.rents.rent.bucketed();
        out.rents.rent_per_sqft = self.rents.rent_per_sqft.bucketed();
        out.rents.rent_by_bedrooms = by_bedrooms(&self.rents.rent_by_bedrooms);
        out.rents.price_by_bedrooms = by_bedrooms(&self.rents.price_by_bedrooms);
        out
    }

    /// Whether any of its sets of values is bucketed: its medians are then within 1 %, not
    /// exact.
    pub fn is_bucketed(&self) -> bool {
        let groups = |g: &ByBedrooms| g.0.values().any(ValueCounts::is_bucketed);
        [
            &self.price,
            &self.price_per_sqft,
            &self.living_area,
            &self.gross_yield,
            &self.rents.rent,
            &self.rents.rent_per_sqft,
        ]
        .into_iter()
        .any(ValueCounts::is_bucketed)
            || groups(&self.rents.rent_by_bedrooms)
            || groups(&self.rents.price_by_bedrooms)
    }

    /// This aggregate as its live item holds it: itself, or bucketed when its values encoded
    /// exactly would take more than [`MAX_EXACT_VALUE_BYTES`].
    pub fn as_stored(&self) -> std::borrow::Cow<'_, Self> {
        if self.encode_values().len() > MAX_EXACT_VALUE_BYTES {
            std::borrow::Cow::Owned(self.bucketed())
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }

    /// The values of [`Self::as_stored`], encoded (encoding them once when they fit).
    pub fn encode_values_to_store(&self) -> EncodedValues {
        let exact = self.encode_values();
        if exact.len() > MAX_EXACT_VALUE_BYTES {
            self.bucketed().encode_values()
        } else {
            exact
        }
    }

    /// The values as they are (exact or bucketed): [`Self::as_stored`] decides which to store.
    pub fn encode_values(&self) -> EncodedValues {
        let (price, price_without_beds) = split_whole(&self.price, &self.rents.price_by_bedrooms);
        let (rent, rent_without_beds) = split_whole(&self.rents.rent, &self.rents.rent_by_bedrooms);
        EncodedValues {
            price,
            price_without_beds,
            price_per_sqft: self.price_per_sqft.encode(),
            living_area: self.living_area.encode(),
            listed_day_negated: self.listed_day_negated.encode(),
            gross_yield: self.gross_yield.encode(),
            rent,
            rent_without_beds,
            rent_per_sqft: self.rents.rent_per_sqft.encode(),
            rent_by_bedrooms: self.rents.rent_by_bedrooms.encode(),
            price_by_bedrooms: self.rents.price_by_bedrooms.encode(),
        }
    }

    pub fn set_values(
        &mut self,
        encoded: &EncodedValues,
        layout: ValueLayout,
    ) -> Result<(), DecodeError> {
        // Legacy yields were fractions; values are basis points.
        let (decode, decode_yields, decode_groups): (
            Decode<ValueCounts>,
            Decode<ValueCounts>,
            Decode<ByBedrooms>,
        ) = match layout {
            ValueLayout::Exact => (ValueCounts::decode, ValueCounts::decode, ByBedrooms::decode),
            ValueLayout::LogHistograms => (
                |b| LogHistogram::decode(b).map(|h| ValueCounts::from_log_histogram(&h, 1.0)),
                |b| LogHistogram::decode(b).map(|h| ValueCounts::from_log_histogram(&h, 1e4)),
                ByBedrooms::decode_legacy,
            ),
        };
        self.price_per_sqft = decode(&encoded.price_per_sqft)?;
        self.living_area = decode(&encoded.living_area)?;
        self.listed_day_negated = DayHistogram::decode(&encoded.listed_day_negated)?;
        self.gross_yield = decode_yields(&encoded.gross_yield)?;
        self.rents.rent_per_sqft = decode(&encoded.rent_per_sqft)?;
        self.rents.rent_by_bedrooms = decode_groups(&encoded.rent_by_bedrooms)?;
        self.rents.price_by_bedrooms = decode_groups(&encoded.price_by_bedrooms)?;
        self.price = join_whole(
            encoded.price.as_deref(),
            &encoded.price_without_beds,
            &self.rents.price_by_bedrooms,
            &decode,
        )?;
        self.rents.rent = join_whole(
            encoded.rent.as_deref(),
            &encoded.rent_without_beds,
            &self.rents.rent_by_bedrooms,
            &decode,
        )?;
        // Rentals are not kept as a count of their own: every rental has a rent.
        self.rents.rentals = self.rents.rent.count() as i64;
        Ok(())
    }
}
