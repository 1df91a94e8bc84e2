//! The snapshots of a market's periods: those an aggregate closes, and the open ones readers
//! are shown from the live item.

use std::collections::BTreeMap;

use crate::ports::{Period, Snapshot};

/// Closes the hour of `aggregate`'s `as_of` and, if `day_closes`, its day: pushes their
/// snapshots onto `out` as the aggregate stands. A closing day's close is recorded in the
/// aggregate, and its snapshot carries the trends as of it.
pub(super) fn close_periods(
    key: &str,
    aggregate: &mut crate::aggregate::MarketAggregate,
    day_closes: bool,
    out: &mut Vec<Snapshot>,
) {
    let Some(as_of) = aggregate.as_of else {
        return;
    };
    let figures = aggregate.figures();
    let hour = |figures| Snapshot {
        scope_key: key.to_owned(),
        period: Period::hour_of(as_of),
        figures,
        trends: None,
    };
    if day_closes {
        let day = as_of.date_naive();
        let trends = aggregate.close_day(day, &figures);
        out.push(hour(figures.clone()));
        out.push(Snapshot {
            scope_key: key.to_owned(),
            period: Period::Day(day),
            figures,
            trends: Some(trends),
        });
    } else {
        out.push(hour(figures));
    }
}

/// The snapshots of the periods a market's live item has open (its hour and its day), as
/// they would be written when they close, if nothing else arrives in them: what readers show
/// for those periods (the stored snapshots hold only closed ones).
pub fn open_snapshots(key: &str, aggregate: &crate::aggregate::MarketAggregate) -> Vec<Snapshot> {
    let mut open = Vec::with_capacity(2);
    close_periods(key, &mut aggregate.clone(), true, &mut open);
    open
}

/// The snapshots of `key` between two sort keys (inclusive), oldest first: the stored ones
/// (closed periods) and, from the live item, the open ones (replacing a stored snapshot of the
/// same period: builds before this one also wrote the open periods, at every batch).
pub fn with_open_periods(
    key: &str,
    stored: Vec<crate::items::MarketSnapshotItem>,
    live: Option<&crate::aggregate::MarketAggregate>,
    from_sort_key: &str,
    to_sort_key: &str,
) -> Vec<crate::items::MarketSnapshotItem> {
    let mut by_sort_key: BTreeMap<String, crate::items::MarketSnapshotItem> =
        stored.into_iter().map(|s| (s.sk.clone(), s)).collect();
    for open in live.map(|a| open_snapshots(key, a)).unwrap_or_default() {
        let item = crate::items::MarketSnapshotItem::from(&open);
        if (from_sort_key..=to_sort_key).contains(&item.sk.as_str()) {
            by_sort_key.insert(item.sk.clone(), item);
        }
    }
    // `H#` and `D#` sort keys never share a range: each is in time order within its kind.
    by_sort_key.into_values().collect()
}
