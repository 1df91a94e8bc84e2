//! A market aggregate's histograms encoded for storage ([`EncodedHistograms`]), and read back.

use super::MarketAggregate;
use crate::metrics::histogram::{DayHistogram, HistogramDecodeError, LogHistogram};
use crate::metrics::rents::ByBedrooms;

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
