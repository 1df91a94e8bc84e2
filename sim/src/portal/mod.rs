//! Property portals without an API (Avito.ma, Mubawab.ma) for Moroccan markets: classified
//! ads posted by owners and agencies, their prices edited, then taken down, served as the
//! portals' search pages (HTML in French, prices in dirhams), with ground truth.
//!
//! A classified ad has no MLS life (no pending, no closing): it is on the page or it is not.
//! Each ad's whole life (when it is posted, its price edits, when it comes down) is drawn
//! from the seed alone, so the ads of a search at any simulated time are a pure function of
//! the seed and that time: the portals follow the US market's clock with nothing to advance.
//!
//! Here the portals and the kinds of ad they list; in their own files the cities
//! (`cities`), one ad over its life and how it is drawn (`ads`), the portals' searches,
//! pages and ground truth (`portals`), writing French pages (`text`), what the portals
//! answer (`pages`), and each portal's search pages (`avito`, `mubawab`).

mod ads;
pub(crate) mod avito;
mod cities;
pub(crate) mod mubawab;
pub(crate) mod pages;
mod portals;
mod text;

pub use ads::PortalAd;
pub use cities::{MoroccanCity, moroccan_cities};
pub use portals::{PortalTruthEvent, Portals, Search};
pub(crate) use text::{escape, french_number, relative_date};

use serde::{Deserialize, Serialize};

/// A property portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Portal {
    Avito,
    Mubawab,
}

impl Portal {
    pub const ALL: [Portal; 2] = [Portal::Avito, Portal::Mubawab];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avito => "avito",
            Self::Mubawab => "mubawab",
        }
    }

    /// Where the portal's real pages live: the links on the simulated pages point there,
    /// as the real pages' do.
    pub fn origin(self) -> &'static str {
        match self {
            Self::Avito => "https://www.avito.ma",
            Self::Mubawab => "https://www.mubawab.ma",
        }
    }

    /// Ads on one search page.
    pub fn page_size(self) -> usize {
        match self {
            Self::Avito => avito::ADS_PER_PAGE,
            Self::Mubawab => mubawab::CARDS_PER_PAGE,
        }
    }

    fn tag(self) -> u64 {
        match self {
            Self::Avito => 1,
            Self::Mubawab => 2,
        }
    }

    /// First ad number: real Avito numbers are eight digits, Mubawab's seven.
    fn first_id(self) -> u64 {
        match self {
            Self::Avito => 56_000_000,
            Self::Mubawab => 7_000_000,
        }
    }
}

/// For sale or to let (by the month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdOffer {
    Sale,
    Rent,
}

impl AdOffer {
    /// The verb both portals' search addresses use (`à_vendre`, `a-louer`).
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Self::Sale => "vendre",
            Self::Rent => "louer",
        }
    }

    fn from_verb(verb: &str) -> Option<Self> {
        [Self::Sale, Self::Rent]
            .into_iter()
            .find(|o| o.verb() == verb)
    }
}

/// A search address's category and verb (`appartements`, `à_vendre`), split at `joint`.
pub(crate) fn parse_search(search: &str, joint: &str) -> Option<(AdKind, AdOffer)> {
    let (category, verb) = search.split_once(joint)?;
    let kind = [AdKind::Apartment, AdKind::House]
        .into_iter()
        .find(|k| k.category() == category)?;
    Some((kind, AdOffer::from_verb(verb)?))
}

/// The kinds of property the simulated portals list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdKind {
    Apartment,
    /// A house or villa.
    House,
}

impl AdKind {
    /// The category both portals' search addresses use.
    pub(crate) fn category(self) -> &'static str {
        match self {
            Self::Apartment => "appartements",
            Self::House => "maisons",
        }
    }
}

#[cfg(test)]
mod tests;
