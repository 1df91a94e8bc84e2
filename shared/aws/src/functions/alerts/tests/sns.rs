//! SNS partial failures through the handler (aws-smithy-mocks).

use aws_sdk_sns::Client;
use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::*;
use crate::adapters::retry::RetryPolicy;
use crate::adapters::sns::SnsAlertPublisher;

/// PublishBatch where entries whose body names `failing` fail (retryable) every time.
fn topic(failing: Option<&'static str>) -> (Client, aws_smithy_mocks::Rule) {
    let rule = mock!(Client::publish_batch).then_compute_output(move |r| {
        let mut out = PublishBatchOutput::builder();
        for e in r.publish_batch_request_entries() {
            out = if failing.is_some_and(|f| e.message().contains(f)) {
                out.failed(
                    BatchResultErrorEntry::builder()
                        .id(e.id())
                        .code("InternalError")
                        .sender_fault(false)
                        .build()
                        .expect("entry"),
                )
            } else {
                out.successful(
                    PublishBatchResultEntry::builder()
                        .id(e.id())
                        .message_id("m")
                        .build(),
                )
            };
        }
        out.build()
    });
    let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule]);
    (client, rule)
}

async fn deliver(world: &World, client: Client, event: Event) -> (Vec<String>, AlertOutcome) {
    let publisher = SnsAlertPublisher {
        client,
        topic_arn: "arn:aws:sns:us-east-1:123456789012:alerts".into(),
        retry: RetryPolicy::immediate(Duration::from_millis(50)),
        call_overrun: crate::adapters::sns::CALL_OVERRUN,
    };
    let ports = AlertPorts {
        idempotency: &world.idempotency,
        medians: &world.medians,
        publisher: &publisher,
        sink: &world.sink,
    };
    let (response, outcome) = handle_event(&ports, &AlertThresholds::default(), event).await;
    (failed_from(&response), outcome)
}

#[tokio::test(flavor = "current_thread")]
async fn a_persistent_publish_failure_becomes_a_batch_item_failure() {
    let world = World::default();
    let event = batch();
    let (client, rule) = topic(Some("\"listing_id\":\"zillow:3\""));
    let (failed, outcome) = deliver(&world, client, event.clone()).await;
    assert_eq!(failed, ["300"]);
    assert_eq!((outcome.stats.published, outcome.stats.unpublished), (2, 2));
    assert!(outcome.stats.publish_retries >= 1, "{:?}", outcome.stats);
    assert!(rule.num_calls() >= 2);
    assert!(
        world
            .idempotency
            .states()
            .keys()
            .all(|k| !k.contains("zillow:3"))
    );

    // Re-delivered from record 300 once SNS recovers: only zillow:3's two alerts go out.
    let (client, rule) = topic(None);
    let (failed, outcome) = deliver(&world, client, from_sequence(&event, "300")).await;
    assert!(failed.is_empty());
    assert_eq!(
        (outcome.stats.published, outcome.stats.already_published),
        (2, 1)
    );
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(world.idempotency.states().len(), 4);
}
