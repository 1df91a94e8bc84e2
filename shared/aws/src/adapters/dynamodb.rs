//! The listing and market tables over the DynamoDB SDK.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, Put, PutRequest,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, WriteRequest,
};

use futures::stream::{self, StreamExt};

use super::retry::{RetryPolicy, Sent, send_with_retries};
use realty_core::alerts::feed::CLAIM_LEASE_ATTRIBUTE;
use realty_core::metrics::batch::ListingState;
use realty_core::metrics::interest::{InterestWrite, interest_key};
use realty_core::metrics::ports::{
    AggregatePut, EncodedJournal, ListingStore, MarketStore, Snapshot, StoredAggregate,
    StoredStates,
};
use realty_core::metrics::reconcile::{ListingScan, MarketScan};
use realty_core::ports::PortError;
use realty_core::store::{
    InterestItem, JOURNAL_SORT_KEY, JournalItem, LIVE_SORT_KEY, ListingItem, MarketLiveItem,
    MarketSnapshotItem,
};

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
async fn write_requests(
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
    let chunks = realty_core::ports::chunk_by_limits(&sizes, WRITE_BATCH, WRITE_BATCH_BYTES);
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

/// A put of `item` conditional on the stored item's revision being `expected_revision`
/// (empty: no item yet).
fn conditional_put(
    table: &str,
    item: Item,
    expected_revision: &str,
) -> Result<TransactWriteItem, PortError> {
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = if expected_revision.is_empty() {
        put.condition_expression("attribute_not_exists(pk)")
    } else {
        put.condition_expression("revision = :expected")
            .expression_attribute_values(
                ":expected",
                AttributeValue::S(expected_revision.to_owned()),
            )
    };
    let put = put
        .build()
        .map_err(|e| PortError::new("TransactWriteItems", e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// What became of one conditional put of [`transact_puts`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PutOutcome {
    Landed,
    /// Its condition failed: the item it saw, when the put asked for it
    /// (`ReturnValuesOnConditionCheckFailure`) and the store returned it.
    Lost(Option<Item>),
}

/// Writes conditional puts of distinct items in TransactWriteItems calls of at most
/// [`TRANSACTION_ITEMS`] puts and [`TRANSACTION_BYTES`] (one call where PutItem took one per
/// item). Answers, per put in order, what became of it. A transaction is all or nothing: one
/// cancelled because some puts lost their condition is sent again without those (answered
/// [`PutOutcome::Lost`]), and the puts cancelled for other reasons (a conflicting transaction,
/// throttling) are re-sent with backoff, so only the failed part of a call is sent again. A
/// call that fails for good answers its puts that had not landed with its error, and leaves
/// the other calls' answers as they are. The calls run [`BATCH_CALLS_IN_FLIGHT`] at a time.
pub(crate) async fn transact_puts(
    client: &Client,
    actions: Vec<TransactWriteItem>,
    retry: RetryPolicy,
) -> Vec<Result<PutOutcome, PortError>> {
    let outcomes: std::sync::Mutex<Vec<Option<PutOutcome>>> =
        std::sync::Mutex::new(vec![None; actions.len()]);
    let sizes: Vec<usize> = actions
        .iter()
        .map(|a| a.put().map_or(0, |p| crate::items::item_size(p.item())))
        .collect();
    let indexed: Vec<(usize, TransactWriteItem)> = actions.into_iter().enumerate().collect();
    let chunks = realty_core::ports::chunk_by_limits(&sizes, TRANSACTION_ITEMS, TRANSACTION_BYTES);
    let answer = |put: usize, outcome: PutOutcome| {
        outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)[put] = Some(outcome);
    };
    let write_chunk = |range: std::ops::Range<usize>| {
        let answer = &answer;
        let chunk = indexed[range.clone()].to_vec();
        async move {
            let sent = send_with_retries(retry, chunk, move |puts| async move {
                let sent = client
                    .transact_write_items()
                    .set_transact_items(Some(puts.iter().map(|(_, a)| a.clone()).collect()))
                    .send()
                    .await;
                let reasons = match sent {
                    Ok(_) => {
                        for (i, _) in &puts {
                            answer(*i, PutOutcome::Landed);
                        }
                        return Sent::all();
                    }
                    Err(e) => match e.as_service_error() {
                        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                            c.cancellation_reasons().to_vec()
                        }
                        _ => {
                            return Sent::Failed {
                                unsent: puts,
                                error: sdk_error("TransactWriteItems", &e).message,
                            };
                        }
                    },
                };
                if reasons.len() != puts.len() {
                    let error = format!(
                        "TransactionCanceledException with {} reasons for {} puts",
                        reasons.len(),
                        puts.len()
                    );
                    return Sent::Failed {
                        unsent: puts,
                        error,
                    };
                }
                let mut again = Vec::new();
                let mut error = String::new();
                for (put, reason) in puts.into_iter().zip(reasons) {
                    match reason.code().unwrap_or("None") {
                        // Lost to another writer: answered with what it saw, not sent again.
                        "ConditionalCheckFailed" => {
                            answer(put.0, PutOutcome::Lost(reason.item().cloned()));
                        }
                        // Cancelled with the others, or by a concurrent transaction or
                        // throttling on its item: it may land on the next attempt.
                        code @ ("None"
                        | "TransactionConflict"
                        | "ThrottlingError"
                        | "ProvisionedThroughputExceeded") => {
                            if code != "None" {
                                error = code.to_owned();
                            }
                            again.push(put);
                        }
                        code => {
                            let message = reason.message().unwrap_or_default();
                            return Sent::Failed {
                                unsent: vec![put],
                                error: format!("TransactionCanceledException: {code}: {message}"),
                            };
                        }
                    }
                }
                Sent::Answered {
                    failed: again,
                    error: if error.is_empty() {
                        "cancelled with puts that lost their condition".to_owned()
                    } else {
                        error
                    },
                }
            })
            .await;
            (range, sent)
        }
    };
    let mut calls = stream::iter(chunks)
        .map(write_chunk)
        .buffer_unordered(BATCH_CALLS_IN_FLIGHT);
    let mut failures: Vec<(std::ops::Range<usize>, PortError)> = Vec::new();
    while let Some((range, result)) = calls.next().await {
        if let Err(unsent) = result {
            let error = PortError::new(
                "TransactWriteItems",
                format!(
                    "{} puts unwritten after {} attempts: {}",
                    unsent.items.len(),
                    unsent.attempts,
                    unsent.last_error
                ),
            );
            failures.push((range, error));
        }
    }
    drop(calls);
    let outcomes = outcomes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| {
            outcome.ok_or_else(|| {
                failures
                    .iter()
                    .find(|(range, _)| range.contains(&i))
                    .map(|(_, e)| e.clone())
                    .unwrap_or_else(|| PortError::new("TransactWriteItems", "no answer"))
            })
        })
        .collect()
}

/// A write request's item (or key, for a delete), as DynamoDB sizes it.
fn request_size(request: &WriteRequest) -> usize {
    match (request.put_request(), request.delete_request()) {
        (Some(put), _) => crate::items::item_size(put.item()),
        (None, Some(delete)) => crate::items::item_size(delete.key()),
        (None, None) => 0,
    }
}

/// The listing table.
#[derive(Debug, Clone)]
pub struct DynamoListingStore {
    pub client: Client,
    pub table: String,
    pub retry: RetryPolicy,
}

impl ListingStore for DynamoListingStore {
    fn check_state(&self, state: &ListingState) -> Result<(), String> {
        crate::items::check_listing_item(state)
    }

    async fn get_states(&self, ids: &[String]) -> Result<StoredStates, PortError> {
        let keys = ids
            .iter()
            .map(|id| HashMap::from([("listing_id".to_owned(), AttributeValue::S(id.clone()))]))
            .collect();
        let mut states = StoredStates::with_capacity(ids.len());
        for item in batch_get(&self.client, &self.table, keys, self.retry).await? {
            let item: ListingItem = serde_dynamo::from_item(item)
                .map_err(|e| PortError::new("decode listing item", e.to_string()))?;
            let id = item.listing_id.clone();
            let state = ListingState::try_from(item)
                .map_err(|e| PortError::new("decode listing item", e.to_string()))?;
            states.insert(id, std::sync::Arc::new(state));
        }
        Ok(states)
    }

    async fn put_states(&self, states: Vec<ListingState>) -> Result<(), PortError> {
        let items = states
            .into_iter()
            .map(|s| {
                serde_dynamo::to_item(ListingItem::from(s))
                    .map_err(|e| PortError::new("encode listing item", e.to_string()))
            })
            .collect::<Result<Vec<Item>, _>>()?;
        batch_put(&self.client, &self.table, items, self.retry)
            .await
            .map(|_| ())
    }
}

impl ListingScan for DynamoListingStore {
    async fn all_states(&self) -> Result<Vec<ListingState>, PortError> {
        let mut out = Vec::new();
        for item in scan(&self.client, &self.table, None).await? {
            let item: ListingItem = serde_dynamo::from_item(item)
                .map_err(|e| PortError::new("decode listing item", e.to_string()))?;
            out.push(
                ListingState::try_from(item)
                    .map_err(|e| PortError::new("decode listing item", e.to_string()))?,
            );
        }
        Ok(out)
    }
}

/// Every item of a table (a paged, strongly consistent Scan), optionally only those with
/// `sk` = `sort_key` (their keys alone).
async fn scan(
    client: &Client,
    table: &str,
    sort_key: Option<&str>,
) -> Result<Vec<Item>, PortError> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut request = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take());
        if let Some(sk) = sort_key {
            request = request
                .filter_expression("sk = :sk")
                .projection_expression("pk, sk")
                .expression_attribute_values(":sk", AttributeValue::S(sk.to_owned()));
        }
        let page = request.send().await.map_err(|e| sdk_error("Scan", &e))?;
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

/// The market table.
#[derive(Debug, Clone)]
pub struct DynamoMarketStore {
    pub client: Client,
    pub table: String,
    pub retry: RetryPolicy,
}

impl DynamoMarketStore {
    /// The snapshots stored between two sort keys (the closed periods): one Query, paged.
    async fn stored_snapshots(
        &self,
        scope_key: &str,
        from_sort_key: &str,
        to_sort_key: &str,
    ) -> Result<Vec<MarketSnapshotItem>, PortError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", AttributeValue::S(scope_key.to_owned()))
                .expression_attribute_values(":from", AttributeValue::S(from_sort_key.to_owned()))
                .expression_attribute_values(":to", AttributeValue::S(to_sort_key.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query", &e))?;
            for item in page.items.unwrap_or_default() {
                out.push(
                    serde_dynamo::from_item(item)
                        .map_err(|e| PortError::new("decode snapshot item", e.to_string()))?,
                );
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// The live item of one market, as stored.
    pub async fn live(&self, scope_key: &str) -> Result<Option<MarketLiveItem>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(scope_key.to_owned()))
            .key("sk", AttributeValue::S(LIVE_SORT_KEY.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", &e))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| PortError::new("decode market item", e.to_string()))
            })
            .transpose()
    }
}

impl MarketScan for DynamoMarketStore {
    async fn market_keys(&self) -> Result<Vec<String>, PortError> {
        Ok(scan(&self.client, &self.table, Some(LIVE_SORT_KEY))
            .await?
            .into_iter()
            .filter_map(|item| match item.get("pk") {
                Some(AttributeValue::S(pk)) => Some(pk.clone()),
                _ => None,
            })
            .collect())
    }

    async fn journal_shards(&self) -> Result<Vec<String>, PortError> {
        Ok(scan(&self.client, &self.table, Some(JOURNAL_SORT_KEY))
            .await?
            .into_iter()
            .filter_map(|item| match item.get("pk") {
                Some(AttributeValue::S(pk)) => pk.strip_prefix("journal#").map(str::to_owned),
                _ => None,
            })
            .collect())
    }
}

impl MarketStore for DynamoMarketStore {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        let keys = keys
            .iter()
            .map(|k| {
                HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(k.clone())),
                    ("sk".to_owned(), AttributeValue::S(LIVE_SORT_KEY.to_owned())),
                ])
            })
            .collect();
        let mut out = BTreeMap::new();
        for item in batch_get(&self.client, &self.table, keys, self.retry).await? {
            let item: MarketLiveItem = serde_dynamo::from_item(item)
                .map_err(|e| PortError::new("decode market item", e.to_string()))?;
            let key = item.pk.clone();
            out.insert(
                key,
                item.into_stored()
                    .map_err(|e| PortError::new("decode market item", e.to_string()))?,
            );
        }
        Ok(out)
    }

    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        let mut actions = Vec::with_capacity(puts.len());
        for put in puts {
            let item: Item = serde_dynamo::to_item(MarketLiveItem::new(put.key, put.item))
                .map_err(|e| PortError::new("encode market item", e.to_string()))?;
            actions.push(conditional_put(&self.table, item, put.expected_revision)?);
        }
        // Landed or lost, per put; a put that could not be written fails the whole write.
        transact_puts(&self.client, actions, self.retry)
            .await
            .into_iter()
            .map(|outcome| outcome.map(|o| o == PutOutcome::Landed))
            .collect()
    }

    async fn put_snapshots(&self, snapshots: &[Snapshot]) -> Result<(), PortError> {
        let items = snapshots
            .iter()
            .map(|s| {
                serde_dynamo::to_item(MarketSnapshotItem::from(s))
                    .map_err(|e| PortError::new("encode snapshot", e.to_string()))
            })
            .collect::<Result<Vec<Item>, _>>()?;
        batch_put(&self.client, &self.table, items, self.retry)
            .await
            .map(|_| ())
    }

    async fn write_interest(&self, writes: &[InterestWrite]) -> Result<(), PortError> {
        let requests = writes
            .iter()
            .map(|w| match w {
                InterestWrite::Put(entry) => {
                    let item = serde_dynamo::to_item(InterestItem::from(entry.as_ref()))
                        .map_err(|e| PortError::new("encode interest item", e.to_string()))?;
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|e| PortError::new("BatchWriteItem", e.to_string()))
                }
                InterestWrite::Delete { market, sort_key } => DeleteRequest::builder()
                    .key("pk", AttributeValue::S(interest_key(market)))
                    .key("sk", AttributeValue::S(sort_key.clone()))
                    .build()
                    .map(|delete| WriteRequest::builder().delete_request(delete).build())
                    .map_err(|e| PortError::new("BatchWriteItem", e.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A batch may cut and then un-list one listing: one request per key in a call
        // (BatchWriteItem refuses duplicates), the last write of each key.
        let mut last = BTreeMap::new();
        for (w, request) in writes.iter().zip(requests) {
            let key = match w {
                InterestWrite::Put(e) => (interest_key(&e.market), e.sort_key.clone()),
                InterestWrite::Delete { market, sort_key } => {
                    (interest_key(market), sort_key.clone())
                }
            };
            last.insert(key, request);
        }
        write_requests(
            &self.client,
            &self.table,
            last.into_values().collect(),
            self.retry,
        )
        .await
        .map(|_| ())
    }

    async fn get_journal(&self, shard: &str) -> Result<Option<EncodedJournal>, PortError> {
        // BatchGetItem (consistent) rather than GetItem: the function's role needs no more.
        let key = journal_key(shard);
        let found = batch_get(&self.client, &self.table, vec![key], self.retry).await?;
        found.into_iter().next().map(journal_of).transpose()
    }

    async fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> Result<Option<EncodedJournal>, PortError> {
        let item: Item = serde_dynamo::to_item(JournalItem::from(journal))
            .map_err(|e| PortError::new("encode journal item", e.to_string()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            // The journal left behind comes back with the failed condition, without a read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        Some(left) => journal_of(left.clone()).map(Some),
                        // A store that does not return what it saw: read it.
                        None => match self.get_journal(&journal.shard).await? {
                            Some(left) => Ok(Some(left)),
                            None => Err(PortError::new(
                                "PutItem",
                                "the journal's condition failed on a journal since gone",
                            )),
                        },
                    }
                }
                _ => Err(sdk_error("PutItem", &e)),
            },
        }
    }

    async fn delete_journal(&self, shard: &str) -> Result<(), PortError> {
        // A one-item BatchWriteItem: the role already has it (a DeleteItem would need more).
        let request = DeleteRequest::builder()
            .set_key(Some(journal_key(shard)))
            .build()
            .map(|d| WriteRequest::builder().delete_request(d).build())
            .map_err(|e| PortError::new("BatchWriteItem", e.to_string()))?;
        write_requests(&self.client, &self.table, vec![request], self.retry)
            .await
            .map(|_| ())
    }
}

/// The journal of a stored journal item.
fn journal_of(item: Item) -> Result<EncodedJournal, PortError> {
    let item: JournalItem = serde_dynamo::from_item(item)
        .map_err(|e| PortError::new("decode journal item", e.to_string()))?;
    Ok(EncodedJournal {
        shard: item.shard,
        body: item.body,
    })
}

fn journal_key(shard: &str) -> Item {
    HashMap::from([
        (
            "pk".to_owned(),
            AttributeValue::S(JournalItem::key_of(shard)),
        ),
        (
            "sk".to_owned(),
            AttributeValue::S(JOURNAL_SORT_KEY.to_owned()),
        ),
    ])
}

impl realty_core::api::ports::MarketReader for DynamoMarketStore {
    async fn live(&self, scope_key: &str) -> Result<Option<MarketLiveItem>, PortError> {
        DynamoMarketStore::live(self, scope_key).await
    }

    async fn latest<T: serde::de::DeserializeOwned>(
        &self,
        partition_key: &str,
        prefix: &str,
        below: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<T>, Option<String>), PortError> {
        // One Query, newest first, paged by DynamoDB until `limit` items are read.
        let (condition, upper) = match below {
            Some(b) => ("pk = :pk AND sk BETWEEN :prefix AND :upper", b.to_owned()),
            None => ("pk = :pk AND begins_with(sk, :prefix)", String::new()),
        };
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", AttributeValue::S(partition_key.to_owned()))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
                .scan_index_forward(false)
                // An alert's claim, at its key in the feed until it is published, is no item
                // to show (realty_core::alerts::feed); other lists never hold a lease.
                .filter_expression("attribute_not_exists(#lease)")
                .expression_attribute_names("#lease", CLAIM_LEASE_ATTRIBUTE)
                .limit(i32::try_from(limit - out.len() + 1).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            if below.is_some() {
                query =
                    query.expression_attribute_values(":upper", AttributeValue::S(upper.clone()));
            }
            let page = query.send().await.map_err(|e| sdk_error("Query", &e))?;
            for item in page.items.unwrap_or_default() {
                let sk = match item.get("sk") {
                    Some(AttributeValue::S(sk)) => sk.clone(),
                    _ => continue,
                };
                // BETWEEN includes its bounds: the cursor's own item was shown already,
                // and an item that does not start with the prefix is another list's.
                if below == Some(sk.as_str()) || !sk.starts_with(prefix) {
                    continue;
                }
                if out.len() == limit {
                    // One more than asked for: there is a next page, below the last shown.
                    let next = out.last().map(|(k, _): &(String, T)| k.clone());
                    return Ok((out.into_iter().map(|(_, v)| v).collect(), next));
                }
                out.push((
                    sk,
                    serde_dynamo::from_item(item)
                        .map_err(|e| PortError::new("decode item", e.to_string()))?,
                ));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((out.into_iter().map(|(_, v)| v).collect(), None)),
            }
        }
    }

    async fn stored_snapshots(
        &self,
        scope_key: &str,
        from_sort_key: &str,
        to_sort_key: &str,
    ) -> Result<Vec<MarketSnapshotItem>, PortError> {
        DynamoMarketStore::stored_snapshots(self, scope_key, from_sort_key, to_sort_key).await
    }
}
