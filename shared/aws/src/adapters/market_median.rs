//! Market medians for the alerts function: the median price per sqft of live items in the
//! market table, read with BatchGetItem and computed from the item as every reader computes
//! a market's figures ([`MarketLiveItem::figures`]; an item under 4 KB is one read unit
//! whatever part of it is read).

use std::collections::{BTreeMap, HashMap};

use super::dynamodb::batch_get;
use super::retry::RetryPolicy;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use realty_alerts::ports::MarketMedians;
use realty_metrics::items::{LIVE_SORT_KEY, MarketLiveItem};
use realty_model::ports::PortError;

type Key = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoMarketMedians {
    pub client: Client,
    pub table: String,
    pub retry: RetryPolicy,
}

impl MarketMedians for DynamoMarketMedians {
    async fn medians_per_sqft(
        &self,
        scope_keys: &[String],
    ) -> Result<BTreeMap<String, f64>, PortError> {
        let keys: Vec<Key> = scope_keys
            .iter()
            .map(|k| {
                HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(k.clone())),
                    ("sk".to_owned(), AttributeValue::S(LIVE_SORT_KEY.to_owned())),
                ])
            })
            .collect();
        let found = batch_get(&self.client, &self.table, keys, self.retry).await?;
        let mut medians = BTreeMap::new();
        for item in found {
            let figures = serde_dynamo::from_item::<_, MarketLiveItem>(item)
                .map_err(|e| e.to_string())
                .and_then(|live| Ok((live.figures().map_err(|e| e.to_string())?, live.pk)));
            match figures {
                Ok((figures, pk)) => {
                    if let Some(median) = figures.median_price_per_sqft_to_judge() {
                        medians.insert(pk, median);
                    }
                }
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
