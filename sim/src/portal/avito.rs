//! Avito.ma search pages: a Next.js page whose state (`<script id="__NEXT_DATA__">`) holds
//! the ads where the pages of 2026 hold them (`props.pageProps.componentProps.ads`: `ads`,
//! `totalListingAds`; each ad as the captured 2024 pages write it, the fixture the reader is
//! tested on), with new-build promotions (`isNc`) every fifth entry. The layout change moves
//! the ads where no reader looks for them, as a redesign would.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{AdKind, AdOffer, PortalAd, escape, relative_date};
use crate::slug::{LetterCase, dashed, slug};

/// Ads on a search page, besides its promotions.
pub(crate) const ADS_PER_PAGE: usize = 35;

/// `/fr/{city}/{category}-à_{vendre|louer}` with the `o` (page) parameter.
pub(crate) fn search_path(city_slug: &str, offer: AdOffer, kind: AdKind) -> String {
    format!("/fr/{city_slug}/{}-à_{}", kind.category(), offer.verb())
}

/// Which search a path (percent-decoded, without the portal prefix) names.
pub(crate) fn parse_path(path: &str) -> Option<(String, AdOffer, AdKind)> {
    let (city, search) = path.strip_prefix("/fr/")?.split_once('/')?;
    let (kind, offer) = super::parse_search(search, "-à_")?;
    Some((city.to_owned(), offer, kind))
}

/// One search page.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render(
    city: &str,
    offer: AdOffer,
    kind: AdKind,
    ads: &[PortalAd],
    total: usize,
    page: usize,
    more: bool,
    now: DateTime<Utc>,
    changed_layout: bool,
) -> Vec<u8> {
    let mut entries = Vec::with_capacity(ads.len() + ads.len() / 4);
    for (i, ad) in ads.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            entries.push(promotion(city, page, i));
        }
        entries.push(ad_json(ad, now));
    }
    let state = if changed_layout {
        json!({"props": {"pageProps": {"componentProps": {"searchResults": {
            "items": entries, "count": total}}}},
            "page": "/[lang]/[...slug]", "buildId": "sim-2", "isFallback": false})
    } else {
        json!({"props": {"pageProps": {"componentProps": {"ads": {
            "ads": entries, "totalListingAds": total}}}},
            "page": "/[lang]/[...slug]", "buildId": "sim-1", "isFallback": false})
    };
    let path = search_path(&slug(city), offer, kind);
    let next = if more {
        format!(r#"<link rel="next" href="{}?o={}">"#, path, page + 1)
    } else {
        String::new()
    };
    let what = match (kind, offer) {
        (AdKind::Apartment, AdOffer::Sale) => "Appartements à vendre",
        (AdKind::Apartment, AdOffer::Rent) => "Appartements à louer",
        (AdKind::House, AdOffer::Sale) => "Maisons à vendre",
        (AdKind::House, AdOffer::Rent) => "Maisons à louer",
    };
    // `</` cannot occur in the JSON text (serde_json escapes nothing there, so guard it).
    let state = state.to_string().replace("</", "<\\/");
    format!(
        "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{} - {} - Avito \
         Maroc</title>{next}</head><body><div id=\"__next\"></div><script id=\"__NEXT_DATA__\" \
         type=\"application/json\">{state}</script></body></html>",
        escape(what),
        escape(city),
    )
    .into_bytes()
}

pub(crate) fn title(ad: &PortalAd) -> String {
    let place = ad.neighbourhood.unwrap_or(ad.city);
    if ad.arabic_title {
        return match (ad.kind, ad.offer) {
            (AdKind::Apartment, AdOffer::Sale) => format!("شقة للبيع في {place}"),
            (AdKind::Apartment, AdOffer::Rent) => format!("شقة للكراء في {place}"),
            (AdKind::House, AdOffer::Sale) => format!("فيلا للبيع في {place}"),
            (AdKind::House, AdOffer::Rent) => format!("فيلا للكراء في {place}"),
        };
    }
    let what = match ad.kind {
        AdKind::Apartment => "Appartement",
        AdKind::House => "Villa",
    };
    let offer = match ad.offer {
        AdOffer::Sale => "à vendre",
        AdOffer::Rent => "à louer",
    };
    match ad.area_sqm {
        Some(area) => format!("{what} {offer} {area} m² à {place}"),
        None => format!("{what} {} chambres {offer} à {place}", ad.bedrooms),
    }
}

fn ad_json(ad: &PortalAd, now: DateTime<Utc>) -> Value {
    let (category, name) = match ad.kind {
        AdKind::Apartment => ("1010", "Appartements"),
        AdKind::House => ("1040", "Villas et Riads"),
    };
    let (parent, family, ad_type) = match ad.offer {
        AdOffer::Sale => (
            "1200",
            "Ventes Immobilières",
            json!({"key": "SELL", "label": "à vendre"}),
        ),
        AdOffer::Rent => (
            "1300",
            "Locations Immobilières",
            json!({"key": "LET", "label": "à louer"}),
        ),
    };
    let price = ad.price_at(now);
    let before = ad
        .price_edits
        .iter()
        .rev()
        .find(|(at, _)| *at <= now)
        .and_then(|(at, _)| ad.price_at(*at - chrono::TimeDelta::milliseconds(1)));
    let mut secondary = vec![
        json!({"key": "rooms", "label": "Chambres", "value": ad.bedrooms.to_string(),
               "trackingValue": ad.bedrooms.to_string()}),
    ];
    if let Some(baths) = ad.bathrooms {
        secondary.push(json!({"key": "bathrooms", "label": "Salle de bain",
                              "value": baths.to_string(), "trackingValue": baths.to_string()}));
    }
    if let Some(area) = ad.area_sqm {
        secondary
            .push(json!({"key": "size", "label": "Surface totale", "value": area, "unit": "m²"}));
    }
    let subject = title(ad);
    let area_slug = slug(ad.neighbourhood.unwrap_or(ad.city));
    let images: Vec<String> = (0..ad.photos)
        .map(|n| {
            format!(
                "https://content.avito.ma/classifieds/images/{}{n:02}?t=images",
                ad.id
            )
        })
        .collect();
    json!({
        "id": (ad.id.parse::<u64>().unwrap_or(0) + 18_000_000).to_string(),
        "listId": ad.id,
        "hasShipping": false,
        "category": {"formatted": format!("{family} - {name}"), "name": name, "id": category,
                     "parent": {"id": parent}},
        "adType": ad_type,
        "subject": subject,
        "seller": if ad.private_seller {
            json!({"type": "PRIVATE", "name": "Particulier"})
        } else {
            json!({"type": "STORE", "name": "Agence Immobilière"})
        },
        "price": price.map_or(json!({}), |value| json!({"value": value, "currency": "DH"})),
        "oldPrice": before.map_or(json!({}), |value| json!({"value": value, "currency": "DH"})),
        "defaultImage": images.first(),
        "images": images,
        "videos": [],
        "params": {"secondary": secondary},
        "location": format!("{}, {}", ad.city, ad.neighbourhood.unwrap_or("Autre secteur")),
        "date": relative_date(ad.posted_at, now),
        "isHighlighted": ad.featured,
        "isImmoneuf": false,
        "isShop": !ad.private_seller,
        "isUrgent": false,
        "href": format!("https://www.avito.ma/fr/{area_slug}/{}/{}_{}.htm",
            match ad.kind { AdKind::Apartment => "appartements", AdKind::House => "villas_et_riads" },
            dashed(&subject, LetterCase::Kept).replace('-', "_"), ad.id),
    })
}

/// A new-build promotion among the ads: a project, not a listing.
fn promotion(city: &str, page: usize, position: usize) -> Value {
    json!({
        "isNc": true,
        "id": format!("https://immoneuf.avito.ma/fr/unite/p{page}x{position}?utm_source=avito_integration"),
        "subject": format!("Résidence Les Jardins {page}-{position}"),
        "price": {"value": 650_000 + 25_000 * position as u64, "currency": "DH"},
        "category": {"formatted": "Immobilier neuf"},
        "location": city,
        "href": format!("https://immoneuf.avito.ma/fr/unite/p{page}x{position}?utm_source=avito_integration"),
        "images": [],
    })
}
