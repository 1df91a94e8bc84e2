//! The sources a market is read from, by name.

use std::fmt;
use std::str::FromStr;

/// Which source reads a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// Zillow via RapidAPI `zillow-com1`, `propertyExtendedSearch`.
    Zillow,
    /// A RESO Web API (OData) `Property` response.
    Reso,
    /// Realtor.com via RapidAPI `realty-in-us`, `properties/v3/list`.
    Realtor,
    /// An export of canonical listings: CSV or JSON lines.
    File,
    /// An Avito.ma search page (HTML).
    Avito,
    /// A Mubawab.ma search page (HTML).
    Mubawab,
}

impl SourceKind {
    pub const ALL: [SourceKind; 6] = [
        Self::Zillow,
        Self::Reso,
        Self::Realtor,
        Self::File,
        Self::Avito,
        Self::Mubawab,
    ];

    /// The name used on the command line: `zillow`, `reso`, `realtor`, `file`, `avito`,
    /// `mubawab`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zillow => "zillow",
            Self::Reso => "reso",
            Self::Realtor => "realtor",
            Self::File => "file",
            Self::Avito => "avito",
            Self::Mubawab => "mubawab",
        }
    }

    /// Whether the poller reads this source: the APIs and the portals; exports are replayed
    /// (`realty replay`).
    pub fn is_polled(self) -> bool {
        !matches!(self, Self::File)
    }

    /// Whether this source is a property portal (HTML pages) rather than an API or an export.
    pub fn is_portal(self) -> bool {
        matches!(self, Self::Avito | Self::Mubawab)
    }

    /// Why the poller does not read this source, for configuration errors.
    pub fn why_not_polled(self) -> &'static str {
        match self {
            Self::File => "file exports are sent with `realty replay FILE`, not polled",
            Self::Zillow | Self::Reso | Self::Realtor | Self::Avito | Self::Mubawab => "",
        }
    }

    /// What a document for this source is, for messages.
    pub fn document_name(self) -> &'static str {
        match self {
            Self::Zillow => "Zillow propertyExtendedSearch page",
            Self::Reso => "RESO Web API Property page",
            Self::Realtor => "Realtor.com properties/v3/list page",
            Self::File => "listings export (CSV or JSON lines)",
            Self::Avito => "search page of Avito.ma",
            Self::Mubawab => "search page of Mubawab.ma",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown source name, with the known ones in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source {0:?}: expected one of zillow, reso, realtor, file, avito, mubawab")]
pub struct UnknownSource(pub String);

impl FromStr for SourceKind {
    type Err = UnknownSource;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownSource(name.to_owned()))
    }
}
