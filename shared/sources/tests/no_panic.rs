//! Property tests: no input makes a source or the event decoder panic, every record of a
//! page ends up either a listing or a reject, and whatever the sources produce is a valid
//! listing that survives the event and export round trips.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use chrono::{DateTime, TimeZone as _, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use realty_model::listing::{Listing, ListingEvent};
use realty_model::markets::SourceKind;
use realty_sources::{Page, file, normalize_file};
use serde_json::Value;

const NASHVILLE: &[u8] =
    include_bytes!("fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json");
const SYRACUSE: &[u8] =
    include_bytes!("fixtures/zillow_propertyExtendedSearch_props_syracuse_ny.json");
const REALTOR: &[u8] = include_bytes!("fixtures/realtor_realty-in-us_properties_v3_list.json");
const RESO_PAGE_1: &[u8] = include_bytes!("fixtures/reso_property_page1.json");
const RESO_PAGE_2: &[u8] = include_bytes!("fixtures/reso_property_page2.json");
const EXPORT_CSV: &[u8] = include_bytes!("fixtures/listings_export.csv");

/// Field names the sources and the decoder look for, so random documents reach their
/// code paths instead of failing at the first lookup.
const KNOWN_KEYS: &[&str] = &[
    // Zillow
    "props",
    "zpid",
    "price",
    "priceChange",
    "address",
    "listingStatus",
    "listingSubType",
    "is_comingSoon",
    "is_pending",
    "contingentListingType",
    "daysOnZillow",
    "lotAreaValue",
    "lotAreaUnit",
    "livingArea",
    "bedrooms",
    "bathrooms",
    "latitude",
    "longitude",
    "currency",
    "detailUrl",
    "rentZestimate",
    "propertyType",
    "totalPages",
    "currentPage",
    "totalResultCount",
    "resultsPerPage",
    "streetAddress",
    "zipcode",
    "message",
    // RESO
    "value",
    "@odata.nextLink",
    "@odata.context",
    "ListingKey",
    "ListPrice",
    "PreviousListPrice",
    "StandardStatus",
    "PropertyType",
    "PropertySubType",
    "LivingArea",
    "LivingAreaUnits",
    "City",
    "StateOrProvince",
    "PostalCode",
    "UnparsedAddress",
    "StreetNumber",
    "StreetName",
    "UnitNumber",
    "OnMarketDate",
    "ModificationTimestamp",
    "LotSizeAcres",
    "LotSizeArea",
    "LotSizeUnits",
    "LotSizeSquareFeet",
    "BedroomsTotal",
    "BathroomsTotalInteger",
    "BathroomsFull",
    "BathroomsHalf",
    "Latitude",
    "Longitude",
    "error",
    // Realtor.com
    "data",
    "home_search",
    "results",
    "count",
    "total",
    "property_id",
    "list_price",
    "status",
    "flags",
    "is_contingent",
    "is_coming_soon",
    "description",
    "type",
    "sub_type",
    "beds",
    "baths",
    "baths_full",
    "baths_half",
    "sqft",
    "lot_sqft",
    "location",
    "line",
    "city",
    "state_code",
    "postal_code",
    "coordinate",
    "lat",
    "lon",
    "list_date",
    "href",
    "permalink",
    "price_reduced_amount",
    "errors",
    // Listing and event
    "id",
    "source",
    "offer",
    "price_minor",
    "previous_price_minor",
    "property_type",
    "living_area_sqft",
    "lot_size_sqft",
    "market",
    "city_state",
    "zip",
    "state",
    "coordinates",
    "on_market_date",
    "rent_estimate_minor",
    "source_url",
    "observed_at",
    "schema_version",
    "kind",
    "listing",
    "changes",
    "fields",
    "old",
    "new",
    "poll_id",
];

fn observed_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 11, 9, 30, 0)
        .single()
        .expect("a valid time")
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_@.]{0,12}",
    ]
}

/// Leaves biased towards what APIs send: numbers as strings, dates, addresses, enum names.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e7..1.0e7f64).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
        "-?[0-9$,]{0,14}(\\.[0-9]{0,4})?".prop_map(Value::from),
        "(19|20|99)[0-9]{2}-[0-1][0-9]-[0-3][0-9](T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
            .prop_map(Value::from),
        "[0-9A-Za-z #-]{0,16}, [A-Za-z .]{0,10}, [A-Za-z]{0,3} [0-9-]{0,10}".prop_map(Value::from),
        proptest::sample::select(&[
            "FOR_SALE", "FOR_RENT", "SOLD", "Active", "Active Under Contract", "Closed",
            "Incomplete", "for_sale", "ResidentialLease", "Square Meters", "acres", "sqft",
            "USD", "new", "changed", "delisted", "zillow:1", "reso:K", "realtor:9",
        ][..])
        .prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..10)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// One edit of a record: set or remove the value at a key, either a key of the record itself
/// (picked by position, descending into nested objects, so real fields are hit often) or any
/// key path.
#[derive(Debug, Clone)]
enum Edit {
    Existing(Vec<Index>, Option<Value>),
    Path(Vec<String>, Option<Value>),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    // Mostly leaves: a scalar where a scalar was expected is what finds edge cases.
    let new_value = || proptest::option::weighted(0.8, prop_oneof![3 => leaf(), 1 => json_value()]);
    proptest::collection::vec(
        prop_oneof![
            3 => (proptest::collection::vec(any::<Index>(), 1..4), new_value())
                .prop_map(|(steps, value)| Edit::Existing(steps, value)),
            1 => (proptest::collection::vec(key(), 1..3), new_value())
                .prop_map(|(path, value)| Edit::Path(path, value)),
        ],
        1..6,
    )
}

fn set_or_remove(object: &mut serde_json::Map<String, Value>, key: String, value: Option<&Value>) {
    match value {
        Some(value) => {
            object.insert(key, value.clone());
        }
        None => {
            object.remove(&key);
        }
    }
}

fn apply(record: &mut Value, edit: &Edit) {
    match edit {
        Edit::Existing(steps, value) => {
            let mut target = record;
            for (depth, step) in steps.iter().enumerate() {
                let Value::Object(object) = target else {
                    return;
                };
                if object.is_empty() {
                    return;
                }
                let key = object
                    .keys()
                    .nth(step.index(object.len()))
                    .cloned()
                    .unwrap_or_default();
                let last = depth + 1 == steps.len();
                if last || !object.get(&key).is_some_and(Value::is_object) {
                    set_or_remove(object, key, value.as_ref());
                    return;
                }
                match object.get_mut(&key) {
                    Some(child) => target = child,
                    None => return,
                }
            }
        }
        Edit::Path(path, value) => {
            let Some((last, parents)) = path.split_last() else {
                return;
            };
            let mut target = record;
            for parent in parents {
                match target.get_mut(parent.as_str()) {
                    Some(child) => target = child,
                    None => return,
                }
            }
            if let Value::Object(object) = target {
                set_or_remove(object, last.clone(), value.as_ref());
            }
        }
    }
}

/// The array of records inside a page document.
fn records_mut(source: SourceKind, document: &mut Value) -> Option<&mut Vec<Value>> {
    let records = match source {
        SourceKind::Zillow if document.is_array() => document,
        SourceKind::Zillow => document.get_mut("props")?,
        SourceKind::Reso => document.get_mut("value")?,
        SourceKind::Realtor => document.pointer_mut("/data/home_search/results")?,
        // Exports are lines, portal pages HTML: no JSON array to edit.
        SourceKind::File | SourceKind::Avito | SourceKind::Mubawab => return None,
    };
    records.as_array_mut()
}

fn fixture(source: SourceKind, which: usize) -> &'static [u8] {
    match (source, which % 2) {
        (SourceKind::Zillow, 0) => NASHVILLE,
        (SourceKind::Zillow, _) => SYRACUSE,
        (SourceKind::Reso, 0) => RESO_PAGE_1,
        (SourceKind::Reso, _) => RESO_PAGE_2,
        (SourceKind::Realtor, _) => REALTOR,
        (SourceKind::File, _) => EXPORT_CSV,
        (SourceKind::Avito | SourceKind::Mubawab, _) => {
            panic!("portal pages are HTML: tests/portals.rs mutates them")
        }
    }
}

fn api_source() -> impl Strategy<Value = SourceKind> {
    prop_oneof![
        Just(SourceKind::Zillow),
        Just(SourceKind::Reso),
        Just(SourceKind::Realtor),
    ]
}

/// What every page a source returns must satisfy.
fn check_page(page: &Page, records: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        page.record_count(),
        records,
        "every record is a listing or a reject"
    );
    for listing in &page.listings {
        prop_assert_eq!(listing.validate(), Ok(()));
        let event = ListingEvent::new_listing(listing.clone(), "poll");
        let bytes = event
            .encode()
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", listing.id)))?;
        prop_assert_eq!(ListingEvent::decode(&bytes), Ok(event));
    }
    for reject in &page.rejects {
        prop_assert!(!reject.reason.is_empty());
    }
    Ok(())
}

fn check_exports_round_trip(listings: &[Listing]) -> Result<(), TestCaseError> {
    let mut jsonl = Vec::new();
    file::write_json_lines(listings, &mut jsonl).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut csv = Vec::new();
    file::write_csv(listings, &mut csv).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for export in [jsonl, csv] {
        if listings.is_empty() && export.iter().all(u8::is_ascii_whitespace) {
            continue; // an empty JSON-lines file is not an export
        }
        let page = normalize_file(SourceKind::File, &export, observed_at())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&page.rejects, &vec![]);
        prop_assert_eq!(page.listings.as_slice(), listings);
    }
    Ok(())
}

/// Values that have broken parsers: empty and short strings, multi-byte characters at the
/// slicing points, numbers at the edges, wrong kinds.
fn awkward_values() -> Vec<Value> {
    serde_json::from_str(
        r#"[null, "", " ", "x", "é", "2024-02-3é", "９９", "-1", "0", "1e400", "NaN", "$,",
            "2024-13-45", "2024-02-15T25:61:00Z", "0000-00-00", "Square Meters", "acres",
            0, -1, 0.5, 99999999, 999999999999999, 1e300, -1e300, 18446744073709551615,
            -9223372036854775808,
            true, [], {}, [null], {"": null}]"#,
    )
    .expect("valid JSON")
}

/// Every key path (nested objects included) of a record.
fn key_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(object) = value {
        for (key, child) in object {
            prefix.push(key.clone());
            out.push(prefix.clone());
            key_paths(child, prefix, out);
            prefix.pop();
        }
    }
}

const RECORDS_PER_FIXTURE: usize = 8;

/// Each field of the first fixture records, set to each awkward value (and removed), alone in its
/// page: never a panic, always one listing or one reject, and a listing is always valid.
#[test]
fn every_field_of_every_fixture_record_survives_awkward_values() {
    let wrap = |source: SourceKind, record: Value| match source {
        SourceKind::Zillow => serde_json::json!({"props": [record]}),
        SourceKind::Reso => serde_json::json!({"value": [record]}),
        _ => serde_json::json!({"data": {"home_search": {"results": [record], "total": 1}}}),
    };
    let fixtures = [
        (SourceKind::Zillow, NASHVILLE),
        (SourceKind::Zillow, SYRACUSE),
        (SourceKind::Realtor, REALTOR),
        (SourceKind::Reso, RESO_PAGE_1),
        (SourceKind::Reso, RESO_PAGE_2),
    ];
    let values = awkward_values();
    let mut pages = 0;
    for (source, bytes) in fixtures {
        let mut document: Value = serde_json::from_slice(bytes).expect("fixture is JSON");
        let records = records_mut(source, &mut document).expect("records").clone();
        // Records of one page share their shape: a few per page reach every field.
        for record in records.into_iter().take(RECORDS_PER_FIXTURE) {
            let mut paths = Vec::new();
            key_paths(&record, &mut Vec::new(), &mut paths);
            for path in paths {
                let pointer: String = path.iter().map(|key| format!("/{key}")).collect();
                for value in values.iter().map(Some).chain([None]) {
                    let mut edited = record.clone();
                    match value {
                        Some(value) => {
                            if let Some(slot) = edited.pointer_mut(&pointer) {
                                *slot = value.clone();
                            }
                        }
                        None => apply(&mut edited, &Edit::Path(path.clone(), None)),
                    }
                    // Zillow refuses a page whose only record lost its zpid: that is a
                    // shape error, not a panic.
                    let page_bytes = serde_json::to_vec(&wrap(source, edited)).expect("json");
                    let Ok(page) = normalize_file(source, &page_bytes, observed_at()) else {
                        assert_eq!((source, pointer.as_str()), (SourceKind::Zillow, "/zpid"));
                        continue;
                    };
                    pages += 1;
                    assert_eq!(page.record_count(), 1, "{source} {pointer} = {value:?}");
                    for listing in &page.listings {
                        assert_eq!(listing.validate(), Ok(()), "{source} {pointer} = {value:?}");
                    }
                }
            }
        }
    }
    assert!(pages > 20_000, "only {pages} pages tried");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for source in SourceKind::ALL {
            let _ = normalize_file(source, &bytes, observed_at());
        }
        let _ = ListingEvent::decode(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        for source in SourceKind::ALL {
            let _ = normalize_file(source, text.as_bytes(), observed_at());
        }
        let _ = ListingEvent::decode(text.as_bytes());
    }

    #[test]
    fn arbitrary_json_never_panics(document in json_value()) {
        let bytes = serde_json::to_vec(&document).expect("serializable");
        for source in SourceKind::ALL {
            if let Ok(page) = normalize_file(source, &bytes, observed_at()) {
                for listing in &page.listings {
                    prop_assert_eq!(listing.validate(), Ok(()));
                }
            }
        }
        // The parsed-JSON entry points agree with the bytes entry points. (Compared on the
        // re-parsed document: serde_json may read a float back one ULP off.)
        let reparsed: Value = serde_json::from_slice(&bytes).expect("valid JSON");
        prop_assert_eq!(
            realty_sources::zillow::parse_value(&reparsed, observed_at()),
            realty_sources::zillow::parse_page(&bytes, observed_at())
        );
        prop_assert_eq!(
            realty_sources::reso::parse_value(&reparsed, observed_at()),
            realty_sources::reso::parse_page(&bytes, observed_at())
        );
        prop_assert_eq!(
            realty_sources::realtor::parse_value(&reparsed, observed_at()),
            realty_sources::realtor::parse_page(&bytes, observed_at())
        );
        let _ = ListingEvent::decode(&bytes);
    }

    #[test]
    fn arbitrary_json_in_the_right_envelope_never_panics(
        records in proptest::collection::vec(json_value(), 0..6),
        source in api_source(),
    ) {
        let records = Value::Array(records);
        let count = records.as_array().map_or(0, Vec::len);
        let document = match source {
            SourceKind::Zillow => serde_json::json!({"props": records, "totalPages": 1}),
            SourceKind::Reso => serde_json::json!({"value": records}),
            _ => serde_json::json!({"data": {"home_search": {"results": records, "total": count}}}),
        };
        let bytes = serde_json::to_vec(&document).expect("serializable");
        // Zillow refuses a props array where no record has a zpid; otherwise it is a page.
        if let Ok(page) = normalize_file(source, &bytes, observed_at()) {
            check_page(&page, count)?;
        } else {
            prop_assert_eq!(source, SourceKind::Zillow);
        }
    }

    #[test]
    fn mutated_real_pages_keep_every_record_and_valid_listings(
        source in api_source(),
        which in 0..2usize,
        target in any::<Index>(),
        edits in edits(),
    ) {
        let mut document: Value =
            serde_json::from_slice(fixture(source, which)).expect("fixture is JSON");
        let records = records_mut(source, &mut document).expect("fixture has records");
        let count = records.len();
        let record = &mut records[target.index(count)];
        for edit in &edits {
            apply(record, edit);
        }
        let bytes = serde_json::to_vec(&document).expect("serializable");
        let page = normalize_file(source, &bytes, observed_at())
            .map_err(|e| TestCaseError::fail(format!("a page with one edited record: {e}")))?;
        check_page(&page, count)?;
        // Only the edited record may have changed fate.
        let original = normalize_file(source, fixture(source, which), observed_at())
            .expect("fixture parses");
        prop_assert!(page.listings.len() + 1 >= original.listings.len());
        check_exports_round_trip(&page.listings)?;
    }

    #[test]
    fn mutated_exports_never_panic(
        position in any::<Index>(),
        insert in "\\PC{0,8}",
        cut in 0..8usize,
    ) {
        let text = String::from_utf8_lossy(EXPORT_CSV).into_owned();
        let mut at = position.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let end = (at + cut).min(text.len());
        let end = (end..=text.len()).find(|&e| text.is_char_boundary(e)).unwrap_or(text.len());
        let mutated = format!("{}{insert}{}", &text[..at], &text[end..]);
        if let Ok(page) = normalize_file(SourceKind::File, mutated.as_bytes(), observed_at()) {
            for listing in &page.listings {
                prop_assert_eq!(listing.validate(), Ok(()));
            }
        }
    }

    #[test]
    fn mutated_events_decode_or_explain(edits in edits()) {
        let listing = normalize_file(SourceKind::Zillow, NASHVILLE, observed_at())
            .expect("fixture parses")
            .listings
            .swap_remove(0);
        let mut before = listing.clone();
        before.price_minor += 100_000;
        let event = ListingEvent::changed(&before, listing, "poll").expect("a change");
        let mut document: Value =
            serde_json::from_slice(&event.encode().expect("valid")).expect("json");
        for edit in &edits {
            apply(&mut document, edit);
            if let Some(listing) = document.get_mut("listing") {
                apply(listing, edit);
            }
        }
        let bytes = serde_json::to_vec(&document).expect("serializable");
        match ListingEvent::decode(&bytes) {
            // What decodes re-encodes (it passed the same checks).
            Ok(decoded) => prop_assert!(decoded.encode().is_ok()),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }
}

/// Text fields of an event, by JSON pointer, with their byte limits.
const BOUNDED_TEXT: &[(&str, usize)] = &[
    (
        "/listing/address/line",
        realty_model::listing::MAX_ADDRESS_LINE_BYTES,
    ),
    (
        "/listing/address/city",
        realty_model::listing::MAX_CITY_BYTES,
    ),
    (
        "/listing/address/state",
        realty_model::listing::MAX_STATE_BYTES,
    ),
    (
        "/listing/address/postal_code",
        realty_model::listing::MAX_POSTAL_CODE_BYTES,
    ),
    (
        "/listing/source_url",
        realty_model::listing::MAX_SOURCE_URL_BYTES,
    ),
    ("/poll_id", realty_model::listing::MAX_POLL_ID_LEN),
];

/// Text around a limit: short and long, ASCII and not, repeated to reach the limit.
fn text_near(limit: usize) -> impl Strategy<Value = String> {
    ("\\PC{1,8}", 0..=limit + 8).prop_map(move |(unit, target)| {
        let mut text = String::new();
        while text.len() + unit.len() <= target {
            text.push_str(&unit);
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Market keys: never over their limit, one form (lower case, single `-` between
    /// parts, none at the ends), and the same for canonically equivalent spellings.
    #[test]
    fn market_keys_are_bounded_and_normalised(city in "\\PC{0,120}", state in "\\PC{0,24}") {
        use realty_model::listing::{
            Address, MAX_CITY_BYTES, MAX_MARKET_KEY_BYTES, MAX_REASON_BYTES, MAX_STATE_BYTES,
            MarketKey,
        };
        use unicode_normalization::UnicodeNormalization as _;
        let address = |city: String, state: String| Address {
            line: None,
            city,
            state,
            postal_code: None,
            country: realty_model::listing::CountryCode::US,
            neighbourhood: None,
        };
        let key = MarketKey::for_address(&address(city.clone(), state.clone()));
        match &key {
            Ok(key) => {
                let key = &key.city_state;
                prop_assert!(key.len() <= MAX_MARKET_KEY_BYTES);
                prop_assert!(!key.starts_with('-') && !key.ends_with('-') && !key.contains("--"));
                prop_assert!(!key.chars().any(|c| c.is_ascii_uppercase()));
            }
            Err(e) => prop_assert!(e.to_string().len() <= MAX_REASON_BYTES),
        }
        // (Sizes are bytes as written: compare spellings that are both within them.)
        let (city_nfd, state_nfd): (String, String) = (city.nfd().collect(), state.nfd().collect());
        if city_nfd.len() <= MAX_CITY_BYTES && state_nfd.len() <= MAX_STATE_BYTES {
            let decomposed = MarketKey::for_address(&address(city_nfd, state_nfd));
            prop_assert_eq!(key.map(|k| k.city_state), decomposed.map(|k| k.city_state));
        }
    }

    /// Every bounded text field, near and past its limit: a decoded event holds it within
    /// the limit, and a refusal says why in a short reason.
    #[test]
    fn bounded_text_fields_decode_within_limits_or_explain_briefly(
        field in proptest::sample::select(BOUNDED_TEXT),
        text in prop_oneof![text_near(16), text_near(300), text_near(2100)],
    ) {
        use realty_model::listing::{MAX_REASON_BYTES, MarketKey};
        let (pointer, limit) = field;
        let listing = normalize_file(SourceKind::Zillow, NASHVILLE, observed_at())
            .expect("fixture parses")
            .listings
            .swap_remove(0);
        let mut document: Value =
            serde_json::from_slice(&ListingEvent::new_listing(listing, "poll").encode().expect("valid"))
                .expect("json");
        *document.pointer_mut(pointer).expect("pointer") = Value::String(text.clone());
        if let Ok(address) = serde_json::from_value(document["listing"]["address"].clone())
            && let Ok(market) = MarketKey::for_address(&address)
        {
            document["listing"]["market"] = serde_json::to_value(market).expect("json");
        }
        let bytes = serde_json::to_vec(&document).expect("json");
        match ListingEvent::decode(&bytes) {
            Ok(_) => prop_assert!(text.len() <= limit, "{pointer}: {} bytes accepted", text.len()),
            Err(e) => {
                prop_assert!(e.to_string().len() <= MAX_REASON_BYTES + 128, "{e}");
                if text.len() > limit {
                    prop_assert!(e.to_string().contains(&pointer[1..].replace('/', ".").replace("listing.", "")), "{pointer}: {e}");
                }
            }
        }
    }
}
