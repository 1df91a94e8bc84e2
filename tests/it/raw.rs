//! The lake's raw layer and partition layout on the local stack. A poll of a simulated
//! market keeps each API page it read under `raw/source=zillow/dt=<fetch day>/...`, gzipped,
//! with its poll id and times; `realty replay-raw` (the real binary) over those days finds
//! nothing to change, finds the one listing of a page altered in the bucket (as a parser
//! fix would read it differently) without publishing it, and `--apply` publishes that
//! listing alone. And a Firehose record lands under `listings/dt=<day it arrived>/`, as on
//! AWS, on both emulators.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use libtest_mimic::Failed;
use realty_model::listing::EventKind;
use realty_model::markets::SourceKind;
use realty_poller::run::PollRequest;
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{TestAws, ensure};

use crate::operations::{run, setup};

crate::async_tests!(
    replay_raw_finds_and_applies_only_what_parses_differently,
    a_firehose_record_lands_under_the_day_it_arrived,
);

const MARKET: &str = "nashville-tn";

async fn sim() -> Result<SimServer, Failed> {
    let config = SimConfig {
        seed: 18,
        market: MarketConfig {
            markets: vec![MARKET.into()],
            listings_per_market: 60,
            ..MarketConfig::default()
        },
        faults: FaultConfig::none(),
    };
    Ok(SimServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, Failed> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, Failed> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn stdout(output: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn replay_raw_finds_and_applies_only_what_parses_differently(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let sim = sim().await?;
    s.set_key(SourceKind::Zillow, "test-key-zillow").await?;
    let function = s.function(&sim).await?;
    let from: NaiveDate = Utc::now().date_naive();
    let summary = function
        .handle(
            &PollRequest {
                markets: vec![MARKET.into()],
                ..PollRequest::default()
            },
            Utc::now(),
        )
        .await;
    let to: NaiveDate = Utc::now().date_naive();
    let market = summary
        .per_market
        .iter()
        .find(|m| m.source == "zillow")
        .ok_or_else(|| format!("no zillow read: {summary:?}"))?;
    ensure(
        market.error.is_none() && market.pages > 0 && market.new > 0,
        format!("{market:?}"),
    )?;
    ensure(
        market.raw_pages_archived == market.pages && market.raw_pages_failed == 0,
        format!("every page kept: {market:?}"),
    )?;
    let published = s.events().await?;

    // Each page under its key, with its poll id and times, gzipped JSON.
    let s3 = realty_aws::sdk::s3_client(&s.sdk);
    let bucket = &s.resources.data_lake_bucket;
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("raw/")
        .send()
        .await?;
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    ensure(
        keys.len() == market.pages as usize,
        format!("{} pages read, kept: {keys:?}", market.pages),
    )?;
    let poll_id = format!("{}-zillow-{MARKET}", summary.poll_id);
    let mut first: Option<(String, serde_json::Value, HashMap<String, String>)> = None;
    for key in &keys {
        let fetched_day = [from, to]
            .iter()
            .any(|day| key.starts_with(&format!("raw/source=zillow/dt={day}/{MARKET}/sale/")));
        ensure(fetched_day && key.ends_with(".json.gz"), key.clone())?;
        let object = s3.get_object().bucket(bucket).key(key).send().await?;
        let metadata = object.metadata().cloned().unwrap_or_default();
        ensure(
            metadata.get("poll-id") == Some(&poll_id),
            format!("{key}: {metadata:?}"),
        )?;
        let fetched_at = metadata
            .get("fetched-at")
            .ok_or_else(|| format!("{key}: no fetched-at"))?;
        let fetched_at = chrono::DateTime::parse_from_rfc3339(fetched_at)?;
        ensure(
            key.contains(&format!("/dt={}/", fetched_at.date_naive())),
            format!("{key} is under its fetch day {fetched_at}"),
        )?;
        let body = gunzip(&object.body.collect().await?.into_bytes())?;
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        if first.is_none() && key.ends_with("-0001.json.gz") {
            first = Some((key.clone(), page, metadata));
        }
    }
    let cli = s.local_cli(&aws).await?;
    let dir = cli.state_dir.clone();
    let (from_arg, to_arg) = (from.to_string(), to.to_string());
    let replay = |apply: bool| {
        let mut args = vec!["replay-raw", "--from", &from_arg, "--to", &to_arg];
        if apply {
            args.push("--apply");
        }
        cli.command(&args)
    };

    // Today's parser reads the pages as the poll did: nothing to change.
    let same = run(replay(false), &dir, "replay-raw-same").await?;
    ensure(same.status.success(), stdout(&same))?;
    ensure(
        stdout(&same).contains("would publish 0 events"),
        stdout(&same),
    )?;

    // A page as a fixed parser would read it: one listing's price differs.
    let (key, mut page, metadata) = first.ok_or("no first page kept")?;
    let prop = page["props"]
        .as_array_mut()
        .and_then(|props| props.first_mut())
        .ok_or("the first page has no listing")?;
    let zpid = prop["zpid"].to_string().trim_matches('"').to_owned();
    let price = prop["price"].as_i64().ok_or("no price")?;
    prop["price"] = serde_json::json!(price - 7_000);
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .set_metadata(Some(metadata))
        .body(gzip(&serde_json::to_vec(&page)?)?.into())
        .send()
        .await?;
    let id = format!("zillow:{zpid}");

    let dry = run(replay(false), &dir, "replay-raw-dry").await?;
    let out = stdout(&dry);
    ensure(dry.status.success(), out.clone())?;
    ensure(
        out.contains("would publish 1 events") && out.contains(&format!("changed  {id}: price")),
        out.clone(),
    )?;
    ensure(
        s.events().await?.len() == published.len(),
        "a dry run published",
    )?;

    let applied = run(replay(true), &dir, "replay-raw-apply").await?;
    let out = stdout(&applied);
    ensure(applied.status.success(), out.clone())?;
    ensure(out.contains("published 1 events"), out.clone())?;
    let events = s.events().await?;
    ensure(
        events.len() == published.len() + 1,
        format!("{} events after {}", events.len(), published.len()),
    )?;
    // The stream's shards are read one after another: find the replay's event by its poll.
    let replayed: Vec<_> = events
        .iter()
        .filter(|e| e.poll_id.starts_with("replay-raw-"))
        .collect();
    ensure(replayed.len() == 1, format!("{replayed:?}"))?;
    let event = replayed[0];
    ensure(
        event.listing.id.as_str() == id
            && event.listing.price_minor == (price - 7_000) * 100
            && matches!(event.kind, EventKind::Changed { .. }),
        format!("{event:?}"),
    )?;

    // Applied once: the state has it, so a second run changes nothing.
    let again = run(replay(true), &dir, "replay-raw-again").await?;
    ensure(again.status.success(), stdout(&again))?;
    ensure(
        stdout(&again).contains("published 0 events"),
        stdout(&again),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    sim.shutdown().await?;
    Ok(())
}

async fn a_firehose_record_lands_under_the_day_it_arrived(aws: Arc<TestAws>) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let firehose = aws_sdk_firehose::Client::new(&s.sdk);
    let before = Utc::now().date_naive();
    firehose
        .put_record_batch()
        .delivery_stream_name(&s.resources.delivery_stream)
        .records(
            aws_sdk_firehose::types::Record::builder()
                .data(aws_sdk_firehose::primitives::Blob::new(
                    b"{\"n\":1}\n".to_vec(),
                ))
                .build()?,
        )
        .send()
        .await?;
    let after = Utc::now().date_naive();
    let s3 = realty_aws::sdk::s3_client(&s.sdk);
    let mut keys = Vec::new();
    for _ in 0..60 {
        keys = s3
            .list_objects_v2()
            .bucket(&s.resources.data_lake_bucket)
            .prefix("listings/")
            .send()
            .await?
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        if !keys.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure(
        keys.len() == 1,
        format!("one object under listings/: {keys:?}"),
    )?;
    let key = &keys[0];
    let day_prefix = |day: NaiveDate| format!("listings/dt={day}/");
    ensure(
        key.starts_with(&day_prefix(before)) || key.starts_with(&day_prefix(after)),
        format!("{key} is not under listings/dt=<today>/"),
    )?;
    // The object itself, right under the partition, named as Firehose names it.
    let name = &key[day_prefix(before).len()..];
    ensure(
        !name.contains('/') && name.starts_with(s.resources.delivery_stream.as_str()),
        key.clone(),
    )?;
    Ok(())
}
