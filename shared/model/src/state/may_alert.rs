//! Whether a listing write may raise an alert: what the metrics function marks on the item it
//! writes, so that the alerts function's trigger passes only those writes (most of a real
//! feed's writes, listings leaving and closing, can raise none). Conservative: every write
//! that the alert rules (`realty_alerts::rules::evaluate`) could alert on is marked, whatever
//! the market's medians (a test of the alerts function's holds the rules to it).

use super::{AppliedEvent, InterestKind, ListingState};
use crate::listing::{ListingStatus, Offer};

/// Whether writing `new` over `old` (the stored state before the batch; `None` for a listing
/// first seen) may alert. Each event the write applied is looked at against the one before
/// it, as the alerts function judges them: an event may alert when its listing can alert (for
/// sale and on the market) and it is a new listing that is news, or its price or area
/// changed, or the listing was not alertable before (back on the market). The write may also
/// alert when it newly flags the listing anomalous.
pub fn may_alert(old: Option<&ListingState>, new: &ListingState) -> bool {
    let flagged = |s: &ListingState| s.interest.contains(&InterestKind::Anomalous);
    if flagged(new) && old.is_none_or(|old| !flagged(old)) && alertable(&AppliedEvent::from(new)) {
        return true;
    }
    let before = old.map(AppliedEvent::from);
    let applied = applied_by_the_write(before.as_ref(), &new.recent_events);
    let mut previous = before.as_ref();
    for event in applied {
        if event_may_alert(previous, event) {
            return true;
        }
        previous = Some(event);
    }
    false
}

/// The events of `recent` the write applied: those after the old state's own, or all of them
/// when the old state's is not among them (the write applied more than the list keeps, or
/// made the listing): the more are looked at, the more writes are marked.
fn applied_by_the_write<'a>(
    before: Option<&AppliedEvent>,
    recent: &'a [AppliedEvent],
) -> &'a [AppliedEvent] {
    let start = before.map_or(0, |b| {
        recent
            .iter()
            .position(|e| e.sequence == b.sequence)
            .map_or(0, |i| i + 1)
    });
    &recent[start..]
}

fn event_may_alert(previous: Option<&AppliedEvent>, event: &AppliedEvent) -> bool {
    alertable(event)
        && match previous {
            None => !event.baseline,
            Some(p) => {
                p.price_minor != event.price_minor
                    || p.living_area_sqft != event.living_area_sqft
                    || !alertable(p)
            }
        }
}

/// For sale, still listed, not sold or off the market: what every alert needs of the
/// listing it is about.
fn alertable(event: &AppliedEvent) -> bool {
    event.offer == Offer::Sale
        && !event.delisted
        && !matches!(event.status, ListingStatus::Sold | ListingStatus::OffMarket)
}
