//! The market table as the API reads it: one market's live item, its stored snapshots, and
//! the newest items of a list ([`MarketReader`](realty_metrics::reader::MarketReader)).

use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoMarketStore, Item, sdk_error};
use realty_metrics::items::{LIVE_SORT_KEY, MarketLiveItem, MarketSnapshotItem};
use realty_model::ports::CLAIM_LEASE_ATTRIBUTE;
use realty_model::ports::PortError;

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

impl realty_metrics::reader::MarketReader for DynamoMarketStore {
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
                // to show (realty_alerts::feed); other lists never hold a lease.
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
