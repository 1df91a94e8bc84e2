//! The market table as the metrics workflow writes it ([`MarketStore`]: aggregates,
//! snapshots, lists of interest, the shard's journal) and the reconciliation scans it
//! ([`MarketScan`]).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};

use super::batch::{batch_get, batch_put, write_requests};
use super::scan::scan;
use super::transact::{PutOutcome, conditional_put, transact_puts};
use super::{Item, sdk_error};
use crate::adapters::retry::RetryPolicy;
use realty_metrics::interest::{InterestWrite, interest_key};
use realty_metrics::items::{
    InterestItem, JOURNAL_SORT_KEY, JournalItem, LIVE_SORT_KEY, MarketLiveItem, MarketSnapshotItem,
};
use realty_metrics::ports::{AggregatePut, EncodedJournal, MarketStore, Snapshot, StoredAggregate};
use realty_metrics::reconcile::MarketScan;
use realty_model::ports::PortError;

/// The market table.
#[derive(Debug, Clone)]
pub struct DynamoMarketStore {
    pub client: Client,
    pub table: String,
    pub retry: RetryPolicy,
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

    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), PortError> {
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

    async fn write_interest(&self, writes: Vec<InterestWrite>) -> Result<(), PortError> {
        // A batch may cut and then un-list one listing: one request per key in a call
        // (BatchWriteItem refuses duplicates), the last write of each key.
        let mut last = BTreeMap::new();
        for w in writes {
            let (key, request) = match w {
                InterestWrite::Put(entry) => {
                    let key = (interest_key(&entry.market), entry.sort_key.clone());
                    let item = serde_dynamo::to_item(InterestItem::from(*entry))
                        .map_err(|e| PortError::new("encode interest item", e.to_string()))?;
                    let request = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build());
                    (key, request)
                }
                InterestWrite::Delete { market, sort_key } => {
                    let key = (interest_key(&market), sort_key);
                    let request = DeleteRequest::builder()
                        .key("pk", AttributeValue::S(key.0.clone()))
                        .key("sk", AttributeValue::S(key.1.clone()))
                        .build()
                        .map(|delete| WriteRequest::builder().delete_request(delete).build());
                    (key, request)
                }
            };
            let request = request.map_err(|e| PortError::new("BatchWriteItem", e.to_string()))?;
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
