//! What changed between two observations of a listing: the `changes` of a `changed` event.

use serde::{Deserialize, Serialize};

use super::{Listing, ListingStatus};

/// A field the poller watches besides price and status; a change in any of them makes a
/// `changed` event. Names are the [`Listing`] JSON field names.
///
/// Not tracked (they change without the listing changing): `previous_price_minor` (follows
/// the price), `coordinates` (geocoder jitter), `source_url`, `observed_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackedField {
    Offer,
    Currency,
    PropertyType,
    Beds,
    Baths,
    LivingAreaSqft,
    LotSizeSqft,
    /// Any part of `address` (and so possibly `market`).
    Address,
    OnMarketDate,
    RentEstimateMinor,
    /// A field name this build does not know, written by a newer producer of the same
    /// schema version; consumers ignore it (see `docs/events.md`, versioning).
    #[serde(other)]
    Unrecognized,
}

/// Old and new value of one changed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change<T> {
    pub old: T,
    pub new: T,
}

/// What changed between two observations of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingChanges {
    /// Price change in minor units (sale price or monthly rent).
    pub price: Option<Change<i64>>,
    pub status: Option<Change<ListingStatus>>,
    /// Other tracked fields that changed, by name, in declaration order.
    #[serde(default)]
    pub fields: Vec<TrackedField>,
}

impl ListingChanges {
    pub fn is_empty(&self) -> bool {
        self.price.is_none() && self.status.is_none() && self.fields.is_empty()
    }
}

/// Which tracked fields differ from `previous` to `current` (two observations of one
/// listing).
pub fn diff(previous: &Listing, current: &Listing) -> ListingChanges {
    let price = (previous.price_minor != current.price_minor).then_some(Change {
        old: previous.price_minor,
        new: current.price_minor,
    });
    let status = (previous.status != current.status).then_some(Change {
        old: previous.status,
        new: current.status,
    });
    let candidates = [
        (TrackedField::Offer, previous.offer != current.offer),
        (
            TrackedField::Currency,
            previous.currency != current.currency,
        ),
        (
            TrackedField::PropertyType,
            previous.property_type != current.property_type,
        ),
        (TrackedField::Beds, previous.beds != current.beds),
        (TrackedField::Baths, previous.baths != current.baths),
        (
            TrackedField::LivingAreaSqft,
            previous.living_area_sqft != current.living_area_sqft,
        ),
        (
            TrackedField::LotSizeSqft,
            previous.lot_size_sqft != current.lot_size_sqft,
        ),
        (TrackedField::Address, previous.address != current.address),
        (
            TrackedField::OnMarketDate,
            previous.on_market_date != current.on_market_date,
        ),
        (
            TrackedField::RentEstimateMinor,
            previous.rent_estimate_minor != current.rent_estimate_minor,
        ),
    ];
    ListingChanges {
        price,
        status,
        fields: candidates
            .into_iter()
            .filter_map(|(field, changed)| changed.then_some(field))
            .collect(),
    }
}
