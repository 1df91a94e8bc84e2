//! The one error of every port (the traits in `poller::ports`, `metrics::ports`,
//! `alerts::ports`): which operation failed and what the store said. A batch that meets one
//! is reported failed and re-delivered.

use std::future::Future;

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

/// Groups entries (by size, in order) into calls of at most `max_count` entries and
/// `max_bytes` of them: every batch API's two limits. An entry alone over `max_bytes` gets a
/// call of its own (the callers refuse such entries before).
pub fn chunk_by_limits(
    sizes: &[usize],
    max_count: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (i - start == max_count || bytes + size > max_bytes) {
            chunks.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        chunks.push(start..sizes.len());
    }
    chunks
}

/// The largest item a store holds (DynamoDB's 400 KB, as DynamoDB counts an item's size):
/// what cannot fit is refused before any write, not retried forever.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Where the stack's secrets are kept (Secrets Manager in AWS): the listing-API keys the
/// poller reads, the API token the API checks.
pub trait SecretSource {
    /// The text of secret `id`.
    fn secret_string(&self, id: &str) -> impl Future<Output = Result<String, PortError>>;
}

/// The attribute a claim holds its lease in, and a published alert never has: readers of
/// the feed leave out items that have it.
pub const CLAIM_LEASE_ATTRIBUTE: &str = "lease_until";

#[cfg(test)]
mod chunk_tests {
    use super::chunk_by_limits;

    #[test]
    fn calls_stop_at_the_count_and_at_the_bytes() {
        assert_eq!(chunk_by_limits(&[1; 5], 2, 100), [0..2, 2..4, 4..5]);
        // At the byte limit a call is full; one byte past it starts the next.
        assert_eq!(chunk_by_limits(&[4, 6, 1], 10, 10), [0..2, 2..3]);
        assert_eq!(chunk_by_limits(&[4, 7], 10, 10), [0..1, 1..2]);
        // An entry over the limit alone gets a call of its own.
        assert_eq!(chunk_by_limits(&[11, 1], 10, 10), [0..1, 1..2]);
        assert!(chunk_by_limits(&[], 10, 10).is_empty());
    }
}
