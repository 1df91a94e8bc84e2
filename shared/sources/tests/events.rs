//! The listing-event record: diff, encode, decode, and the documented example.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use realty_model::listing::{
    Change, EventDecodeError, EventKind, Listing, ListingChanges, ListingEvent, ListingStatus,
    MAX_ADDRESS_LINE_BYTES, MAX_CHANGED_FIELDS, MAX_CITY_BYTES, MAX_CLOCK_SKEW_SECONDS,
    MAX_ENCODED_EVENT_BYTES, MAX_EVENT_RECORD_BYTES, MAX_NATIVE_ID_LEN, MAX_OBSERVATION_AGE_DAYS,
    MAX_PLAUSIBLE_DAYS_ON_MARKET, MAX_POLL_ID_LEN, MAX_POSTAL_CODE_BYTES, MAX_REASON_BYTES,
    MAX_SOURCE_URL_BYTES, MAX_STATE_BYTES, MIN_PLAUSIBLE_LIVING_AREA_SQFT,
    MIN_PLAUSIBLE_SQFT_PER_BEDROOM, MarketKey, TrackedField, diff,
};
use realty_model::listing::{
    MAX_EQUIPMENT_BYTES, MAX_EQUIPMENT_ITEMS, MAX_FLOOR, MAX_IMAGE_URL_BYTES, MAX_IMAGES, MIN_FLOOR,
};
use realty_model::markets::SourceKind;
use realty_sources::normalize_file;
use serde_json::{Value, json};

const NASHVILLE: &[u8] =
    include_bytes!("fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json");
const EVENTS_DOC: &str = include_str!("../../../docs/events.md");

fn observed_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 12, 15, 42, 15)
        .single()
        .expect("a valid time")
}

fn nashville_listing(zpid: &str) -> Listing {
    let page = normalize_file(SourceKind::Zillow, NASHVILLE, observed_at()).expect("fixture");
    page.listings
        .into_iter()
        .find(|l| l.id.native_id() == zpid)
        .expect("listing in fixture")
}

/// The first ```json block of docs/events.md.
fn documented_example() -> &'static str {
    let start = EVENTS_DOC
        .find("```json\n")
        .map(|i| i + "```json\n".len())
        .expect("docs/events.md has a json block");
    let len = EVENTS_DOC[start..]
        .find("```")
        .expect("the json block is closed");
    &EVENTS_DOC[start..start + len]
}

#[test]
fn the_documented_example_is_what_the_poller_would_emit() {
    let documented = ListingEvent::decode(documented_example().as_bytes())
        .unwrap_or_else(|e| panic!("docs/events.md example does not decode: {e}"));

    // The same event built from the real page: the listing before the cut, then now.
    let now = nashville_listing("108712579");
    let mut before = now.clone();
    before.price_minor = 42_500_000;
    before.previous_price_minor = None;
    before.observed_at = observed_at() - Duration::hours(1);
    let built = ListingEvent::changed(&before, now, "poll-2025-09-12T15:40:00Z-nashville-tn")
        .expect("the price changed");
    assert_eq!(documented, built);
    assert_eq!(documented.partition_key(), "nashville-tn");

    // Encoding gives the documented JSON (as a value: the doc is pretty-printed).
    let encoded: Value = serde_json::from_slice(&built.encode().expect("valid")).expect("json");
    let documented_json: Value = serde_json::from_str(documented_example()).expect("json");
    assert_eq!(encoded, documented_json);
}

#[test]
fn every_kind_round_trips() {
    let listing = nashville_listing("108760565");
    let later = observed_at() + Duration::days(1);
    let mut pending = listing.clone();
    pending.status = ListingStatus::Pending;
    pending.observed_at = later;
    let events = [
        ListingEvent::new_listing(listing.clone(), "poll-1"),
        ListingEvent::changed(&listing, pending.clone(), "poll-2").expect("status changed"),
        ListingEvent::delisted(pending, later + Duration::days(1), "poll-3"),
    ];
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e.kind {
            EventKind::New => "new",
            EventKind::Changed { .. } => "changed",
            EventKind::Delisted => "delisted",
        })
        .collect();
    assert_eq!(kinds, ["new", "changed", "delisted"]);
    for event in events {
        let bytes = event.encode().expect("valid event");
        let json: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["schema_version"], 2);
        // A US listing writes none of version 2's fields: its JSON is what version 1 wrote.
        assert!(json["listing"].get("details").is_none());
        assert!(json["listing"]["address"].get("country").is_none());
        assert_eq!(
            json["kind"],
            serde_json::to_value(&event.kind).expect("json")["kind"]
        );
        assert_eq!(ListingEvent::decode(&bytes), Ok(event));
    }
}

#[test]
fn diff_names_what_changed() {
    let before = nashville_listing("108712579");
    assert!(diff(&before, &before).is_empty());
    assert_eq!(ListingEvent::changed(&before, before.clone(), "poll"), None);

    let mut after = before.clone();
    after.observed_at = before.observed_at + Duration::hours(6);
    after.coordinates = None;
    after.source_url = Some("https://www.zillow.com/homedetails/other/".into());
    after.previous_price_minor = Some(1_000_000_000);
    assert!(
        diff(&before, &after).is_empty(),
        "untracked fields make no event"
    );

    after.price_minor = 39_900_000;
    after.status = ListingStatus::Pending;
    after.beds = Some(2);
    after.living_area_sqft = None;
    after.address.line = Some("740 1st Ave N UNIT 2".into());
    assert_eq!(
        diff(&before, &after),
        ListingChanges {
            price: Some(Change {
                old: 41_000_000,
                new: 39_900_000
            }),
            status: Some(Change {
                old: ListingStatus::Active,
                new: ListingStatus::Pending
            }),
            fields: vec![
                TrackedField::Beds,
                TrackedField::LivingAreaSqft,
                TrackedField::Address
            ],
        }
    );
}

fn documented_json() -> Value {
    serde_json::from_str(documented_example()).expect("json")
}

fn decode_value(value: &Value) -> Result<ListingEvent, EventDecodeError> {
    ListingEvent::decode(&serde_json::to_vec(value).expect("serialize"))
}

#[test]
fn version_1_events_still_read() {
    let mut v1 = documented_json();
    v1["schema_version"] = json!(1);
    let event = decode_value(&v1).expect("a version-1 event");
    assert_eq!(event.schema_version, 1);
    assert_eq!(
        event.listing,
        decode_value(&documented_json()).expect("v2").listing
    );
    assert!(event.listing.address.country.is_us());

    // Version 1 had no country, neighbourhood or details: a record that says version 1 and
    // carries them is no record a producer wrote.
    for (pointer, value) in [
        ("/listing/address/country", json!("US")),
        ("/listing/address/neighbourhood", json!("Germantown")),
        ("/listing/details", json!({"floor": 2})),
    ] {
        let mut mixed = v1.clone();
        let (parent, field) = pointer.rsplit_once('/').expect("a path");
        mixed
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .expect("an object")
            .insert(field.to_owned(), value);
        let outcome = decode_value(&mixed).map(|_| ()).map_err(|e| e.kind());
        if field == "country" {
            // `US` is what version 1 meant; only another country is out of place.
            assert_eq!(outcome, Ok(()));
        } else {
            assert_eq!(outcome, Err("inconsistent"), "{pointer}");
        }
    }
    let mut portal = v1.clone();
    portal["listing"]["source"] = json!("avito");
    portal["listing"]["id"] = json!("avito:55565045");
    assert_eq!(
        decode_value(&portal).map(|_| ()).map_err(|e| e.kind()),
        Err("inconsistent")
    );
    let mut moroccan = v1;
    moroccan["listing"]["address"]["country"] = json!("MA");
    moroccan["listing"]["market"]["city_state"] = json!("ma/nashville");
    assert_eq!(
        decode_value(&moroccan).map(|_| ()).map_err(|e| e.kind()),
        Err("inconsistent")
    );
}

#[test]
fn a_portal_listing_round_trips_with_its_details() {
    let mut listing = nashville_listing("108760565");
    listing.address.country = realty_model::listing::CountryCode::MA;
    listing.address.city = "Casablanca".into();
    listing.address.state = String::new();
    listing.address.postal_code = None;
    listing.address.neighbourhood = Some("Maârif".into());
    listing.market = MarketKey::for_address(&listing.address).expect("a market");
    assert_eq!(listing.market.city_state, "ma/casablanca");
    listing.currency = "MAD".into();
    listing.price_minor = 1_850_000 * 100;
    listing.previous_price_minor = None;
    listing.rent_estimate_minor = None;
    listing.living_area_sqft = Some(realty_model::listing::sqft_from_sqm(95));
    listing.details = realty_model::listing::ListingDetails {
        living_area_sqm: Some(95),
        floor: Some(3),
        seller_type: Some(realty_model::listing::SellerType::Professional),
        equipment: vec!["Ascenseur".into(), "Terrasse".into()],
        images: vec!["https://www.mubawab-media.com/ad/7/994/991/a.avif".into()],
    };
    let event = ListingEvent::new_listing(listing, "poll-ma");
    let bytes = event.encode().expect("valid");
    let json: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(json["listing"]["address"]["country"], "MA");
    assert_eq!(json["listing"]["details"]["living_area_sqm"], 95);
    assert_eq!(ListingEvent::decode(&bytes), Ok(event.clone()));
    assert_eq!(event.partition_key(), "ma/casablanca");

    // The area in square metres must agree with the one in square feet.
    let mut disagreeing = json.clone();
    disagreeing["listing"]["details"]["living_area_sqm"] = json!(96);
    assert_eq!(
        decode_value(&disagreeing).map(|_| ()).map_err(|e| e.kind()),
        Err("invalid_listing")
    );
}

#[test]
fn decode_reads_a_whole_record_only() {
    let good = serde_json::to_vec(&documented_json()).expect("serialize");
    assert!(ListingEvent::decode(&good).is_ok());
    let mut trailing = good.clone();
    trailing.extend_from_slice(b" {}");
    let err = ListingEvent::decode(&trailing).expect_err("trailing bytes");
    assert_eq!(err.kind(), "malformed");
    assert!(err.to_string().contains("trailing characters"), "{err}");
    let mut padded = b"\n  ".to_vec();
    padded.extend_from_slice(&good);
    padded.extend_from_slice(b"\n");
    assert!(
        ListingEvent::decode(&padded).is_ok(),
        "surrounding whitespace is fine"
    );
}

#[test]
fn decode_refuses_other_schema_versions_first() {
    let mut v3 = documented_json();
    v3["schema_version"] = json!(3);
    v3["listing"] = json!("a shape this build cannot read");
    let err = decode_value(&v3).expect_err("version 3");
    assert_eq!(
        err,
        EventDecodeError::UnsupportedSchemaVersion { found: "3".into() }
    );
    assert_eq!(err.kind(), "unsupported_schema_version");
    assert!(
        err.to_string().contains("this build reads versions 1 to 2"),
        "{err}"
    );

    for version in [
        json!(0),
        json!("1"),
        json!(1.5),
        json!(-1),
        json!(4294967298u64),
    ] {
        let mut event = documented_json();
        event["schema_version"] = version.clone();
        assert_eq!(
            decode_value(&event).map_err(|e| e.kind()),
            Err("unsupported_schema_version"),
            "{version}"
        );
    }
    let mut missing = documented_json();
    missing
        .as_object_mut()
        .expect("object")
        .remove("schema_version");
    assert_eq!(
        decode_value(&missing),
        Err(EventDecodeError::MissingSchemaVersion)
    );
}

#[test]
fn decode_refuses_absurd_values_with_reasons() {
    let cases: [(&str, Value, &str, &str); 10] = [
        (
            "/listing/price_minor",
            json!(0),
            "invalid_listing",
            "price_minor: must be positive",
        ),
        (
            "/listing/price_minor",
            json!(-41000000),
            "invalid_listing",
            "must be positive",
        ),
        (
            "/listing/price_minor",
            json!(100_000),
            "invalid_listing",
            "placeholder",
        ),
        (
            "/listing/price_minor",
            json!(1.5),
            "malformed",
            "price_minor",
        ),
        (
            "/listing/currency",
            json!("usd"),
            "invalid_listing",
            "ISO 4217",
        ),
        (
            "/listing/living_area_sqft",
            json!(0),
            "invalid_listing",
            "zero area",
        ),
        (
            "/listing/id",
            json!("realtor:108712579"),
            "invalid_listing",
            "source prefix",
        ),
        (
            "/listing/market/city_state",
            json!("memphis-tn"),
            "invalid_listing",
            "market",
        ),
        (
            "/listing/coordinates",
            json!({"lat": 91.0, "lon": 0.0}),
            "invalid_listing",
            "coordinates",
        ),
        (
            "/listing/on_market_date",
            json!("1850-01-01"),
            "invalid_listing",
            "on_market_date",
        ),
    ];
    for (pointer, value, kind, fragment) in cases {
        let mut event = documented_json();
        *event.pointer_mut(pointer).expect("pointer exists") = value.clone();
        // Keep the change consistent with the listing so only the value is at fault.
        if pointer == "/listing/price_minor" && value.is_i64() {
            event["changes"]["price"]["new"] = value.clone();
        }
        let err = decode_value(&event).expect_err(pointer);
        assert_eq!(err.kind(), kind, "{pointer} = {value}: {err}");
        assert!(
            err.to_string().contains(fragment),
            "{pointer} = {value}: {err}"
        );
    }
}

#[test]
fn decode_refuses_inconsistent_events() {
    let mut wrong_new_price = documented_json();
    wrong_new_price["changes"]["price"]["new"] = json!(40_000_000);
    let mut no_changes = documented_json();
    no_changes["changes"] = json!({"price": null, "status": null, "fields": []});
    let mut same_status = documented_json();
    same_status["changes"]["status"] = json!({"old": "active", "new": "active"});
    let mut empty_poll = documented_json();
    empty_poll["poll_id"] = json!(" ");
    for (event, fragment) in [
        (wrong_new_price, "differs from listing.price_minor"),
        (no_changes, "no changes"),
        (same_status, "equal old and new"),
        (empty_poll, "empty poll_id"),
    ] {
        let err = decode_value(&event).expect_err(fragment);
        assert_eq!(err.kind(), "inconsistent", "{err}");
        assert!(err.to_string().contains(fragment), "{err}");
    }
}

#[test]
fn decode_refuses_what_is_not_an_event() {
    for (bytes, kind) in [
        (&b"not json"[..], "malformed"),
        (b"[1, 2]", "malformed"),
        (b"{}", "missing_schema_version"),
        (b"{\"schema_version\": 1}", "malformed"),
    ] {
        let err = ListingEvent::decode(bytes).expect_err("not an event");
        assert_eq!(err.kind(), kind, "{err}");
    }
    let mut unknown_kind = documented_json();
    unknown_kind["kind"] = json!("relisted");
    let err = decode_value(&unknown_kind).expect_err("unknown kind");
    assert_eq!(err.kind(), "malformed");
    assert!(err.to_string().contains("relisted"), "{err}");
}

#[test]
fn decode_tolerates_additions_of_the_same_version() {
    let mut newer = documented_json();
    newer["producer"] = json!("poller 2.3");
    newer["listing"]["year_built"] = json!(2007);
    newer["changes"]["fields"] = json!(["beds", "hoa_fee_minor"]);
    let event = decode_value(&newer).expect("additive changes are compatible");
    let EventKind::Changed { changes } = event.kind else {
        panic!("a changed event")
    };
    assert_eq!(
        changes.fields,
        vec![TrackedField::Beds, TrackedField::Unrecognized]
    );

    // Optional fields may be left out.
    let mut sparse = documented_json();
    for field in ["coordinates", "rent_estimate_minor", "source_url", "beds"] {
        sparse["listing"]
            .as_object_mut()
            .expect("object")
            .remove(field);
    }
    let event = decode_value(&sparse).expect("optional fields may be absent");
    assert_eq!(event.listing.beds, None);
}

#[test]
fn encode_refuses_what_decode_would_refuse() {
    let mut listing = nashville_listing("108712579");
    listing.price_minor = 0;
    let err = ListingEvent::new_listing(listing, "poll")
        .encode()
        .expect_err("zero price");
    assert_eq!(err.kind(), "invalid_listing");

    let listing = nashville_listing("108712579");
    let err = ListingEvent::new_listing(listing, "")
        .encode()
        .expect_err("empty poll id");
    assert_eq!(err.kind(), "inconsistent");
}

/// Sets `pointer` of `event` and, when it is part of the address, the market derived from it,
/// so only the value is at fault.
fn with_value(pointer: &str, value: &Value) -> Value {
    let mut event = documented_json();
    // Optional fields absent from the example (the version-2 ones) are created on the way.
    let mut slot = &mut event;
    for segment in pointer.split('/').skip(1) {
        slot = slot
            .as_object_mut()
            .expect("objects along the path")
            .entry(segment)
            .or_insert_with(|| json!({}));
    }
    *slot = value.clone();
    if pointer.starts_with("/listing/address/") {
        let address = serde_json::from_value(event["listing"]["address"].clone());
        if let Ok(market) = address
            .map_err(|e| e.to_string())
            .and_then(|a| MarketKey::for_address(&a).map_err(|e| e.to_string()))
        {
            event["listing"]["market"] = serde_json::to_value(market).expect("json");
        } else if pointer == "/listing/address/postal_code" {
            event["listing"]["market"]["zip"] = value.clone();
        }
    }
    event
}

/// The longest reason any refusal below may give: its bounded part plus the fixed words
/// around it.
const MAX_MESSAGE: usize = MAX_REASON_BYTES + 128;

#[test]
fn every_bounded_field_at_its_limit_decodes_and_just_past_it_is_refused() {
    let url = |len: usize| format!("https://www.zillow.com/{}", "a".repeat(len - 23));
    let fields = |n: usize| json!({"price": {"old": 42500000, "new": 41000000}, "status": null, "fields": vec!["beds"; n]});
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "/listing/address/line",
            json!("7".repeat(MAX_ADDRESS_LINE_BYTES)),
            json!("7".repeat(MAX_ADDRESS_LINE_BYTES + 1)),
            "address.line",
        ),
        (
            "/listing/address/city",
            json!("n".repeat(MAX_CITY_BYTES)),
            json!("n".repeat(MAX_CITY_BYTES + 1)),
            "address.city",
        ),
        (
            "/listing/address/state",
            json!("t".repeat(MAX_STATE_BYTES)),
            json!("t".repeat(MAX_STATE_BYTES + 1)),
            "address.state",
        ),
        (
            "/listing/address/postal_code",
            json!("3".repeat(MAX_POSTAL_CODE_BYTES)),
            json!("3".repeat(MAX_POSTAL_CODE_BYTES + 1)),
            "address.postal_code",
        ),
        (
            "/listing/source_url",
            json!(url(MAX_SOURCE_URL_BYTES)),
            json!(url(MAX_SOURCE_URL_BYTES + 1)),
            "source_url",
        ),
        (
            "/listing/id",
            json!(format!("zillow:{}", "1".repeat(MAX_NATIVE_ID_LEN))),
            json!(format!("zillow:{}", "1".repeat(MAX_NATIVE_ID_LEN + 1))),
            "id",
        ),
        (
            "/poll_id",
            json!("p".repeat(MAX_POLL_ID_LEN)),
            json!("p".repeat(MAX_POLL_ID_LEN + 1)),
            "poll_id",
        ),
        (
            "/listing/address/neighbourhood",
            json!("q".repeat(MAX_CITY_BYTES)),
            json!("q".repeat(MAX_CITY_BYTES + 1)),
            "address.neighbourhood",
        ),
        (
            "/listing/details/equipment",
            json!(vec!["e".repeat(MAX_EQUIPMENT_BYTES); MAX_EQUIPMENT_ITEMS]),
            json!(vec![
                "e".repeat(MAX_EQUIPMENT_BYTES);
                MAX_EQUIPMENT_ITEMS + 1
            ]),
            "details.equipment",
        ),
        (
            "/listing/details/equipment",
            json!(["e".repeat(MAX_EQUIPMENT_BYTES)]),
            json!(["e".repeat(MAX_EQUIPMENT_BYTES + 1)]),
            "details.equipment",
        ),
        (
            "/listing/details/images",
            json!(vec![url(MAX_IMAGE_URL_BYTES); MAX_IMAGES]),
            json!(vec![url(MAX_IMAGE_URL_BYTES); MAX_IMAGES + 1]),
            "details.images",
        ),
        (
            "/listing/details/images",
            json!([url(MAX_IMAGE_URL_BYTES)]),
            json!([url(MAX_IMAGE_URL_BYTES + 1)]),
            "details.images",
        ),
        (
            "/listing/details/floor",
            json!(MAX_FLOOR),
            json!(MAX_FLOOR + 1),
            "details.floor",
        ),
        (
            "/listing/details/floor",
            json!(MIN_FLOOR),
            json!(MIN_FLOOR - 1),
            "details.floor",
        ),
        (
            "/changes",
            fields(MAX_CHANGED_FIELDS),
            fields(MAX_CHANGED_FIELDS + 1),
            "changes.fields",
        ),
    ];
    for (pointer, at_limit, past_limit, fragment) in cases {
        let event = decode_value(&with_value(pointer, &at_limit))
            .unwrap_or_else(|e| panic!("{pointer} at its limit: {e}"));
        assert!(event.encode().is_ok(), "{pointer} at its limit re-encodes");
        let err = decode_value(&with_value(pointer, &past_limit))
            .expect_err(&format!("{pointer} just past its limit"));
        assert!(
            err.to_string().contains(fragment) && err.to_string().len() <= MAX_MESSAGE,
            "{pointer}: {err}"
        );
    }
}

/// Issue 12, point 2: error reasons quoted a bad value whole (600 KB in a poison message).
#[test]
fn reasons_quote_a_short_prefix_of_a_huge_value() {
    let huge = "ü".repeat(300 * 1024);
    for pointer in [
        "/listing/status",
        "/listing/currency",
        "/listing/id",
        "/listing/address/line",
        "/listing/address/city",
        "/listing/address/postal_code",
        "/listing/market/city_state",
        "/listing/source_url",
        "/poll_id",
        "/kind",
        "/schema_version",
    ] {
        let err = decode_value(&with_value(pointer, &json!(huge))).expect_err(pointer);
        let message = err.to_string();
        assert!(
            message.len() <= MAX_MESSAGE,
            "{pointer}: {} bytes",
            message.len()
        );
    }
    let mut unknown_field = documented_json();
    unknown_field["listing"]["status"] = json!(vec!["x"; 100_000]);
    let err = decode_value(&unknown_field).expect_err("not a status");
    assert!(err.to_string().len() <= MAX_MESSAGE, "{err}");
}

#[test]
fn an_event_with_every_field_at_its_limit_fits_the_encoded_bound() {
    let mut listing = nashville_listing("108712579");
    // Quotes and backslashes are escaped (two bytes each): the worst case for JSON.
    listing.address.line = Some("\"".repeat(MAX_ADDRESS_LINE_BYTES));
    // A city whose market key grows to the key's limit: NFKC writes `㌀` (3 bytes) as
    // four katakana (12 bytes), which the key keeps. (Escaped quotes would cost the city
    // 512 bytes of JSON; this costs city and key 630.)
    listing.address.city = "㌀".repeat(42);
    listing.address.state = "\"".repeat(MAX_STATE_BYTES - 1) + "t";
    listing.address.postal_code = Some("9".repeat(MAX_POSTAL_CODE_BYTES));
    listing.market = MarketKey::for_address(&listing.address).expect("a market");
    listing.source_url = Some(format!(
        "https://x/{}",
        "\"".repeat(MAX_SOURCE_URL_BYTES - 10)
    ));
    listing.id = realty_model::listing::ListingId::new(
        realty_model::listing::ListingSource::Zillow,
        &"\"".repeat(MAX_NATIVE_ID_LEN),
    )
    .expect("id");
    listing.address.neighbourhood = Some("\"".repeat(MAX_CITY_BYTES));
    listing.details.equipment = vec!["\"".repeat(MAX_EQUIPMENT_BYTES); MAX_EQUIPMENT_ITEMS];
    listing.details.images =
        vec![format!("https://x/{}", "\"".repeat(MAX_IMAGE_URL_BYTES - 10)); MAX_IMAGES];
    listing.details.floor = Some(MIN_FLOOR);
    listing.details.seller_type = Some(realty_model::listing::SellerType::Professional);
    listing.details.living_area_sqm = Some(92_903);
    listing.living_area_sqft = Some(realty_model::listing::sqft_from_sqm(92_903));
    let mut before = listing.clone();
    before.price_minor += 100_000;
    let mut event =
        ListingEvent::changed(&before, listing, "\"".repeat(MAX_POLL_ID_LEN)).expect("a change");
    if let EventKind::Changed { changes } = &mut event.kind {
        changes.fields = vec![TrackedField::RentEstimateMinor; MAX_CHANGED_FIELDS];
    }
    let bytes = event.encode().expect("a valid event encodes");
    assert!(event.listing.market.city_state.len() > 500);
    // docs/events.md says "under 15 KiB", below the 16 KiB bound.
    assert!(
        bytes.len() <= 15 * 1024 && 15 * 1024 < MAX_ENCODED_EVENT_BYTES,
        "{} bytes",
        bytes.len()
    );
    assert_eq!(ListingEvent::decode(&bytes), Ok(event));
}

#[test]
fn a_record_over_kinesis_s_limit_is_refused_unread() {
    let mut at_limit = serde_json::to_vec(&documented_json()).expect("json");
    at_limit.resize(MAX_EVENT_RECORD_BYTES, b' ');
    assert!(ListingEvent::decode(&at_limit).is_ok());
    at_limit.push(b' ');
    let err = ListingEvent::decode(&at_limit).expect_err("over 1 MiB");
    assert_eq!(err.kind(), "too_large");
}

/// Issue 12, point 4: observation times were trusted blindly (one dated 2100 moved a
/// market's as-of time to 2100).
#[test]
fn observation_times_are_checked_against_the_arrival_time() {
    let bytes_at = |observed: DateTime<Utc>| {
        let mut event = documented_json();
        let at = json!(observed.to_rfc3339());
        event["observed_at"] = at.clone();
        event["listing"]["observed_at"] = at;
        event["listing"]["on_market_date"] = json!(null);
        serde_json::to_vec(&event).expect("json")
    };
    let arrival = observed_at();
    let skew = Duration::seconds(MAX_CLOCK_SKEW_SECONDS);
    let age = Duration::days(MAX_OBSERVATION_AGE_DAYS);
    let second = Duration::seconds(1);
    for (observed, accepted) in [
        (arrival, true),
        (arrival + skew, true),
        (arrival + skew + second, false),
        (arrival - age, true),
        (arrival - age - second, false),
        (
            Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
                .single()
                .expect("time"),
            false,
        ),
        (DateTime::<Utc>::UNIX_EPOCH, false),
    ] {
        let decoded = ListingEvent::decode_arrived_at(&bytes_at(observed), arrival);
        assert_eq!(
            decoded.is_ok(),
            accepted,
            "observed {observed}: {decoded:?}"
        );
        if let Err(e) = decoded {
            assert_eq!(e.kind(), "observed_at_out_of_window");
            assert!(e.to_string().contains(&observed.to_rfc3339()), "{e}");
        }
    }
    // A listing stamped in the future inside an event of now is refused too.
    let mut event = documented_json();
    event["listing"]["observed_at"] = json!("2100-01-01T00:00:00Z");
    event["listing"]["on_market_date"] = json!(null);
    let err = ListingEvent::decode_arrived_at(&serde_json::to_vec(&event).expect("json"), arrival)
        .expect_err("a listing from 2100");
    assert!(err.to_string().contains("listing.observed_at"), "{err}");
    // A delisting's listing is its last sighting, which may be old.
    let last_seen = nashville_listing("108712579");
    let mut old = last_seen.clone();
    old.observed_at = arrival - age - Duration::days(30);
    old.on_market_date = None;
    let delisted = ListingEvent::delisted(old, arrival, "poll");
    let bytes = delisted.encode().expect("encodes");
    assert_eq!(
        ListingEvent::decode_arrived_at(&bytes, arrival),
        Ok(delisted)
    );
}

#[test]
fn a_city_spelled_with_look_alikes_is_the_same_market() {
    for city in [
        "N\u{430}shville",
        "NASHVILLE",
        "Ｎａｓｈｖｉｌｌｅ",
        "Nashville\u{301}",
    ] {
        let event = with_value("/listing/address/city", &json!(city));
        assert_eq!(
            event["listing"]["market"]["city_state"], "nashville-tn",
            "{city}"
        );
        assert!(decode_value(&event).is_ok(), "{city}");
    }
}

#[test]
fn the_partition_key_is_the_market_cut_at_kinesis_256_characters() {
    use realty_model::listing::MAX_PARTITION_KEY_CHARS;
    let mut event = ListingEvent::new_listing(nashville_listing("108712579"), "poll-1");
    // Two-byte characters: the cut counts characters, as Kinesis does, not bytes.
    for (chars, kept) in [(256, 256), (257, 256)] {
        event.listing.market.city_state = "é".repeat(chars);
        let key = event.partition_key();
        assert_eq!(key.chars().count(), kept, "{chars} characters");
        assert!(key.chars().count() <= MAX_PARTITION_KEY_CHARS);
    }
    event.listing.market.city_state = "nashville-tn".into();
    assert_eq!(event.partition_key(), "nashville-tn");
}

/// The sources drop a living area too small to live in, or for its bedrooms (an Avito ad of
/// two bedrooms in 5 m²): the home keeps its other facts, and the event stays valid.
#[test]
fn the_sources_drop_a_living_area_too_small_for_the_home() {
    let listing = nashville_listing("108760565");
    let floor = MIN_PLAUSIBLE_LIVING_AREA_SQFT;
    let per_bed = MIN_PLAUSIBLE_SQFT_PER_BEDROOM;
    for (area, beds, kept) in [
        (floor, None, true),
        (floor - 1, None, false),
        (floor, Some(0), true),
        (3 * per_bed, Some(3), true),
        (3 * per_bed - 1, Some(3), false),
        (54, Some(2), false),
    ] {
        let mut l = listing.clone();
        l.living_area_sqft = Some(area);
        l.beds = beds;
        l.clear_implausible_optionals();
        assert_eq!(
            l.living_area_sqft.is_some(),
            kept,
            "{area} sqft, {beds:?} beds"
        );
        assert_eq!(l.beds, beds);
        l.validate().expect("still a valid listing");
    }
}

/// The sources drop an on-market date no listing has: a placeholder (`1900-01-01`, the
/// epoch) or one older than ten years on the market, and one ahead of the observation but for
/// a listing announced as coming soon. The home keeps its other facts.
#[test]
fn the_sources_drop_an_on_market_date_no_listing_has() {
    let listing = nashville_listing("108760565");
    let today = listing.observed_at.date_naive();
    let days = |n: i64| today - Duration::days(n);
    let oldest = MAX_PLAUSIBLE_DAYS_ON_MARKET;
    for (status, date, kept) in [
        (ListingStatus::Active, days(oldest), true),
        (ListingStatus::Active, days(oldest + 1), false),
        (ListingStatus::Active, days(-1), true),
        (ListingStatus::Active, days(-2), false),
        (ListingStatus::Pending, days(-30), false),
        (ListingStatus::ComingSoon, days(-30), true),
        (
            ListingStatus::Active,
            chrono::NaiveDate::from_ymd_opt(1900, 1, 1).expect("date"),
            false,
        ),
        (
            ListingStatus::Active,
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("date"),
            false,
        ),
    ] {
        let mut l = listing.clone();
        l.status = status;
        l.on_market_date = Some(date);
        l.clear_implausible_optionals();
        assert_eq!(l.on_market_date.is_some(), kept, "{status:?} {date}");
        l.validate().expect("still a valid listing");
    }
}
