//! In-memory ports: the metrics workflow without AWS, for tests and benchmarks. They
//! behave like the DynamoDB adapters (conditional writes on revision included).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::interest::{InterestRules, InterestWrite, interest_key};
use super::ports::{
    AggregatePut, EncodedJournal, EventArchive, MAX_JOURNAL_BODY_BYTES, MarketStore, PoisonRecord,
    PoisonSink, Snapshot, StoredAggregate,
};
use super::process::MetricsPorts;
use super::reconcile::{ListingScan, MarketScan};
use crate::items::InterestItem;
use realty_model::ports::MAX_ITEM_BYTES;
use realty_model::ports::PortError;
use realty_model::state::ListingItem;
use realty_model::state::ListingState;
use realty_model::state::{ListingStore, StoredStates};

/// Every store in memory.
#[derive(Debug, Default)]
pub struct MemoryStores {
    /// Shared with the batches that read them, as [`StoredStates`]. By id, looked up only
    /// (a hundred thousand listings make a deep tree of string comparisons).
    pub listings: Mutex<foldhash::HashMap<String, Arc<ListingState>>>,
    pub aggregates: Mutex<BTreeMap<String, StoredAggregate>>,
    /// Snapshots by (scope key, sort key).
    pub snapshots: Mutex<BTreeMap<(String, String), Snapshot>>,
    /// Journals by shard.
    pub journals: Mutex<BTreeMap<String, EncodedJournal>>,
    pub archived: Mutex<Vec<Vec<u8>>>,
    /// The market table's other items (listings of interest, the alert feed) by (partition
    /// key, sort key).
    pub keyed: Mutex<BTreeMap<(String, String), KeyedItem>>,
    pub poison: Mutex<Vec<PoisonRecord>>,
}

/// One of the market table's other items: typed as the workflow writes it (made into JSON
/// only when read, as a store would), or JSON as a test puts it.
#[derive(Debug, Clone)]
pub enum KeyedItem {
    Interest(Box<InterestItem>),
    Json(serde_json::Value),
}

impl KeyedItem {
    fn to_json(&self) -> Result<serde_json::Value, PortError> {
        match self {
            Self::Interest(item) => serde_json::to_value(item)
                .map_err(|e| PortError::new("encode interest item", e.to_string())),
            Self::Json(value) => Ok(value.clone()),
        }
    }
}

impl MemoryStores {
    /// Every port of the metrics workflow, all served by these stores.
    pub fn ports(&self) -> MetricsPorts<'_, Self, Self, Self, Self> {
        MetricsPorts {
            listings: self,
            markets: self,
            archive: self,
            poison: self,
            rules: InterestRules::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere in a test must not hide this test's own result.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ListingStore for MemoryStores {
    /// Sized as JSON, which for these items is never smaller than DynamoDB's count (names and
    /// strings in full, numbers as digits rather than half-bytes, lists and maps with their
    /// punctuation): what fits here fits there.
    fn check_state(&self, state: &ListingState) -> Result<(), String> {
        let size = serde_json::to_vec(&ListingItem::from(state))
            .map_err(|e| format!("listing item cannot be encoded: {e}"))?
            .len();
        if size > MAX_ITEM_BYTES {
            return Err(format!(
                "listing item of {size} bytes is over the {MAX_ITEM_BYTES}-byte item limit"
            ));
        }
        Ok(())
    }

    async fn get_states(&self, ids: &[&str]) -> Result<StoredStates, PortError> {
        let map = lock(&self.listings);
        let mut states = StoredStates::with_capacity_and_hasher(ids.len(), Default::default());
        states.extend(
            ids.iter()
                .filter_map(|&id| map.get(id).map(|s| (id.to_owned(), Arc::clone(s)))),
        );
        Ok(states)
    }

    async fn put_states(&self, states: Vec<ListingState>) -> Result<(), PortError> {
        let mut map = lock(&self.listings);
        for s in states {
            match map.get_mut(s.listing.id.as_str()) {
                Some(slot) => *slot = Arc::new(s),
                None => {
                    map.insert(s.listing.id.as_str().to_owned(), Arc::new(s));
                }
            }
        }
        Ok(())
    }
}

impl MarketStore for MemoryStores {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        let map = lock(&self.aggregates);
        Ok(keys
            .iter()
            .filter_map(|k| map.get(k).map(|a| (k.clone(), a.clone())))
            .collect())
    }

    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        let mut map = lock(&self.aggregates);
        Ok(puts
            .iter()
            .map(|put| {
                let stored = map.get(put.key).map_or("", |a| a.revision.as_str());
                let landed = stored == put.expected_revision;
                if landed {
                    map.insert(put.key.to_owned(), put.item.clone());
                }
                landed
            })
            .collect())
    }

    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), PortError> {
        let mut map = lock(&self.snapshots);
        for s in snapshots {
            map.insert((s.scope_key.clone(), s.period.sort_key()), s);
        }
        Ok(())
    }

    async fn write_interest(&self, writes: Vec<InterestWrite>) -> Result<(), PortError> {
        let mut keyed = lock(&self.keyed);
        for w in writes {
            match w {
                InterestWrite::Put(entry) => {
                    let item = InterestItem::from(*entry);
                    keyed.insert(
                        (item.pk.clone(), item.sk.clone()),
                        KeyedItem::Interest(Box::new(item)),
                    );
                }
                InterestWrite::Delete { market, sort_key } => {
                    keyed.remove(&(interest_key(&market), sort_key));
                }
            }
        }
        Ok(())
    }

    async fn get_journal(&self, shard: &str) -> Result<Option<EncodedJournal>, PortError> {
        Ok(lock(&self.journals).get(shard).cloned())
    }

    async fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> Result<Option<EncodedJournal>, PortError> {
        if journal.body.len() > MAX_JOURNAL_BODY_BYTES {
            return Err(PortError::new(
                "put_journal",
                "journal over the item size limit",
            ));
        }
        let mut journals = lock(&self.journals);
        if let Some(left) = journals.get(&journal.shard) {
            return Ok(Some(left.clone()));
        }
        journals.insert(journal.shard.clone(), journal.clone());
        Ok(None)
    }

    async fn delete_journal(&self, shard: &str) -> Result<(), PortError> {
        lock(&self.journals).remove(shard);
        Ok(())
    }
}

impl ListingScan for MemoryStores {
    async fn all_states(&self) -> Result<Vec<ListingState>, PortError> {
        // In id order, as a scan of the table would give them the same way every time.
        let mut states: Vec<ListingState> = lock(&self.listings)
            .values()
            .map(|s| ListingState::clone(s))
            .collect();
        states.sort_by(|a, b| a.listing.id.as_str().cmp(b.listing.id.as_str()));
        Ok(states)
    }
}

impl MarketScan for MemoryStores {
    async fn market_keys(&self) -> Result<Vec<String>, PortError> {
        Ok(lock(&self.aggregates).keys().cloned().collect())
    }

    async fn journal_shards(&self) -> Result<Vec<String>, PortError> {
        Ok(lock(&self.journals).keys().cloned().collect())
    }
}

impl EventArchive for MemoryStores {
    async fn put_lines(&self, lines: &[Vec<u8>]) -> Result<(), PortError> {
        lock(&self.archived).extend(lines.iter().cloned());
        Ok(())
    }
}

impl PoisonSink for MemoryStores {
    async fn send(&self, records: &[PoisonRecord]) -> Result<(), PortError> {
        lock(&self.poison).extend(records.iter().cloned());
        Ok(())
    }
}

impl crate::reader::MarketReader for MemoryStores {
    async fn live(
        &self,
        scope_key: &str,
    ) -> Result<Option<crate::items::MarketLiveItem>, PortError> {
        let aggregates = self
            .aggregates
            .lock()
            .map_err(|_| PortError::new("live", "the in-memory lock is poisoned"))?;
        Ok(aggregates
            .get(scope_key)
            .map(|stored| crate::items::MarketLiveItem::new(scope_key, stored)))
    }

    async fn stored_snapshots(
        &self,
        scope_key: &str,
        from_sort_key: &str,
        to_sort_key: &str,
    ) -> Result<Vec<crate::items::MarketSnapshotItem>, PortError> {
        Ok(lock(&self.snapshots)
            .range(
                (scope_key.to_owned(), from_sort_key.to_owned())
                    ..=(scope_key.to_owned(), to_sort_key.to_owned()),
            )
            .map(|(_, s)| crate::items::MarketSnapshotItem::from(s))
            .collect())
    }

    async fn latest<T: serde::de::DeserializeOwned>(
        &self,
        partition_key: &str,
        prefix: &str,
        below: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<T>, Option<String>), PortError> {
        let keyed = lock(&self.keyed);
        let mut out = Vec::new();
        let mut last = None;
        let matching = keyed
            .range((partition_key.to_owned(), prefix.to_owned())..)
            .take_while(|((pk, sk), _)| pk == partition_key && sk.starts_with(prefix))
            .filter(|((_, sk), _)| below.is_none_or(|b| sk.as_str() < b))
            .collect::<Vec<_>>();
        for ((_, sk), value) in matching.into_iter().rev() {
            if out.len() == limit {
                return Ok((out, last));
            }
            out.push(
                serde_json::from_value(value.to_json()?)
                    .map_err(|e| PortError::new("decode item", e.to_string()))?,
            );
            last = Some(sk.clone());
        }
        Ok((out, None))
    }
}
