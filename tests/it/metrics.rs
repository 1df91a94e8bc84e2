//! The metrics function against the local AWS: replays and crashes leave every DynamoDB item
//! as one clean delivery does; poison records go to the error sink without failing the batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use libtest_mimic::Failed;
use realty_shared::config::StackResources;
use realty_shared::metrics::batch::ListingState;
use realty_shared::metrics::lambda::{MetricsFunction, handle_event};
use realty_shared::metrics::ports::*;
use realty_shared::metrics::process::MetricsPorts;
use realty_tests::{Explain, TestAws};
use serde_json::{Value, json};

crate::async_tests!(
    replays_and_crashes_leave_every_item_as_one_clean_delivery,
    poison_records_in_the_middle_go_to_the_error_sink,
);

fn ensure(condition: bool, message: impl Into<String>) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message.into().into())
    }
}

/// A batch of `n` events in one hour: new listings across two ZIPs and types, then cuts,
/// rises and delistings of some of them, in the exact Kinesis event format.
fn batch(n: usize) -> KinesisEvent {
    let sample: Value = serde_json::from_str(include_str!("../../events/metrics-kinesis.json"))
        .expect("sample event");
    let template = sample["Records"][0].clone();
    let first: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(template["kinesis"]["data"].as_str().expect("data"))
            .expect("base64"),
    )
    .expect("event json");
    let mut records = Vec::new();
    let mut prices: BTreeMap<usize, i64> = BTreeMap::new();
    for i in 0..n {
        let listing_no = if i < n / 2 { i } else { (i * 7) % (n / 2) };
        let minute = 5 + i * 50 / n;
        let at = format!("2025-09-12T15:{minute:02}:{:02}Z", i % 60);
        let mut event = first.clone();
        let zip = if listing_no % 2 == 0 {
            "37201"
        } else {
            "37203"
        };
        {
            let listing = &mut event["listing"];
            listing["id"] = json!(format!("zillow:{}", 5_000_000 + listing_no));
            listing["address"]["line"] = json!(format!("{listing_no} Church St"));
            listing["address"]["postal_code"] = json!(zip);
            listing["market"]["zip"] = json!(zip);
            listing["property_type"] = json!(if listing_no % 3 == 0 {
                "single_family"
            } else {
                "condo"
            });
            listing["living_area_sqft"] = json!(600 + listing_no * 37);
            listing["observed_at"] = json!(at);
        }
        event["observed_at"] = json!(at);
        match prices.get(&listing_no).copied() {
            None => {
                let price = 30_000_000 + (listing_no as i64) * 1_250_000;
                event["listing"]["price_minor"] = json!(price);
                prices.insert(listing_no, price);
            }
            Some(old) if i % 5 == 0 => {
                event["kind"] = json!("delisted");
                event["listing"]["price_minor"] = json!(old);
                prices.remove(&listing_no);
            }
            Some(old) => {
                let new = if i % 3 == 0 {
                    old + old / 20
                } else {
                    old - old / 5
                };
                event["listing"]["price_minor"] = json!(new);
                event["listing"]["previous_price_minor"] = json!(old);
                event["kind"] = json!("changed");
                event["changes"] =
                    json!({"price": {"old": old, "new": new}, "status": null, "fields": []});
                prices.insert(listing_no, new);
            }
        }
        let mut record = template.clone();
        let seq = format!(
            "4959033827149025660855969253836157109592157598913{:07}",
            1000 + i
        );
        record["kinesis"]["sequenceNumber"] = json!(seq);
        // Each record reaches Kinesis a second after its event was observed.
        let observed = chrono::DateTime::parse_from_rfc3339(&at).expect("time");
        record["kinesis"]["approximateArrivalTimestamp"] = json!(observed.timestamp() + 1);
        record["kinesis"]["partitionKey"] = event["listing"]["id"].clone();
        record["kinesis"]["data"] = json!(
            base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&event).expect("json"))
        );
        record["eventID"] = json!(format!("shardId-000000000000:{seq}"));
        records.push(record);
    }
    serde_json::from_value(json!({ "Records": records })).expect("a Kinesis event")
}

fn part(event: &KinesisEvent, range: std::ops::Range<usize>) -> KinesisEvent {
    let mut e = event.clone();
    e.records = event.records[range].to_vec();
    e
}

/// The real adapters, with the `fail_at`-th write failing once: a crash between two writes.
struct Crashing<'a> {
    real: &'a MetricsFunction,
    writes: AtomicUsize,
    fail_at: usize,
}

impl Crashing<'_> {
    fn write(&self, op: &'static str) -> Result<(), PortError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return Err(PortError::new(op, "injected crash"));
        }
        Ok(())
    }
}

impl ListingStore for Crashing<'_> {
    async fn get_states(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, ListingState>, PortError> {
        self.real.listings.get_states(ids).await
    }
    async fn put_states(&self, states: &[ListingState]) -> Result<(), PortError> {
        // Half the states land before the crash, as when a BatchWriteItem sequence dies.
        let (first, rest) = states.split_at(states.len() / 2);
        self.real.listings.put_states(first).await?;
        self.write("put_states")?;
        self.real.listings.put_states(rest).await
    }
}

impl MarketStore for Crashing<'_> {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        self.real.markets.get_aggregates(keys).await
    }
    async fn put_aggregate(
        &self,
        key: &str,
        item: &StoredAggregate,
        expected: &str,
    ) -> Result<bool, PortError> {
        self.write("put_aggregate")?;
        self.real.markets.put_aggregate(key, item, expected).await
    }
    async fn put_snapshots(&self, snapshots: &[Snapshot]) -> Result<(), PortError> {
        self.write("put_snapshots")?;
        self.real.markets.put_snapshots(snapshots).await
    }
}

impl EventArchive for Crashing<'_> {
    async fn put_lines(&self, lines: &[Vec<u8>]) -> Result<(), PortError> {
        self.real.archive.put_lines(lines).await
    }
}

impl PoisonSink for Crashing<'_> {
    async fn send(&self, records: &[PoisonRecord]) -> Result<(), PortError> {
        self.real.poison.send(records).await
    }
}

/// An attribute as JSON, binary as base64 and sets sorted, so two items compare by value.
fn attribute_json(v: aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => json!({ "S": s }),
        A::N(n) => json!({ "N": n }),
        A::B(b) => json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.into_inner()) }),
        A::Bool(b) => json!({ "BOOL": b }),
        A::Null(_) => json!({ "NULL": true }),
        A::M(m) => {
            json!({ "M": m.into_iter().map(|(k, v)| (k, attribute_json(v))).collect::<serde_json::Map<_, _>>() })
        }
        A::L(l) => json!({ "L": l.into_iter().map(attribute_json).collect::<Vec<_>>() }),
        A::Ss(mut ss) => {
            ss.sort();
            json!({ "SS": ss })
        }
        A::Ns(mut ns) => {
            ns.sort();
            json!({ "NS": ns })
        }
        other => json!({ "other": format!("{other:?}") }),
    }
}

/// Every item of a table, keyed by its key attributes, as JSON.
async fn scan(aws: &TestAws, table: &str) -> Result<BTreeMap<String, Value>, Failed> {
    let client = aws_sdk_dynamodb::Client::new(&aws.sdk_config().await);
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .explain("Scan")?;
        for item in page.items.unwrap_or_default() {
            let value = Value::Object(
                item.into_iter()
                    .map(|(k, v)| (k, attribute_json(v)))
                    .collect(),
            );
            let key = format!(
                "{}|{}|{}",
                value["listing_id"]["S"], value["pk"]["S"], value["sk"]["S"]
            );
            out.insert(key, value);
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

async fn tables(
    aws: &TestAws,
    r: &StackResources,
) -> Result<(BTreeMap<String, Value>, BTreeMap<String, Value>), Failed> {
    Ok((
        scan(aws, &r.listing_table).await?,
        scan(aws, &r.market_table).await?,
    ))
}

async fn fresh_function(aws: &TestAws) -> Result<(StackResources, MetricsFunction), Failed> {
    let stack = aws.provision(&[]).await;
    let resources = StackResources::from_outputs(&stack.outputs)?;
    let function = MetricsFunction::new(&aws.sdk_config().await, &resources);
    Ok((resources, function))
}

/// Delivers `event` as Lambda does: the failed part again, from the first failed record,
/// until the function reports no failure.
async fn deliver(function: &MetricsFunction, event: KinesisEvent) -> Result<(), Failed> {
    let (response, _) = function.handle(event).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!("failures: {:?}", response.batch_item_failures),
    )
}

async fn replays_and_crashes_leave_every_item_as_one_clean_delivery(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let event = batch(40);
    let n = event.records.len();
    let (clean_resources, clean) = fresh_function(&aws).await?;
    deliver(&clean, event.clone()).await?;
    let expected = tables(&aws, &clean_resources).await?;
    ensure(
        expected.0.len() == n / 2,
        format!("{} listing items", expected.0.len()),
    )?;
    ensure(
        expected
            .1
            .values()
            .any(|v| v["sk"]["S"] == "LIVE" && v["active"]["N"] != "0"),
        "no live market item",
    )?;
    ensure(
        expected.1.keys().any(|k| k.contains("H#2025-09-12T15")),
        "no hourly snapshot",
    )?;

    let scenarios: Vec<(&str, Vec<KinesisEvent>)> = vec![
        ("twice", vec![event.clone(); 2]),
        ("five times", vec![event.clone(); 5]),
        (
            "in halves",
            vec![part(&event, 0..n / 2), part(&event, n / 2..n)],
        ),
        (
            "first half, then whole",
            vec![part(&event, 0..n / 2), event.clone()],
        ),
    ];
    for (name, deliveries) in scenarios {
        let (resources, function) = fresh_function(&aws).await?;
        for d in deliveries {
            deliver(&function, d).await?;
        }
        ensure(
            tables(&aws, &resources).await? == expected,
            format!("delivered {name}: items differ from one clean delivery"),
        )?;
    }

    // A crash between any two writes of the batch, then re-delivery from the first failed record.
    let mut fail_at = 0;
    loop {
        let (resources, function) = fresh_function(&aws).await?;
        let crashing = Crashing {
            real: &function,
            writes: AtomicUsize::new(0),
            fail_at,
        };
        let ports = MetricsPorts {
            listings: &crashing,
            markets: &crashing,
            archive: &crashing,
            poison: &crashing,
        };
        let (response, _) = handle_event(&ports, event.clone()).await;
        let crashed = !response.batch_item_failures.is_empty();
        if crashed {
            let from = response.batch_item_failures[0]
                .item_identifier
                .clone()
                .ok_or("no item identifier")?;
            let i = event
                .records
                .iter()
                .position(|r| r.kinesis.sequence_number == from)
                .ok_or("failure outside the batch")?;
            deliver(&function, part(&event, i..n)).await?;
        }
        ensure(
            tables(&aws, &resources).await? == expected,
            format!("crash at write {fail_at}: items differ from one clean delivery"),
        )?;
        if !crashed {
            break; // past the last write
        }
        fail_at += 1;
    }
    ensure(
        fail_at > 3,
        format!("only {fail_at} writes were crashed into"),
    )
}

async fn poison_records_in_the_middle_go_to_the_error_sink(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let (resources, function) = fresh_function(&aws).await?;
    let mut event = batch(10);
    let mut bad = Vec::new();
    for (i, data) in [
        b"not json at all".to_vec(),
        br#"{"schema_version": 7, "kind": "new"}"#.to_vec(),
        String::from_utf8(event.records[0].kinesis.data.0.clone())?
            .replacen("\"price_minor\":30000000", "\"price_minor\":0", 1)
            .into_bytes(),
        vec![b'"'; 900_000],
    ]
    .into_iter()
    .enumerate()
    {
        let mut record = event.records[0].clone();
        record.kinesis.sequence_number = format!(
            "4959033827149025660855969253836157109592157598913{:07}",
            1004 + i
        );
        record.kinesis.data.0 = data;
        bad.push(record);
    }
    // Good records keep their stream order; the bad ones sit in the middle of the batch.
    for (offset, record) in bad.into_iter().enumerate() {
        event.records.insert(5 + offset, record);
    }
    for (i, r) in event.records.iter_mut().enumerate() {
        r.kinesis.sequence_number = format!(
            "4959033827149025660855969253836157109592157598913{:07}",
            2000 + i
        );
    }
    let (response, outcomes) = function.handle(event).await;
    ensure(
        response.batch_item_failures.is_empty(),
        "a poison record failed the batch",
    )?;
    let stats = &outcomes[0].stats;
    ensure(
        (stats.accepted, stats.rejected) == (10, 4),
        format!("{stats:?}"),
    )?;

    let sqs = aws_sdk_sqs::Client::new(&aws.sdk_config().await);
    let mut reasons = Vec::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&resources.poison_record_queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .explain("ReceiveMessage")?;
        for m in out.messages() {
            let p: PoisonRecord = serde_json::from_str(m.body().unwrap_or_default())?;
            reasons.push(p.reason_kind);
        }
        if reasons.len() >= 4 {
            break;
        }
    }
    reasons.sort();
    ensure(
        reasons
            == [
                "invalid_listing",
                "malformed",
                "malformed",
                "unsupported_schema_version",
            ],
        format!("error sink holds {reasons:?}"),
    )?;
    let (listings, _) = tables(&aws, &resources).await?;
    ensure(
        listings.len() == 5,
        format!("{} listings applied", listings.len()),
    )
}
