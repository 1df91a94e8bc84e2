//! Records of alerts published, in the IdempotencyTable (key `id`, TTL attribute
//! `expires_at`): claimed with conditional puts in TransactWriteItems (up to 100 a call),
//! marked published with BatchWriteItem (25 a call), released with conditional DeleteItem
//! (what the function's policy grants: PutItem, BatchWriteItem and DeleteItem).
//!
//! An item is `{id, state, token, lease_until, updated_at, expires_at}`: `state` is `pending`
//! from the claim until the alert is published, then `published`. A pending claim is a lease
//! until `lease_until` (epoch milliseconds: the claiming invocation's deadline plus a clock
//! allowance). A claim succeeds on a new key or on a pending one whose lease has run out; it
//! fails on a published key, and on a pending one whose lease still runs, since its
//! invocation may be publishing that alert now (docs/alerts.md, "Once per price change").

use std::collections::{BTreeSet, HashMap};

use crate::adapters::dynamodb::{PutOutcome, batch_put, transact_puts};
use crate::adapters::retry::RetryPolicy;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
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
    /// How long the failed part of a claim or mark call is re-sent.
    pub retry: RetryPolicy,
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            ttl: Duration::days(ALERT_RECORD_TTL_DAYS),
            retry: RetryPolicy::default(),
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

    /// The conditional put that claims `key`, asking for the item it finds when it fails
    /// (which says whether the key is published or held, without a read).
    fn claim_put(
        &self,
        key: &str,
        token: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, PortError> {
        let mut item = self.item(key, PENDING, token);
        item.insert(
            "lease_until".to_owned(),
            AttributeValue::N(lease_until.timestamp_millis().to_string()),
        );
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_values(":pending", AttributeValue::S(PENDING.to_owned()))
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.timestamp_millis().to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| PortError::new("TransactWriteItems", e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim_all(
        &self,
        keys: &[&str],
        token: &str,
        lease_until: DateTime<Utc>,
    ) -> Vec<Result<Claim, PortError>> {
        // A transaction may not touch an item twice (DynamoDB refuses the whole call): a key
        // given again is answered as the claim this call holds on it.
        let mut seen = BTreeSet::new();
        let mut sent: Vec<usize> = Vec::with_capacity(keys.len());
        let mut answers: Vec<Option<Result<Claim, PortError>>> = vec![None; keys.len()];
        let now = Utc::now();
        let mut actions = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if !seen.insert(*key) {
                answers[i] = Some(Ok(Claim::HeldUntil(lease_until)));
                continue;
            }
            match self.claim_put(key, token, lease_until, now) {
                Ok(action) => {
                    actions.push(action);
                    sent.push(i);
                }
                Err(e) => answers[i] = Some(Err(e)),
            }
        }
        let outcomes = transact_puts(&self.client, actions, self.retry).await;
        for (i, outcome) in sent.into_iter().zip(outcomes) {
            answers[i] = Some(outcome.map(|o| match o {
                PutOutcome::Landed => Claim::Acquired,
                PutOutcome::Lost(seen) => held_or_published(seen.as_ref()),
            }));
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(PortError::new("TransactWriteItems", "no answer"))))
            .collect()
    }

    async fn mark_published(&self, keys: &[&str], token: &str) -> Result<(), PortError> {
        // Plain puts, in any order: one BatchWriteItem may not name a key twice.
        let distinct: BTreeSet<&str> = keys.iter().copied().collect();
        let items = distinct
            .into_iter()
            .map(|key| self.item(key, PUBLISHED, token))
            .collect();
        batch_put(&self.client, &self.table, items, self.retry)
            .await
            .map(|_| ())
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
            Err(e) => Err(crate::adapters::dynamodb::sdk_error("DeleteItem", &e)),
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
    use std::sync::{Arc, Mutex};

    use aws_sdk_dynamodb::operation::batch_write_item::{
        BatchWriteItemInput, BatchWriteItemOutput,
    };
    use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
    use aws_sdk_dynamodb::operation::transact_write_items::{
        TransactWriteItemsError, TransactWriteItemsInput, TransactWriteItemsOutput,
    };
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ProvisionedThroughputExceededException,
        TransactionCanceledException,
    };
    use aws_sdk_dynamodb::types::{CancellationReason, PutRequest, WriteRequest};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn lease() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000).expect("time")
    }

    fn store(client: Client) -> DynamoIdempotencyStore {
        let mut store = DynamoIdempotencyStore::new(client, "t");
        store.retry = RetryPolicy::immediate(std::time::Duration::from_secs(5));
        store
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("alert#price_drop#zillow:{i}#2"))
            .collect()
    }

    fn claimed_keys(r: &TransactWriteItemsInput) -> Vec<String> {
        r.transact_items()
            .iter()
            .filter_map(|a| a.put()?.item().get("id")?.as_s().ok().cloned())
            .collect()
    }

    /// A transaction cancelled with these reasons, one per put, in order.
    fn cancelled(reasons: Vec<CancellationReason>) -> TransactWriteItemsError {
        TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .message("Transaction cancelled")
                .set_cancellation_reasons(Some(reasons))
                .build(),
        )
    }

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    /// A lost condition that returns the item it saw.
    fn lost_to(state: &str, lease_ms: i64) -> CancellationReason {
        CancellationReason::builder()
            .code("ConditionalCheckFailed")
            .item("state", AttributeValue::S(state.to_owned()))
            .item("lease_until", AttributeValue::N(lease_ms.to_string()))
            .build()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_claim_is_conditional_and_expires() {
        let put = mock!(Client::transact_write_items)
            .match_requests(|r| {
                let [action] = r.transact_items() else {
                    return false;
                };
                let Some(put) = action.put() else {
                    return false;
                };
                let item = put.item();
                put.condition_expression() == Some(CLAIM_CONDITION)
                    && put.return_values_on_condition_check_failure()
                        == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
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
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let store = store(client);
        assert_eq!(store.claim("k", "tok", lease()).await, Ok(Claim::Acquired));
        assert_eq!(put.num_calls(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_published_alert_cannot_be_claimed() {
        let put = mock!(Client::transact_write_items)
            .then_error(|| cancelled(vec![lost_to("published", 1)]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        assert_eq!(
            store(client).claim("k", "tok", lease()).await,
            Ok(Claim::AlreadyPublished)
        );
        assert_eq!(put.num_calls(), 1, "a lost condition is not sent again");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_live_lease_is_reported_with_its_end() {
        let put = mock!(Client::transact_write_items)
            .then_error(|| cancelled(vec![lost_to("pending", 1_800_000_000_000)]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        assert_eq!(
            store(client).claim("k", "tok", lease()).await,
            Ok(Claim::HeldUntil(lease()))
        );
        // A store that does not say what it saw: held (never skipped, never published twice).
        let put = mock!(Client::transact_write_items)
            .then_error(|| cancelled(vec![reason("ConditionalCheckFailed")]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        assert!(matches!(
            store(client).claim("k", "tok", lease()).await,
            Ok(Claim::HeldUntil(_))
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn other_errors_are_reported() {
        let put = mock!(Client::transact_write_items).then_error(|| {
            TransactWriteItemsError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let err = store(client)
            .claim("k", "tok", lease())
            .await
            .expect_err("reported");
        assert!(err.message.contains("slow down"), "{err}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn claims_go_100_a_call_and_not_one_more() {
        for (n, calls) in [(100, vec![100]), (101, vec![1, 100])] {
            let sizes = Arc::new(Mutex::new(Vec::new()));
            let seen = sizes.clone();
            let put = mock!(Client::transact_write_items)
                .match_requests(move |r| {
                    seen.lock().expect("lock").push(r.transact_items().len());
                    true
                })
                .then_output(|| TransactWriteItemsOutput::builder().build());
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
            let keys = keys(n);
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let claims = store(client).claim_all(&keys, "tok", lease()).await;
            assert_eq!(claims.len(), n);
            assert!(claims.iter().all(|c| *c == Ok(Claim::Acquired)));
            let mut sizes = sizes.lock().expect("lock").clone();
            sizes.sort_unstable();
            assert_eq!(sizes, calls, "{n} claims");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_claim_call_resends_only_the_claims_that_can_still_land() {
        let keys = keys(4);
        // The second key is published, the fourth's put met a concurrent transaction; the
        // others were cancelled with them.
        let first = mock!(Client::transact_write_items)
            .match_requests(|r| r.transact_items().len() == 4)
            .then_error(|| {
                cancelled(vec![
                    reason("None"),
                    lost_to("published", 1),
                    reason("None"),
                    reason("TransactionConflict"),
                ])
            });
        let expected: Vec<String> = [0, 2, 3].iter().map(|&i| keys[i].clone()).collect();
        let again = mock!(Client::transact_write_items)
            .match_requests(move |r| claimed_keys(r) == expected)
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &again]);
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let claims = store(client).claim_all(&refs, "tok", lease()).await;
        assert_eq!(
            claims,
            vec![
                Ok(Claim::Acquired),
                Ok(Claim::AlreadyPublished),
                Ok(Claim::Acquired),
                Ok(Claim::Acquired)
            ]
        );
        assert_eq!((first.num_calls(), again.num_calls()), (1, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_claim_call_that_fails_answers_its_own_keys_and_no_others() {
        let fails = mock!(Client::transact_write_items)
            .match_requests(|r| r.transact_items().len() == 1)
            .then_error(|| {
                TransactWriteItemsError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .message("slow down")
                        .build(),
                )
            });
        let lands = mock!(Client::transact_write_items)
            .match_requests(|r| r.transact_items().len() == 100)
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&fails, &lands]);
        let keys = keys(101);
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let claims = store(client).claim_all(&refs, "tok", lease()).await;
        assert!(claims[..100].iter().all(|c| *c == Ok(Claim::Acquired)));
        assert!(
            matches!(&claims[100], Err(e) if e.message.contains("slow down")),
            "{:?}",
            claims[100]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_key_given_twice_is_claimed_once() {
        let put = mock!(Client::transact_write_items)
            .match_requests(|r| claimed_keys(r) == ["a", "b"])
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let claims = store(client)
            .claim_all(&["a", "b", "a"], "tok", lease())
            .await;
        assert_eq!(
            claims,
            vec![
                Ok(Claim::Acquired),
                Ok(Claim::Acquired),
                Ok(Claim::HeldUntil(lease()))
            ]
        );
        assert_eq!(put.num_calls(), 1);
    }

    fn marked_keys(r: &BatchWriteItemInput) -> Vec<String> {
        r.request_items()
            .and_then(|items| items.get("t"))
            .map(|requests| {
                requests
                    .iter()
                    .filter_map(|w| {
                        let item = w.put_request()?.item();
                        (item.get("state")?.as_s().ok()? == PUBLISHED)
                            .then(|| item.get("id")?.as_s().ok().cloned())?
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn marks_go_25_a_call_and_only_unprocessed_ones_again() {
        let keys = keys(26);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        // The first call of 25 leaves one mark unprocessed (throttled on its partition).
        let first = mock!(Client::batch_write_item)
            .match_requests(move |r| {
                // Asked of every call first (rules are tried in order): noted when it matches.
                let keys = marked_keys(r);
                let matches = keys.len() == 25;
                if matches {
                    seen.lock().expect("lock").push(keys);
                }
                matches
            })
            .then_output(|| {
                let unprocessed = PutRequest::builder()
                    .item("id", AttributeValue::S("left".into()))
                    .build()
                    .expect("put");
                BatchWriteItemOutput::builder()
                    .unprocessed_items(
                        "t",
                        vec![WriteRequest::builder().put_request(unprocessed).build()],
                    )
                    .build()
            });
        let seen = calls.clone();
        let rest = mock!(Client::batch_write_item)
            .match_requests(move |r| {
                seen.lock().expect("lock").push(marked_keys(r));
                true
            })
            .then_output(|| BatchWriteItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&first, &rest]);
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(store(client).mark_published(&refs, "tok").await, Ok(()));
        let mut sizes: Vec<usize> = calls.lock().expect("lock").iter().map(Vec::len).collect();
        sizes.sort_unstable();
        // 25 and 1, then the one unprocessed item alone (its key carries no state: 0).
        assert_eq!(sizes, vec![0, 1, 25]);
        let mut marked: Vec<String> = calls.lock().expect("lock").concat();
        marked.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(marked, expected, "each key marked published once");
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
        let gone = mock!(Client::delete_item).then_error(|| {
            DeleteItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .message("The conditional request failed")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&delete, &gone]);
        let store = store(client);
        assert_eq!(store.release("k", "tok").await, Ok(()));
        // Published meanwhile, or taken over: nothing of ours to release, not an error.
        assert_eq!(store.release("k", "tok").await, Ok(()));
        assert_eq!((delete.num_calls(), gone.num_calls()), (1, 1));
    }
}
