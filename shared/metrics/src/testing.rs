//! Fixtures the metrics' tests share with the crates above (the API's and the alerts' tests
//! read what a batch wrote): a listing of a small simulated market, its events as stream
//! records, and a runtime to drive a store's futures. Built for tests only (`testing`).

use chrono::{DateTime, NaiveDate, Utc};

use crate::process::InputRecord;
use realty_model::listing::*;

/// The shard every test batch comes from.
pub const SHARD: &str = "shardId-000000000000";

/// Listing `n` of a two-city market at `price` (every fifth a rental).
pub fn listing(
    n: u32,
    city: usize,
    price: i64,
    status: ListingStatus,
    at: DateTime<Utc>,
) -> Listing {
    let (city_name, state, zip) =
        [("Nashville", "TN", "37201"), ("Syracuse", "NY", "13202")][city % 2];
    let address = Address {
        line: Some(format!("{n} Main St")),
        city: city_name.into(),
        state: state.into(),
        postal_code: Some(if n.is_multiple_of(3) {
            format!("{}9", &zip[..4])
        } else {
            zip.into()
        }),
        country: CountryCode::US,
        neighbourhood: None,
    };
    // Every fifth listing is a rental, at a monthly rent of a 200th of the price.
    let (offer, price, rent_estimate) = if n % 5 == 4 {
        (Offer::Rent, price / 200, None)
    } else {
        (Offer::Sale, price, Some(price / 180))
    };
    Listing {
        id: ListingId::new(ListingSource::Zillow, &(100_000 + n).to_string()).expect("valid id"),
        source: ListingSource::Zillow,
        status,
        offer,
        price_minor: price,
        currency: "USD".into(),
        previous_price_minor: None,
        property_type: if n.is_multiple_of(2) {
            PropertyType::SingleFamily
        } else {
            PropertyType::Condo
        },
        beds: Some(3),
        baths: Some(2.0),
        living_area_sqft: Some(1_000 + (n % 7) * 250),
        lot_size_sqft: None,
        market: MarketKey::for_address(&address).expect("market"),
        address,
        coordinates: None,
        on_market_date: NaiveDate::from_ymd_opt(2024, 1, 1 + (n % 28)),
        rent_estimate_minor: rent_estimate,
        source_url: None,
        observed_at: at,
        details: ListingDetails::default(),
    }
}

/// The events as the records of one Kinesis batch, in order.
pub fn records_of(events: &[ListingEvent]) -> Vec<InputRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| InputRecord {
            sequence_number: format!(
                "4959033827149025660855969253836157109592157598913658{:04}",
                i + 1
            ),
            data: e.encode().expect("encodes"),
            approximate_arrival: e.observed_at,
        })
        .collect()
}

/// Runs a future to completion on a current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}
