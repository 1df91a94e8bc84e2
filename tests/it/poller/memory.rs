//! The poller's memory against the largest market the docs promise: a market whose poll
//! state an import filled to its bound (`MAX_STATE_LISTINGS`, from a 100,000-row file), polled
//! with another market by the real bootstrap in a process of its own (the local Lambda
//! Runtime API, as `realty bench` runs it), its peak resident set read from `/proc`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use libtest_mimic::Failed;
use realty_aws::functions::importer::ImporterFunction;
use realty_infra::lambda_api::LambdaProcess;
use realty_model::listing::{Listing, ListingId, ListingSource};
use realty_model::markets::SourceKind;
use realty_poller::config::DEFAULT_POLL_CONCURRENCY;
use realty_poller::detect::MAX_STATE_LISTINGS;
use realty_poller::importer::{ImportRequest, ImportStatus, MAX_IMPORT_BYTES, import};
use realty_poller::memory::MemoryStream;
use realty_sources::file::write_csv;
use realty_sources::normalize_file;
use realty_tests::{TestAws, ensure};
use serde_json::json;

use super::helpers::{MARKETS, sim_of};
use crate::operations::{Setup, setup};

/// Rows of the import: distinct listings of one market, twice what its state takes.
const ROWS: usize = 100_000;

/// `ROWS` Nashville listings: the real page's, over and over, each with its own id and price.
fn nashville_listings(aws: &TestAws) -> Result<Vec<Listing>, Failed> {
    let page = std::fs::read(aws.project_root.join(
        "shared/sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json",
    ))?;
    let observed = Utc::now() - chrono::TimeDelta::hours(1);
    let real = normalize_file(SourceKind::Zillow, &page, observed)?.listings;
    (0..ROWS)
        .map(|i| {
            let mut listing = real[i % real.len()].clone();
            listing.id = ListingId::new(ListingSource::Zillow, &(2_000_000 + i).to_string())?;
            listing.price_minor += i as i64 * 100;
            Ok(listing)
        })
        .collect()
}

/// Imports `ROWS` Nashville listings through the importer's S3 adapters (the file, its
/// result, the poll state): the state takes `MAX_STATE_LISTINGS`, the rest are rejected by
/// line. Its events go to a stream in memory: the emulators' Kinesis takes 20-30 s a
/// PutRecords call of 500 under this load (50,000 events outlast the test's bound), and the
/// stream is not what this measures.
async fn import_rows(aws: &TestAws, s: &Setup) -> Result<(), Failed> {
    let mut file = Vec::new();
    write_csv(&nashville_listings(aws)?, &mut file)?;
    ensure(
        file.len() as u64 <= MAX_IMPORT_BYTES,
        format!("{} bytes: not one import", file.len()),
    )?;
    let key = "imports/nashville-history.csv";
    realty_aws::sdk::s3_client(&s.sdk)
        .put_object()
        .bucket(&s.resources.data_lake_bucket)
        .key(key)
        .body(file.into())
        .send()
        .await?;
    let function = ImporterFunction::new(&aws.function_sdk("ImporterFunction").await, &s.resources);
    let request = ImportRequest {
        bucket: s.resources.data_lake_bucket.clone(),
        key: key.to_owned(),
        version_id: None,
    };
    let stream = MemoryStream::default();
    let result = import(
        &request,
        &s.resources.data_lake_bucket,
        &function.objects,
        &stream,
        &function.states,
        None,
        Utc::now(),
    )
    .await?
    .result;
    ensure(
        stream.taken().len() == MAX_STATE_LISTINGS,
        "one event a listing taken",
    )?;
    ensure(
        result.status == ImportStatus::Done
            && (result.rows, result.new, result.rejected)
                == (ROWS, MAX_STATE_LISTINGS, ROWS - MAX_STATE_LISTINGS),
        format!(
            "{:?} rows {} new {} rejected {}: {:?}",
            result.status,
            result.rows,
            result.new,
            result.rejected,
            result.rejected_rows.first()
        ),
    )
}

/// The memory the template gives the poller, in bytes.
fn configured_memory(aws: &TestAws) -> Result<u64, Failed> {
    let template = aws.template();
    let megabytes = template
        .resources
        .get("PollerFunction")
        .and_then(|r| r.properties.get("MemorySize"))
        .and_then(serde_json::Value::as_u64)
        .ok_or("PollerFunction names no MemorySize")?;
    Ok(megabytes * 1024 * 1024)
}

/// A 100,000-row import for Nashville, then a poll of Nashville and Syracuse by the real
/// bootstrap: both markets are polled, and the memory the template gives the poller holds
/// what the market at the bound took over the idle process, once for each market a poll
/// reads at once (each could be one at the bound). Before, an import put every row into the market's state, which
/// the poller loads whole: about 65 MB of JSON for 100,000 rows, held several times, in a
/// 256 MB function that polls every market in one run.
pub(super) async fn a_100000_row_import_then_a_poll_stays_within_the_poller_s_memory(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let sim = sim_of(29, 40, realty_sim::FaultConfig::none()).await?;
    import_rows(&aws, &s).await?;
    s.set_key(SourceKind::Zillow, "test").await?;
    let memory = configured_memory(&aws)?;
    let log_dir = std::env::temp_dir().join(format!("realty-poller-memory-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let binary =
        crate::demo::workspace_binary(&aws.project_root, &log_dir, "realty-poller", "poller")
            .await?;
    let region = s
        .sdk
        .region()
        .map_or_else(|| "us-east-1".to_owned(), ToString::to_string);
    let mut env: Vec<(String, String)> = s
        .resources
        .to_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.extend(
        [
            ("AWS_ENDPOINT_URL", aws.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", region),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                (memory >> 20).to_string(),
            ),
            ("RUST_LOG", "warn".into()),
            ("REALTY_SOURCES", "zillow".into()),
            ("REALTY_ZILLOW_URL", sim.base_url()),
            ("REALTY_REQUESTS_PER_SECOND", "1000".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let log = log_dir.join("poller.log");
    let (process, _) = LambdaProcess::start(&binary, &env, &log, Duration::from_secs(60)).await?;
    let idle = process.peak_rss_bytes().unwrap_or_default();
    let invocation = process
        .invoke(json!({ "markets": MARKETS }), Duration::from_secs(600))
        .await?;
    let peak = process.peak_rss_bytes().ok_or("no VmHWM for the poller")?;
    process.stop();
    let summary = invocation
        .result
        .map_err(|e| format!("the poll failed: {e:?}"))?;
    eprintln!(
        "poller peak RSS {:.1} MiB (idle {:.1} MiB) against its {} MiB, a state of {MAX_STATE_LISTINGS} listings",
        peak as f64 / 1_048_576.0,
        idle as f64 / 1_048_576.0,
        memory >> 20
    );
    ensure(
        summary["markets"] == json!(2) && summary["failed_markets"] == json!(0),
        format!("every market polled: {summary}"),
    )?;
    // Each market read at once may be one at the bound: the memory holds as many as a poll
    // reads at once, over what the process holds idle.
    let held = idle + DEFAULT_POLL_CONCURRENCY as u64 * peak.saturating_sub(idle);
    ensure(
        held <= memory,
        format!(
            "{DEFAULT_POLL_CONCURRENCY} markets at the bound need {:.1} MiB ({:.1} MiB a market, {:.1} MiB idle), over the poller's {} MiB",
            held as f64 / 1_048_576.0,
            peak.saturating_sub(idle) as f64 / 1_048_576.0,
            idle as f64 / 1_048_576.0,
            memory >> 20
        ),
    )
}
