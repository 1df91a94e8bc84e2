//! One simulated house and its listing, as all three APIs see it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What kind of property a listing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    SingleFamily,
    Condo,
    Townhouse,
    MultiFamily,
    Land,
    Manufactured,
    /// A unit in an apartment building: only ever for rent.
    Apartment,
}

impl PropertyType {
    /// Every type for sale, in the order of [`crate::profiles::TypeMix`].
    pub const ALL: [PropertyType; 6] = [
        Self::SingleFamily,
        Self::Condo,
        Self::Townhouse,
        Self::MultiFamily,
        Self::Land,
        Self::Manufactured,
    ];

    /// Zillow `propertyType`.
    pub fn zillow(self) -> &'static str {
        match self {
            Self::SingleFamily => "SINGLE_FAMILY",
            Self::Condo => "CONDO",
            Self::Townhouse => "TOWNHOUSE",
            Self::MultiFamily => "MULTI_FAMILY",
            Self::Land => "LOT",
            Self::Manufactured => "MANUFACTURED",
            Self::Apartment => "APARTMENT",
        }
    }

    /// The Zillow `home_type` search value that selects this type.
    pub fn zillow_home_type(self) -> &'static str {
        match self {
            Self::SingleFamily => "Houses",
            Self::Condo => "Condos",
            Self::Townhouse => "Townhomes",
            Self::MultiFamily => "Multi-family",
            Self::Land => "LotsLand",
            Self::Manufactured => "Manufactured",
            Self::Apartment => "Apartments",
        }
    }

    /// Realtor.com `description.type`.
    pub fn realtor_type(self) -> &'static str {
        match self {
            Self::SingleFamily => "single_family",
            Self::Condo => "condos",
            Self::Townhouse => "townhomes",
            Self::MultiFamily => "multi_family",
            Self::Land => "land",
            Self::Manufactured => "mobile",
            Self::Apartment => "apartment",
        }
    }

    /// Realtor.com `description.sub_type`.
    pub fn realtor_sub_type(self) -> Option<&'static str> {
        match self {
            Self::Condo => Some("condo"),
            Self::Townhouse => Some("townhouse"),
            _ => None,
        }
    }

    /// RESO `PropertyType`.
    pub fn reso_property_type(self) -> &'static str {
        match self {
            Self::SingleFamily | Self::Condo | Self::Townhouse | Self::Manufactured => {
                "Residential"
            }
            Self::MultiFamily => "ResidentialIncome",
            Self::Land => "Land",
            Self::Apartment => "ResidentialLease",
        }
    }

    /// RESO `PropertySubType`.
    pub fn reso_property_sub_type(self) -> &'static str {
        match self {
            Self::SingleFamily => "Single Family Residence",
            Self::Condo => "Condominium",
            Self::Townhouse => "Townhouse",
            Self::MultiFamily => "Duplex",
            Self::Land => "Unimproved Land",
            Self::Manufactured => "Manufactured Home",
            Self::Apartment => "Apartment",
        }
    }
}

/// Where a listing is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingStatus {
    /// For sale, taking offers.
    Active,
    /// Under contract; either closes (sold) or falls back to active.
    Pending,
    /// Closed: off the market.
    Sold,
    /// Taken off the market unsold (withdrawn, expired or canceled).
    Withdrawn,
}

impl ListingStatus {
    /// Active or pending: still shown by for-sale searches.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::Pending)
    }

    /// RESO `StandardStatus`.
    pub fn reso(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Pending => "Pending",
            Self::Sold => "Closed",
            Self::Withdrawn => "Withdrawn",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Sold => "sold",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// The ids one house has in each API: the same house, source-specific ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceIds {
    /// Zillow `zpid`.
    pub zpid: String,
    /// Realtor.com `property_id`.
    pub realtor_property_id: String,
    /// Realtor.com `listing_id`.
    pub realtor_listing_id: String,
    /// RESO `ListingKey` (unique).
    pub reso_listing_key: String,
    /// RESO `ListingId` (the MLS number; unique only within its MLS).
    pub reso_listing_id: String,
}

/// A street address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `309`, or a range for some multi-family buildings (`601-603`).
    pub street_number: String,
    /// Street with its directions and suffix (`Church St`, `N Milwaukee Ave`).
    pub street: String,
    /// Unit label and number (`Apt`, `610`).
    pub unit: Option<(&'static str, String)>,
    pub city: &'static str,
    pub state: &'static str,
    pub zip: &'static str,
}

impl Address {
    /// The street line: `309 Church St Apt 610`.
    pub fn line(&self) -> String {
        match &self.unit {
            Some((label, number)) => {
                format!("{} {} {label} {number}", self.street_number, self.street)
            }
            None => format!("{} {}", self.street_number, self.street),
        }
    }
}

/// The last change of a listing's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceChange {
    pub old: u64,
    pub new: u64,
    pub at: DateTime<Utc>,
}

impl PriceChange {
    /// Signed size of the change, negative for a cut (Zillow `priceChange`).
    pub fn signed_amount(&self) -> i64 {
        i64::try_from(self.new).unwrap_or(i64::MAX) - i64::try_from(self.old).unwrap_or(i64::MAX)
    }
}

/// One simulated listing. Prices are whole US dollars.
#[derive(Debug, Clone, PartialEq)]
pub struct SimListing {
    pub ids: SourceIds,
    /// Numeric `zpid`, the tie-breaker of every sort order.
    pub zpid: u64,
    /// Key of the market (`nashville-tn`).
    pub market: String,
    pub property_type: PropertyType,
    pub address: Address,
    /// WGS84 degrees, six decimals.
    pub latitude: f64,
    pub longitude: f64,
    /// `None` for land.
    pub beds: Option<u8>,
    pub baths_full: u8,
    pub baths_half: u8,
    /// `None` for land.
    pub living_area_sqft: Option<u32>,
    /// Lot size in acres (four decimals); `None` when the listing does not state it.
    pub lot_acres: Option<f64>,
    pub year_built: Option<u16>,
    /// Current list price.
    pub list_price: u64,
    /// The price the listing went on the market at.
    pub original_list_price: u64,
    /// The last price change, if any (possibly before the simulation started).
    pub last_price_change: Option<PriceChange>,
    /// Estimated monthly rent (Zillow `rentZestimate`); the APIs leave it out for some
    /// listings, it is always known here.
    pub rent_estimate: Option<u32>,
    /// Estimated market value (Zillow `zestimate`).
    pub value_estimate: Option<u64>,
    pub status: ListingStatus,
    pub on_market_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
    /// Time of the listing's last event (RESO `ModificationTimestamp`).
    pub modified_at: DateTime<Utc>,
    pub pending_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_price: Option<u64>,
    /// A rental: `list_price` is the monthly rent; it is taken (withdrawn) or re-priced,
    /// never pending or sold.
    pub rental: bool,
    /// List price over fair value: overpriced listings get cut, underpriced ones sell.
    pub(crate) overpricing: f64,
    /// What the house is worth; the close price of a placeholder-priced listing.
    pub(crate) fair_value: u64,
    /// Bits that decide the listing's per-API quirks (which nulls, number-as-string).
    pub(crate) quirks: u64,
    /// An auction-style placeholder price ($1,000 or $10,000) that never changes.
    pub(crate) placeholder_price: bool,
    pub(crate) derived: Derived,
}

/// Strings of a listing that never change, built once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derived {
    /// `309 Church St Apt 610`.
    pub line: String,
    /// `309 Church St APT 610, Nashville, TN 37201` (or the undisclosed form for some lots).
    pub zillow_address: String,
    pub zillow_detail_url: String,
    /// Zillow `unit` (`Apt 610`), absent for most listings.
    pub zillow_unit: Option<String>,
    pub zillow_img_src: String,
    pub realtor_href: String,
    pub realtor_photo: String,
    /// RESO street parts.
    pub street_dir_prefix: Option<String>,
    pub street_name: String,
    pub street_suffix: Option<String>,
    pub street_dir_suffix: Option<String>,
}

/// Per-listing quirks: each is an 8-bit field of [`SimListing::quirks`] at these offsets,
/// read as a coin with a given probability by [`quirk_fraction`].
pub(crate) mod quirk {
    /// Zillow writes `daysOnZillow` as a string (`"138"`).
    pub const DAYS_AS_STRING: u32 = 0;
    /// Zillow `zestimate` is null.
    pub const NO_ZESTIMATE: u32 = 8;
    /// Zillow `rentZestimate` is null.
    pub const NO_RENT_ZESTIMATE: u32 = 16;
    /// Zillow `latitude`/`longitude` are null.
    pub const NO_COORDINATES: u32 = 24;
    /// Zillow has no `datePriceChanged` key.
    pub const NO_DATE_PRICE_CHANGED: u32 = 32;
    /// Realtor.com `estimate` is null.
    pub const NO_REALTOR_ESTIMATE: u32 = 40;
    /// Zillow shows a lot's address as undisclosed.
    pub const UNDISCLOSED_ADDRESS: u32 = 48;
    /// Realtor.com flags the listing, once under contract, `is_contingent`.
    pub const CONTINGENT: u32 = 56;
    /// The listing has a 3D tour (fields from 64 on come from a second, mixed word).
    pub const THREE_D_TOUR: u32 = 64;
    /// Realtor.com `photo_count`.
    pub const PHOTO_COUNT: u32 = 72;
}

/// Whether the 8-bit quirk field at `shift` falls below `fraction`: a coin with that
/// probability, fixed for the listing's life.
pub(crate) fn quirk_fraction(quirks: u64, shift: u32, fraction: f64) -> bool {
    (quirk_byte(quirks, shift) as f64) < fraction * 256.0
}

/// The 8-bit quirk field at `shift`.
pub(crate) fn quirk_byte(quirks: u64, shift: u32) -> u8 {
    let word = if shift >= 64 {
        crate::random::mix64(quirks)
    } else {
        quirks
    };
    ((word >> (shift % 64)) & 0xFF) as u8
}

impl SimListing {
    /// Total bathrooms as Zillow counts them: half baths as 0.5.
    pub fn bathrooms(&self) -> f64 {
        f64::from(self.baths_full) + 0.5 * f64::from(self.baths_half)
    }

    /// Whole days on market at `now` (0 before the on-market time).
    pub fn days_on_market(&self, now: DateTime<Utc>) -> i64 {
        (now - self.on_market_at).num_days().max(0)
    }

    /// The lot in square feet, if stated.
    pub fn lot_sqft(&self) -> Option<f64> {
        self.lot_acres.map(|acres| acres * 43_560.0)
    }

    /// The street line (`309 Church St Apt 610`).
    pub fn street_line(&self) -> &str {
        &self.derived.line
    }

    /// Zillow's one-line address (`309 Church St APT 610, Nashville, TN 37201`).
    pub fn zillow_address(&self) -> &str {
        &self.derived.zillow_address
    }
}
