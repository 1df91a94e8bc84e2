//! The alerts' error sink: alerts that can never be published (too large for SNS, refused
//! by it), one SQS message each with its short reason, in the stack's error queue (the
//! `PoisonRecordQueue`, which the metrics function's poison records share), sent by the
//! same bounded sender as those ([`SqsPoisonSink::send_messages`]).

use super::sqs::{MAX_MESSAGE_BYTES, Message, SqsPoisonSink, body_of};
use realty_alerts::message::MAX_SINK_FIELD_BYTES;
use realty_alerts::ports::{AlertErrorSink, RejectedAlert};
use realty_model::ports::PortError;

/// A rejected alert's message: four fields of at most [`MAX_SINK_FIELD_BYTES`] (each
/// JSON-escaped at most 6 times over), the short ones and the JSON around them. Below the
/// sender's [`MAX_MESSAGE_BYTES`], so ten always fit one call.
pub const MAX_SINK_ENTRY_BYTES: usize = 4 * 6 * MAX_SINK_FIELD_BYTES + 1_024;
const _: () = assert!(MAX_SINK_ENTRY_BYTES <= MAX_MESSAGE_BYTES);

impl AlertErrorSink for SqsPoisonSink {
    async fn send(&self, rejected: &[RejectedAlert]) -> Result<(), PortError> {
        let messages = rejected
            .iter()
            .enumerate()
            .map(|(i, r)| Message {
                id: i.to_string(),
                body: body_of(r),
                metadata_only: None,
            })
            .collect();
        self.send_messages(messages, "rejected alerts").await
    }
}

#[cfg(test)]
mod alert_sink_tests {
    use std::time::Duration;

    use aws_sdk_sqs::Client;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::adapters::retry::RetryPolicy;
    use crate::adapters::sqs::tests::{accepted, one_failed};

    fn rejected(n: usize, reason_bytes: usize) -> Vec<RejectedAlert> {
        (0..n)
            .map(|i| RejectedAlert {
                function: "alerts",
                alert_id: format!("alert#price_drop#zillow:{i}#2"),
                alert_type: "price_drop",
                listing_id: format!("zillow:{i}"),
                sequence_number: format!("{}", 100 + i),
                reason_kind: "message_too_large",
                reason: "\u{1}".repeat(reason_bytes),
                message_bytes: 262_145,
            })
            .collect()
    }

    fn sink(client: Client) -> SqsPoisonSink {
        SqsPoisonSink {
            client,
            queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/poison".into(),
            retry: RetryPolicy::immediate(Duration::from_secs(5)),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn characters_sqs_refuses_are_escaped() {
        let mut entry = rejected(1, 10).remove(0);
        entry.listing_id = "zillow:\u{FFFE}\u{FFFF}".into();
        let escaped = mock!(Client::send_message_batch)
            .match_requests(|r| {
                let body = r.entries()[0].message_body();
                !body.contains(['\u{FFFE}', '\u{FFFF}'])
                    && serde_json::from_str::<serde_json::Value>(body)
                        .is_ok_and(|v| v["listing_id"] == "zillow:\u{FFFE}\u{FFFF}")
            })
            .then_compute_output(accepted);
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&escaped]);
        sink(client).send(&[entry]).await.expect("sent");
        assert_eq!(escaped.num_calls(), 1);
    }

    #[test]
    fn the_largest_entry_fits_the_sender() {
        // Every free-text field at its bound, all escaped six times over.
        let mut worst = rejected(1, MAX_SINK_FIELD_BYTES).remove(0);
        worst.alert_id = "\u{1}".repeat(MAX_SINK_FIELD_BYTES);
        worst.listing_id = "\u{1}".repeat(MAX_SINK_FIELD_BYTES);
        worst.sequence_number = "\u{1}".repeat(MAX_SINK_FIELD_BYTES);
        let body = serde_json::to_string(&worst).expect("json");
        assert!(body.len() <= MAX_SINK_ENTRY_BYTES, "{}", body.len());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn only_the_failed_entries_are_sent_again() {
        let first = mock!(Client::send_message_batch)
            .match_requests(|r| r.entries().len() == 3)
            .then_compute_output(|input| one_failed(input, "1", "InternalError", false));
        let retry = mock!(Client::send_message_batch)
            .match_requests(|r| {
                r.entries().len() == 1
                    && r.entries()[0].id() == "1"
                    && r.entries()[0].message_body().contains("zillow:1#2")
            })
            .then_compute_output(accepted);
        let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, [&first, &retry]);
        sink(client).send(&rejected(3, 40)).await.expect("sent");
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn calls_hold_ten_entries() {
        let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let counting = mock!(Client::send_message_batch).then_compute_output(move |r| {
            seen.lock().expect("lock").push(r.entries().len());
            accepted(r)
        });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&counting]);
        sink(client)
            .send(&rejected(23, MAX_SINK_FIELD_BYTES))
            .await
            .expect("sent");
        assert_eq!(*sizes.lock().expect("lock"), vec![10, 10, 3]);
    }
}
