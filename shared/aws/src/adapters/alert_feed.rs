//! The alert feed in the market table: one item per published alert under `alerts#<market>`
//! ([`realty_core::alerts::feed`]), written with BatchWriteItem (at most 25 items and 16 MB a
//! call; only `UnprocessedItems` re-sent, with the project's backoff). The function's policy
//! lets it write no other partition of the table (`dynamodb:LeadingKeys` `alerts#*`).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::dynamodb::batch_put;
use super::retry::RetryPolicy;
use realty_core::alerts::feed::AlertFeedItem;
use realty_core::alerts::ports::AlertFeed;
use realty_core::ports::PortError;

#[derive(Debug, Clone)]
pub struct DynamoAlertFeed {
    pub client: Client,
    /// The market table.
    pub table: String,
    pub retry: RetryPolicy,
}

impl AlertFeed for DynamoAlertFeed {
    async fn record(&self, items: &[AlertFeedItem]) -> Result<(), PortError> {
        // One item per key: DynamoDB refuses a call naming a key twice. Equal keys are the
        // same alert (or an FNV collision within one market, type and second).
        let by_key: BTreeMap<(&str, &str), &AlertFeedItem> = items
            .iter()
            .map(|item| ((item.pk.as_str(), item.sk.as_str()), item))
            .collect();
        let encoded = by_key
            .into_values()
            .map(|item| {
                serde_dynamo::to_item(item)
                    .map_err(|e| PortError::new("encode alert feed item", e.to_string()))
            })
            .collect::<Result<Vec<HashMap<String, AttributeValue>>, _>>()?;
        batch_put(&self.client, &self.table, encoded, self.retry)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_dynamodb::operation::batch_write_item::{
        BatchWriteItemInput, BatchWriteItemOutput,
    };
    use aws_sdk_dynamodb::types::WriteRequest;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use chrono::{TimeZone, Utc};
    use realty_core::alerts::feed::{feed_key, feed_sort_key};
    use realty_core::alerts::message::MAX_MESSAGE_BYTES;
    use realty_core::alerts::rules::AlertKind;

    use super::*;
    use crate::adapters::dynamodb::WRITE_BATCH;

    /// Alert `n` of the feed, with a body of `body_bytes` bytes.
    fn item(n: usize, body_bytes: usize) -> AlertFeedItem {
        let observed_at = Utc
            .with_ymd_and_hms(2026, 11, 21, 18, 0, 0)
            .single()
            .expect("a time");
        AlertFeedItem {
            pk: feed_key("nashville-tn"),
            sk: feed_sort_key("price_drop", observed_at, &format!("alert#{n}")),
            alert_type: AlertKind::PriceDrop,
            observed_at,
            body: "b".repeat(body_bytes),
            expires_at: observed_at.timestamp() + 30 * 86_400,
        }
    }

    fn feed(client: Client) -> DynamoAlertFeed {
        DynamoAlertFeed {
            client,
            table: "markets".into(),
            retry: RetryPolicy::immediate(Duration::from_secs(5)),
        }
    }

    fn requests(input: &BatchWriteItemInput) -> &[WriteRequest] {
        input
            .request_items()
            .and_then(|m| m.get("markets"))
            .map_or(&[], Vec::as_slice)
    }

    fn sort_keys(requests: &[WriteRequest]) -> Vec<String> {
        requests
            .iter()
            .filter_map(|r| r.put_request())
            .filter_map(|p| p.item().get("sk").and_then(|v| v.as_s().ok()).cloned())
            .collect()
    }

    fn all_written() -> BatchWriteItemOutput {
        BatchWriteItemOutput::builder()
            .set_unprocessed_items(Some(HashMap::new()))
            .build()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn only_the_unprocessed_items_are_sent_again() {
        let items: Vec<AlertFeedItem> = (0..4).map(|n| item(n, 100)).collect();
        let mut keys: Vec<String> = items.iter().map(|i| i.sk.clone()).collect();
        keys.sort();
        let left = [keys[1].clone(), keys[3].clone()];
        let first = mock!(Client::batch_write_item)
            .match_requests({
                let keys = keys.clone();
                move |r| {
                    let mut sent = sort_keys(requests(r));
                    sent.sort();
                    sent == keys
                }
            })
            .then_compute_output({
                let left = left.clone();
                move |r| {
                    // DynamoDB under throttling: two of the four not written.
                    let unprocessed: Vec<WriteRequest> = requests(r)
                        .iter()
                        .filter(|w| {
                            sort_keys(std::slice::from_ref(w))
                                .iter()
                                .any(|k| left.contains(k))
                        })
                        .cloned()
                        .collect();
                    BatchWriteItemOutput::builder()
                        .unprocessed_items("markets", unprocessed)
                        .build()
                }
            });
        let resend = mock!(Client::batch_write_item)
            .match_requests(move |r| {
                let mut sent = sort_keys(requests(r));
                sent.sort();
                sent == left
            })
            .then_output(all_written);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &resend]);
        feed(client).record(&items).await.expect("all written");
        assert_eq!((first.num_calls(), resend.num_calls()), (1, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn items_left_unprocessed_until_the_retry_window_ends_fail_the_write() {
        let stuck = mock!(Client::batch_write_item).then_compute_output(|r| {
            BatchWriteItemOutput::builder()
                .unprocessed_items("markets", requests(r).to_vec())
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&stuck]);
        let mut feed = feed(client);
        feed.retry = RetryPolicy::immediate(Duration::ZERO);
        let error = feed
            .record(&[item(0, 10)])
            .await
            .expect_err("never written");
        assert!(error.message.contains("1 items unwritten"), "{error}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_takes_25_items_and_the_26th_goes_in_the_next() {
        for (count, calls) in [
            (WRITE_BATCH, vec![WRITE_BATCH]),
            (WRITE_BATCH + 1, vec![WRITE_BATCH, 1]),
        ] {
            let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let write = mock!(Client::batch_write_item).then_compute_output({
                let sizes = sizes.clone();
                move |r| {
                    sizes.lock().expect("lock").push(requests(r).len());
                    all_written()
                }
            });
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&write]);
            // The largest items the feed can hold (bodies of a whole SNS message): 25 of them
            // are still one call, under the 16 MB.
            let items: Vec<AlertFeedItem> =
                (0..count).map(|n| item(n, MAX_MESSAGE_BYTES)).collect();
            feed(client).record(&items).await.expect("all written");
            let mut seen = sizes.lock().expect("lock").clone();
            seen.sort_unstable_by(|a, b| b.cmp(a));
            assert_eq!(seen, calls, "{count} items");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_alert_given_twice_is_written_once() {
        let write = mock!(Client::batch_write_item)
            .match_requests(|r| requests(r).len() == 1)
            .then_output(all_written);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&write]);
        feed(client)
            .record(&[item(7, 10), item(7, 10)])
            .await
            .expect("written");
        assert_eq!(write.num_calls(), 1);
    }
}
