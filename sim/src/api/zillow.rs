//! Zillow (RapidAPI `zillow-com1`) `GET /propertyExtendedSearch`, shaped like the real
//! responses in `tests/fixtures/real-payloads`.
//!
//! `status_type=ForSale` (the default) lists active **and pending** listings, pending ones
//! with `listingStatus: "PENDING"`; `RecentlySold` lists sales of the last 90 simulated
//! days; `ForRent` lists the rentals (`listingStatus: "FOR_RENT"`, `price` the monthly
//! rent; `minPrice`/`maxPrice` bound the rent). Results are sorted newest first (on-market time, then
//! zpid) unless `sort` asks for a price order, so pages are stable within a simulated
//! instant. 41 results a page, at most 20 pages; `totalResultCount` counts every match.

use std::cmp::Reverse;
use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{JsonNumber, QueryPairs, Reply, query_value};
use crate::listing::{ListingStatus, PropertyType, SimListing, quirk, quirk_fraction};
use crate::market::{ListingRef, Market, RENTAL_BIT};

pub(crate) const RESULTS_PER_PAGE: usize = 41;
pub(crate) const MAX_PAGES: u32 = 20;
const MAX_LOCATIONS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusType {
    ForSale,
    ForRent,
    RecentlySold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sort {
    Newest,
    PriceLowHigh,
    PriceHighLow,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// Resolved locations: market position and, for a ZIP search, the ZIP.
    pub locations: Vec<(usize, Option<&'static str>)>,
    pub page: u32,
    pub status: StatusType,
    pub home_types: Option<Vec<PropertyType>>,
    pub min_price: Option<u64>,
    pub max_price: Option<u64>,
    pub sort: Sort,
}

impl Query {
    /// Where the page starts in the result order.
    pub fn page_start(&self) -> usize {
        (self.page as usize - 1) * RESULTS_PER_PAGE
    }
}

/// Parses the query string; a bad parameter is a 400 with the gateway's message shape.
pub(crate) fn parse(market: &Market, pairs: &QueryPairs) -> Result<Query, Reply> {
    Ok(Query {
        locations: parse_locations(market, pairs)?,
        page: parse_page(pairs)?,
        status: parse_status(pairs)?,
        home_types: parse_home_types(pairs)?,
        sort: parse_sort(pairs),
        min_price: parse_price(pairs, "minPrice")?,
        max_price: parse_price(pairs, "maxPrice")?,
    })
}

fn bad(message: String) -> Reply {
    Reply::message(400, &message)
}

/// `location`: places separated by `;` (at most [`MAX_LOCATIONS`]); the ones the market
/// does not know are left out.
fn parse_locations(
    market: &Market,
    pairs: &QueryPairs,
) -> Result<Vec<(usize, Option<&'static str>)>, Reply> {
    let location = query_value(pairs, "location")
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("location is required".into()))?;
    let names: Vec<&str> = location
        .split(';')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if names.len() > MAX_LOCATIONS {
        return Err(bad(format!(
            "location names at most {MAX_LOCATIONS} places"
        )));
    }
    Ok(names
        .iter()
        .filter_map(|name| market.resolve_location(name))
        .collect())
}

fn parse_page(pairs: &QueryPairs) -> Result<u32, Reply> {
    match query_value(pairs, "page") {
        None | Some("") => Ok(1),
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=MAX_PAGES).contains(p))
            .ok_or_else(|| {
                bad(format!(
                    "page must be a number from 1 to {MAX_PAGES}, got {text:?}"
                ))
            }),
    }
}

fn parse_status(pairs: &QueryPairs) -> Result<StatusType, Reply> {
    match query_value(pairs, "status_type").map(str::trim) {
        None | Some("") => Ok(StatusType::ForSale),
        Some(s) if s.eq_ignore_ascii_case("ForSale") => Ok(StatusType::ForSale),
        Some(s) if s.eq_ignore_ascii_case("ForRent") => Ok(StatusType::ForRent),
        Some(s) if s.eq_ignore_ascii_case("RecentlySold") => Ok(StatusType::RecentlySold),
        Some(other) => Err(bad(format!(
            "status_type must be ForSale, ForRent or RecentlySold, got {other:?}"
        ))),
    }
}

/// `home_type`: Zillow's home types separated by commas.
fn parse_home_types(pairs: &QueryPairs) -> Result<Option<Vec<PropertyType>>, Reply> {
    let Some(list) = query_value(pairs, "home_type")
        .map(str::trim)
        .filter(|l| !l.is_empty())
    else {
        return Ok(None);
    };
    let mut types = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = PropertyType::ALL
            .into_iter()
            .chain([PropertyType::Apartment])
            .find(|t| t.zillow_home_type().eq_ignore_ascii_case(name))
            .ok_or_else(|| bad(format!("unknown home_type {name:?}")))?;
        types.push(kind);
    }
    Ok(Some(types))
}

/// A price bound in whole dollars.
fn parse_price(pairs: &QueryPairs, name: &str) -> Result<Option<u64>, Reply> {
    match query_value(pairs, name).map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            bad(format!(
                "{name} must be a whole number of dollars, got {text:?}"
            ))
        }),
    }
}

fn parse_sort(pairs: &QueryPairs) -> Sort {
    match query_value(pairs, "sort").map(str::trim) {
        Some(s) if s.eq_ignore_ascii_case("Price_Low_High") => Sort::PriceLowHigh,
        Some(s) if s.eq_ignore_ascii_case("Price_High_Low") => Sort::PriceHighLow,
        // Newest, Homes_for_You, Days_On_Zillow and orders not simulated.
        _ => Sort::Newest,
    }
}

/// The price a search filters and sorts by: the close price of a sale.
fn shown_price(listing: &SimListing) -> u64 {
    match listing.status {
        ListingStatus::Sold => listing.close_price.unwrap_or(listing.list_price),
        _ => listing.list_price,
    }
}

/// Every match of the query, in result order.
pub(crate) fn matches(market: &Market, query: &Query) -> Vec<ListingRef> {
    let keep = |listing: &SimListing, zip: Option<&str>| {
        let price = shown_price(listing);
        zip.is_none_or(|z| listing.address.zip == z)
            && query
                .home_types
                .as_ref()
                .is_none_or(|types| types.contains(&listing.property_type))
            && query.min_price.is_none_or(|min| price >= min)
            && query.max_price.is_none_or(|max| price <= max)
    };
    let mut order: Vec<ListingRef> = Vec::new();
    // Only several places can name one listing twice (a city and one of its ZIP codes).
    let several = query.locations.len() > 1;
    let mut seen = HashSet::new();
    for &(area_position, zip) in &query.locations {
        let area = &market.areas()[area_position];
        let view = &area.view;
        if query.status == StatusType::ForRent {
            let mut rentals: Vec<ListingRef> = area
                .active_rentals
                .iter()
                .filter(|&&p| keep(&area.rentals[p as usize], zip))
                .map(|&p| (area_position as u32, p | RENTAL_BIT))
                .collect();
            // Rentals are few: sorted per request rather than kept sorted.
            sort_refs(market, query, &mut rentals);
            order.extend(rentals);
            continue;
        }
        let positions: Box<dyn Iterator<Item = &u32>> = match (query.status, query.sort) {
            (StatusType::ForRent, _) => Box::new(std::iter::empty()),
            (StatusType::RecentlySold, _) => Box::new(view.sold_latest_first()),
            (StatusType::ForSale, Sort::Newest) => Box::new(view.newest_first()),
            (StatusType::ForSale, Sort::PriceLowHigh) => Box::new(view.by_price.iter()),
            (StatusType::ForSale, Sort::PriceHighLow) => Box::new(view.by_price.iter().rev()),
        };
        for &position in positions {
            let at = (area_position as u32, position);
            if keep(&area.listings[position as usize], zip) && (!several || seen.insert(at)) {
                order.push(at);
            }
        }
    }
    if several {
        // Several places: merge their (already ordered) results into one order.
        sort_refs(market, query, &mut order);
    }
    order
}

/// Puts matches in the query's result order.
fn sort_refs(market: &Market, query: &Query, order: &mut [ListingRef]) {
    match (query.status, query.sort) {
        (StatusType::RecentlySold, _) => order.sort_by_key(|&at| {
            let l = market.listing(at);
            (Reverse(l.closed_at), l.zpid)
        }),
        (_, Sort::Newest) => order.sort_by_key(|&at| {
            let l = market.listing(at);
            (Reverse(l.on_market_at), l.zpid)
        }),
        (_, Sort::PriceLowHigh) => order.sort_by_key(|&at| {
            let l = market.listing(at);
            (shown_price(l), l.zpid)
        }),
        (_, Sort::PriceHighLow) => order.sort_by_key(|&at| {
            let l = market.listing(at);
            Reverse((shown_price(l), l.zpid))
        }),
    }
}

/// Renders one page of `order` (the matches, possibly shifted by a fault).
pub(crate) fn render(market: &Market, query: &Query, order: &[ListingRef]) -> Reply {
    let now = market.now();
    let total = order.len();
    let total_pages = total.div_ceil(RESULTS_PER_PAGE).min(MAX_PAGES as usize);
    let start = query.page_start().min(total);
    let end = (start + RESULTS_PER_PAGE).min(total);
    let props: Vec<Prop<'_>> = order[start..end]
        .iter()
        .map(|&at| {
            let area = &market.areas()[at.0 as usize];
            prop(market.listing(at), area.profile.utc_offset_hours, now)
        })
        .collect();
    Reply::json(
        200,
        &Envelope {
            props,
            results_per_page: RESULTS_PER_PAGE as u32,
            total_pages: total_pages as u32,
            total_result_count: total,
            schools: Empty {},
            current_page: query.page,
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    props: Vec<Prop<'a>>,
    results_per_page: u32,
    total_pages: u32,
    total_result_count: usize,
    schools: Empty,
    current_page: u32,
}

#[derive(Serialize)]
struct Empty {}

/// `daysOnZillow`: a number, or for some listings the same number as a string.
#[derive(Serialize)]
#[serde(untagged)]
enum Days {
    Number(i64),
    Text(String),
}

#[derive(Serialize, Default)]
struct SubType {
    #[serde(rename = "is_FSBA", skip_serializing_if = "Option::is_none")]
    is_fsba: Option<bool>,
    #[serde(rename = "is_pending", skip_serializing_if = "Option::is_none")]
    is_pending: Option<bool>,
}

#[derive(Serialize)]
struct VariableData {
    text: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Prop<'a> {
    bathrooms: Option<JsonNumber>,
    carousel_photos: Option<()>,
    #[serde(rename = "has3DModel")]
    has_3d_model: bool,
    property_type: &'static str,
    longitude: Option<f64>,
    living_area: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    address: &'a str,
    rent_zestimate: Option<u32>,
    variable_data: Option<VariableData>,
    price_change: Option<i64>,
    zestimate: Option<u64>,
    img_src: &'a str,
    latitude: Option<f64>,
    price: u64,
    bedrooms: Option<u8>,
    lot_area_value: Option<JsonNumber>,
    has_video: bool,
    lot_area_unit: Option<&'static str>,
    listing_status: &'static str,
    zpid: &'a str,
    listing_sub_type: SubType,
    detail_url: &'a str,
    contingent_listing_type: Option<()>,
    days_on_zillow: Days,
    /// Absent for some listings (outer `None`), null when the price never changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    date_price_changed: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_sold: Option<i64>,
    country: &'static str,
    currency: &'static str,
    coming_soon_on_market_date: Option<()>,
    has_image: bool,
}

/// Zillow dates a price change at local midnight of its day (epoch milliseconds).
fn local_midnight_millis(at: DateTime<Utc>, utc_offset_hours: i32) -> i64 {
    let offset = TimeDelta::hours(i64::from(utc_offset_hours));
    let local_day = (at + offset).date_naive();
    let midnight = local_day.and_hms_opt(0, 0, 0).map(|t| t.and_utc() - offset);
    midnight.unwrap_or(at).timestamp_millis()
}

fn prop(listing: &SimListing, utc_offset_hours: i32, now: DateTime<Utc>) -> Prop<'_> {
    let quirks = listing.quirks;
    let days = listing.days_on_market(now);
    let sold = listing.status == ListingStatus::Sold;
    let (listing_status, sub_type) = listing_status(listing);
    let price_change = if sold {
        None
    } else {
        listing.last_price_change
    };
    let date_price_changed = if quirk_fraction(quirks, quirk::NO_DATE_PRICE_CHANGED, 0.15) {
        None
    } else {
        Some(price_change.map(|c| local_midnight_millis(c.at, utc_offset_hours)))
    };
    let (lot_value, lot_unit) = lot_area(listing);
    let coordinates = !quirk_fraction(quirks, quirk::NO_COORDINATES, 0.01);
    let tour = quirk_fraction(quirks, quirk::THREE_D_TOUR, 0.08);
    Prop {
        bathrooms: (listing.baths_full > 0).then(|| JsonNumber(listing.bathrooms())),
        carousel_photos: None,
        has_3d_model: tour,
        property_type: listing.property_type.zillow(),
        longitude: coordinates.then_some(listing.longitude),
        living_area: listing.living_area_sqft,
        unit: listing.derived.zillow_unit.as_deref(),
        address: &listing.derived.zillow_address,
        rent_zestimate: listing
            .rent_estimate
            .filter(|_| !quirk_fraction(quirks, quirk::NO_RENT_ZESTIMATE, 0.2)),
        variable_data: tour.then_some(VariableData {
            text: "3D Tour",
            kind: "3D_HOME",
        }),
        price_change: price_change.map(|c| c.signed_amount()),
        zestimate: listing
            .value_estimate
            .filter(|_| !quirk_fraction(quirks, quirk::NO_ZESTIMATE, 0.4)),
        img_src: &listing.derived.zillow_img_src,
        latitude: coordinates.then_some(listing.latitude),
        price: shown_price(listing),
        bedrooms: listing.beds,
        lot_area_value: lot_value.map(JsonNumber),
        has_video: false,
        lot_area_unit: lot_unit,
        listing_status,
        zpid: &listing.ids.zpid,
        listing_sub_type: sub_type,
        detail_url: &listing.derived.zillow_detail_url,
        contingent_listing_type: None,
        days_on_zillow: days_on_zillow(quirks, days),
        date_price_changed,
        date_sold: if sold {
            listing.closed_at.map(|t| t.timestamp_millis())
        } else {
            None
        },
        country: "USA",
        currency: "USD",
        coming_soon_on_market_date: None,
        has_image: true,
    }
}

/// `listingStatus` and its sub-type (a pending sale, or for sale by agent).
fn listing_status(listing: &SimListing) -> (&'static str, SubType) {
    match listing.status {
        _ if listing.rental => ("FOR_RENT", SubType::default()),
        ListingStatus::Pending => (
            "PENDING",
            SubType {
                is_pending: Some(true),
                ..SubType::default()
            },
        ),
        ListingStatus::Sold => ("RECENTLY_SOLD", SubType::default()),
        ListingStatus::Active | ListingStatus::Withdrawn => (
            "FOR_SALE",
            SubType {
                is_fsba: Some(true),
                ..SubType::default()
            },
        ),
    }
}

/// The lot's area and unit: acres from a quarter acre, square feet below.
fn lot_area(listing: &SimListing) -> (Option<f64>, Option<&'static str>) {
    match listing.lot_acres {
        None => (None, None),
        Some(acres) if acres >= 0.25 => (Some(acres), Some("acres")),
        Some(acres) => (
            Some((acres * 43_560.0 * 1_000.0).round() / 1_000.0),
            Some("sqft"),
        ),
    }
}

fn days_on_zillow(quirks: u64, days: i64) -> Days {
    if quirk_fraction(quirks, quirk::DAYS_AS_STRING, 0.35) {
        Days::Text(days.to_string())
    } else {
        Days::Number(days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MarketConfig;

    fn pairs(list: &[(&str, &str)]) -> QueryPairs {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn market() -> Market {
        Market::new(
            1,
            MarketConfig {
                markets: vec!["nashville-tn".into(), "syracuse-ny".into()],
                listings_per_market: 1_500,
                ..MarketConfig::default()
            },
        )
        .expect("market")
    }

    #[test]
    fn parses_and_rejects_parameters() {
        let market = market();
        let query = parse(
            &market,
            &pairs(&[
                ("location", "Nashville, TN; 13204"),
                ("page", "3"),
                ("home_type", "Houses,Condos"),
                ("minPrice", "100000"),
                ("maxPrice", "400000"),
                ("sort", "Price_Low_High"),
            ]),
        )
        .expect("valid query");
        assert_eq!(query.locations.len(), 2);
        assert_eq!(query.locations[1].1, Some("13204"));
        assert_eq!(query.page_start(), 82);
        assert_eq!(
            query.home_types,
            Some(vec![PropertyType::SingleFamily, PropertyType::Condo])
        );
        assert_eq!(
            (query.min_price, query.max_price),
            (Some(100_000), Some(400_000))
        );
        for bad in [
            vec![("page", "1")],
            vec![("location", "Nashville, TN"), ("page", "21")],
            vec![("location", "Nashville, TN"), ("page", "zero")],
            vec![("location", "Nashville, TN"), ("home_type", "Castles")],
            vec![("location", "Nashville, TN"), ("minPrice", "cheap")],
            vec![("location", "Nashville, TN"), ("status_type", "Sold")],
            vec![("location", "a;b;c;d;e;f")],
        ] {
            let reply = parse(&market, &pairs(&bad)).expect_err("invalid query");
            assert_eq!(reply.status, 400, "{bad:?}");
        }
    }

    #[test]
    fn pages_cover_the_matches_once_in_order_and_filters_hold() {
        let market = market();
        let query = parse(
            &market,
            &pairs(&[
                ("location", "Syracuse, NY"),
                ("minPrice", "150000"),
                ("maxPrice", "260000"),
            ]),
        )
        .expect("valid query");
        let order = matches(&market, &query);
        assert!(
            order.len() > RESULTS_PER_PAGE && order.len() <= 820,
            "{}",
            order.len()
        );
        let listings: Vec<&SimListing> = order.iter().map(|&at| market.listing(at)).collect();
        assert!(
            listings
                .iter()
                .all(|l| (150_000..=260_000).contains(&l.list_price))
        );
        assert!(
            listings
                .iter()
                .all(|l| l.status.is_live() && l.market == "syracuse-ny")
        );
        assert!(
            listings
                .windows(2)
                .all(|w| (Reverse(w[0].on_market_at), w[0].zpid)
                    < (Reverse(w[1].on_market_at), w[1].zpid))
        );

        let body = render(&market, &query, &order).body;
        let page: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(page["resultsPerPage"], 41);
        assert_eq!(page["currentPage"], 1);
        assert_eq!(page["totalResultCount"], order.len());
        assert_eq!(page["totalPages"], order.len().div_ceil(41));
        assert_eq!(page["props"].as_array().map(Vec::len), Some(41));
        assert_eq!(page["props"][0]["zpid"], listings[0].ids.zpid.as_str());
    }

    #[test]
    fn zip_and_type_searches_narrow_the_market() {
        let market = market();
        let query = parse(
            &market,
            &pairs(&[("location", "37201"), ("home_type", "Condos")]),
        )
        .expect("valid query");
        for at in matches(&market, &query) {
            let listing = market.listing(at);
            assert_eq!(listing.address.zip, "37201");
            assert_eq!(listing.property_type, PropertyType::Condo);
        }
        let unknown = parse(&market, &pairs(&[("location", "Gotham, NY")])).expect("valid query");
        assert!(matches(&market, &unknown).is_empty());
        let rent = parse(
            &market,
            &pairs(&[("location", "Nashville, TN"), ("status_type", "ForRent")]),
        )
        .expect("valid query");
        let rentals = matches(&market, &rent);
        let listed = market
            .rentals("nashville-tn")
            .expect("rentals")
            .iter()
            .filter(|r| r.status == ListingStatus::Active)
            .count();
        assert!(listed > 0);
        assert_eq!(rentals.len(), listed);
        assert!(rentals.iter().all(|&at| market.listing(at).rental));
        assert!(
            rentals.windows(2).all(|w| {
                market.listing(w[0]).on_market_at >= market.listing(w[1]).on_market_at
            })
        );
        let page: serde_json::Value =
            serde_json::from_slice(&render(&market, &rent, &rentals).body).expect("json");
        let first = &page["props"][0];
        let rental = market.listing(rentals[0]);
        assert_eq!(first["listingStatus"], "FOR_RENT");
        assert_eq!(first["price"], rental.list_price);
        assert_eq!(first["bedrooms"], rental.beds.expect("beds"));
        assert_eq!(page["totalResultCount"], listed);
        let for_sale = parse(&market, &pairs(&[("location", "Nashville, TN")])).expect("valid");
        assert!(
            matches(&market, &for_sale)
                .iter()
                .all(|&at| !market.listing(at).rental)
        );
        let sold = parse(
            &market,
            &pairs(&[
                ("location", "Nashville, TN"),
                ("status_type", "RecentlySold"),
            ]),
        )
        .expect("valid query");
        let sold_matches = matches(&market, &sold);
        assert!(!sold_matches.is_empty());
        assert!(
            sold_matches
                .iter()
                .all(|&at| market.listing(at).status == ListingStatus::Sold)
        );
    }

    #[test]
    fn price_change_dates_are_local_midnight() {
        // 2025-08-26 05:30 UTC is still 25 August in Los Angeles (UTC-8 standard time).
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 8, 26, 5, 30, 0)
            .single()
            .expect("valid time");
        let midnight = local_midnight_millis(at, -8);
        let expected = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 8, 25, 8, 0, 0)
            .single()
            .expect("valid time");
        assert_eq!(midnight, expected.timestamp_millis());
    }
}
