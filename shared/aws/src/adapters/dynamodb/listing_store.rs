//! The listing table: the metrics workflow's listing states ([`ListingStore`]) and the
//! reconciliation's scan of them (`ListingScan`, with the `metrics` feature).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::Item;
use super::batch::{batch_get, batch_put};
#[cfg(feature = "metrics")]
use super::scan::scan;
use crate::adapters::retry::RetryPolicy;
#[cfg(feature = "metrics")]
use realty_metrics::reconcile::ListingScan;
use realty_model::ports::PortError;
use realty_model::state::ListingItem;
use realty_model::state::ListingState;
use realty_model::state::{ListingStore, StoredStates};

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

    async fn get_states(&self, ids: &[&str]) -> Result<StoredStates, PortError> {
        let keys = ids
            .iter()
            .map(|id| {
                HashMap::from([("listing_id".to_owned(), AttributeValue::S((*id).to_owned()))])
            })
            .collect();
        let mut states = StoredStates::with_capacity_and_hasher(ids.len(), Default::default());
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

#[cfg(feature = "metrics")]
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
