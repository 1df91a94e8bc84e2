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
    /// Deleted since it was dropped: the key has no object now.
    Missing,
    /// The key's object now is a later version than the one asked for (uploaded again, as
    /// a corrected file is): that version's own notification imports it.
    Superseded,
}

/// The lake bucket's `imports/` (read) and `import-results/` (written).
pub trait ImportObjects {
    /// The object `key` now, refused unread past `max_bytes`; [`ImportObject::Superseded`]
    /// when `version_id` is given and is no longer the key's current version (so an older
    /// version's notification, delivered late or retried, never imports over a newer one).
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
