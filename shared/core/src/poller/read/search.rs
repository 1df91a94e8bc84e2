//! What a read asks for: the market (its key as a city and a state) and how its search is
//! narrowed.

use super::SourceEndpoint;
use crate::listing::Offer;
use crate::poller::fetch::FetchError;
use crate::sources::SourceKind;
use crate::sources::zillow::{PriceBand, ZillowHomeType};

/// What a watched market narrows its search to (Zillow's home types and price range; the
/// other sources read the whole market). A listing leaving the range leaves the market read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchFilter {
    /// Empty for every home type.
    pub home_types: Vec<ZillowHomeType>,
    pub prices: PriceBand,
    /// RESO: an OData condition ANDed to the market's city and state (MLS-specific fields,
    /// such as `OriginatingSystemName`), checked by
    /// [`reso::check_raw_filter`](crate::sources::reso::check_raw_filter).
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

/// One market to read, and how its search is narrowed.
#[derive(Debug, Clone, Copy)]
pub struct MarketSearch<'a> {
    /// City-state key (`nashville-tn`).
    pub market: &'a str,
    pub filter: &'a SearchFilter,
    /// Sale listings, or rentals (Zillow `ForRent`, Realtor.com `for_rent`: the whole
    /// market's rentals, the filter's sale prices and home types left out).
    pub offer: Offer,
}

/// Whether a source offers rentals to read apart from its sale listings (a RESO feed
/// carries its leases with the sales).
pub fn reads_rentals(kind: SourceKind) -> bool {
    matches!(
        kind,
        SourceKind::Zillow | SourceKind::Realtor | SourceKind::Avito | SourceKind::Mubawab
    )
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

/// [`city_and_state`], or the error a poll of that market reports.
pub(super) fn market_place(
    endpoint: &SourceEndpoint,
    market: &str,
) -> Result<(String, String), FetchError> {
    city_and_state(market).ok_or_else(|| FetchError::NotThatApi {
        url: endpoint.base_url.clone(),
        error: format!("market {market:?} is not a city-state key such as nashville-tn"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_keys_become_city_and_state() {
        assert_eq!(
            city_and_state("nashville-tn"),
            Some(("Nashville".into(), "TN".into()))
        );
        assert_eq!(
            city_and_state("san-francisco-ca"),
            Some(("San Francisco".into(), "CA".into()))
        );
        assert_eq!(city_and_state("nowhere"), None);
        assert_eq!(city_and_state("-tn"), None);
    }
}
