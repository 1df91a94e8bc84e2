//! Decode + aggregate of a 1,000-record Kinesis batch (the metrics function's compute, no
//! I/O), side by side with serde_json parsing the same bytes, and their throughput ratio.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, Throughput};
use realty_metrics::batch::plan_batch;
use realty_metrics::memory::MemoryStores;
use realty_metrics::ports::StoredAggregate;
use realty_metrics::process::{InputRecord, decode_records, process_batch};
use realty_model::listing::{ListingEvent, ListingId, ListingSource};
use realty_model::markets::SourceKind;
use realty_sources::normalize_file;

const BATCH: usize = 1_000;

/// 1,000 events built from the real Nashville page: new listings, then price changes.
fn batch() -> Vec<InputRecord> {
    let page = include_bytes!(
        "../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
    );
    let at = Utc
        .with_ymd_and_hms(2025, 9, 12, 15, 0, 0)
        .single()
        .expect("time");
    let listings = normalize_file(SourceKind::Zillow, page, at)
        .expect("the fixture normalizes")
        .listings;
    (0..BATCH)
        .map(|i| {
            let mut listing = listings[i % listings.len()].clone();
            listing.id = ListingId::new(ListingSource::Zillow, &(900_000 + i % 600).to_string())
                .expect("id");
            listing.observed_at = at + Duration::seconds(i as i64);
            let event = if i < 600 {
                ListingEvent::new_listing(listing, "poll-bench")
            } else {
                let previous = listing.clone();
                listing.price_minor -= listing.price_minor / 10;
                ListingEvent::changed(&previous, listing, "poll-bench").expect("a change")
            };
            InputRecord {
                sequence_number: format!(
                    "{}",
                    49_590_338_271_490_256_608_559_692_538_u128 + i as u128
                ),
                approximate_arrival: event.observed_at,
                data: event.encode().expect("encodes"),
            }
        })
        .collect()
}

/// What the metrics function computes for a batch, without its stores.
fn decode_and_aggregate(records: &[InputRecord]) -> usize {
    let decoded = decode_records("shardId-000000000000", records);
    let plan = plan_batch(
        decoded.events,
        &realty_model::state::StoredStates::default(),
    );
    let mut markets: BTreeMap<String, StoredAggregate> = BTreeMap::new();
    for (scope, contributions) in &plan.scopes {
        let item = markets.entry(scope.key()).or_default();
        for (_, observed_at, contribution) in contributions {
            item.aggregate.apply(contribution);
            item.aggregate.advance_to(*observed_at);
        }
        black_box(item.aggregate.figures());
    }
    markets.len() + plan.states.len()
}

/// The whole batch workflow (`process_batch`: decode, data-lake lines, listing states,
/// markets with their snapshots) over in-memory stores, starting empty.
fn whole_workflow(runtime: &tokio::runtime::Runtime, records: &[InputRecord]) -> usize {
    let stores = MemoryStores::default();
    let ports = stores.ports();
    let outcome = runtime.block_on(process_batch(&ports, "shardId-000000000000", records));
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    outcome.stats.markets_updated
}

fn parse_only(records: &[InputRecord]) -> usize {
    records
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.data)
                .map_or(0, |v| v.as_object().map_or(0, |o| o.len()))
        })
        .sum()
}

fn main() {
    let records = batch();
    let bytes: u64 = records.iter().map(|r| r.data.len() as u64).sum();
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("metrics_batch_1000");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("parse_only", |b| b.iter(|| parse_only(black_box(&records))));
    group.bench_function("decode_and_aggregate", |b| {
        b.iter(|| decode_and_aggregate(black_box(&records)))
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    group.bench_function("whole_workflow", |b| {
        b.iter(|| whole_workflow(&runtime, black_box(&records)))
    });
    group.finish();
    criterion.final_summary();
    report_ratio(bytes);
}

/// Reads both means back from criterion's output and prints throughput and their ratio.
fn report_ratio(bytes: u64) {
    let mean_ns = |name: &str| -> Option<f64> {
        let dir = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into());
        let path = format!("{dir}/criterion/metrics_batch_1000/{name}/new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["mean"]["point_estimate"].as_f64()
    };
    match (
        mean_ns("parse_only"),
        mean_ns("decode_and_aggregate"),
        mean_ns("whole_workflow"),
    ) {
        (Some(parse), Some(compute), Some(whole)) => {
            let per_s = |ns: f64| BATCH as f64 / (ns / 1e9);
            println!(
                "metrics_batch_1000 ({bytes} bytes a batch): parse_only {:.0} events/s, decode_and_aggregate {:.0} events/s (ratio to parsing {:.3}), whole_workflow {:.0} events/s (ratio {:.3})",
                per_s(parse),
                per_s(compute),
                parse / compute,
                per_s(whole),
                parse / whole
            );
        }
        _ => println!("metrics_batch_1000: run without --test (or a filter) to measure the ratios"),
    }
}
