//! Realtor.com via RapidAPI `realty-in-us`, `POST /properties/v3/list`.
//!
//! A page is `{"data": {"home_search": {"count", "total", "results": [...]}}}`; pages are
//! reached by `offset` until `total` ([`RealtorSearch::next_page`]).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::json;
use super::{
    Page, Paging, RecordPosition, Reject, RequestError, SourceError, SourceKind, absolute_url,
    describe_document, parse_json,
};
use realty_model::listing::{
    Address, CountryCode, Listing, ListingDetails, ListingId, ListingSource, ListingStatus,
    MarketKey, Offer, PropertyType, quote,
};

/// Largest `limit` the API accepts.
pub const MAX_LIMIT: u32 = 200;
/// Realtor.com's site, which a `permalink` is relative to.
pub const REALTOR_DETAIL_BASE_URL: &str = "https://www.realtor.com/realestateandhomes-detail/";
/// Where a listing's `href` must point.
const REALTOR_ORIGIN: &str = "https://www.realtor.com";

/// What a page said about the result set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RealtorPaging {
    /// `count`: results on this page, as the API states it.
    pub count: Option<u64>,
    /// `total`: results of the whole query.
    pub total: Option<u64>,
    /// Records actually in `results` (what the next offset advances by).
    pub records_on_page: u64,
}

/// Reads one page from its bytes.
pub fn parse_page(bytes: &[u8], observed_at: DateTime<Utc>) -> Result<Page, SourceError> {
    parse_value(&parse_json(SourceKind::Realtor, bytes)?, observed_at)
}

/// Reads one page already parsed as JSON.
pub fn parse_value(document: &Value, observed_at: DateTime<Utc>) -> Result<Page, SourceError> {
    let wrong_shape = || SourceError::WrongShape {
        api: SourceKind::Realtor,
        expected: "an object with data.home_search.results",
        found: describe_document(SourceKind::Realtor, document),
    };
    let home_search = match document.pointer("/data/home_search") {
        Some(search @ Value::Object(_)) => Some(search),
        // `home_search: null` is how the API answers a search with nothing to show; with
        // `errors` beside `data` it is a failed query.
        Some(Value::Null) if document.get("errors").is_none() => None,
        _ => return Err(wrong_shape()),
    };
    let empty = Vec::new();
    let results = match home_search.map(|search| search.get("results")) {
        None | Some(None | Some(Value::Null)) => &empty,
        Some(Some(Value::Array(results))) => results,
        Some(Some(_)) => return Err(wrong_shape()),
    };
    let paging = RealtorPaging {
        count: home_search.and_then(|s| json::lenient_count(s, "count")),
        total: home_search.and_then(|s| json::lenient_count(s, "total")),
        records_on_page: results.len() as u64,
    };

    let mut listings = Vec::with_capacity(results.len());
    let mut rejects = Vec::new();
    for (position, result) in results.iter().enumerate() {
        match normalize_result(result, observed_at) {
            Ok(listing) => listings.push(listing),
            Err(reason) => rejects.push(Reject {
                // The rental's id when the record says it is one (a sale's otherwise).
                source_id: json::lenient_text(result, "property_id")
                    .and_then(|id| {
                        let offer = status_and_offer(result).map_or(Offer::Sale, |(_, o)| o);
                        ListingId::of_offer(ListingSource::Realtor, &id, offer).ok()
                    })
                    .map(|id| id.to_string()),
                position: RecordPosition::Index(position),
                reason,
            }),
        }
    }
    Ok(Page {
        source: SourceKind::Realtor,
        listings,
        rejects,
        paging: Paging::Realtor(paging),
    })
}

fn normalize_result(result: &Value, observed_at: DateTime<Utc>) -> Result<Listing, String> {
    if !result.is_object() {
        return Err(format!(
            "expected a result object, found {}",
            json::describe(result)
        ));
    }
    let property_id = json::text(result, "property_id")?.ok_or("no property_id")?;
    let (status, offer) = status_and_offer(result)?;
    let id = ListingId::of_offer(ListingSource::Realtor, &property_id, offer)
        .map_err(|e| e.to_string())?;

    let price = json::number(result, "list_price")?.ok_or("no list_price")?;
    let price_minor =
        json::to_minor(price).ok_or_else(|| format!("list_price {price} is out of range"))?;
    // `price_reduced_amount` is the size of the last cut, a positive number.
    let previous_price_minor = json::lenient_number(result, "price_reduced_amount")
        .filter(|&cut| cut > 0.0)
        .and_then(|cut| json::to_minor(price + cut));

    let location = json::field(result, "location").unwrap_or(&Value::Null);
    let address_fields = json::field(location, "address").unwrap_or(&Value::Null);
    let address = Address {
        line: json::lenient_text(address_fields, "line"),
        city: json::lenient_text(address_fields, "city").unwrap_or_default(),
        state: json::lenient_text(address_fields, "state_code").unwrap_or_default(),
        postal_code: json::lenient_text(address_fields, "postal_code"),
        country: CountryCode::US,
        neighbourhood: None,
    };
    let market = MarketKey::for_address(&address).map_err(|e| e.to_string())?;
    let coordinate = json::field(address_fields, "coordinate").unwrap_or(&Value::Null);
    let description = json::field(result, "description").unwrap_or(&Value::Null);

    let mut listing = Listing {
        id,
        source: ListingSource::Realtor,
        status,
        offer,
        price_minor,
        currency: "USD".to_owned(),
        previous_price_minor,
        property_type: property_type(description),
        beds: json::lenient_count(description, "beds").and_then(|n| u16::try_from(n).ok()),
        baths: baths(description),
        living_area_sqft: json::lenient_number(description, "sqft")
            .and_then(json::whole_sqft)
            .and_then(|sqft| u32::try_from(sqft).ok()),
        lot_size_sqft: json::lenient_number(description, "lot_sqft").and_then(json::whole_sqft),
        address,
        market,
        coordinates: json::coordinates(coordinate, "lat", "lon"),
        // The UTC date of `list_date`.
        on_market_date: json::lenient_text(result, "list_date")
            .as_deref()
            .and_then(json::leading_date),
        rent_estimate_minor: None,
        source_url: source_url(result),
        observed_at,
        details: ListingDetails::default(),
    };
    listing.clear_implausible_optionals();
    listing.validate().map_err(|e| e.to_string())?;
    Ok(listing)
}

/// `status`, refined by the `flags` (a `for_sale` listing can be contingent or pending).
fn status_and_offer(result: &Value) -> Result<(ListingStatus, Offer), String> {
    let raw = json::text(result, "status")?.ok_or("no status")?;
    let (status, offer) = match json::folded(&raw).as_str() {
        "forsale" | "readytobuild" => (ListingStatus::Active, Offer::Sale),
        "forrent" => (ListingStatus::Active, Offer::Rent),
        "comingsoon" => (ListingStatus::ComingSoon, Offer::Sale),
        "contingent" => (ListingStatus::UnderContract, Offer::Sale),
        "pending" => (ListingStatus::Pending, Offer::Sale),
        "sold" => (ListingStatus::Sold, Offer::Sale),
        "offmarket" => (ListingStatus::OffMarket, Offer::Sale),
        _ => return Err(format!("unknown status {}", quote(&raw))),
    };
    if status != ListingStatus::Active {
        return Ok((status, offer));
    }
    let flags = json::field(result, "flags").unwrap_or(&Value::Null);
    let refined = if json::flag(flags, "is_pending") {
        ListingStatus::Pending
    } else if json::flag(flags, "is_contingent") {
        ListingStatus::UnderContract
    } else if json::flag(flags, "is_coming_soon") {
        ListingStatus::ComingSoon
    } else {
        ListingStatus::Active
    };
    Ok((refined, offer))
}

/// `description.type`, with `sub_type` deciding within the mixed condo/townhome types.
fn property_type(description: &Value) -> PropertyType {
    let sub_type = json::lenient_text(description, "sub_type").map(|t| json::folded(&t));
    match sub_type.as_deref() {
        Some("condo" | "coop" | "condop") => return PropertyType::Condo,
        Some("townhouse" | "townhome") => return PropertyType::Townhouse,
        _ => {}
    }
    match json::lenient_text(description, "type")
        .map(|t| json::folded(&t))
        .as_deref()
    {
        Some("singlefamily") => PropertyType::SingleFamily,
        Some(
            "condos" | "condo" | "coop" | "condop" | "condotownhomerowhomecoop" | "condotownhome",
        ) => PropertyType::Condo,
        Some("townhomes" | "townhouse") => PropertyType::Townhouse,
        Some("multifamily" | "duplextriplex") => PropertyType::MultiFamily,
        Some("land" | "farm") => PropertyType::Land,
        Some("mobile" | "manufactured") => PropertyType::Manufactured,
        Some("apartment") => PropertyType::Apartment,
        _ => PropertyType::Other,
    }
}

/// Full baths plus half of the half baths (as Zillow counts them: 2.5), else `baths`, a
/// count in which a half bath may count whole.
fn baths(description: &Value) -> Option<f32> {
    let full = json::lenient_number(description, "baths_full");
    let half = json::lenient_number(description, "baths_half");
    if full.is_some() || half.is_some() {
        return Some(json::tenths(
            full.unwrap_or(0.0) + 0.5 * half.unwrap_or(0.0),
        ));
    }
    json::lenient_number(description, "baths").map(json::tenths)
}

fn source_url(result: &Value) -> Option<String> {
    // On Realtor.com only: alerts send it to subscribers.
    json::lenient_text(result, "href")
        .and_then(|href| absolute_url(&href, REALTOR_ORIGIN))
        .or_else(|| {
            json::lenient_text(result, "permalink")
                .map(|permalink| format!("{REALTOR_DETAIL_BASE_URL}{permalink}"))
        })
}

/// Where to search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealtorArea {
    City { city: String, state_code: String },
    PostalCode(String),
}

/// One value of the `status` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealtorStatus {
    ForSale,
    ReadyToBuild,
    ForRent,
    Sold,
    OffMarket,
    Pending,
}

impl RealtorStatus {
    pub fn as_param(self) -> &'static str {
        match self {
            Self::ForSale => "for_sale",
            Self::ReadyToBuild => "ready_to_build",
            Self::ForRent => "for_rent",
            Self::Sold => "sold",
            Self::OffMarket => "off_market",
            Self::Pending => "pending",
        }
    }
}

/// One page request of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtorSearch {
    pub area: RealtorArea,
    pub statuses: Vec<RealtorStatus>,
    /// Page size, 1..=[`MAX_LIMIT`].
    pub limit: u32,
    pub offset: u64,
}

impl RealtorSearch {
    /// The first page of a search, at the largest page size.
    pub fn first_page(area: RealtorArea, statuses: Vec<RealtorStatus>) -> Self {
        Self {
            area,
            statuses,
            limit: MAX_LIMIT,
            offset: 0,
        }
    }

    /// The JSON body to POST. Sorted by `list_date`, newest first, so that offsets walk a
    /// stable order.
    pub fn body(&self) -> Result<Value, RequestError> {
        let invalid = |reason: String| RequestError {
            api: SourceKind::Realtor,
            reason,
        };
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(invalid(format!(
                "limit {} is outside 1..={MAX_LIMIT}",
                self.limit
            )));
        }
        if self.statuses.is_empty() {
            return Err(invalid("no status to search for".to_owned()));
        }
        let statuses: Vec<&str> = self.statuses.iter().map(|s| s.as_param()).collect();
        let mut body = json!({
            "limit": self.limit,
            "offset": self.offset,
            "status": statuses,
            "sort": {"direction": "desc", "field": "list_date"},
        });
        match &self.area {
            RealtorArea::City { city, state_code } => {
                let state_code = state_code.trim();
                if city.trim().is_empty() {
                    return Err(invalid("empty city".to_owned()));
                }
                if state_code.len() != 2 || !state_code.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(invalid(format!(
                        "state_code {state_code:?} is not a two-letter code"
                    )));
                }
                body["city"] = json!(city.trim());
                body["state_code"] = json!(state_code.to_ascii_uppercase());
            }
            RealtorArea::PostalCode(code) => {
                let code = code.trim();
                if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(format!(
                        "postal_code {code:?} is not a 5-digit ZIP"
                    )));
                }
                body["postal_code"] = json!(code);
            }
        }
        Ok(body)
    }

    /// The request after this one, given what its page said; `None` once `total` is reached
    /// or a page comes back empty.
    pub fn next_page(&self, paging: &RealtorPaging) -> Option<Self> {
        if paging.records_on_page == 0 {
            return None;
        }
        let offset = self.offset.checked_add(paging.records_on_page)?;
        (offset < paging.total?).then(|| Self {
            offset,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_the_area_and_pages_by_offset() {
        let search = RealtorSearch::first_page(
            RealtorArea::City {
                city: "Los Angeles".into(),
                state_code: "ca".into(),
            },
            vec![RealtorStatus::ForSale, RealtorStatus::ReadyToBuild],
        );
        assert_eq!(
            search.body().expect("valid"),
            json!({
                "limit": 200,
                "offset": 0,
                "city": "Los Angeles",
                "state_code": "CA",
                "status": ["for_sale", "ready_to_build"],
                "sort": {"direction": "desc", "field": "list_date"},
            })
        );
        let by_zip = RealtorSearch {
            area: RealtorArea::PostalCode("90004".into()),
            limit: 50,
            offset: 150,
            ..search.clone()
        };
        let body = by_zip.body().expect("valid");
        assert_eq!(body["postal_code"], "90004");
        assert_eq!(body["offset"], 150);
        assert!(body.get("city").is_none());

        for bad in [
            RealtorSearch {
                limit: 201,
                ..search.clone()
            },
            RealtorSearch {
                limit: 0,
                ..search.clone()
            },
            RealtorSearch {
                statuses: vec![],
                ..search.clone()
            },
            RealtorSearch {
                area: RealtorArea::PostalCode("9000".into()),
                ..search.clone()
            },
            RealtorSearch {
                area: RealtorArea::City {
                    city: "LA".into(),
                    state_code: "Calif".into(),
                },
                ..search.clone()
            },
        ] {
            assert!(bad.body().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn next_page_advances_until_total() {
        let search = RealtorSearch {
            offset: 0,
            limit: 10,
            ..RealtorSearch::first_page(
                RealtorArea::PostalCode("90004".into()),
                vec![RealtorStatus::ForSale],
            )
        };
        let page = |records_on_page| RealtorPaging {
            count: Some(records_on_page),
            total: Some(79),
            records_on_page,
        };
        let second = search.next_page(&page(10)).expect("more pages");
        assert_eq!(second.offset, 10);
        let last = RealtorSearch {
            offset: 70,
            ..search.clone()
        };
        assert_eq!(last.next_page(&page(9)), None);
        assert_eq!(search.next_page(&page(0)), None);
        let no_total = RealtorPaging {
            total: None,
            ..page(10)
        };
        assert_eq!(search.next_page(&no_total), None);
    }

    /// Two full baths and a half are 2.5 whether or not the total (3) is sent beside them;
    /// the total alone is taken as it is.
    #[test]
    fn listing_links_stay_on_realtor_com() {
        let url = |result: Value| source_url(&result);
        let page = "https://www.realtor.com/realestateandhomes-detail/1-Main-St_X_CA_90004_M1";
        assert_eq!(
            url(serde_json::json!({ "href": page })).as_deref(),
            Some(page)
        );
        // Alerts send it to subscribers: a link anywhere else gives way to the permalink.
        for elsewhere in [
            "http://www.leeziff.com",
            "https://www.realtor.com.evil.example/x",
        ] {
            assert_eq!(
                url(
                    serde_json::json!({ "href": elsewhere, "permalink": "1-Main-St_X_CA_90004_M1" })
                )
                .as_deref(),
                Some(page),
                "{elsewhere}"
            );
            assert_eq!(
                url(serde_json::json!({ "href": elsewhere })),
                None,
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn baths_are_full_and_half_counted_as_zillow_counts_them() {
        let parts = serde_json::json!({"baths": 3, "baths_full": 2, "baths_half": 1});
        assert_eq!(baths(&parts), Some(2.5));
        let without_total = serde_json::json!({"baths_full": 2, "baths_half": 1});
        assert_eq!(baths(&without_total), Some(2.5));
        assert_eq!(baths(&serde_json::json!({"baths": 3})), Some(3.0));
        assert_eq!(baths(&serde_json::json!({})), None);
    }
}
