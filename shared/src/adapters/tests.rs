//! Partial failures injected into the SDK clients (aws-smithy-mocks): only the failed part
//! is re-sent, and what never goes through is reported.

use std::collections::HashMap;
use std::time::Duration;

use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::dynamodb::DynamoMarketStore;
use super::firehose::{FirehoseArchive, chunk_lines};
use super::retry::RetryPolicy;
use super::sqs::SqsPoisonSink;
use crate::metrics::ports::{
    EventArchive, MarketStore, Period, PoisonRecord, PoisonSink, Snapshot,
};

fn fast() -> RetryPolicy {
    RetryPolicy::immediate(Duration::from_secs(5))
}

#[tokio::test(flavor = "current_thread")]
async fn firehose_resends_only_the_failed_records() {
    use aws_sdk_firehose::Client;
    use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
    use aws_sdk_firehose::types::PutRecordBatchResponseEntry as Entry;

    let first = mock!(Client::put_record_batch)
        .match_requests(|r| r.records().len() == 3)
        .then_output(|| {
            PutRecordBatchOutput::builder()
                .failed_put_count(1)
                .request_responses(Entry::builder().record_id("a").build())
                .request_responses(
                    Entry::builder()
                        .error_code("ServiceUnavailableException")
                        .error_message("slow down")
                        .build(),
                )
                .request_responses(Entry::builder().record_id("c").build())
                .build()
                .expect("output")
        });
    let retry = mock!(Client::put_record_batch)
        .match_requests(|r| {
            r.records().len() == 1 && r.records()[0].data().as_ref() == b"{\"n\":2}\n"
        })
        .then_output(|| {
            PutRecordBatchOutput::builder()
                .failed_put_count(0)
                .request_responses(Entry::builder().record_id("b").build())
                .build()
                .expect("output")
        });
    let client = mock_client!(aws_sdk_firehose, RuleMode::Sequential, [&first, &retry]);
    let archive = FirehoseArchive {
        client,
        delivery_stream: "s".into(),
        retry: fast(),
    };
    let lines: Vec<Vec<u8>> = (1..=3)
        .map(|n| format!("{{\"n\":{n}}}\n").into_bytes())
        .collect();
    archive.put_lines(&lines).await.expect("every record lands");
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn firehose_reports_records_that_never_go_through() {
    use aws_sdk_firehose::Client;
    use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
    use aws_sdk_firehose::types::PutRecordBatchResponseEntry as Entry;

    let always_failing = mock!(Client::put_record_batch)
        .sequence()
        .output(|| {
            PutRecordBatchOutput::builder()
                .failed_put_count(1)
                .request_responses(Entry::builder().error_code("InternalFailure").build())
                .build()
                .expect("output")
        })
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_firehose, [&always_failing]);
    let archive = FirehoseArchive {
        client,
        delivery_stream: "s".into(),
        retry: RetryPolicy::immediate(Duration::from_millis(50)),
    };
    let err = archive
        .put_lines(&[b"{}\n".to_vec()])
        .await
        .expect_err("reported, not dropped");
    assert!(
        err.message.contains("1 records undelivered") && err.message.contains("InternalFailure"),
        "{err}"
    );
}

#[test]
fn firehose_calls_stay_within_500_records_and_4_mib() {
    let lines = vec![vec![b'x'; 10]; 1_201];
    let sizes: Vec<usize> = chunk_lines(&lines).iter().map(|c| c.len()).collect();
    assert_eq!(sizes, [500, 500, 201]);
    let big = vec![vec![b'x'; 1_000_000]; 9];
    let chunks = chunk_lines(&big);
    assert!(
        chunks
            .iter()
            .all(|c| c.iter().map(Vec::len).sum::<usize>() <= 4 * 1024 * 1024)
    );
    assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 9);
}

#[tokio::test(flavor = "current_thread")]
async fn dynamodb_batch_write_resends_unprocessed_items() {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;

    let snapshots: Vec<Snapshot> = (0..3)
        .map(|d| Snapshot {
            scope_key: "city#nashville-tn#all".into(),
            period: Period::Day(chrono::NaiveDate::from_ymd_opt(2024, 10, 1 + d).expect("date")),
            figures: Default::default(),
        })
        .collect();
    let first = mock!(Client::batch_write_item)
        .match_requests(|r| r.request_items().is_some_and(|m| m["t"].len() == 3))
        .then_compute_output(|req| {
            // Leave the last request unprocessed, as DynamoDB does under throttling.
            let last = req.request_items().expect("items")["t"][2].clone();
            BatchWriteItemOutput::builder()
                .unprocessed_items("t", vec![last])
                .build()
        });
    let retry = mock!(Client::batch_write_item)
        .match_requests(|r| {
            r.request_items().is_some_and(|m| {
                m["t"].len() == 1
                    && m["t"][0]
                        .put_request()
                        .and_then(|p| p.item().get("sk"))
                        .and_then(|v| v.as_s().ok())
                        .map(String::as_str)
                        == Some("D#2024-10-03")
            })
        })
        .then_output(|| {
            BatchWriteItemOutput::builder()
                .set_unprocessed_items(Some(HashMap::new()))
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &retry]);
    let store = DynamoMarketStore {
        client,
        table: "t".into(),
        retry: fast(),
    };
    store
        .put_snapshots(&snapshots)
        .await
        .expect("every item written");
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn sqs_resends_only_the_failed_messages() {
    use aws_sdk_sqs::Client;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};

    let poison: Vec<PoisonRecord> = (0..2)
        .map(|i| PoisonRecord {
            shard: "shardId-000000000000".into(),
            sequence_number: i.to_string(),
            reason_kind: "malformed".into(),
            reason: "not JSON".into(),
            data_bytes: 3,
            data_prefix: "abc".into(),
        })
        .collect();
    let first = mock!(Client::send_message_batch)
        .match_requests(|r| r.entries().len() == 2)
        .then_output(|| {
            SendMessageBatchOutput::builder()
                .successful(
                    SendMessageBatchResultEntry::builder()
                        .id("0")
                        .message_id("m0")
                        .md5_of_message_body("x")
                        .build()
                        .expect("entry"),
                )
                .failed(
                    BatchResultErrorEntry::builder()
                        .id("1")
                        .code("InternalError")
                        .sender_fault(false)
                        .build()
                        .expect("entry"),
                )
                .build()
                .expect("output")
        });
    let retry = mock!(Client::send_message_batch)
        .match_requests(|r| r.entries().len() == 1 && r.entries()[0].id() == "1")
        .then_output(|| {
            SendMessageBatchOutput::builder()
                .set_successful(Some(vec![]))
                .set_failed(Some(vec![]))
                .build()
                .expect("output")
        });
    let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, [&first, &retry]);
    let sink = SqsPoisonSink {
        client,
        queue_url: "q".into(),
        retry: fast(),
    };
    sink.send(&poison).await.expect("every message sent");
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
}

mod kinesis_partial_failures {
    use super::*;
    use crate::adapters::kinesis::{KinesisPublisher, chunk_by_limits};
    use crate::listing::ListingEvent;
    use crate::poller::ports::EventPublisher;
    use aws_sdk_kinesis::Client;
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::PutRecordsResultEntry as Entry;

    fn events(n: usize) -> Vec<ListingEvent> {
        let page = include_bytes!(
            "../../tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        );
        let at = chrono::Utc::now();
        crate::sources::normalize_file(crate::sources::SourceKind::Zillow, page, at)
            .expect("fixture")
            .listings
            .into_iter()
            .take(n)
            .map(|l| ListingEvent::new_listing(l, "poll-test"))
            .collect()
    }

    fn ok(seq: &str) -> Entry {
        Entry::builder()
            .sequence_number(seq)
            .shard_id("shardId-000000000000")
            .build()
    }

    fn throttled() -> Entry {
        Entry::builder()
            .error_code("ProvisionedThroughputExceededException")
            .error_message("Rate exceeded for shard")
            .build()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn only_failed_records_are_resent_and_each_lands_once() {
        let events = events(4);
        let keys: Vec<String> = events
            .iter()
            .map(|e| e.partition_key().to_owned())
            .collect();
        let (k1, k3) = (keys[1].clone(), keys[3].clone());
        let first = mock!(Client::put_records)
            .match_requests(|r| r.records().len() == 4)
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(2)
                    .records(ok("1"))
                    .records(throttled())
                    .records(ok("3"))
                    .records(Entry::builder().error_code("InternalFailure").build())
                    .build()
                    .expect("output")
            });
        let retry = mock!(Client::put_records)
            .match_requests(move |r| {
                let sent: Vec<&str> = r
                    .records()
                    .iter()
                    .filter_map(|e| e.partition_key())
                    .collect();
                sent == [k1.as_str(), k3.as_str()]
            })
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(0)
                    .records(ok("5"))
                    .records(ok("6"))
                    .build()
                    .expect("output")
            });
        let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&first, &retry]);
        let publisher = KinesisPublisher {
            client,
            stream: "s".into(),
            retry: fast(),
        };
        let failures = publisher.publish(&events).await.expect("publish");
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn records_that_never_go_through_are_reported_by_index() {
        let events = events(3);
        let always = mock!(Client::put_records)
            .sequence()
            .output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(1)
                    .records(ok("1"))
                    .records(throttled())
                    .records(ok("3"))
                    .build()
                    .expect("output")
            })
            .output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(1)
                    .records(throttled())
                    .build()
                    .expect("output")
            })
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_kinesis, [&always]);
        let publisher = KinesisPublisher {
            client,
            stream: "s".into(),
            retry: RetryPolicy::immediate(Duration::from_millis(50)),
        };
        let failures = publisher.publish(&events).await.expect("publish");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 1);
        assert!(failures[0].error.contains("ProvisionedThroughputExceeded"));
    }

    #[test]
    fn calls_stay_within_500_records_and_5_mib() {
        assert_eq!(
            chunk_by_limits(&[100; 1_001])
                .iter()
                .map(|r| r.len())
                .collect::<Vec<_>>(),
            [500, 500, 1]
        );
        let big = chunk_by_limits(&[1_000_000; 12]);
        assert!(big.iter().all(|r| r.len() * 1_000_000 <= 5 * 1024 * 1024));
        assert_eq!(big.iter().map(|r| r.len()).sum::<usize>(), 12);
    }
}
