//! Realtor.com (RapidAPI `realty-in-us`) `POST /properties/v3/list`, shaped like the real
//! response in `tests/fixtures/real-payloads`.
//!
//! The body names `city` + `state_code` or `postal_code`, a `status` list, `limit` (up
//! to 200, default 42), `offset` and optionally `sort` (`list_date`, the default, newest
//! first; or `list_price`). `for_sale` includes pending (under contract) listings, flagged
//! `flags.is_pending` or, for about 40% of them, `flags.is_contingent`; `pending` selects
//! only those; `sold` and `off_market` list sales and withdrawals of the last 90 simulated
//! days; `for_rent` lists the rentals (`status: "for_rent"`, `list_price` the monthly rent).

use std::cmp::Reverse;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use super::Reply;
use crate::listing::{ListingStatus, SimListing, quirk, quirk_byte, quirk_fraction};
use crate::market::{ListingRef, Market, RENTAL_BIT};
use crate::profiles::MarketProfile;
use crate::time_format;

pub(crate) const MAX_LIMIT: u64 = 200;
const DEFAULT_LIMIT: u64 = 42;
/// A listing is flagged new for this long.
const NEW_LISTING_DAYS: i64 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sort {
    ListDateDesc,
    ListDateAsc,
    PriceAsc,
    PriceDesc,
}

/// Which listings a search asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Statuses {
    pub active: bool,
    pub pending: bool,
    pub sold: bool,
    pub off_market: bool,
    pub rent: bool,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Query {
    /// `None` when the area is not simulated (the answer is empty).
    pub area: Option<usize>,
    pub zip: Option<&'static str>,
    pub statuses: Statuses,
    pub limit: usize,
    pub offset: usize,
    pub sort: Sort,
}

impl Query {
    /// The search without its offset: what stays the same across its pages.
    pub fn session(&self) -> Self {
        Self { offset: 0, ..*self }
    }
}

fn count(value: Option<&Value>, name: &str) -> Result<Option<u64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{name} must be a whole number")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("{name} must be a whole number")),
        Some(_) => Err(format!("{name} must be a whole number")),
    }
}

fn text<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Parses the JSON body; a bad body is a 400.
pub(crate) fn parse(market: &Market, body: &[u8]) -> Result<Query, Reply> {
    let bad = |message: String| Reply::message(400, &message);
    let body: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(bad("the body must be a JSON object".into()));
    }
    let limit = count(body.get("limit"), "limit")
        .map_err(bad)?
        .unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad(format!(
            "limit must be from 1 to {MAX_LIMIT}, got {limit}"
        )));
    }
    let offset = count(body.get("offset"), "offset")
        .map_err(bad)?
        .unwrap_or(0);

    let (area, zip) = match (
        text(&body, "postal_code"),
        text(&body, "city"),
        text(&body, "state_code"),
    ) {
        (Some(zip), _, _) => match market.area_of_zip(zip) {
            Some((area, zip)) => (Some(area), Some(zip)),
            None => (None, None),
        },
        (None, Some(city), Some(state)) => (market.area_of_city(city, state), None),
        _ => {
            return Err(bad(
                "name the area: postal_code, or city and state_code".into()
            ));
        }
    };

    let names: Vec<String> = match body.get("status") {
        None | Some(Value::Null) => vec!["for_sale".to_owned()],
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("status must be a list of strings".into()))?,
        Some(_) => return Err(bad("status must be a list of strings".into())),
    };
    let mut statuses = Statuses::default();
    for name in &names {
        match name.trim().to_ascii_lowercase().as_str() {
            "for_sale" => {
                statuses.active = true;
                statuses.pending = true;
            }
            "pending" => statuses.pending = true,
            "sold" => statuses.sold = true,
            "off_market" => statuses.off_market = true,
            "for_rent" => statuses.rent = true,
            // Kinds of listing the simulation has none of.
            "ready_to_build" | "contingent" | "coming_soon" => {}
            other => return Err(bad(format!("unknown status {other:?}"))),
        }
    }

    let sort_field = body
        .pointer("/sort/field")
        .and_then(Value::as_str)
        .unwrap_or("list_date");
    let ascending = body
        .pointer("/sort/direction")
        .and_then(Value::as_str)
        .is_some_and(|d| d.eq_ignore_ascii_case("asc"));
    let sort = match (sort_field, ascending) {
        ("list_price", true) => Sort::PriceAsc,
        ("list_price", false) => Sort::PriceDesc,
        (_, true) => Sort::ListDateAsc,
        // list_date and orders not simulated.
        (_, false) => Sort::ListDateDesc,
    };
    Ok(Query {
        area,
        zip,
        statuses,
        limit: limit as usize,
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
        sort,
    })
}

/// Every match of the query, in result order.
pub(crate) fn matches(market: &Market, query: &Query) -> Vec<ListingRef> {
    let Some(area_position) = query.area else {
        return Vec::new();
    };
    let area = &market.areas()[area_position];
    let view = &area.view;
    let s = query.statuses;
    let keep = |position: u32| {
        let listing = &area.listings[position as usize];
        let wanted = match listing.status {
            ListingStatus::Active => s.active,
            ListingStatus::Pending => s.pending,
            ListingStatus::Sold => s.sold,
            ListingStatus::Withdrawn => s.off_market,
        };
        wanted && query.zip.is_none_or(|zip| listing.address.zip == zip)
    };
    let refs = |positions: &mut dyn Iterator<Item = &u32>| -> Vec<ListingRef> {
        positions
            .filter(|&&p| keep(p))
            .map(|&p| (area_position as u32, p))
            .collect()
    };
    let mut order: Vec<ListingRef> = Vec::new();
    if s.active || s.pending {
        order.extend(match query.sort {
            Sort::ListDateDesc => refs(&mut view.newest_first()),
            Sort::ListDateAsc => refs(&mut view.newest_first().rev()),
            Sort::PriceAsc => refs(&mut view.by_price.iter()),
            Sort::PriceDesc => refs(&mut view.by_price.iter().rev()),
        });
    }
    if s.sold {
        order.extend(refs(&mut view.sold_latest_first()));
    }
    if s.off_market {
        order.extend(refs(&mut view.withdrawn_latest_first()));
    }
    if s.rent {
        // Listed rentals, put in order below.
        order.extend(
            area.active_rentals
                .iter()
                .filter(|&&p| {
                    query
                        .zip
                        .is_none_or(|zip| area.rentals[p as usize].address.zip == zip)
                })
                .map(|&p| (area_position as u32, p | RENTAL_BIT)),
        );
    }
    let mixed = [s.active || s.pending, s.sold, s.off_market, s.rent]
        .iter()
        .filter(|&&x| x)
        .count()
        > 1;
    if mixed || !(s.active || s.pending) {
        // Several views (or the closed ones, kept by close date) into the requested order.
        let listing = |at: ListingRef| market.listing(at);
        match query.sort {
            Sort::ListDateDesc => {
                order.sort_by_key(|&at| (Reverse(listing(at).on_market_at), listing(at).zpid))
            }
            Sort::ListDateAsc => order
                .sort_by_key(|&at| Reverse((Reverse(listing(at).on_market_at), listing(at).zpid))),
            Sort::PriceAsc => order.sort_by_key(|&at| (listing(at).list_price, listing(at).zpid)),
            Sort::PriceDesc => {
                order.sort_by_key(|&at| Reverse((listing(at).list_price, listing(at).zpid)))
            }
        }
    }
    order
}

/// Renders the page of `order` at the query's offset.
pub(crate) fn render(market: &Market, query: &Query, order: &[ListingRef]) -> Reply {
    let now = market.now();
    let total = order.len();
    let start = query.offset.min(total);
    let end = start.saturating_add(query.limit).min(total);
    let results: Vec<RealtorResult<'_>> = order[start..end]
        .iter()
        .map(|&at| result(market, at, now))
        .collect();
    Reply::json(
        200,
        &Envelope {
            data: Data {
                home_search: HomeSearch {
                    typename: "SearchHomeResult",
                    count: results.len(),
                    total,
                    results,
                },
            },
        },
    )
}

#[derive(Serialize)]
struct Envelope<'a> {
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    home_search: HomeSearch<'a>,
}

#[derive(Serialize)]
struct HomeSearch<'a> {
    #[serde(rename = "__typename")]
    typename: &'static str,
    count: usize,
    total: usize,
    results: Vec<RealtorResult<'a>>,
}

#[derive(Serialize)]
struct RealtorResult<'a> {
    #[serde(rename = "__typename")]
    typename: &'static str,
    property_id: &'a str,
    listing_id: &'a str,
    plan_id: Option<()>,
    status: &'static str,
    photo_count: u64,
    branding: [(); 0],
    location: Location<'a>,
    open_houses: Option<()>,
    description: Description,
    virtual_tours: Option<()>,
    matterport: bool,
    advertisers: [(); 0],
    flags: Flags,
    source: Source<'a>,
    pet_policy: Option<()>,
    community: Option<()>,
    primary_photo: Photo<'a>,
    href: &'a str,
    list_price: u64,
    list_price_min: Option<()>,
    list_price_max: Option<()>,
    price_reduced_amount: Option<u64>,
    estimate: Option<Estimate>,
    last_sold_date: Option<String>,
    list_date: String,
    last_update_date: String,
    last_sold_price: Option<u64>,
}

#[derive(Serialize)]
struct Location<'a> {
    #[serde(rename = "__typename")]
    typename: &'static str,
    address: AddressFields<'a>,
    county: County,
}

#[derive(Serialize)]
struct AddressFields<'a> {
    #[serde(rename = "__typename")]
    typename: &'static str,
    city: &'static str,
    line: &'a str,
    street_name: &'a str,
    street_number: &'a str,
    street_suffix: Option<&'a str>,
    unit: Option<String>,
    country: &'static str,
    postal_code: &'static str,
    state_code: &'static str,
    state: &'static str,
    coordinate: Option<Coordinate>,
}

#[derive(Serialize)]
struct Coordinate {
    #[serde(rename = "__typename")]
    typename: &'static str,
    lat: f64,
    lon: f64,
    accuracy: Option<()>,
}

#[derive(Serialize)]
struct County {
    #[serde(rename = "__typename")]
    typename: &'static str,
    fips_code: &'static str,
}

#[derive(Serialize)]
struct Description {
    #[serde(rename = "__typename")]
    typename: &'static str,
    sub_type: Option<&'static str>,
    #[serde(rename = "type")]
    kind: &'static str,
    beds: Option<u8>,
    baths: Option<u8>,
    lot_sqft: Option<u64>,
    sqft: Option<u32>,
    beds_max: Option<()>,
    beds_min: Option<()>,
    sqft_max: Option<()>,
    sqft_min: Option<()>,
    baths_full: Option<u8>,
    baths_half: Option<u8>,
    baths_min: Option<()>,
    baths_max: Option<()>,
    baths_full_calc: Option<u8>,
    baths_partial_calc: Option<u8>,
    year_built: Option<u16>,
}

/// Realtor.com writes a false flag as `null`.
#[derive(Serialize)]
struct Flags {
    #[serde(rename = "__typename")]
    typename: &'static str,
    is_price_reduced: Option<bool>,
    is_new_construction: Option<bool>,
    is_foreclosure: Option<bool>,
    is_plan: Option<bool>,
    is_new_listing: Option<bool>,
    is_coming_soon: Option<bool>,
    is_contingent: Option<bool>,
    is_pending: Option<bool>,
}

#[derive(Serialize)]
struct Source<'a> {
    #[serde(rename = "__typename")]
    typename: &'static str,
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    spec_id: Option<()>,
    plan_id: Option<()>,
    listing_href: Option<()>,
    listing_id: &'a str,
}

#[derive(Serialize)]
struct Photo<'a> {
    #[serde(rename = "__typename")]
    typename: &'static str,
    href: &'a str,
}

#[derive(Serialize)]
struct Estimate {
    #[serde(rename = "__typename")]
    typename: &'static str,
    estimate: u64,
}

fn flag(on: bool) -> Option<bool> {
    on.then_some(true)
}

fn result(market: &Market, at: ListingRef, now: DateTime<Utc>) -> RealtorResult<'_> {
    let listing: &SimListing = market.listing(at);
    let profile = market.areas()[at.0 as usize].profile;
    let live = listing.status.is_live();
    let cut = listing
        .last_price_change
        .filter(|c| live && c.new < c.old)
        .map(|c| c.old - c.new);
    let status = match listing.status {
        _ if listing.rental => "for_rent",
        ListingStatus::Active | ListingStatus::Pending => "for_sale",
        ListingStatus::Sold => "sold",
        ListingStatus::Withdrawn => "off_market",
    };
    let derived = &listing.derived;
    RealtorResult {
        typename: "SearchHome",
        property_id: &listing.ids.realtor_property_id,
        listing_id: &listing.ids.realtor_listing_id,
        plan_id: None,
        status,
        photo_count: 5 + u64::from(quirk_byte(listing.quirks, quirk::PHOTO_COUNT)) % 36,
        branding: [],
        location: location(listing, profile),
        open_houses: None,
        description: description(listing),
        virtual_tours: None,
        matterport: quirk_fraction(listing.quirks, quirk::THREE_D_TOUR, 0.08),
        advertisers: [],
        flags: flags(listing, profile, now, cut),
        source: Source {
            typename: "MlsSource",
            id: profile.mls_prefix,
            kind: "mls",
            spec_id: None,
            plan_id: None,
            listing_href: None,
            listing_id: &listing.ids.reso_listing_id,
        },
        pet_policy: None,
        community: None,
        primary_photo: Photo {
            typename: "Photo",
            href: &derived.realtor_photo,
        },
        href: &derived.realtor_href,
        list_price: listing.list_price,
        list_price_min: None,
        list_price_max: None,
        price_reduced_amount: cut,
        estimate: listing
            .value_estimate
            .filter(|_| !quirk_fraction(listing.quirks, quirk::NO_REALTOR_ESTIMATE, 0.3))
            .map(|estimate| Estimate {
                typename: "LatestEstimate",
                estimate,
            }),
        last_sold_date: listing
            .closed_at
            .filter(|_| listing.status == ListingStatus::Sold)
            .map(|t| t.date_naive().to_string()),
        list_date: time_format::micros(listing.on_market_at),
        last_update_date: time_format::seconds(listing.modified_at),
        last_sold_price: listing.close_price,
    }
}

/// Where the listing is, as the search answers it.
fn location<'a>(listing: &'a SimListing, profile: &'static MarketProfile) -> Location<'a> {
    let derived = &listing.derived;
    Location {
        typename: "SearchHomeLocation",
        address: AddressFields {
            typename: "SearchHomeAddress",
            city: profile.city,
            line: &derived.line,
            street_name: &derived.street_name,
            street_number: &listing.address.street_number,
            street_suffix: derived.street_suffix.as_deref(),
            unit: listing
                .address
                .unit
                .as_ref()
                .map(|(label, number)| format!("{label} {number}")),
            country: "USA",
            postal_code: listing.address.zip,
            state_code: profile.state,
            state: profile.state_name,
            coordinate: Some(Coordinate {
                typename: "Coordinate",
                lat: listing.latitude,
                lon: listing.longitude,
                accuracy: None,
            }),
        },
        county: County {
            typename: "HomeCounty",
            fips_code: profile.county_fips,
        },
    }
}

/// What the listing is: type, rooms, areas, age.
fn description(listing: &SimListing) -> Description {
    let has_bath = listing.baths_full > 0;
    Description {
        typename: "SearchHomeDescription",
        sub_type: listing.property_type.realtor_sub_type(),
        kind: listing.property_type.realtor_type(),
        beds: listing.beds,
        // Realtor.com counts half baths as baths.
        baths: has_bath.then_some(listing.baths_full + listing.baths_half),
        lot_sqft: listing.lot_sqft().map(|s| s.round() as u64),
        sqft: listing.living_area_sqft,
        beds_max: None,
        beds_min: None,
        sqft_max: None,
        sqft_min: None,
        baths_full: has_bath.then_some(listing.baths_full),
        baths_half: (listing.baths_half > 0).then_some(listing.baths_half),
        baths_min: None,
        baths_max: None,
        baths_full_calc: has_bath.then_some(listing.baths_full),
        baths_partial_calc: (listing.baths_half > 0).then_some(listing.baths_half),
        year_built: listing.year_built,
    }
}

/// The search's flags: price reduced (by `cut`), new construction, new listing, and
/// under contract ("contingent" for some listings, "pending" for the others).
fn flags(
    listing: &SimListing,
    profile: &MarketProfile,
    now: DateTime<Utc>,
    cut: Option<u64>,
) -> Flags {
    let live = listing.status.is_live();
    let pending = listing.status == ListingStatus::Pending;
    let contingent = quirk_fraction(listing.quirks, quirk::CONTINGENT, 0.4);
    Flags {
        typename: "HomeFlags",
        is_price_reduced: flag(cut.is_some()),
        is_new_construction: flag(
            listing
                .year_built
                .is_some_and(|y| y >= profile.year_built.1),
        ),
        is_foreclosure: None,
        is_plan: None,
        is_new_listing: flag(
            live && now - listing.on_market_at <= TimeDelta::days(NEW_LISTING_DAYS),
        ),
        is_coming_soon: None,
        // Under contract is "contingent" for some listings, "pending" for the others.
        is_contingent: flag(pending && contingent),
        is_pending: flag(pending && !contingent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MarketConfig;

    fn market() -> Market {
        Market::new(
            2,
            MarketConfig {
                markets: vec!["los-angeles-ca".into()],
                listings_per_market: 800,
                ..MarketConfig::default()
            },
        )
        .expect("market")
    }

    #[test]
    fn parses_bodies_and_rejects_bad_ones() {
        let market = market();
        let query = parse(
            &market,
            br#"{"limit": 200, "offset": 400, "city": "Los Angeles", "state_code": "ca",
                 "status": ["for_sale", "ready_to_build"], "sort": {"direction": "desc", "field": "list_date"}}"#,
        )
        .expect("valid body");
        assert_eq!(
            (query.limit, query.offset, query.sort),
            (200, 400, Sort::ListDateDesc)
        );
        assert!(query.area.is_some() && query.zip.is_none());
        assert!(query.statuses.active && query.statuses.pending && !query.statuses.sold);
        let by_zip =
            parse(&market, br#"{"postal_code": "90004", "status": ["sold"]}"#).expect("valid body");
        assert_eq!((by_zip.zip, by_zip.limit), (Some("90004"), 42));
        for bad in [
            &b"not json"[..],
            br#"[1]"#,
            br#"{"city": "Los Angeles", "state_code": "CA", "limit": 201}"#,
            br#"{"city": "Los Angeles", "state_code": "CA", "limit": 0}"#,
            br#"{"city": "Los Angeles"}"#,
            br#"{"postal_code": "90004", "status": ["haunted"]}"#,
            br#"{"postal_code": "90004", "offset": -1}"#,
        ] {
            let reply = parse(&market, bad).expect_err("invalid body");
            assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn offsets_walk_every_match_and_flags_follow_state() {
        let market = market();
        let query = parse(
            &market,
            br#"{"city": "Los Angeles", "state_code": "CA", "limit": 200}"#,
        )
        .expect("valid body");
        let order = matches(&market, &query);
        assert_eq!(order.len(), 800);
        let mut seen = std::collections::HashSet::new();
        let mut offset = 0;
        while offset < order.len() {
            let page = Query { offset, ..query };
            let body: Value =
                serde_json::from_slice(&render(&market, &page, &order).body).expect("json");
            let search = &body["data"]["home_search"];
            assert_eq!(search["total"], 800);
            let results = search["results"].as_array().expect("results");
            assert_eq!(search["count"], results.len());
            for result in results {
                let id = result["property_id"].as_str().expect("id").to_owned();
                assert!(seen.insert(id));
                let pending = result["flags"]["is_pending"] == true
                    || result["flags"]["is_contingent"] == true;
                assert_eq!(result["status"], "for_sale");
                let listing = market
                    .all_listings()
                    .find(|l| l.ids.realtor_property_id == result["property_id"])
                    .expect("listing");
                assert_eq!(pending, listing.status == ListingStatus::Pending);
                assert_eq!(result["list_price"], listing.list_price);
            }
            offset += results.len();
        }
        assert_eq!(seen.len(), 800);
        let sold = parse(
            &market,
            br#"{"city": "Los Angeles", "state_code": "CA", "status": ["sold", "off_market"]}"#,
        )
        .expect("valid body");
        let closed = matches(&market, &sold);
        assert!(!closed.is_empty());
        assert!(
            closed
                .iter()
                .all(|&at| !market.listing(at).status.is_live())
        );
        let rent = parse(
            &market,
            br#"{"city": "Los Angeles", "state_code": "CA", "status": ["for_rent"], "limit": 200}"#,
        )
        .expect("valid body");
        let rentals = matches(&market, &rent);
        let listed = market
            .rentals("los-angeles-ca")
            .expect("rentals")
            .iter()
            .filter(|r| r.status == ListingStatus::Active)
            .count();
        assert!(listed > 0 && rentals.len() == listed);
        let body: Value =
            serde_json::from_slice(&render(&market, &rent, &rentals).body).expect("json");
        let results = body["data"]["home_search"]["results"]
            .as_array()
            .expect("results");
        assert!(results.iter().all(|r| r["status"] == "for_rent"));
        assert_eq!(body["data"]["home_search"]["total"], listed);
        let nowhere =
            parse(&market, br#"{"city": "Gotham", "state_code": "NY"}"#).expect("valid body");
        assert!(matches(&market, &nowhere).is_empty());
    }
}
