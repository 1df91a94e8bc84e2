//! Market writes lost to another writer are read again together and retried, up to a limit.

use std::collections::BTreeMap;

use super::{SHARD, Step, block_on, events_of, records_of};
use crate::memory::MemoryStores;
use crate::ports::*;
use crate::process::{self, InputRecord, MetricsPorts, process_batch};
use realty_model::ports::PortError;

/// Memory stores where another writer gets to each market item first, `lose` times: the
/// conditional put finds a revision it did not read.
struct ContendedStores {
    inner: MemoryStores,
    lose: usize,
    lost: std::sync::Mutex<BTreeMap<String, usize>>,
    /// How many keys each `get_aggregates` asked for.
    reads: std::sync::Mutex<Vec<usize>>,
}

impl MarketStore for ContendedStores {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        self.reads.lock().expect("lock").push(keys.len());
        self.inner.get_aggregates(keys).await
    }
    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        for put in puts {
            let mut lost = self.lost.lock().expect("lock");
            let n = lost.entry(put.key.to_owned()).or_default();
            if *n < self.lose {
                *n += 1;
                let mut aggregates = self.inner.aggregates.lock().expect("lock");
                let other = aggregates.entry(put.key.to_owned()).or_default();
                other.revision = format!("another writer {n}");
            }
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

fn contended(lose: usize, records: &[InputRecord]) -> (ContendedStores, process::BatchOutcome) {
    let stores = ContendedStores {
        inner: MemoryStores::default(),
        lose,
        lost: Default::default(),
        reads: Default::default(),
    };
    let ports = MetricsPorts {
        listings: &stores.inner,
        markets: &stores,
        archive: &stores.inner,
        poison: &stores.inner,
        rules: Default::default(),
    };
    let outcome = block_on(process_batch(&ports, SHARD, records));
    (stores, outcome)
}

#[test]
fn lost_market_writes_are_reread_together_and_retried() {
    let steps: Vec<Step> = (0..12)
        .map(|i| Step::Change {
            listing: i % 6,
            price_pct: -5,
            status: 0,
        })
        .collect();
    let records = records_of(&events_of(&steps));
    let clean = MemoryStores::default();
    let ports = clean.ports();
    let outcome = block_on(process_batch(&ports, SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let markets = outcome.stats.markets_updated;
    assert!(markets > 4, "{markets} markets");

    let (stores, outcome) = contended(3, &records);
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(outcome.stats.markets_updated, markets);
    assert_eq!(outcome.stats.conflict_retries, 3 * markets);
    // One read of every market, then one read per round of the ones that lost.
    assert_eq!(*stores.reads.lock().expect("lock"), [markets; 4]);
    assert_eq!(
        &*stores.inner.aggregates.lock().expect("lock"),
        &*clean.aggregates.lock().expect("lock")
    );
    assert_eq!(
        &*stores.inner.snapshots.lock().expect("lock"),
        &*clean.snapshots.lock().expect("lock")
    );
    assert_eq!(
        &*stores.inner.listings.lock().expect("lock"),
        &*clean.listings.lock().expect("lock")
    );

    // Contended past the limit: the batch fails, before any listing state is written.
    let limit = process::MAX_CONFLICT_RETRIES;
    let (_, outcome) = contended(limit - 1, &records);
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(outcome.stats.conflict_retries, (limit - 1) * markets);
    let (stores, outcome) = contended(limit, &records);
    let error = outcome.error.expect("still contended");
    assert_eq!(
        outcome.failed_from.as_ref(),
        Some(&records[0].sequence_number)
    );
    assert!(
        error
            .message
            .contains(&format!("still contended after {limit} attempts")),
        "{error}"
    );
    assert!(stores.inner.listings.lock().expect("lock").is_empty());
}
