//! Mubawab.ma search pages: server-rendered HTML with one card per listing
//! (`div.listingBox`). Fields are read by class and by icon (`icon-bed`, `icon-bath`), not
//! by the interface's words, so the French and English pages read alike; offer and kind of
//! property come from the card's title (`Appartement à vendre à ...`, `Apartment for rent
//! in ...`), or the page's own address when the title does not say. Mapping and evidence:
//! `docs/sources.md`, "Mubawab".

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use scraper::{ElementRef, Html, Selector};

use super::text::{clean, is_per_month, parse_area_sqm, parse_price, parse_whole_number};
use super::{PortalPaging, Records, Surface, absolute_url, next_link, page_text, selector};
use crate::{Page, SourceError};
use realty_model::listing::{
    Listing, ListingDetails, ListingId, ListingSource, ListingStatus, Offer, PropertyType,
};
use realty_model::markets::SourceKind;

/// Where relative links of the pages point.
pub const ORIGIN: &str = "https://www.mubawab.ma";

/// The ad an ad page's path names, whatever its locale and slug: `a/{number}` for
/// `/{locale}/a/{number}/{slug}`, `pa/{number}` for a project's `/{locale}/pa/{number}/...`
/// (two routes, not known to be one ad: docs/portals-research.md, 2.1). `None` for any other
/// page (a search, a seller's `/fr/b/{number}`).
pub fn ad_identity(path: &str) -> Option<String> {
    let mut segments = path.split('/').filter(|s| !s.is_empty()).skip(1);
    let route = segments.next().filter(|r| matches!(*r, "a" | "pa"))?;
    let number = segments.next()?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{route}/{number}"))
}

struct Selectors {
    card: Selector,
    ad_id: Selector,
    title: Selector,
    title_link: Selector,
    price: Selector,
    price_down: Selector,
    location: Selector,
    feature: Selector,
    feature_icon: Selector,
    feature_text: Selector,
    equipment: Selector,
    image: Selector,
    page_address: Selector,
    page_title: Selector,
    total: Selector,
}

static SELECTORS: LazyLock<Selectors> = LazyLock::new(|| Selectors {
    card: selector("div.listingBox, li.listingBox"),
    ad_id: selector("input.adId"),
    title: selector("h2.listingTit"),
    title_link: selector("h2.listingTit a[href]"),
    price: selector("span.priceTag"),
    price_down: selector("span.priceDown"),
    location: selector("span.listingH3"),
    feature: selector("div.adDetailFeature"),
    feature_icon: selector("i"),
    feature_text: selector("span"),
    equipment: selector("div.adFeature span"),
    // The main slider only: the side column repeats its photos in a smaller size.
    image: selector("div.adSlider img"),
    page_address: selector(r#"link[rel="canonical"], meta[property="og:url"]"#),
    page_title: selector("h1#titleText"),
    total: selector("input#totalElements"),
});

/// Reads one saved or fetched Mubawab search page.
pub fn parse_page(bytes: &[u8], observed_at: DateTime<Utc>) -> Result<Page, SourceError> {
    let html = page_text(SourceKind::Mubawab, bytes)?;
    let document = Html::parse_document(&html);
    let page_offer = page_offer(&document);
    let mut records = Records::new(SourceKind::Mubawab, ListingSource::Mubawab);
    for (position, card) in document.select(&SELECTORS.card).enumerate() {
        records.push(
            position,
            normalize_card(card, page_offer, observed_at),
            || native_id(card),
        );
    }
    let paging = PortalPaging {
        total_results: document
            .select(&SELECTORS.total)
            .next()
            .and_then(|input| input.value().attr("value"))
            .and_then(parse_whole_number)
            // A billion or more is not a search's count: no total.
            .filter(|total| *total < 1_000_000_000),
        // The page numbers are drawn by script; the links the page does carry (`...:p:2`)
        // are disallowed by Mubawab's robots.txt anyway.
        next_page: next_link(&document, ORIGIN),
        skipped: 0,
    };
    records.into_page(paging, || "no listing card (div.listingBox)".to_owned())
}

/// The listing's URL: the card's `linkRef` (HTML attribute names are read lower-cased), else
/// its title's link.
fn card_url(card: ElementRef<'_>) -> Option<String> {
    card.value()
        .attr("linkref")
        .or_else(|| {
            card.select(&SELECTORS.title_link)
                .next()
                .and_then(|a| a.value().attr("href"))
        })
        .and_then(|href| absolute_url(href.trim(), ORIGIN))
}

/// The ad number: the card's hidden `adId`, else the number after `/a/` or `/pa/` in its URL
/// (the slug after it is not stable).
fn native_id(card: ElementRef<'_>) -> Option<String> {
    let hidden = card
        .select(&SELECTORS.ad_id)
        .next()
        .and_then(|input| input.value().attr("value"))
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    if let Some(id) = hidden {
        return Some(id.to_owned());
    }
    let url = card_url(card)?;
    let path = url.split_once("://")?.1;
    let mut segments = path.split('/');
    segments.find(|segment| *segment == "a" || *segment == "pa")?;
    let id = segments.next()?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_owned())
}

fn text_of(element: ElementRef<'_>) -> String {
    clean(&element.text().collect::<String>())
}

fn first_text(card: ElementRef<'_>, selector: &Selector) -> Option<String> {
    card.select(selector)
        .next()
        .map(text_of)
        .filter(|text| !text.is_empty())
}

fn normalize_card(
    card: ElementRef<'_>,
    page_offer: Option<Offer>,
    observed_at: DateTime<Utc>,
) -> Result<Listing, String> {
    let native = native_id(card).ok_or("no ad number (adId, or /a/<number>/ in its link)")?;
    let id = ListingId::new(ListingSource::Mubawab, &native).map_err(|e| e.to_string())?;
    let title = first_text(card, &SELECTORS.title).ok_or("no title (h2.listingTit)")?;
    // The search's own offer first: a title's "great location" is no let. The title still
    // refuses holiday and shared lets, and decides on a page that does not say.
    let from_title = title_offer(&title)?;
    let offer = page_offer
        .or(from_title)
        .ok_or("neither the page nor the title tells sale from let")?;
    let price_text = first_text(card, &SELECTORS.price).ok_or("no price (span.priceTag)")?;
    if offer == Offer::Sale && is_per_month(&price_text) {
        return Err(format!(
            "price {:?} is per month: a rent, on a listing for sale",
            clean(&price_text)
        ));
    }
    let (price_minor, currency) =
        parse_price(&price_text)?.ok_or("no price: the listing shows a price on request")?;
    // "Decreased by 1,000 DH" / "Baisse de 1 000 DH": the price before the cut.
    let previous_price_minor = first_text(card, &SELECTORS.price_down)
        .and_then(|text| parse_price(&text).ok().flatten())
        .filter(|(_, cut_currency)| *cut_currency == currency)
        .and_then(|(cut, _)| price_minor.checked_add(cut));

    let location = first_text(card, &SELECTORS.location).ok_or("no location (span.listingH3)")?;
    let (city, neighbourhood) = split_location(&location);
    let (address, market) = super::moroccan_address(city, neighbourhood)?;

    let features = Features::of(card);
    let property_type = title_property_type(&title);
    let surface = Surface::of(features.area_sqm, property_type);

    let mut listing = Listing {
        id,
        source: ListingSource::Mubawab,
        status: ListingStatus::Active,
        offer,
        price_minor,
        currency: currency.to_owned(),
        previous_price_minor,
        property_type,
        beds: features.bedrooms,
        baths: features.bathrooms.map(f32::from),
        living_area_sqft: surface.living_area_sqft,
        lot_size_sqft: surface.lot_size_sqft,
        address,
        market,
        coordinates: None,
        // Search cards carry no publication date.
        on_market_date: None,
        rent_estimate_minor: None,
        source_url: card_url(card),
        observed_at,
        details: ListingDetails {
            living_area_sqm: surface.living_area_sqm,
            floor: None,
            seller_type: None,
            equipment: card
                .select(&SELECTORS.equipment)
                .map(text_of)
                .filter(|label| !label.is_empty())
                .collect(),
            images: images(card),
        },
    };
    listing.clear_implausible_optionals();
    listing.validate().map_err(|e| e.to_string())?;
    Ok(listing)
}

/// `Hassan - Centre Ville, Rabat` (neighbourhood, then the city after the last comma), or
/// `Guéliz à Marrakech`; a bare name is the city.
fn split_location(location: &str) -> (String, Option<String>) {
    let split = location
        .rsplit_once(',')
        .or_else(|| location.rsplit_once(" à "));
    match split {
        Some((neighbourhood, city)) => (clean(city), super::neighbourhood(neighbourhood)),
        None => (clean(location), None),
    }
}

/// Sale or let from a title's words, in French or English, matched as whole words:
/// `à louer`, `location`, `for rent` against `à vendre`, `vente`, `for sale`. `Ok(None)`
/// when the title says neither or both (the page's own offer decides); a shared or holiday
/// let (`colocation`, `saisonnière`, `vacances`, `holiday`) is refused, as on Avito.
fn title_offer(title: &str) -> Result<Option<Offer>, String> {
    let lower = title.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |word: &str| words.contains(&word);
    let pair =
        |first: &str, second: &str| words.windows(2).any(|w| w[0] == first && w[1] == second);
    if [
        "colocation",
        "saisonnière",
        "saisonniere",
        "vacances",
        "holiday",
        "vacation",
    ]
    .iter()
    .any(|word| has(word))
    {
        return Err(format!(
            "title {}: a shared or holiday let, not tracked",
            realty_model::listing::quote(title)
        ));
    }
    let rent = has("louer") || has("location") || pair("for", "rent");
    let sale = has("vendre") || has("vente") || pair("for", "sale");
    Ok(match (rent, sale) {
        (true, false) => Some(Offer::Rent),
        (false, true) => Some(Offer::Sale),
        _ => None,
    })
}

/// Sale or let from the page: its heading (`Real Estate for rent in Morocco`), or its own
/// address (`link[rel=canonical]`, `og:url`: `...-a-louer`, `...-for-rent`, `...-a-vendre`).
fn page_offer(document: &Html) -> Option<Offer> {
    if let Some(offer) = document
        .select(&SELECTORS.page_title)
        .next()
        .and_then(|h1| title_offer(&text_of(h1)).ok().flatten())
    {
        return Some(offer);
    }
    document
        .select(&SELECTORS.page_address)
        .filter_map(|e| e.value().attr("href").or_else(|| e.value().attr("content")))
        .find_map(|url| {
            let url = url.to_lowercase();
            if url.contains("-a-louer") || url.contains("for-rent") {
                Some(Offer::Rent)
            } else if url.contains("-a-vendre") || url.contains("for-sale") {
                Some(Offer::Sale)
            } else {
                None
            }
        })
}

/// The kind of property: the first word of the title that names one (`Appartement à
/// vendre`, `High quality villa for rent`); `other` when none does.
fn title_property_type(title: &str) -> PropertyType {
    let lower = title.to_lowercase();
    lower
        .split(|c: char| !c.is_alphanumeric())
        .find_map(|word| match word {
            "appartement" | "appartements" | "apartment" | "apartments" | "studio" | "duplex"
            | "penthouse" | "triplex" | "flat" => Some(PropertyType::Apartment),
            "maison" | "maisons" | "house" | "houses" | "villa" | "villas" | "riad" | "riads" => {
                Some(PropertyType::SingleFamily)
            }
            "terrain" | "terrains" | "land" | "plot" | "ferme" | "farm" => Some(PropertyType::Land),
            "bureau" | "bureaux" | "office" | "offices" | "local" | "locaux" | "magasin"
            | "commerce" | "shop" | "plateau" | "entrepôt" | "warehouse" => {
                Some(PropertyType::Other)
            }
            _ => None,
        })
        .unwrap_or(PropertyType::Other)
}

/// Photo URLs: the main slider's images, lazy-loaded (`data-lazy`) or not.
fn images(card: ElementRef<'_>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    card.select(&SELECTORS.image)
        .filter_map(|image| {
            let element = image.value();
            ["data-lazy", "src"]
                .iter()
                .find_map(|attr| element.attr(attr))
                .map(str::trim)
                .filter(|url| url.starts_with("https://"))
        })
        .filter(|url| seen.insert(*url))
        .map(str::to_owned)
        .collect()
}

/// The card's icon row: area (`icon-triangle`), bedrooms (`icon-bed`), bathrooms
/// (`icon-bath`); rooms in all (`icon-house-boxes`) have no canonical field.
#[derive(Default)]
struct Features {
    area_sqm: Option<f64>,
    bedrooms: Option<u16>,
    bathrooms: Option<u16>,
}

impl Features {
    fn of(card: ElementRef<'_>) -> Self {
        let mut features = Self::default();
        for feature in card.select(&SELECTORS.feature) {
            let Some(icon) = feature
                .select(&SELECTORS.feature_icon)
                .next()
                .and_then(|i| i.value().attr("class"))
            else {
                continue;
            };
            let Some(text) = first_text(feature, &SELECTORS.feature_text) else {
                continue;
            };
            let count = || parse_whole_number(&text).and_then(|n| u16::try_from(n).ok());
            let classes: Vec<&str> = icon.split_whitespace().collect();
            if classes.contains(&"icon-triangle") {
                features.area_sqm = parse_area_sqm(&text);
            } else if classes.contains(&"icon-bed") {
                features.bedrooms = count();
            } else if classes.contains(&"icon-bath") {
                features.bathrooms = count();
            }
        }
        features
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_tell_sale_from_let_by_whole_words() {
        let offer = |title| title_offer(title);
        assert_eq!(offer("Appartement à louer à Rabat"), Ok(Some(Offer::Rent)));
        assert_eq!(offer("Apartment for rent in Racine"), Ok(Some(Offer::Rent)));
        assert_eq!(offer("Villa en vente à Agadir"), Ok(Some(Offer::Sale)));
        assert_eq!(offer("Appartement vente Maarif"), Ok(Some(Offer::Sale)));
        assert_eq!(
            offer("Flat for rental investment, for sale"),
            Ok(Some(Offer::Sale))
        );
        // Both, or neither: the page decides.
        assert_eq!(offer("Appartement à vendre, idéal pour location"), Ok(None));
        assert_eq!(offer("Bel appartement lumineux"), Ok(None));
        assert!(offer("Location vacances villa avec piscine").is_err());
        assert!(offer("Colocation chambre meublée").is_err());
    }

    /// The search's offer wins over a title's words ("great location" on a sale page), and
    /// a price per month is no sale's price.
    #[test]
    fn the_page_s_offer_decides_and_a_sale_is_never_priced_per_month() {
        let page = |h1: &str, title: &str, price: &str| {
            format!(
                r#"<html><body><h1 id="titleText">{h1}</h1><div class="listingBox">
                <input class="adId" value="8267762"><h2 class="listingTit">{title}</h2>
                <span class="priceTag">{price}</span><span class="listingH3">Maarif, Casablanca</span>
                </div></body></html>"#
            )
        };
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 20, 9, 0, 0).unwrap();
        let read = |html: String| parse_page(html.as_bytes(), at).expect("a page");
        let sale = read(page(
            "Real estate for sale in Casablanca",
            "Apartment with a great location",
            "1 500 000 DH",
        ));
        assert_eq!(sale.listings.len(), 1, "{:?}", sale.rejects);
        assert_eq!(sale.listings[0].offer, Offer::Sale);
        let monthly = read(page(
            "Real estate for sale in Casablanca",
            "Apartment in Maarif",
            "60 000 DH/mois",
        ));
        assert!(monthly.listings.is_empty());
        assert!(
            monthly.rejects[0].reason.contains("per month"),
            "{:?}",
            monthly.rejects
        );
        // A page that does not say leaves it to the title.
        let let_ = read(page(
            "Casablanca",
            "Apartment for rent in Maarif",
            "8 000 DH/mois",
        ));
        assert_eq!(let_.listings[0].offer, Offer::Rent);
    }

    #[test]
    fn property_types_from_the_first_word_that_names_one() {
        assert_eq!(
            title_property_type("High quality villa for rent"),
            PropertyType::SingleFamily
        );
        assert_eq!(title_property_type("Terrain à vendre"), PropertyType::Land);
        assert_eq!(
            title_property_type("Great apartment"),
            PropertyType::Apartment
        );
        assert_eq!(title_property_type("Bien rare"), PropertyType::Other);
    }
}
