//! The canonical listing model and the listing-event record that travels on Kinesis.
//!
//! Every source (`crate::sources`) turns its API's records into [`Listing`]s; the
//! poller compares successive observations ([`diff`]) and emits [`ListingEvent`]s; the
//! metrics and alert functions [`ListingEvent::decode`] them. The wire format is described
//! field by field in `docs/events.md`.
//!
//! Plausibility rules (price floors, area ceilings...) and the size limit of every string and
//! array live here, once (`bounds`; whole-listing checks in `validate`, market keys in
//! `market`, changes in `changes`, the wire format in `event`): the sources use them to
//! reject or clean what the APIs send, [`ListingEvent::encode`] to keep anything unreadable
//! off the stream, and [`ListingEvent::decode`] to refuse records that no source would have
//! produced.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod bounds;
mod changes;
mod event;
mod market;
mod validate;

use bounds::check_native_id;
pub use bounds::{
    CENTS_PER_DOLLAR, MAX_ADDRESS_LINE_BYTES, MAX_AMOUNT_MINOR_ANY_CURRENCY, MAX_CHANGED_FIELDS,
    MAX_CITY_BYTES, MAX_CLOCK_SKEW_SECONDS, MAX_ENCODED_EVENT_BYTES, MAX_EVENT_RECORD_BYTES,
    MAX_LIVING_AREA_SQFT, MAX_LOT_SIZE_SQFT, MAX_MARKET_KEY_BYTES, MAX_NATIVE_ID_LEN,
    MAX_OBSERVATION_AGE_DAYS, MAX_PLAUSIBLE_MONTHLY_RENT_USD_MINOR,
    MAX_PLAUSIBLE_SALE_PRICE_USD_MINOR, MAX_POSTAL_CODE_BYTES, MAX_REASON_BYTES, MAX_ROOMS,
    MAX_SOURCE_URL_BYTES, MAX_STATE_BYTES, MIN_PLAUSIBLE_MONTHLY_RENT_USD_MINOR,
    MIN_PLAUSIBLE_SALE_PRICE_USD_MINOR, PriceBounds, QUOTED_VALUE_BYTES, SQFT_PER_ACRE,
    SQFT_PER_SQUARE_METRE, bound_reason, format_minor, price_bounds, quote, time_window_violation,
};
pub use changes::{Change, ListingChanges, TrackedField, diff};
pub use event::{
    EventDecodeError, EventKind, ListingEvent, MAX_PARTITION_KEY_CHARS, MAX_POLL_ID_LEN,
};
pub use market::MarketKey;

/// The event schema version this build writes and the only one it reads.
pub const CURRENT_SCHEMA_VERSION: u32 = 1;

/// The API a listing came from; its name prefixes the listing id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingSource {
    Zillow,
    Realtor,
    Reso,
}

impl ListingSource {
    pub const ALL: [ListingSource; 3] = [Self::Zillow, Self::Realtor, Self::Reso];

    /// The id prefix and serde name: `zillow`, `realtor`, `reso`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zillow => "zillow",
            Self::Realtor => "realtor",
            Self::Reso => "reso",
        }
    }
}

impl fmt::Display for ListingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source-namespaced listing id: `zillow:108712579`, `realtor:<property_id>`,
/// `reso:<ListingKey>`. Namespacing keeps ids from different APIs from colliding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ListingId(String);

impl ListingId {
    /// Builds `<source>:<native_id>`, refusing empty, over-long or whitespace-bearing ids.
    pub fn new(source: ListingSource, native_id: &str) -> Result<Self, InvalidListing> {
        check_native_id(native_id)?;
        Ok(Self(format!("{}:{native_id}", source.as_str())))
    }

    /// Reads `<source>:<native_id>`, as written in the JSON format and exports.
    pub fn parse(text: &str) -> Result<Self, InvalidListing> {
        let (prefix, native_id) = text.split_once(':').ok_or_else(|| {
            InvalidListing::new("id", format!("{} has no \"<source>:\" prefix", quote(text)))
        })?;
        let source = ListingSource::ALL
            .into_iter()
            .find(|s| s.as_str() == prefix)
            .ok_or_else(|| {
                InvalidListing::new("id", format!("unknown source prefix {}", quote(prefix)))
            })?;
        Self::new(source, native_id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The source named by the prefix, if it is a known one.
    pub fn source(&self) -> Option<ListingSource> {
        let (prefix, _) = self.0.split_once(':')?;
        ListingSource::ALL
            .into_iter()
            .find(|s| s.as_str() == prefix)
    }

    /// The id inside the source (after the prefix).
    pub fn native_id(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, native)| native)
    }
}

impl fmt::Display for ListingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a listing stands, one vocabulary across sources (mapping in `docs/sources.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingStatus {
    /// Announced, not yet open to offers or showings.
    ComingSoon,
    /// On the market, taking offers.
    Active,
    /// An offer is accepted but the listing still shows (contingent, active under contract).
    UnderContract,
    /// Sale pending: off the active market, not yet closed.
    Pending,
    /// Closed sale (or, for rentals, leased).
    Sold,
    /// Withdrawn, expired, canceled, on hold or removed.
    OffMarket,
}

/// Whether the price is a sale price or a monthly rent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Offer {
    Sale,
    /// `price_minor` is a monthly rent.
    Rent,
}

/// Kind of property, one vocabulary across sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    SingleFamily,
    Condo,
    Townhouse,
    MultiFamily,
    Land,
    Apartment,
    Manufactured,
    Other,
}

/// A street address, split into parts. Each part has a size limit (`bounds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street line with unit (`309 Church St APT 610`); absent when undisclosed. At most
    /// [`MAX_ADDRESS_LINE_BYTES`].
    pub line: Option<String>,
    /// At most [`MAX_CITY_BYTES`].
    pub city: String,
    /// State or province code as the source writes it (`TN`); at most [`MAX_STATE_BYTES`].
    pub state: String,
    /// At most [`MAX_POSTAL_CODE_BYTES`] of letters, digits, spaces and hyphens.
    pub postal_code: Option<String>,
}

/// A point on the map, WGS84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    pub lat: f64,
    pub lon: f64,
}

/// Decimal places kept in coordinates (1e-7 degree is about 1 cm).
pub const COORDINATE_DECIMALS: i32 = 7;

impl Coordinates {
    /// A point rounded to [`COORDINATE_DECIMALS`] places. Beyond them the digits are noise,
    /// and a number with few decimals reads back from JSON exactly (serde_json's exact fast
    /// path), so an event decodes to the very listing that was encoded.
    pub fn rounded(lat: f64, lon: f64) -> Self {
        let scale = 10f64.powi(COORDINATE_DECIMALS);
        Self {
            lat: (lat * scale).round() / scale,
            lon: (lon * scale).round() / scale,
        }
    }
}

/// One listing as the pipeline sees it, whatever API it came from.
///
/// Money is in minor units (cents for USD) so sums and comparisons are exact. Optional
/// fields are `None` when the source does not state them or states something implausible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    pub id: ListingId,
    pub source: ListingSource,
    pub status: ListingStatus,
    pub offer: Offer,
    /// Current asking price (sale) or monthly rent, in minor units of `currency`.
    pub price_minor: i64,
    /// ISO 4217 code, `USD` for every source so far.
    pub currency: String,
    /// Price before the last change, where the source states it (minor units).
    pub previous_price_minor: Option<i64>,
    pub property_type: PropertyType,
    pub beds: Option<u16>,
    /// Bathrooms, halves as `.5`.
    pub baths: Option<f32>,
    pub living_area_sqft: Option<u32>,
    pub lot_size_sqft: Option<u64>,
    pub address: Address,
    pub market: MarketKey,
    pub coordinates: Option<Coordinates>,
    /// Day the listing went on the market; days on market are counted from it.
    pub on_market_date: Option<NaiveDate>,
    /// The source's estimate of monthly rent (minor units), e.g. Zillow's rentZestimate.
    pub rent_estimate_minor: Option<i64>,
    /// Absolute URL of the listing page at the source.
    pub source_url: Option<String>,
    /// When the pipeline read this listing from the source.
    pub observed_at: DateTime<Utc>,
}

/// Why a listing (or one of its fields) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidListing {
    /// The offending field, named as in the JSON format (`price_minor`, `address.city`).
    pub field: &'static str,
    pub reason: String,
}

impl InvalidListing {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl Listing {
    /// Whole days from the on-market date to `as_of` (0 for a coming-soon listing whose date
    /// is still ahead). Counted from `on_market_date` rather than any days-on-market figure a
    /// source syncs, which goes stale (RESO `DaysOnMarket` changes without a new
    /// `ModificationTimestamp`).
    pub fn days_on_market(&self, as_of: NaiveDate) -> Option<i64> {
        self.on_market_date
            .map(|listed| (as_of - listed).num_days().max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_id_parts() {
        let id = ListingId::new(ListingSource::Reso, "ABC:123").expect("valid id");
        assert_eq!(id.as_str(), "reso:ABC:123");
        assert_eq!(id.source(), Some(ListingSource::Reso));
        assert_eq!(id.native_id(), "ABC:123");
        assert!(ListingId::new(ListingSource::Zillow, "").is_err());
        assert!(ListingId::new(ListingSource::Zillow, "12 34").is_err());
    }
}
