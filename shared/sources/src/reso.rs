//! RESO Web API (OData) `Property` resource, as MLS feeds serve it.
//!
//! A page is `{"@odata.context", "value": [...], "@odata.nextLink"?}`; follow
//! `@odata.nextLink` until it is absent. Incremental sync asks for
//! `ModificationTimestamp ge <last max seen>` ordered by `ModificationTimestamp`
//! ([`ResoSync`]); the highest timestamp of a page is in [`ResoPaging`].
//! Field names follow the RESO Data Dictionary; lookup values are matched whatever their
//! spelling (`ActiveUnderContract` or `Active Under Contract`).
//!
//! Days on market come from `OnMarketDate`: the synced `DaysOnMarket` goes stale because it
//! changes without a new `ModificationTimestamp`, so it is not read.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;

use super::json::{self, AreaUnit};
use super::zillow::parse_one_line_address;
use super::{
    Page, Paging, RecordPosition, Reject, RequestError, SourceError, SourceKind, describe_document,
    parse_json,
};
use realty_model::listing::{
    Address, CountryCode, Listing, ListingDetails, ListingId, ListingSource, ListingStatus,
    MAX_CLOCK_SKEW_SECONDS, MarketKey, Offer, PropertyType, quote,
};

/// Largest `$top` feeds accept (MLS Grid caps it at 5000).
pub const MAX_TOP: u32 = 5_000;

/// What a page said about the next one, and how far the sync got.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResoPaging {
    /// `@odata.nextLink`: request it verbatim for the next page; `None` on the last page.
    pub next_link: Option<String>,
    /// Highest `ModificationTimestamp` among the page's records (rejected ones included, so
    /// a record that cannot be read is not fetched again forever), leaving out any later
    /// than the poll's clock plus [`MAX_CLOCK_SKEW_SECONDS`]: a record dated in the future
    /// would move the watermark past every change to come. After the **last** page
    /// of a run, the highest of these is the watermark for the next run's
    /// [`ResoSync::modified_since`].
    pub max_modification_timestamp: Option<DateTime<Utc>>,
    /// `@odata.count`: what the whole query matches, when `$count=true` asked for it.
    pub count: Option<u64>,
}

/// Reads one page from its bytes.
pub fn parse_page(bytes: &[u8], observed_at: DateTime<Utc>) -> Result<Page, SourceError> {
    parse_value(&parse_json(SourceKind::Reso, bytes)?, observed_at)
}

/// Reads one page already parsed as JSON.
pub fn parse_value(document: &Value, observed_at: DateTime<Utc>) -> Result<Page, SourceError> {
    let Some(records) = document.get("value").and_then(Value::as_array) else {
        return Err(SourceError::WrongShape {
            api: SourceKind::Reso,
            expected: "an OData object with a \"value\" array",
            found: describe_document(SourceKind::Reso, document),
        });
    };
    let next_link = match document.get("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) if !link.trim().is_empty() => Some(link.trim().to_owned()),
        Some(other) => {
            return Err(SourceError::WrongShape {
                api: SourceKind::Reso,
                expected: "\"@odata.nextLink\" to be a URL",
                found: json::describe(other),
            });
        }
    };

    let mut listings = Vec::with_capacity(records.len());
    let mut rejects = Vec::new();
    let mut max_modification_timestamp = None;
    let latest_trusted = observed_at + TimeDelta::seconds(MAX_CLOCK_SKEW_SECONDS);
    for (position, record) in records.iter().enumerate() {
        let modified = json::lenient_text(record, "ModificationTimestamp")
            .as_deref()
            .and_then(parse_timestamp)
            .filter(|&t| t <= latest_trusted);
        max_modification_timestamp = max_modification_timestamp.max(modified);
        match normalize_record(record, observed_at) {
            Ok(listing) => listings.push(listing),
            Err(reason) => rejects.push(Reject {
                source_id: json::lenient_text(record, "ListingKey")
                    .and_then(|key| ListingId::new(ListingSource::Reso, &key).ok())
                    .map(|id| id.to_string()),
                position: RecordPosition::Index(position),
                reason,
            }),
        }
    }
    Ok(Page {
        source: SourceKind::Reso,
        listings,
        rejects,
        paging: Paging::Reso(ResoPaging {
            next_link,
            max_modification_timestamp,
            count: document.get("@odata.count").and_then(Value::as_u64),
        }),
    })
}

/// An OData `DateTimeOffset` (`2024-03-01T12:00:00.000Z`, `...+02:00`); a value without an
/// offset is read as UTC.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

fn normalize_record(record: &Value, observed_at: DateTime<Utc>) -> Result<Listing, String> {
    if !record.is_object() {
        return Err(format!(
            "expected a Property object, found {}",
            json::describe(record)
        ));
    }
    let key = json::text(record, "ListingKey")?.ok_or("no ListingKey")?;
    let id = ListingId::new(ListingSource::Reso, &key).map_err(|e| e.to_string())?;
    let status = status(record)?;
    let offer = offer(record)?;

    let price = json::number(record, "ListPrice")?.ok_or("no ListPrice")?;
    let price_minor =
        json::to_minor(price).ok_or_else(|| format!("ListPrice {price} is out of range"))?;
    let previous_price_minor = json::lenient_number(record, "PreviousListPrice")
        .filter(|&previous| previous != price)
        .and_then(json::to_minor);

    let address = address(record)?;
    let market = MarketKey::for_address(&address).map_err(|e| e.to_string())?;

    // The Data Dictionary's default unit in US feeds is square feet.
    let living_area_sqft = json::lenient_number(record, "LivingArea").and_then(|area| {
        let unit = match json::lenient_text(record, "LivingAreaUnits") {
            None => AreaUnit::SquareFeet,
            Some(name) => AreaUnit::parse(&name)?,
        };
        json::whole_sqft(unit.to_sqft(area)).and_then(|sqft| u32::try_from(sqft).ok())
    });

    let mut listing = Listing {
        id,
        source: ListingSource::Reso,
        status,
        offer,
        price_minor,
        // The Data Dictionary has no currency field: US MLS prices are dollars.
        currency: "USD".to_owned(),
        previous_price_minor,
        property_type: property_type(record),
        beds: json::lenient_count(record, "BedroomsTotal").and_then(|n| u16::try_from(n).ok()),
        baths: baths(record),
        living_area_sqft,
        lot_size_sqft: lot_size_sqft(record),
        address,
        market,
        coordinates: json::coordinates(record, "Latitude", "Longitude"),
        on_market_date: json::lenient_text(record, "OnMarketDate")
            .as_deref()
            .and_then(json::leading_date),
        rent_estimate_minor: None,
        source_url: None,
        observed_at,
        details: ListingDetails::default(),
    };
    listing.clear_implausible_optionals();
    listing.validate().map_err(|e| e.to_string())?;
    Ok(listing)
}

fn status(record: &Value) -> Result<ListingStatus, String> {
    let raw = json::text(record, "StandardStatus")?.ok_or("no StandardStatus")?;
    match json::folded(&raw).as_str() {
        "active" => Ok(ListingStatus::Active),
        "comingsoon" => Ok(ListingStatus::ComingSoon),
        "activeundercontract" => Ok(ListingStatus::UnderContract),
        "pending" => Ok(ListingStatus::Pending),
        "closed" => Ok(ListingStatus::Sold),
        // `Delete` marks a record entered in error: for the pipeline it leaves the market.
        "canceled" | "cancelled" | "expired" | "withdrawn" | "hold" | "delete" => {
            Ok(ListingStatus::OffMarket)
        }
        "incomplete" => Err("StandardStatus Incomplete: a draft, not yet a listing".to_owned()),
        _ => Err(format!("unknown StandardStatus {}", quote(&raw))),
    }
}

/// The Data Dictionary's `PropertyType`s of no home: an MLS feed asked for a city returns
/// its offices, shops and businesses too, whose prices and rents are no home's. Asked
/// away in the market's `$filter` ([`market_filter`]), and refused should a feed send them.
pub const COMMERCIAL_PROPERTY_TYPES: [&str; 3] =
    ["CommercialSale", "CommercialLease", "BusinessOpportunity"];

/// Lease property types price a monthly rent; commercial ones are refused.
fn offer(record: &Value) -> Result<Offer, String> {
    let Some(raw) = json::lenient_text(record, "PropertyType") else {
        return Ok(Offer::Sale);
    };
    let kind = json::folded(&raw);
    if COMMERCIAL_PROPERTY_TYPES
        .iter()
        .any(|c| json::folded(c) == kind)
    {
        return Err(format!("PropertyType {}: not a home", quote(&raw)));
    }
    Ok(if kind.ends_with("lease") {
        Offer::Rent
    } else {
        Offer::Sale
    })
}

/// `PropertySubType` when it says enough, else `PropertyType`.
fn property_type(record: &Value) -> PropertyType {
    let sub_type = json::lenient_text(record, "PropertySubType").map(|t| json::folded(&t));
    let by_sub_type = match sub_type.as_deref() {
        Some("singlefamilyresidence" | "singlefamily" | "singlefamilydetached" | "cabin") => {
            Some(PropertyType::SingleFamily)
        }
        Some("condominium" | "condo" | "stockcooperative") => Some(PropertyType::Condo),
        Some("townhouse" | "townhome") => Some(PropertyType::Townhouse),
        Some("duplex" | "triplex" | "quadruplex" | "multifamily") => {
            Some(PropertyType::MultiFamily)
        }
        Some("apartment") => Some(PropertyType::Apartment),
        Some("manufacturedhome" | "manufacturedonland" | "mobilehome") => {
            Some(PropertyType::Manufactured)
        }
        Some("unimprovedland" | "land" | "farm" | "ranch") => Some(PropertyType::Land),
        _ => None,
    };
    by_sub_type.unwrap_or_else(|| {
        match json::lenient_text(record, "PropertyType")
            .map(|t| json::folded(&t))
            .as_deref()
        {
            Some("residentialincome") => PropertyType::MultiFamily,
            Some("land" | "farm") => PropertyType::Land,
            Some("manufacturedinpark") => PropertyType::Manufactured,
            _ => PropertyType::Other,
        }
    })
}

/// Full baths plus half of the half baths (as Zillow counts them: 2.5), else
/// `BathroomsTotalInteger`, which the Data Dictionary defines as the simple count (two full
/// and one half bath are 3): a feed sending both would flip between 3 and 2.5, a change.
fn baths(record: &Value) -> Option<f32> {
    let full = json::lenient_number(record, "BathroomsFull");
    let half = json::lenient_number(record, "BathroomsHalf");
    if full.is_some() || half.is_some() {
        return Some(json::tenths(
            full.unwrap_or(0.0) + 0.5 * half.unwrap_or(0.0),
        ));
    }
    json::lenient_number(record, "BathroomsTotalInteger").map(json::tenths)
}

/// `LotSizeSquareFeet`, else `LotSizeAcres`, else `LotSizeArea` in `LotSizeUnits`.
fn lot_size_sqft(record: &Value) -> Option<u64> {
    let sqft = json::lenient_number(record, "LotSizeSquareFeet")
        .or_else(|| {
            json::lenient_number(record, "LotSizeAcres").map(|acres| AreaUnit::Acres.to_sqft(acres))
        })
        .or_else(|| {
            let area = json::lenient_number(record, "LotSizeArea")?;
            let unit = AreaUnit::parse(&json::lenient_text(record, "LotSizeUnits")?)?;
            Some(unit.to_sqft(area))
        })?;
    json::whole_sqft(sqft)
}

/// City, state and ZIP from their fields; the street line from the street parts, else from
/// `UnparsedAddress` (whose first comma-separated part it is when the feed writes the whole
/// address there).
fn address(record: &Value) -> Result<Address, String> {
    let unparsed = json::lenient_text(record, "UnparsedAddress");
    let city = json::lenient_text(record, "City");
    let state = json::lenient_text(record, "StateOrProvince");
    let (Some(city), Some(state)) = (city, state) else {
        // Some feeds fill only UnparsedAddress with the whole one-line address.
        return match unparsed {
            Some(line) => parse_one_line_address(&line)
                .map_err(|reason| format!("no City/StateOrProvince, and {reason}")),
            None => Err("no City/StateOrProvince: the listing cannot be placed in a market".into()),
        };
    };
    let street_parts: Vec<String> = [
        "StreetNumber",
        "StreetDirPrefix",
        "StreetName",
        "StreetSuffix",
        "StreetDirSuffix",
    ]
    .iter()
    .filter_map(|key| json::lenient_text(record, key))
    .collect();
    let line = if street_parts.is_empty() {
        unparsed.and_then(|text| text.split(',').next().map(|s| s.trim().to_owned()))
    } else {
        let mut line = street_parts.join(" ");
        if let Some(unit) = json::lenient_text(record, "UnitNumber") {
            line.push_str(&format!(" #{unit}"));
        }
        Some(line)
    };
    Ok(Address {
        line: line.filter(|l| !l.is_empty()),
        city,
        state,
        postal_code: json::lenient_text(record, "PostalCode"),
        country: CountryCode::US,
        neighbourhood: None,
    })
}

/// One sync of the `Property` resource: the first request's parameters. Later pages come
/// from `@odata.nextLink`, requested verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResoSync {
    /// The watermark: only records modified at or after it (`ge`, not `gt`: a record
    /// committed late with the watermark's own timestamp is still read; the ones read
    /// before come again, and change detection finds nothing new in them). `None` for a
    /// full sync.
    pub modified_since: Option<DateTime<Utc>>,
    /// Page size, 1..=[`MAX_TOP`].
    pub top: u32,
    /// The market's own condition ANDed to the timestamp filter ([`market_filter`]:
    /// `City eq 'Nashville' and StateOrProvince eq 'TN'`, and the market's raw filter).
    pub extra_filter: Option<String>,
    /// Ask for `@odata.count` (`$count=true`): a full read checks it got every record.
    pub count: bool,
}

impl ResoSync {
    /// `$filter`, `$orderby` and `$top` for the first page, unencoded (the HTTP client
    /// encodes them). Ordering by `ModificationTimestamp` makes the last page's highest
    /// timestamp the run's highest.
    pub fn query_params(&self) -> Result<Vec<(&'static str, String)>, RequestError> {
        if !(1..=MAX_TOP).contains(&self.top) {
            return Err(RequestError {
                api: SourceKind::Reso,
                reason: format!("$top {} is outside 1..={MAX_TOP}", self.top),
            });
        }
        let extra = self
            .extra_filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty());
        let filter = match (self.modified_since.map(modification_filter), extra) {
            (Some(since), Some(extra)) => Some(format!("{since} and ({extra})")),
            (Some(since), None) => Some(since),
            (None, Some(extra)) => Some(extra.to_owned()),
            (None, None) => None,
        };
        let mut params = Vec::with_capacity(4);
        if let Some(filter) = filter {
            params.push(("$filter", filter));
        }
        params.push(("$select", SELECT.join(",")));
        params.push(("$orderby", "ModificationTimestamp".to_owned()));
        params.push(("$top", self.top.to_string()));
        if self.count {
            params.push(("$count", "true".to_owned()));
        }
        Ok(params)
    }
}

/// `ModificationTimestamp ge 2024-03-01T12:00:00.123Z`: an OData `DateTimeOffset` literal
/// (unquoted) with the watermark's full precision, so no record at the boundary is skipped,
/// not even one committed after the previous read with the same timestamp.
pub fn modification_filter(since: DateTime<Utc>) -> String {
    format!(
        "ModificationTimestamp ge {}",
        since.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}

/// The fields [`parse_page`] reads: `$select` asks for these alone, so a page carries a
/// fraction of the 500-odd Data Dictionary fields (and no agent contact data).
pub const SELECT: [&str; 30] = [
    "ListingKey",
    "StandardStatus",
    "PropertyType",
    "PropertySubType",
    "ListPrice",
    "PreviousListPrice",
    "ModificationTimestamp",
    "OnMarketDate",
    "LivingArea",
    "LivingAreaUnits",
    "LotSizeSquareFeet",
    "LotSizeAcres",
    "LotSizeArea",
    "LotSizeUnits",
    "BedroomsTotal",
    "BathroomsTotalInteger",
    "BathroomsFull",
    "BathroomsHalf",
    "UnparsedAddress",
    "StreetNumber",
    "StreetDirPrefix",
    "StreetName",
    "StreetSuffix",
    "StreetDirSuffix",
    "UnitNumber",
    "City",
    "StateOrProvince",
    "PostalCode",
    "Latitude",
    "Longitude",
];

/// An OData string literal: single-quoted, a quote inside written twice (`'St. John''s'`).
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The market's condition: its city and state, its homes (no [`COMMERCIAL_PROPERTY_TYPES`]:
/// `ne`, so a record without a `PropertyType` is still read), ANDed with its raw filter
/// (MLS-specific fields, such as the `OriginatingSystemName` MLS Grid requires) when it has
/// one.
pub fn market_filter(city: &str, state: &str, raw: Option<&str>) -> String {
    let mut area = format!(
        "City eq {} and StateOrProvince eq {}",
        odata_string(city),
        odata_string(state)
    );
    for commercial in COMMERCIAL_PROPERTY_TYPES {
        area.push_str(" and PropertyType ne ");
        area.push_str(&odata_string(commercial));
    }
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        Some(raw) => format!("{area} and ({raw})"),
        None => area,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use realty_model::markets::{MAX_RAW_FILTER_BYTES, check_raw_filter};

    use super::*;

    #[test]
    fn incremental_sync_filters_and_orders_by_modification_timestamp() {
        let watermark = Utc
            .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
            .single()
            .expect("valid time");
        let sync = ResoSync {
            modified_since: Some(watermark),
            top: 1000,
            extra_filter: Some("StandardStatus eq 'Active'".into()),
            count: false,
        };
        assert_eq!(
            sync.query_params().expect("valid"),
            vec![
                (
                    "$filter",
                    "ModificationTimestamp ge 2024-03-01T12:00:00Z and (StandardStatus eq 'Active')"
                        .to_owned()
                ),
                ("$select", SELECT.join(",")),
                ("$orderby", "ModificationTimestamp".to_owned()),
                ("$top", "1000".to_owned()),
            ]
        );
        let full = ResoSync {
            modified_since: None,
            top: 5000,
            extra_filter: None,
            count: true,
        };
        assert_eq!(
            full.query_params().expect("valid"),
            vec![
                ("$select", SELECT.join(",")),
                ("$orderby", "ModificationTimestamp".to_owned()),
                ("$top", "5000".to_owned()),
                ("$count", "true".to_owned()),
            ]
        );
        assert!(
            ResoSync {
                top: 5001,
                ..full.clone()
            }
            .query_params()
            .is_err()
        );
        assert!(ResoSync { top: 0, ..full }.query_params().is_err());
    }

    #[test]
    fn market_filters_quote_values_and_keep_raw_filters_whole() {
        const HOMES: &str = " and PropertyType ne 'CommercialSale' and PropertyType ne 'CommercialLease' and PropertyType ne 'BusinessOpportunity'";
        assert_eq!(odata_string("St. John's"), "'St. John''s'");
        assert_eq!(odata_string("''"), "''''''");
        assert_eq!(
            market_filter("Coeur d'Alene", "ID", None),
            format!("City eq 'Coeur d''Alene' and StateOrProvince eq 'ID'{HOMES}")
        );
        assert_eq!(
            market_filter("Austin", "TX", Some(" OriginatingSystemName eq 'actris' ")),
            format!(
                "City eq 'Austin' and StateOrProvince eq 'TX'{HOMES} and (OriginatingSystemName eq 'actris')"
            )
        );
        assert_eq!(
            market_filter("Austin", "TX", Some(" ")),
            format!("City eq 'Austin' and StateOrProvince eq 'TX'{HOMES}")
        );
        for good in [
            "OriginatingSystemName eq 'actris'",
            "PostalCode eq '78701' or PostalCode eq '78702'",
            "(City eq 'O''Fallon')",
        ] {
            assert_eq!(check_raw_filter(good), Ok(()), "{good}");
        }
        let longest = format!("City eq '{}'", "a".repeat(MAX_RAW_FILTER_BYTES - 10));
        assert_eq!(longest.len(), MAX_RAW_FILTER_BYTES);
        assert_eq!(check_raw_filter(&longest), Ok(()));
        for bad in [
            "".to_owned(),
            format!("{longest}a"),
            "City eq 'Austin".into(),
            "City eq 'O'Fallon'".into(),
            "(City eq 'Austin'".into(),
            "City eq 'Austin') or (true".into(),
            "City eq 'Austin'\n".into(),
        ] {
            assert!(check_raw_filter(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn watermark_keeps_sub_second_precision() {
        let watermark = Utc
            .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
            .single()
            .expect("valid time")
            + chrono::Duration::microseconds(123_456);
        assert_eq!(
            modification_filter(watermark),
            "ModificationTimestamp ge 2024-03-01T12:00:00.123456Z"
        );
    }

    #[test]
    fn a_modification_timestamp_past_the_clock_skew_does_not_move_the_watermark() {
        let observed_at = Utc
            .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
            .single()
            .expect("valid time");
        let skew = TimeDelta::seconds(MAX_CLOCK_SKEW_SECONDS);
        let newest_of = |modified: &[DateTime<Utc>]| {
            let records: Vec<Value> = modified
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "ListingKey": "k1",
                        "ModificationTimestamp": t.to_rfc3339(),
                    })
                })
                .collect();
            let page =
                parse_value(&serde_json::json!({ "value": records }), observed_at).expect("page");
            match page.paging {
                Paging::Reso(paging) => paging.max_modification_timestamp,
                other => panic!("{other:?}"),
            }
        };
        let earlier = observed_at - TimeDelta::hours(1);
        // Within the skew a clock running ahead is believed.
        assert_eq!(
            newest_of(&[earlier, observed_at + skew]),
            Some(observed_at + skew)
        );
        // One second past it (or 2099) is not: the watermark stays on the others.
        assert_eq!(
            newest_of(&[earlier, observed_at + skew + TimeDelta::seconds(1)]),
            Some(earlier)
        );
        let far = Utc
            .with_ymd_and_hms(2099, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time");
        assert_eq!(newest_of(&[far]), None);
    }

    #[test]
    fn timestamps_with_and_without_offsets() {
        let expected = Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).single();
        assert_eq!(parse_timestamp("2024-03-01T12:00:00+02:00"), expected);
        assert_eq!(parse_timestamp("2024-03-01T10:00:00.000Z"), expected);
        assert_eq!(parse_timestamp("2024-03-01T10:00:00"), expected);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    /// Two full baths and a half are 2.5 whether or not the total (3) is sent beside them;
    /// the total alone is taken as it is.
    #[test]
    fn baths_are_full_and_half_counted_as_zillow_counts_them() {
        let parts =
            serde_json::json!({"BathroomsTotalInteger": 3, "BathroomsFull": 2, "BathroomsHalf": 1});
        assert_eq!(baths(&parts), Some(2.5));
        let without_total = serde_json::json!({"BathroomsFull": 2, "BathroomsHalf": 1});
        assert_eq!(baths(&without_total), Some(2.5));
        assert_eq!(
            baths(&serde_json::json!({"BathroomsTotalInteger": 3})),
            Some(3.0)
        );
        assert_eq!(baths(&serde_json::json!({})), None);
    }
}
