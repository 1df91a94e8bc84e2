//! Market medians for the alerts function: the `figures.median_price_per_sqft` of live items
//! in the market table, read with BatchGetItem and a projection (a live item also carries
//! its histograms, which the alerts function has no use for).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;

use super::dynamodb::{Projection, batch_get};
use super::retry::RetryPolicy;
use realty_core::alerts::ports::MarketMedians;
use realty_core::ports::PortError;
use realty_core::store::LIVE_SORT_KEY;

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
        let keys: Vec<Key> = scope_keys
            .iter()
            .map(|k| {
                HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(k.clone())),
                    ("sk".to_owned(), AttributeValue::S(LIVE_SORT_KEY.to_owned())),
                ])
            })
            .collect();
        let projection = Projection {
            expression: "#pk, #figures.#median",
            names: &[
                ("#pk", "pk"),
                ("#figures", "figures"),
                ("#median", "median_price_per_sqft"),
            ],
        };
        let found = batch_get(
            &self.client,
            &self.table,
            keys,
            Some(&projection),
            self.retry,
        )
        .await?;
        let mut medians = BTreeMap::new();
        for item in found {
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
