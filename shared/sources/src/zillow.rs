//! Zillow via RapidAPI `zillow-com1`, `GET /propertyExtendedSearch`.
//!
//! A page is `{"props": [...], "totalPages", "totalResultCount", "currentPage",
//! "resultsPerPage", ...}`; a bare `props` array (as some pipelines save it) is read too.
//! What the real responses taught (see `tests/fixtures/README.md`):
//! - `price` is the **current** price; `priceChange` is the signed size of the last change,
//!   so the previous price is `price - priceChange`.
//! - Numbers may arrive as strings (`"daysOnZillow": "138"`); keys may be null or absent.
//! - `address` is one string, `"street, City, ST zip"`.
//! - `detailUrl` is relative to `https://www.zillow.com`.
//! - A query reaches at most [`MAX_PAGES`] pages: larger markets are split into price bands
//!   ([`plan_price_band`]).

use chrono::{DateTime, Days, Utc};
use serde_json::Value;

use super::json::{self, AreaUnit};
use super::{
    Page, Paging, RecordPosition, Reject, RequestError, SourceError, SourceKind, absolute_url,
    describe_document, parse_json,
};

use realty_model::listing::{
    Address, CountryCode, Listing, ListingDetails, ListingId, ListingSource, ListingStatus,
    MarketKey, Offer, PropertyType, quote,
};
use realty_model::markets::{PriceBand, ZillowHomeType};

/// Zillow's site, which `detailUrl` is relative to.
pub const ZILLOW_BASE_URL: &str = "https://www.zillow.com";
/// The last page a query can reach (`page` is 1..=20).
pub const MAX_PAGES: u32 = 20;
/// Results on a full page, used when a page does not say.
pub const DEFAULT_RESULTS_PER_PAGE: u32 = 41;
/// Most places one `location` parameter may name (joined by `;`).
pub const MAX_LOCATIONS: usize = 5;
/// Longest `location` parameter accepted.
pub const MAX_LOCATION_CHARS: usize = 100;

/// The paging fields of a page; all `None` for a bare `props` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZillowPaging {
    pub current_page: Option<u32>,
    pub total_pages: Option<u32>,
    pub total_result_count: Option<u64>,
    pub results_per_page: Option<u32>,
}

impl ZillowPaging {
    /// The page to request next, if any (never past [`MAX_PAGES`]).
    pub fn next_page(&self) -> Option<u32> {
        let current = self.current_page?;
        let last = self.total_pages?.min(MAX_PAGES);
        (current < last).then_some(current + 1)
    }

    /// How many results [`MAX_PAGES`] pages can hold.
    pub fn reachable_result_count(&self) -> u64 {
        u64::from(MAX_PAGES)
            * u64::from(
                self.results_per_page
                    .filter(|&n| n > 0)
                    .unwrap_or(DEFAULT_RESULTS_PER_PAGE),
            )
    }

    /// Whether the query matched more results than its pages can reach.
    pub fn exceeds_page_limit(&self) -> bool {
        self.total_result_count
            .is_some_and(|total| total > self.reachable_result_count())
    }
}

/// Reads one page from its bytes.
pub fn parse_page(bytes: &[u8], observed_at: DateTime<Utc>) -> Result<Page, SourceError> {
    parse_value(&parse_json(SourceKind::Zillow, bytes)?, observed_at)
}

const EXPECTED_SHAPE: &str =
    "an object with a \"props\" array (or a bare array of listings with \"zpid\")";

/// Reads one page already parsed as JSON.
pub fn parse_value(document: &Value, observed_at: DateTime<Utc>) -> Result<Page, SourceError> {
    let wrong_shape = || SourceError::WrongShape {
        api: SourceKind::Zillow,
        expected: EXPECTED_SHAPE,
        found: describe_document(SourceKind::Zillow, document),
    };
    let (props, paging): (&[Value], ZillowPaging) = match document {
        Value::Array(items) => (items, ZillowPaging::default()),
        Value::Object(envelope) => {
            let paging = ZillowPaging {
                current_page: count_u32(document, "currentPage"),
                total_pages: count_u32(document, "totalPages"),
                total_result_count: json::lenient_count(document, "totalResultCount"),
                results_per_page: count_u32(document, "resultsPerPage"),
            };
            match envelope.get("props") {
                Some(Value::Array(items)) => (items, paging),
                // A search with no results may leave `props` out.
                None | Some(Value::Null) if paging.total_result_count == Some(0) => (&[], paging),
                _ => return Err(wrong_shape()),
            }
        }
        _ => return Err(wrong_shape()),
    };
    if !props.is_empty() && !props.iter().any(|prop| prop.get("zpid").is_some()) {
        return Err(wrong_shape());
    }

    let mut listings = Vec::with_capacity(props.len());
    let mut rejects = Vec::new();
    for (position, prop) in props.iter().enumerate() {
        match normalize_prop(prop, observed_at) {
            Ok(listing) => listings.push(listing),
            Err(reason) => rejects.push(Reject {
                // The rental's id when the record says it is one (a sale's otherwise).
                source_id: json::lenient_text(prop, "zpid")
                    .and_then(|zpid| {
                        let offer = status_and_offer(prop).map_or(Offer::Sale, |(_, o)| o);
                        ListingId::of_offer(ListingSource::Zillow, &zpid, offer).ok()
                    })
                    .map(|id| id.to_string()),
                position: RecordPosition::Index(position),
                reason,
            }),
        }
    }
    Ok(Page {
        source: SourceKind::Zillow,
        listings,
        rejects,
        paging: Paging::Zillow(paging),
    })
}

fn count_u32(object: &Value, key: &str) -> Option<u32> {
    json::lenient_count(object, key).and_then(|n| u32::try_from(n).ok())
}

/// One `props` record to a listing, or the reason it cannot be one.
fn normalize_prop(prop: &Value, observed_at: DateTime<Utc>) -> Result<Listing, String> {
    if !prop.is_object() {
        return Err(format!(
            "expected a listing object, found {}",
            json::describe(prop)
        ));
    }
    let zpid = json::text(prop, "zpid")?.ok_or("no zpid")?;
    let (status, offer) = status_and_offer(prop)?;
    let id = ListingId::of_offer(ListingSource::Zillow, &zpid, offer).map_err(|e| e.to_string())?;

    let price = json::number(prop, "price")?.ok_or("no price")?;
    let price_minor =
        json::to_minor(price).ok_or_else(|| format!("price {price} is out of range"))?;
    let currency = json::text(prop, "currency")?
        .unwrap_or_else(|| "USD".to_owned())
        .to_uppercase();
    // US listings are priced in dollars (as Realtor.com's and RESO's are taken to be):
    // another currency would skip the dollar bounds and mix into a market's USD medians.
    if currency != "USD" {
        return Err(format!("currency {} is not USD", quote(&currency)));
    }
    // `price` is already the new price: the one before the change is `price - priceChange`.
    let previous_price_minor = json::lenient_number(prop, "priceChange")
        .filter(|&change| change != 0.0)
        .and_then(|change| json::to_minor(price - change));

    let address = address(prop)?;
    let market = MarketKey::for_address(&address).map_err(|e| e.to_string())?;

    let lot_size_sqft = json::lenient_number(prop, "lotAreaValue").and_then(|value| {
        // A value without a unit is not guessed at.
        let unit = AreaUnit::parse(&json::lenient_text(prop, "lotAreaUnit")?)?;
        json::whole_sqft(unit.to_sqft(value))
    });
    let on_market_date = json::lenient_count(prop, "daysOnZillow")
        .and_then(|days| observed_at.date_naive().checked_sub_days(Days::new(days)));

    let mut listing = Listing {
        id,
        source: ListingSource::Zillow,
        status,
        offer,
        price_minor,
        currency,
        previous_price_minor,
        property_type: property_type(json::lenient_text(prop, "propertyType").as_deref()),
        beds: json::lenient_count(prop, "bedrooms").and_then(|n| u16::try_from(n).ok()),
        baths: json::lenient_number(prop, "bathrooms").map(json::tenths),
        living_area_sqft: json::lenient_number(prop, "livingArea")
            .and_then(json::whole_sqft)
            .and_then(|sqft| u32::try_from(sqft).ok()),
        lot_size_sqft,
        address,
        market,
        coordinates: json::coordinates(prop, "latitude", "longitude"),
        on_market_date,
        rent_estimate_minor: json::lenient_number(prop, "rentZestimate").and_then(json::to_minor),
        source_url: Some(detail_url(json::lenient_text(prop, "detailUrl"), &zpid)),
        observed_at,
        details: ListingDetails::default(),
    };
    listing.clear_implausible_optionals();
    listing.validate().map_err(|e| e.to_string())?;
    Ok(listing)
}

/// `listingStatus`, refined by `listingSubType` and `contingentListingType`.
fn status_and_offer(prop: &Value) -> Result<(ListingStatus, Offer), String> {
    let raw = json::text(prop, "listingStatus")?.ok_or("no listingStatus")?;
    let (status, offer) = match json::folded(&raw).as_str() {
        "forsale" => (ListingStatus::Active, Offer::Sale),
        "forrent" => (ListingStatus::Active, Offer::Rent),
        "comingsoon" => (ListingStatus::ComingSoon, Offer::Sale),
        "contingent" | "undercontract" => (ListingStatus::UnderContract, Offer::Sale),
        "pending" => (ListingStatus::Pending, Offer::Sale),
        "recentlysold" | "sold" => (ListingStatus::Sold, Offer::Sale),
        "other" | "offmarket" | "foreclosed" | "preforeclosure" => {
            (ListingStatus::OffMarket, Offer::Sale)
        }
        _ => return Err(format!("unknown listingStatus {}", quote(&raw))),
    };
    let sub_type = json::field(prop, "listingSubType").unwrap_or(&Value::Null);
    if json::flag(sub_type, "is_forAuction") {
        // Its price is the opening bid: a home at a fraction of its worth to every median
        // and an "undervalued" alert.
        return Err("for auction: its price is an opening bid, not an asking price".into());
    }
    if status != ListingStatus::Active {
        return Ok((status, offer));
    }
    let refined = if json::flag(sub_type, "is_comingSoon") {
        ListingStatus::ComingSoon
    } else if json::flag(sub_type, "is_pending") {
        ListingStatus::Pending
    } else {
        match json::lenient_text(prop, "contingentListingType").map(|t| json::folded(&t)) {
            Some(kind) if kind == "pending" => ListingStatus::Pending,
            Some(_) => ListingStatus::UnderContract,
            None => ListingStatus::Active,
        }
    };
    Ok((refined, offer))
}

fn property_type(raw: Option<&str>) -> PropertyType {
    match raw.map(json::folded).as_deref() {
        Some("singlefamily") => PropertyType::SingleFamily,
        Some("condo") => PropertyType::Condo,
        Some("townhouse") => PropertyType::Townhouse,
        Some("multifamily") => PropertyType::MultiFamily,
        Some("lot" | "land" | "lotsland") => PropertyType::Land,
        Some("apartment") => PropertyType::Apartment,
        Some("manufactured" | "mobile") => PropertyType::Manufactured,
        _ => PropertyType::Other,
    }
}

/// `address` is usually one string; the detail endpoints send an object instead.
fn address(prop: &Value) -> Result<Address, String> {
    match json::field(prop, "address") {
        None => Err("no address".to_owned()),
        Some(Value::String(line)) => parse_one_line_address(line),
        Some(object @ Value::Object(_)) => Ok(Address {
            line: json::lenient_text(object, "streetAddress"),
            city: json::lenient_text(object, "city").unwrap_or_default(),
            state: json::lenient_text(object, "state").unwrap_or_default(),
            postal_code: json::lenient_text(object, "zipcode"),
            country: CountryCode::US,
            neighbourhood: None,
        }),
        Some(other) => Err(format!(
            "address: expected text, found {}",
            json::describe(other)
        )),
    }
}

/// Splits `"309 Church St APT 610, Nashville, TN 37201"` into street line, city, state and
/// ZIP. The last comma-separated part is `ST zip` (or `ST`), the one before it the city, the
/// rest the street (absent, or Zillow's "(undisclosed Address)", for unnamed lots).
pub fn parse_one_line_address(text: &str) -> Result<Address, String> {
    let malformed = || {
        format!(
            "address {:?} is not \"street, City, ST zip\"",
            json::truncate(text, 80)
        )
    };
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    let [street @ .., city, state_zip] = parts.as_slice() else {
        return Err(malformed());
    };
    let mut tokens = state_zip.split_whitespace();
    let state = tokens.next().ok_or_else(malformed)?;
    let postal_code = tokens.next();
    if tokens.next().is_some() || !state.chars().all(char::is_alphabetic) {
        return Err(malformed());
    }
    let street = street.join(", ");
    let undisclosed = street.is_empty() || street.to_lowercase().contains("undisclosed");
    Ok(Address {
        line: (!undisclosed).then_some(street),
        city: (*city).to_owned(),
        state: state.to_uppercase(),
        postal_code: postal_code.map(str::to_owned),
        country: CountryCode::US,
        neighbourhood: None,
    })
}

/// `detailUrl` made absolute on Zillow; the listing's canonical page when the field is
/// missing or points anywhere else (alerts send it to subscribers).
fn detail_url(detail_url: Option<String>, zpid: &str) -> String {
    detail_url
        .and_then(|url| {
            if url.contains("://") || url.starts_with('/') {
                absolute_url(&url, ZILLOW_BASE_URL)
            } else {
                absolute_url(&format!("/{url}"), ZILLOW_BASE_URL)
            }
        })
        .unwrap_or_else(|| format!("{ZILLOW_BASE_URL}/homedetails/{zpid}_zpid/"))
}

/// `status_type` of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZillowStatusType {
    ForSale,
    ForRent,
    RecentlySold,
}

impl ZillowStatusType {
    pub fn as_param(self) -> &'static str {
        match self {
            Self::ForSale => "ForSale",
            Self::ForRent => "ForRent",
            Self::RecentlySold => "RecentlySold",
        }
    }
}

/// What to do with a price band once its first page is in hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandPlan {
    /// Fetch pages 2..=`last_page` of this band. `unreachable_results` is how many matches no
    /// page reaches (non-zero only when a single-price band still overflows).
    Fetch {
        last_page: u32,
        unreachable_results: u64,
    },
    /// The band matches more than [`MAX_PAGES`] pages hold: query each half instead,
    /// starting again from its page 1.
    Split { lower: PriceBand, upper: PriceBand },
    /// Read no more bands ([`BandSchedule`] only): the read is incomplete.
    Stop(BandStop),
}

/// Decides, from page 1 of `band`, whether its pages reach all its results or it must be
/// split. Applied recursively from [`PriceBand::ALL`] this covers a market of any size with
/// bands that each fit in 20 pages; each split costs one extra request per half, and
/// halving converges in about 30 steps even for the widest range.
pub fn plan_price_band(band: PriceBand, first_page: &ZillowPaging) -> BandPlan {
    let last_page = first_page.total_pages.unwrap_or(1).clamp(1, MAX_PAGES);
    if !first_page.exceeds_page_limit() {
        return BandPlan::Fetch {
            last_page,
            unreachable_results: 0,
        };
    }
    match band.split() {
        Some((lower, upper)) => BandPlan::Split { lower, upper },
        None => BandPlan::Fetch {
            last_page,
            unreachable_results: first_page
                .total_result_count
                .unwrap_or(0)
                .saturating_sub(first_page.reachable_result_count()),
        },
    }
}

/// Most times one read cuts its price range in two (so at most `2 × 32 + 1` bands' first
/// pages asked for): a real market needs a few (a band holds up to 820 results), while a
/// source that keeps reporting more than a band can hold, whatever its price filter says,
/// would otherwise be cut down to one-dollar bands, thousands of requests later.
pub const MAX_PRICE_BAND_SPLITS: u32 = 32;

/// Why a [`BandSchedule`] stopped before every band was read: the read is incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandStop {
    /// A band still overflowed after [`MAX_PRICE_BAND_SPLITS`] splits.
    SplitLimit,
    /// Both halves of a band reported at least the band's own total: the price filter
    /// narrows nothing (ignored, or a stale total), so more splits would not either.
    NotNarrowing,
}

/// A band waiting for its first page, with what its parent band reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledBand {
    pub band: PriceBand,
    parent_total: Option<u64>,
    upper_half: bool,
}

/// The price bands of one read, planned as their first pages come in: [`plan_price_band`]
/// for each, within [`MAX_PRICE_BAND_SPLITS`], and stopped when a split narrows nothing.
/// The two halves of a split are handed out one after the other, so the upper half is
/// planned knowing what the lower one reported.
#[derive(Debug, Clone)]
pub struct BandSchedule {
    queue: std::collections::VecDeque<ScheduledBand>,
    splits: u32,
    /// What the lower half handed out last reported.
    lower_half_total: Option<u64>,
    stopped: Option<BandStop>,
}

impl BandSchedule {
    pub fn new(band: PriceBand) -> Self {
        Self {
            queue: std::collections::VecDeque::from([ScheduledBand {
                band,
                parent_total: None,
                upper_half: false,
            }]),
            splits: 0,
            lower_half_total: None,
            stopped: None,
        }
    }

    /// The next band whose first page to ask for; `None` once all are read or the schedule
    /// stopped.
    pub fn next_band(&mut self) -> Option<ScheduledBand> {
        let next = self.queue.pop_front()?;
        if !next.upper_half {
            // Set again when this band is planned: a lower half whose first page did not
            // come leaves its sibling nothing to compare with.
            self.lower_half_total = None;
        }
        Some(next)
    }

    /// Why the schedule stopped early, if it did.
    pub fn stopped(&self) -> Option<BandStop> {
        self.stopped
    }

    /// What to do with `scheduled` given its first page; a split queues both halves, a
    /// stop drops every band still queued.
    pub fn plan(&mut self, scheduled: ScheduledBand, first_page: &ZillowPaging) -> BandPlan {
        let total = first_page.total_result_count;
        let lower_total = if scheduled.upper_half {
            self.lower_half_total.take()
        } else {
            self.lower_half_total = total;
            None
        };
        let plan = plan_price_band(scheduled.band, first_page);
        let BandPlan::Split { lower, upper } = plan else {
            return plan;
        };
        let not_narrowing = matches!(
            (scheduled.parent_total, lower_total, total),
            (Some(parent), Some(lower), Some(upper)) if lower >= parent && upper >= parent
        );
        let stop = if not_narrowing {
            Some(BandStop::NotNarrowing)
        } else if self.splits >= MAX_PRICE_BAND_SPLITS {
            Some(BandStop::SplitLimit)
        } else {
            None
        };
        if let Some(stop) = stop {
            self.stopped = Some(stop);
            self.queue.clear();
            return BandPlan::Stop(stop);
        }
        self.splits += 1;
        for (band, upper_half) in [(lower, false), (upper, true)] {
            self.queue.push_back(ScheduledBand {
                band,
                parent_total: total,
                upper_half,
            });
        }
        plan
    }
}

/// One search: where, what, and which price band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZillowSearch {
    /// Up to five places (`"Nashville, TN"`, `"37201"`), sent joined by `;`.
    pub locations: Vec<String>,
    pub status_type: ZillowStatusType,
    /// Empty for every home type.
    pub home_types: Vec<ZillowHomeType>,
    pub price_band: PriceBand,
}

impl ZillowSearch {
    /// The query parameters for `page` (1..=20), unencoded (the HTTP client encodes them).
    pub fn query_params(&self, page: u32) -> Result<Vec<(&'static str, String)>, RequestError> {
        let invalid = |reason: String| RequestError {
            api: SourceKind::Zillow,
            reason,
        };
        if !(1..=MAX_PAGES).contains(&page) {
            return Err(invalid(format!("page {page} is outside 1..={MAX_PAGES}")));
        }
        if self.locations.is_empty() || self.locations.len() > MAX_LOCATIONS {
            return Err(invalid(format!(
                "{} locations: a search names 1..={MAX_LOCATIONS}",
                self.locations.len()
            )));
        }
        if self
            .locations
            .iter()
            .any(|place| place.trim().is_empty() || place.contains(';'))
        {
            return Err(invalid("a location is empty or contains ';'".to_owned()));
        }
        let location = self
            .locations
            .iter()
            .map(|place| place.trim())
            .collect::<Vec<_>>()
            .join(";");
        if location.chars().count() > MAX_LOCATION_CHARS {
            return Err(invalid(format!(
                "location {location:?} is longer than {MAX_LOCATION_CHARS} characters"
            )));
        }
        if let Some(max) = self.price_band.max_usd
            && max < self.price_band.min_usd
        {
            return Err(invalid(format!(
                "price band {}..={max} is empty",
                self.price_band.min_usd
            )));
        }

        let mut params = vec![
            ("location", location),
            ("page", page.to_string()),
            ("status_type", self.status_type.as_param().to_owned()),
        ];
        if !self.home_types.is_empty() {
            let home_types: Vec<&str> = self.home_types.iter().map(|t| t.as_param()).collect();
            params.push(("home_type", home_types.join(",")));
        }
        if self.price_band.min_usd > 0 {
            params.push(("minPrice", self.price_band.min_usd.to_string()));
        }
        if let Some(max) = self.price_band.max_usd {
            params.push(("maxPrice", max.to_string()));
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_addresses_split_into_parts() {
        let address =
            parse_one_line_address("309 Church St APT 610, Nashville, TN 37201").expect("address");
        assert_eq!(address.line.as_deref(), Some("309 Church St APT 610"));
        assert_eq!(address.city, "Nashville");
        assert_eq!(address.state, "TN");
        assert_eq!(address.postal_code.as_deref(), Some("37201"));

        let no_street = parse_one_line_address("Syracuse, NY 13204").expect("address");
        assert_eq!(no_street.line, None);
        assert_eq!(no_street.city, "Syracuse");

        let undisclosed =
            parse_one_line_address("(undisclosed Address), Nashville, TN 37201").expect("address");
        assert_eq!(undisclosed.line, None);

        let comma_in_street =
            parse_one_line_address("Unit 4, 12 Main St, Springfield, IL").expect("address");
        assert_eq!(comma_in_street.line.as_deref(), Some("Unit 4, 12 Main St"));
        assert_eq!(comma_in_street.postal_code, None);

        for bad in [
            "",
            "Nashville",
            "12 Main St, Nashville, 37201",
            "a, b, TN 37201 x",
        ] {
            assert!(parse_one_line_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_auction_is_no_asking_price() {
        let prop = |sub_type: Value| serde_json::json!({ "listingStatus": "FOR_SALE", "listingSubType": sub_type });
        let auction = status_and_offer(&prop(serde_json::json!({ "is_forAuction": true })));
        assert!(auction.is_err_and(|reason| reason.contains("opening bid")));
        assert_eq!(
            status_and_offer(&prop(
                serde_json::json!({ "is_forAuction": false, "is_FSBA": true })
            )),
            Ok((ListingStatus::Active, Offer::Sale))
        );
    }

    #[test]
    fn detail_urls_become_absolute() {
        assert_eq!(
            detail_url(Some("/homedetails/x/1_zpid/".into()), "1"),
            "https://www.zillow.com/homedetails/x/1_zpid/"
        );
        assert_eq!(
            detail_url(Some("https://www.zillow.com/b/".into()), "1"),
            "https://www.zillow.com/b/"
        );
        assert_eq!(
            detail_url(None, "7"),
            "https://www.zillow.com/homedetails/7_zpid/"
        );
        // A path without its slash is one on Zillow, whatever it looks like.
        assert_eq!(
            detail_url(Some("javascript:alert(1)".into()), "7"),
            "https://www.zillow.com/javascript:alert(1)"
        );
        // Alerts send it to subscribers: a link off Zillow is the listing's own page.
        for elsewhere in [
            "https://zi11ow.example/x",
            "//evil.example/x",
            "https://www.zillow.com.evil.example/x",
        ] {
            assert_eq!(
                detail_url(Some(elsewhere.into()), "7"),
                "https://www.zillow.com/homedetails/7_zpid/",
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn next_page_stops_at_the_last_reachable_page() {
        let paging = |current, total| ZillowPaging {
            current_page: Some(current),
            total_pages: Some(total),
            total_result_count: None,
            results_per_page: Some(41),
        };
        assert_eq!(paging(1, 2).next_page(), Some(2));
        assert_eq!(paging(2, 2).next_page(), None);
        assert_eq!(paging(19, 40).next_page(), Some(20));
        assert_eq!(paging(20, 40).next_page(), None);
        assert_eq!(ZillowPaging::default().next_page(), None);
    }

    #[test]
    fn price_bands_split_until_they_fit() {
        let overflowing = ZillowPaging {
            current_page: Some(1),
            total_pages: Some(20),
            total_result_count: Some(2_000),
            results_per_page: Some(41),
        };
        assert_eq!(
            plan_price_band(PriceBand::ALL, &overflowing),
            BandPlan::Split {
                lower: PriceBand {
                    min_usd: 0,
                    max_usd: Some(500_000)
                },
                upper: PriceBand {
                    min_usd: 500_001,
                    max_usd: None
                },
            }
        );
        let closed = PriceBand {
            min_usd: 100_000,
            max_usd: Some(300_000),
        };
        assert_eq!(
            closed.split(),
            Some((
                PriceBand {
                    min_usd: 100_000,
                    max_usd: Some(200_000)
                },
                PriceBand {
                    min_usd: 200_001,
                    max_usd: Some(300_000)
                }
            ))
        );
        let single = PriceBand {
            min_usd: 250_000,
            max_usd: Some(250_000),
        };
        assert_eq!(
            plan_price_band(single, &overflowing),
            BandPlan::Fetch {
                last_page: 20,
                unreachable_results: 2_000 - 820,
            }
        );
        let fitting = ZillowPaging {
            total_pages: Some(2),
            total_result_count: Some(65),
            ..overflowing
        };
        assert_eq!(
            plan_price_band(PriceBand::ALL, &fitting),
            BandPlan::Fetch {
                last_page: 2,
                unreachable_results: 0
            }
        );
        // At the top of the range an open band cannot be cut past u64::MAX.
        let top = PriceBand {
            min_usd: u64::MAX,
            max_usd: None,
        };
        assert_eq!(top.split(), None);
    }

    #[test]
    fn repeated_splitting_covers_the_range_without_overlap() {
        let mut bands = vec![PriceBand::ALL];
        for _ in 0..6 {
            bands = bands
                .into_iter()
                .flat_map(|band| match band.split() {
                    Some((lower, upper)) => vec![lower, upper],
                    None => vec![band],
                })
                .collect();
        }
        bands.sort_by_key(|band| band.min_usd);
        assert_eq!(bands[0].min_usd, 0);
        assert_eq!(bands.last().and_then(|b| b.max_usd), None);
        for pair in bands.windows(2) {
            assert_eq!(pair[0].max_usd.map(|max| max + 1), Some(pair[1].min_usd));
        }
    }

    /// Runs a read's band schedule against a source whose page 1 of a band reports
    /// `total_of(band)`: the bands asked for, and why it stopped, if it did.
    fn schedule_against(total_of: impl Fn(PriceBand) -> u64) -> (Vec<PriceBand>, Option<BandStop>) {
        let mut schedule = BandSchedule::new(PriceBand::ALL);
        let mut asked = Vec::new();
        while let Some(scheduled) = schedule.next_band() {
            asked.push(scheduled.band);
            let total = total_of(scheduled.band);
            let first_page = ZillowPaging {
                current_page: Some(1),
                total_pages: Some(u32::try_from(total.div_ceil(41)).unwrap_or(u32::MAX)),
                total_result_count: Some(total),
                results_per_page: Some(41),
            };
            schedule.plan(scheduled, &first_page);
            assert!(asked.len() < 10_000, "the schedule does not end");
        }
        (asked, schedule.stopped())
    }

    #[test]
    fn a_price_filter_the_source_ignores_stops_the_read_after_one_split() {
        // Every band says 2,000 whatever its prices: the halves narrow nothing.
        let (asked, stopped) = schedule_against(|_| 2_000);
        assert_eq!(asked.len(), 3);
        assert_eq!(stopped, Some(BandStop::NotNarrowing));
        // One half holding all of its band (every rent is under $500,000) while the other
        // is empty is a split that narrowed: splitting goes on until the bands fit.
        let (asked, stopped) = schedule_against(|band| match band.max_usd {
            Some(max) if band.min_usd == 0 && max < 100_000 => 500,
            _ if band.min_usd == 0 => 2_000,
            _ => 0,
        });
        assert_eq!(stopped, None);
        assert_eq!(
            asked.last(),
            Some(&PriceBand {
                min_usd: 62_501,
                max_usd: Some(125_000)
            })
        );
    }

    #[test]
    fn a_market_needing_up_to_the_split_limit_is_read_whole_and_one_more_is_stopped() {
        // The first `splits` bands asked for overflow, each a little smaller than the one
        // before (so the halves narrow); the rest fit.
        let overflowing_first = |splits: usize| {
            let asked = std::cell::Cell::new(0usize);
            schedule_against(move |_| {
                asked.set(asked.get() + 1);
                if asked.get() <= splits {
                    100_000 - asked.get() as u64
                } else {
                    500
                }
            })
        };
        let limit = MAX_PRICE_BAND_SPLITS as usize;
        let (asked, stopped) = overflowing_first(limit);
        assert_eq!(stopped, None);
        assert_eq!(asked.len(), 2 * limit + 1);
        let (asked, stopped) = overflowing_first(limit + 1);
        assert_eq!(stopped, Some(BandStop::SplitLimit));
        // The band that needed one split more was asked for, and nothing after it.
        assert_eq!(asked.len(), limit + 1);
        // A source that never narrows enough (halves one result short of their band) ends
        // the same way, long before one-dollar bands or the top of the range.
        let (asked, stopped) = schedule_against(|band| {
            let width = band.max_usd.unwrap_or(u64::MAX) - band.min_usd;
            1_000 + u64::from(width.max(1).ilog2())
        });
        assert_eq!(stopped, Some(BandStop::SplitLimit));
        assert_eq!(asked.len(), limit + 1);
    }

    #[test]
    fn query_params_follow_the_api_limits() {
        let search = ZillowSearch {
            locations: vec!["Nashville, TN".into(), "37201".into()],
            status_type: ZillowStatusType::ForSale,
            home_types: vec![ZillowHomeType::Condos, ZillowHomeType::MultiFamily],
            price_band: PriceBand {
                min_usd: 500_001,
                max_usd: None,
            },
        };
        assert_eq!(
            search.query_params(3).expect("valid"),
            vec![
                ("location", "Nashville, TN;37201".to_owned()),
                ("page", "3".to_owned()),
                ("status_type", "ForSale".to_owned()),
                ("home_type", "Condos,Multi-family".to_owned()),
                ("minPrice", "500001".to_owned()),
            ]
        );
        assert!(search.query_params(0).is_err());
        assert!(search.query_params(21).is_err());
        let too_many = ZillowSearch {
            locations: vec!["a".into(); 6],
            ..search.clone()
        };
        assert!(too_many.query_params(1).is_err());
        let too_long = ZillowSearch {
            locations: vec!["x".repeat(101)],
            ..search.clone()
        };
        assert!(too_long.query_params(1).is_err());
        let empty_band = ZillowSearch {
            price_band: PriceBand {
                min_usd: 10,
                max_usd: Some(5),
            },
            ..search
        };
        assert!(empty_band.query_params(1).is_err());
    }
}
