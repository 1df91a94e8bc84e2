//! Polling: the batching window, shards in parallel, new and child shards, the read pace.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::{Value, json};

use super::helpers::{
    STREAM, alerts_mapping, alerts_stack, fake_table_stream, project_template, pump_until_quiet,
    stream_record,
};
use crate::runner::mapping::next_read;
use crate::runner::*;

/// A table stream of one shard holding one record, `r1`.
fn one_record_stream() -> SdkConfig {
    fake_table_stream(|operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
        }),
        "GetShardIterator" => json!({ "ShardIterator": input["ShardId"] }),
        "GetRecords" => match input["ShardIterator"].as_str() {
            Some("shard-1") => {
                json!({ "Records": [stream_record("r1", "1")], "NextShardIterator": "shard-1-end" })
            }
            _ => json!({ "Records": [], "NextShardIterator": "shard-1-end" }),
        },
        other => json!({ "message": format!("unexpected {other}") }),
    })
}

#[tokio::test]
async fn a_pass_holds_records_back_for_the_batching_window_unless_it_flushes() {
    let mut alerts = alerts_mapping(&one_record_stream()).await;
    alerts.settings.batching_window = Duration::from_secs(1);
    let waiting = alerts.pump(false).await.expect("a pass");
    assert_eq!(
        (waiting.read, waiting.delivered, waiting.buffered),
        (1, 0, 1)
    );
    let flushed = alerts.pump(true).await.expect("a pass");
    assert_eq!((flushed.delivered, flushed.buffered), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn polling_delivers_a_batch_when_its_window_ends() {
    let mut alerts = alerts_mapping(&one_record_stream()).await;
    alerts.settings.batching_window = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    alerts
        .poll_shards(|stats| stats.records_succeeded == 1)
        .await
        .expect("the shard polled");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1_100),
        "{took:?}"
    );
    // The record, then one read when the window ended.
    assert_eq!(
        (alerts.stats.records_read, alerts.stats.invocations),
        (1, 1)
    );
}

/// Notes the eventIDs it is given, after a long pause on a batch holding `slow`.
struct SlowOn(&'static str, RefCell<Vec<String>>);

impl StreamFunction for SlowOn {
    type Event = aws_lambda_events::event::dynamodb::Event;
    type Response = Value;

    async fn invoke(&self, event: Self::Event) -> Result<Value, FunctionError> {
        if event.records.iter().any(|r| r.event_id == self.0) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        self.1
            .borrow_mut()
            .extend(event.records.into_iter().map(|r| r.event_id));
        Ok(Value::Null)
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_batch_holds_up_only_its_own_shard() {
    // shard-1 holds one record, whose invocation takes 30 s; shard-2 gets a record on each
    // of its first three reads.
    let sdk = fake_table_stream(|operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [
                { "ShardId": "shard-1" }, { "ShardId": "shard-2" }
            ] }
        }),
        "GetShardIterator" => {
            json!({ "ShardIterator": format!("{}/0", input["ShardId"].as_str().unwrap_or_default()) })
        }
        "GetRecords" => {
            let iterator = input["ShardIterator"].as_str().unwrap_or_default();
            let (shard, read) = iterator.split_once('/').unwrap_or_default();
            let read: u32 = read.parse().unwrap_or_default();
            let records = match (shard, read) {
                ("shard-1", 0) => json!([stream_record("slow", "1")]),
                ("shard-2", 0..3) => json!([stream_record(
                    &format!("fast-{read}"),
                    &format!("{}", 10 + read)
                )]),
                _ => json!([]),
            };
            json!({ "Records": records, "NextShardIterator": format!("{shard}/{}", read + 1) })
        }
        other => json!({ "message": format!("unexpected {other}") }),
    });
    let mut alerts = Mapping::new(
        &sdk,
        &project_template(),
        &alerts_stack(),
        "AlertsFunction",
        SlowOn("slow", RefCell::default()),
    )
    .await
    .expect("the mapping");
    alerts
        .poll_shards(|stats| stats.records_succeeded == 4)
        .await
        .expect("the shards polled");
    // shard-2's records went through while shard-1's batch was in flight.
    assert_eq!(
        *alerts.function().1.borrow(),
        ["fast-0", "fast-1", "fast-2", "slow"]
    );
    assert_eq!(
        (alerts.stats.records_read, alerts.stats.invocations),
        (4, 4)
    );
    // The cursors are back: the next pass reads on from where the loops stopped.
    let pass = alerts.pump(true).await.expect("a pass");
    assert_eq!((pass.read, pass.buffered), (0, 0));
}

/// A table stream listing `first` shards at its first DescribeStream and `later` ones after;
/// each shard holds one record named after it, then stays open and empty, unless it is
/// `shard-1` and `shard_1_ends`.
fn growing_stream(first: Value, later: Value, shard_1_ends: bool) -> (SdkConfig, Arc<AtomicUsize>) {
    let listings = Arc::new(AtomicUsize::new(0));
    let listed = listings.clone();
    let sdk = fake_table_stream(move |operation, input| match operation {
        "DescribeStream" => {
            let shards = if listed.fetch_add(1, Ordering::SeqCst) == 0 {
                first.clone()
            } else {
                later.clone()
            };
            json!({ "StreamDescription": { "StreamArn": STREAM, "Shards": shards } })
        }
        "GetShardIterator" => json!({ "ShardIterator": input["ShardId"] }),
        "GetRecords" => {
            let iterator = input["ShardIterator"].as_str().unwrap_or_default();
            match iterator.strip_suffix("/read") {
                Some("shard-1") if shard_1_ends => json!({ "Records": [] }),
                Some(shard) => {
                    json!({ "Records": [], "NextShardIterator": format!("{shard}/read") })
                }
                None => json!({
                    "Records": [stream_record(iterator, &iterator.len().to_string())],
                    "NextShardIterator": format!("{iterator}/read")
                }),
            }
        }
        other => json!({ "message": format!("unexpected {other}") }),
    });
    (sdk, listings)
}

#[tokio::test(start_paused = true)]
async fn polling_reads_a_child_shard_once_its_parent_ends() {
    let (sdk, listings) = growing_stream(
        json!([{ "ShardId": "shard-1" }]),
        json!([{ "ShardId": "shard-1" }, { "ShardId": "shard-2", "ParentShardId": "shard-1" }]),
        true,
    );
    let mut alerts = alerts_mapping(&sdk).await;
    alerts
        .poll_shards(|stats| stats.records_succeeded == 2)
        .await
        .expect("the shards polled");
    assert_eq!(*alerts.function().0.borrow(), ["shard-1", "shard-2"]);
    assert_eq!(listings.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn polling_finds_a_new_shard_while_the_others_stay_open() {
    let (sdk, listings) = growing_stream(
        json!([{ "ShardId": "shard-1" }]),
        json!([{ "ShardId": "shard-1" }, { "ShardId": "shard-3" }]),
        false,
    );
    let mut alerts = alerts_mapping(&sdk).await;
    let started = tokio::time::Instant::now();
    alerts
        .poll_shards(|stats| stats.records_succeeded == 2)
        .await
        .expect("the shards polled");
    assert_eq!(*alerts.function().0.borrow(), ["shard-1", "shard-3"]);
    // Listed at the start, by the watch after 10 s, and again to read the new shard.
    assert_eq!(listings.load(Ordering::SeqCst), 3);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );
}

#[test]
fn an_idle_shard_reads_four_times_a_second_however_long_a_read_takes() {
    let start = tokio::time::Instant::now();
    let window = Duration::from_secs(1);
    // Nothing waits: 250 ms after the last read started, even when it took longer than that.
    assert_eq!(
        next_read(start, None, window),
        start + Duration::from_millis(250)
    );
    // Records wait: when their window ends.
    let since = start + Duration::from_millis(100);
    assert_eq!(
        next_read(start, Some(since), window),
        since + Duration::from_secs(1)
    );
}

#[tokio::test]
async fn a_pass_that_empties_a_full_buffer_still_reads_what_the_shard_has_next() {
    // The first page holds two batches' worth; the second, 50 more. The second pass delivers
    // the second batch from the buffer: it must read the next page too, or a pass reading
    // nothing and leaving nothing buffered says the stream is quiet while 50 records wait.
    let sdk = fake_table_stream(|operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
        }),
        "GetShardIterator" => json!({ "ShardIterator": "page-1" }),
        "GetRecords" => {
            let page = |range: std::ops::Range<u32>, next: &str| {
                let records: Vec<Value> = range
                    .map(|i| stream_record(&format!("r{i}"), &i.to_string()))
                    .collect();
                json!({ "Records": records, "NextShardIterator": next })
            };
            match input["ShardIterator"].as_str() {
                Some("page-1") => page(0..200, "page-2"),
                Some("page-2") => page(200..250, "page-3"),
                _ => page(0..0, "page-3"),
            }
        }
        other => json!({ "message": format!("unexpected {other}") }),
    });
    let mut alerts = alerts_mapping(&sdk).await;
    pump_until_quiet(&mut alerts, 10).await;
    assert_eq!(alerts.stats.records_succeeded, 250);
    assert_eq!(alerts.function().0.borrow().len(), 250);
}
