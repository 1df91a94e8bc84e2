//! The listing and market tables over the DynamoDB SDK.
//!
//! DynamoDB's call limits and the SDK error shared here; the batched reads and writes
//! (`batch`), the conditional puts in transactions (`transact`), the table scan (`scan`),
//! and the tables: [`DynamoListingStore`] (`listing_store`), [`DynamoMarketStore`] with the
//! metrics ports (`market_store`) and the API's reads (`market_reader`).

mod batch;
mod listing_store;
mod market_reader;
mod market_store;
mod scan;
mod transact;

pub(crate) use batch::{batch_get, batch_put};
pub use listing_store::DynamoListingStore;
pub use market_store::DynamoMarketStore;
pub(crate) use transact::{PutOutcome, transact_puts};

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;

use realty_core::ports::PortError;

/// BatchGetItem reads at most 100 keys a call.
pub const GET_BATCH: usize = 100;
/// BatchWriteItem writes at most 25 items a call...
pub const WRITE_BATCH: usize = 25;
/// ...and 16 MB of them, as DynamoDB sizes items ([`crate::items::item_size`]). With items
/// under the 400 KB item limit the count binds first; the bytes are bounded all the same.
pub(crate) const WRITE_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// TransactWriteItems takes at most 100 actions a call...
pub const TRANSACTION_ITEMS: usize = 100;
/// ...and 4 MB of items.
const TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// Batch calls of one read or write in flight at once: a 1,000-record batch's 40 listing
/// writes take 5 round trips instead of 40, with few connections per function instance.
const BATCH_CALLS_IN_FLIGHT: usize = 8;

type Item = HashMap<String, AttributeValue>;

/// An SDK error as `Code: message`, for a [`PortError`].
pub(crate) fn sdk_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    operation: &'static str,
    e: &E,
) -> PortError {
    PortError::new(
        operation,
        match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_owned(),
            _ => format!("{e:?}"),
        },
    )
}
