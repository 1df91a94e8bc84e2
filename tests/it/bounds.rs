//! Inputs past their bounds, against the local AWS with the real metrics handler: each is
//! rejected to the error sink with a short reason, the rest of its batch is processed, the
//! shard is never blocked, and nothing is counted twice afterwards (issue 12, points 1, 2
//! and 4).

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use libtest_mimic::Failed;
use realty_aws::functions::metrics::MetricsFunction;
use realty_metrics::items::{LIVE_SORT_KEY, MarketLiveItem};
use realty_metrics::ports::PoisonRecord;
use realty_model::config::StackResources;
use realty_model::scope::Scope;
use realty_model::state::ListingItem;
use realty_tests::{Explain, TestAws, ensure};
use serde_json::{Value, json};

crate::async_tests!(
    a_450_kb_address_line_is_rejected_and_never_counted_twice,
    a_3000_character_postal_code_is_rejected_and_the_shard_goes_on,
    two_600_kb_statuses_reach_the_error_sink_bounded,
    an_event_dated_2100_goes_to_the_error_sink,
);

/// 2025-09-12 15:40:00 UTC, the time of the sample batch.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 12, 15, 40, 0)
        .single()
        .expect("a valid time")
}

/// The first event of the sample batch (`events/metrics-kinesis.json`): a new Nashville
/// condo, as the poller writes it.
fn sample_event() -> Value {
    let sample: Value = serde_json::from_str(include_str!("../../events/metrics-kinesis.json"))
        .expect("sample event");
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(
                sample["Records"][0]["kinesis"]["data"]
                    .as_str()
                    .expect("data"),
            )
            .expect("base64"),
    )
    .expect("event json")
}

/// A `new` event of listing `zillow:<zpid>` at `at`, priced `price_minor`.
fn new_event(zpid: u64, at: DateTime<Utc>, price_minor: i64) -> Value {
    let mut event = sample_event();
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let listing = &mut event["listing"];
    listing["id"] = json!(format!("zillow:{zpid}"));
    listing["address"]["line"] = json!(format!("{zpid} Church St"));
    listing["price_minor"] = json!(price_minor);
    listing["observed_at"] = json!(at);
    event["observed_at"] = json!(at);
    event
}

/// A price change of `event`'s listing to `new_price` at `at`.
fn cut(event: &Value, at: DateTime<Utc>, new_price: i64) -> Value {
    let mut next = event.clone();
    let old = event["listing"]["price_minor"].clone();
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    next["kind"] = json!("changed");
    next["changes"] =
        json!({"price": {"old": old, "new": new_price}, "status": null, "fields": []});
    next["listing"]["price_minor"] = json!(new_price);
    next["listing"]["previous_price_minor"] = old;
    next["listing"]["observed_at"] = json!(at);
    next["observed_at"] = json!(at);
    next
}

/// Records of one shard in the Lambda Kinesis event format, from `first_sequence` on, each
/// with its Kinesis arrival time.
fn kinesis_event(first_sequence: u64, records: &[(Vec<u8>, DateTime<Utc>)]) -> KinesisEvent {
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, (data, arrival))| {
            let seq = format!(
                "4959033827149025660855969253836157109592157598913{:07}",
                first_sequence + i as u64
            );
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "zillow:1",
                    "sequenceNumber": seq,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": arrival.timestamp_millis() as f64 / 1000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/realty-metrics-function-role",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/realty-listing-events-stream",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a Kinesis event")
}

/// An event's bytes, arriving in Kinesis a second after it was observed.
fn arriving(event: &Value) -> (Vec<u8>, DateTime<Utc>) {
    let observed: DateTime<Utc> =
        serde_json::from_value(event["observed_at"].clone()).expect("observed_at");
    (
        serde_json::to_vec(event).expect("json"),
        observed + Duration::seconds(1),
    )
}

async fn fresh_function(aws: &TestAws) -> Result<(StackResources, MetricsFunction), Failed> {
    let stack = aws.provision(&[]).await;
    let resources = StackResources::from_outputs(&stack.outputs)?;
    let function = MetricsFunction::new(&aws.function_sdk("MetricsFunction").await, &resources);
    Ok((resources, function))
}

/// Delivers a batch once and says whether Lambda would have to re-deliver part of it.
async fn deliver_once(function: &MetricsFunction, event: KinesisEvent) -> bool {
    let (response, _) = function.handle(event).await;
    response.batch_item_failures.is_empty()
}

/// Delivers a batch as Lambda does until it goes through or Lambda would give up on it
/// (`MaximumRetryAttempts`, a few attempts here): `false` if it was discarded.
async fn deliver(function: &MetricsFunction, event: KinesisEvent) -> bool {
    for _ in 0..3 {
        if deliver_once(function, event.clone()).await {
            return true;
        }
    }
    false
}

async fn live_market(
    aws: &TestAws,
    resources: &StackResources,
    scope: &Scope,
) -> Result<Option<MarketLiveItem>, Failed> {
    let client = aws_sdk_dynamodb::Client::new(&aws.sdk_config().await);
    let out = client
        .get_item()
        .table_name(&resources.market_table)
        .key("pk", AttributeValue::S(scope.key()))
        .key("sk", AttributeValue::S(LIVE_SORT_KEY.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .explain("GetItem")?;
    Ok(match out.item {
        Some(item) => Some(serde_dynamo::from_item(item)?),
        None => None,
    })
}

async fn listing_item(
    aws: &TestAws,
    resources: &StackResources,
    id: &str,
) -> Result<Option<ListingItem>, Failed> {
    let client = aws_sdk_dynamodb::Client::new(&aws.sdk_config().await);
    let out = client
        .get_item()
        .table_name(&resources.listing_table)
        .key("listing_id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .explain("GetItem")?;
    Ok(match out.item {
        Some(item) => Some(serde_dynamo::from_item(item)?),
        None => None,
    })
}

/// Every message of the error sink, with its body's size.
async fn poison_messages(
    aws: &TestAws,
    resources: &StackResources,
    expected: usize,
) -> Result<Vec<(PoisonRecord, usize)>, Failed> {
    let sqs = aws_sdk_sqs::Client::new(&aws.sdk_config().await);
    let mut out = Vec::new();
    for _ in 0..5 {
        let page = sqs
            .receive_message()
            .queue_url(&resources.poison_record_queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .explain("ReceiveMessage")?;
        for m in page.messages() {
            let body = m.body().unwrap_or_default();
            out.push((serde_json::from_str(body)?, body.len()));
        }
        if out.len() >= expected {
            break;
        }
    }
    Ok(out)
}

/// Issue 12, point 1: a valid-looking event whose listing item would exceed DynamoDB's
/// 400 KB failed every delivery with the innocent records of its batch; after Lambda
/// discarded the batch, a normal cut of that listing counted it again (3 active for 2).
async fn a_450_kb_address_line_is_rejected_and_never_counted_twice(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let (resources, function) = fresh_function(&aws).await?;
    let innocent = new_event(7_001, t0(), 40_000_000);
    let mut huge = new_event(7_002, t0() + Duration::seconds(5), 50_000_000);
    huge["listing"]["address"]["line"] = json!("9".repeat(450 * 1024));
    let batch = kinesis_event(1, &[arriving(&innocent), arriving(&huge)]);
    let (response, outcomes) = function.handle(batch).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!(
            "the batch failed: {:?}",
            outcomes.first().and_then(|o| o.error.clone())
        ),
    )?;
    ensure(
        listing_item(&aws, &resources, "zillow:7001")
            .await?
            .is_some(),
        "the innocent record of the batch was not applied",
    )?;
    let sunk = poison_messages(&aws, &resources, 1).await?;
    ensure(
        sunk.len() == 1
            && sunk[0].0.reason_kind == "invalid_listing"
            && sunk[0].0.reason.contains("address.line"),
        format!(
            "error sink: {:?}",
            sunk.iter().map(|(p, _)| &p.reason).collect::<Vec<_>>()
        ),
    )?;

    // The same listing, now with a normal address, and a cut: two listings, two active.
    let normal = new_event(7_002, t0() + Duration::seconds(5), 50_000_000);
    let later = cut(&normal, t0() + Duration::minutes(10), 45_000_000);
    ensure(
        deliver(&function, kinesis_event(10, &[arriving(&later)])).await,
        "a normal cut failed",
    )?;
    let market = live_market(&aws, &resources, &Scope::city("nashville-tn"))
        .await?
        .ok_or("no live market item")?;
    ensure(
        market.active == 2,
        format!("active_listings {} for 2 listings", market.active),
    )
}

/// Issue 12, point 1: a 3,000-character postal code made a market key over DynamoDB's
/// 2,048-byte partition-key limit and blocked the shard.
async fn a_3000_character_postal_code_is_rejected_and_the_shard_goes_on(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let (resources, function) = fresh_function(&aws).await?;
    let before = new_event(7_101, t0(), 40_000_000);
    let mut long = new_event(7_102, t0() + Duration::seconds(1), 41_000_000);
    let postal = "K".repeat(3_000);
    long["listing"]["address"]["postal_code"] = json!(postal);
    long["listing"]["market"]["zip"] = json!(postal);
    let after = new_event(7_103, t0() + Duration::seconds(2), 42_000_000);
    let batch = kinesis_event(1, &[arriving(&before), arriving(&long), arriving(&after)]);
    ensure(
        deliver_once(&function, batch).await,
        "the batch failed: the shard is blocked",
    )?;
    for id in ["zillow:7101", "zillow:7103"] {
        ensure(
            listing_item(&aws, &resources, id).await?.is_some(),
            format!("{id} was not applied"),
        )?;
    }
    ensure(
        listing_item(&aws, &resources, "zillow:7102")
            .await?
            .is_none(),
        "the listing with a 3,000-character postal code was applied",
    )?;
    let sunk = poison_messages(&aws, &resources, 1).await?;
    ensure(
        sunk.len() == 1 && sunk[0].0.reason.contains("postal_code"),
        format!(
            "error sink: {:?}",
            sunk.iter().map(|(p, _)| &p.reason).collect::<Vec<_>>()
        ),
    )?;
    let market = live_market(&aws, &resources, &Scope::city("nashville-tn"))
        .await?
        .ok_or("no live market item")?;
    ensure(market.active == 2, format!("{} active", market.active))
}

/// Issue 12, point 2: the reasons of two records with a 600 KB `status` quoted the whole
/// value; SendMessageBatch refused the 1.2 MB request (`BatchRequestTooLong`) on every
/// attempt and failed the whole batch, good records included.
async fn two_600_kb_statuses_reach_the_error_sink_bounded(aws: Arc<TestAws>) -> Result<(), Failed> {
    let (resources, function) = fresh_function(&aws).await?;
    let good = new_event(7_201, t0(), 40_000_000);
    let mut records = vec![arriving(&good)];
    for (i, zpid) in [7_202, 7_203].into_iter().enumerate() {
        let mut bad = new_event(zpid, t0() + Duration::seconds(1 + i as i64), 40_000_000);
        bad["listing"]["status"] = json!("a".repeat(600 * 1024));
        records.push(arriving(&bad));
    }
    let also_good = new_event(7_204, t0() + Duration::seconds(3), 41_000_000);
    records.push(arriving(&also_good));
    let (response, outcomes) = function.handle(kinesis_event(1, &records)).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!(
            "the batch failed: {:?}",
            outcomes.first().and_then(|o| o.error.clone())
        ),
    )?;
    for id in ["zillow:7201", "zillow:7204"] {
        ensure(
            listing_item(&aws, &resources, id).await?.is_some(),
            format!("{id} was not applied"),
        )?;
    }
    let sunk = poison_messages(&aws, &resources, 2).await?;
    ensure(sunk.len() == 2, format!("{} poison messages", sunk.len()))?;
    for (record, body_bytes) in &sunk {
        ensure(
            record.reason_kind == "malformed" && record.data_bytes > 600 * 1024,
            format!("{} {}", record.reason_kind, record.data_bytes),
        )?;
        ensure(
            *body_bytes <= 16 * 1024 && record.reason.len() <= 1024,
            format!(
                "a poison message of {body_bytes} bytes, reason of {} bytes",
                record.reason.len()
            ),
        )?;
    }
    Ok(())
}

/// Issue 12, point 4: one event dated 2100 moved a market's as-of time to 2100, and a real
/// change of its listing was then skipped as already applied.
async fn an_event_dated_2100_goes_to_the_error_sink(aws: Arc<TestAws>) -> Result<(), Failed> {
    let (resources, function) = fresh_function(&aws).await?;
    let listed = new_event(7_301, t0(), 40_000_000);
    ensure(
        deliver(&function, kinesis_event(1, &[arriving(&listed)])).await,
        "the first batch failed",
    )?;
    let year_2100 = Utc
        .with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
        .single()
        .ok_or("2100")?;
    // Stamped 2100 by a broken clock, it reached Kinesis in our time: that is its arrival.
    let future = cut(&listed, year_2100, 30_000_000);
    let future_bytes = serde_json::to_vec(&future)?;
    let real_cut = cut(&listed, t0() + Duration::minutes(10), 28_400_000);
    let arrival = t0() + Duration::minutes(10) + Duration::seconds(1);
    ensure(
        deliver(
            &function,
            kinesis_event(2, &[(future_bytes, t0() + Duration::minutes(9))]),
        )
        .await,
        "the batch with the 2100 event failed",
    )?;
    ensure(
        deliver(
            &function,
            kinesis_event(3, &[(serde_json::to_vec(&real_cut)?, arrival)]),
        )
        .await,
        "the real cut's batch failed",
    )?;
    let sunk = poison_messages(&aws, &resources, 1).await?;
    ensure(
        sunk.len() == 1 && sunk[0].0.reason.contains("2100"),
        format!(
            "error sink: {:?}",
            sunk.iter().map(|(p, _)| &p.reason).collect::<Vec<_>>()
        ),
    )?;
    let item = listing_item(&aws, &resources, "zillow:7301")
        .await?
        .ok_or("no listing item")?;
    ensure(
        item.listing.price_minor == 28_400_000,
        format!(
            "the real cut was skipped: price {} observed {}",
            item.listing.price_minor, item.observed_at
        ),
    )?;
    let market = live_market(&aws, &resources, &Scope::city("nashville-tn"))
        .await?
        .ok_or("no live market item")?;
    ensure(
        market.as_of == Some(t0() + Duration::minutes(10)) && market.active_with_cut == 1,
        format!(
            "market as of {:?}, {} active with a cut",
            market.as_of, market.active_with_cut
        ),
    )
}
