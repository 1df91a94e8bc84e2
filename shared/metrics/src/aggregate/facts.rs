//! What one listing contributes to its markets ([`ListingFacts`]), and the day numbers its
//! dates are kept as.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{Scope, scopes_of, zip_geo};
use crate::values::MAX_VALUE;
use realty_model::listing::{Listing, ListingStatus, Offer, PropertyType};

/// Whether a listing counts as active or pending inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// For sale and taking offers (Realtor.com's active count: pending excluded).
    Active,
    /// Under contract or pending.
    Pending,
    /// For rent and available: `price_minor` is the monthly rent.
    Rental,
}

impl Standing {
    /// How a listing of `offer` in `status` counts; `None`: it counts nowhere (coming soon,
    /// sold, leased, off the market).
    pub fn of(offer: Offer, status: ListingStatus) -> Option<Self> {
        match (offer, status) {
            (Offer::Sale, ListingStatus::Active) => Some(Self::Active),
            (Offer::Sale, ListingStatus::UnderContract | ListingStatus::Pending) => {
                Some(Self::Pending)
            }
            (Offer::Rent, ListingStatus::Active) => Some(Self::Rental),
            _ => None,
        }
    }
}

/// What a listing contributes to its markets: a sale listing its price, an available rental
/// its rent. Listings that are coming soon, sold, leased or off the market contribute
/// nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingFacts {
    pub standing: Standing,
    pub property_type: PropertyType,
    /// Shared with the facts' scopes ([`Self::scopes`]): a listing's four markets name two
    /// places, each allocated once.
    pub city_state: Arc<str>,
    pub zip: Option<Arc<str>>,
    pub price_minor: i64,
    pub living_area_sqft: Option<u32>,
    pub beds: Option<u16>,
    /// Days since 1970-01-01 of the on-market date.
    pub on_market_day: Option<i32>,
    pub rent_estimate_minor: Option<i64>,
    /// Price below the first price the pipeline saw for the listing.
    pub has_cut: bool,
}

impl ListingFacts {
    /// The facts of `listing`, whose first known price is `first_price_minor`.
    pub fn of(listing: &Listing, first_price_minor: i64) -> Option<Self> {
        Some(Self {
            standing: Standing::of(listing.offer, listing.status)?,
            property_type: listing.property_type,
            city_state: Arc::from(listing.market.city_state.as_str()),
            zip: zip_geo(&listing.market),
            price_minor: listing.price_minor,
            living_area_sqft: listing.living_area_sqft.filter(|a| *a > 0),
            beds: listing.beds,
            on_market_day: listing.on_market_date.map(day_number),
            rent_estimate_minor: listing.rent_estimate_minor.filter(|r| *r > 0),
            has_cut: listing.price_minor < first_price_minor,
        })
    }

    /// Price per sqft in minor units (rounded to the nearest), where the living area is known.
    pub fn price_per_sqft_minor(&self) -> Option<i64> {
        self.living_area_sqft
            .map(|a| minor_per_sqft(self.price_minor, a))
    }

    /// Gross rental yield (12 x monthly rent / price) in basis points (rounded to the
    /// nearest), where a rent estimate is known.
    pub fn gross_yield_bp(&self) -> Option<i64> {
        let rent = self.rent_estimate_minor?;
        (self.price_minor > 0).then(|| {
            let yearly_bp = 12 * i128::from(rent) * 10_000;
            rounded_ratio(yearly_bp, i128::from(self.price_minor))
        })
    }

    /// The scopes these facts count in.
    pub fn scopes(&self) -> Vec<Scope> {
        scopes_of(
            Arc::clone(&self.city_state),
            self.zip.clone(),
            self.property_type,
        )
    }
}

/// An amount in minor units per square foot of `area_sqft` (more than 0), rounded to the
/// nearest minor unit (halves up): what a listing's price or rent per sqft is counted as.
pub fn minor_per_sqft(amount_minor: i64, area_sqft: u32) -> i64 {
    rounded_ratio(i128::from(amount_minor), i128::from(area_sqft.max(1)))
}

/// `numerator / denominator` (denominator > 0) rounded to the nearest integer, halves away
/// from zero, within [`MAX_VALUE`] either way (no listing's value comes near it).
fn rounded_ratio(numerator: i128, denominator: i128) -> i64 {
    let half = denominator / 2;
    let rounded = if numerator >= 0 {
        (numerator + half) / denominator
    } else {
        (numerator - half) / denominator
    };
    let bound = i128::from(MAX_VALUE);
    i64::try_from(rounded.clamp(-bound, bound)).unwrap_or(0)
}

/// Days since 1970-01-01.
pub fn day_number(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

/// The date of a day number.
pub fn day_date(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163)
}
