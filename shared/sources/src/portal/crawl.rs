//! What a polite crawler of the portals sends and may fetch: its user agent, what a site's
//! robots.txt allows it, and the search pages of each portal by city, offer and property
//! type. Plain functions, like the API sources' request builders; no HTTP happens here.

use std::fmt;

use robotstxt::DefaultMatcher;

use realty_model::listing::{Offer, PropertyType};

/// The product token robots.txt groups name this crawler by.
pub const ROBOTS_TOKEN: &str = "realty-stream";

/// Largest robots.txt read: Google reads the first 500 KiB and ignores the rest.
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// The `User-Agent` the crawler sends: its token and version, where a site's operator can
/// read what it is, and how to reach whoever runs it (`contact`: a URL or an address; the
/// deployment's `CrawlerContact`).
pub fn user_agent(contact: Option<&str>) -> String {
    match contact.map(str::trim).filter(|c| !c.is_empty()) {
        Some(contact) => format!(
            "{ROBOTS_TOKEN}/{} (+{}; {contact})",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_REPOSITORY"),
        ),
        None => format!(
            "{ROBOTS_TOKEN}/{} (+{})",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_REPOSITORY"),
        ),
    }
}

/// A site's robots.txt, as this crawler obeys it (RFC 9309, as Google's parser reads it:
/// the group naming `realty-stream`, else the `*` group; the longest match wins; `*` and `$`
/// in paths). A missing robots.txt (404) allows everything; one that cannot be fetched
/// (5xx, a timeout) allows nothing, which the caller decides by not building one.
#[derive(Debug, Clone)]
pub struct RobotsRules {
    body: String,
}

impl RobotsRules {
    /// The rules in `body`, its first [`MAX_ROBOTS_BYTES`] (bytes that are not UTF-8 are
    /// replaced and match nothing).
    pub fn parse(body: &[u8]) -> Self {
        let head = &body[..body.len().min(MAX_ROBOTS_BYTES)];
        Self {
            body: String::from_utf8_lossy(head).into_owned(),
        }
    }

    /// Whether the crawler may fetch `url` (absolute and percent-encoded, as the builders
    /// below write it).
    pub fn allows(&self, url: &str) -> bool {
        DefaultMatcher::default().one_agent_allowed_by_robots(&self.body, ROBOTS_TOKEN, url)
    }
}

/// A search the crawler reads: one city's listings of one offer and property type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSearch {
    /// The portal's own slug of the city (`casablanca`, `el_jadida` on Avito; `casablanca`,
    /// `kénitra` on Mubawab).
    pub city_slug: String,
    pub offer: Offer,
    pub property_type: PropertyType,
}

/// A search the portal has no page for (a kind of property it does not list apart).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{portal} has no search page for {what}")]
pub struct NoSearchPage {
    pub portal: &'static str,
    pub what: String,
}

impl fmt::Display for PortalSearch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {:?} in {}",
            self.property_type, self.offer, self.city_slug
        )
    }
}

/// The city slug, percent-encoded for a path (Mubawab keeps accents: `kénitra`).
fn path_segment(slug: &str) -> String {
    percent_encoding::utf8_percent_encode(slug.trim(), PATH_SEGMENT).to_string()
}

const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

impl PortalSearch {
    /// Page `page` (1-based) of the search on Avito at `origin` (`https://www.avito.ma`, or
    /// a simulator's): `/fr/{city}/{category}-à_{vendre|louer}?o={page}` (page 1 without
    /// `o`), 35 ads a page.
    pub fn avito_url(&self, origin: &str, page: u32) -> Result<String, NoSearchPage> {
        let category = match self.property_type {
            PropertyType::Apartment | PropertyType::Condo => "appartements",
            PropertyType::SingleFamily | PropertyType::Townhouse => "maisons",
            PropertyType::Land => "terrains_et_fermes",
            _ => {
                return Err(NoSearchPage {
                    portal: "Avito",
                    what: self.to_string(),
                });
            }
        };
        let offer = match self.offer {
            Offer::Sale => "%C3%A0_vendre",
            Offer::Rent => "%C3%A0_louer",
        };
        let mut url = format!(
            "{}/fr/{}/{category}-{offer}",
            origin.trim_end_matches('/'),
            path_segment(&self.city_slug)
        );
        if page > 1 {
            url.push_str(&format!("?o={page}"));
        }
        Ok(url)
    }

    /// Page `page` (1-based) of the search on Mubawab at `origin`: `/fr/st/{city}/{category}-
    /// a-{vendre|louer}`, page N with `:p:N` appended. Mubawab's robots.txt disallows every URL
    /// with a colon: check [`RobotsRules::allows`] before fetching any page after the first.
    pub fn mubawab_url(&self, origin: &str, page: u32) -> Result<String, NoSearchPage> {
        let category = match self.property_type {
            PropertyType::Apartment | PropertyType::Condo => "appartements",
            PropertyType::SingleFamily | PropertyType::Townhouse => "maisons",
            PropertyType::Land if self.offer == Offer::Sale => "terrains",
            _ => {
                return Err(NoSearchPage {
                    portal: "Mubawab",
                    what: self.to_string(),
                });
            }
        };
        let offer = match self.offer {
            Offer::Sale => "a-vendre",
            Offer::Rent => "a-louer",
        };
        let mut url = format!(
            "{}/fr/st/{}/{category}-{offer}",
            origin.trim_end_matches('/'),
            path_segment(&self.city_slug)
        );
        if page > 1 {
            url.push_str(&format!(":p:{page}"));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{avito, mubawab};
    use super::*;

    /// Mubawab's robots.txt as quoted on 2026-09-04 (docs/portals-research.md, 2.2).
    const MUBAWAB_ROBOTS: &str = "User-agent: *\nDisallow: /*:\nDisallow: /*?n=1\n";

    fn search(city: &str, offer: Offer, property_type: PropertyType) -> PortalSearch {
        PortalSearch {
            city_slug: city.to_owned(),
            offer,
            property_type,
        }
    }

    #[test]
    fn search_pages_of_each_portal() {
        let flats = search("casablanca", Offer::Sale, PropertyType::Apartment);
        assert_eq!(
            flats.avito_url(avito::ORIGIN, 1).as_deref(),
            Ok("https://www.avito.ma/fr/casablanca/appartements-%C3%A0_vendre")
        );
        assert_eq!(
            flats.avito_url(avito::ORIGIN, 3).as_deref(),
            Ok("https://www.avito.ma/fr/casablanca/appartements-%C3%A0_vendre?o=3")
        );
        assert_eq!(
            flats.mubawab_url(mubawab::ORIGIN, 1).as_deref(),
            Ok("https://www.mubawab.ma/fr/st/casablanca/appartements-a-vendre")
        );
        assert_eq!(
            flats.mubawab_url(mubawab::ORIGIN, 2).as_deref(),
            Ok("https://www.mubawab.ma/fr/st/casablanca/appartements-a-vendre:p:2")
        );
        let houses = search("kénitra", Offer::Rent, PropertyType::SingleFamily);
        assert_eq!(
            houses.mubawab_url(mubawab::ORIGIN, 1).as_deref(),
            Ok("https://www.mubawab.ma/fr/st/k%C3%A9nitra/maisons-a-louer")
        );
        assert!(
            search("rabat", Offer::Rent, PropertyType::Land)
                .mubawab_url(mubawab::ORIGIN, 1)
                .is_err()
        );
        assert!(
            search("rabat", Offer::Sale, PropertyType::MultiFamily)
                .avito_url(avito::ORIGIN, 1)
                .is_err()
        );
        // A slug cannot leave its path segment.
        let odd = search("../x?y", Offer::Sale, PropertyType::Apartment);
        assert_eq!(
            odd.avito_url(avito::ORIGIN, 1).as_deref(),
            Ok("https://www.avito.ma/fr/..%2Fx%3Fy/appartements-%C3%A0_vendre")
        );
    }

    #[test]
    fn mubawab_allows_the_first_page_of_a_search_only() {
        let rules = RobotsRules::parse(MUBAWAB_ROBOTS.as_bytes());
        let flats = search("casablanca", Offer::Sale, PropertyType::Apartment);
        let first = flats.mubawab_url(mubawab::ORIGIN, 1).expect("a page");
        let second = flats.mubawab_url(mubawab::ORIGIN, 2).expect("a page");
        assert!(rules.allows(&first), "{first}");
        assert!(!rules.allows(&second), "{second}");
    }

    #[test]
    fn robots_groups_for_this_crawler_or_everyone() {
        let url = "https://www.avito.ma/fr/maroc/appartements-%C3%A0_vendre?o=2";
        // Groups for other crawlers only: nothing applies to this one.
        let others = RobotsRules::parse(b"User-agent: Googlebot\nDisallow: /api/v1\n");
        assert!(others.allows(url));
        let all = RobotsRules::parse(b"User-agent: *\nDisallow: /\n");
        assert!(!all.allows(url));
        let named = RobotsRules::parse(
            b"User-agent: *\nDisallow: /\n\nUser-agent: realty-stream\nAllow: /fr/\n",
        );
        assert!(named.allows(url), "the group naming this crawler wins");
        assert!(
            RobotsRules::parse(b"").allows(url),
            "an empty file allows all"
        );
        // Past the 500 KiB read, rules are not seen.
        let mut long = b"User-agent: *\n".to_vec();
        long.resize(MAX_ROBOTS_BYTES, b'\n');
        long.extend_from_slice(b"Disallow: /\n");
        assert!(RobotsRules::parse(&long).allows(url));
    }

    #[test]
    fn the_user_agent_names_the_crawler_and_its_contact() {
        let agent = user_agent(Some(" ops@example.org "));
        assert!(agent.starts_with("realty-stream/"), "{agent}");
        assert!(agent.ends_with("; ops@example.org)"), "{agent}");
        let anonymous = user_agent(Some(" "));
        assert!(
            anonymous.ends_with(&format!("(+{})", env!("CARGO_PKG_REPOSITORY"))),
            "{anonymous}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a site serves as robots.txt, reading it never panics.
        #[test]
        fn any_robots_txt_reads(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            lines in proptest::collection::vec("(User-agent|Allow|Disallow|Sitemap|Crawl-delay): ?[ -~é*$:/]{0,30}\n", 0..12),
            path in "/[ -~]{0,40}",
        ) {
            let mut text = body;
            text.extend(lines.concat().into_bytes());
            let rules = RobotsRules::parse(&text);
            let _ = rules.allows(&format!("https://www.mubawab.ma{path}"));
        }
    }
}
