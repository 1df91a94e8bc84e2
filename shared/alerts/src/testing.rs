//! Fixtures the alerts' tests share with the crates above (the API's tests read the feed the
//! alerts wrote): an alert's body and its published message. Built for tests only (`testing`).

use chrono::{DateTime, Utc};

use crate::message::{AlertAttributes, AlertBody, AlertMessage};
use crate::rules::AlertKind;

/// An RFC 3339 time.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("a time")
        .with_timezone(&Utc)
}

/// A 20 % price drop of a Nashville condo, alert `alert_id` of `market`.
pub fn body(alert_id: &str, market: &str) -> AlertBody {
    AlertBody {
        alert_type: AlertKind::PriceDrop,
        new_listing: false,
        alert_id: alert_id.to_owned(),
        listing_id: "zillow:1".into(),
        address: "740 1st Ave N, Nashville, TN 37201".into(),
        market: market.to_owned(),
        zip: Some("37201".into()),
        property_type: "condo".into(),
        currency: "USD".into(),
        old_price: 600_000.0,
        new_price: 480_000.0,
        drop_amount: 120_000.0,
        drop_pct: 20.0,
        price_per_sqft: Some(480.0),
        market_median_price_per_sqft: None,
        price_per_sqft_to_median: None,
        median_scope: None,
        living_area_sqft: Some(1_000),
        beds: Some(2),
        baths: Some(2.0),
        url: None,
        observed_at: at("2026-11-21T18:04:05.250Z"),
    }
}

/// `body` as the alerts function publishes it.
pub fn published(body: &AlertBody) -> AlertMessage {
    AlertMessage {
        alert_id: body.alert_id.clone(),
        subject: "Price drop 20%".into(),
        body: serde_json::to_string(body).expect("JSON"),
        attributes: AlertAttributes {
            listing_id: body.listing_id.clone(),
            market: body.market.clone(),
            property_type: body.property_type.clone(),
            alert_type: body.alert_type,
            drop_pct: body.drop_pct,
            price: body.new_price.round() as i64,
            bedrooms: body.beds,
        },
        observed_at: body.observed_at,
    }
}
