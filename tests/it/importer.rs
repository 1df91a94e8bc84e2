//! The S3 import source against a local stack: a file dropped under `imports/` in the lake
//! bucket reaches the importer as Lambda would deliver it (the bucket's S3 notification in
//! ImportQueue, read by the local SQS event source mapping), its good rows are published as
//! events and its bad rows named by line in the result object; dropping the same file again
//! publishes nothing new (even when the first delivery of its notification crashes: the
//! notification stays in the queue until an import finishes), and a file of an unknown format
//! gets a result saying so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use libtest_mimic::Failed;
use realty_aws::functions::importer::ImporterFunction;
use realty_infra::emulator::EmulatorKind;
use realty_infra::runner::{FunctionError, QueueMapping, StreamFunction};
use realty_model::listing::Listing;
use realty_model::markets::SourceKind;
use realty_poller::importer::{ImportRequest, ImportResult, ImportStatus, import, result_key};
use realty_sources::file::write_csv;
use realty_sources::normalize_file;
use realty_tests::{TestAws, ensure};

use crate::operations::{Setup, setup};

crate::async_tests!(
    a_dropped_file_is_imported_once_with_its_bad_rows_named_by_line,
    two_deliveries_of_one_file_at_once_publish_it_once,
    an_imported_move_leaves_the_listing_listed_in_its_new_city,
);

/// The importer as its SQS event source mapping invokes it; `crash_next` makes the next
/// invocation fail before it does anything (a crash or a timeout on Lambda).
struct ImporterHandler {
    function: ImporterFunction,
    crash_next: AtomicBool,
}

impl StreamFunction for ImporterHandler {
    type Event = SqsEvent;
    type Response = SqsBatchResponse;

    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, FunctionError> {
        if self.crash_next.swap(false, Ordering::SeqCst) {
            return Err(FunctionError {
                error_type: "Sandbox.Timedout".into(),
                message: "the test's crash".into(),
            });
        }
        Ok(Box::pin(self.function.handle(event, Utc::now())).await.0)
    }
}

/// Ten listings of the real Nashville page as CSV; line 3 priced in words and line 6
/// without a city.
fn file_with_bad_rows(listings: &[Listing]) -> Result<Vec<u8>, Failed> {
    let mut out = Vec::new();
    write_csv(&listings[..10], &mut out)?;
    let mut lines: Vec<String> = String::from_utf8(out)?.lines().map(str::to_owned).collect();
    let price = listings[1].price_minor.to_string();
    lines[2] = lines[2].replacen(&format!(",{price},"), ",call for price,", 1);
    let mut cityless = listings[4].clone();
    cityless.address.city.clear();
    let mut row = Vec::new();
    write_csv(&[cityless], &mut row)?;
    lines[5] = String::from_utf8(row)?
        .lines()
        .nth(1)
        .ok_or("a CSV row")?
        .to_owned();
    Ok(lines.join("\n").into_bytes())
}

/// Delivers the queue's notifications until the result of `key` is written (a newer one
/// than `after`, when given): LocalStack sends S3 notifications a moment after the write.
async fn imported(
    mapping: &mut QueueMapping<ImporterHandler>,
    s: &Setup,
    key: &str,
    after: Option<DateTime<Utc>>,
) -> Result<ImportResult, Failed> {
    let s3 = realty_aws::sdk::s3_client(&s.sdk);
    for _ in 0..100 {
        mapping.pump().await?;
        if let Ok(object) = s3
            .get_object()
            .bucket(&s.resources.data_lake_bucket)
            .key(result_key(key))
            .send()
            .await
        {
            let body = object.body.collect().await?.into_bytes();
            let result: ImportResult = serde_json::from_slice(&body)?;
            if after.is_none_or(|t| result.finished_at > t) {
                return Ok(result);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "no result for {key} after 20 s; runner: {:?}",
        mapping.stats
    )
    .into())
}

async fn a_dropped_file_is_imported_once_with_its_bad_rows_named_by_line(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let function = ImporterFunction::new(&aws.function_sdk("ImporterFunction").await, &s.resources);
    let mut mapping = QueueMapping::new(
        &s.sdk,
        &aws.template(),
        &s.stack,
        "ImporterFunction",
        ImporterHandler {
            function,
            crash_next: AtomicBool::new(false),
        },
    )
    .await?;
    ensure(
        mapping.settings.batch_size == 1 && mapping.settings.report_batch_item_failures,
        format!("{:?}", mapping.settings),
    )?;
    let page = std::fs::read(aws.project_root.join(
        "shared/sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json",
    ))?;
    let listings = normalize_file(SourceKind::Zillow, &page, Utc::now())?.listings;
    ensure(listings.len() >= 10, "the fixture has ten listings")?;
    let file = file_with_bad_rows(&listings)?;
    let s3 = realty_aws::sdk::s3_client(&s.sdk);
    let key = "imports/nashville.csv";
    s3.put_object()
        .bucket(&s.resources.data_lake_bucket)
        .key(key)
        .body(file.clone().into())
        .send()
        .await?;

    let first = imported(&mut mapping, &s, key, None).await?;
    ensure(
        first.status == ImportStatus::Done
            && (first.rows, first.rejected, first.published, first.new) == (10, 2, 8, 8),
        format!("{first:?}"),
    )?;
    let lines: Vec<usize> = first.rejected_rows.iter().map(|r| r.line).collect();
    ensure(lines == [3, 6], format!("{:?}", first.rejected_rows))?;
    ensure(
        first.rejected_rows[0].reason.contains("price_minor")
            && first.rejected_rows[1].reason == "city: empty",
        format!("{:?}", first.rejected_rows),
    )?;
    let events = s.events().await?;
    let bad = [listings[1].id.as_str(), listings[4].id.as_str()];
    ensure(
        events.len() == 8 && events.iter().all(|e| !bad.contains(&e.listing.id.as_str())),
        format!("{} events", events.len()),
    )?;

    // The same file dropped again, and the first delivery of its notification crashes: the
    // notification stays in the queue, the next delivery imports it, nothing new published.
    mapping.function().crash_next.store(true, Ordering::SeqCst);
    s3.put_object()
        .bucket(&s.resources.data_lake_bucket)
        .key(key)
        .body(file.into())
        .send()
        .await?;
    let second = imported(&mut mapping, &s, key, Some(first.finished_at)).await?;
    ensure(
        second.status == ImportStatus::Done
            && (second.published, second.unchanged, second.rejected) == (0, 8, 2),
        format!("{second:?}"),
    )?;
    ensure(s.events().await?.len() == 8, "the second drop published")?;
    ensure(
        mapping.stats.failed == 1 && !mapping.function().crash_next.load(Ordering::SeqCst),
        format!("the crash was not delivered again: {:?}", mapping.stats),
    )?;

    // A spreadsheet is no export: rejected, saying why, and not retried.
    let sheet = "imports/listings.xlsx";
    s3.put_object()
        .bucket(&s.resources.data_lake_bucket)
        .key(sheet)
        .body(b"PK\x03\x04".to_vec().into())
        .send()
        .await?;
    let rejected = imported(&mut mapping, &s, sheet, None).await?;
    ensure(
        rejected.status == ImportStatus::Rejected
            && rejected
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("unknown format")),
        format!("{rejected:?}"),
    )?;
    // A file corrected by uploading it again before its first version was imported: the
    // first version's notification (current no more) imports nothing, the second's imports
    // the correction (the first listing's price, at the same instant: a change) and the
    // listing rejected before (new), and the result is the second version's.
    let fix = "imports/fix.csv";
    let mut corrected = listings[..3].to_vec();
    let mut wrong = Vec::new();
    write_csv(&corrected, &mut wrong)?;
    corrected[0].price_minor -= 1_000_000;
    let mut right = Vec::new();
    write_csv(&corrected, &mut right)?;
    let mut versions = Vec::new();
    for body in [wrong, right] {
        let put = s3
            .put_object()
            .bucket(&s.resources.data_lake_bucket)
            .key(fix)
            .body(body.into())
            .send()
            .await?;
        versions.push(put.version_id().unwrap_or_default().to_owned());
    }
    let fixed = imported(&mut mapping, &s, fix, None).await?;
    mapping.drain(20).await?;
    ensure(
        fixed.status == ImportStatus::Done
            && (fixed.published, fixed.changed, fixed.new) == (2, 1, 1)
            // moto's notifications name no version: each imports the key's current one.
            && match &fixed.version_id {
                Some(version) => *version == versions[1],
                None => aws.kind == Some(EmulatorKind::Moto),
            },
        format!("{fixed:?}, versions {versions:?}"),
    )?;
    let events = s.events().await?;
    let prices: Vec<i64> = events
        .iter()
        .filter(|e| e.listing.id == corrected[0].id)
        .map(|e| e.listing.price_minor)
        .collect();
    ensure(
        prices.last() == Some(&corrected[0].price_minor) && events.len() == 8 + 2,
        format!(
            "{} events, prices of the corrected listing {prices:?}",
            events.len()
        ),
    )?;
    ensure(
        mapping.stats.failed == 1,
        format!("messages failed: {:?}", mapping.stats),
    )?;
    let dead = s
        .stack
        .outputs
        .get("ImportDeadLetterQueueUrl")
        .ok_or("no ImportDeadLetterQueueUrl output")?;
    let waiting = aws_sdk_sqs::Client::new(&s.sdk)
        .get_queue_attributes()
        .queue_url(dead)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await?
        .attributes
        .and_then(|mut a| {
            a.remove(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        });
    ensure(
        waiting.as_deref() == Some("0"),
        format!("dead letters: {waiting:?}"),
    )?;
    Ok(())
}

/// Two deliveries of one object at once (the importer runs two; S3 and SQS deliver at least
/// once), against the emulator's S3 and its conditional writes: one claims the import and
/// publishes, the other finds the claim (or, had the first finished, its result) and
/// publishes nothing; delivered again, it finds the result `done`. Each event reaches the
/// stream once (before, both replayed the file and published every event twice).
async fn two_deliveries_of_one_file_at_once_publish_it_once(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let function = ImporterFunction::new(&aws.function_sdk("ImporterFunction").await, &s.resources);
    let page = std::fs::read(aws.project_root.join(
        "shared/sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json",
    ))?;
    let listings = normalize_file(SourceKind::Zillow, &page, Utc::now())?.listings;
    let mut file = Vec::new();
    write_csv(&listings[..6], &mut file)?;
    let key = "imports/twice.csv";
    let put = realty_aws::sdk::s3_client(&s.sdk)
        .put_object()
        .bucket(&s.resources.data_lake_bucket)
        .key(key)
        .body(file.into())
        .send()
        .await?;
    let request = ImportRequest {
        bucket: s.resources.data_lake_bucket.clone(),
        key: key.to_owned(),
        version_id: put.version_id().map(str::to_owned),
    };
    let deliver = || {
        import(
            &request,
            &s.resources.data_lake_bucket,
            &function.objects,
            &function.publisher,
            &function.states,
            None,
            Utc::now(),
        )
    };
    let (a, b) = tokio::join!(deliver(), deliver());
    let (a, b) = (a?, b?);
    let events = s.events().await?;
    ensure(
        events.len() == 6,
        format!("{} events for 6 rows: {a:?} {b:?}", events.len()),
    )?;
    let (held, waited) = if a.result.published > 0 {
        (a, b)
    } else {
        (b, a)
    };
    ensure(
        held.result.status == ImportStatus::Done
            && held.result.published == 6
            && (waited.claimed_elsewhere || waited.already_done)
            && waited.result.published == 0,
        format!("{held:?} {waited:?}"),
    )?;
    ensure(
        waited.retry() == waited.claimed_elsewhere,
        "a delivery that found a claim is retried",
    )?;
    let again = deliver().await?;
    ensure(
        again.result.status == ImportStatus::Done && !again.retry(),
        format!("{again:?}"),
    )?;
    ensure(
        s.events().await?.len() == 6,
        "the delivery made again published",
    )?;
    Ok(())
}

/// An imported history that moves a listing from Nashville to Syracuse, after a poll of both
/// (the simulator, which lists neither copy): the listing goes into Syracuse's poll state
/// alone, Nashville's next complete read delists nothing, and the metrics function holds it
/// listed in Syracuse. Before, both states kept it: that read delisted it, and the
/// delisting took it out of Syracuse, whose state never sent it again.
async fn an_imported_move_leaves_the_listing_listed_in_its_new_city(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    use realty_model::listing::{EventKind, MarketKey};
    use realty_model::state::ListingStore as _;
    use realty_poller::ports::PollStateStore as _;
    let s = setup(&aws).await?;
    let sim = crate::poller::sim_of(23, 40, realty_sim::FaultConfig::none()).await?;
    let poller = crate::poller::source_poller(&aws, &s.resources, &sim, SourceKind::Zillow).await?;
    let first = crate::poller::poll(&poller, &sim).await;
    ensure(
        first.failed_markets == 0 && first.new > 0,
        format!("{first:?}"),
    )?;
    let page = std::fs::read(aws.project_root.join(
        "shared/sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json",
    ))?;
    let now = Utc::now();
    let mut in_nashville = normalize_file(SourceKind::Zillow, &page, now)?
        .listings
        .remove(0);
    in_nashville.observed_at = now - chrono::TimeDelta::hours(2);
    let mut in_syracuse = in_nashville.clone();
    in_syracuse.address.city = "Syracuse".into();
    in_syracuse.address.state = "NY".into();
    in_syracuse.address.postal_code = Some("13202".into());
    in_syracuse.market = MarketKey::for_address(&in_syracuse.address)?;
    in_syracuse.observed_at = now - chrono::TimeDelta::hours(1);
    let id = in_nashville.id.as_str().to_owned();
    let mut file = Vec::new();
    // Newest row first: the order of the rows decides nothing.
    write_csv(&[in_syracuse.clone(), in_nashville], &mut file)?;
    let key = "imports/moved.csv";
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
    let imported = import(
        &request,
        &s.resources.data_lake_bucket,
        &function.objects,
        &function.publisher,
        &function.states,
        None,
        now,
    )
    .await?
    .result;
    ensure(
        imported.status == ImportStatus::Done && (imported.new, imported.stale) == (1, 1),
        format!("{imported:?}"),
    )?;
    let held = |state: &str| {
        let states = function.states.clone();
        let state = state.to_owned();
        let id = id.clone();
        async move { Ok::<bool, Failed>(states.load(&state).await?.state.listings.contains_key(&id)) }
    };
    ensure(
        !held("zillow/nashville-tn").await? && held("zillow/syracuse-ny").await?,
        "the listing is in Syracuse's poll state alone",
    )?;
    // Nashville's next read (the simulator lists the listing in neither city: a read of
    // Syracuse would delist it there, as it should).
    let nashville = realty_poller::run::PollRequest {
        markets: vec!["nashville-tn".into()],
        ..Default::default()
    };
    let second = Box::pin(poller.poll(&nashville, sim.handle().now())).await;
    ensure(
        second.failed_markets == 0 && second.per_market.iter().all(|m| m.complete),
        format!("{second:?}"),
    )?;
    let delisted: Vec<String> = s
        .events()
        .await?
        .into_iter()
        .filter(|e| e.kind == EventKind::Delisted && e.listing.id.as_str() == id)
        .map(|e| e.poll_id)
        .collect();
    ensure(delisted.is_empty(), format!("delisted by {delisted:?}"))?;
    let mut metrics = realty_infra::runner::Mapping::new(
        &s.sdk,
        &aws.template(),
        &s.stack,
        "MetricsFunction",
        realty_tests::MetricsHandler(realty_aws::functions::metrics::MetricsFunction::new(
            &aws.function_sdk("MetricsFunction").await,
            &s.resources,
        )),
    )
    .await?;
    crate::demo::pump_until_quiet(&mut metrics).await?;
    let operator = crate::metrics::operator(&aws, &s.resources).await;
    let states = operator.listings.get_states(&[id.as_str()]).await?;
    let state = states.get(id.as_str()).ok_or("no listing state")?;
    ensure(
        !state.delisted && state.listing.market.city_state == "syracuse-ny",
        format!(
            "delisted {}, in {}",
            state.delisted, state.listing.market.city_state
        ),
    )
}
