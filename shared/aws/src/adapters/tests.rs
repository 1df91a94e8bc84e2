//! Partial failures injected into the SDK clients (aws-smithy-mocks): only the failed part
//! is re-sent, and what never goes through is reported. Also how Firehose records are packed
//! and split into calls.

use std::collections::HashMap;
use std::time::Duration;

use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::dynamodb::DynamoMarketStore;
use super::firehose::{FirehoseArchive, MAX_RECORD_BYTES, chunk_records, pack_lines};
use super::retry::RetryPolicy;
use super::sqs::SqsPoisonSink;
use realty_metrics::ports::{
    AggregatePut, EventArchive, MarketStore, Period, PoisonRecord, PoisonSink, Snapshot,
    StoredAggregate,
};

fn fast() -> RetryPolicy {
    RetryPolicy::immediate(Duration::from_secs(5))
}

/// `{"n":N}\n` for each N: 8 bytes a line.
fn numbered_lines(ns: std::ops::RangeInclusive<u32>) -> Vec<Vec<u8>> {
    ns.map(|n| format!("{{\"n\":{n}}}\n").into_bytes())
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn firehose_resends_only_the_failed_records() {
    use aws_sdk_firehose::Client;
    use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
    use aws_sdk_firehose::types::PutRecordBatchResponseEntry as Entry;

    // Six 8-byte lines in records of at most 16 bytes: three records of two lines each.
    let first = mock!(Client::put_record_batch)
        .match_requests(|r| {
            r.records()
                .iter()
                .map(|r| r.data().as_ref())
                .collect::<Vec<_>>()
                == [
                    b"{\"n\":1}\n{\"n\":2}\n".as_slice(),
                    b"{\"n\":3}\n{\"n\":4}\n",
                    b"{\"n\":5}\n{\"n\":6}\n",
                ]
        })
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
            r.records().len() == 1 && r.records()[0].data().as_ref() == b"{\"n\":3}\n{\"n\":4}\n"
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
    archive
        .put_packed(&numbered_lines(1..=6), 16)
        .await
        .expect("every record lands");
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn firehose_packs_a_batch_into_one_record() {
    use aws_sdk_firehose::Client;
    use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
    use aws_sdk_firehose::types::PutRecordBatchResponseEntry as Entry;

    let lines = numbered_lines(1..=1_000);
    let expected = lines.concat();
    let one = mock!(Client::put_record_batch)
        .match_requests(move |r| {
            r.records().len() == 1 && r.records()[0].data().as_ref() == expected
        })
        .then_output(|| {
            PutRecordBatchOutput::builder()
                .failed_put_count(0)
                .request_responses(Entry::builder().record_id("a").build())
                .build()
                .expect("output")
        });
    let client = mock_client!(aws_sdk_firehose, RuleMode::Sequential, [&one]);
    let archive = FirehoseArchive {
        client,
        delivery_stream: "s".into(),
        retry: fast(),
    };
    archive.put_lines(&lines).await.expect("lands");
    assert_eq!(one.num_calls(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn firehose_reports_records_that_never_go_through() {
    use aws_sdk_firehose::Client;
    use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
    use aws_sdk_firehose::types::PutRecordBatchResponseEntry as Entry;

    // Three records of two lines; the last one never goes through.
    let first = mock!(Client::put_record_batch)
        .match_requests(|r| r.records().len() == 3)
        .then_output(|| {
            PutRecordBatchOutput::builder()
                .failed_put_count(1)
                .request_responses(Entry::builder().record_id("a").build())
                .request_responses(Entry::builder().record_id("b").build())
                .request_responses(Entry::builder().error_code("InternalFailure").build())
                .build()
                .expect("output")
        });
    let always_failing = mock!(Client::put_record_batch)
        .match_requests(|r| {
            r.records().len() == 1 && r.records()[0].data().as_ref() == b"{\"n\":5}\n{\"n\":6}\n"
        })
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
    let client = mock_client!(
        aws_sdk_firehose,
        RuleMode::Sequential,
        [&first, &always_failing]
    );
    let archive = FirehoseArchive {
        client,
        delivery_stream: "s".into(),
        retry: RetryPolicy::immediate(Duration::from_millis(50)),
    };
    let err = archive
        .put_packed(&numbered_lines(1..=6), 16)
        .await
        .expect_err("reported, not dropped");
    assert!(
        err.message.contains("1 records (2 lines) undelivered")
            && err.message.contains("InternalFailure"),
        "{err}"
    );
    assert_eq!(first.num_calls(), 1);
    assert!(always_failing.num_calls() >= 1);
}

#[test]
fn firehose_calls_stay_within_500_records_and_4_mib() {
    let records = vec![vec![b'x'; 10]; 1_201];
    let sizes: Vec<usize> = chunk_records(&records).iter().map(|c| c.len()).collect();
    assert_eq!(sizes, [500, 500, 201]);
    let big = vec![vec![b'x'; 1_000_000]; 9];
    let chunks = chunk_records(&big);
    assert!(
        chunks
            .iter()
            .all(|c| c.iter().map(Vec::len).sum::<usize>() <= 4 * 1024 * 1024)
    );
    assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 9);
    // Full records: four to a call.
    let full = pack_lines(&vec![vec![b'x'; 1_000]; 5_000], MAX_RECORD_BYTES);
    assert!(full.iter().all(|r| r.len() <= MAX_RECORD_BYTES));
    assert_eq!(
        chunk_records(&full)
            .iter()
            .map(|c| c.len())
            .collect::<Vec<_>>(),
        [4, 1]
    );
}

#[test]
fn a_firehose_call_holds_4_mib_and_500_records_and_not_a_byte_or_record_more() {
    let count = |records: &[Vec<u8>]| {
        chunk_records(records)
            .iter()
            .map(|c| c.len())
            .collect::<Vec<_>>()
    };
    assert_eq!(count(&vec![vec![b'x'; 1]; 500]), [500]);
    assert_eq!(count(&vec![vec![b'x'; 1]; 501]), [500, 1]);
    // Four records of 1 MiB: exactly 4 MiB, one call; one byte more, two.
    let mut at = vec![vec![b'x'; 1024 * 1024]; 4];
    assert_eq!(count(&at), [4]);
    at[3].push(b'x');
    assert_eq!(count(&at), [3, 1]);
}

/// Where each of `parts`, laid end to end, starts, with its length.
fn offsets(parts: &[Vec<u8>]) -> std::collections::BTreeMap<usize, usize> {
    let mut at = 0;
    parts
        .iter()
        .map(|p| {
            at += p.len();
            (at - p.len(), p.len())
        })
        .collect()
}

#[test]
fn firehose_packing_keeps_bytes_and_order_within_the_record_limit() {
    // A realistic batch: 1,000 lines of 750 bytes go in one record, so one call.
    let lines: Vec<Vec<u8>> = (0..1_000u32)
        .map(|i| {
            let mut l = format!("{{\"i\":{i},\"pad\":\"").into_bytes();
            l.resize(748, b'x');
            l.extend_from_slice(b"\"}\n");
            l
        })
        .collect();
    let records = pack_lines(&lines, MAX_RECORD_BYTES);
    assert_eq!(records.len(), 1);
    assert_eq!(records.concat(), lines.concat());
    assert_eq!(chunk_records(&records).len(), 1);
    // Twice as many: two records, split between lines.
    let twice: Vec<Vec<u8>> = lines.iter().chain(&lines).cloned().collect();
    let records = pack_lines(&twice, MAX_RECORD_BYTES);
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.len() <= MAX_RECORD_BYTES && r.ends_with(b"\n"))
    );
    assert_eq!(records.concat(), twice.concat());
    // A line over the limit goes alone, between its neighbours.
    let odd = vec![
        b"a\n".to_vec(),
        vec![b'b'; 40],
        b"c\n".to_vec(),
        b"d\n".to_vec(),
    ];
    assert_eq!(
        pack_lines(&odd, 10),
        [b"a\n".to_vec(), vec![b'b'; 40], b"c\nd\n".to_vec()]
    );
    assert!(pack_lines(&[], 10).is_empty());
}

proptest::proptest! {
    #[test]
    fn firehose_packing_is_lossless_greedy_and_bounded(
        sizes in proptest::collection::vec(1usize..3_000, 0..200),
        limit in 1usize..10_000,
    ) {
        let lines: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut l = vec![b'a' + (i % 26) as u8; n - 1];
                l.push(b'\n');
                l
            })
            .collect();
        let records = pack_lines(&lines, limit);
        // The same bytes in the same order.
        proptest::prop_assert_eq!(records.concat(), lines.concat());
        let lines_at = offsets(&lines);
        let records_at: Vec<(usize, usize)> = offsets(&records).into_iter().collect();
        for (i, &(start, len)) in records_at.iter().enumerate() {
            proptest::prop_assert!(len > 0);
            // Records start where lines start.
            proptest::prop_assert!(lines_at.contains_key(&start));
            // Within the limit, unless the record is one line longer than it.
            proptest::prop_assert!(len <= limit || lines_at[&start] == len);
            // Full: the next record's first line would not have fit.
            if let Some((next, _)) = records_at.get(i + 1) {
                proptest::prop_assert!(len + lines_at[next] > limit);
            }
        }
    }
}

/// `n` market items to put, each conditional on no item being there yet.
fn market_puts(n: usize) -> (Vec<String>, StoredAggregate) {
    let keys = (0..n).map(|i| format!("city#m{i:03}-tn#all")).collect();
    (keys, StoredAggregate::default())
}

/// A put of `item` under each key, each where no item is yet.
fn creations<'a>(keys: &'a [String], item: &'a StoredAggregate) -> Vec<AggregatePut<'a>> {
    keys.iter()
        .map(|key| AggregatePut {
            key,
            item,
            expected_revision: "",
        })
        .collect()
}

fn transaction_keys(
    r: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput,
) -> Vec<String> {
    r.transact_items()
        .iter()
        .filter_map(|a| a.put()?.item().get("pk")?.as_s().ok().cloned())
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn dynamodb_market_transaction_resends_only_the_cancelled_puts_not_the_lost_ones() {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::transact_write_items::{
        TransactWriteItemsError, TransactWriteItemsOutput,
    };
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;

    let (keys, item) = market_puts(4);
    let puts = creations(&keys, &item);
    // The second put lost its condition; the others were cancelled with it, the fourth by a
    // conflicting transaction on its item.
    let first = mock!(Client::transact_write_items)
        .match_requests(|r| r.transact_items().len() == 4)
        .then_error(|| {
            let reason = |code: &str| CancellationReason::builder().code(code).build();
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .set_cancellation_reasons(Some(vec![
                        reason("None"),
                        reason("ConditionalCheckFailed"),
                        reason("None"),
                        reason("TransactionConflict"),
                    ]))
                    .build(),
            )
        });
    let expected: Vec<String> = [0, 2, 3].iter().map(|&i| keys[i].clone()).collect();
    let retry = mock!(Client::transact_write_items)
        .match_requests(move |r| transaction_keys(r) == expected)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &retry]);
    let store = DynamoMarketStore {
        client,
        table: "t".into(),
        retry: fast(),
    };
    let landed = store.put_aggregates(&puts).await.expect("answered");
    assert_eq!(landed, vec![true, false, true, true]);
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn dynamodb_market_puts_go_in_transactions_of_100_and_not_one_more() {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;

    let (keys, item) = market_puts(201);
    let puts = creations(&keys, &item);
    let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sizes.clone();
    let any = mock!(Client::transact_write_items)
        .match_requests(move |r| {
            seen.lock().expect("lock").push(r.transact_items().len());
            true
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&any]);
    let store = DynamoMarketStore {
        client,
        table: "t".into(),
        retry: fast(),
    };
    let landed = store.put_aggregates(&puts).await.expect("answered");
    assert!(landed.iter().all(|l| *l));
    let mut sizes = sizes.lock().expect("lock").clone();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![1, 100, 100]);
}

/// A put refused for itself is answered so, alone, never sent again; the puts cancelled
/// with it go again without it and land (before, they all got its error).
#[tokio::test(flavor = "current_thread")]
async fn dynamodb_market_puts_fail_on_a_cancellation_that_will_not_pass() {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::transact_write_items::{
        TransactWriteItemsError, TransactWriteItemsOutput,
    };
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;

    let (keys, item) = market_puts(3);
    let puts = creations(&keys, &item);
    let refused = mock!(Client::transact_write_items)
        .match_requests(|r| r.transact_items().len() == 3)
        .then_error(|| {
            let reason = |code: &str| CancellationReason::builder().code(code).build();
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .set_cancellation_reasons(Some(vec![
                        reason("None"),
                        reason("ValidationError"),
                        reason("None"),
                    ]))
                    .build(),
            )
        });
    let expected = vec![keys[0].clone(), keys[2].clone()];
    let rest = mock!(Client::transact_write_items)
        .match_requests(move |r| transaction_keys(r) == expected)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&refused, &rest]);
    let store = DynamoMarketStore {
        client,
        table: "t".into(),
        retry: fast(),
    };
    let error = store.put_aggregates(&puts).await.expect_err("refused");
    assert!(error.to_string().contains("ValidationError"), "{error}");
    assert_eq!((refused.num_calls(), rest.num_calls()), (1, 1));
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
            trends: None,
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
        .put_snapshots(snapshots)
        .await
        .expect("every item written");
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn dynamodb_batch_get_rereads_only_the_unprocessed_keys() {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
    use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

    let key = |n: u32| {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("listing#{n}"))),
            ("sk".to_owned(), AttributeValue::S("state".to_owned())),
        ])
    };
    let item = move |n: u32| {
        let mut item = key(n);
        item.insert("price".to_owned(), AttributeValue::N(n.to_string()));
        item
    };
    let first = mock!(Client::batch_get_item)
        .match_requests(|r| {
            r.request_items()
                .is_some_and(|m| m["t"].keys().len() == 3 && m["t"].consistent_read() == Some(true))
        })
        .then_compute_output(move |req| {
            // Two read, the third left unprocessed, as DynamoDB does under throttling.
            let third = req.request_items().expect("keys")["t"].keys()[2].clone();
            BatchGetItemOutput::builder()
                .responses("t", vec![item(0), item(1)])
                .unprocessed_keys(
                    "t",
                    KeysAndAttributes::builder()
                        .keys(third)
                        .consistent_read(true)
                        .build()
                        .expect("keys"),
                )
                .build()
        });
    let retry = mock!(Client::batch_get_item)
        .match_requests(move |r| {
            r.request_items().is_some_and(|m| {
                m["t"].keys() == [key(2)] && m["t"].consistent_read() == Some(true)
            })
        })
        .then_output(move || {
            BatchGetItemOutput::builder()
                .responses("t", vec![item(2)])
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &retry]);
    let mut found = super::dynamodb::batch_get(&client, "t", (0..3).map(key).collect(), fast())
        .await
        .expect("every key read");
    found.sort_by_key(|i| i["price"].as_n().cloned().unwrap_or_default());
    assert_eq!(found, (0..3).map(item).collect::<Vec<_>>());
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
}

/// `n` poison records of a malformed record each.
fn malformed_records(n: u32) -> Vec<PoisonRecord> {
    (0..n)
        .map(|i| PoisonRecord {
            shard: "shardId-000000000000".into(),
            sequence_number: i.to_string(),
            reason_kind: "malformed".into(),
            reason: "not JSON".into(),
            data_bytes: 3,
            data_prefix: "abc".into(),
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn sqs_resends_only_the_failed_messages() {
    use aws_sdk_sqs::Client;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};

    let poison = malformed_records(2);
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
        .then_compute_output(crate::adapters::sqs::tests::accepted);
    let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, [&first, &retry]);
    let sink = SqsPoisonSink {
        client,
        queue_url: "q".into(),
        retry: fast(),
    };
    sink.send(&poison).await.expect("every message sent");
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
}

/// A message SendMessageBatch's answer names neither way is sent again.
#[tokio::test(flavor = "current_thread")]
async fn sqs_sends_again_what_its_answer_leaves_out() {
    use aws_sdk_sqs::Client;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::SendMessageBatchResultEntry;

    let poison = malformed_records(2);
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
                .set_failed(Some(vec![]))
                .build()
                .expect("output")
        });
    let retry = mock!(Client::send_message_batch)
        .match_requests(|r| r.entries().len() == 1 && r.entries()[0].id() == "1")
        .then_compute_output(crate::adapters::sqs::tests::accepted);
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
    use aws_sdk_kinesis::Client;
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::PutRecordsResultEntry as Entry;
    use realty_model::listing::ListingEvent;
    use realty_poller::ports::EventPublisher;

    fn events(n: usize) -> Vec<ListingEvent> {
        let page = include_bytes!(
            "../../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        );
        let at = chrono::Utc::now();
        realty_sources::normalize_file(realty_model::markets::SourceKind::Zillow, page, at)
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
        // The records by their data (one market: the partition keys are all the same).
        let data: Vec<Vec<u8>> = events
            .iter()
            .map(|e| e.encode().expect("encodes"))
            .collect();
        let (d1, d3) = (data[1].clone(), data[3].clone());
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
                let sent: Vec<&[u8]> = r.records().iter().map(|e| e.data().as_ref()).collect();
                sent == [d1.as_slice(), d3.as_slice()]
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

    /// An answer whose results do not line up with the records is trusted for none: all
    /// are sent again (a record twice on the stream is applied once). One that says nothing
    /// failed while a record carries an error is judged by the records.
    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_that_does_not_line_up_is_trusted_for_no_record() {
        let events = events(2);
        let short = mock!(Client::put_records)
            .match_requests(|r| r.records().len() == 2)
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(0)
                    .records(ok("1"))
                    .build()
                    .expect("output")
            });
        let miscounted = mock!(Client::put_records)
            .match_requests(|r| r.records().len() == 2)
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(0)
                    .records(ok("2"))
                    .records(throttled())
                    .build()
                    .expect("output")
            });
        let last = mock!(Client::put_records)
            .match_requests(|r| r.records().len() == 1)
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(0)
                    .records(ok("3"))
                    .build()
                    .expect("output")
            });
        let client = mock_client!(
            aws_sdk_kinesis,
            RuleMode::Sequential,
            [&short, &miscounted, &last]
        );
        let publisher = KinesisPublisher {
            client,
            stream: "s".into(),
            retry: fast(),
        };
        let failures = publisher.publish(&events).await.expect("publish");
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(
            (short.num_calls(), miscounted.num_calls(), last.num_calls()),
            (1, 1, 1)
        );
    }

    /// One market's calls are spaced to what its shard takes a second (1,000 records here):
    /// 1,200 events go in calls of 500, 500 and 200, the third a second after the first.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_market_s_calls_keep_to_its_shard_s_second() {
        let some = events(40);
        let events: Vec<ListingEvent> = some.iter().cycle().take(1_200).cloned().collect();
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = calls.clone();
        let any = mock!(Client::put_records).then_compute_output(move |r| {
            seen.lock()
                .expect("lock")
                .push((tokio::time::Instant::now(), r.records().len()));
            let mut out = PutRecordsOutput::builder().failed_record_count(0);
            for _ in r.records() {
                out = out.records(ok("1"));
            }
            out.build().expect("output")
        });
        let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&any]);
        let publisher = KinesisPublisher {
            client,
            stream: "s".into(),
            retry: fast(),
        };
        let failures = publisher.publish(&events).await.expect("publish");
        assert!(failures.is_empty(), "{failures:?}");
        let calls = calls.lock().expect("lock").clone();
        assert_eq!(
            calls.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            [500, 500, 200]
        );
        assert!(calls[2].0 - calls[0].0 >= std::time::Duration::from_secs(1));
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
    fn calls_stay_within_500_records_and_a_shard_s_second() {
        assert_eq!(
            chunk_by_limits(&[100; 1_001])
                .iter()
                .map(|r| r.len())
                .collect::<Vec<_>>(),
            [500, 500, 1]
        );
        let big = chunk_by_limits(&[1_000_000; 12]);
        assert!(
            big.iter()
                .all(|r| r.len() * 1_000_000 <= crate::adapters::kinesis::MAX_CALL_BYTES)
        );
        assert_eq!(big.iter().map(|r| r.len()).sum::<usize>(), 12);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_journal_is_written_only_where_none_is_and_one_left_comes_back_without_a_read() {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use realty_metrics::items::JournalItem;
    use realty_metrics::ports::EncodedJournal;

    let journal = |body: &[u8]| EncodedJournal {
        shard: "shardId-1".into(),
        body: body.to_vec(),
    };
    let left = journal(b"left");
    let left_item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(JournalItem::from(&left)).expect("an item");
    let store = |client: Client| DynamoMarketStore {
        client,
        table: "t".into(),
        retry: fast(),
    };
    let conditional = |r: &aws_sdk_dynamodb::operation::put_item::PutItemInput| {
        r.condition_expression() == Some("attribute_not_exists(pk)")
            && r.return_values_on_condition_check_failure()
                == Some(&aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
    };

    // None there: written.
    let put = mock!(Client::put_item)
        .match_requests(conditional)
        .then_output(|| PutItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
    assert_eq!(store(client).put_journal(&journal(b"new")).await, Ok(None));

    // One left: it comes back with the failed condition, and nothing is read.
    let returned = left_item.clone();
    let put = mock!(Client::put_item)
        .match_requests(conditional)
        .then_error(move || {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .set_item(Some(returned.clone()))
                    .build(),
            )
        });
    let read = mock!(Client::batch_get_item).then_output(|| BatchGetItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put, &read]);
    assert_eq!(
        store(client).put_journal(&journal(b"new")).await,
        Ok(Some(left.clone()))
    );
    assert_eq!(read.num_calls(), 0);

    // A store that does not return what it saw: the journal is read.
    let put = mock!(Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let found = left_item.clone();
    let read = mock!(Client::batch_get_item).then_output(move || {
        BatchGetItemOutput::builder()
            .responses("t", vec![found.clone()])
            .build()
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put, &read]);
    assert_eq!(
        store(client).put_journal(&journal(b"new")).await,
        Ok(Some(left))
    );
    assert_eq!(read.num_calls(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn interest_writes_send_the_last_write_of_each_key_once() {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::types::WriteRequest;
    use realty_metrics::interest::{InterestEntry, InterestWrite, InterestingListing};

    let listing: InterestingListing = serde_json::from_value(serde_json::json!({
        "listing_id": "zillow:1", "source": "zillow", "address": "1 Main St",
        "market": "nashville-tn", "property_type": "condo", "status": "active",
        "currency": "USD", "price": 400000.0, "observed_at": "2026-11-27T08:00:00Z"
    }))
    .expect("a listing");
    let put = |sort_key: &str| {
        InterestWrite::Put(Box::new(InterestEntry {
            market: "nashville-tn".into(),
            sort_key: sort_key.into(),
            listing: listing.clone(),
            undervalued_ratio: None,
            expires_at: 1_800_000_000,
        }))
    };
    // A batch lists a listing as undervalued, then un-lists it, and records its cut.
    let writes = vec![
        put("undervalued#a"),
        InterestWrite::Delete {
            market: "nashville-tn".into(),
            sort_key: "undervalued#a".into(),
        },
        put("price_cut#t#a"),
    ];
    let sk = |w: &WriteRequest| {
        let key = match (w.put_request(), w.delete_request()) {
            (Some(put), _) => put.item(),
            (_, Some(delete)) => delete.key(),
            _ => return None,
        };
        key.get("sk").and_then(|v| v.as_s().ok()).cloned()
    };
    let call = mock!(Client::batch_write_item)
        .match_requests(move |r| {
            let requests = &r.request_items().expect("items")["t"];
            let mut keys: Vec<_> = requests
                .iter()
                .map(|w| (w.delete_request().is_some(), sk(w)))
                .collect();
            keys.sort();
            keys == [
                (false, Some("price_cut#t#a".to_owned())),
                (true, Some("undervalued#a".to_owned())),
            ]
        })
        .then_output(|| {
            BatchWriteItemOutput::builder()
                .set_unprocessed_items(Some(HashMap::new()))
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&call]);
    let store = DynamoMarketStore {
        client,
        table: "t".into(),
        retry: fast(),
    };
    store.write_interest(writes).await.expect("written");
    assert_eq!(call.num_calls(), 1);
}
