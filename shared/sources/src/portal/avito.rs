//! Avito.ma search pages. They are Next.js pages that embed their state as JSON in
//! `<script id="__NEXT_DATA__">`; the ads are read from it, not from the markup (whose
//! classes are hashed and change with every deploy).
//!
//! The ads array has been seen at two places: `props.pageProps.initialReduxState.ad.search`
//! (captures of 2024) and `props.pageProps.componentProps.ads` (2026); both are read. Field
//! mapping and evidence: `docs/sources.md`, "Avito".

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use scraper::{Html, Selector};
use serde_json::Value;

use super::text::{parse_area_sqm, parse_floor, parse_whole_number, relative_day};
use super::{
    PortalPaging, Records, Surface, absolute_url, next_link, no_listings, page_text, selector,
};
use crate::{Page, SourceError, json};
use realty_model::listing::{
    Listing, ListingDetails, ListingId, ListingSource, ListingStatus, Offer, PropertyType,
    SellerType,
};
use realty_model::markets::SourceKind;

/// Where relative links of the pages point.
pub const ORIGIN: &str = "https://www.avito.ma";

/// The ad an ad page's path names (its number), whatever its area and title:
/// `/fr/{area}/{category}/{Title}_{number}.htm` (docs/portals-research.md, 1.1). `None` for
/// any other page.
pub fn ad_identity(path: &str) -> Option<String> {
    let page = path.strip_suffix(".htm")?.rsplit('/').next()?;
    let (_, number) = page.rsplit_once('_')?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then(|| number.to_owned())
}

/// Where the ads array and the search's total have been seen, newest first.
const ADS_PLACES: [(&str, &str); 2] = [
    (
        "/props/pageProps/componentProps/ads/ads",
        "/props/pageProps/componentProps/ads/totalListingAds",
    ),
    (
        "/props/pageProps/initialReduxState/ad/search/ads",
        "/props/pageProps/initialReduxState/ad/search/currentAll",
    ),
];

/// Reads one saved or fetched Avito search page.
pub fn parse_page(bytes: &[u8], observed_at: DateTime<Utc>) -> Result<Page, SourceError> {
    static NEXT_DATA: LazyLock<Selector> = LazyLock::new(|| selector(r#"script#__NEXT_DATA__"#));
    let html = page_text(SourceKind::Avito, bytes)?;
    let document = Html::parse_document(&html);
    let script = document.select(&NEXT_DATA).next().ok_or_else(|| {
        no_listings(
            SourceKind::Avito,
            "no <script id=\"__NEXT_DATA__\"> (the page's embedded state)",
        )
    })?;
    let state_text: String = script.text().collect();
    let state: Value = serde_json::from_str(&state_text).map_err(|e| {
        no_listings(
            SourceKind::Avito,
            format!("its __NEXT_DATA__ is not JSON ({e})"),
        )
    })?;
    let (ads, total) = ADS_PLACES
        .iter()
        .find_map(|(ads, total)| {
            let ads = state.pointer(ads)?.as_array()?;
            Some((ads, state.pointer(total).and_then(json::as_number)))
        })
        .ok_or_else(|| {
            no_listings(
                SourceKind::Avito,
                format!(
                    "its __NEXT_DATA__ has no ads array at {} or {}",
                    ADS_PLACES[0].0, ADS_PLACES[1].0
                ),
            )
        })?;

    let mut records = Records::new(SourceKind::Avito, ListingSource::Avito);
    let mut skipped = 0;
    for (position, ad) in ads.iter().enumerate() {
        // New-build promotions (`isNc`; `isImmoneuf` on detail pages) sit among the ads: a
        // project, not a listing.
        if json::flag(ad, "isNc") || json::flag(ad, "isImmoneuf") {
            skipped += 1;
            continue;
        }
        records.push(position, normalize_ad(ad, observed_at), || native_id(ad));
    }
    let paging = PortalPaging {
        // A total that is not a plausible count (negative, fractional, a billion or more)
        // is no total: the read cannot be complete.
        total_results: total
            .filter(|t| (0.0..1e9).contains(t) && t.fract() == 0.0)
            .map(|t| t as u64),
        next_page: next_link(&document, ORIGIN),
        skipped,
    };
    records.into_page(paging, || {
        format!(
            "its ads array holds {} entries, none of them an ad",
            ads.len()
        )
    })
}

/// The ad's public number: `listId`, the number in its URL (`..._55565045.htm`); `id` is an
/// internal one the URL does not show.
fn native_id(ad: &Value) -> Option<String> {
    json::lenient_text(ad, "listId").or_else(|| {
        let href = json::lenient_text(ad, "href")?;
        let stem = href.strip_suffix(".htm")?;
        let digits = &stem[stem.rfind('_')? + 1..];
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.to_owned())
    })
}

/// One ad to a listing, or the reason it cannot be one.
fn normalize_ad(ad: &Value, observed_at: DateTime<Utc>) -> Result<Listing, String> {
    if !ad.is_object() {
        return Err(format!(
            "expected an ad object, found {}",
            json::describe(ad)
        ));
    }
    let native = native_id(ad).ok_or("no listId and no number in href")?;
    let id = ListingId::new(ListingSource::Avito, &native).map_err(|e| e.to_string())?;
    let category = json::field(ad, "category").ok_or("no category")?;
    let category_id = json::lenient_text(category, "id").ok_or("no category.id")?;
    let parent_id = json::field(category, "parent").and_then(|p| json::lenient_text(p, "id"));
    let property_type = property_type(&category_id, parent_id.as_deref())?;
    let offer = offer(ad, parent_id.as_deref())?;

    let price = json::field(ad, "price").ok_or("no price")?;
    let amount = json::lenient_number(price, "value")
        .ok_or("no price: the ad shows none (\"Prix non spécifié\")")?;
    let currency = currency(json::lenient_text(price, "currency").as_deref())?;
    let price_minor =
        json::to_minor(amount).ok_or_else(|| format!("price {amount} is out of range"))?;
    let previous_price_minor = json::field(ad, "oldPrice")
        .and_then(|old| json::lenient_number(old, "value"))
        .and_then(json::to_minor)
        .filter(|&old| old != price_minor);

    let (city, neighbourhood) = location(ad)?;
    let (address, market) = super::moroccan_address(city, neighbourhood)?;

    let params = Params::of(ad);
    let surface = Surface::of(params.habitable_size.or(params.size), property_type);
    let on_market_date = json::lenient_text(ad, "listTime")
        .and_then(|time| DateTime::parse_from_rfc3339(&time).ok())
        .map(|time| time.with_timezone(&Utc))
        // A publication time after the page was read is not trusted.
        .filter(|time| *time <= observed_at)
        .map(|time| time.date_naive())
        .or_else(|| {
            json::lenient_text(ad, "date").and_then(|text| relative_day(&text, observed_at))
        });

    let mut listing = Listing {
        id,
        source: ListingSource::Avito,
        status: ListingStatus::Active,
        offer,
        price_minor,
        currency: currency.to_owned(),
        previous_price_minor,
        property_type,
        beds: params.bedrooms,
        baths: params.bathrooms.map(f32::from),
        living_area_sqft: surface.living_area_sqft,
        lot_size_sqft: surface.lot_size_sqft,
        address,
        market,
        coordinates: None,
        on_market_date,
        rent_estimate_minor: None,
        source_url: json::lenient_text(ad, "href").and_then(|href| absolute_url(&href, ORIGIN)),
        observed_at,
        details: ListingDetails {
            living_area_sqm: surface.living_area_sqm,
            floor: params.floor,
            seller_type: seller_type(ad),
            equipment: params.equipment,
            images: images(ad),
        },
    };
    listing.clear_implausible_optionals();
    listing.validate().map_err(|e| e.to_string())?;
    Ok(listing)
}

/// Avito's property categories (its own category tree): the 12xx family is for sale,
/// 13xx to let; shared and holiday lets (14xx, 15xx) are not tracked.
fn property_type(category: &str, parent: Option<&str>) -> Result<PropertyType, String> {
    let known = match category {
        "1010" => Some(PropertyType::Apartment),
        // Houses, and villas and riads.
        "1020" | "1040" => Some(PropertyType::SingleFamily),
        "1080" => Some(PropertyType::Land),
        // Offices and shops.
        "1050" | "1060" => Some(PropertyType::Other),
        _ => None,
    };
    match (known, parent) {
        (Some(kind), _) => Ok(kind),
        (None, Some("1200" | "1300")) => Ok(PropertyType::Other),
        (None, Some("1400" | "1500")) => Err(format!(
            "category {category}: a shared or holiday let, not tracked"
        )),
        (None, _) => Err(format!("category {category}: not a property ad")),
    }
}

/// Sale or monthly let: the ad's type (`SELL`, `LET`; `s`, `l` on detail pages), else its
/// category's family.
fn offer(ad: &Value, parent: Option<&str>) -> Result<Offer, String> {
    let key = ["adType", "type"]
        .iter()
        .find_map(|field| json::field(ad, field).and_then(|t| json::lenient_text(t, "key")));
    match (
        key.as_deref().map(str::to_ascii_uppercase).as_deref(),
        parent,
    ) {
        (Some("SELL" | "S"), _) => Ok(Offer::Sale),
        (Some("LET" | "L"), _) => Ok(Offer::Rent),
        (Some(other), _) if !other.is_empty() => Err(format!(
            "ad type {other:?}: neither a sale nor a monthly let"
        )),
        (_, Some("1200")) => Ok(Offer::Sale),
        (_, Some("1300")) => Ok(Offer::Rent),
        _ => Err("no ad type: sale or let cannot be told".to_owned()),
    }
}

fn currency(code: Option<&str>) -> Result<&'static str, String> {
    match code.map(str::trim).map(str::to_ascii_uppercase).as_deref() {
        // Avito writes dirhams as `DH`.
        None | Some("DH" | "DHS" | "MAD") => Ok("MAD"),
        Some("EUR" | "€") => Ok("EUR"),
        Some(other) => Err(format!(
            "price currency {other:?} is not one this reader knows"
        )),
    }
}

/// City and neighbourhood: `"Marrakech, Route de Casablanca"` on search pages, an object
/// `{city: {name}, area: {name}}` on detail pages.
fn location(ad: &Value) -> Result<(String, Option<String>), String> {
    let (city, neighbourhood) = match json::field(ad, "location") {
        Some(Value::String(text)) => match text.split_once(',') {
            Some((city, area)) => (city.to_owned(), Some(area.to_owned())),
            None => (text.clone(), None),
        },
        Some(object @ Value::Object(_)) => {
            let name =
                |part: &str| json::field(object, part).and_then(|p| json::lenient_text(p, "name"));
            (name("city").unwrap_or_default(), name("area"))
        }
        _ => (String::new(), None),
    };
    let city = super::text::clean(&city);
    if city.is_empty() {
        return Err("no location: the ad names no city".to_owned());
    }
    Ok((
        city,
        neighbourhood.as_deref().and_then(super::neighbourhood),
    ))
}

/// `PRIVATE`/`private` is an owner; `STORE`/`shop` (a shop page, an agency) a professional.
fn seller_type(ad: &Value) -> Option<SellerType> {
    let kind = json::field(ad, "seller")
        .and_then(|seller| json::lenient_text(seller, "type"))
        .map(|kind| kind.to_ascii_lowercase());
    match kind.as_deref() {
        Some("private") => Some(SellerType::Private),
        Some("store" | "shop" | "pro") => Some(SellerType::Professional),
        _ if json::flag(ad, "isShop") => Some(SellerType::Professional),
        _ => None,
    }
}

fn images(ad: &Value) -> Vec<String> {
    json::field(ad, "images")
        .and_then(Value::as_array)
        .map(|images| {
            images
                .iter()
                .filter_map(Value::as_str)
                .filter(|url| url.starts_with("https://"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What the ad's `params` (`primary`, `secondary`, `extra`: `{key, label, value}` entries)
/// say about the property.
#[derive(Default)]
struct Params {
    bedrooms: Option<u16>,
    bathrooms: Option<u16>,
    /// `habitable_size`, "Surface habitable" (detail pages).
    habitable_size: Option<f64>,
    /// `size`, "Surface totale" (search pages): with a garden or terrace it counts them.
    size: Option<f64>,
    floor: Option<i16>,
    /// Labels of the `extra` flags set to `"1"` (`Ascenseur`, `Terrasse`).
    equipment: Vec<String>,
}

impl Params {
    fn of(ad: &Value) -> Self {
        let mut params = Self::default();
        let Some(groups) = json::field(ad, "params") else {
            return params;
        };
        for group in ["primary", "secondary", "extra"] {
            let entries = json::field(groups, group).and_then(Value::as_array);
            for entry in entries.into_iter().flatten() {
                params.read(group, entry);
            }
        }
        params
    }

    fn read(&mut self, group: &str, entry: &Value) {
        let Some(key) = json::lenient_text(entry, "key") else {
            return;
        };
        let value = json::field(entry, "value");
        let text = value.and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let count = || {
            text.as_deref()
                .and_then(parse_whole_number)
                .and_then(|n| u16::try_from(n).ok())
        };
        match (group, key.as_str()) {
            ("extra", _) => {
                if text.as_deref() == Some("1")
                    && let Some(label) = json::lenient_text(entry, "label")
                {
                    self.equipment.push(label);
                }
            }
            (_, "rooms") => self.bedrooms = count(),
            (_, "bathrooms") => self.bathrooms = count(),
            (_, "habitable_size") => self.habitable_size = text.as_deref().and_then(parse_area_sqm),
            (_, "size") => self.size = text.as_deref().and_then(parse_area_sqm),
            (_, "floor") => self.floor = text.as_deref().and_then(parse_floor),
            _ => {}
        }
    }
}
