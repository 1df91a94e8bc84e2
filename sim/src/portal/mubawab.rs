//! Mubawab.ma search pages: server-rendered cards (`div.listingBox`) in the French
//! interface, as captured pages and scrapers' outputs of 2024-2025 show them: prices with
//! no-break spaces (`1 250 000 DH`), "Prix à consulter", `Quartier, Ville`, feature spans
//! (`95 m²` over two lines, `4 Pièces`, `3 Chambres`, `2 Salles de bains`), the total in
//! `input#totalElements`. The layout change renames the feature row's classes, so every
//! card loses its surface, bedrooms and bathrooms, as a redesign would.

use chrono::{DateTime, Utc};
use std::fmt::Write as _;

use super::{AdKind, AdOffer, PortalAd, escape, french_number};
use crate::slug::slug;

/// Cards on a search page.
pub(crate) const CARDS_PER_PAGE: usize = 33;

/// `/fr/st/{city}/{category}-a-{vendre|louer}`, page N with `:p:N`.
pub(crate) fn search_path(city_slug: &str, offer: AdOffer, kind: AdKind) -> String {
    format!("/fr/st/{city_slug}/{}-a-{}", kind.category(), offer.verb())
}

/// Which search and page a path (percent-decoded, without the portal prefix) names.
pub(crate) fn parse_path(path: &str) -> Option<(String, AdOffer, AdKind, usize)> {
    let (city, search) = path.strip_prefix("/fr/st/")?.split_once('/')?;
    let (search, page) = match search.split_once(":p:") {
        Some((search, page)) => (search, page.parse().ok().filter(|p| *p >= 1)?),
        None => (search, 1),
    };
    let (kind, offer) = super::parse_search(search, "-a-")?;
    Some((city.to_owned(), offer, kind, page))
}

/// One search page. Its page numbers are drawn by script, as on the real pages: nothing in
/// the page links the next one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render(
    city: &str,
    offer: AdOffer,
    kind: AdKind,
    ads: &[PortalAd],
    total: usize,
    page: usize,
    now: DateTime<Utc>,
    changed_layout: bool,
) -> Vec<u8> {
    let path = search_path(&slug(city), offer, kind);
    let heading = match (kind, offer) {
        (AdKind::Apartment, AdOffer::Sale) => "Appartements à vendre",
        (AdKind::Apartment, AdOffer::Rent) => "Appartements à louer",
        (AdKind::House, AdOffer::Sale) => "Maisons à vendre",
        (AdKind::House, AdOffer::Rent) => "Maisons à louer",
    };
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\n<title>{heading} à \
         {city} | Mubawab</title>\n<link rel=\"canonical\" href=\"https://www.mubawab.ma{path}\" \
         />\n",
        heading = escape(heading),
        city = escape(city),
    );
    let _ = write!(
        html,
        "</head><body>\n<h1 id=\"titleText\" class=\"searchTitle inBlock floatR\">{} à {}</h1>\n\
         \t\t\t\t\t\t<span class=\"resultNum floatR\">\n\t\t\t\t\t\t\t(<span id=\"numResults\">{} \
         résultats</span>)\n\t\t\t\t\t\t</span>\n<div id=\"adList\">\n",
        escape(heading),
        escape(city),
        french_number(total as u64),
    );
    for ad in ads {
        card(&mut html, ad, now, changed_layout);
    }
    let _ = write!(
        html,
        "</div>\n<div id=\"ads\" class=\"ajaxPagination \" initialized=\"false\">\n\t\t\t<input \
         type=\"hidden\" id=\"currentPage\" value=\"{page}\" />\n\t\t\t<input type=\"hidden\" \
         id=\"totalElements\" value=\"{total}\" />\n</div>\n</body></html>\n"
    );
    html.into_bytes()
}

pub(crate) fn title(ad: &PortalAd) -> String {
    let place = ad.neighbourhood.unwrap_or(ad.city);
    let full = match (ad.kind, ad.offer) {
        (AdKind::Apartment, AdOffer::Sale) => {
            format!("Appartement à vendre à {place}. {} Pièces", ad.rooms())
        }
        // Mubawab's generated wording: the title then says no offer; the page does.
        (AdKind::Apartment, AdOffer::Rent) => {
            format!("Louez cet appartement à {place}. {} pièces", ad.rooms())
        }
        (AdKind::House, AdOffer::Sale) => {
            format!("Villa à vendre à {place}. {} Chambres", ad.bedrooms)
        }
        (AdKind::House, AdOffer::Rent) => format!("Maison à louer à {place}"),
    };
    // Long titles are cut at 60 characters on the cards.
    if full.chars().count() > 60 {
        let cut: String = full.chars().take(60).collect();
        format!("{cut}...")
    } else {
        full
    }
}

fn card(html: &mut String, ad: &PortalAd, now: DateTime<Utc>, changed_layout: bool) {
    let title = title(ad);
    let url = format!(
        "https://www.mubawab.ma/fr/a/{}/{}",
        ad.id,
        slug(&title.replace("...", ""))
    );
    card_photos(html, ad, &url, &title);
    card_heading(html, ad, now, &url, &title);
    card_details(html, ad, changed_layout);
    let _ = writeln!(
        html,
        "\t\t\t\t</div>\n\t\t\t\t<div class=\"disFlex adFeatures\">"
    );
    for label in &ad.equipment {
        let _ = writeln!(
            html,
            "\t\t\t\t\t<div class=\"adFeature\"><i class=\"characIcon\"></i><span class=\"fSize12 \
             centered\">{}</span></div>",
            escape(label)
        );
    }
    let _ = writeln!(html, "\t\t\t\t</div>\n\t\t\t</div>\n\t\t</div>");
}

/// The card's opening and its photo slider.
fn card_photos(html: &mut String, ad: &PortalAd, url: &str, title: &str) {
    let premium = if ad.featured { " sPremium" } else { "" };
    let _ = write!(
        html,
        "<div class=\"listingBox w100{premium}\" linkRef=\"{url}\">\n\t\t\t<input type=\"hidden\" \
         class=\"adId\" value=\"{id}\" />\n\t\t\t<div class=\"photoBox\"><div class=\"adSlider\" \
         ad=\"{id}\">\n",
        url = escape(url),
        id = ad.id,
    );
    for n in 0..ad.photos {
        let _ = writeln!(
            html,
            "\t\t\t\t<div class=\"photoMask pictureHeight\"><img class=\"w100 sliderImage\" \
             data-lazy=\"https://www.mubawab-media.com/ad/{}/{n}/h/photo_{n}.avif\" alt=\"{}\" \
             /></div>",
            ad.id,
            escape(title)
        );
    }
}

/// The card's price, title (the ad's link) and place.
fn card_heading(html: &mut String, ad: &PortalAd, now: DateTime<Utc>, url: &str, title: &str) {
    let price = match ad.price_at(now) {
        // Digits grouped by no-break spaces, a plain space before "DH".
        Some(price) => format!("{} DH", french_number(price)),
        None => "Prix à consulter".to_owned(),
    };
    let location = match ad.neighbourhood {
        Some(quarter) => format!("{quarter}, {}", ad.city),
        None => ad.city.to_owned(),
    };
    let _ = write!(
        html,
        "\t\t\t</div></div>\n\t\t\t<div class=\"contentBox\">\n\t\t\t\t<div class=\"priceBar w100\">\
         <span class=\"priceTag hardShadow float-left\">{price}\n\t\t\t\t\t\t</span></div>\n\t\t\t\t\
         <div class=\"disFlex titleRow\"><h2 class=\"listingTit\">\n\t\t\t\t\t<a href=\"{url}\">\
         {title}\n\n\t\t\t\t\t</a>\n\t\t\t\t</h2></div>\n\t\t\t\t<div class=\"contactBar\"><span \
         class=\"listingH3\">\n\t\t\t\t\t<i class=\"icon-location\"></i>{location}\n\t\t\t\t</span>\
         </div>\n",
        price = escape(&price),
        url = escape(url),
        title = escape(title),
        location = escape(&location),
    );
}

/// The card's area, rooms, bedrooms and bathrooms (the portal's changed layout names
/// their classes differently).
fn card_details(html: &mut String, ad: &PortalAd, changed_layout: bool) {
    let (feature, icon) = if changed_layout {
        ("adDetailsItem", "adDetailsItemIcon")
    } else {
        ("adDetailFeature", "adDetailFeatureIcon")
    };
    let mut features = Vec::new();
    if let Some(area) = ad.area_sqm {
        features.push((
            "icon-triangle",
            format!("\n\t\t\t\t\t\t{area}\n\t\t\t\t\t\tm²\n\t\t\t\t\t"),
        ));
    }
    let rooms = ad.rooms();
    features.push((
        "icon-house-boxes",
        format!("{rooms} {}", if rooms == 1 { "Pièce" } else { "Pièces" }),
    ));
    features.push(("icon-bed", format!("{} Chambres", ad.bedrooms)));
    if let Some(baths) = ad.bathrooms {
        features.push(("icon-bath", format!("{baths} Salles de bains")));
    }
    let _ = writeln!(html, "\t\t\t\t<div class=\"disFlex adDetails\">");
    for (icon_class, text) in features {
        let icon_class = if changed_layout {
            icon_class.replace("icon-", "ic-")
        } else {
            icon_class.to_owned()
        };
        let _ = writeln!(
            html,
            "\t\t\t\t\t<div class=\"{feature}\"><i class=\"{icon_class} {icon}\"></i><span>{}</span></div>",
            escape(&text)
        );
    }
}
