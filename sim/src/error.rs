//! Errors of the simulator's public API.

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown market {key:?}; known markets: {known}")]
    UnknownMarket { key: String, known: String },
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
    #[error("simulated time cannot go back from {now} to {target}")]
    TimeBackwards {
        now: DateTime<Utc>,
        target: DateTime<Utc>,
    },
    #[error("an advance of {requested} is longer than the {max} one call may simulate")]
    AdvanceTooLong {
        requested: TimeDelta,
        max: TimeDelta,
    },
    #[error("simulator server: {0}")]
    Io(#[from] std::io::Error),
    #[error("simulator server task failed: {0}")]
    ServerTask(String),
}
