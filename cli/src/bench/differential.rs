//! The gate of a redesigned metrics batch: every item the batch stores, over the generator's
//! streams, byte for byte as the batch before it stored them.
//!
//! The batch's items (listings, live markets, snapshots, listings of interest) are encoded
//! as the stores encode them (JSON of the item types the adapters write), digested in
//! groups that say where a difference is (the listings of a city, a market's live item, its
//! snapshots), and compared with the digests recorded in `differential.golden`. A change that
//! is meant to change what is stored re-records it: `REALTY_BLESS=1 cargo test --workspace
//! -p realty-cli differential`, and the diff of the golden file shows which items moved.

use std::collections::BTreeMap;
use std::hash::Hasher as _;

use chrono::Duration;
use realty_metrics::items::{InterestItem, MarketLiveItem, MarketSnapshotItem};
use realty_metrics::memory::{KeyedItem, MemoryStores};
use realty_metrics::process::InputRecord;
use realty_model::listing::ListingEvent;
use realty_model::state::ListingItem;

use super::events;

const GOLDEN: &str = "src/bench/differential.golden";

/// The streams the gate runs: the bench's own over 5 hours (hours closed, snapshots
/// written), in batches of 1,000 and of 7 (a batch that splits a listing's events and a
/// market's hour), and the realistic mix.
fn streams() -> Vec<(&'static str, Vec<ListingEvent>, usize)> {
    let own = events::generate_every(1_800, 17, events::Spread::Regional, Duration::seconds(10));
    let rate = events::realistic::FeedRate { per_second: 100 };
    let realistic = events::realistic::generate(2_500, 17, events::Spread::Regional, rate);
    vec![
        ("own/1000", own.clone(), 1_000),
        ("own/7", own, 7),
        ("realistic/1000", realistic, 1_000),
    ]
}

/// Each event as the record of one shard, arriving when it was observed.
fn records(events: &[ListingEvent]) -> Vec<InputRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| InputRecord {
            sequence_number: realty_bench_compute::sequence_number(i),
            data: e.encode().expect("a generated event encodes"),
            approximate_arrival: e.observed_at,
        })
        .collect()
}

fn json<T: serde::Serialize>(item: &T) -> Vec<u8> {
    serde_json::to_vec(item).expect("an item encodes")
}

/// The digests of the stored items, grouped so that a difference names where it is: the
/// listings by city, a market's live item alone, its snapshots together, the other items of
/// the market table by partition.
#[derive(Default)]
struct Groups(BTreeMap<String, fnv::FnvHasher>);

impl Groups {
    fn add(&mut self, group: String, key: &str, bytes: &[u8]) {
        let hasher = self.0.entry(group).or_default();
        hasher.write(key.as_bytes());
        hasher.write(bytes);
    }

    fn digests(self) -> BTreeMap<String, String> {
        self.0
            .into_iter()
            .map(|(group, hasher)| (group, format!("{:016x}", hasher.finish())))
            .collect()
    }
}

/// Every stored item of `stores` in its group ([`Groups`]), in key order within it.
fn stored_items(stores: &MemoryStores) -> BTreeMap<String, String> {
    let mut groups = Groups::default();
    let listings = stores.listings.lock().expect("not poisoned");
    let by_id: BTreeMap<&String, _> = listings.iter().collect();
    for (id, state) in by_id {
        let item = ListingItem::from(state.as_ref());
        let city = &state.listing.market.city_state;
        groups.add(format!("listings {city}"), id, &json(&item));
    }
    for (key, stored) in stores.aggregates.lock().expect("not poisoned").iter() {
        groups.add(
            format!("market {key}"),
            key,
            &json(&MarketLiveItem::new(key, stored)),
        );
    }
    for ((key, sort_key), snapshot) in stores.snapshots.lock().expect("not poisoned").iter() {
        let item = MarketSnapshotItem::from(snapshot);
        groups.add(format!("snapshots {key}"), sort_key, &json(&item));
    }
    for ((pk, sk), item) in stores.keyed.lock().expect("not poisoned").iter() {
        let bytes = match item {
            KeyedItem::Interest(item) => json::<InterestItem>(item),
            KeyedItem::Json(value) => json(value),
        };
        groups.add(format!("keyed {pk}"), sk, &bytes);
    }
    let mut out = groups.digests();
    let journals = stores.journals.lock().expect("not poisoned").len();
    out.insert("journals left".to_owned(), journals.to_string());
    out
}

/// Every stream's items, as lines `<stream> <kind> <key> <digest>`.
fn run_streams() -> Vec<String> {
    let mut lines = Vec::new();
    for (name, events, batch) in streams() {
        let (_, stores) =
            realty_bench_compute::run_metrics(&records(&events), batch).expect("the batch runs");
        for (key, value) in stored_items(&stores) {
            lines.push(format!("{name} {key} {value}"));
        }
    }
    lines
}

#[test]
fn every_stored_item_is_as_the_recorded_batch_stored_it() {
    let lines = run_streams();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("REALTY_BLESS").is_some() {
        std::fs::write(&path, lines.join("\n") + "\n").expect("writing the golden file");
        return;
    }
    let golden =
        std::fs::read_to_string(&path).expect("the golden file (REALTY_BLESS=1 records it)");
    let recorded: BTreeMap<&str, &str> =
        golden.lines().filter_map(|l| l.rsplit_once(' ')).collect();
    let now: BTreeMap<&str, &str> = lines.iter().filter_map(|l| l.rsplit_once(' ')).collect();
    let mut differences = Vec::new();
    for (key, digest) in &recorded {
        match now.get(key) {
            None => differences.push(format!("{key}: stored before, not now")),
            Some(d) if d != digest => differences.push(format!("{key}: {digest} before, {d} now")),
            Some(_) => {}
        }
    }
    for key in now.keys().filter(|k| !recorded.contains_key(*k)) {
        differences.push(format!("{key}: stored now, not before"));
    }
    let shown: Vec<&String> = differences.iter().take(20).collect();
    assert!(
        differences.is_empty(),
        "{} of {} groups of items differ from the recorded batch's, first: {shown:#?}",
        differences.len(),
        recorded.len()
    );
    assert!(recorded.len() > 500, "{} groups recorded", recorded.len());
}

/// The gate runs on what it means to: the streams store every kind of item, and running
/// them twice stores the same bytes (a digest of something time- or hash-seeded would make
/// the gate fail for nothing).
#[test]
fn the_gate_sees_every_kind_of_item_and_the_same_bytes_twice() {
    let first = run_streams();
    for kind in ["listings", "market", "snapshots", "keyed"] {
        assert!(
            first.iter().any(|l| l.split(' ').nth(1) == Some(kind)),
            "no {kind} item"
        );
    }
    assert_eq!(first, run_streams());
}
