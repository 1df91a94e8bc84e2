//! The listing and market tables over the DynamoDB SDK.
//!
//! DynamoDB's call limits and the SDK error shared here; the batched reads and writes
//! (`batch`), the conditional puts in transactions (`transact`), the table scan (`scan`),
//! and the tables: `DynamoListingStore` (`listing_store`), `DynamoMarketStore` with the
//! metrics ports (`market_store`) and the API's reads (`market_reader`).

mod batch;
mod listing_store;
#[cfg(feature = "metrics")]
mod market_reader;
#[cfg(feature = "metrics")]
mod market_store;
// Scans and transactions serve the metrics' stores and the alerts' claims only.
#[cfg(feature = "metrics")]
mod scan;
#[cfg(feature = "metrics")]
mod transact;

#[cfg(feature = "alerts")]
pub(crate) use batch::{batch_get, batch_put};
pub use listing_store::DynamoListingStore;
#[cfg(feature = "metrics")]
pub use market_store::DynamoMarketStore;
#[cfg(feature = "alerts")]
pub(crate) use transact::{PutOutcome, transact_puts};

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;

use realty_model::ports::PortError;

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
#[cfg(feature = "metrics")]
const TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// Batch calls of one read or write in flight at once: a 1,000-record batch's 40 listing
/// writes take 5 round trips instead of 40, with few connections per function instance.
const BATCH_CALLS_IN_FLIGHT: usize = 8;

type Item = HashMap<String, AttributeValue>;

/// An SDK error as `Code: message`, for a [`PortError`] ([`crate::sdk::error_line`]).
pub(crate) fn sdk_error<E: ProvideErrorMetadata + std::error::Error>(
    operation: &'static str,
    e: &E,
) -> PortError {
    PortError::new(operation, crate::sdk::error_line(e))
}

#[cfg(test)]
mod sdk_error_tests {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;

    use super::*;

    /// An answer that did not parse is reported by what went wrong, bounded, never as the
    /// raw answer it carries (a read's items, its headers).
    #[test]
    fn an_error_without_a_code_is_reported_without_the_raw_answer() {
        let body = format!(
            "{{\"Responses\":{{\"listings\":\"{}\"}}}}",
            "secret-item ".repeat(2_000)
        );
        let response = HttpResponse::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(200).expect("status"),
            body.into(),
        );
        let e: SdkError<BatchGetItemError, HttpResponse> =
            SdkError::response_error("the answer did not parse", response);
        let message = sdk_error("BatchGetItem", &e).message;
        assert!(message.contains("did not parse"), "{message}");
        assert!(!message.contains("secret-item"), "{message}");
        assert!(
            message.len() <= realty_model::listing::MAX_REASON_BYTES,
            "{message}"
        );
    }

    /// A service's error answer is its code and message on one line, without the raw
    /// response (headers, body) `DisplayErrorContext` would append.
    #[test]
    fn a_service_error_is_its_code_and_message_on_one_line() {
        let mut response = HttpResponse::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).expect("status"),
            "{\"__type\":\"TrimmedDataAccessException\",\"raw-body\":1}".into(),
        );
        response
            .headers_mut()
            .insert("x-amzn-requestid", "raw-header");
        let e: SdkError<BatchGetItemError, HttpResponse> = SdkError::service_error(
            BatchGetItemError::generic(
                aws_sdk_dynamodb::error::ErrorMetadata::builder()
                    .code("TrimmedDataAccessException")
                    .message("the requested data is past the stream's retention")
                    .build(),
            ),
            response,
        );
        let line = crate::sdk::error_line(&e);
        assert_eq!(
            line,
            "TrimmedDataAccessException: the requested data is past the stream's retention"
        );
        let chain = crate::sdk::error_chain(&e);
        for text in [&line, &chain] {
            assert!(
                !text.contains("raw-body") && !text.contains("raw-header"),
                "{text}"
            );
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
