//! Reconcile over in-memory stores: the pure recomputation, the repair and its report, and
//! its safety beside metrics writes (journals of batches in flight, lost conditions).

use std::sync::atomic::{AtomicBool, Ordering};

use super::super::memory::MemoryStores;
use super::super::ports::{AggregatePut, EncodedJournal, Journal, Snapshot};
use super::super::process::process_batch;
use super::super::tests::{SHARD, Step, block_on, events_of, records_of};
use super::*;
use realty_model::scope::Scope;

/// A market built by the metrics workflow from 30 events of 9 listings.
fn built() -> MemoryStores {
    let steps: Vec<Step> = (0..30)
        .map(|i| Step::Change {
            listing: i % 9,
            price_pct: if i < 9 { 0 } else { -7 },
            status: (i % 5) as u8,
        })
        .collect();
    let records = records_of(&events_of(&steps));
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    stores
}

fn nashville() -> String {
    Scope::city("nashville-tn").key()
}

/// Counts one listing twice and loses one price, in `key`'s item (revision unchanged, as
/// a write that landed without its bookkeeping would leave it).
fn corrupt(stores: &MemoryStores, key: &str) {
    let mut aggregates = stores.aggregates.lock().expect("lock");
    let a = &mut aggregates.get_mut(key).expect("market").aggregate;
    a.active += 1;
    a.price_sum_minor += 12_345_600;
    a.price.add(123_456);
    let median = a.price.median().expect("prices");
    assert!(a.price.remove(median).is_ok());
}

#[test]
fn recompute_from_the_listing_states_equals_the_incremental_aggregates() {
    let stores = built();
    let states: Vec<ListingState> = stores
        .listings
        .lock()
        .expect("lock")
        .values()
        .map(|s| ListingState::clone(s))
        .collect();
    let truth = recompute(&states);
    let aggregates = stores.aggregates.lock().expect("lock");
    assert!(truth.len() > 3, "{} markets", truth.len());
    for (key, item) in aggregates.iter() {
        let recomputed = truth.get(key).cloned().unwrap_or_default();
        assert_eq!(repair(&item.aggregate, &recomputed), None, "{key}");
    }
}

#[test]
fn reconcile_repairs_a_corrupted_market_reports_it_and_a_second_run_changes_nothing() {
    let stores = built();
    let clean = stores.aggregates.lock().expect("lock").clone();
    let report = block_on(reconcile(&stores, &stores, None, false)).expect("reconcile");
    assert_eq!(report.repairs, []);
    assert_eq!(report.checked, clean.len());

    let key = nashville();
    corrupt(&stores, &key);
    let dry = block_on(reconcile(&stores, &stores, None, true)).expect("dry run");
    assert_eq!(dry.repairs.len(), 1);
    assert_eq!(dry.repairs[0].market, key);
    let figures: Vec<&str> = dry.repairs[0].drifts.iter().map(|d| d.figure).collect();
    assert_eq!(figures, ["active", "price_sum_minor", "prices"]);
    let active = &dry.repairs[0].drifts[0];
    assert_eq!(
        active.stored.parse::<i64>().expect("count"),
        active.recomputed.parse::<i64>().expect("count") + 1
    );
    // The dry run wrote nothing.
    assert_ne!(stores.aggregates.lock().expect("lock")[&key], clean[&key]);

    let repaired =
        block_on(reconcile(&stores, &stores, Some("nashville-tn"), false)).expect("reconcile");
    assert_eq!(repaired.repairs, dry.repairs);
    {
        let aggregates = stores.aggregates.lock().expect("lock");
        for (k, item) in &clean {
            assert_eq!(aggregates[k].aggregate, item.aggregate, "{k}");
        }
        // The repair changed the item's revision: a writer that read the drifted item loses.
        assert_ne!(aggregates[&key].revision, clean[&key].revision);
        assert_eq!(aggregates[&key].applied[RECONCILE_ENTRY], 1);
    }
    let again = block_on(reconcile(&stores, &stores, None, false)).expect("reconcile");
    assert_eq!(again.repairs, []);
    assert_eq!(again.busy, Vec::<String>::new());
}

#[test]
fn a_market_is_restored_when_its_item_was_lost() {
    let stores = built();
    let clean = stores.aggregates.lock().expect("lock").clone();
    let key = nashville();
    stores.aggregates.lock().expect("lock").remove(&key);
    let report = block_on(reconcile(&stores, &stores, None, false)).expect("reconcile");
    assert_eq!(report.repairs.len(), 1, "{report:?}");
    assert_eq!(report.repairs[0].market, key);
    assert_eq!(
        stores.aggregates.lock().expect("lock")[&key]
            .aggregate
            .active,
        clean[&key].aggregate.active
    );
}

#[test]
fn a_market_named_by_a_journal_is_left_alone() {
    let stores = built();
    let key = nashville();
    corrupt(&stores, &key);
    let drifted = stores.aggregates.lock().expect("lock")[&key].clone();
    // A batch in flight (or left part-way) on another shard writes this market: its market
    // writes may be in the item while its listing states are not yet written.
    let journal = Journal {
        shard: "shardId-000000000001".into(),
        events: Vec::new(),
        applied_before: [(key.clone(), 0)].into(),
    };
    let encoded: EncodedJournal = journal.encode().expect("encodes");
    stores
        .journals
        .lock()
        .expect("lock")
        .insert(journal.shard.clone(), encoded);
    let report = block_on(reconcile(&stores, &stores, None, false)).expect("reconcile");
    assert_eq!(report.busy, std::slice::from_ref(&key));
    assert!(report.repairs.iter().all(|r| r.market != key));
    assert_eq!(stores.aggregates.lock().expect("lock")[&key], drifted);
    // Once the batch is finished (journal gone), the market is reconciled.
    stores.journals.lock().expect("lock").clear();
    let report = block_on(reconcile(&stores, &stores, None, false)).expect("reconcile");
    assert_eq!(report.busy, Vec::<String>::new());
    assert_eq!(report.repairs.len(), 1);
}

/// Memory stores where a metrics write lands on the market between reconcile's read of it
/// and its repair, once.
struct RacedStores {
    inner: MemoryStores,
    raced: AtomicBool,
}

impl MarketStore for RacedStores {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        self.inner.get_aggregates(keys).await
    }
    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        if let Some(put) = puts.first()
            && !self.raced.swap(true, Ordering::SeqCst)
        {
            // Another shard's write: one more count from it, so a new revision.
            let mut aggregates = self.inner.aggregates.lock().expect("lock");
            let stored = aggregates.get_mut(put.key).expect("market");
            *stored
                .applied
                .entry("shardId-000000000009".into())
                .or_insert(0) += 1;
            stored.revision = StoredAggregate::revision_of(&stored.watermarks, &stored.applied);
        }
        self.inner.put_aggregates(puts).await
    }
    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), PortError> {
        self.inner.put_snapshots(snapshots).await
    }
    async fn write_interest(
        &self,
        writes: Vec<crate::interest::InterestWrite>,
    ) -> Result<(), PortError> {
        self.inner.write_interest(writes).await
    }
    async fn get_journal(&self, shard: &str) -> Result<Option<EncodedJournal>, PortError> {
        self.inner.get_journal(shard).await
    }
    async fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> Result<Option<EncodedJournal>, PortError> {
        self.inner.put_journal(journal).await
    }
    async fn delete_journal(&self, shard: &str) -> Result<(), PortError> {
        self.inner.delete_journal(shard).await
    }
}

impl MarketScan for RacedStores {
    async fn market_keys(&self) -> Result<Vec<String>, PortError> {
        self.inner.market_keys().await
    }
    async fn journal_shards(&self) -> Result<Vec<String>, PortError> {
        self.inner.journal_shards().await
    }
}

#[test]
fn a_repair_that_loses_to_a_metrics_write_is_read_again_not_forced() {
    let stores = RacedStores {
        inner: built(),
        raced: AtomicBool::new(false),
    };
    let key = nashville();
    corrupt(&stores.inner, &key);
    let report = block_on(reconcile(&stores.inner, &stores, None, false)).expect("reconcile");
    assert_eq!(report.repairs.len(), 1);
    let item = stores.inner.aggregates.lock().expect("lock")[&key].clone();
    // The repair landed on the item the other write left: its count is kept.
    assert_eq!(item.applied["shardId-000000000009"], 1);
    assert_eq!(item.applied[RECONCILE_ENTRY], 1);
    let again = block_on(reconcile(&stores.inner, &stores.inner, None, false)).expect("again");
    assert_eq!(again.repairs, []);
}

#[test]
fn only_names_a_scope_key_or_a_city() {
    assert!(names(None, "city#nashville-tn#all"));
    assert!(names(Some("nashville-tn"), "city#nashville-tn#all"));
    assert!(!names(Some("nashville"), "city#nashville-tn#all"));
    assert!(names(
        Some("city#nashville-tn#all"),
        "city#nashville-tn#all"
    ));
    assert!(!names(
        Some("city#nashville-tn#all"),
        "city#nashville-tn#condo"
    ));
}
