//! The configuration as the API reads it: the whole of it is one Scan of the config table
//! (every watched market, budget, month's usage and last poll), which `/markets`, `/health`
//! and an all-markets `/alerts` need at every request, as often as clients ask (the dashboard
//! asks for two of them a minute per open page). A copy a few seconds old shows what a
//! fresh read would to within a poll, so each API instance reads it at most once per
//! [`CONFIG_FRESH_FOR`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use realty_model::markets::ConfigStore;
use realty_model::markets::{ConfigSnapshot, PollRecord, WatchedMarket};
use realty_model::ports::PortError;

/// How long a read configuration answers the API's requests.
pub const CONFIG_FRESH_FOR: Duration = Duration::from_secs(30);

/// `inner`, whose [`ConfigStore::load`] answers from the last read while it is younger than
/// `fresh_for` (and of the same month); a write through it drops the copy.
#[derive(Debug)]
pub struct CachedConfig<S> {
    pub inner: S,
    fresh_for: Duration,
    /// The month read, when, and what.
    held: Mutex<Option<(String, Instant, ConfigSnapshot)>>,
}

impl<S> CachedConfig<S> {
    pub fn new(inner: S, fresh_for: Duration) -> Self {
        Self {
            inner,
            fresh_for,
            held: Mutex::new(None),
        }
    }

    fn forget(&self) {
        if let Ok(mut held) = self.held.lock() {
            *held = None;
        }
    }
}

impl<S: ConfigStore> ConfigStore for CachedConfig<S> {
    async fn load(&self, month: &str) -> Result<ConfigSnapshot, PortError> {
        if let Ok(held) = self.held.lock()
            && let Some((held_month, read_at, snapshot)) = held.as_ref()
            && held_month == month
            && read_at.elapsed() < self.fresh_for
        {
            return Ok(snapshot.clone());
        }
        let snapshot = self.inner.load(month).await?;
        if let Ok(mut held) = self.held.lock() {
            *held = Some((month.to_owned(), Instant::now(), snapshot.clone()));
        }
        Ok(snapshot)
    }

    async fn put_market(&self, market: &WatchedMarket) -> Result<(), PortError> {
        self.forget();
        self.inner.put_market(market).await
    }

    async fn remove_market(&self, market: &str) -> Result<bool, PortError> {
        self.forget();
        self.inner.remove_market(market).await
    }

    async fn set_budget(
        &self,
        source: &str,
        monthly_requests: Option<u64>,
    ) -> Result<(), PortError> {
        self.forget();
        self.inner.set_budget(source, monthly_requests).await
    }

    async fn add_usage(&self, source: &str, month: &str, requests: u64) -> Result<u64, PortError> {
        self.forget();
        self.inner.add_usage(source, month, requests).await
    }

    async fn record_poll(&self, poll: &PollRecord) -> Result<(), PortError> {
        self.forget();
        self.inner.record_poll(poll).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use realty_model::markets::MemoryConfigStore;

    fn market(key: &str) -> WatchedMarket {
        realty_model::markets::WatchedMarket::new(key, &["zillow"], 15)
    }

    /// Within its freshness a load answers from the copy (a market added behind it is not
    /// seen yet); another month, a write through it, or an old copy read again.
    #[tokio::test]
    async fn a_load_answers_from_a_fresh_copy_of_the_same_month() {
        let cached = CachedConfig::new(MemoryConfigStore::default(), Duration::from_secs(3600));
        cached
            .put_market(&market("nashville-tn"))
            .await
            .expect("put");
        assert_eq!(cached.load("2026-11").await.expect("load").markets.len(), 1);
        cached
            .inner
            .put_market(&market("austin-tx"))
            .await
            .expect("put");
        assert_eq!(cached.load("2026-11").await.expect("load").markets.len(), 1);
        assert_eq!(cached.load("2026-12").await.expect("load").markets.len(), 2);
        cached.remove_market("nashville-tn").await.expect("remove");
        assert_eq!(cached.load("2026-12").await.expect("load").markets.len(), 1);

        let uncached = CachedConfig::new(MemoryConfigStore::default(), Duration::ZERO);
        assert!(
            uncached
                .load("2026-11")
                .await
                .expect("load")
                .markets
                .is_empty()
        );
        uncached
            .inner
            .put_market(&market("austin-tx"))
            .await
            .expect("put");
        assert_eq!(
            uncached.load("2026-11").await.expect("load").markets.len(),
            1
        );
    }
}
