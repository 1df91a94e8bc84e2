//! Applying a drawn event to the market: listing state, orders and the ground truth.

use chrono::{DateTime, Utc};

use super::views::{
    closed_key, insert_by, listed_key, modified_key, price_key, remove_by, take_off_market,
};
use super::{Area, Market};
use crate::listing::{ListingStatus, PriceChange, SimListing, SourceIds};
use crate::truth::{EventKind, GroundTruthEvent};

/// An event drawn at the start of its hour, applied when simulated time reaches it.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) at: DateTime<Utc>,
    pub(super) area: usize,
    /// Draw order within the hour, the last tie-breaker.
    pub(super) order: u32,
    pub(super) listing: u32,
    pub(super) action: Action,
}

/// One market's events of one hour as they are drawn, numbered in draw order.
pub(super) struct HourPlan<'a> {
    pub(super) out: &'a mut Vec<Planned>,
    pub(super) area: usize,
    /// The next event's draw order.
    pub(super) order: u32,
}

impl HourPlan<'_> {
    pub(super) fn push(&mut self, at: DateTime<Utc>, listing: u32, action: Action) {
        self.out.push(Planned {
            at,
            area: self.area,
            order: self.order,
            listing,
            action,
        });
        self.order += 1;
    }
}

/// What a drawn event does to its listing.
#[derive(Debug, Clone)]
pub(super) enum Action {
    New(Box<SimListing>),
    PriceChange {
        new: u64,
    },
    ToPending,
    BackToActive,
    Sold {
        close_price: u64,
    },
    Withdrawn,
    /// A rental listed; `listing` indexes the market's rentals for the two below.
    RentalNew(Box<SimListing>),
    RentChange {
        new: u64,
    },
    RentalTaken,
}

impl Action {
    pub(super) fn is_rental(&self) -> bool {
        matches!(
            self,
            Self::RentalNew(_) | Self::RentChange { .. } | Self::RentalTaken
        )
    }
}

impl Market {
    pub(super) fn apply(&mut self, planned: Planned) {
        if planned.action.is_rental() {
            self.apply_rental(planned);
            return;
        }
        let Planned {
            at,
            area: area_position,
            listing: position,
            action,
            ..
        } = planned;
        let area = &mut self.areas[area_position];
        let kind = match action {
            Action::New(listing) => {
                let price = listing.list_price;
                let ids = area.list_new(*listing);
                self.record(
                    at,
                    area_position,
                    ids,
                    EventKind::New {
                        price,
                        status: ListingStatus::Active,
                    },
                );
                return;
            }
            Action::PriceChange { new } => area.change_price(position, new, at),
            Action::ToPending => area.go_pending(position, at),
            Action::BackToActive => area.back_to_active(position, at),
            Action::Sold { close_price } => area.sell(position, close_price, at),
            Action::Withdrawn => area.withdraw(position, at),
            Action::RentalNew(_) | Action::RentChange { .. } | Action::RentalTaken => None,
        };
        // An event that no longer applies (the listing moved on since it was drawn) is
        // dropped.
        let Some(kind) = kind else {
            return;
        };
        area.mark_modified(position, at);
        let ids = area.listings[position as usize].ids.clone();
        self.record(at, area_position, ids, kind);
    }

    fn record(&mut self, at: DateTime<Utc>, area: usize, ids: SourceIds, kind: EventKind) {
        let seq = self.events.len() as u64 + 1;
        self.events.push(GroundTruthEvent {
            seq,
            at,
            market: self.areas[area].key.clone(),
            ids,
            kind,
        });
    }
}

/// Each sale listing's event applied to its market: `None` when it no longer applies.
impl Area {
    /// Lists a new listing; returns its ids.
    fn list_new(&mut self, listing: SimListing) -> SourceIds {
        let position = self.listings.len() as u32;
        self.listings.push(listing);
        // Positions only grow, so pushing keeps `active` sorted.
        self.active.push(position);
        let view = &mut self.view;
        insert_by(&mut view.by_listed, &self.listings, position, listed_key);
        insert_by(&mut view.by_price, &self.listings, position, price_key);
        insert_by(
            &mut view.by_modification,
            &self.listings,
            position,
            modified_key,
        );
        self.listings[position as usize].ids.clone()
    }

    fn change_price(&mut self, position: u32, new: u64, at: DateTime<Utc>) -> Option<EventKind> {
        let listing = &self.listings[position as usize];
        let old = listing.list_price;
        if !listing.status.is_live() || new == old {
            return None;
        }
        remove_by(&mut self.view.by_price, &self.listings, position, price_key);
        let listing = &mut self.listings[position as usize];
        listing.last_price_change = Some(PriceChange { old, new, at });
        listing.list_price = new;
        listing.overpricing *= new as f64 / old as f64;
        insert_by(&mut self.view.by_price, &self.listings, position, price_key);
        Some(EventKind::PriceChange { old, new })
    }

    fn go_pending(&mut self, position: u32, at: DateTime<Utc>) -> Option<EventKind> {
        if !move_between(&mut self.active, &mut self.pending, position) {
            return None;
        }
        let listing = &mut self.listings[position as usize];
        listing.status = ListingStatus::Pending;
        listing.pending_at = Some(at);
        listing.status_changed_at = at;
        Some(EventKind::StatusChange {
            old: ListingStatus::Active,
            new: ListingStatus::Pending,
        })
    }

    fn back_to_active(&mut self, position: u32, at: DateTime<Utc>) -> Option<EventKind> {
        if !move_between(&mut self.pending, &mut self.active, position) {
            return None;
        }
        let listing = &mut self.listings[position as usize];
        listing.status = ListingStatus::Active;
        listing.pending_at = None;
        listing.status_changed_at = at;
        Some(EventKind::StatusChange {
            old: ListingStatus::Pending,
            new: ListingStatus::Active,
        })
    }

    fn sell(&mut self, position: u32, close_price: u64, at: DateTime<Utc>) -> Option<EventKind> {
        if !remove_sorted(&mut self.pending, position) {
            return None;
        }
        take_off_market(self, position);
        let listing = &mut self.listings[position as usize];
        listing.status = ListingStatus::Sold;
        listing.closed_at = Some(at);
        listing.close_price = Some(close_price);
        listing.status_changed_at = at;
        insert_by(&mut self.view.sold, &self.listings, position, closed_key);
        Some(EventKind::Delisted {
            old: ListingStatus::Pending,
            new: ListingStatus::Sold,
        })
    }

    fn withdraw(&mut self, position: u32, at: DateTime<Utc>) -> Option<EventKind> {
        if !remove_sorted(&mut self.active, position) {
            return None;
        }
        take_off_market(self, position);
        let listing = &mut self.listings[position as usize];
        listing.status = ListingStatus::Withdrawn;
        listing.closed_at = Some(at);
        listing.status_changed_at = at;
        insert_by(
            &mut self.view.withdrawn,
            &self.listings,
            position,
            closed_key,
        );
        Some(EventKind::Delisted {
            old: ListingStatus::Active,
            new: ListingStatus::Withdrawn,
        })
    }

    /// Every change is a modification: the listing moves to the end of that order.
    fn mark_modified(&mut self, position: u32, at: DateTime<Utc>) {
        remove_by(
            &mut self.view.by_modification,
            &self.listings,
            position,
            modified_key,
        );
        self.listings[position as usize].modified_at = at;
        insert_by(
            &mut self.view.by_modification,
            &self.listings,
            position,
            modified_key,
        );
    }
}

pub(super) fn remove_sorted(positions: &mut Vec<u32>, position: u32) -> bool {
    match positions.binary_search(&position) {
        Ok(found) => {
            positions.remove(found);
            true
        }
        Err(_) => false,
    }
}

fn insert_sorted(positions: &mut Vec<u32>, position: u32) {
    if let Err(at) = positions.binary_search(&position) {
        positions.insert(at, position);
    }
}

fn move_between(from: &mut Vec<u32>, to: &mut Vec<u32>, position: u32) -> bool {
    if remove_sorted(from, position) {
        insert_sorted(to, position);
        true
    } else {
        false
    }
}
