//! The snapshots a batch writes: daily snapshots carry their days' trends, and open periods
//! are read from the live item until they close.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};

use super::crashing_stores::{CrashingStores, deliver};
use super::{SHARD, Step, block_on, events_of, listing, records_of};
use crate::aggregate;
use crate::aggregate::history;
use crate::memory::MemoryStores;
use crate::ports::*;
use crate::process::process_batch;
use realty_model::listing::*;
use realty_model::scope::Scope;

/// Each daily snapshot carries the trends of the day as the metrics function wrote it, and
/// they are what the daily snapshots themselves give: the medians each day closed with.
#[test]
fn daily_snapshots_carry_the_trends_their_days_give() {
    // About 40 days of changes (37 minutes a step), delivered in uneven batches.
    let steps: Vec<Step> = (0..1_600u32)
        .map(|i| Step::Change {
            listing: i % 9,
            price_pct: [-3, 0, 2, 0, -1][(i % 5) as usize],
            status: (i % 7) as u8 % 3,
        })
        .collect();
    let events = events_of(&steps);
    let records = records_of(&events);
    let mut stores = CrashingStores::default();
    deliver(
        &mut stores,
        &records,
        &[(37, 1, false, None), (5, 2, true, None)],
    );
    let snapshots = stores.inner.snapshots.lock().expect("lock").clone();
    let key = Scope::city("nashville-tn").key();
    let days: BTreeMap<NaiveDate, (aggregate::DayClose, Option<history::Trends>)> = snapshots
        .values()
        .filter(|s| s.scope_key == key)
        .filter_map(|s| match s.period {
            Period::Day(d) => Some((d, ((&s.figures).into(), s.trends.clone()))),
            Period::Hour(_) => None,
        })
        .collect();
    assert!(days.len() >= 35, "{} days", days.len());
    let closes: BTreeMap<NaiveDate, aggregate::DayClose> =
        days.iter().map(|(d, (c, _))| (*d, *c)).collect();
    for (day, (_, stored)) in &days {
        let before: BTreeMap<_, _> = closes.range(..=*day).map(|(d, c)| (*d, *c)).collect();
        assert_eq!(
            stored.as_ref(),
            Some(&history::trends(&before, *day)),
            "{day}"
        );
    }
    let last = days
        .values()
        .last()
        .and_then(|(_, t)| t.clone())
        .expect("trends");
    assert!(last.median_price_ma_30d.is_some() && last.median_price_change_30d_pct.is_some());
}

/// A batch writes the snapshots of the periods it closes only; readers get the open hour and
/// day from the live item, as the write that closes them will store them.
#[test]
fn open_periods_are_read_from_the_live_item_and_stored_when_they_close() {
    use crate::reader::MarketReader;
    // 37 minutes apart from 08:00: two events in the 08:00 hour, the third at 09:14; new
    // listings for sale in Nashville (even numbers; 4 would be a rental).
    let steps: Vec<Step> = [0u32, 2, 6]
        .into_iter()
        .map(|i| Step::Change {
            listing: i,
            price_pct: 0,
            status: 0,
        })
        .collect();
    let records = records_of(&events_of(&steps));
    let stores = MemoryStores::default();
    let ports = stores.ports();
    let key = Scope::city("nashville-tn").key();
    let read = |from: &str, to: &str| block_on(stores.snapshots(&key, from, to)).expect("read");

    let outcome = block_on(process_batch(&ports, SHARD, &records[..2]));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert!(
        stores.snapshots.lock().expect("lock").is_empty(),
        "nothing closed yet"
    );
    let open_hour = read("H#", "H#~");
    let open_day = read("D#", "D#~");
    assert_eq!(
        open_hour.iter().map(|s| s.sk.as_str()).collect::<Vec<_>>(),
        ["H#2024-10-01T08"]
    );
    assert_eq!(
        open_day.iter().map(|s| s.sk.as_str()).collect::<Vec<_>>(),
        ["D#2024-10-01"]
    );
    assert_eq!(open_hour[0].figures.active_listings, 2);
    assert!(open_day[0].trends.is_some(), "a day carries its trends");
    // Outside the range asked for, the open periods are not returned.
    assert!(read("H#2024-10-02", "H#~").is_empty());

    let outcome = block_on(process_batch(&ports, SHARD, &records[2..]));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let stored: Vec<String> = stores
        .snapshots
        .lock()
        .expect("lock")
        .keys()
        .filter(|(k, _)| *k == key)
        .map(|(_, sk)| sk.clone())
        .collect();
    assert_eq!(
        stored,
        ["H#2024-10-01T08"],
        "the hour closed, inside its day: the day stays open, not written"
    );
    let hours = read("H#", "H#~");
    assert_eq!(hours[0], open_hour[0], "stored as it was read while open");
    assert_eq!(hours[1].sk, "H#2024-10-01T09");
    assert_eq!(hours[1].figures.active_listings, 3);
    // The day is still open: read from the live item, with the third listing.
    let open_day = read("D#", "D#~");
    assert_eq!(open_day[0].figures.active_listings, 3);

    // A listing the next day closes the hour and the day: both stored as they were read
    // while open, the day with its trends.
    let next_day = Utc
        .with_ymd_and_hms(2024, 10, 2, 7, 30, 0)
        .single()
        .expect("time");
    let mut late = records_of(&[ListingEvent::new_listing(
        listing(8, 0, 41_000_000, ListingStatus::Active, next_day),
        "poll-next-day",
    )]);
    late[0].sequence_number = "49590338271490256608559692538361571095921575989136589999".into();
    let outcome = block_on(process_batch(&ports, SHARD, &late));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let stored = stores.snapshots.lock().expect("lock").clone();
    let stored_day = &stored[&(key.clone(), "D#2024-10-01".to_owned())];
    assert_eq!(
        crate::items::MarketSnapshotItem::from(stored_day),
        open_day[0],
        "the day as it was read while open"
    );
    assert!(
        stored_day.trends.is_some(),
        "a closed day carries its trends"
    );
    assert!(stored.contains_key(&(key.clone(), "H#2024-10-01T09".to_owned())));
    assert_eq!(
        read("D#", "D#~")
            .iter()
            .map(|s| (s.sk.as_str(), s.figures.active_listings))
            .collect::<Vec<_>>(),
        [("D#2024-10-01", 3), ("D#2024-10-02", 4)]
    );
}
