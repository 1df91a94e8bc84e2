//! The canonical listing model and the listing-event record that travels on Kinesis.
//!
//! Every source adapter (`crate::sources`) turns its API's records into [`Listing`]s; the
//! poller compares successive observations ([`diff`]) and emits [`ListingEvent`]s; the
//! metrics and alert functions [`ListingEvent::decode`] them. The wire format is described
//! field by field in `docs/events.md`.
//!
//! Plausibility rules (price floors, area ceilings...) and the size limit of every string and
//! array live here, once (`bounds`; market keys in `market`, changes in `changes`): the
//! adapters use them to reject or clean what the APIs send, [`ListingEvent::encode`] to keep
//! anything unreadable off the stream, and [`ListingEvent::decode`] to refuse records that no
//! adapter would have produced.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod bounds;
mod changes;
mod market;

pub use bounds::{
    MAX_ADDRESS_LINE_BYTES, MAX_CHANGED_FIELDS, MAX_CITY_BYTES, MAX_CLOCK_SKEW_SECONDS,
    MAX_ENCODED_EVENT_BYTES, MAX_EVENT_RECORD_BYTES, MAX_MARKET_KEY_BYTES,
    MAX_OBSERVATION_AGE_DAYS, MAX_POSTAL_CODE_BYTES, MAX_REASON_BYTES, MAX_SOURCE_URL_BYTES,
    MAX_STATE_BYTES, PriceBounds, QUOTED_VALUE_BYTES, bound_reason, format_minor, price_bounds,
    quote, time_window_violation,
};
use bounds::{
    check_amount, check_area, check_coordinates, check_currency, check_native_id,
    check_on_market_date, check_rooms, check_text, check_url,
};
pub use changes::{Change, ListingChanges, TrackedField, diff};
pub use market::MarketKey;

/// The event schema version this build writes and the only one it reads.
pub const CURRENT_SCHEMA_VERSION: u32 = 1;

/// Minor units in one major unit. Every currency the sources send (USD) has two decimals.
pub const CENTS_PER_DOLLAR: i64 = 100;

/// Lowest sale price (USD, minor units) taken as real. Below it a price is a placeholder
/// ("call for price" listings entered at $1, $100, $1,000...): such a listing is rejected,
/// because a fake price would skew medians and fire false "undervalued" alerts.
/// See `docs/sources.md`, "Placeholder prices".
pub const MIN_PLAUSIBLE_SALE_PRICE_USD_MINOR: i64 = 5_000 * CENTS_PER_DOLLAR;
/// Highest sale price (USD, minor units) taken as real: the dearest homes ever listed are a
/// few hundred million dollars.
pub const MAX_PLAUSIBLE_SALE_PRICE_USD_MINOR: i64 = 1_000_000_000 * CENTS_PER_DOLLAR;
/// Lowest monthly rent (USD, minor units) taken as real.
pub const MIN_PLAUSIBLE_MONTHLY_RENT_USD_MINOR: i64 = 100 * CENTS_PER_DOLLAR;
/// Highest monthly rent (USD, minor units) taken as real.
pub const MAX_PLAUSIBLE_MONTHLY_RENT_USD_MINOR: i64 = 1_000_000 * CENTS_PER_DOLLAR;
/// Ceiling for amounts in currencies without their own bounds: far above any real price yet
/// far below `i64::MAX`, so sums over a market cannot overflow.
pub const MAX_AMOUNT_MINOR_ANY_CURRENCY: i64 = 1_000_000_000_000_000;

/// Most bedrooms (and bathrooms) a listing may state; larger numbers are data-entry errors.
pub const MAX_ROOMS: u16 = 1_000;
/// Largest living area, in square feet, taken as real (a large apartment complex).
pub const MAX_LIVING_AREA_SQFT: u32 = 10_000_000;
/// Largest lot, in square feet, taken as real (about 230,000 acres, a very large ranch).
pub const MAX_LOT_SIZE_SQFT: u64 = 10_000_000_000;
/// Longest native id accepted.
pub const MAX_NATIVE_ID_LEN: usize = 128;

/// Square feet in one acre.
pub const SQFT_PER_ACRE: f64 = 43_560.0;
/// Square feet in one square metre.
pub const SQFT_PER_SQUARE_METRE: f64 = 10.763_910_416_709_722;

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
    /// Checks every rule of the canonical model. Adapters run it on what they build (after
    /// [`Listing::clear_implausible_optionals`]); [`ListingEvent::decode`] runs it on what it
    /// reads.
    pub fn validate(&self) -> Result<(), InvalidListing> {
        match self.id.source() {
            Some(source) if source == self.source => check_native_id(self.id.native_id())?,
            _ => {
                return Err(InvalidListing::new(
                    "id",
                    format!(
                        "{} does not start with the source prefix \"{}:\"",
                        quote(self.id.as_str()),
                        self.source
                    ),
                ));
            }
        }
        check_currency(&self.currency)?;
        check_amount("price_minor", self.price_minor, &self.currency, self.offer)?;
        if let Some(previous) = self.previous_price_minor {
            check_amount("previous_price_minor", previous, &self.currency, self.offer)?;
        }
        if let Some(rent) = self.rent_estimate_minor {
            check_amount("rent_estimate_minor", rent, &self.currency, Offer::Rent)?;
        }
        if let Some(beds) = self.beds {
            check_rooms("beds", f64::from(beds))?;
        }
        if let Some(baths) = self.baths {
            check_rooms("baths", f64::from(baths))?;
        }
        if let Some(area) = self.living_area_sqft {
            check_area(
                "living_area_sqft",
                u64::from(area),
                u64::from(MAX_LIVING_AREA_SQFT),
            )?;
        }
        if let Some(lot) = self.lot_size_sqft {
            check_area("lot_size_sqft", lot, MAX_LOT_SIZE_SQFT)?;
        }
        if let Some(line) = &self.address.line {
            check_text("address.line", line, MAX_ADDRESS_LINE_BYTES)?;
        }
        let market = MarketKey::for_address(&self.address)?;
        if market != self.market {
            let zip = |zip: &Option<String>| zip.as_deref().map_or("null".to_owned(), quote);
            return Err(InvalidListing::new(
                "market",
                format!(
                    "{}/{} does not match the address (expected {}/{})",
                    quote(&self.market.city_state),
                    zip(&self.market.zip),
                    quote(&market.city_state),
                    zip(&market.zip)
                ),
            ));
        }
        if let Some(point) = self.coordinates {
            check_coordinates(point)?;
        }
        if let Some(date) = self.on_market_date {
            check_on_market_date(date, self.observed_at)?;
        }
        if let Some(url) = &self.source_url {
            check_url(url)?;
        }
        Ok(())
    }

    /// Sets to `None` every optional field that breaks its rule, so one bad detail (a zero
    /// lot, a `priceChange` larger than the price, a street line over its size limit) costs
    /// that detail, not the listing.
    pub fn clear_implausible_optionals(&mut self) {
        let (currency, offer) = (self.currency.as_str(), self.offer);
        let keep_amount = |field, amount: Option<i64>, offer| {
            amount.filter(|&a| check_amount(field, a, currency, offer).is_ok())
        };
        self.previous_price_minor =
            keep_amount("previous_price_minor", self.previous_price_minor, offer);
        self.rent_estimate_minor =
            keep_amount("rent_estimate_minor", self.rent_estimate_minor, Offer::Rent);
        self.beds = self
            .beds
            .filter(|&b| check_rooms("beds", f64::from(b)).is_ok());
        self.baths = self
            .baths
            .filter(|&b| check_rooms("baths", f64::from(b)).is_ok());
        self.living_area_sqft = self.living_area_sqft.filter(|&a| {
            check_area(
                "living_area_sqft",
                u64::from(a),
                u64::from(MAX_LIVING_AREA_SQFT),
            )
            .is_ok()
        });
        self.lot_size_sqft = self
            .lot_size_sqft
            .filter(|&a| check_area("lot_size_sqft", a, MAX_LOT_SIZE_SQFT).is_ok());
        self.coordinates = self.coordinates.filter(|&p| check_coordinates(p).is_ok());
        let observed_at = self.observed_at;
        self.on_market_date = self
            .on_market_date
            .filter(|&d| check_on_market_date(d, observed_at).is_ok());
        self.source_url = self.source_url.take().filter(|u| check_url(u).is_ok());
        self.address.line = self
            .address
            .line
            .take()
            .filter(|l| check_text("address.line", l, MAX_ADDRESS_LINE_BYTES).is_ok());
    }

    /// Whole days from the on-market date to `as_of` (0 for a coming-soon listing whose date
    /// is still ahead). Counted from `on_market_date` rather than any days-on-market figure a
    /// source syncs, which goes stale (RESO `DaysOnMarket` changes without a new
    /// `ModificationTimestamp`).
    pub fn days_on_market(&self, as_of: NaiveDate) -> Option<i64> {
        self.on_market_date
            .map(|listed| (as_of - listed).num_days().max(0))
    }
}

/// What happened to a listing. Serialized inside [`ListingEvent`] as a `kind` field
/// (`"new"`, `"changed"`, `"delisted"`) next to the event's other fields, plus `changes` for
/// `changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// First observation of the listing.
    New,
    /// A tracked field differs from the last observation.
    Changed { changes: ListingChanges },
    /// The listing no longer appears at its source; `listing` is its last observed state.
    Delisted,
}

/// One record of the listing-events stream (Kinesis), partitioned by listing id.
/// Wire format: `docs/events.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireEvent")]
pub struct ListingEvent {
    pub schema_version: u32,
    #[serde(flatten)]
    pub kind: EventKind,
    pub listing: Listing,
    /// When the change was seen: the listing's `observed_at` for `new` and `changed`, the
    /// poll that missed the listing for `delisted`.
    pub observed_at: DateTime<Utc>,
    /// The poll run that produced the event (idempotency and tracing).
    pub poll_id: String,
}

/// [`ListingEvent`] as it is read: `kind` and `changes` as plain fields. Deserializing the
/// event through this instead of a flattened enum lets serde read the bytes in one pass
/// (a flattened field makes it buffer every field of the event first).
#[derive(Deserialize)]
struct WireEvent {
    schema_version: u32,
    kind: WireKind,
    #[serde(default)]
    changes: Option<ListingChanges>,
    listing: Listing,
    observed_at: DateTime<Utc>,
    poll_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireKind {
    New,
    Changed,
    Delisted,
}

impl TryFrom<WireEvent> for ListingEvent {
    type Error = String;

    fn try_from(wire: WireEvent) -> Result<Self, String> {
        let kind = match (wire.kind, wire.changes) {
            (WireKind::New, _) => EventKind::New,
            (WireKind::Delisted, _) => EventKind::Delisted,
            (WireKind::Changed, Some(changes)) => EventKind::Changed { changes },
            (WireKind::Changed, None) => return Err("missing field `changes`".to_owned()),
        };
        Ok(Self {
            schema_version: wire.schema_version,
            kind,
            listing: wire.listing,
            observed_at: wire.observed_at,
            poll_id: wire.poll_id,
        })
    }
}

/// Why a record of the stream is not a usable listing event. The metrics function routes
/// such records to the error sink with [`EventDecodeError::kind`] and the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventDecodeError {
    #[error("not a listing event: {0}")]
    Malformed(String),
    #[error("not a listing event: no schema_version")]
    MissingSchemaVersion,
    #[error(
        "unsupported schema_version {found}: this build reads version {CURRENT_SCHEMA_VERSION}"
    )]
    UnsupportedSchemaVersion { found: String },
    #[error("invalid listing in event: {0}")]
    InvalidListing(#[from] InvalidListing),
    #[error("inconsistent event: {0}")]
    Inconsistent(String),
    #[error("event of {bytes} bytes, over the {limit}-byte limit")]
    TooLarge { bytes: usize, limit: usize },
    /// Observed in the future of its reference time, or too long before it
    /// ([`ListingEvent::check_observed_at`]).
    #[error("observation time out of its window: {0}")]
    ObservedOutOfWindow(String),
}

impl EventDecodeError {
    /// A short stable label for metrics and the error sink.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::MissingSchemaVersion => "missing_schema_version",
            Self::UnsupportedSchemaVersion { .. } => "unsupported_schema_version",
            Self::InvalidListing(_) => "invalid_listing",
            Self::Inconsistent(_) => "inconsistent",
            Self::TooLarge { .. } => "too_large",
            Self::ObservedOutOfWindow(_) => "observed_at_out_of_window",
        }
    }
}

/// Longest `poll_id` accepted.
pub const MAX_POLL_ID_LEN: usize = 200;

impl ListingEvent {
    /// A `new` event: first sight of `listing`.
    pub fn new_listing(listing: Listing, poll_id: impl Into<String>) -> Self {
        Self {
            schema_version: CURRENT_SCHEMA_VERSION,
            kind: EventKind::New,
            observed_at: listing.observed_at,
            listing,
            poll_id: poll_id.into(),
        }
    }

    /// A `changed` event from the last stored observation to the current one, or `None`
    /// when no tracked field changed.
    pub fn changed(
        previous: &Listing,
        current: Listing,
        poll_id: impl Into<String>,
    ) -> Option<Self> {
        let changes = diff(previous, &current);
        if changes.is_empty() {
            return None;
        }
        Some(Self {
            schema_version: CURRENT_SCHEMA_VERSION,
            kind: EventKind::Changed { changes },
            observed_at: current.observed_at,
            listing: current,
            poll_id: poll_id.into(),
        })
    }

    /// A `delisted` event: `last_seen` vanished from its source in the poll at `observed_at`.
    pub fn delisted(
        last_seen: Listing,
        observed_at: DateTime<Utc>,
        poll_id: impl Into<String>,
    ) -> Self {
        Self {
            schema_version: CURRENT_SCHEMA_VERSION,
            kind: EventKind::Delisted,
            listing: last_seen,
            observed_at,
            poll_id: poll_id.into(),
        }
    }

    /// The Kinesis partition key: the listing id, so one listing's events stay in order.
    pub fn partition_key(&self) -> &str {
        self.listing.id.as_str()
    }

    /// Checks what [`ListingEvent::decode`] checks after parsing.
    pub fn validate(&self) -> Result<(), EventDecodeError> {
        if self.schema_version != CURRENT_SCHEMA_VERSION {
            return Err(EventDecodeError::UnsupportedSchemaVersion {
                found: self.schema_version.to_string(),
            });
        }
        if self.poll_id.trim().is_empty() {
            return Err(EventDecodeError::Inconsistent("empty poll_id".into()));
        }
        if let Err(e) = check_text("poll_id", &self.poll_id, MAX_POLL_ID_LEN) {
            return Err(EventDecodeError::Inconsistent(e.to_string()));
        }
        self.listing.validate()?;
        if let EventKind::Changed { changes } = &self.kind {
            if changes.is_empty() {
                return Err(EventDecodeError::Inconsistent(
                    "a changed event with no changes".into(),
                ));
            }
            if changes.fields.len() > MAX_CHANGED_FIELDS {
                return Err(EventDecodeError::Inconsistent(format!(
                    "changes.fields has {} names, over the limit of {MAX_CHANGED_FIELDS}",
                    changes.fields.len()
                )));
            }
            if let Some(price) = changes.price {
                if price.new != self.listing.price_minor {
                    return Err(EventDecodeError::Inconsistent(format!(
                        "changes.price.new {} differs from listing.price_minor {}",
                        price.new, self.listing.price_minor
                    )));
                }
                if price.old == price.new {
                    return Err(EventDecodeError::Inconsistent(
                        "changes.price has equal old and new".into(),
                    ));
                }
                if price.old <= 0 {
                    return Err(EventDecodeError::Inconsistent(format!(
                        "changes.price.old must be positive, got {}",
                        price.old
                    )));
                }
            }
            if let Some(status) = changes.status {
                if status.new != self.listing.status {
                    return Err(EventDecodeError::Inconsistent(format!(
                        "changes.status.new {:?} differs from listing.status {:?}",
                        status.new, self.listing.status
                    )));
                }
                if status.old == status.new {
                    return Err(EventDecodeError::Inconsistent(
                        "changes.status has equal old and new".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the event's times can be trusted against `reference`: the Kinesis arrival
    /// time of its record (fixed per record, so a replay decides the same), or the clock of
    /// the poll that makes it. The event's `observed_at`, and its listing's, may be at most
    /// [`MAX_CLOCK_SKEW_SECONDS`] after it; the event's at most
    /// [`MAX_OBSERVATION_AGE_DAYS`] before it (a `delisted` event's listing is its last
    /// sighting, which may be older).
    pub fn check_observed_at(&self, reference: DateTime<Utc>) -> Result<(), EventDecodeError> {
        let listing_violation =
            time_window_violation("listing.observed_at", self.listing.observed_at, reference)
                .filter(|_| {
                    self.kind != EventKind::Delisted || self.listing.observed_at > self.observed_at
                });
        match time_window_violation("observed_at", self.observed_at, reference)
            .or(listing_violation)
        {
            Some(reason) => Err(EventDecodeError::ObservedOutOfWindow(reason)),
            None => Ok(()),
        }
    }

    /// Serializes a valid event to JSON. Refuses an event that [`ListingEvent::decode`]
    /// would refuse, so nothing unreadable reaches the stream, and one over
    /// [`MAX_ENCODED_EVENT_BYTES`] (which a valid event never reaches: every field is
    /// bounded).
    pub fn encode(&self) -> Result<Vec<u8>, EventDecodeError> {
        self.validate()?;
        let bytes = serde_json::to_vec(self)
            .map_err(|e| EventDecodeError::Malformed(bound_reason(e.to_string())))?;
        if bytes.len() > MAX_ENCODED_EVENT_BYTES {
            return Err(EventDecodeError::TooLarge {
                bytes: bytes.len(),
                limit: MAX_ENCODED_EVENT_BYTES,
            });
        }
        Ok(bytes)
    }

    /// [`ListingEvent::decode`], then [`ListingEvent::check_observed_at`] against the time
    /// the record reached Kinesis (its `ApproximateArrivalTimestamp`).
    pub fn decode_arrived_at(
        bytes: &[u8],
        arrival: DateTime<Utc>,
    ) -> Result<Self, EventDecodeError> {
        let event = Self::decode(bytes)?;
        event.check_observed_at(arrival)?;
        Ok(event)
    }

    /// Parses and checks one stream record: the schema version first (so a record from a
    /// newer producer says so rather than failing on a field), then the shape, then the
    /// values ([`Listing::validate`], and `changes` agreeing with the listing).
    ///
    /// A current, well-formed event is read once, straight from the bytes into the typed
    /// event. Only a record that fails that is read again, by [`Self::why_unreadable`], to
    /// give the reason in that order and name the failing field's path.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventDecodeError> {
        if bytes.len() > MAX_EVENT_RECORD_BYTES {
            return Err(EventDecodeError::TooLarge {
                bytes: bytes.len(),
                limit: MAX_EVENT_RECORD_BYTES,
            });
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(EventDecodeError::Malformed(
                match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                    Err(e) => bound_reason(format!("not JSON: {e}")),
                    Ok(_) => "expected a JSON object".to_owned(),
                },
            ));
        }
        let mut reader = serde_json::Deserializer::from_slice(bytes);
        if let Ok(event) = Self::deserialize(&mut reader)
            && reader.end().is_ok()
            && event.schema_version == CURRENT_SCHEMA_VERSION
        {
            event.validate()?;
            return Ok(event);
        }
        Err(Self::why_unreadable(bytes))
    }

    /// Why `bytes` (a JSON object, by its first byte) is not a current event.
    fn why_unreadable(bytes: &[u8]) -> EventDecodeError {
        /// The schema version alone; serde skips the other fields without building them.
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            schema_version: Option<serde_json::Value>,
        }
        let probe: Probe = match serde_json::from_slice(bytes) {
            Ok(probe) => probe,
            Err(e) => return EventDecodeError::Malformed(bound_reason(format!("not JSON: {e}"))),
        };
        match probe.schema_version {
            None | Some(serde_json::Value::Null) => return EventDecodeError::MissingSchemaVersion,
            Some(version) if version.as_u64() != Some(u64::from(CURRENT_SCHEMA_VERSION)) => {
                let found = version.to_string();
                return EventDecodeError::UnsupportedSchemaVersion {
                    found: if found.len() <= QUOTED_VALUE_BYTES {
                        found
                    } else {
                        quote(&found)
                    },
                };
            }
            Some(_) => {}
        }
        // The error names the field's path (`listing.price_minor: invalid type...`).
        let mut reader = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, Self>(&mut reader) {
            // serde quotes a bad value whole (`unknown variant `<600 KB>``): bounded here.
            Err(e) => EventDecodeError::Malformed(bound_reason(e.to_string())),
            // Not reached: the first read failed, and this one reads the same way.
            Ok(_) => EventDecodeError::Malformed("not a readable event".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_minor_writes_two_decimals() {
        assert_eq!(format_minor(100_000), "1000.00");
        assert_eq!(format_minor(-5), "-0.05");
        assert_eq!(format_minor(i64::MIN), "-92233720368547758.08");
    }

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
