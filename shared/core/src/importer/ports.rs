//! What the S3 import needs from AWS: the dropped object and the result beside it.

use std::future::Future;

use crate::ports::PortError;

/// An object named by a notification, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportObject {
    Body(Vec<u8>),
    /// Larger than the caller's bound: not read.
    TooLarge {
        bytes: u64,
    },
    /// Deleted (or overwritten, for a version) since it was dropped.
    Missing,
}

/// The lake bucket's `imports/` (read) and `import-results/` (written).
pub trait ImportObjects {
    /// The object `key` (at `version_id` when given), refused unread past `max_bytes`.
    fn read(
        &self,
        key: &str,
        version_id: Option<&str>,
        max_bytes: u64,
    ) -> impl Future<Output = Result<ImportObject, PortError>>;
    /// The result object `key`, when there is one.
    fn read_result(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, PortError>>;
    /// Writes (or replaces) the result object `key` (JSON).
    fn write_result(&self, key: &str, body: &[u8]) -> impl Future<Output = Result<(), PortError>>;
}
