//! What the simulated portals answer: their robots.txt, their search pages and their ad
//! pages, from the ads up at the current simulated time (an ad taken down is a 404, or a
//! redirect to its search). Each portal is served under its own path prefix
//! (`/avito`, `/mubawab`), which stands for its host: a poller's base URL for the portal is
//! `http://SIM/avito` where it would be `https://www.avito.ma`.

use chrono::{DateTime, Utc};

use super::{AdKind, Portal, Portals, Search, avito, moroccan_cities, mubawab};
use crate::api::Reply;

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Avito's robots.txt as seen in 2026: groups for named crawlers only, none for `*`
/// (docs/portals-research.md, 1.5).
const AVITO_ROBOTS: &str = "User-agent: Googlebot\nDisallow: /api/v1\n\nUser-agent: \
                            AdsBot-Google-Mobile-Apps\nDisallow: /api/v1\n\nSitemap: \
                            https://www.avito.ma/sitemap.xml\n";
/// Mubawab's robots.txt as quoted on 2026-09-04: every URL with a colon (its page numbers)
/// is disallowed.
const MUBAWAB_ROBOTS: &str = "User-agent: *\nDisallow: /*:\nDisallow: /*?n=1\n";

pub(crate) fn html(status: u16, body: Vec<u8>) -> Reply {
    Reply {
        status,
        content_type: HTML,
        headers: Vec::new(),
        body,
    }
}

fn not_found(what: &str) -> Reply {
    html(
        404,
        format!(
            "<!DOCTYPE html><html><head><title>Page introuvable</title></head><body><h1>Page \
             introuvable</h1><p>{}</p></body></html>",
            super::escape(what)
        )
        .into_bytes(),
    )
}

/// The number of the ad an ad page's path names: Avito's
/// `/fr/{area}/{category}/{subject}_{number}.htm`, Mubawab's `/fr/a/{number}/{slug}`.
fn ad_number(portal: Portal, path: &str) -> Option<&str> {
    match portal {
        Portal::Avito => path.strip_suffix(".htm")?.rsplit_once('_').map(|(_, n)| n),
        Portal::Mubawab => path.strip_prefix("/fr/a/")?.split('/').next(),
    }
    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// An ad's own page: its title, price and place (the poller asks only whether it is up).
fn ad_page(ad: &super::PortalAd, now: DateTime<Utc>) -> Vec<u8> {
    let title = match ad.portal {
        Portal::Avito => avito::title(ad),
        Portal::Mubawab => mubawab::title(ad),
    };
    let price = ad.price_at(now).map_or_else(
        || "Prix non spécifié".to_owned(),
        |p| format!("{} DH", super::french_number(p)),
    );
    format!(
        "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         </head><body><h1>{title}</h1><p class=\"price\">{price}</p><p>{place}</p></body></html>",
        title = super::escape(&title),
        price = super::escape(&price),
        place = super::escape(&format!(
            "{}, {}",
            ad.neighbourhood.unwrap_or("Autre secteur"),
            ad.city
        )),
    )
    .into_bytes()
}

/// How the portals misbehave at the moment (the handle's faults).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PortalFaults {
    /// Pages in a changed layout ([`crate::SimHandle::change_portal_layout`]).
    pub changed_layout: bool,
    /// Searches of this kind answer no result ([`crate::SimHandle::empty_portal_search`]).
    pub emptied: Option<AdKind>,
    /// The searches of the first city redirect to the second's
    /// ([`crate::SimHandle::redirect_portal_city`]).
    pub city_redirect: Option<(usize, usize)>,
    /// A taken-down ad's page redirects to its search instead of a 404
    /// ([`crate::SimHandle::redirect_taken_down_ads`]).
    pub taken_down_redirect: bool,
}

/// A 301 to `path` (percent-decoded, after the portal's prefix) on `portal`, with `query`.
fn moved(portal: Portal, path: &str, query: Option<&str>) -> Reply {
    let encoded: Vec<String> = path.split('/').map(crate::api::percent_encode).collect();
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let mut reply = html(301, Vec::new());
    reply.headers.push((
        "location",
        format!("/{}{}{query}", portal.as_str(), encoded.join("/")),
    ));
    reply
}

/// The address of a search, on `portal`, from its site's root.
fn search_path(portal: Portal, city_slug: &str, offer: super::AdOffer, kind: AdKind) -> String {
    match portal {
        Portal::Avito => avito::search_path(city_slug, offer, kind),
        Portal::Mubawab => mubawab::search_path(city_slug, offer, kind),
    }
}

/// An ad's own page: up, a 404 once taken down, or with `taken_down_redirect` a 301 to its
/// search (as the real portals send a taken-down ad's address elsewhere: docs/sources.md).
fn ad_answer(
    portals: &Portals,
    portal: Portal,
    number: &str,
    path: &str,
    now: DateTime<Utc>,
    faults: &PortalFaults,
) -> Reply {
    match portals.ad(portal, number, now) {
        Some(ad) if ad.live_at(now) => html(200, ad_page(&ad, now)),
        Some(ad) if faults.taken_down_redirect => {
            let city = moroccan_cities()
                .iter()
                .find(|c| c.name == ad.city)
                .map(|c| c.url_slug())
                .unwrap_or_default();
            moved(portal, &search_path(portal, &city, ad.offer, ad.kind), None)
        }
        _ => not_found(path),
    }
}

/// The answer to `GET {path}?{query}` on `portal` (the path percent-decoded, after the
/// portal's prefix), as `faults` have the portals misbehave.
pub(crate) fn answer(
    portals: &Portals,
    portal: Portal,
    path: &str,
    query: Option<&str>,
    now: DateTime<Utc>,
    faults: &PortalFaults,
) -> Reply {
    if path == "/robots.txt" {
        let body = match portal {
            Portal::Avito => AVITO_ROBOTS,
            Portal::Mubawab => MUBAWAB_ROBOTS,
        };
        return Reply {
            status: 200,
            content_type: TEXT,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
    }
    if let Some(number) = ad_number(portal, path) {
        return ad_answer(portals, portal, number, path, now, faults);
    }
    search_answer(portals, portal, path, query, now, faults)
}

/// The answer to a search page's address (or a 404 for any other).
fn search_answer(
    portals: &Portals,
    portal: Portal,
    path: &str,
    query: Option<&str>,
    now: DateTime<Utc>,
    faults: &PortalFaults,
) -> Reply {
    let parsed = match portal {
        Portal::Avito => avito::parse_path(path).map(|(city, offer, kind)| {
            let page = query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .find_map(|pair| pair.strip_prefix("o="))
                .map_or(Some(1), |p| p.parse::<usize>().ok().filter(|p| *p >= 1));
            (city, offer, kind, page)
        }),
        Portal::Mubawab => mubawab::parse_path(path)
            .map(|(city, offer, kind, page)| (city, offer, kind, Some(page))),
    };
    let Some((city_slug, offer, kind, Some(page))) = parsed else {
        return not_found(path);
    };
    let Some(city) = moroccan_cities()
        .iter()
        .position(|c| c.url_slug() == city_slug)
    else {
        return not_found(path);
    };
    if let Some((from, to)) = faults.city_redirect
        && from == city
    {
        let to = moroccan_cities()[to].url_slug();
        let mut moved_path = search_path(portal, &to, offer, kind);
        if portal == Portal::Mubawab && page > 1 {
            moved_path.push_str(&format!(":p:{page}"));
        }
        return moved(portal, &moved_path, query);
    }
    let search = Search {
        portal,
        city,
        offer,
        kind,
    };
    let (ads, more, total) = if faults.emptied == Some(kind) {
        (Vec::new(), false, 0)
    } else {
        portals.page(search, now, page)
    };
    let name = moroccan_cities()[city].name;
    let body = match portal {
        Portal::Avito => avito::render(
            name,
            offer,
            kind,
            &ads,
            total,
            page,
            more,
            now,
            faults.changed_layout,
        ),
        Portal::Mubawab => mubawab::render(
            name,
            offer,
            kind,
            &ads,
            total,
            page,
            now,
            faults.changed_layout,
        ),
    };
    html(200, body)
}
