//! The sources against real API responses (and hand-written RESO pages and
//! exports): every field checked where the payload states it, every reject explained.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use realty_model::listing::{
    Coordinates, Listing, ListingSource, ListingStatus, Offer, PropertyType,
};
use realty_model::markets::SourceKind;
use realty_sources::realtor::{RealtorArea, RealtorSearch, RealtorStatus};
use realty_sources::zillow::ZillowPaging;
use realty_sources::{Page, Paging, RecordPosition, SourceError, file, normalize_file};

const NASHVILLE: &[u8] =
    include_bytes!("fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json");
const SYRACUSE: &[u8] =
    include_bytes!("fixtures/zillow_propertyExtendedSearch_props_syracuse_ny.json");
const REALTOR: &[u8] = include_bytes!("fixtures/realtor_realty-in-us_properties_v3_list.json");
const RESO_PAGE_1: &[u8] = include_bytes!("fixtures/reso_property_page1.json");
const RESO_PAGE_2: &[u8] = include_bytes!("fixtures/reso_property_page2.json");
const RESO_ERROR: &[u8] = include_bytes!("fixtures/reso_odata_error.json");
const EXPORT_CSV: &[u8] = include_bytes!("fixtures/listings_export.csv");
const AVITO: &[u8] = include_bytes!("fixtures/avito_search_appartements_a_vendre.html");
const MUBAWAB: &[u8] = include_bytes!("fixtures/mubawab_search_real_estate_for_rent_en.html");

fn observed_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 11, 9, 30, 0)
        .single()
        .expect("a valid time")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

fn normalize(source: SourceKind, bytes: &[u8]) -> Page {
    match normalize_file(source, bytes, observed_at()) {
        Ok(page) => page,
        Err(e) => panic!("{source} fixture did not parse: {e}"),
    }
}

fn listing<'a>(page: &'a Page, id: &str) -> &'a Listing {
    page.listings
        .iter()
        .find(|l| l.id.as_str() == id)
        .unwrap_or_else(|| panic!("{id} is not among the listings"))
}

#[test]
fn nashville_page_normalises_all_41_listings() {
    let page = normalize(SourceKind::Zillow, NASHVILLE);
    assert_eq!(page.rejects, vec![], "no listing of the page is rejected");
    assert_eq!(page.listings.len(), 41);
    assert_eq!(
        page.paging,
        Paging::Zillow(ZillowPaging {
            current_page: Some(1),
            total_pages: Some(2),
            total_result_count: Some(65),
            results_per_page: Some(41),
        })
    );
    let Paging::Zillow(paging) = page.paging else {
        unreachable!("checked above")
    };
    assert_eq!(paging.next_page(), Some(2));
    assert!(!paging.exceeds_page_limit());
    for listing in &page.listings {
        assert_eq!(listing.source, ListingSource::Zillow);
        assert_eq!(listing.market.city_state, "nashville-tn");
        assert_eq!(listing.market.zip.as_deref(), Some("37201"));
        assert_eq!(listing.currency, "USD");
        assert_eq!(listing.observed_at, observed_at());
        assert!(listing.id.as_str().starts_with("zillow:"));
        let url = listing.source_url.as_deref().unwrap_or_default();
        assert!(
            url.starts_with("https://www.zillow.com/homedetails/"),
            "{url}"
        );
        assert_eq!(listing.validate(), Ok(()));
    }
}

#[test]
fn zillow_previous_price_is_price_minus_price_change() {
    let page = normalize(SourceKind::Zillow, NASHVILLE);
    let cut = listing(&page, "zillow:108712579");
    assert_eq!(cut.price_minor, 41_000_000);
    assert_eq!(cut.previous_price_minor, Some(42_500_000));
    assert_eq!(cut.status, ListingStatus::Active);
    assert_eq!(cut.offer, Offer::Sale);
    assert_eq!(cut.property_type, PropertyType::Condo);
    assert_eq!(cut.address.line.as_deref(), Some("740 1st Ave N"));
    assert_eq!(cut.address.city, "Nashville");
    assert_eq!(cut.address.state, "TN");
    assert_eq!(cut.address.postal_code.as_deref(), Some("37201"));
    assert_eq!(cut.beds, Some(1));
    assert_eq!(cut.baths, Some(1.0));
    assert_eq!(cut.living_area_sqft, Some(630));
    assert_eq!(cut.lot_size_sqft, Some(436), "435.6 sqft rounded");
    assert_eq!(
        cut.on_market_date,
        Some(date(2024, 1, 26)),
        "45 days on Zillow"
    );
    assert_eq!(cut.days_on_market(observed_at().date_naive()), Some(45));
    assert_eq!(
        cut.source_url.as_deref(),
        Some("https://www.zillow.com/homedetails/740-1st-Ave-N-Nashville-TN-37201/108712579_zpid/")
    );

    // A million-dollar cut: 3,995,000 now, 4,995,000 before.
    let big_cut = listing(&page, "zillow:71265420");
    assert_eq!(big_cut.previous_price_minor, Some(499_500_000));
    // No priceChange: no previous price.
    assert_eq!(
        listing(&page, "zillow:108760565").previous_price_minor,
        None
    );
}

#[test]
fn zillow_details_from_the_nashville_page() {
    let page = normalize(SourceKind::Zillow, NASHVILLE);
    let coming_soon = listing(&page, "zillow:108760565");
    assert_eq!(
        coming_soon.status,
        ListingStatus::ComingSoon,
        "is_comingSoon"
    );
    assert_eq!(
        coming_soon.coordinates,
        Some(Coordinates {
            lat: 36.173878,
            lon: -86.780815
        })
    );
    assert_eq!(
        coming_soon.rent_estimate_minor, None,
        "rentZestimate is null"
    );
    assert_eq!(coming_soon.on_market_date, Some(observed_at().date_naive()));

    // lotAreaValue 0: no lot rather than a zero lot.
    assert_eq!(listing(&page, "zillow:2106002389").lot_size_sqft, None);
    // lotAreaValue and lotAreaUnit null.
    assert_eq!(listing(&page, "zillow:338552305").lot_size_sqft, None);
    // Unit in the street line.
    assert_eq!(
        listing(&page, "zillow:108764105").address.line.as_deref(),
        Some("309 Church St APT 610")
    );
    // The source's own (odd) type is kept: this unit is listed as a single-family home.
    assert_eq!(
        listing(&page, "zillow:108771004").property_type,
        PropertyType::SingleFamily
    );
    let statuses: Vec<ListingStatus> = page.listings.iter().map(|l| l.status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|&&s| s == ListingStatus::ComingSoon)
            .count(),
        1
    );
}

#[test]
fn syracuse_array_normalises_and_the_1000_listing_is_a_placeholder_reject() {
    let page = normalize(SourceKind::Zillow, SYRACUSE);
    assert_eq!(page.record_count(), 41);
    assert_eq!(page.listings.len(), 40);
    assert_eq!(page.paging, Paging::Zillow(ZillowPaging::default()));

    let [reject] = page.rejects.as_slice() else {
        panic!("expected one reject, got {:?}", page.rejects)
    };
    assert_eq!(reject.source_id.as_deref(), Some("zillow:31682583"));
    assert_eq!(reject.position, RecordPosition::Index(0));
    assert!(
        reject.reason.contains("price_minor")
            && reject.reason.contains("1000.00 USD")
            && reject.reason.contains("placeholder"),
        "{}",
        reject.reason
    );

    // Low but real prices stay: they are above the floor.
    assert_eq!(listing(&page, "zillow:188236406").price_minor, 1_000_000);
    assert_eq!(listing(&page, "zillow:2053516501").price_minor, 1_500_000);
}

#[test]
fn syracuse_string_numbers_and_acres() {
    let page = normalize(SourceKind::Zillow, SYRACUSE);
    // daysOnZillow "2", lot 0.5238 acres.
    let phaeton = listing(&page, "zillow:31758884");
    assert_eq!(phaeton.on_market_date, Some(date(2024, 3, 9)));
    assert_eq!(
        phaeton.lot_size_sqft,
        Some(22_817),
        "0.5238 x 43,560 rounded"
    );
    assert_eq!(phaeton.beds, Some(4));
    assert_eq!(phaeton.baths, Some(3.0));
    // daysOnZillow as a number (6) in the same file.
    assert_eq!(
        listing(&page, "zillow:31692096").on_market_date,
        Some(date(2024, 3, 5))
    );
    // "1 acres".
    assert_eq!(
        listing(&page, "zillow:31760231").lot_size_sqft,
        Some(43_560)
    );
    // A positive priceChange is a rise: 629,900 now, 599,900 before.
    assert_eq!(
        listing(&page, "zillow:31670190").previous_price_minor,
        Some(59_990_000)
    );
    let multi = listing(&page, "zillow:343958884");
    assert_eq!(multi.property_type, PropertyType::MultiFamily);
    assert_eq!(multi.address.line.as_deref(), Some("601-603 Court St"));
    let schaffer = listing(&page, "zillow:31775071");
    assert_eq!(schaffer.rent_estimate_minor, Some(184_900));
    assert_eq!(schaffer.lot_size_sqft, Some(6_251));
    let markets: std::collections::BTreeSet<&str> = page
        .listings
        .iter()
        .map(|l| l.market.city_state.as_str())
        .collect();
    assert_eq!(markets.into_iter().collect::<Vec<_>>(), vec!["syracuse-ny"]);
}

#[test]
fn realtor_page_normalises_every_result() {
    let page = normalize(SourceKind::Realtor, REALTOR);
    assert_eq!(page.rejects, vec![]);
    assert_eq!(page.listings.len(), 10);
    let Paging::Realtor(paging) = page.paging else {
        panic!("realtor paging expected, got {:?}", page.paging)
    };
    assert_eq!((paging.count, paging.total), (Some(10), Some(79)));

    let search = RealtorSearch {
        limit: 10,
        ..RealtorSearch::first_page(
            RealtorArea::PostalCode("90004".into()),
            vec![RealtorStatus::ForSale],
        )
    };
    let next = search.next_page(&paging).expect("79 results: more pages");
    assert_eq!(next.offset, 10);

    let berendo = listing(&page, "realtor:2661871835");
    assert_eq!(berendo.price_minor, 200_000_000);
    assert_eq!(berendo.previous_price_minor, None);
    assert_eq!(berendo.status, ListingStatus::Active);
    assert_eq!(berendo.property_type, PropertyType::MultiFamily);
    assert_eq!((berendo.beds, berendo.baths), (Some(9), Some(7.0)));
    assert_eq!(berendo.living_area_sqft, Some(5_984));
    assert_eq!(berendo.lot_size_sqft, Some(8_315));
    assert_eq!(berendo.address.line.as_deref(), Some("152 S Berendo St"));
    assert_eq!(berendo.market.city_state, "los-angeles-ca");
    assert_eq!(berendo.market.zip.as_deref(), Some("90004"));
    assert_eq!(berendo.on_market_date, Some(date(2024, 2, 15)));
    assert_eq!(
        berendo.coordinates,
        Some(Coordinates {
            lat: 34.071225,
            lon: -118.2938
        })
    );
    assert_eq!(
        berendo.source_url.as_deref(),
        Some(
            "https://www.realtor.com/realestateandhomes-detail/152-S-Berendo-St-1-4_Los-Angeles_CA_90004_M26618-71835"
        )
    );

    // for_sale with is_contingent: under contract.
    assert_eq!(
        listing(&page, "realtor:2069958348").status,
        ListingStatus::UnderContract
    );
    let townhouse = listing(&page, "realtor:9211330065");
    assert_eq!(townhouse.property_type, PropertyType::Townhouse);
    assert_eq!(
        townhouse.address.line.as_deref(),
        Some("315 1/4 N Normandie Ave")
    );
    assert_eq!(
        listing(&page, "realtor:2069958348").property_type,
        PropertyType::SingleFamily
    );
}

#[test]
fn realtor_price_reduction_gives_the_previous_price() {
    let body = br#"{"data": {"home_search": {"count": 1, "total": 1, "results": [{
        "property_id": "42", "status": "for_sale", "list_price": 480000,
        "price_reduced_amount": 20000, "flags": {"is_price_reduced": true},
        "description": {"type": "condos", "beds": 2, "baths_full": 1, "baths_half": 1},
        "location": {"address": {"line": "1 A St", "city": "Austin", "state_code": "TX", "postal_code": "78701"}},
        "permalink": "1-A-St_Austin_TX_78701_M00000-00042"
    }]}}}"#;
    let page = normalize(SourceKind::Realtor, body);
    let condo = listing(&page, "realtor:42");
    assert_eq!(condo.previous_price_minor, Some(50_000_000));
    assert_eq!(condo.property_type, PropertyType::Condo);
    assert_eq!(condo.baths, Some(1.5));
    assert_eq!(
        condo.source_url.as_deref(),
        Some(
            "https://www.realtor.com/realestateandhomes-detail/1-A-St_Austin_TX_78701_M00000-00042"
        )
    );
}

/// Zillow's zpid and Realtor.com's property_id name the home: a home for sale and for rent
/// at once is two listings, each with an id of its own, as are their rejects.
#[test]
fn a_home_for_sale_and_for_rent_is_two_listings() {
    let zillow = normalize(
        SourceKind::Zillow,
        br#"[
            {"zpid": "9", "price": 300000, "listingStatus": "FOR_SALE", "address": "9 A St, Austin, TX 78701"},
            {"zpid": "9", "price": 2500, "listingStatus": "FOR_RENT", "address": "9 A St, Austin, TX 78701"},
            {"zpid": "10", "price": "call", "listingStatus": "FOR_RENT", "address": "10 A St, Austin, TX 78701"}
        ]"#,
    );
    assert_eq!(listing(&zillow, "zillow:9").offer, Offer::Sale);
    assert_eq!(listing(&zillow, "zillow:rent:9").offer, Offer::Rent);
    assert_eq!(
        zillow.rejects[0].source_id.as_deref(),
        Some("zillow:rent:10")
    );
    let realtor = normalize(
        SourceKind::Realtor,
        br#"{"data": {"home_search": {"count": 2, "total": 2, "results": [
            {"property_id": "2661871835", "status": "for_sale", "list_price": 480000,
             "location": {"address": {"line": "1 A St", "city": "Austin", "state_code": "TX", "postal_code": "78701"}}},
            {"property_id": "2661871835", "status": "for_rent", "list_price": 2400,
             "location": {"address": {"line": "1 A St", "city": "Austin", "state_code": "TX", "postal_code": "78701"}}}
        ]}}}"#,
    );
    assert_eq!(listing(&realtor, "realtor:2661871835").offer, Offer::Sale);
    assert_eq!(
        listing(&realtor, "realtor:rent:2661871835").offer,
        Offer::Rent
    );
}

#[test]
fn reso_first_page() {
    let page = normalize(SourceKind::Reso, RESO_PAGE_1);
    assert_eq!(page.listings.len(), 4);
    let Paging::Reso(paging) = &page.paging else {
        panic!("reso paging expected, got {:?}", page.paging)
    };
    assert!(
        paging
            .next_link
            .as_deref()
            .is_some_and(|link| link.ends_with("$skip=6"))
    );
    assert_eq!(
        paging.max_modification_timestamp,
        Utc.with_ymd_and_hms(2024, 3, 1, 12, 10, 0).single()
    );

    let rejects: Vec<(Option<&str>, RecordPosition)> = page
        .rejects
        .iter()
        .map(|r| (r.source_id.as_deref(), r.position))
        .collect();
    assert_eq!(
        rejects,
        vec![
            (Some("reso:NSH1000003"), RecordPosition::Index(2)),
            (None, RecordPosition::Index(3))
        ]
    );
    assert!(
        page.rejects[0].reason.contains("must be positive"),
        "{}",
        page.rejects[0]
    );
    assert!(
        page.rejects[1].reason.contains("no ListingKey"),
        "{}",
        page.rejects[1]
    );

    let house = listing(&page, "reso:NSH1000001");
    assert_eq!(house.status, ListingStatus::Active);
    assert_eq!(house.property_type, PropertyType::SingleFamily);
    assert_eq!(house.price_minor, 54_990_000);
    assert_eq!(house.previous_price_minor, Some(56_500_000));
    assert_eq!(house.living_area_sqft, Some(1_292), "120 m² in sqft");
    assert_eq!(house.lot_size_sqft, Some(10_890), "0.25 acres");
    assert_eq!(house.address.line.as_deref(), Some("4512 Charlotte Ave"));
    assert_eq!(house.market.zip.as_deref(), Some("37209"), "ZIP+4 cut");
    assert_eq!(house.address.postal_code.as_deref(), Some("37209-3411"));
    // Days on market come from OnMarketDate (2024-02-01), not the stale DaysOnMarket 3.
    assert_eq!(house.on_market_date, Some(date(2024, 2, 1)));
    assert_eq!(house.days_on_market(date(2024, 3, 1)), Some(29));

    let condo = listing(&page, "reso:NSH1000002");
    assert_eq!(condo.status, ListingStatus::UnderContract);
    assert_eq!(condo.property_type, PropertyType::Condo);
    assert_eq!(condo.price_minor, 41_500_000, "ListPrice sent as a string");
    assert_eq!(condo.baths, Some(1.5));
    assert_eq!(condo.living_area_sqft, Some(980), "no unit: square feet");
    assert_eq!(condo.address.line.as_deref(), Some("1200 Broadway APT 5"));
    assert_eq!(condo.coordinates, None);

    let duplex = listing(&page, "reso:NSH1000005");
    assert_eq!(duplex.status, ListingStatus::Sold);
    assert_eq!(duplex.property_type, PropertyType::MultiFamily);
    assert_eq!(duplex.lot_size_sqft, Some(7_405));

    let lease = listing(&page, "reso:NSH1000006");
    assert_eq!(lease.offer, Offer::Rent);
    assert_eq!(lease.price_minor, 215_000, "a monthly rent of 2,150");
    assert_eq!(lease.property_type, PropertyType::Townhouse);
    assert_eq!(lease.address.line.as_deref(), Some("92 Lindsley Ave #B"));
    assert_eq!(lease.source_url, None);
}

#[test]
fn reso_commercial_records_are_no_homes() {
    // An MLS feed asked for a city sends its offices, shops and businesses too: none is a
    // home for sale or to rent, whatever its price; the residential types still read.
    let record = |key: &str, property_type: &str| {
        let price = if property_type.ends_with("Lease") {
            2_150
        } else {
            1_250_000
        };
        serde_json::json!({
            "ListingKey": key, "StandardStatus": "Active", "PropertyType": property_type,
            "ListPrice": price, "City": "Nashville", "StateOrProvince": "TN",
            "PostalCode": "37203", "UnparsedAddress": "1 Commerce St"
        })
    };
    let body = serde_json::json!({ "value": [
        record("C1", "CommercialSale"),
        record("C2", "CommercialLease"),
        record("C3", "BusinessOpportunity"),
        record("R1", "Residential"),
        record("R2", "ResidentialLease"),
    ]});
    let page = normalize(SourceKind::Reso, body.to_string().as_bytes());
    let rejected: Vec<(Option<&str>, bool)> = page
        .rejects
        .iter()
        .map(|r| (r.source_id.as_deref(), r.reason.contains("not a home")))
        .collect();
    assert_eq!(
        rejected,
        [
            (Some("reso:C1"), true),
            (Some("reso:C2"), true),
            (Some("reso:C3"), true)
        ]
    );
    assert_eq!(listing(&page, "reso:R1").offer, Offer::Sale);
    assert_eq!(listing(&page, "reso:R2").offer, Offer::Rent);
}

#[test]
fn reso_last_page() {
    let page = normalize(SourceKind::Reso, RESO_PAGE_2);
    let Paging::Reso(paging) = &page.paging else {
        panic!("reso paging expected, got {:?}", page.paging)
    };
    assert_eq!(paging.next_link, None);
    let watermark = Utc
        .with_ymd_and_hms(2024, 3, 1, 14, 45, 59)
        .single()
        .map(|t| t + chrono::Duration::milliseconds(999));
    assert_eq!(paging.max_modification_timestamp, watermark);

    let coming = listing(&page, "reso:NSH1000007");
    assert_eq!(coming.status, ListingStatus::ComingSoon);
    assert_eq!(coming.on_market_date, Some(date(2024, 3, 8)));
    assert_eq!(
        coming.days_on_market(date(2024, 3, 1)),
        Some(0),
        "not yet on"
    );

    let deleted = listing(&page, "reso:NSH1000008");
    assert_eq!(deleted.status, ListingStatus::OffMarket);
    assert_eq!(deleted.property_type, PropertyType::Land);
    assert_eq!(deleted.lot_size_sqft, Some(21_528), "2,000 m²");
    assert_eq!(deleted.address.line, None);

    let withdrawn = listing(&page, "reso:NSH1000010");
    assert_eq!(withdrawn.status, ListingStatus::OffMarket);
    assert_eq!(withdrawn.property_type, PropertyType::Manufactured);
    assert_eq!(
        withdrawn.address.line.as_deref(),
        Some("77 Old Hickory Blvd")
    );
    assert_eq!(withdrawn.market.city_state, "nashville-tn");
    assert_eq!(
        withdrawn.living_area_sqft, None,
        "unknown unit is not guessed"
    );
    assert_eq!(withdrawn.coordinates, None, "(0, 0) dropped");
    assert_eq!(withdrawn.previous_price_minor, None, "same as ListPrice");

    let reasons: Vec<String> = page.rejects.iter().map(ToString::to_string).collect();
    assert_eq!(page.rejects.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("reso:NSH1000009") && reasons[0].contains("Incomplete"));
    assert!(reasons[1].starts_with("reso:NSH1000011") && reasons[1].contains("City"));
}

#[test]
fn csv_export_reads_good_rows_and_explains_bad_ones() {
    let page = normalize(SourceKind::File, EXPORT_CSV);
    assert_eq!(page.paging, Paging::WholeFile);
    let ids: Vec<&str> = page.listings.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["zillow:108712579", "realtor:2069958348", "reso:NSH1000006"]
    );
    let zillow = listing(&page, "zillow:108712579");
    assert_eq!(zillow.source, ListingSource::Zillow);
    assert_eq!(zillow.market.city_state, "nashville-tn");
    assert_eq!(zillow.on_market_date, Some(date(2025, 7, 29)));
    assert_eq!(zillow.property_type, PropertyType::Condo);
    let rent = listing(&page, "reso:NSH1000006");
    assert_eq!(rent.offer, Offer::Rent);
    assert_eq!(rent.market.zip.as_deref(), Some("37210"));
    assert_eq!(rent.lot_size_sqft, None, "column absent");

    let rejects: Vec<(RecordPosition, &str)> = page
        .rejects
        .iter()
        .map(|r| (r.position, r.reason.as_str()))
        .collect();
    let expected_fragments = [
        (5, "placeholder"),
        (6, "must be positive"),
        (7, "city: empty"),
        (8, "status: unknown variant `open`"),
        (9, "unknown source prefix \"redfin\""),
        (10, "beds: cannot read \"two\""),
        (11, "observed_at"),
        (12, "one without the other"),
    ];
    assert_eq!(rejects.len(), expected_fragments.len(), "{rejects:#?}");
    for ((line, reason), (expected_line, fragment)) in rejects.iter().zip(expected_fragments) {
        assert_eq!(*line, RecordPosition::Line(expected_line), "{reason}");
        assert!(reason.contains(fragment), "line {line}: {reason}");
    }
}

#[test]
fn json_lines_export_round_trips_what_the_sources_produce() {
    let mut listings = normalize(SourceKind::Zillow, NASHVILLE).listings;
    listings.extend(normalize(SourceKind::Realtor, REALTOR).listings);
    listings.extend(normalize(SourceKind::Reso, RESO_PAGE_1).listings);

    let mut jsonl = Vec::new();
    file::write_json_lines(&listings, &mut jsonl).expect("write to memory");
    let reread = normalize(SourceKind::File, &jsonl);
    assert_eq!(reread.rejects, vec![]);
    assert_eq!(reread.listings, listings);

    let mut csv = Vec::new();
    file::write_csv(&listings, &mut csv).expect("write to memory");
    let reread = normalize(SourceKind::File, &csv);
    assert_eq!(reread.rejects, vec![]);
    assert_eq!(reread.listings, listings);
}

/// Portal listings (schema 2: a country, no state, details) through both export formats:
/// JSON lines whole; CSV with every column it has (equipment and photos have none).
#[test]
fn exports_round_trip_portal_listings() {
    let observed_at = Utc
        .with_ymd_and_hms(2025, 12, 7, 22, 11, 13)
        .single()
        .expect("a valid time");
    let mut listings = normalize_file(SourceKind::Mubawab, MUBAWAB, observed_at)
        .expect("a page")
        .listings;
    listings.extend(
        normalize_file(SourceKind::Avito, AVITO, observed_at)
            .expect("a page")
            .listings,
    );
    assert!(listings.iter().all(|l| l.address.state.is_empty()));

    let mut jsonl = Vec::new();
    file::write_json_lines(&listings, &mut jsonl).expect("write to memory");
    let reread = normalize(SourceKind::File, &jsonl);
    assert_eq!(reread.rejects, vec![]);
    assert_eq!(reread.listings, listings);

    let mut csv = Vec::new();
    file::write_csv(&listings, &mut csv).expect("write to memory");
    let reread = normalize(SourceKind::File, &csv);
    assert_eq!(reread.rejects, vec![]);
    let without_lists: Vec<_> = listings
        .into_iter()
        .map(|mut listing| {
            listing.details.equipment.clear();
            listing.details.images.clear();
            listing
        })
        .collect();
    assert_eq!(reread.listings, without_lists);
}

/// `listing` exported as JSON lines and as CSV.
fn both_exports(listing: &realty_model::listing::Listing) -> [Vec<u8>; 2] {
    let mut jsonl = Vec::new();
    file::write_json_lines(std::slice::from_ref(listing), &mut jsonl).expect("write");
    let mut csv = Vec::new();
    file::write_csv(std::slice::from_ref(listing), &mut csv).expect("write");
    [jsonl, csv]
}

/// A file's listing gets the sources' rules for details too: a living area too small for
/// its bedrooms is dropped, in both formats, and the row kept.
#[test]
fn an_exported_listing_loses_an_implausible_living_area() {
    let mut listing = normalize(SourceKind::Zillow, NASHVILLE).listings[0].clone();
    listing.living_area_sqft = Some(54);
    listing.beds = Some(2);
    for export in both_exports(&listing) {
        let reread = normalize(SourceKind::File, &export);
        assert_eq!(reread.rejects, vec![]);
        assert_eq!(reread.listings[0].living_area_sqft, None);
        assert_eq!(reread.listings[0].beds, Some(2));
    }
}

/// A JSON line of exactly the longest length is parsed (and refused here as no listing);
/// one byte past it is refused unparsed, as longer than any listing.
#[test]
fn a_json_line_at_its_bound_is_read_and_one_byte_past_is_not() {
    let first = both_exports(&normalize(SourceKind::Zillow, NASHVILLE).listings[0])[0].clone();
    let line = |len: usize| {
        let filler = len - r#"{"x":""}"#.len();
        format!("{{\"x\":\"{}\"}}\n", "a".repeat(filler))
    };
    for (len, unparsed) in [
        (file::MAX_JSON_LINE_BYTES, false),
        (file::MAX_JSON_LINE_BYTES + 1, true),
    ] {
        let text = line(len);
        assert_eq!(text.len() - 1, len);
        let export = [first.clone(), text.into_bytes()].concat();
        let reread = normalize(SourceKind::File, &export);
        assert_eq!(reread.listings.len(), 1);
        let reason = &reread.rejects[0].reason;
        assert_eq!(
            reason.contains("longer than any listing"),
            unparsed,
            "{len}: {reason}"
        );
    }
}

/// A US listing of a file priced in another currency is refused, in both formats: its
/// market's medians are of dollars.
#[test]
fn an_exported_us_listing_in_another_currency_is_refused() {
    let mut listing = normalize(SourceKind::Zillow, NASHVILLE).listings[0].clone();
    listing.currency = "CAD".into();
    for export in both_exports(&listing) {
        let reread = normalize(SourceKind::File, &export);
        assert!(reread.listings.is_empty());
        assert!(
            reread.rejects[0]
                .reason
                .contains("\"CAD\": a US listing is priced in USD"),
            "{:?}",
            reread.rejects
        );
    }
}

#[test]
fn json_lines_export_rejects_bad_lines_by_number() {
    let page = normalize(SourceKind::Zillow, NASHVILLE);
    let good = serde_json::to_string(&page.listings[0]).expect("serialize");
    let mut negative: serde_json::Value = serde_json::from_str(&good).expect("json");
    negative["price_minor"] = (-5).into();
    negative["id"] = "zillow:1".into();
    let mut wrong_market = page.listings[1].clone();
    wrong_market.market.city_state = "memphis-tn".into();
    let wrong_market = serde_json::to_string(&wrong_market).expect("serialize");
    let export = format!("{good}\n\n{{not json\n{negative}\r\n{wrong_market}\n");

    let reread = normalize(SourceKind::File, export.as_bytes());
    assert_eq!(reread.listings.len(), 1);
    let rejects: Vec<String> = reread.rejects.iter().map(ToString::to_string).collect();
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    assert!(rejects[0].starts_with("line 3: not JSON"), "{}", rejects[0]);
    assert!(
        rejects[1].starts_with("zillow:1 (line 4): price_minor: must be positive"),
        "{}",
        rejects[1]
    );
    assert!(rejects[2].contains("market"), "{}", rejects[2]);
}

/// Each real or hand-written document, given to every source that is not its own, is a
/// shape error that names the document's own API where it can tell.
#[test]
fn documents_of_another_api_are_errors() {
    let documents: [(&str, &[u8], SourceKind); 7] = [
        ("avito", AVITO, SourceKind::Avito),
        ("mubawab", MUBAWAB, SourceKind::Mubawab),
        ("nashville", NASHVILLE, SourceKind::Zillow),
        ("syracuse", SYRACUSE, SourceKind::Zillow),
        ("realtor", REALTOR, SourceKind::Realtor),
        ("reso", RESO_PAGE_1, SourceKind::Reso),
        ("csv", EXPORT_CSV, SourceKind::File),
    ];
    for (name, bytes, own) in documents {
        for other in SourceKind::ALL.into_iter().filter(|&kind| kind != own) {
            let Err(error) = normalize_file(other, bytes, observed_at()) else {
                panic!("{name} was accepted by the {other} source");
            };
            let message = error.to_string();
            // A portal cannot tell an export from its own page whose layout changed.
            let drift = other.is_portal() && own == SourceKind::File;
            assert!(
                message.starts_with(if drift {
                    "no listings in this "
                } else {
                    "not a "
                }),
                "{name} via {other}: {message}"
            );
            if own != SourceKind::File {
                assert!(
                    message.contains(&format!("--source {own}")),
                    "{name} via {other}: {message}"
                );
            }
        }
    }
}

#[test]
fn non_documents_are_errors_with_reasons() {
    let not_json = normalize_file(
        SourceKind::Zillow,
        b"<html>rate limited</html>",
        observed_at(),
    );
    assert!(
        matches!(not_json, Err(SourceError::NotJson { .. })),
        "{not_json:?}"
    );

    let odata_error = normalize_file(SourceKind::Reso, RESO_ERROR, observed_at());
    match odata_error {
        Err(SourceError::WrongShape { found, .. }) => {
            assert!(found.contains("the access token is missing"), "{found}")
        }
        other => panic!("expected a shape error, got {other:?}"),
    }

    let rapidapi_error = normalize_file(
        SourceKind::Realtor,
        br#"{"message": "You are not subscribed to this API."}"#,
        observed_at(),
    );
    assert!(
        rapidapi_error
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not subscribed")),
        "{rapidapi_error:?}"
    );

    for (bytes, fragment) in [
        (&b""[..], "empty"),
        (b"  \n ", "empty"),
        (b"[{\"id\": \"zillow:1\"}]", "not JSON lines"),
        (
            b"[{\"id\": \"zillow:1\"}\n",
            "first line is not a JSON object",
        ),
        (b"name,price\nx,1\n", "lacks the column(s)"),
        (b"{\"zpid\": \"1\"}\n", "not JSON lines"),
        (
            b"{\"zpid\": \"1\"}\n{\"zpid\": \"2\"}\n",
            "first line is not a listing",
        ),
    ] {
        let result = normalize_file(SourceKind::File, bytes, observed_at());
        assert!(
            result
                .as_ref()
                .is_err_and(|e| e.to_string().contains(fragment)),
            "{:?}: {result:?}",
            String::from_utf8_lossy(bytes)
        );
    }

    // Records without zpid are not a Zillow page, even inside a props array.
    let realtor_results = br#"{"props": [{"property_id": "1"}]}"#;
    assert!(normalize_file(SourceKind::Zillow, realtor_results, observed_at()).is_err());
}

#[test]
fn empty_result_pages_are_pages() {
    let zillow = normalize(
        SourceKind::Zillow,
        br#"{"totalResultCount": 0, "totalPages": 0, "resultsPerPage": 41, "currentPage": 1}"#,
    );
    assert_eq!(zillow.record_count(), 0);
    let realtor = normalize(SourceKind::Realtor, br#"{"data": {"home_search": null}}"#);
    assert_eq!(realtor.record_count(), 0);
    let reso = normalize(SourceKind::Reso, br#"{"value": []}"#);
    assert_eq!(reso.record_count(), 0);
    let csv = normalize(SourceKind::File, file::CSV_COLUMNS.join(",").as_bytes());
    assert_eq!(csv.record_count(), 0);
}

#[test]
fn rejects_never_stop_the_page() {
    let page = normalize(
        SourceKind::Zillow,
        br#"[
            {"zpid": "1", "price": 300000, "listingStatus": "FOR_SALE", "address": "1 A St, Austin, TX 78701"},
            {"zpid": "2", "price": null, "listingStatus": "FOR_SALE", "address": "2 A St, Austin, TX 78701"},
            {"zpid": "3", "price": "n/a", "listingStatus": "FOR_SALE", "address": "3 A St, Austin, TX 78701"},
            {"zpid": "4", "price": 300000, "listingStatus": "AUCTIONED_OFF", "address": "4 A St, Austin, TX 78701"},
            {"zpid": "5", "price": 300000, "listingStatus": "FOR_SALE", "address": "Austin"},
            {"zpid": "6", "price": 300000, "listingStatus": "FOR_SALE", "address": "6 A St, Austin, TX 78701", "currency": "dollars"},
            {"zpid": "7", "price": 2000000000, "listingStatus": "FOR_SALE", "address": "7 A St, Austin, TX 78701"},
            {"zpid": "8", "price": 2500, "listingStatus": "FOR_RENT", "address": "8 A St, Austin, TX 78701", "propertyType": "APARTMENT"},
            "not an object",
            {"price": 300000}
        ]"#,
    );
    let ids: Vec<&str> = page.listings.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, vec!["zillow:1", "zillow:rent:8"]);
    assert_eq!(listing(&page, "zillow:rent:8").offer, Offer::Rent);
    assert_eq!(
        listing(&page, "zillow:rent:8").property_type,
        PropertyType::Apartment
    );
    let reasons: Vec<&str> = page.rejects.iter().map(|r| r.reason.as_str()).collect();
    let expected = [
        "no price",
        "price: expected a number",
        "unknown listingStatus \"AUCTIONED_OFF\"",
        "is not \"street, City, ST zip\"",
        "currency \"DOLLARS\" is not USD",
        "above the 1000000000.00 USD ceiling",
        "expected a listing object",
        "no zpid",
    ];
    assert_eq!(reasons.len(), expected.len(), "{reasons:#?}");
    for (reason, fragment) in reasons.iter().zip(expected) {
        assert!(reason.contains(fragment), "{reason:?} lacks {fragment:?}");
    }
}

#[test]
fn source_kinds_parse_from_their_cli_names() {
    for name in ["zillow", "reso", "realtor", "file"] {
        let kind: SourceKind = name.parse().expect("a known source");
        assert_eq!(kind.to_string(), name);
    }
    assert!(
        "mls"
            .parse::<SourceKind>()
            .is_err_and(|e| e.to_string().contains("zillow, reso, realtor, file"))
    );
}
