//! The ConfigTable (key `pk`) behind [`ConfigStore`]: one item per watched market
//! (`market#nashville-tn`), per source budget (`budget#zillow`), per source and month of
//! requests used (`usage#zillow#2026-11`, counted with an atomic ADD) and per last poll of a
//! (source, market) (`polled#zillow#nashville-tn`). The table stays small (a few items per
//! market), so a run reads it whole with one paginated Scan; the poller's role may Scan,
//! PutItem, UpdateItem and DeleteItem on it.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use crate::adapters::dynamodb::sdk_error;
use realty_model::markets::ConfigStore;
use realty_model::markets::{ConfigSnapshot, PollRecord, SourceBudget, WatchedMarket};
use realty_model::ports::PortError;

const MARKET: &str = "market#";
const BUDGET: &str = "budget#";
const USAGE: &str = "usage#";
const POLLED: &str = "polled#";

#[derive(Debug, Clone)]
pub struct DynamoConfigStore {
    pub client: Client,
    pub table: String,
}

/// An item: the key beside the stored shape's fields.
#[derive(Serialize, Deserialize)]
struct Keyed<T> {
    pk: String,
    #[serde(flatten)]
    value: T,
}

#[derive(Deserialize)]
struct Usage {
    requests: u64,
}

fn to_item<T: Serialize>(
    pk: String,
    value: &T,
) -> Result<HashMap<String, AttributeValue>, PortError> {
    serde_dynamo::to_item(Keyed { pk, value }).map_err(|e| PortError::new("PutItem", e.to_string()))
}

fn unreadable(pk: &str, e: impl std::fmt::Display) -> PortError {
    PortError::new("Scan", format!("config item {pk} is unreadable: {e}"))
}

impl DynamoConfigStore {
    async fn put(&self, item: HashMap<String, AttributeValue>) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", &e))?;
        Ok(())
    }

    async fn delete(&self, pk: String) -> Result<bool, PortError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", &e))?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }
}

impl ConfigStore for DynamoConfigStore {
    async fn load(&self, month: &str) -> Result<ConfigSnapshot, PortError> {
        let mut snapshot = ConfigSnapshot::default();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Scan", &e))?;
            for item in page.items() {
                let Some(AttributeValue::S(pk)) = item.get("pk") else {
                    continue;
                };
                let pk = pk.clone();
                if pk.starts_with(MARKET) {
                    let m: WatchedMarket =
                        serde_dynamo::from_item(item.clone()).map_err(|e| unreadable(&pk, e))?;
                    snapshot.markets.push(m);
                } else if pk.starts_with(BUDGET) {
                    let b: SourceBudget =
                        serde_dynamo::from_item(item.clone()).map_err(|e| unreadable(&pk, e))?;
                    snapshot.budgets.insert(b.source, b.monthly_requests);
                } else if let Some(rest) = pk.strip_prefix(USAGE) {
                    if let Some((source, m)) = rest.split_once('#')
                        && m == month
                    {
                        let u: Usage = serde_dynamo::from_item(item.clone())
                            .map_err(|e| unreadable(&pk, e))?;
                        snapshot.used.insert(source.to_owned(), u.requests);
                    }
                } else if pk.starts_with(POLLED) {
                    let p: PollRecord =
                        serde_dynamo::from_item(item.clone()).map_err(|e| unreadable(&pk, e))?;
                    snapshot
                        .polls
                        .insert((p.source.clone(), p.market.clone()), p);
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        snapshot.markets.sort_by(|a, b| a.market.cmp(&b.market));
        Ok(snapshot)
    }

    async fn put_market(&self, market: &WatchedMarket) -> Result<(), PortError> {
        self.put(to_item(format!("{MARKET}{}", market.market), market)?)
            .await
    }

    async fn remove_market(&self, market: &str) -> Result<bool, PortError> {
        self.delete(format!("{MARKET}{market}")).await
    }

    async fn set_budget(&self, source: &str, monthly: Option<u64>) -> Result<(), PortError> {
        let pk = format!("{BUDGET}{source}");
        match monthly {
            Some(monthly_requests) => {
                let budget = SourceBudget {
                    source: source.to_owned(),
                    monthly_requests,
                };
                self.put(to_item(pk, &budget)?).await
            }
            None => self.delete(pk).await.map(|_| ()),
        }
    }

    async fn add_usage(&self, source: &str, month: &str, requests: u64) -> Result<u64, PortError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("{USAGE}{source}#{month}")))
            .update_expression("ADD requests :n")
            .expression_attribute_values(":n", AttributeValue::N(requests.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| sdk_error("UpdateItem", &e))?;
        let total = out
            .attributes()
            .and_then(|a| a.get("requests"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(requests);
        Ok(total)
    }

    async fn record_poll(&self, poll: &PollRecord) -> Result<(), PortError> {
        self.put(to_item(
            format!("{POLLED}{}#{}", poll.source, poll.market),
            poll,
        )?)
        .await
    }
}
