//! How a watched market narrows its search: Zillow's home types and price range, a RESO
//! feed's raw filter, and the market key read as a city and a state.

use super::SourceKind;

/// Where an open-ended price band (`$0` and up) is first cut, in whole dollars: near the US
/// median list price, so the two halves hold similar counts.
pub const OPEN_BAND_FIRST_SPLIT_USD: u64 = 500_000;

/// What a watched market narrows its search to (Zillow's home types and price range; the
/// other sources read the whole market). A listing leaving the range leaves the market read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchFilter {
    /// Empty for every home type.
    pub home_types: Vec<ZillowHomeType>,
    pub prices: PriceBand,
    /// RESO: an OData condition ANDed to the market's city and state (MLS-specific fields,
    /// such as `OriginatingSystemName`), checked by
    /// [`reso::check_raw_filter`](crate::markets::check_raw_filter).
    pub reso_filter: Option<String>,
}

impl Default for SearchFilter {
    fn default() -> Self {
        Self {
            home_types: Vec::new(),
            prices: PriceBand::ALL,
            reso_filter: None,
        }
    }
}

/// One value of `home_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZillowHomeType {
    Houses,
    Condos,
    Townhomes,
    MultiFamily,
    Apartments,
    Manufactured,
    LotsLand,
}

impl ZillowHomeType {
    pub fn as_param(self) -> &'static str {
        match self {
            Self::Houses => "Houses",
            Self::Condos => "Condos",
            Self::Townhomes => "Townhomes",
            Self::MultiFamily => "Multi-family",
            Self::Apartments => "Apartments",
            Self::Manufactured => "Manufactured",
            Self::LotsLand => "LotsLand",
        }
    }
}

/// An inclusive range of prices in whole dollars (`minPrice`/`maxPrice`); `max_usd: None`
/// means no upper limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PriceBand {
    pub min_usd: u64,
    pub max_usd: Option<u64>,
}

impl PriceBand {
    /// Every price.
    pub const ALL: PriceBand = PriceBand {
        min_usd: 0,
        max_usd: None,
    };

    /// Cuts the band in two non-overlapping halves: at the midpoint of a closed band, at
    /// [`OPEN_BAND_FIRST_SPLIT_USD`] or twice the minimum for an open one. `None` for a band
    /// of a single price, which cannot be cut.
    pub fn split(self) -> Option<(PriceBand, PriceBand)> {
        let cut = match self.max_usd {
            None => self
                .min_usd
                .saturating_mul(2)
                .max(OPEN_BAND_FIRST_SPLIT_USD),
            Some(max) if max > self.min_usd => self.min_usd + (max - self.min_usd) / 2,
            Some(_) => return None,
        };
        let upper_min = cut.checked_add(1)?;
        Some((
            PriceBand {
                min_usd: self.min_usd,
                max_usd: Some(cut),
            },
            PriceBand {
                min_usd: upper_min,
                max_usd: self.max_usd,
            },
        ))
    }
}

/// Longest raw per-market `$filter` accepted (MLS Grid's whole URL limit is a few KB).
pub const MAX_RAW_FILTER_BYTES: usize = 1_024;

/// Checks a raw per-market filter before it is stored or sent: bounded, one line, string
/// literals closed and parentheses balanced, so it cannot end the market's condition early
/// or swallow the rest of the `$filter` (the server judges the rest).
pub fn check_raw_filter(raw: &str) -> Result<(), String> {
    if raw.chars().any(char::is_control) {
        return Err("the RESO filter has control characters".into());
    }
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the RESO filter is empty".into());
    }
    if raw.len() > MAX_RAW_FILTER_BYTES {
        return Err(format!(
            "a RESO filter of {} bytes: at most {MAX_RAW_FILTER_BYTES}",
            raw.len()
        ));
    }
    let mut depth = 0usize;
    let mut in_string = false;
    for c in raw.chars() {
        match c {
            // A doubled quote closes and reopens: the count stays right.
            '\'' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => {
                depth = depth
                    .checked_sub(1)
                    .ok_or("the RESO filter closes a parenthesis it did not open")?;
            }
            _ => {}
        }
    }
    if in_string {
        return Err(
            "the RESO filter has an unclosed string literal (write ' inside one as '')".into(),
        );
    }
    if depth != 0 {
        return Err("the RESO filter leaves a parenthesis open".into());
    }
    Ok(())
}

/// A market key (`san-francisco-ca`) as a city and a state code.
pub fn city_and_state(market: &str) -> Option<(String, String)> {
    let (city, state) = market.rsplit_once('-')?;
    if city.is_empty() || state.len() != 2 {
        return None;
    }
    let city = city
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    Some((city, state.to_uppercase()))
}

/// Whether a source offers rentals to read apart from its sale listings (a RESO feed
/// carries its leases with the sales).
pub fn reads_rentals(kind: SourceKind) -> bool {
    matches!(
        kind,
        SourceKind::Zillow | SourceKind::Realtor | SourceKind::Avito | SourceKind::Mubawab
    )
}
