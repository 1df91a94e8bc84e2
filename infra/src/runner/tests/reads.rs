//! Reading a table stream: records handed out again, shards listed again, lost iterators.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::SdkConfig;
use serde_json::json;

use super::helpers::{STREAM, alerts_mapping, fake_table_stream, pump_until_quiet, stream_record};

/// A DynamoDB stream as moto serves one after two concurrent writes took the same
/// sequence number: records 1, 2 and 3 carry 1, 2, 2, and the iterator after a page
/// ending on record 3 ("after sequence number 2") starts on that record again, forever.
fn moto_stream_with_a_shared_sequence_number() -> SdkConfig {
    fake_table_stream(|operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
        }),
        "GetShardIterator" => json!({ "ShardIterator": "from-1" }),
        "GetRecords" => match input["ShardIterator"].as_str() {
            Some("from-1") => json!({
                "Records": [
                    stream_record("r1", "1"),
                    stream_record("r2", "2"),
                    stream_record("r3", "2")
                ],
                "NextShardIterator": "from-3"
            }),
            _ => json!({ "Records": [stream_record("r3", "2")], "NextShardIterator": "from-3" }),
        },
        other => json!({ "message": format!("unexpected {other}") }),
    })
}

#[tokio::test]
async fn a_record_the_stream_hands_out_again_is_delivered_once_and_the_stream_goes_quiet() {
    let mut alerts = alerts_mapping(&moto_stream_with_a_shared_sequence_number()).await;
    pump_until_quiet(&mut alerts, 5).await;
    assert_eq!(*alerts.function().0.borrow(), ["r1", "r2", "r3"]);
    assert_eq!(alerts.stats.records_read, 3);
}

#[tokio::test]
async fn shards_are_listed_again_when_one_ends_not_before_every_read() {
    // shard-1 holds r1 and ends (a table stream's shard rolling over); its child shard-2,
    // listed from then on, holds r2 and stays open.
    let listings = Arc::new(AtomicUsize::new(0));
    let listed = listings.clone();
    let sdk = fake_table_stream(move |operation, input| match operation {
        "DescribeStream" => {
            let shards = if listed.fetch_add(1, Ordering::SeqCst) == 0 {
                json!([{ "ShardId": "shard-1" }])
            } else {
                json!([{ "ShardId": "shard-1" }, { "ShardId": "shard-2", "ParentShardId": "shard-1" }])
            };
            json!({ "StreamDescription": { "StreamArn": STREAM, "Shards": shards } })
        }
        "GetShardIterator" => json!({ "ShardIterator": input["ShardId"] }),
        "GetRecords" => match input["ShardIterator"].as_str() {
            Some("shard-1") => json!({ "Records": [stream_record("r1", "1")] }),
            Some("shard-2") => {
                json!({ "Records": [stream_record("r2", "2")], "NextShardIterator": "shard-2-end" })
            }
            _ => json!({ "Records": [], "NextShardIterator": "shard-2-end" }),
        },
        other => json!({ "message": format!("unexpected {other}") }),
    });
    let mut alerts = alerts_mapping(&sdk).await;
    for _ in 0..6 {
        alerts.pump(true).await.expect("a pass");
    }
    assert_eq!(*alerts.function().0.borrow(), ["r1", "r2"]);
    // Once at the start, once when shard-1 ended; not at the four passes after.
    assert_eq!(listings.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_lost_iterator_is_replaced_after_the_last_record_read() {
    // shard-1 holds r1 then r2; the iterator after r1 is trimmed away (as DynamoDB Local
    // answers at times), and the one taken after r1's sequence number reads r2.
    let after_requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = after_requests.clone();
    let sdk = fake_table_stream(move |operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
        }),
        "GetShardIterator" => {
            noted.lock().unwrap().push((
                input["ShardIteratorType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                input["SequenceNumber"].as_str().map(str::to_owned),
            ));
            match input["ShardIteratorType"].as_str() {
                Some("AFTER_SEQUENCE_NUMBER") => json!({ "ShardIterator": "after-1" }),
                _ => json!({ "ShardIterator": "start" }),
            }
        }
        "GetRecords" => match input["ShardIterator"].as_str() {
            Some("start") => {
                json!({ "Records": [stream_record("r1", "1")], "NextShardIterator": "lost" })
            }
            Some("lost") => json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
                "message": "The operation attempted to read past the oldest stream record in a shard."
            }),
            Some("after-1") => {
                json!({ "Records": [stream_record("r2", "2")], "NextShardIterator": "quiet" })
            }
            _ => json!({ "Records": [], "NextShardIterator": "quiet" }),
        },
        other => json!({ "message": format!("unexpected {other}") }),
    });
    let mut alerts = alerts_mapping(&sdk).await;
    pump_until_quiet(&mut alerts, 6).await;
    assert_eq!(*alerts.function().0.borrow(), ["r1", "r2"]);
    assert_eq!(
        *after_requests.lock().unwrap(),
        [
            ("TRIM_HORIZON".to_owned(), None),
            ("AFTER_SEQUENCE_NUMBER".to_owned(), Some("1".to_owned()))
        ]
    );
}

/// A table stream of one shard holding r1 and r2 whose iterators after r1 are lost:
/// `after_r1_too` says whether the one taken after r1's sequence number is lost as well, and
/// `always` whether every iterator is (the one from the start after r1 is read, too).
fn stream_losing_iterators(after_r1_too: bool, always: bool) -> SdkConfig {
    let starts = Arc::new(AtomicUsize::new(0));
    fake_table_stream(move |operation, input| {
        let lost = json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
            "message": "The operation attempted to read past the oldest stream record in a shard."
        });
        match operation {
            "DescribeStream" => json!({
                "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
            }),
            "GetShardIterator" => match input["ShardIteratorType"].as_str() {
                Some("AFTER_SEQUENCE_NUMBER") => json!({ "ShardIterator": "after-1" }),
                _ if starts.fetch_add(1, Ordering::SeqCst) == 0 => {
                    json!({ "ShardIterator": "start" })
                }
                _ => json!({ "ShardIterator": "start-again" }),
            },
            "GetRecords" => match input["ShardIterator"].as_str() {
                Some("start") => {
                    json!({ "Records": [stream_record("r1", "1")], "NextShardIterator": "lost" })
                }
                Some("after-1") if after_r1_too => lost,
                Some("start-again") if always => lost,
                Some("after-1" | "start-again") => json!({
                    "Records": [stream_record("r1", "1"), stream_record("r2", "2")],
                    "NextShardIterator": "quiet"
                }),
                Some("lost") => lost,
                _ => json!({ "Records": [], "NextShardIterator": "quiet" }),
            },
            other => json!({ "message": format!("unexpected {other}") }),
        }
    })
}

#[tokio::test]
async fn a_shard_whose_iterator_after_its_last_record_is_lost_too_is_read_from_its_oldest() {
    let mut alerts = alerts_mapping(&stream_losing_iterators(true, false)).await;
    pump_until_quiet(&mut alerts, 6).await;
    // r1 again from the oldest record is delivered once.
    assert_eq!(*alerts.function().0.borrow(), ["r1", "r2"]);
}

#[tokio::test]
async fn a_third_lost_iterator_in_a_row_fails_the_pass() {
    let mut alerts = alerts_mapping(&stream_losing_iterators(true, true)).await;
    alerts.pump(true).await.expect("the first pass reads r1");
    let error = alerts.pump(true).await.expect_err("every iterator lost");
    assert!(
        error
            .to_string()
            .contains("every new iterator was lost too"),
        "{error}"
    );
}
