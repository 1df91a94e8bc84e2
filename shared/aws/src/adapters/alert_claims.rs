//! Claims and marks of alerts, at their keys in the alert feed (the market table's
//! `alerts#<market>` partitions, [`realty_alerts::feed`]): claimed with conditional
//! puts in TransactWriteItems (up to 100 a call), marked published by writing the feed items
//! over the claims with BatchWriteItem (25 a call), released with conditional DeleteItem (what
//! the function's policy grants on those partitions only: PutItem, BatchWriteItem and
//! DeleteItem).
//!
//! A claim is `{pk, sk, state = pending, token, lease_until, updated_at, expires_at}`, no
//! body: small, since a transactional put bills two write units a KB. It is a lease until
//! `lease_until` (epoch milliseconds: the claiming invocation's deadline plus a clock
//! allowance). The mark is the feed item with `state = published`: one write both records
//! the alert as published and keeps it for the API. A claim succeeds on a new key or on a
//! pending one whose lease has run out; it fails on a published item (or a feed item written
//! before claims lived in the feed, which has a body and no state), and on a pending one whose
//! lease still runs, since its invocation may be publishing that alert now (docs/alerts.md,
//! "Once per price change").

use std::collections::{BTreeMap, HashMap};

use crate::adapters::dynamodb::{PutOutcome, batch_put, transact_puts};
use crate::adapters::retry::RetryPolicy;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Duration, Utc};

use realty_alerts::feed::AlertFeedItem;

use realty_alerts::ports::{AlertClaimStore, Claim};
use realty_model::ports::CLAIM_LEASE_ATTRIBUTE;
use realty_model::ports::PortError;

/// A claim, and the feed item that marks it, are kept at least this long. Far longer than
/// any re-delivery: DynamoDB streams keep records 24 hours, and the trigger gives up on a
/// record after an hour (`MaximumRecordAgeInSeconds`). Feed items are kept longer anyway (30
/// days from the alert's `observed_at`), unless the alert was observed long ago.
pub const ALERT_RECORD_TTL_DAYS: i64 = 7;
/// How long one claim or mark call re-sends its failed part: short, since the alerts
/// workflow re-tries a failed mark itself until just before the invocation's deadline, and
/// one call re-trying for the default 20 s could run past it with alerts published and
/// unmarked.
pub const CALL_RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);

const PENDING: &str = "pending";
const PUBLISHED: &str = "published";

/// A claim is taken when the key is new, or pending with a lease that has run out.
pub const CLAIM_CONDITION: &str = "attribute_not_exists(pk) OR (#state = :pending AND \
     (attribute_not_exists(#lease) OR #lease < :now))";

#[derive(Debug, Clone)]
pub struct DynamoAlertClaimStore {
    pub client: Client,
    /// The market table, whose `alerts#<market>` partitions hold the feed.
    pub table: String,
    pub ttl: Duration,
    /// How long the failed part of a claim or mark call is re-sent.
    pub retry: RetryPolicy,
}

impl DynamoAlertClaimStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            ttl: Duration::days(ALERT_RECORD_TTL_DAYS),
            retry: RetryPolicy {
                deadline: CALL_RETRY_WINDOW,
                ..RetryPolicy::default()
            },
        }
    }

    /// When the item of `alert` may expire: the feed's time, or later when that would not
    /// outlive every re-delivery.
    fn expires_at(&self, alert: &AlertFeedItem, now: DateTime<Utc>) -> i64 {
        alert.expires_at.max((now + self.ttl).timestamp())
    }

    /// The conditional put that claims `alert`'s key, asking for the item it finds when it
    /// fails (which says whether the alert is published or held, without a read).
    fn claim_put(
        &self,
        alert: &AlertFeedItem,
        token: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, PortError> {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(alert.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(alert.sk.clone())),
            ("state".to_owned(), AttributeValue::S(PENDING.to_owned())),
            ("token".to_owned(), AttributeValue::S(token.to_owned())),
            (
                CLAIM_LEASE_ATTRIBUTE.to_owned(),
                AttributeValue::N(lease_until.timestamp_millis().to_string()),
            ),
            ("updated_at".to_owned(), AttributeValue::S(now.to_rfc3339())),
            (
                "expires_at".to_owned(),
                AttributeValue::N(self.expires_at(alert, now).to_string()),
            ),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lease", CLAIM_LEASE_ATTRIBUTE)
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

    /// The feed item of a published alert, over its claim.
    fn published_item(
        &self,
        alert: &AlertFeedItem,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, AttributeValue>, PortError> {
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(alert)
            .map_err(|e| PortError::new("encode alert feed item", e.to_string()))?;
        item.insert("state".to_owned(), AttributeValue::S(PUBLISHED.to_owned()));
        item.insert(
            "expires_at".to_owned(),
            AttributeValue::N(self.expires_at(alert, now).to_string()),
        );
        Ok(item)
    }
}

impl AlertClaimStore for DynamoAlertClaimStore {
    async fn claim_all(
        &self,
        alerts: &[&AlertFeedItem],
        token: &str,
        lease_until: DateTime<Utc>,
    ) -> Vec<Result<Claim, PortError>> {
        // A transaction may not touch an item twice (DynamoDB refuses the whole call): a key
        // given again is the same alert, answered after its first copy.
        let mut first_of: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut sent: Vec<usize> = Vec::with_capacity(alerts.len());
        let mut answers: Vec<Option<Result<Claim, PortError>>> = vec![None; alerts.len()];
        let now = Utc::now();
        let mut actions = Vec::with_capacity(alerts.len());
        for (i, alert) in alerts.iter().enumerate() {
            match first_of.entry((alert.pk.as_str(), alert.sk.as_str())) {
                std::collections::btree_map::Entry::Occupied(first) => {
                    copies.push((i, *first.get()));
                    continue;
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
            match self.claim_put(alert, token, lease_until, now) {
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
                PutOutcome::Lost(seen) => held_or_published(seen.as_ref(), token),
            }));
        }
        // A copy is published with its first, once: acquired there, skipped here. Answered
        // as held (as it was), it failed its record, and every delivery of it again, until
        // the record expired.
        for (copy, first) in copies {
            answers[copy] = match &answers[first] {
                Some(Ok(Claim::Acquired)) => Some(Ok(Claim::AlreadyPublished)),
                answer => answer.clone(),
            };
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(PortError::new("TransactWriteItems", "no answer"))))
            .collect()
    }

    async fn mark_published(&self, alerts: &[&AlertFeedItem]) -> Result<(), PortError> {
        // Plain puts, in any order: one BatchWriteItem may not name a key twice (equal keys
        // are the same alert, or an FNV collision within one market, type and second).
        let now = Utc::now();
        let distinct: BTreeMap<(&str, &str), &AlertFeedItem> = alerts
            .iter()
            .map(|alert| ((alert.pk.as_str(), alert.sk.as_str()), *alert))
            .collect();
        let items = distinct
            .into_values()
            .map(|alert| self.published_item(alert, now))
            .collect::<Result<Vec<_>, _>>()?;
        batch_put(&self.client, &self.table, items, self.retry)
            .await
            .map(|_| ())
    }

    async fn release(&self, alert: &AlertFeedItem, token: &str) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(alert.pk.clone()))
            .key("sk", AttributeValue::S(alert.sk.clone()))
            // Only our own pending claim: never a published alert, never another claim.
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
fn held_or_published(item: Option<&HashMap<String, AttributeValue>>, token: &str) -> Claim {
    let text = |name: &str| item.and_then(|i| i.get(name)).and_then(|v| v.as_s().ok());
    // Our own claim: the SDK sent the transaction again after its first attempt landed with
    // no answer (a 500, a reset connection), and the retry lost its condition to it. Taken
    // as held, it failed the record at once, and so did every re-delivery within the lease,
    // which could use up the stream's retries and lose the alerts.
    if text("state").map(String::as_str) == Some(PENDING)
        && text("token").map(String::as_str) == Some(token)
    {
        return Claim::Acquired;
    }
    // Published; or a feed item written before claims lived in the feed (a body, no state).
    if text("state").map(String::as_str) == Some(PUBLISHED)
        || (text("state").is_none() && text("body").is_some())
    {
        return Claim::AlreadyPublished;
    }
    let lease = item
        .and_then(|i| i.get(CLAIM_LEASE_ATTRIBUTE))
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

    use realty_alerts::feed::{feed_key, feed_sort_key};
    use realty_alerts::message::MAX_MESSAGE_BYTES;
    use realty_alerts::rules::AlertKind;

    use crate::adapters::dynamodb::WRITE_BATCH;

    use super::*;

    fn lease() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000).expect("time")
    }

    fn store(client: Client) -> DynamoAlertClaimStore {
        let mut store = DynamoAlertClaimStore::new(client, "t");
        store.retry = RetryPolicy::immediate(std::time::Duration::from_secs(5));
        store
    }

    /// Alert `n`: a price drop in Nashville observed a day ago.
    fn alert(n: usize) -> AlertFeedItem {
        let observed_at = Utc::now() - Duration::days(1);
        let alert_id = format!("alert#price_drop#zillow:{n}#2");
        AlertFeedItem {
            pk: feed_key("nashville-tn"),
            sk: feed_sort_key("price_drop", observed_at, &alert_id),
            alert_type: AlertKind::PriceDrop,
            observed_at,
            body: format!("{{\"alert_id\":\"{alert_id}\"}}"),
            expires_at: (observed_at + Duration::days(30)).timestamp(),
        }
    }

    fn keys(n: usize) -> Vec<AlertFeedItem> {
        (0..n).map(alert).collect()
    }

    fn refs(alerts: &[AlertFeedItem]) -> Vec<&AlertFeedItem> {
        alerts.iter().collect()
    }

    /// The sort keys a transaction claims.
    fn claimed_keys(r: &TransactWriteItemsInput) -> Vec<String> {
        r.transact_items()
            .iter()
            .filter_map(|a| a.put()?.item().get("sk")?.as_s().ok().cloned())
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

    /// Days from now to an item's `expires_at`.
    fn expires_in_days(item: &HashMap<String, AttributeValue>) -> Option<f64> {
        let t: i64 = item.get("expires_at")?.as_n().ok()?.parse().ok()?;
        Some((t - Utc::now().timestamp()) as f64 / 86_400.0)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_claim_is_conditional_at_the_feed_key_without_the_body_and_expires() {
        let fresh = alert(0);
        // Observed 40 days ago (a replay of an old event): its feed time has passed.
        let mut old = alert(1);
        old.observed_at -= Duration::days(39);
        old.expires_at -= 39 * 86_400;
        let sk_old = old.sk.clone();
        let put = mock!(Client::transact_write_items)
            .match_requests(move |r| {
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
                    && item.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str)
                        == Some("alerts#nashville-tn")
                    && !item.contains_key("body")
                    // The feed's own time (30 days from a day ago) when it is later than a
                    // week, else a week.
                    && expires_in_days(item).is_some_and(|days| {
                        let sk = item.get("sk").and_then(|v| v.as_s().ok());
                        if sk == Some(&sk_old) {
                            (6.99..=7.01).contains(&days)
                        } else {
                            (28.99..=29.01).contains(&days)
                        }
                    })
            })
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let store = store(client);
        assert_eq!(
            store.claim(&fresh, "tok", lease()).await,
            Ok(Claim::Acquired)
        );
        assert_eq!(store.claim(&old, "tok", lease()).await, Ok(Claim::Acquired));
        assert_eq!(put.num_calls(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_feed_item_written_before_claims_counts_as_published() {
        let put = mock!(Client::transact_write_items).then_error(|| {
            cancelled(vec![
                CancellationReason::builder()
                    .code("ConditionalCheckFailed")
                    .item("body", AttributeValue::S("{}".into()))
                    .build(),
            ])
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        assert_eq!(
            store(client).claim(&alert(0), "tok", lease()).await,
            Ok(Claim::AlreadyPublished)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_published_alert_cannot_be_claimed() {
        let put = mock!(Client::transact_write_items)
            .then_error(|| cancelled(vec![lost_to("published", 1)]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        assert_eq!(
            store(client).claim(&alert(0), "tok", lease()).await,
            Ok(Claim::AlreadyPublished)
        );
        assert_eq!(put.num_calls(), 1, "a lost condition is not sent again");
    }

    /// The SDK's retry of a transaction whose first attempt landed unanswered finds this
    /// invocation's own pending claim: acquired, not held by another.
    #[tokio::test(flavor = "current_thread")]
    async fn our_own_claim_found_by_a_retried_call_is_acquired() {
        let own = |token: &str| {
            let token = token.to_owned();
            mock!(Client::transact_write_items).then_error(move || {
                cancelled(vec![
                    CancellationReason::builder()
                        .code("ConditionalCheckFailed")
                        .item("state", AttributeValue::S("pending".into()))
                        .item("token", AttributeValue::S(token.clone()))
                        .item("lease_until", AttributeValue::N("1800000000000".into()))
                        .build(),
                ])
            })
        };
        let ours = own("tok");
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&ours]);
        assert_eq!(
            store(client).claim(&alert(0), "tok", lease()).await,
            Ok(Claim::Acquired)
        );
        // Another invocation's claim stays held.
        let theirs = own("other");
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&theirs]);
        assert_eq!(
            store(client).claim(&alert(0), "tok", lease()).await,
            Ok(Claim::HeldUntil(lease()))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_live_lease_is_reported_with_its_end() {
        let put = mock!(Client::transact_write_items)
            .then_error(|| cancelled(vec![lost_to("pending", 1_800_000_000_000)]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        assert_eq!(
            store(client).claim(&alert(0), "tok", lease()).await,
            Ok(Claim::HeldUntil(lease()))
        );
        // A store that does not say what it saw: held (never skipped, never published twice).
        let put = mock!(Client::transact_write_items)
            .then_error(|| cancelled(vec![reason("ConditionalCheckFailed")]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        assert!(matches!(
            store(client).claim(&alert(0), "tok", lease()).await,
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
            .claim(&alert(0), "tok", lease())
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
            let claims = store(client).claim_all(&refs(&keys), "tok", lease()).await;
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
        let expected: Vec<String> = [0, 2, 3].iter().map(|&i| keys[i].sk.clone()).collect();
        let again = mock!(Client::transact_write_items)
            .match_requests(move |r| claimed_keys(r) == expected)
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &again]);
        let claims = store(client).claim_all(&refs(&keys), "tok", lease()).await;
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
        let claims = store(client).claim_all(&refs(&keys), "tok", lease()).await;
        assert!(claims[..100].iter().all(|c| *c == Ok(Claim::Acquired)));
        assert!(
            matches!(&claims[100], Err(e) if e.message.contains("slow down")),
            "{:?}",
            claims[100]
        );
    }

    /// A key given twice is the same alert: claimed once, its copy skipped (published with
    /// the first), never answered as held by another invocation, which failed its record
    /// at every delivery.
    #[tokio::test(flavor = "current_thread")]
    async fn a_key_given_twice_is_claimed_once() {
        let (a, b) = (alert(0), alert(1));
        let expected = vec![a.sk.clone(), b.sk.clone()];
        let put = mock!(Client::transact_write_items)
            .match_requests(move |r| claimed_keys(r) == expected)
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let claims = store(client).claim_all(&[&a, &b, &a], "tok", lease()).await;
        assert_eq!(
            claims,
            vec![
                Ok(Claim::Acquired),
                Ok(Claim::Acquired),
                Ok(Claim::AlreadyPublished)
            ]
        );
        assert_eq!(put.num_calls(), 1);
    }

    /// The sort keys of the feed items a call writes as published (with their body, without
    /// a lease).
    fn marked_keys(r: &BatchWriteItemInput) -> Vec<String> {
        r.request_items()
            .and_then(|items| items.get("t"))
            .map(|requests| {
                requests
                    .iter()
                    .filter_map(|w| {
                        let item = w.put_request()?.item();
                        (item.get("state")?.as_s().ok()? == PUBLISHED
                            && item.contains_key("body")
                            && !item.contains_key(CLAIM_LEASE_ATTRIBUTE))
                        .then(|| item.get("sk")?.as_s().ok().cloned())?
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
        assert_eq!(store(client).mark_published(&refs(&keys)).await, Ok(()));
        let mut sizes: Vec<usize> = calls.lock().expect("lock").iter().map(Vec::len).collect();
        sizes.sort_unstable();
        // 25 and 1, then the one unprocessed item alone (its key carries no state: 0).
        assert_eq!(sizes, vec![0, 1, 25]);
        let mut marked: Vec<String> = calls.lock().expect("lock").concat();
        marked.sort();
        let mut expected: Vec<String> = keys.iter().map(|k| k.sk.clone()).collect();
        expected.sort();
        assert_eq!(marked, expected, "each key marked published once");
    }

    fn all_written() -> BatchWriteItemOutput {
        BatchWriteItemOutput::builder()
            .set_unprocessed_items(Some(HashMap::new()))
            .build()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn marks_left_unprocessed_until_the_retry_window_ends_fail_the_mark() {
        let stuck = mock!(Client::batch_write_item).then_compute_output(|r| {
            BatchWriteItemOutput::builder()
                .unprocessed_items(
                    "t",
                    r.request_items()
                        .and_then(|m| m.get("t"))
                        .cloned()
                        .unwrap_or_default(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&stuck]);
        let mut store = store(client);
        store.retry = RetryPolicy::immediate(std::time::Duration::ZERO);
        let error = store
            .mark_published(&[&alert(0)])
            .await
            .expect_err("never written");
        assert!(error.message.contains("1 items unwritten"), "{error}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_mark_call_takes_25_of_the_largest_alerts_and_the_26th_goes_in_the_next() {
        for (count, calls) in [
            (WRITE_BATCH, vec![WRITE_BATCH]),
            (WRITE_BATCH + 1, vec![WRITE_BATCH, 1]),
        ] {
            let sizes = Arc::new(Mutex::new(Vec::new()));
            let write = mock!(Client::batch_write_item).then_compute_output({
                let sizes = sizes.clone();
                move |r| {
                    sizes.lock().expect("lock").push(marked_keys(r).len());
                    all_written()
                }
            });
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&write]);
            // Bodies of a whole SNS message, the largest a published alert has: 25 of them
            // are still one call, under BatchWriteItem's 16 MB.
            let alerts: Vec<AlertFeedItem> = (0..count)
                .map(|n| AlertFeedItem {
                    body: "b".repeat(MAX_MESSAGE_BYTES),
                    ..alert(n)
                })
                .collect();
            store(client)
                .mark_published(&refs(&alerts))
                .await
                .expect("all written");
            let mut seen = sizes.lock().expect("lock").clone();
            seen.sort_unstable_by(|a, b| b.cmp(a));
            assert_eq!(seen, calls, "{count} alerts");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_alert_marked_twice_in_one_call_is_written_once() {
        let write = mock!(Client::batch_write_item)
            .match_requests(|r| marked_keys(r).len() == 1)
            .then_output(all_written);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&write]);
        let twice = alert(7);
        store(client)
            .mark_published(&[&twice, &twice])
            .await
            .expect("written");
        assert_eq!(write.num_calls(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn release_deletes_only_its_own_pending_claim() {
        let mine = alert(0);
        let (pk, sk) = (mine.pk.clone(), mine.sk.clone());
        let delete = mock!(Client::delete_item)
            .match_requests(move |r| {
                r.key().and_then(|k| k.get("pk")?.as_s().ok()) == Some(&pk)
                    && r.key().and_then(|k| k.get("sk")?.as_s().ok()) == Some(&sk)
                    && r.condition_expression() == Some("#state = :pending AND #token = :token")
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
        assert_eq!(store.release(&mine, "tok").await, Ok(()));
        // Published meanwhile, or taken over: nothing of ours to release, not an error.
        assert_eq!(store.release(&mine, "tok").await, Ok(()));
        assert_eq!((delete.num_calls(), gone.num_calls()), (1, 1));
    }
}
