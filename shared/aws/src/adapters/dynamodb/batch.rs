//! Batched reads and writes: BatchGetItem and BatchWriteItem calls, re-sending only what
//! DynamoDB left unprocessed.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{KeysAndAttributes, PutRequest, WriteRequest};

use futures::stream::{self, StreamExt};

use super::{BATCH_CALLS_IN_FLIGHT, GET_BATCH, Item, WRITE_BATCH, WRITE_BATCH_BYTES, sdk_error};
use crate::adapters::retry::{RetryPolicy, Sent, send_with_retries};
use realty_model::ports::PortError;

/// Reads items by key, re-requesting `UnprocessedKeys`
/// until all are read. The calls (100 keys each) run [`BATCH_CALLS_IN_FLIGHT`] at a time.
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    retry: RetryPolicy,
) -> Result<Vec<Item>, PortError> {
    let found = std::sync::Mutex::new(Vec::with_capacity(keys.len()));
    let read_chunk = |chunk: &[Item]| {
        let found = &found;
        send_with_retries(retry, chunk.to_vec(), move |keys| async move {
            let request = match KeysAndAttributes::builder()
                .set_keys(Some(keys.clone()))
                .consistent_read(true)
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    return Sent::Failed {
                        unsent: keys,
                        error: e.to_string(),
                    };
                }
            };
            match client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
            {
                Ok(out) => {
                    if let Some(mut responses) = out.responses {
                        found
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .extend(responses.remove(table).unwrap_or_default());
                    }
                    let unprocessed = out
                        .unprocessed_keys
                        .and_then(|mut u| u.remove(table))
                        .map(|k| k.keys)
                        .unwrap_or_default();
                    Sent::Answered {
                        failed: unprocessed,
                        error: "UnprocessedKeys".to_owned(),
                    }
                }
                Err(e) => Sent::Failed {
                    unsent: keys,
                    error: sdk_error("BatchGetItem", &e).message,
                },
            }
        })
    };
    let mut calls = stream::iter(keys.chunks(GET_BATCH))
        .map(read_chunk)
        .buffer_unordered(BATCH_CALLS_IN_FLIGHT);
    while let Some(result) = calls.next().await {
        if let Err(unsent) = result {
            return Err(PortError::new(
                "BatchGetItem",
                format!(
                    "{} keys unread after {} attempts: {}",
                    unsent.items.len(),
                    unsent.attempts,
                    unsent.last_error
                ),
            ));
        }
    }
    drop(calls);
    Ok(found
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Writes items, re-sending `UnprocessedItems` until all are written. The calls (at most 25
/// items and 16 MB each) run [`BATCH_CALLS_IN_FLIGHT`] at a time: each item is written once,
/// so their order does not matter. Two items with the same key must not share a call
/// (DynamoDB refuses the call). Returns the number of re-sends.
pub(crate) async fn batch_put(
    client: &Client,
    table: &str,
    items: Vec<Item>,
    retry: RetryPolicy,
) -> Result<u32, PortError> {
    let requests: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
                .map_err(|e| PortError::new("BatchWriteItem", e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    write_requests(client, table, requests, retry).await
}

/// Sends write requests (puts or deletes) in BatchWriteItems of at most [`WRITE_BATCH`]
/// requests and [`WRITE_BATCH_BYTES`], re-sending only `UnprocessedItems`; returns the
/// number of re-sends.
pub(super) async fn write_requests(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    retry: RetryPolicy,
) -> Result<u32, PortError> {
    let write_chunk = |chunk: &[WriteRequest]| {
        send_with_retries(retry, chunk.to_vec(), |requests| async move {
            match client
                .batch_write_item()
                .request_items(table, requests.clone())
                .send()
                .await
            {
                Ok(out) => {
                    let unprocessed = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(table))
                        .unwrap_or_default();
                    Sent::Answered {
                        failed: unprocessed,
                        error: "UnprocessedItems".to_owned(),
                    }
                }
                Err(e) => Sent::Failed {
                    unsent: requests,
                    error: sdk_error("BatchWriteItem", &e).message,
                },
            }
        })
    };
    let sizes: Vec<usize> = requests.iter().map(request_size).collect();
    let chunks = realty_model::ports::chunk_by_limits(&sizes, WRITE_BATCH, WRITE_BATCH_BYTES);
    let mut calls = stream::iter(chunks)
        .map(|range| write_chunk(&requests[range]))
        .buffer_unordered(BATCH_CALLS_IN_FLIGHT);
    let mut retries = 0;
    while let Some(result) = calls.next().await {
        match result {
            Ok(r) => retries += r,
            Err(unsent) => {
                return Err(PortError::new(
                    "BatchWriteItem",
                    format!(
                        "{} items unwritten after {} attempts: {}",
                        unsent.items.len(),
                        unsent.attempts,
                        unsent.last_error
                    ),
                ));
            }
        }
    }
    Ok(retries)
}

/// A write request's item (or key, for a delete), as DynamoDB sizes it.
fn request_size(request: &WriteRequest) -> usize {
    match (request.put_request(), request.delete_request()) {
        (Some(put), _) => crate::items::item_size(put.item()),
        (None, Some(delete)) => crate::items::item_size(delete.key()),
        (None, None) => 0,
    }
}
