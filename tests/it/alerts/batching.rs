//! The metrics function's Kinesis batching does not change the alerts it causes.

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use libtest_mimic::Failed;
use realty_tests::{TestAws, ensure};
use serde_json::{Value, json};

use super::helpers::{drain, lambda_event, stack, subscribe};

/// One listing's events in the Kinesis format, from events/metrics-kinesis.json's first
/// record: seen at $600,000, cut 20 % to $480,000, raised back to $600,000, cut 25 % to
/// $450,000, five minutes apart.
fn cut_raise_cut_events() -> Result<KinesisEvent, Failed> {
    let sample: Value = serde_json::from_str(include_str!("../../../events/metrics-kinesis.json"))?;
    let template = sample["Records"][0].clone();
    let first: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(template["kinesis"]["data"].as_str().ok_or("no data")?)?,
    )?;
    let start = chrono::DateTime::parse_from_rfc3339("2025-09-12T15:40:02Z")?;
    let mut records = Vec::new();
    let mut old: Option<i64> = None;
    for (i, dollars) in [600_000i64, 480_000, 600_000, 450_000]
        .into_iter()
        .enumerate()
    {
        let price = dollars * 100;
        let at = start + chrono::Duration::minutes(5 * i as i64);
        let mut event = first.clone();
        event["listing"]["price_minor"] = json!(price);
        event["listing"]["observed_at"] = json!(at.to_rfc3339());
        event["observed_at"] = json!(at.to_rfc3339());
        if let Some(old) = old {
            event["kind"] = json!("changed");
            event["listing"]["previous_price_minor"] = json!(old);
            event["changes"] =
                json!({"price": {"old": old, "new": price}, "status": null, "fields": []});
        }
        old = Some(price);
        records.push(kinesis_record(&template, &event, 1000 + i, at.timestamp())?);
    }
    Ok(serde_json::from_value(json!({ "Records": records }))?)
}

/// `template` (a record of events/metrics-kinesis.json) carrying `event`, as the `n`th
/// record of the shard, arrived a second after `observed` (epoch seconds).
pub(crate) fn kinesis_record(
    template: &Value,
    event: &Value,
    n: usize,
    observed: i64,
) -> Result<Value, Failed> {
    let mut record = template.clone();
    let sequence = format!("4959033827149025660855969253836157109592157598913{n:07}");
    record["kinesis"]["sequenceNumber"] = json!(sequence);
    record["kinesis"]["approximateArrivalTimestamp"] = json!(observed + 1);
    record["kinesis"]["data"] =
        json!(base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(event)?));
    record["eventID"] = json!(format!("shardId-000000000000:{sequence}"));
    Ok(record)
}

/// The alert ids subscribers receive when the real metrics function applies the events in
/// Kinesis batches of the given sizes and the alerts function reads the table's stream.
async fn alerts_after_metrics_batches(
    aws: &TestAws,
    cuts: &[usize],
) -> Result<Vec<String>, Failed> {
    let stack = stack(aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let metrics = realty_aws::functions::metrics::MetricsFunction::new(
        &aws.function_sdk("MetricsFunction").await,
        &stack.resources,
    );
    let events = cut_raise_cut_events()?;
    let mut next = 0;
    for size in cuts {
        let mut part = events.clone();
        part.records = events.records[next..next + size].to_vec();
        next += size;
        let (response, _) = metrics.handle(part).await;
        ensure(
            response.batch_item_failures.is_empty(),
            format!("metrics failed: {:?}", response.batch_item_failures),
        )?;
    }
    let records = stack.stream_reader().next_records().await?;
    ensure(
        records.len() == cuts.len(),
        format!(
            "{} listing writes for {} batches",
            records.len(),
            cuts.len()
        ),
    )?;
    let (response, outcome) = stack.function.handle(lambda_event(&stack, &records)?).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!("alerts failed: {:?}", outcome.error),
    )?;
    let mut ids: Vec<String> = drain(&stack, &everything)
        .await?
        .into_iter()
        .map(|r| r.body.alert_id)
        .collect();
    ids.sort();
    Ok(ids)
}

/// The metrics function writes a listing once per Kinesis batch; the alerts it causes are the
/// same however the stream was cut: each cut alerts once, under its own event's version,
/// even when a rise follows it in the same batch, or the listing was first seen in it.
pub(super) async fn the_same_events_fire_the_same_alerts_however_metrics_batched_them(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let one_each = alerts_after_metrics_batches(&aws, &[1, 1, 1, 1]).await?;
    let expected: Vec<String> = [1001, 1003]
        .iter()
        .map(|n| {
            format!("alert#price_drop#zillow:108712579#4959033827149025660855969253836157109592157598913{n:07}")
        })
        .collect();
    ensure(
        one_each == expected,
        format!("one event a batch: {one_each:?}"),
    )?;
    for cuts in [&[1, 3][..], &[2, 2], &[4]] {
        let got = alerts_after_metrics_batches(&aws, cuts).await?;
        ensure(got == expected, format!("batches of {cuts:?}: {got:?}"))?;
    }
    Ok(())
}
