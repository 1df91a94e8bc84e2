//! The canonical listing model and the listing-event record that travels on Kinesis.
//!
//! Every source (`realty_sources`) turns its API's records into [`Listing`]s; the
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
mod wire_time;

use bounds::check_native_id;
pub use bounds::{
    CENTS_PER_DOLLAR, MAX_ADDRESS_LINE_BYTES, MAX_AMOUNT_MINOR_ANY_CURRENCY, MAX_CHANGED_FIELDS,
    MAX_CITY_BYTES, MAX_CLOCK_SKEW_SECONDS, MAX_ENCODED_EVENT_BYTES, MAX_EQUIPMENT_BYTES,
    MAX_EQUIPMENT_ITEMS, MAX_EVENT_RECORD_BYTES, MAX_FLOOR, MAX_IMAGE_URL_BYTES, MAX_IMAGES,
    MAX_LIVING_AREA_SQFT, MAX_LOT_SIZE_SQFT, MAX_MARKET_KEY_BYTES, MAX_NATIVE_ID_LEN,
    MAX_OBSERVATION_AGE_DAYS, MAX_PLAUSIBLE_DAYS_ON_MARKET, MAX_PLAUSIBLE_MONTHLY_RENT_MAD_MINOR,
    MAX_PLAUSIBLE_MONTHLY_RENT_USD_MINOR, MAX_PLAUSIBLE_SALE_PRICE_MAD_MINOR,
    MAX_PLAUSIBLE_SALE_PRICE_USD_MINOR, MAX_POSTAL_CODE_BYTES, MAX_REASON_BYTES, MAX_ROOMS,
    MAX_SOURCE_URL_BYTES, MAX_STATE_BYTES, MIN_FLOOR, MIN_PLAUSIBLE_LIVING_AREA_SQFT,
    MIN_PLAUSIBLE_MONTHLY_RENT_MAD_MINOR, MIN_PLAUSIBLE_MONTHLY_RENT_USD_MINOR,
    MIN_PLAUSIBLE_SALE_PRICE_MAD_MINOR, MIN_PLAUSIBLE_SALE_PRICE_USD_MINOR,
    MIN_PLAUSIBLE_SQFT_PER_BEDROOM, PriceBounds, QUOTED_VALUE_BYTES, SQFT_PER_ACRE,
    SQFT_PER_SQUARE_METRE, bound_reason, format_minor, price_bounds, quote, sqft_from_sqm,
    time_window_violation,
};
pub use changes::{Change, ListingChanges, TrackedField, diff};
pub use event::{
    EventDecodeError, EventKind, ListingEvent, MAX_PARTITION_KEY_CHARS, MAX_POLL_ID_LEN,
    POLL_ID_TIME_FORMAT, REPLAY_POLL_ID_PREFIX,
};
pub use market::{AreaUnit, MarketKey, MarketUnits};

/// The event schema version this build writes. Version 2 added the country of an address,
/// its neighbourhood and the portal details ([`ListingDetails`]); all optional, so a version-1
/// event is a version-2 event without them (`docs/events.md`, "Schema versions").
pub const CURRENT_SCHEMA_VERSION: u32 = 2;

/// The schema versions this build reads: every version it or an earlier build wrote.
pub const READABLE_SCHEMA_VERSIONS: std::ops::RangeInclusive<u32> = 1..=CURRENT_SCHEMA_VERSION;

/// The API a listing came from; its name prefixes the listing id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingSource {
    Zillow,
    Realtor,
    Reso,
    /// Avito.ma, a property portal without an API (Morocco).
    Avito,
    /// Mubawab.ma, a property portal without an API (Morocco).
    Mubawab,
}

impl ListingSource {
    pub const ALL: [ListingSource; 5] = [
        Self::Zillow,
        Self::Realtor,
        Self::Reso,
        Self::Avito,
        Self::Mubawab,
    ];

    /// A property portal's listing (read from its HTML pages), not an API's.
    pub fn is_portal(self) -> bool {
        matches!(self, Self::Avito | Self::Mubawab)
    }

    /// Whether the source's record id names the home rather than one listing of it (Zillow's
    /// `zpid`, Realtor.com's `property_id`): a home for sale and for rent at once is one id
    /// in both reads. RESO's `ListingKey` and a portal's ad id name the listing.
    pub fn ids_name_the_home(self) -> bool {
        matches!(self, Self::Zillow | Self::Realtor)
    }

    /// The id prefix and serde name: `zillow`, `realtor`, `reso`, `avito`, `mubawab`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zillow => "zillow",
            Self::Realtor => "realtor",
            Self::Reso => "reso",
            Self::Avito => "avito",
            Self::Mubawab => "mubawab",
        }
    }
}

impl fmt::Display for ListingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source-namespaced listing id: `zillow:108712579`, `realtor:<property_id>`,
/// `reso:<ListingKey>`, and a rental of a source whose ids name the home
/// `zillow:rent:108712579`. Namespacing keeps ids from different APIs, and a home's sale
/// listing and rental, from colliding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ListingId(String);

impl ListingId {
    /// Builds `<source>:<native_id>`, refusing empty, over-long or whitespace-bearing ids.
    pub fn new(source: ListingSource, native_id: &str) -> Result<Self, InvalidListing> {
        check_native_id(native_id)?;
        Ok(Self(format!("{}:{native_id}", source.as_str())))
    }

    /// The id of a source's record offered as `offer`: `<source>:rent:<id>` for a rental of a
    /// source whose ids name the home ([`ListingSource::ids_name_the_home`]), so the home's
    /// sale listing and rental are two listings (one id, each read's events overwrote the
    /// other's state: a sale counted as a rental, a rental delisted by the sale's end);
    /// otherwise [`ListingId::new`].
    pub fn of_offer(
        source: ListingSource,
        native_id: &str,
        offer: Offer,
    ) -> Result<Self, InvalidListing> {
        if source.ids_name_the_home() && native_id.starts_with(RENTAL_ID_PREFIX) {
            // A record's own id written as a rental's would take that rental's place.
            return Err(InvalidListing::new(
                "id",
                format!("{} looks like a rental's id", quote(native_id)),
            ));
        }
        if offer == Offer::Rent && source.ids_name_the_home() {
            check_native_id(native_id)?;
            Self::new(source, &format!("{RENTAL_ID_PREFIX}{native_id}"))
        } else {
            Self::new(source, native_id)
        }
    }

    /// The id the source's record gives the home: the native id less a rental's `rent:`.
    pub fn home_id(&self) -> &str {
        let native = self.native_id();
        native.strip_prefix(RENTAL_ID_PREFIX).unwrap_or(native)
    }

    /// A rental's id before rentals had ids of their own (the home's, `zillow:<zpid>`), for
    /// a state kept then; `None` when it was the same.
    pub fn before_rentals_had_their_own(&self) -> Option<ListingId> {
        let source = self.source()?;
        let home = self.native_id().strip_prefix(RENTAL_ID_PREFIX)?;
        source
            .ids_name_the_home()
            .then(|| Self::new(source, home).ok())
            .flatten()
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

/// What a rental's native id starts with when the source's ids name the home.
pub const RENTAL_ID_PREFIX: &str = "rent:";

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

impl ListingStatus {
    pub const ALL: [Self; 6] = [
        Self::ComingSoon,
        Self::Active,
        Self::UnderContract,
        Self::Pending,
        Self::Sold,
        Self::OffMarket,
    ];

    /// The serde name: `coming_soon`, `active`, `under_contract`, `pending`, `sold`,
    /// `off_market`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ComingSoon => "coming_soon",
            Self::Active => "active",
            Self::UnderContract => "under_contract",
            Self::Pending => "pending",
            Self::Sold => "sold",
            Self::OffMarket => "off_market",
        }
    }

    /// Whether the listing has left the market for good or for now: sold (leased) or off
    /// the market. Every other status is still listed.
    pub const fn has_ended(self) -> bool {
        matches!(self, Self::Sold | Self::OffMarket)
    }

    /// Whether a price move in this status is one of the market's cuts or rises: on the
    /// market (active, under contract, pending), not announced (coming soon: in no inventory
    /// yet) nor ended.
    pub const fn moves_market_prices(self) -> bool {
        !self.has_ended() && !matches!(self, Self::ComingSoon)
    }
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

/// An ISO 3166-1 alpha-2 country code, upper case: `US`, `MA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    pub const US: Self = Self(*b"US");
    /// Morocco.
    pub const MA: Self = Self(*b"MA");

    /// Reads two ASCII letters, either case.
    pub fn parse(text: &str) -> Result<Self, InvalidListing> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(InvalidListing::new(
                "address.country",
                format!(
                    "{} is not an ISO 3166-1 alpha-2 code (two letters)",
                    quote(text)
                ),
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        // Two ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    pub fn is_us(&self) -> bool {
        *self == Self::US
    }

    /// The currency a market of this country counts in, where this build knows it: a
    /// market's figures are sums and medians of one currency, so a listing priced in
    /// another is refused rather than added in. `None` leaves the currency unchecked (the US
    /// included: schema version 1 never tied a currency to a market, and the events it wrote
    /// must keep reading).
    pub fn market_currency(&self) -> Option<&'static str> {
        match *self {
            Self::MA => Some("MAD"),
            _ => None,
        }
    }
}

/// `US`: every address of schema version 1 is in the United States.
impl Default for CountryCode {
    fn default() -> Self {
        Self::US
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(|e| serde::de::Error::custom(e.reason))
    }
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
    /// Part of the market of a US address; elsewhere it may be empty (portals name no region).
    pub state: String,
    /// At most [`MAX_POSTAL_CODE_BYTES`] of letters, digits, spaces and hyphens.
    pub postal_code: Option<String>,
    /// `US` when absent (schema version 1 had no country), and not written for `US`, so a US
    /// listing's JSON is what it was.
    #[serde(default, skip_serializing_if = "CountryCode::is_us")]
    pub country: CountryCode,
    /// The neighbourhood or district the source places the listing in (`Maarif`); at most
    /// [`MAX_CITY_BYTES`]. Not part of the market.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbourhood: Option<String>,
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
    #[serde(default, deserialize_with = "wire_time::option_date")]
    pub on_market_date: Option<NaiveDate>,
    /// The source's estimate of monthly rent (minor units), e.g. Zillow's rentZestimate.
    pub rent_estimate_minor: Option<i64>,
    /// Absolute URL of the listing page at the source.
    pub source_url: Option<String>,
    /// When the pipeline read this listing from the source.
    #[serde(deserialize_with = "wire_time::utc")]
    pub observed_at: DateTime<Utc>,
    /// What portals state beside the API fields (schema version 2); empty for API sources,
    /// and then not written.
    #[serde(default, skip_serializing_if = "ListingDetails::is_empty")]
    pub details: ListingDetails,
}

/// Who offers a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SellerType {
    /// An owner selling or letting directly ("particulier").
    Private,
    /// An agency, developer or shop ("professionnel", "agence").
    Professional,
}

/// The fields property portals state that the listing APIs do not. Each is bounded
/// (`bounds`); none is tracked for changes (a new photo is not a market event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListingDetails {
    /// Living area in whole square metres (rounded from what the source states), for
    /// sources that count in them; `living_area_sqft` then holds it converted (rounded), so
    /// the figures in square feet still work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub living_area_sqm: Option<u32>,
    /// Floor of an apartment: 0 the ground floor, negative below ground.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_type: Option<SellerType>,
    /// Equipment as the source labels it (`Ascenseur`, `Terrasse`), at most
    /// [`MAX_EQUIPMENT_ITEMS`] of at most [`MAX_EQUIPMENT_BYTES`] each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equipment: Vec<String>,
    /// Absolute http(s) URLs of the listing's photos (the portals' readers keep `https`
    /// ones), at most [`MAX_IMAGES`] of at most [`MAX_IMAGE_URL_BYTES`] each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

impl ListingDetails {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
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

/// The address on one line: `309 Church St, Nashville, TN 37201`; outside the US, where
/// portals give a neighbourhood and no street or state, `Guéliz, Marrakech`.
pub fn address_line(address: &Address) -> String {
    // Room for every part and separator: one allocation.
    let mut out = String::with_capacity(
        [
            address.line.as_deref(),
            address.neighbourhood.as_deref(),
            Some(address.city.as_str()),
            Some(address.state.as_str()),
            address.postal_code.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(|p| p.len() + 2)
        .sum(),
    );
    for part in [address.line.as_deref(), address.neighbourhood.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        out.push_str(part);
        out.push_str(", ");
    }
    out.push_str(&address.city);
    if !address.state.trim().is_empty() {
        out.push_str(", ");
        out.push_str(address.state.trim());
    }
    if let Some(postal) = address
        .postal_code
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        out.push(' ');
        out.push_str(postal.trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rental_of_a_home_keyed_source_has_an_id_of_its_own() {
        let id = |source, offer| ListingId::of_offer(source, "2661871835", offer).expect("id");
        let rental = id(ListingSource::Realtor, Offer::Rent);
        assert_eq!(rental.as_str(), "realtor:rent:2661871835");
        assert_ne!(rental, id(ListingSource::Realtor, Offer::Sale));
        assert_eq!(rental.home_id(), "2661871835");
        assert_eq!(
            rental.before_rentals_had_their_own(),
            Some(id(ListingSource::Realtor, Offer::Sale))
        );
        assert_eq!(
            id(ListingSource::Zillow, Offer::Rent).as_str(),
            "zillow:rent:2661871835"
        );
        // A RESO ListingKey names the lease itself.
        assert_eq!(
            id(ListingSource::Reso, Offer::Rent).as_str(),
            "reso:2661871835"
        );
        assert_eq!(
            id(ListingSource::Reso, Offer::Rent).before_rentals_had_their_own(),
            None
        );
        assert_eq!(
            id(ListingSource::Zillow, Offer::Sale).before_rentals_had_their_own(),
            None
        );
        assert!(ListingId::of_offer(ListingSource::Zillow, "", Offer::Rent).is_err());
        // A sale whose record's id is written as a rental's would share that rental's id.
        for offer in [Offer::Sale, Offer::Rent] {
            assert!(ListingId::of_offer(ListingSource::Zillow, "rent:9", offer).is_err());
            assert!(ListingId::of_offer(ListingSource::Realtor, "rent:9", offer).is_err());
        }
        assert!(ListingId::of_offer(ListingSource::Reso, "rent:9", Offer::Sale).is_ok());
        assert_eq!(
            ListingId::parse("zillow:rent:1").expect("parsed").home_id(),
            "1"
        );
    }

    /// A rental's `rent:` counts in the native id's bound: a home id of 123 bytes makes a
    /// rental id at the bound, one of 124 bytes is refused.
    #[test]
    fn a_rental_id_at_the_native_id_bound_and_just_past_it() {
        let home = |len: usize| "9".repeat(len);
        let at = MAX_NATIVE_ID_LEN - RENTAL_ID_PREFIX.len();
        let rental = ListingId::of_offer(ListingSource::Zillow, &home(at), Offer::Rent)
            .expect("at the bound");
        assert_eq!(rental.native_id().len(), MAX_NATIVE_ID_LEN);
        assert!(ListingId::of_offer(ListingSource::Zillow, &home(at + 1), Offer::Rent).is_err());
    }

    #[test]
    fn country_codes_are_two_letters() {
        assert_eq!(CountryCode::parse("ma"), Ok(CountryCode::MA));
        assert_eq!(CountryCode::parse("US"), Ok(CountryCode::US));
        for bad in ["", "M", "MAR", "M1", "é", "  "] {
            assert!(CountryCode::parse(bad).is_err(), "{bad:?}");
        }
        let read: Result<CountryCode, _> = serde_json::from_str("\"MAR\"");
        assert!(read.is_err());
        assert_eq!(
            serde_json::to_string(&CountryCode::MA).ok().as_deref(),
            Some("\"MA\"")
        );
    }

    #[test]
    fn a_status_name_is_its_serde_name() {
        for status in ListingStatus::ALL {
            let serde_name = serde_json::to_value(status).expect("a status serializes");
            assert_eq!(serde_name.as_str(), Some(status.as_str()));
        }
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
