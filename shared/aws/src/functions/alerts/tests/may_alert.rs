//! The metrics function's `may_alert` mark against the alert rules: every write the rules
//! alert on is marked, so the trigger's filter never drops an alert
//! (`realty_model::state::may_alert`, docs/alerts.md "Which writes reach the alerts
//! function").

use realty_model::state::{AppliedEvent, ListingState, may_alert};

use super::*;

/// The item's own state, its recent events `earlier` then its own.
fn state_of(item: &ListingItem, earlier: &[AppliedEvent]) -> ListingState {
    let mut state = ListingState::try_from(item.clone()).expect("a valid item");
    state.recent_events = earlier.to_vec();
    state.recent_events.push(AppliedEvent::from(&state));
    state
}

/// Every variation of the sample listing an alert looks at.
fn variations(version: u32) -> Vec<ListingItem> {
    let mut out = Vec::new();
    for offer in [Offer::Sale, Offer::Rent] {
        for status in ListingStatus::ALL {
            for delisted in [false, true] {
                for (price, area) in [
                    (100_000, Some(630)),
                    (90_000, Some(630)),
                    (100_000, Some(700)),
                    (100_000, None),
                ] {
                    for anomalous in [false, true] {
                        let mut v = item("zillow:77", price, area, version);
                        v.listing.offer = offer;
                        v.listing.status = status;
                        v.delisted = delisted;
                        v.interest = if anomalous {
                            vec![InterestKind::Anomalous]
                        } else {
                            Vec::new()
                        };
                        out.push(v);
                    }
                }
            }
        }
    }
    out
}

/// The alerts the rules raise for writing `new` over `old`, with a median every listing with
/// an area is undervalued against (the most alerts the rules can give).
fn alerts_of(old: Option<&ListingItem>, new: &ListingItem) -> usize {
    let median = MarketMedian {
        scope_key: "city#nashville-tn#all".into(),
        price_per_sqft: 1.0e6,
    };
    let thresholds = AlertThresholds {
        new_listing_alerts: true,
        ..AlertThresholds::default()
    };
    let change = ListingChange {
        sequence_number: "1".into(),
        old: old.cloned(),
        new: new.clone(),
    };
    per_event(change)
        .iter()
        .map(|step| evaluate(step, &thresholds, &Medians::both(&median)).len())
        .sum()
}

/// One event a write: every pair of variations (and each as a first sighting, news or a
/// baseline) the rules alert on is marked.
#[test]
fn every_write_the_rules_alert_on_is_marked() {
    let (olds, news) = (variations(1), variations(2));
    let (mut alerting, mut marked_silent) = (0, 0);
    for new in &news {
        for baseline in [false, true] {
            let mut first = new.clone();
            first.baseline = baseline;
            let marked = may_alert(None, &state_of(&first, &[]));
            if alerts_of(None, &first) > 0 {
                alerting += 1;
                assert!(marked, "a first sighting that alerts, unmarked: {first:?}");
            }
        }
        for old in &olds {
            let (old_state, new_state) = (
                state_of(old, &[]),
                state_of(new, &[AppliedEvent::from(&state_of(old, &[]))]),
            );
            let marked = may_alert(Some(&old_state), &new_state);
            if alerts_of(Some(old), &ListingItem::from(&new_state)) > 0 {
                alerting += 1;
                assert!(marked, "a change that alerts, unmarked:\n{old:?}\n{new:?}");
            } else {
                marked_silent += usize::from(marked);
            }
        }
    }
    // The grid has both kinds, and the mark is not everything.
    assert!(alerting > 1_000, "{alerting}");
    assert!(
        marked_silent < olds.len() * news.len() / 2,
        "{marked_silent}"
    );
}

/// Several events in one write: a cut and then a sale alerts (the cut, judged on its own),
/// so the write is marked though the listing it leaves cannot alert.
#[test]
fn a_cut_then_a_sale_in_one_write_is_marked() {
    let old = item("zillow:77", 100_000, Some(630), 1);
    let mut cut = item("zillow:77", 90_000, Some(630), 2);
    cut.observed_at = old.observed_at + chrono::Duration::minutes(1);
    let mut sold = cut.clone();
    sold.sequence = format!("{:0>128}", 3);
    sold.observed_at = cut.observed_at + chrono::Duration::minutes(1);
    sold.listing.status = ListingStatus::Sold;
    let old_state = state_of(&old, &[]);
    let cut_state = state_of(&cut, &[AppliedEvent::from(&old_state)]);
    let sold_state = state_of(&sold, &cut_state.recent_events);
    assert!(alerts_of(Some(&old), &ListingItem::from(&sold_state)) > 0);
    assert!(may_alert(Some(&old_state), &sold_state));
    // The sale alone alerts nothing, and is not marked.
    let sold_alone = state_of(&sold, &[AppliedEvent::from(&cut_state)]);
    assert_eq!(alerts_of(Some(&cut), &ListingItem::from(&sold_alone)), 0);
    assert!(!may_alert(Some(&cut_state), &sold_alone));
}
