//! Market medians for the alerts function: the `figures.median_price_per_sqft` of live items
//! in the market table, read with BatchGetItem and a projection (a live item also carries
//! its histograms, which the alerts function has no use for).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde::Deserialize;

use super::retry::{RetryPolicy, send_with_retries};
use crate::alerts::ports::{MarketMedians, PortError};
use crate::items::LIVE_SORT_KEY;

/// BatchGetItem reads at most 100 keys a call.
const GET_BATCH: usize = 100;

type Key = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoMarketMedians {
    pub client: Client,
    pub table: String,
    pub retry: RetryPolicy,
}

/// The projected part of a live item.
#[derive(Debug, Deserialize)]
struct MedianItem {
    pk: String,
    #[serde(default)]
    figures: Option<MedianFigures>,
}

#[derive(Debug, Deserialize)]
struct MedianFigures {
    #[serde(default)]
    median_price_per_sqft: Option<f64>,
}

impl MarketMedians for DynamoMarketMedians {
    async fn medians_per_sqft(
        &self,
        scope_keys: &[String],
    ) -> Result<BTreeMap<String, f64>, PortError> {
        let found: Mutex<Vec<Key>> = Mutex::new(Vec::new());
        for chunk in scope_keys.chunks(GET_BATCH) {
            let keys: Vec<Key> = chunk
                .iter()
                .map(|k| {
                    HashMap::from([
                        ("pk".to_owned(), AttributeValue::S(k.clone())),
                        ("sk".to_owned(), AttributeValue::S(LIVE_SORT_KEY.to_owned())),
                    ])
                })
                .collect();
            let found = &found;
            let result = send_with_retries(self.retry, keys, |keys| async move {
                let request = match KeysAndAttributes::builder()
                    .set_keys(Some(keys.clone()))
                    .projection_expression("#pk, #figures.#median")
                    .expression_attribute_names("#pk", "pk")
                    .expression_attribute_names("#figures", "figures")
                    .expression_attribute_names("#median", "median_price_per_sqft")
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return (Vec::new(), Some(e.to_string())),
                };
                match self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                {
                    Ok(out) => {
                        if let Some(mut responses) = out.responses {
                            found
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .extend(responses.remove(&self.table).unwrap_or_default());
                        }
                        let unprocessed = out
                            .unprocessed_keys
                            .and_then(|mut u| u.remove(&self.table))
                            .map(|k| k.keys)
                            .unwrap_or_default();
                        (unprocessed, Some("UnprocessedKeys".to_owned()))
                    }
                    Err(e) => (
                        keys,
                        Some(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()),
                    ),
                }
            })
            .await;
            if let Err(unsent) = result {
                return Err(PortError::new(
                    "BatchGetItem",
                    format!(
                        "{} market items unread after {} attempts: {}",
                        unsent.items.len(),
                        unsent.attempts,
                        unsent.last_error
                    ),
                ));
            }
        }
        let mut medians = BTreeMap::new();
        for item in found
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            match serde_dynamo::from_item::<_, MedianItem>(item) {
                Ok(MedianItem {
                    pk,
                    figures:
                        Some(MedianFigures {
                            median_price_per_sqft: Some(median),
                        }),
                }) => {
                    medians.insert(pk, median);
                }
                Ok(_) => {}
                // One unreadable market item should not hold back every alert behind it:
                // that market is judged as having no median.
                Err(e) => {
                    tracing::warn!(error = %e, "market item without a readable median");
                    metrics::counter!("market_items_unreadable").increment(1);
                }
            }
        }
        Ok(medians)
    }
}
