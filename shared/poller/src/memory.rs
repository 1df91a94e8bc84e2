//! In-memory ports for tests and benchmarks, behaving like the AWS ones: poll states ([`MemoryPollStates`]) and a stream ([`MemoryStream`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use realty_model::ports::PortError;

fn poisoned<T>(_: T) -> PortError {
    PortError::new("memory store", "the in-memory lock is poisoned")
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
    pub events: Mutex<Vec<realty_model::listing::ListingEvent>>,
    pub refuse: Mutex<std::collections::BTreeSet<String>>,
    /// Publish calls made.
    pub calls: std::sync::atomic::AtomicUsize,
}

impl MemoryStream {
    /// The events published since the last call.
    pub fn taken(&self) -> Vec<realty_model::listing::ListingEvent> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

impl super::ports::EventPublisher for MemoryStream {
    async fn publish(
        &self,
        events: &[realty_model::listing::ListingEvent],
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
