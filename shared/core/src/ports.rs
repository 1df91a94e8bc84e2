//! The one error of every port (the traits in `poller::ports`, `metrics::ports`,
//! `alerts::ports`): which operation failed and what the store said. A batch that meets one
//! is reported failed and re-delivered.

/// A failure to reach a store, stream, queue or topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct PortError {
    pub operation: &'static str,
    pub message: String,
}

impl PortError {
    pub fn new(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
        }
    }
}
