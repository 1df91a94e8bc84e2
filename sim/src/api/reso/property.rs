//! One listing as a RESO record, with Data Dictionary names.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use crate::listing::{ListingStatus, SimListing};
use crate::time_format;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Property<'a> {
    listing_key: &'a str,
    listing_id: &'a str,
    originating_system_name: &'static str,
    standard_status: &'static str,
    mls_status: &'static str,
    list_price: u64,
    original_list_price: u64,
    previous_list_price: Option<u64>,
    price_change_timestamp: Option<String>,
    close_price: Option<u64>,
    close_date: Option<NaiveDate>,
    modification_timestamp: String,
    status_change_timestamp: String,
    on_market_date: NaiveDate,
    on_market_timestamp: String,
    listing_contract_date: NaiveDate,
    pending_timestamp: Option<String>,
    off_market_date: Option<NaiveDate>,
    property_type: &'static str,
    property_sub_type: &'static str,
    living_area: Option<u32>,
    living_area_units: Option<&'static str>,
    lot_size_square_feet: Option<u64>,
    lot_size_acres: Option<f64>,
    bedrooms_total: Option<u8>,
    bathrooms_total_integer: Option<u8>,
    bathrooms_full: Option<u8>,
    bathrooms_half: Option<u8>,
    year_built: Option<u16>,
    unparsed_address: &'a str,
    street_number: &'a str,
    street_dir_prefix: Option<&'a str>,
    street_name: &'a str,
    street_suffix: Option<&'a str>,
    street_dir_suffix: Option<&'a str>,
    unit_number: Option<&'a str>,
    city: &'static str,
    state_or_province: &'static str,
    postal_code: &'static str,
    country: &'static str,
    latitude: f64,
    longitude: f64,
    days_on_market: i64,
}

pub(super) fn property<'a>(
    listing: &'a SimListing,
    mls_name: &'static str,
    utc_offset_hours: i32,
    now: DateTime<Utc>,
) -> Property<'a> {
    let local_date =
        |at: DateTime<Utc>| (at + TimeDelta::hours(i64::from(utc_offset_hours))).date_naive();
    let derived = &listing.derived;
    let has_bath = listing.baths_full > 0;
    let days_on_market = match listing.status {
        ListingStatus::Active => listing.days_on_market(now),
        // Counting stops when the listing goes under contract or off the market.
        _ => {
            let until = listing.pending_at.or(listing.closed_at).unwrap_or(now);
            (until - listing.on_market_at).num_days().max(0)
        }
    };
    Property {
        listing_key: &listing.ids.reso_listing_key,
        listing_id: &listing.ids.reso_listing_id,
        originating_system_name: mls_name,
        standard_status: listing.status.reso(),
        mls_status: match listing.status {
            ListingStatus::Active => "Active",
            ListingStatus::Pending => "Under Contract",
            ListingStatus::Sold => "Sold",
            ListingStatus::Withdrawn => "Withdrawn",
        },
        list_price: listing.list_price,
        original_list_price: listing.original_list_price,
        previous_list_price: listing.last_price_change.map(|c| c.old),
        price_change_timestamp: listing.last_price_change.map(|c| time_format::millis(c.at)),
        close_price: listing.close_price,
        close_date: listing
            .closed_at
            .filter(|_| listing.status == ListingStatus::Sold)
            .map(local_date),
        modification_timestamp: time_format::millis(listing.modified_at),
        status_change_timestamp: time_format::millis(listing.status_changed_at),
        on_market_date: local_date(listing.on_market_at),
        on_market_timestamp: time_format::millis(listing.on_market_at),
        listing_contract_date: local_date(listing.on_market_at),
        pending_timestamp: listing.pending_at.map(time_format::millis),
        off_market_date: listing
            .closed_at
            .filter(|_| listing.status == ListingStatus::Withdrawn)
            .map(local_date),
        property_type: listing.property_type.reso_property_type(),
        property_sub_type: listing.property_type.reso_property_sub_type(),
        living_area: listing.living_area_sqft,
        living_area_units: listing.living_area_sqft.map(|_| "Square Feet"),
        lot_size_square_feet: listing.lot_sqft().map(|s| s.round() as u64),
        lot_size_acres: listing.lot_acres,
        bedrooms_total: listing.beds,
        bathrooms_total_integer: has_bath.then_some(listing.baths_full + listing.baths_half),
        bathrooms_full: has_bath.then_some(listing.baths_full),
        bathrooms_half: has_bath.then_some(listing.baths_half),
        year_built: listing.year_built,
        unparsed_address: &derived.line,
        street_number: &listing.address.street_number,
        street_dir_prefix: derived.street_dir_prefix.as_deref(),
        street_name: &derived.street_name,
        street_suffix: derived.street_suffix.as_deref(),
        street_dir_suffix: derived.street_dir_suffix.as_deref(),
        unit_number: listing
            .address
            .unit
            .as_ref()
            .map(|(_, number)| number.as_str()),
        city: listing.address.city,
        state_or_province: listing.address.state,
        postal_code: listing.address.zip,
        country: "US",
        latitude: listing.latitude,
        longitude: listing.longitude,
        days_on_market,
    }
}
