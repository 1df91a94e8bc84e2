//! One Kinesis batch, planned without I/O: decode, fold each listing's events onto its
//! stored state, and say what each market aggregate must receive.
//!
//! Exactly-once (`docs/metrics.md` has the argument in full):
//! - A listing's state carries the version `(observed_at, sequence number)` of the last
//!   event applied to it; an event that is not newer ([`Version::is_newer_than`]) is
//!   skipped. So once a listing's state is written, its events can never count again.
//! - Every contribution carries the sequence number of its event; a batch's contributions
//!   reach the markets only through the shard's journal ([`super::process`]), which makes
//!   a batch that stopped part-way (crash, retry, discard) finish before the shard's next.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::aggregate::{Contribution, Counter, ListingFacts, Standing};

use realty_model::listing::{EventKind, ListingEvent, ListingStatus, Offer};
use realty_model::scope::{Scope, scopes_of, zip_geo};
use realty_model::state::{
    AppliedEvent, ListingState, MAX_RECENT_EVENTS, SequenceNumber, StoredStates, Version,
    stays_listed,
};

/// What a listing's state contributes to its markets: the aggregates' view of the model's
/// [`ListingState`].
pub trait MarketStanding {
    fn facts(&self) -> Option<ListingFacts>;
    fn standing(&self) -> Option<Standing>;
}

impl MarketStanding for ListingState {
    /// What the listing contributes to market aggregates now.
    fn facts(&self) -> Option<ListingFacts> {
        if self.delisted {
            return None;
        }
        ListingFacts::of(&self.listing, self.first_price_minor)
    }

    /// How the listing counts in its markets now (its facts' standing, without building them).
    fn standing(&self) -> Option<Standing> {
        if self.delisted {
            return None;
        }
        Standing::of(self.listing.offer, self.listing.status)
    }
}

/// One decoded record of the batch.
#[derive(Debug, Clone)]
pub struct DecodedRecord {
    pub sequence: SequenceNumber,
    pub event: ListingEvent,
}

/// What one market receives from the batch, each contribution tagged with the sequence
/// number of its event and the event's observation time: in stream order, one event's
/// contributions together (its removal before its addition). The stream order is the order
/// events were applied to their listings, which observation times within the clock skew
/// need not be.
pub type ScopeContributions = Vec<(SequenceNumber, DateTime<Utc>, Contribution)>;

/// The plan of a batch: new listing states and, per market, its contributions.
#[derive(Debug, Default)]
pub struct BatchPlan {
    /// States that advanced, to write once the markets are updated.
    pub states: Vec<ListingState>,
    pub scopes: BTreeMap<Scope, ScopeContributions>,
    /// Events skipped because their listing's state already reflects them (re-deliveries).
    pub already_applied: usize,
    /// Events skipped because their listing holds a newer observation although the event
    /// came later in the stream (observed more than [`MAX_CLOCK_SKEW`](realty_model::state::MAX_CLOCK_SKEW) before it).
    pub superseded: usize,
}

/// What one applied event gives its markets, with its place in stream order.
struct EventContributions {
    stream_rank: usize,
    sequence: SequenceNumber,
    observed_at: DateTime<Utc>,
    contributions: Vec<(Scope, Contribution)>,
}

/// Folds the batch's events onto the stored states. Takes the records: each event's listing
/// moves into its new state instead of being copied.
pub fn plan_batch(records: Vec<DecodedRecord>, stored: &StoredStates) -> BatchPlan {
    // Grouped by listing, each in stream order: every event is weighed against the state
    // the events before it left ([`Version::is_newer_than`]), as one event a batch would be.
    // The indices are sorted, not the records: an event is hundreds of bytes, and a sort
    // moves each element several times.
    let mut order: Vec<usize> = (0..records.len()).collect();
    // Each record's place in stream order, so the markets' contributions can be put in that
    // order by comparing integers, not sequence numbers (a batch comes in stream order, so
    // this sort finds one run).
    order.sort_by(|&a, &b| records[a].sequence.cmp(&records[b].sequence));
    let mut stream_rank = vec![0; records.len()];
    for (rank, &i) in order.iter().enumerate() {
        stream_rank[i] = rank;
    }
    order.sort_by(|&a, &b| {
        let id = |i: usize| records[i].event.listing.id.as_str();
        (id(a), stream_rank[a]).cmp(&(id(b), stream_rank[b]))
    });
    let mut slots: Vec<Option<DecodedRecord>> = records.into_iter().map(Some).collect();
    let mut records = order
        .into_iter()
        .filter_map(move |i| slots[i].take().map(|r| (stream_rank[i], r)))
        .peekable();
    let mut plan = BatchPlan::default();
    // Each applied event's contributions, by its place in stream order.
    let mut applied: Vec<EventContributions> = Vec::new();
    while let Some(first) = records.next() {
        // Borrowed: an event builds the next state from itself, so the stored one is never
        // copied whole.
        let mut current = stored
            .get(first.1.event.listing.id.as_str())
            .map(|s| std::borrow::Cow::Borrowed(&**s));
        let mut advanced = false;
        let mut next_record = Some(first);
        while let Some((rank, DecodedRecord { sequence, event })) = next_record {
            next_record = records.next_if(|(_, r)| r.event.listing.id == event.listing.id);
            let version = Version {
                observed_at: event.observed_at,
                sequence,
            };
            if let Some(state) = current
                .as_deref()
                .filter(|s| !version.is_newer_than(&s.version))
            {
                if version.sequence > state.version.sequence {
                    plan.superseded += 1;
                } else {
                    plan.already_applied += 1;
                }
                continue;
            }
            if current
                .as_deref()
                .is_some_and(|s| delists_a_market_it_left(s, &event))
            {
                plan.superseded += 1;
                continue;
            }
            let sequence = version.sequence.clone();
            let is_new = matches!(event.kind, EventKind::New);
            let inventory = event.is_inventory();
            let next = next_state(current.as_deref(), event, version);
            let observed_at = next.version.observed_at;
            applied.push(EventContributions {
                stream_rank: rank,
                sequence,
                observed_at,
                contributions: transition(current.as_deref(), &next, is_new, inventory),
            });
            current = Some(std::borrow::Cow::Owned(next));
            advanced = true;
        }
        if advanced {
            plan.states
                .extend(current.map(std::borrow::Cow::into_owned));
        }
    }
    // Into each market in stream order (one event's contributions together, as
    // `transition` gave them), gathered by hash and sorted once: a batch adds to its
    // markets about ten times an event, and a sorted map compares market names at every
    // level of each.
    applied.sort_unstable_by_key(|e| e.stream_rank);
    let mut scopes: foldhash::HashMap<Scope, ScopeContributions> = HashMap::default();
    for event in applied {
        let (sequence, observed_at) = (event.sequence, event.observed_at);
        for (scope, contribution) in event.contributions {
            scopes
                .entry(scope)
                .or_default()
                .push((sequence.clone(), observed_at, contribution));
        }
    }
    plan.scopes = scopes.into_iter().collect();
    plan
}

/// A delisting names the market whose read missed its listing; a listing whose state is in
/// another market now was filed there since (a source re-filing it, an import of a history
/// moving it), not taken off the market: its move supersedes the delisting. Applied, the
/// delisting of the city it left took it out of the city it is in, for good (that city's
/// poll state holds it, and sends nothing while it does not change).
fn delists_a_market_it_left(state: &ListingState, event: &ListingEvent) -> bool {
    matches!(event.kind, EventKind::Delisted)
        && state.listing.market.city_state != event.listing.market.city_state
}

/// The state `event` leaves the listing in (the event's listing moves into it).
fn next_state(
    current: Option<&ListingState>,
    event: ListingEvent,
    version: Version,
) -> ListingState {
    let ListingEvent {
        listing,
        kind,
        baseline,
        ..
    } = event;
    let first_price_minor = match current {
        // Announced, or still: its price on the market starts when it gets there.
        Some(s) if !s.off_the_market() && s.listing.status == ListingStatus::ComingSoon => {
            listing.price_minor
        }
        Some(s) if !s.off_the_market() => s.first_price_minor,
        // First sight, or back after a delisting, a sale or a withdrawal: a new listing
        // cycle. A source that states the price before its last change tells us it was cut
        // (or raised) before we saw it.
        _ => listing
            .previous_price_minor
            .map_or(listing.price_minor, |p| p.max(listing.price_minor)),
    };
    let mut state = ListingState {
        delisted: matches!(kind, EventKind::Delisted),
        listing,
        first_price_minor,
        version,
        recent_events: current.map(|s| s.recent_events.clone()).unwrap_or_default(),
        interest: current.map(|s| s.interest.clone()).unwrap_or_default(),
        baseline,
        // Judged once the write's interest is known (`process::journal`).
        may_alert: false,
    };
    state.recent_events.push(AppliedEvent::from(&state));
    let excess = state.recent_events.len().saturating_sub(MAX_RECENT_EVENTS);
    state.recent_events.drain(..excess);
    state
}

/// The contributions of one listing moving from `old` to `new` (through a `new` event when
/// `is_new`; one that records inventory, [`ListingEvent::is_inventory`], when `inventory`).
fn transition(
    old: Option<&ListingState>,
    new: &ListingState,
    is_new: bool,
    inventory: bool,
) -> Vec<(Scope, Contribution)> {
    // Four scopes each for the old facts, the new ones and a counter at most.
    let mut out = Vec::with_capacity(12);
    let old_facts = old.and_then(ListingState::facts).map(Arc::new);
    let new_facts = new.facts().map(Arc::new);
    if old_facts == new_facts {
        // Nothing about its market standing changed (for example a new photo); counters may
        // still apply below.
    } else {
        if let Some(f) = &old_facts {
            out.extend(
                f.scopes()
                    .into_iter()
                    .map(|s| (s, Contribution::Remove(Arc::clone(f)))),
            );
        }
        if let Some(f) = &new_facts {
            out.extend(
                f.scopes()
                    .into_iter()
                    .map(|s| (s, Contribution::Add(Arc::clone(f)))),
            );
        }
    }
    let day = new.version.observed_at.date_naive();
    let count = |scopes: Vec<Scope>,
                 counter: Counter,
                 cut_bp: i64,
                 out: &mut Vec<(Scope, Contribution)>| {
        out.extend(scopes.into_iter().map(|s| {
            (
                s,
                Contribution::Count {
                    day,
                    counter,
                    cut_bp,
                },
            )
        }));
    };
    let listing = &new.listing;
    if listing.offer != Offer::Sale {
        return out;
    }
    // Its facts' scopes where it has facts: their names are shared, not copied again.
    let new_scopes = || match &new_facts {
        Some(f) => f.scopes(),
        None => scopes_of(
            Arc::from(listing.market.city_state.as_str()),
            zip_geo(&listing.market),
            listing.property_type,
        ),
    };
    // First sight, or back on the market after a delisting, a sale or a withdrawal: a new
    // listing (below). Otherwise a price move of a listing that stayed on the market.
    match old {
        None => {}
        Some(s) if s.off_the_market() => {}
        // A price move of a listing leaving the market (a RESO record sold or withdrawn at a
        // lower price in one change) is its delisting, not a cut; one of a listing announced
        // (coming soon), or going on sale from it, is no market's either.
        Some(old_state)
            if !new.delisted
                && old_state.listing.offer == Offer::Sale
                && old_state.listing.status.moves_market_prices()
                && listing.status.moves_market_prices() =>
        {
            let (before, after) = (old_state.listing.price_minor, listing.price_minor);
            if after < before && before > 0 {
                let cut_bp = ((before - after) as i128 * 10_000 / before as i128) as i64;
                count(new_scopes(), Counter::PriceCut, cut_bp, &mut out);
            } else if after > before {
                count(new_scopes(), Counter::PriceRise, 0, &mut out);
            }
        }
        Some(_) => {}
    }
    // New: first sight (or back after a delisting) in inventory, a listing announced as
    // coming soon that now enters it (it counted nowhere until then, and its end will count),
    // or one sold or withdrawn that is for sale again (a RESO record Withdrawn, then Active:
    // its move out counted a delisting).
    let announced =
        old.is_some_and(|s| !s.delisted && s.listing.status == ListingStatus::ComingSoon);
    let relisted = old.is_some_and(|s| !s.delisted && !stays_listed(&s.listing));
    // A first read's listing (or history's) was on the market before: new only on its own
    // on-market day.
    if !inventory
        && new_facts.is_some()
        && ((old.is_none_or(|s| s.delisted) && is_new) || announced || relisted)
    {
        count(new_scopes(), Counter::NewListing, 0, &mut out);
    }
    if let (Some(f), None) = (&old_facts, &new_facts) {
        count(f.scopes(), Counter::Delisting, 0, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_the_clock_skew_the_stream_order_decides() {
        let at = |minute: i64| {
            DateTime::from_timestamp(1_760_000_000 + minute * 60, 0).expect("valid time")
        };
        let v = |minute, seq: &str| Version {
            observed_at: at(minute),
            sequence: SequenceNumber::parse(seq).unwrap(),
        };
        // A later record stamped 2 minutes early by a slow clock: newer.
        assert!(v(-2, "20").is_newer_than(&v(0, "10")));
        // An old poll's record put late by a retry, observed an hour before: not newer.
        assert!(!v(-60, "20").is_newer_than(&v(0, "10")));
        // An earlier record observed later, beyond the skew: newer.
        assert!(v(60, "5").is_newer_than(&v(0, "10")));
        // The same record again, or an earlier one within the skew: not newer.
        assert!(!v(0, "10").is_newer_than(&v(0, "10")));
        assert!(!v(1, "9").is_newer_than(&v(0, "10")));
    }

    /// A market's contributions come in stream order whatever the listings' ids and the
    /// records' order in the batch: its hours close in the order the stream changed it.
    #[test]
    fn a_market_receives_its_contributions_in_stream_order() {
        use crate::tests::{Step, events_of};
        // Two Nashville listings, the later id first in the stream, each changed again.
        let change = |listing, price_pct| Step::Change {
            listing,
            price_pct,
            status: 0,
        };
        let events = events_of(&[change(2, 0), change(0, 0), change(2, -5), change(0, -7)]);
        assert_eq!(events.len(), 4);
        let records: Vec<DecodedRecord> = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| DecodedRecord {
                sequence: SequenceNumber::parse(&format!("4959{}", i + 1)).unwrap(),
                event,
            })
            .rev()
            .collect();
        let plan = plan_batch(records, &super::StoredStates::default());
        let city = &plan.scopes[&Scope::city("nashville-tn")];
        let sequences: Vec<&str> = city.iter().map(|(s, _, _)| s.as_kinesis()).collect();
        let mut in_stream_order = sequences.clone();
        in_stream_order.sort_by_key(|s| SequenceNumber::parse(s));
        assert_eq!(sequences, in_stream_order);
        let mut each = sequences.clone();
        each.dedup();
        assert_eq!(each, ["49591", "49592", "49593", "49594"]);
        // A change's removal before its addition.
        let third: Vec<bool> = city
            .iter()
            .filter(|(s, _, _)| s.as_kinesis() == "49593")
            .filter_map(|(_, _, c)| match c {
                Contribution::Remove(_) => Some(false),
                Contribution::Add(_) => Some(true),
                _ => None,
            })
            .collect();
        assert_eq!(third, [false, true]);
    }

    /// A listing re-filed from Nashville to Syracuse (an import of its history, a source
    /// moving it), then delisted by Nashville's next read, whose state still held it: it
    /// stays listed in Syracuse, in the batch that moved it and in a later one. A delisting
    /// from the city it is in still delists it.
    #[test]
    fn a_delisting_from_the_city_a_listing_left_leaves_it_listed_where_it_is() {
        use crate::tests::listing;
        let at = |minute: i64| {
            DateTime::from_timestamp(1_760_000_000 + minute * 60, 0).expect("valid time")
        };
        let active = realty_model::listing::ListingStatus::Active;
        let (nashville, syracuse) = (
            listing(1, 0, 30_000_000, active, at(0)),
            listing(1, 1, 30_000_000, active, at(10)),
        );
        let record = |n: usize, event: ListingEvent| DecodedRecord {
            sequence: SequenceNumber::parse(&format!("4959{n}")).expect("number"),
            event,
        };
        let left = ListingEvent::delisted(nashville.clone(), at(20), "poll");
        let plan = plan_batch(
            vec![
                record(1, ListingEvent::new_listing(nashville.clone(), "poll")),
                record(2, ListingEvent::new_listing(syracuse.clone(), "replay")),
                record(3, left.clone()),
            ],
            &super::StoredStates::default(),
        );
        assert_eq!(plan.superseded, 1);
        let state = &plan.states[0];
        assert!(!state.delisted);
        assert_eq!(state.listing.market.city_state, "syracuse-ny");
        assert!(plan.scopes.contains_key(&Scope::city("syracuse-ny")));
        // A later batch against the stored state: the same.
        let stored: super::StoredStates = [(
            state.listing.id.as_str().to_owned(),
            std::sync::Arc::new(state.clone()),
        )]
        .into_iter()
        .collect();
        let plan = plan_batch(vec![record(4, left)], &stored);
        assert!(plan.states.is_empty() && plan.superseded == 1);
        let gone = ListingEvent::delisted(syracuse, at(30), "poll");
        let plan = plan_batch(vec![record(5, gone)], &stored);
        assert!(plan.states[0].delisted);
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        let small = SequenceNumber::parse("9").unwrap();
        let big = SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
            .unwrap();
        assert!(small < big);
        assert_eq!(
            big.as_kinesis(),
            "49590338271490256608559692538361571095921575989136588898"
        );
        // As items written before stored it: zero-padded to 128 digits.
        let padded = format!("{:0>128}", big.as_kinesis());
        assert_eq!(SequenceNumber::parse(&padded), Some(big.clone()));
        let stored: SequenceNumber =
            serde_json::from_value(serde_json::json!(padded)).expect("reads the padded form");
        assert_eq!(stored, big);
        assert_eq!(serde_json::to_value(&big).expect("JSON"), big.as_kinesis());
        assert!(serde_json::from_value::<SequenceNumber>(serde_json::json!("12a")).is_err());
        assert!(SequenceNumber::parse(&"9".repeat(128)).is_some());
        assert_eq!(SequenceNumber::parse(&"9".repeat(129)), None);
        assert!(SequenceNumber::parse("10") > SequenceNumber::parse("9"));
        assert_eq!(SequenceNumber::parse("12a"), None);
        assert_eq!(SequenceNumber::parse(""), None);
        assert_eq!(SequenceNumber::parse("000").unwrap().as_kinesis(), "0");
    }
}
