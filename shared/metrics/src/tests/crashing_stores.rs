//! Memory stores whose writes fail where a test says, and the deliveries over them (with
//! Lambda's re-delivery of a failed batch).

use realty_model::state::{ListingStore, StoredStates};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{SHARD, block_on};
use crate::memory::MemoryStores;
use crate::ports::*;
use crate::process::{self, InputRecord, MetricsPorts, process_batch};
use realty_model::ports::PortError;
use realty_model::state::ListingState;

/// Memory stores whose writes fail once, at the `fail_at`-th write: a crash between writes;
/// or every write from the `discard_from`-th on: a batch that fails until Lambda discards it.
#[derive(Default)]
pub(super) struct CrashingStores {
    pub(super) inner: MemoryStores,
    pub(super) writes: AtomicUsize,
    fail_at: Option<usize>,
    pub(super) discard_from: Option<usize>,
    /// Reads of the shard's journal.
    pub(super) journal_reads: AtomicUsize,
}

impl CrashingStores {
    fn write(&self, op: &'static str) -> Result<(), PortError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        if Some(n) == self.fail_at || self.discard_from.is_some_and(|from| n >= from) {
            return Err(PortError::new(op, "injected crash"));
        }
        Ok(())
    }
}

impl ListingStore for CrashingStores {
    fn check_state(&self, state: &ListingState) -> Result<(), String> {
        self.inner.check_state(state)
    }
    async fn get_states(&self, ids: &[&str]) -> Result<StoredStates, PortError> {
        self.inner.get_states(ids).await
    }
    async fn put_states(&self, states: Vec<ListingState>) -> Result<(), PortError> {
        self.write("put_states")?;
        self.inner.put_states(states).await
    }
}

impl MarketStore for CrashingStores {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        self.inner.get_aggregates(keys).await
    }
    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        // Each put a write of its own: a crash can land part of the call, as a transaction
        // of an earlier group can land before a later one fails.
        let mut landed = Vec::with_capacity(puts.len());
        for put in puts {
            self.write("put_aggregates")?;
            landed.extend(self.inner.put_aggregates(std::slice::from_ref(put)).await?);
        }
        Ok(landed)
    }
    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), PortError> {
        self.write("put_snapshots")?;
        self.inner.put_snapshots(snapshots).await
    }
    async fn write_interest(
        &self,
        writes: Vec<crate::interest::InterestWrite>,
    ) -> Result<(), PortError> {
        self.write("write_interest")?;
        self.inner.write_interest(writes).await
    }
    async fn get_journal(&self, shard: &str) -> Result<Option<EncodedJournal>, PortError> {
        self.journal_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_journal(shard).await
    }
    async fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> Result<Option<EncodedJournal>, PortError> {
        self.write("put_journal")?;
        self.inner.put_journal(journal).await
    }
    async fn delete_journal(&self, shard: &str) -> Result<(), PortError> {
        self.write("delete_journal")?;
        self.inner.delete_journal(shard).await
    }
}

impl EventArchive for CrashingStores {
    async fn put_lines(&self, lines: &[Vec<u8>]) -> Result<(), PortError> {
        self.write("put_lines")?;
        self.inner.put_lines(lines).await
    }
}

impl PoisonSink for CrashingStores {
    async fn send(&self, records: &[PoisonRecord]) -> Result<(), PortError> {
        self.inner.send(records).await
    }
}

/// Delivers `records` in `cuts`-sized batches, each delivered `copies` times, halves first
/// when asked, with an optional crash; failed batches are re-delivered until they succeed.
pub(super) fn deliver(
    stores: &mut CrashingStores,
    records: &[InputRecord],
    plan: &[(usize, u8, bool, Option<usize>)],
) {
    let mut start = 0;
    let mut plan_iter = plan.iter().cycle();
    while start < records.len() {
        let &(size, copies, halved_first, crash) = plan_iter.next().expect("cycle");
        let end = (start + size.max(1)).min(records.len());
        let batch = &records[start..end];
        let mut deliveries: Vec<&[InputRecord]> = Vec::new();
        if halved_first && batch.len() > 1 {
            deliveries.push(&batch[..batch.len() / 2]);
        }
        for _ in 0..copies.max(1) {
            deliveries.push(batch);
        }
        stores.fail_at = crash.map(|k| stores.writes.load(Ordering::SeqCst) + k);
        for delivery in deliveries {
            let mut pending = delivery;
            loop {
                let ports = MetricsPorts {
                    listings: &*stores,
                    markets: &*stores,
                    archive: &*stores,
                    poison: &*stores,
                    rules: Default::default(),
                };
                let outcome = block_on(process_batch(&ports, SHARD, pending));
                match outcome.failed_from {
                    None => break,
                    // Lambda re-delivers from the first failed record.
                    Some(from) => {
                        let i = pending
                            .iter()
                            .position(|r| r.sequence_number == from)
                            .expect("failed record is in the batch");
                        pending = &pending[i..];
                    }
                }
            }
        }
        stores.fail_at = None;
        start = end;
    }
}

/// Runs one delivery of `records` on `stores`, without re-delivery.
pub(super) fn deliver_once(
    stores: &CrashingStores,
    records: &[InputRecord],
) -> process::BatchOutcome {
    let ports = MetricsPorts {
        listings: stores,
        markets: stores,
        archive: stores,
        poison: stores,
        rules: Default::default(),
    };
    block_on(process_batch(&ports, SHARD, records))
}
