//! Where the watched markets, the budgets and the poll records are kept: the port, and an
//! in-memory store for tests and local runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use super::{ConfigSnapshot, PollRecord, WatchedMarket};
use crate::ports::PortError;

/// The stack's poller configuration (a DynamoDB table in AWS): the watched markets, the
/// sources' budgets, the requests used each month and the last poll of each market.
pub trait ConfigStore {
    /// Everything, with the requests used in `month` (`2026-11`).
    fn load(&self, month: &str) -> impl Future<Output = Result<ConfigSnapshot, PortError>>;
    /// Adds or replaces a watched market.
    fn put_market(&self, market: &WatchedMarket) -> impl Future<Output = Result<(), PortError>>;
    /// Stops watching a market; `Ok(false)` when it was not watched.
    fn remove_market(&self, market: &str) -> impl Future<Output = Result<bool, PortError>>;
    /// Sets a source's monthly budget (`None` removes it).
    fn set_budget(
        &self,
        source: &str,
        monthly_requests: Option<u64>,
    ) -> impl Future<Output = Result<(), PortError>>;
    /// Adds `requests` to a source's count for `month`, atomically; returns the new count.
    fn add_usage(
        &self,
        source: &str,
        month: &str,
        requests: u64,
    ) -> impl Future<Output = Result<u64, PortError>>;
    fn record_poll(&self, poll: &PollRecord) -> impl Future<Output = Result<(), PortError>>;
}

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
