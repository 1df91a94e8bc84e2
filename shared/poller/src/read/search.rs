//! What a read asks for: the market (its key as a city and a state) and how its search is
//! narrowed.

use super::SourceEndpoint;
use crate::fetch::FetchError;
use realty_model::listing::Offer;
use realty_model::markets::{SearchFilter, city_and_state};

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
