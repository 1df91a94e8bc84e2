//! What the metrics workflow costs DynamoDB per 1,000 events: its calls and write units, as
//! the DynamoDB adapter would make them and DynamoDB bills them, counted over in-memory
//! stores. The stream is cut as Kinesis would deliver it at 1,000 events/s: records go to
//! shards by their partition key, and each shard's records of each second are one batch.
//! Run over the regional and the national spread, and over several shard counts, it shows
//! what the design costs as markets and shards grow, without an emulator in the way.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use realty_alerts::rules::{AlertThresholds, ListingChange, Medians, evaluate, per_event};
use realty_aws::adapters::dynamodb::{GET_BATCH, TRANSACTION_ITEMS, WRITE_BATCH};
use realty_metrics::interest::{InterestWrite, interest_key};
use realty_metrics::items::{InterestItem, JournalItem, MarketLiveItem, MarketSnapshotItem};
use realty_metrics::memory::MemoryStores;
use realty_metrics::ports::{
    AggregatePut, EncodedJournal, Journal, MarketStore, Snapshot, StoredAggregate,
};
use realty_metrics::process::{InputRecord, MetricsPorts, process_batch};
use realty_model::listing::ListingEvent;
use realty_model::ports::PortError;
use realty_model::state::ListingItem;
use realty_model::state::ListingState;
use realty_model::state::{ListingStore, StoredStates};
use serde::Serialize;

use super::items::{item_bytes, write_units};

/// Events a second of the runs by spread: one batch per shard per second, as the event
/// source mapping's 1 s window gives under load.
pub const EVENTS_PER_SECOND: usize = 1_000;

/// An alert's write units in the market table: its claim, a transactional put under 1 KB
/// (2), then the feed entry written over it as its mark (1) (docs/capacity.md, "The three
/// sizes"; `realty_aws::adapters::alert_claims`).
pub const ALERT_WRITE_UNITS: f64 = 3.0;

/// DynamoDB's cost of one run, per 1,000 events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteCosts {
    pub shards: usize,
    /// Distinct markets (scopes) a second of events writes, summed over shards.
    pub market_writes_per_1000_events: f64,
    /// Write units per event: all items, as DynamoDB bills them.
    pub write_units_per_event: f64,
    /// Of which the market table's live items and snapshots.
    pub market_write_units_per_event: f64,
    /// Write units per event by what is written: listing, market, snapshot, interest, journal.
    pub write_units_per_event_by_item: BTreeMap<String, f64>,
    /// The same writes with the market items' values in 2 % buckets, as they were stored
    /// before medians were exact (docs/capacity.md, "Exact medians"): the cost of exactness
    /// on the same events.
    pub write_units_per_event_bucketed: f64,
    /// DynamoDB calls per 1,000 events, by operation.
    pub calls_per_1000_events: BTreeMap<String, f64>,
    /// Alerts per event the listing writes make by the alert rules (default thresholds; the
    /// undervalued alert, which needs the market's median, not counted).
    pub alerts_per_event: f64,
    /// All write units per event, the alerts' claims and feed entries included
    /// ([`ALERT_WRITE_UNITS`] each).
    pub write_units_per_event_with_alerts: f64,
    /// Microseconds per event of encoding the journal and the items written, with the
    /// workflow's journal encoder and the DynamoDB adapters' item encoders (items built,
    /// packed and compressed, then `serde_dynamo`), on one core.
    pub journal_and_store_us_per_event: f64,
}

/// Runs `events` through the metrics workflow over `shards` shards, `per_second` events a
/// second, and counts DynamoDB's calls and write units.
pub async fn measure(
    events: &[ListingEvent],
    shards: usize,
    per_second: usize,
) -> Result<WriteCosts> {
    measure_after(events, 0, shards, per_second).await
}

/// [`measure`], counting only the events after the first `uncounted` (a first read, whole
/// seconds of it), which are written all the same.
pub async fn measure_after(
    events: &[ListingEvent],
    uncounted: usize,
    shards: usize,
    per_second: usize,
) -> Result<WriteCosts> {
    let per_second = per_second.max(1);
    if !uncounted.is_multiple_of(per_second) || uncounted > events.len() {
        bail!(
            "{uncounted} uncounted events are not whole seconds of {per_second} within the {} events",
            events.len()
        );
    }
    let stores = MeteredStores::default();
    deliver_by_second(&stores, events, uncounted, shards, per_second).await?;
    let tally = stores
        .tally
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(costs_of(&tally, shards, (events.len() - uncounted).max(1)))
}

/// The costs `tally` counted over `counted` events.
fn costs_of(tally: &Tally, shards: usize, counted: usize) -> WriteCosts {
    let per_1000 = 1_000.0 / counted as f64;
    let per_event = 1.0 / counted as f64;
    let all_units = tally.write_units.values().sum::<u64>();
    let market_units = tally.write_units.get("market").copied().unwrap_or(0);
    let alerts_per_event = tally.alerts as f64 * per_event;
    WriteCosts {
        journal_and_store_us_per_event: tally.encode_time.as_secs_f64() * 1e6 * per_event,
        alerts_per_event,
        write_units_per_event_with_alerts: all_units as f64 * per_event
            + ALERT_WRITE_UNITS * alerts_per_event,
        write_units_per_event_bucketed: (all_units - market_units + tally.bucketed_market_units)
            as f64
            * per_event,
        shards,
        market_writes_per_1000_events: tally.market_writes as f64 * per_1000,
        write_units_per_event: all_units as f64 * per_event,
        market_write_units_per_event: (market_units
            + tally.write_units.get("snapshot").copied().unwrap_or(0))
            as f64
            * per_event,
        write_units_per_event_by_item: tally
            .write_units
            .iter()
            .map(|(item, units)| ((*item).to_owned(), *units as f64 * per_event))
            .collect(),
        calls_per_1000_events: tally
            .calls
            .iter()
            .map(|(call, n)| (call.clone(), *n as f64 * per_1000))
            .collect(),
    }
}

/// Delivers `events` as Kinesis would at `per_second` events a second over `shards` shards,
/// one batch per shard and second, the tally reset once the first `uncounted` are written.
async fn deliver_by_second(
    stores: &MeteredStores,
    events: &[ListingEvent],
    uncounted: usize,
    shards: usize,
    per_second: usize,
) -> Result<()> {
    let ports = MetricsPorts {
        listings: stores,
        markets: stores,
        archive: &stores.inner,
        poison: &stores.inner,
        rules: Default::default(),
    };
    for (second, window) in events.chunks(per_second).enumerate() {
        if second * per_second == uncounted {
            *stores.tally() = Tally::default();
        }
        let mut by_shard: BTreeMap<usize, Vec<InputRecord>> = BTreeMap::new();
        for (i, event) in window.iter().enumerate() {
            let index = second * per_second + i;
            by_shard
                .entry(shard_of(event.partition_key(), shards))
                .or_default()
                .push(InputRecord {
                    sequence_number: realty_bench_compute::sequence_number(index),
                    data: event.encode()?,
                    approximate_arrival: event.observed_at,
                });
        }
        for (shard, records) in by_shard {
            let shard = format!("shardId-{shard:012}");
            let outcome = process_batch(&ports, &shard, &records).await;
            if let Some(error) = outcome.error {
                bail!("the metrics workflow failed on in-memory stores: {error}");
            }
        }
    }
    Ok(())
}

/// The shard a partition key goes to among `shards` (Kinesis hashes keys with MD5 into equal
/// hash-key ranges; any even hash spreads keys the same way).
fn shard_of(partition_key: &str, shards: usize) -> usize {
    let mut hasher = fnv::FnvHasher::default();
    partition_key.hash(&mut hasher);
    (hasher.finish() % shards.max(1) as u64) as usize
}

fn size_of<T: Serialize>(item: T) -> Result<usize, PortError> {
    let item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(item).map_err(|e| PortError::new("encode item", e.to_string()))?;
    Ok(item_bytes(&item))
}

#[derive(Default)]
struct Tally {
    calls: BTreeMap<String, u64>,
    /// By table part: listing, market, snapshot, interest, journal.
    write_units: BTreeMap<&'static str, u64>,
    /// The market items' write units had their values been stored in 2 % buckets.
    bucketed_market_units: u64,
    market_writes: u64,
    alerts: u64,
    /// Time spent encoding the journal and the items, as the workflow and the adapters do.
    encode_time: Duration,
}

/// The time of the journal's encoding (its events' JSON framed and compressed, as the
/// workflow's `encode_journal` does), made again from the stored journal: the workflow's own
/// is inside compute.
fn journal_encoding_time(journal: &EncodedJournal) -> Result<Duration, PortError> {
    let decoded = Journal::decode(journal)?;
    let started = Instant::now();
    decoded.encode()?;
    Ok(started.elapsed())
}

impl Tally {
    fn call(&mut self, operation: &str, count: usize) {
        *self.calls.entry(operation.to_owned()).or_default() += count as u64;
    }
}

/// Memory stores that count what the DynamoDB adapters would send for each port call.
#[derive(Default)]
struct MeteredStores {
    inner: MemoryStores,
    tally: Mutex<Tally>,
}

impl MeteredStores {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `encode` (an adapter's encoding of an item, as it builds and serialises it),
    /// its time added to the run's encoding time.
    fn encoded<T>(&self, encode: impl FnOnce() -> Result<T, PortError>) -> Result<T, PortError> {
        let started = Instant::now();
        let out = encode();
        self.tally().encode_time += started.elapsed();
        out
    }

    /// Counts `calls` calls of `operation` and `units` write units billed for `item`.
    fn bill(&self, operation: &'static str, calls: usize, item: &'static str, units: u64) {
        let mut tally = self.tally();
        tally.call(operation, calls);
        *tally.write_units.entry(item).or_default() += units;
    }
}

impl MeteredStores {
    /// The alerts the alerts function would raise for these listing writes, each judged
    /// against the item it replaces, as the table's stream gives them.
    async fn alerts_of(&self, states: &[ListingState]) -> Result<u64, PortError> {
        let ids: Vec<&str> = states.iter().map(|s| s.listing.id.as_str()).collect();
        let before = self.inner.get_states(&ids).await?;
        let thresholds = AlertThresholds::default();
        let mut alerts = 0;
        for state in states {
            let change = ListingChange {
                sequence_number: String::new(),
                old: before
                    .get(state.listing.id.as_str())
                    .map(|old| ListingItem::from(old.as_ref())),
                new: ListingItem::from(state),
            };
            for step in per_event(change) {
                alerts += evaluate(&step, &thresholds, &Medians::default()).len() as u64;
            }
        }
        Ok(alerts)
    }
}

impl ListingStore for MeteredStores {
    fn check_state(&self, state: &ListingState) -> Result<(), String> {
        self.inner.check_state(state)
    }

    async fn get_states(&self, ids: &[&str]) -> Result<StoredStates, PortError> {
        self.tally()
            .call("DynamoDB.BatchGetItem", ids.len().div_ceil(GET_BATCH));
        self.inner.get_states(ids).await
    }

    async fn put_states(&self, states: Vec<ListingState>) -> Result<(), PortError> {
        let mut units = 0;
        for state in &states {
            units += write_units(self.encoded(|| size_of(ListingItem::from(state)))?);
        }
        self.bill(
            "DynamoDB.BatchWriteItem",
            states.len().div_ceil(WRITE_BATCH),
            "listing",
            units,
        );
        let alerts = self.alerts_of(&states).await?;
        self.tally().alerts += alerts;
        self.inner.put_states(states).await
    }
}

impl MarketStore for MeteredStores {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        self.tally()
            .call("DynamoDB.BatchGetItem", keys.len().div_ceil(GET_BATCH));
        self.inner.get_aggregates(keys).await
    }

    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        let (mut units, mut bucketed_units) = (0, 0);
        for put in puts {
            // A transactional write costs twice a standard one.
            units +=
                2 * write_units(self.encoded(|| size_of(MarketLiveItem::new(put.key, put.item)))?);
            let bucketed = super::items::bucketed(put.item);
            bucketed_units += 2 * write_units(size_of(MarketLiveItem::new(put.key, &bucketed))?);
        }
        self.tally().bucketed_market_units += bucketed_units;
        self.bill(
            "DynamoDB.TransactWriteItems",
            puts.len().div_ceil(TRANSACTION_ITEMS),
            "market",
            units,
        );
        self.tally().market_writes += puts.len() as u64;
        self.inner.put_aggregates(puts).await
    }

    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), PortError> {
        let mut units = 0;
        for snapshot in &snapshots {
            units += write_units(self.encoded(|| size_of(MarketSnapshotItem::from(snapshot)))?);
        }
        self.bill(
            "DynamoDB.BatchWriteItem",
            snapshots.len().div_ceil(WRITE_BATCH),
            "snapshot",
            units,
        );
        self.inner.put_snapshots(snapshots).await
    }

    async fn write_interest(&self, writes: Vec<InterestWrite>) -> Result<(), PortError> {
        let mut units = 0;
        for write in &writes {
            units += match write {
                InterestWrite::Put(entry) => {
                    // Sized as the item it makes; the entries themselves go on to the store.
                    write_units(
                        self.encoded(|| size_of(InterestItem::from(entry.as_ref().clone())))?,
                    )
                }
                InterestWrite::Delete { market, sort_key } => {
                    write_units(interest_key(market).len() + sort_key.len())
                }
            };
        }
        self.bill(
            "DynamoDB.BatchWriteItem",
            writes.len().div_ceil(WRITE_BATCH),
            "interest",
            units,
        );
        self.inner.write_interest(writes).await
    }

    async fn get_journal(&self, shard: &str) -> Result<Option<EncodedJournal>, PortError> {
        self.tally().call("DynamoDB.GetItem", 1);
        self.inner.get_journal(shard).await
    }

    async fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> Result<Option<EncodedJournal>, PortError> {
        let journal_time = journal_encoding_time(journal)?;
        self.tally().encode_time += journal_time;
        let units = write_units(self.encoded(|| size_of(JournalItem::from(journal)))?);
        // Written, then deleted: a delete costs the deleted item's size too.
        self.bill("DynamoDB.PutItem", 1, "journal", 2 * units);
        self.inner.put_journal(journal).await
    }

    async fn delete_journal(&self, shard: &str) -> Result<(), PortError> {
        self.tally().call("DynamoDB.DeleteItem", 1);
        self.inner.delete_journal(shard).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::events::{Spread, generate_spread};

    #[test]
    fn write_units_round_up_per_kilobyte() {
        assert_eq!(
            (write_units(1), write_units(1024), write_units(1025)),
            (1, 1, 2)
        );
    }

    /// Price cuts of `events`: a listing's price below its event before.
    fn price_cuts(events: &[ListingEvent]) -> usize {
        let mut last: HashMap<&str, i64> = HashMap::new();
        events
            .iter()
            .filter(|e| {
                let before = last.insert(e.listing.id.as_str(), e.listing.price_minor);
                before.is_some_and(|p| e.listing.price_minor < p)
            })
            .count()
    }

    /// The writes' alerts on the realistic mix are one per price cut (each is of an active
    /// listing for sale; an anomaly may add a few), and each costs the write units of a claim
    /// and a feed entry; the bench's own stream, half cuts, raises about half an alert an
    /// event (553 per 1,000 by the alerts function, issue 62).
    #[tokio::test(flavor = "current_thread")]
    async fn alerts_follow_the_price_cuts_of_each_mix() {
        use crate::bench::events::realistic::{FeedRate, generate};
        let rate = FeedRate { per_second: 1_000 };
        let realistic = generate(12_000, 3, Spread::Regional, rate);
        let costs = measure_after(&realistic, rate.inventory(), 2, rate.per_second)
            .await
            .expect("runs");
        // The first read cuts nothing: every cut is of the feed.
        let cuts = price_cuts(&realistic) as f64 / 12_000.0;
        // One listing write an event, its item under 1 KB.
        assert_eq!(
            costs.write_units_per_event_by_item.get("listing"),
            Some(&1.0),
            "{costs:?}"
        );
        assert!(
            costs.alerts_per_event >= cuts && costs.alerts_per_event <= cuts + 0.01,
            "{} alerts an event, {cuts} cuts",
            costs.alerts_per_event
        );
        assert!(
            (costs.write_units_per_event_with_alerts
                - costs.write_units_per_event
                - ALERT_WRITE_UNITS * costs.alerts_per_event)
                .abs()
                < 1e-9
        );
        let bench = generate_spread(6_000, 3, Spread::Regional);
        let bench_costs = measure(&bench, 2, EVENTS_PER_SECOND).await.expect("runs");
        assert!(
            (0.4..0.7).contains(&bench_costs.alerts_per_event),
            "{bench_costs:?}"
        );
    }

    /// One writer per market: a market's events go to one shard, so the markets written per
    /// second do not grow with the shard count.
    #[tokio::test(flavor = "current_thread")]
    async fn market_writes_do_not_grow_with_shards() {
        let events = generate_spread(6_000, 3, Spread::Regional);
        let one = measure(&events, 1, EVENTS_PER_SECOND).await.expect("runs");
        let eight = measure(&events, 8, EVENTS_PER_SECOND).await.expect("runs");
        assert!(one.market_writes_per_1000_events > 50.0, "{one:?}");
        assert_eq!(
            one.market_writes_per_1000_events,
            eight.market_writes_per_1000_events
        );
        assert_eq!(
            one.calls_per_1000_events.get("DynamoDB.PutItem"),
            Some(&1.0),
            "one journal a batch: {one:?}"
        );
        // The journal's and the items' encoding is timed (its figure is machine time).
        assert!(one.journal_and_store_us_per_event > 0.0, "{one:?}");
        // Exact values cost at least what the same items in 2 % buckets cost, and within
        // the 10 % the docs allow on a stream of a few days (docs/capacity.md).
        assert!(
            one.write_units_per_event >= one.write_units_per_event_bucketed
                && one.write_units_per_event <= 1.1 * one.write_units_per_event_bucketed,
            "{one:?}"
        );
    }
}
