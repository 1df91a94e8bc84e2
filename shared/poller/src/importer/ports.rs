//! What the S3 import needs from AWS: the dropped object and the result beside it.

use std::future::Future;

use realty_model::ports::PortError;

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
    /// S3 will never serve this object to the importer, however often it asks (archived to
    /// a storage class read only after a restore, encrypted with a customer-provided key or
    /// with a KMS key the importer may not use): why, and what the uploader can do.
    Unservable {
        reason: String,
    },
}

/// A result object as read, with the version it was read at (its ETag), for the conditional
/// write that replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    pub body: Vec<u8>,
    pub etag: Option<String>,
}

/// What a result write expects to find under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCondition<'a> {
    /// No object (`If-None-Match: *`).
    Absent,
    /// The object at this ETag (`If-Match`).
    Matches(&'a str),
    /// Whatever is there (an object read without an ETag).
    Any,
}

/// What a conditional result write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultWrite {
    /// Written; the new object's ETag (to condition the next write on).
    Written { etag: Option<String> },
    /// Another writer changed the object since it was read: nothing written.
    Conflict,
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
    fn read_result(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredResult>, PortError>>;
    /// Writes the result object `key` (JSON) if it is still as `condition` says.
    fn write_result(
        &self,
        key: &str,
        body: &[u8],
        condition: ResultCondition<'_>,
    ) -> impl Future<Output = Result<ResultWrite, PortError>>;
}
