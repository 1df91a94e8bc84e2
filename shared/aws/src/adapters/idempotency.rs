//! Records of alerts published, in the IdempotencyTable (key `id`, TTL attribute
//! `expires_at`), written with conditional PutItem and DeleteItem only (what the function's
//! policy grants).
//!
//! An item is `{id, state, token, lease_until, updated_at, expires_at}`: `state` is `pending`
//! from the claim until the alert is published, then `published`. A pending claim is a lease
//! until `lease_until` (epoch milliseconds: the claiming invocation's deadline plus a clock
//! allowance). A claim succeeds on a new key or on a pending one whose lease has run out; it
//! fails on a published key, and on a pending one whose lease still runs, since its
//! invocation may be publishing that alert now (docs/alerts.md, "Once per price change").

use crate::adapters::dynamodb::sdk_error;
use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Duration, Utc};

use realty_core::alerts::ports::{Claim, IdempotencyStore};
use realty_core::ports::PortError;

/// How long a record is kept. Far longer than any re-delivery: DynamoDB streams keep records
/// 24 hours, and the trigger gives up on a record after an hour (`MaximumRecordAgeInSeconds`).
pub const ALERT_RECORD_TTL_DAYS: i64 = 7;

const PENDING: &str = "pending";
const PUBLISHED: &str = "published";

/// A claim is taken when the key is new, or pending with a lease that has run out (or none:
/// a claim written before leases existed, by an invocation long gone).
pub const CLAIM_CONDITION: &str = "attribute_not_exists(id) OR (#state = :pending AND \
     (attribute_not_exists(#lease) OR #lease < :now))";

#[derive(Debug, Clone)]
pub struct DynamoIdempotencyStore {
    pub client: Client,
    pub table: String,
    pub ttl: Duration,
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            ttl: Duration::days(ALERT_RECORD_TTL_DAYS),
        }
    }

    fn item(&self, key: &str, state: &str, token: &str) -> HashMap<String, AttributeValue> {
        let now = Utc::now();
        HashMap::from([
            ("id".to_owned(), AttributeValue::S(key.to_owned())),
            ("state".to_owned(), AttributeValue::S(state.to_owned())),
            ("token".to_owned(), AttributeValue::S(token.to_owned())),
            ("updated_at".to_owned(), AttributeValue::S(now.to_rfc3339())),
            (
                "expires_at".to_owned(),
                AttributeValue::N((now + self.ttl).timestamp().to_string()),
            ),
        ])
    }
}

impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        key: &str,
        token: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, PortError> {
        let mut item = self.item(key, PENDING, token);
        item.insert(
            "lease_until".to_owned(),
            AttributeValue::N(lease_until.timestamp_millis().to_string()),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_values(":pending", AttributeValue::S(PENDING.to_owned()))
            .expression_attribute_values(
                ":now",
                AttributeValue::N(Utc::now().timestamp_millis().to_string()),
            )
            // Says whether the key is published or held, without a read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(held_or_published(failed.item()))
                }
                _ => Err(sdk_error("PutItem", &e)),
            },
        }
    }

    async fn mark_published(&self, key: &str, token: &str) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(key, PUBLISHED, token)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("PutItem", &e))
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            // Only our own pending claim: never a published record, never another claim.
            .condition_expression("#state = :pending AND #token = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":pending", AttributeValue::S(PENDING.to_owned()))
            .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("DeleteItem", &e)),
        }
    }
}

/// What stands in the way of a claim, from the item the failed condition saw.
fn held_or_published(item: Option<&HashMap<String, AttributeValue>>) -> Claim {
    let text = |name: &str| item.and_then(|i| i.get(name)).and_then(|v| v.as_s().ok());
    if text("state").map(String::as_str) == Some(PUBLISHED) {
        return Claim::AlreadyPublished;
    }
    let lease = item
        .and_then(|i| i.get("lease_until"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    // Pending with a live lease; or a store that does not return the item it saw: held, so
    // the record comes again later rather than being skipped or published twice.
    Claim::HeldUntil(lease.unwrap_or_else(Utc::now))
}

#[cfg(test)]
mod alerts_idempotency_tests {
    use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn conditional_failure() -> ConditionalCheckFailedException {
        ConditionalCheckFailedException::builder()
            .message("The conditional request failed")
            .build()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_claim_is_conditional_and_expires() {
        let put = mock!(Client::put_item)
            .match_requests(|r| {
                let item = r.item().expect("item");
                r.condition_expression() == Some(CLAIM_CONDITION)
                    && item
                        .get("lease_until")
                        .and_then(|v| v.as_n().ok())
                        .map(String::as_str)
                        == Some("1800000000000")
                    && item
                        .get("state")
                        .and_then(|v| v.as_s().ok())
                        .map(String::as_str)
                        == Some("pending")
                    && item
                        .get("expires_at")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<i64>().ok())
                        .is_some_and(|t| {
                            let in_days = (t - Utc::now().timestamp()) as f64 / 86_400.0;
                            (6.99..=7.01).contains(&in_days)
                        })
            })
            .then_output(|| PutItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let store = DynamoIdempotencyStore::new(client, "t");
        assert_eq!(store.claim("k", "tok", lease()).await, Ok(Claim::Acquired));
        assert_eq!(put.num_calls(), 1);
    }

    fn lease() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000).expect("time")
    }

    fn conditional_failure_on(state: &str, lease_ms: i64) -> ConditionalCheckFailedException {
        ConditionalCheckFailedException::builder()
            .message("The conditional request failed")
            .item("state", AttributeValue::S(state.to_owned()))
            .item("lease_until", AttributeValue::N(lease_ms.to_string()))
            .build()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_published_alert_cannot_be_claimed() {
        let put = mock!(Client::put_item).then_error(|| {
            PutItemError::ConditionalCheckFailedException(conditional_failure_on("published", 1))
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let store = DynamoIdempotencyStore::new(client, "t");
        assert_eq!(
            store.claim("k", "tok", lease()).await,
            Ok(Claim::AlreadyPublished)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_live_lease_is_reported_with_its_end() {
        let put = mock!(Client::put_item).then_error(|| {
            PutItemError::ConditionalCheckFailedException(conditional_failure_on(
                "pending",
                1_800_000_000_000,
            ))
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let store = DynamoIdempotencyStore::new(client, "t");
        assert_eq!(
            store.claim("k", "tok", lease()).await,
            Ok(Claim::HeldUntil(lease()))
        );
        // A store that does not say what it saw: held (never skipped, never published twice).
        let put = mock!(Client::put_item)
            .then_error(|| PutItemError::ConditionalCheckFailedException(conditional_failure()));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let store = DynamoIdempotencyStore::new(client, "t");
        assert!(matches!(
            store.claim("k", "tok", lease()).await,
            Ok(Claim::HeldUntil(_))
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn other_errors_are_reported() {
        let put = mock!(Client::put_item).then_error(|| {
            PutItemError::ProvisionedThroughputExceededException(
                aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let store = DynamoIdempotencyStore::new(client, "t");
        let err = store
            .claim("k", "tok", lease())
            .await
            .expect_err("reported");
        assert!(err.message.contains("slow down"), "{err}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn release_deletes_only_its_own_pending_claim() {
        let delete = mock!(Client::delete_item)
            .match_requests(|r| {
                r.condition_expression() == Some("#state = :pending AND #token = :token")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":token"))
                        .and_then(|v| v.as_s().ok())
                        .map(String::as_str)
                        == Some("tok")
            })
            .then_output(|| DeleteItemOutput::builder().build());
        let gone = mock!(Client::delete_item)
            .then_error(|| DeleteItemError::ConditionalCheckFailedException(conditional_failure()));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&delete, &gone]);
        let store = DynamoIdempotencyStore::new(client, "t");
        assert_eq!(store.release("k", "tok").await, Ok(()));
        // Published meanwhile, or taken over: nothing of ours to release, not an error.
        assert_eq!(store.release("k", "tok").await, Ok(()));
        assert_eq!((delete.num_calls(), gone.num_calls()), (1, 1));
    }
}
