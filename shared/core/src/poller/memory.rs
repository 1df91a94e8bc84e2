//! In-memory ports for tests and benchmarks, behaving like the AWS ones: a [`ConfigStore`],
//! poll states ([`MemoryPollStates`]) and a stream ([`MemoryStream`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::markets::{ConfigSnapshot, PollRecord, WatchedMarket};
use super::ports::ConfigStore;
use crate::ports::PortError;

#[derive(Debug, Default)]
pub struct MemoryConfigStore {
    markets: Mutex<BTreeMap<String, WatchedMarket>>,
    budgets: Mutex<BTreeMap<String, u64>>,
    /// By (source, month).
    usage: Mutex<BTreeMap<(String, String), u64>>,
    polls: Mutex<BTreeMap<(String, String), PollRecord>>,
}

fn poisoned<T>(_: T) -> PortError {
    PortError::new("config store", "the in-memory lock is poisoned")
}

impl ConfigStore for MemoryConfigStore {
    async fn load(&self, month: &str) -> Result<ConfigSnapshot, PortError> {
        Ok(ConfigSnapshot {
            markets: self
                .markets
                .lock()
                .map_err(poisoned)?
                .values()
                .cloned()
                .collect(),
            budgets: self.budgets.lock().map_err(poisoned)?.clone(),
            used: self
                .usage
                .lock()
                .map_err(poisoned)?
                .iter()
                .filter(|((_, m), _)| m == month)
                .map(|((s, _), n)| (s.clone(), *n))
                .collect(),
            polls: self.polls.lock().map_err(poisoned)?.clone(),
        })
    }

    async fn put_market(&self, market: &WatchedMarket) -> Result<(), PortError> {
        self.markets
            .lock()
            .map_err(poisoned)?
            .insert(market.market.clone(), market.clone());
        Ok(())
    }

    async fn remove_market(&self, market: &str) -> Result<bool, PortError> {
        Ok(self
            .markets
            .lock()
            .map_err(poisoned)?
            .remove(market)
            .is_some())
    }

    async fn set_budget(&self, source: &str, monthly: Option<u64>) -> Result<(), PortError> {
        let mut budgets = self.budgets.lock().map_err(poisoned)?;
        match monthly {
            Some(n) => budgets.insert(source.to_owned(), n),
            None => budgets.remove(source),
        };
        Ok(())
    }

    async fn add_usage(&self, source: &str, month: &str, requests: u64) -> Result<u64, PortError> {
        let mut usage = self.usage.lock().map_err(poisoned)?;
        let n = usage
            .entry((source.to_owned(), month.to_owned()))
            .or_default();
        *n += requests;
        Ok(*n)
    }

    async fn record_poll(&self, poll: &PollRecord) -> Result<(), PortError> {
        self.polls
            .lock()
            .map_err(poisoned)?
            .insert((poll.source.clone(), poll.market.clone()), poll.clone());
        Ok(())
    }
}

/// Poll states by key, in memory, versioned as S3's ETags are (a save names the version it
/// read; a stale one is refused).
#[derive(Debug, Default)]
pub struct MemoryPollStates {
    states: Mutex<BTreeMap<String, (super::detect::PollState, u64)>>,
    /// The anti-entropy pass's cursor.
    cursor: Mutex<super::anti_entropy::AntiEntropyCursor>,
}

impl MemoryPollStates {
    /// The state kept under `key`.
    pub fn state(&self, key: &str) -> Option<super::detect::PollState> {
        self.states
            .lock()
            .ok()
            .and_then(|s| s.get(key).map(|(state, _)| state.clone()))
    }
}

impl super::ports::PollStateStore for MemoryPollStates {
    async fn load(&self, key: &str) -> Result<super::ports::StoredPollState, PortError> {
        let states = self.states.lock().map_err(poisoned)?;
        Ok(states
            .get(key)
            .map(|(state, version)| super::ports::StoredPollState {
                state: state.clone(),
                version: Some(version.to_string()),
            })
            .unwrap_or_default())
    }

    async fn save(
        &self,
        key: &str,
        state: &super::detect::PollState,
        expected: Option<&str>,
    ) -> Result<bool, PortError> {
        let mut states = self.states.lock().map_err(poisoned)?;
        let current = states.get(key).map(|(_, v)| v.to_string());
        if current.as_deref() != expected {
            return Ok(false);
        }
        let version = states.get(key).map_or(1, |(_, v)| v + 1);
        states.insert(key.to_owned(), (state.clone(), version));
        Ok(true)
    }
}

impl super::anti_entropy::AntiEntropyStore for MemoryPollStates {
    async fn state_keys(&self) -> Result<Vec<String>, PortError> {
        Ok(self
            .states
            .lock()
            .map_err(poisoned)?
            .keys()
            .cloned()
            .collect())
    }

    async fn load_cursor(&self) -> Result<super::anti_entropy::AntiEntropyCursor, PortError> {
        Ok(self.cursor.lock().map_err(poisoned)?.clone())
    }

    async fn save_cursor(
        &self,
        cursor: &super::anti_entropy::AntiEntropyCursor,
    ) -> Result<(), PortError> {
        *self.cursor.lock().map_err(poisoned)? = cursor.clone();
        Ok(())
    }
}

/// The listing-events stream, in memory: keeps what it is given, except the events of the
/// listings named in `refuse` (each reported failed, as a throttled PutRecords entry is).
#[derive(Debug, Default)]
pub struct MemoryStream {
    pub events: Mutex<Vec<crate::listing::ListingEvent>>,
    pub refuse: Mutex<std::collections::BTreeSet<String>>,
    /// Publish calls made.
    pub calls: std::sync::atomic::AtomicUsize,
}

impl MemoryStream {
    /// The events published since the last call.
    pub fn taken(&self) -> Vec<crate::listing::ListingEvent> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

impl super::ports::EventPublisher for MemoryStream {
    async fn publish(
        &self,
        events: &[crate::listing::ListingEvent],
    ) -> Result<Vec<super::ports::PublishFailure>, PortError> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let refuse = self.refuse.lock().map_err(poisoned)?.clone();
        let mut kept = self.events.lock().map_err(poisoned)?;
        let mut failures = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if refuse.contains(event.listing.id.as_str()) {
                failures.push(super::ports::PublishFailure {
                    index,
                    error: "ProvisionedThroughputExceededException".into(),
                });
            } else {
                kept.push(event.clone());
            }
        }
        Ok(failures)
    }
}
