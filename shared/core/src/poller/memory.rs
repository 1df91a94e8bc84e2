//! An in-memory [`ConfigStore`] for tests and benchmarks; it behaves like the DynamoDB one.

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
