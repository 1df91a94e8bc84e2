//! `realty invoke FUNCTION --event FILE`: the real handler, once, in-process, against a stack.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use realty_aws::functions::alerts::AlertsFunction;
use realty_aws::functions::metrics::{MetricsFunction, shard_of};
use realty_aws::functions::poller::build_poller;
use realty_metrics::ports::MarketStore;
use realty_poller::config::PollerConfig;
use realty_poller::run::PollRequest;

use crate::target::Target;
use crate::{sim, target};

pub async fn run(function: &str, event_file: &Path, stack: Option<&str>) -> Result<()> {
    if function == "poller"
        && let Some(name) = stack
    {
        // Its sources here are the simulator: against a deployed stack it would publish
        // simulated listings to its subscribers and lake, and delist its real ones.
        bail!(
            "`realty invoke poller` polls the local simulator, so it is not run against the \
             deployed stack {name}: invoke the stack's own poller instead (`aws lambda invoke \
             --function-name <its PollerFunction> --cli-binary-format raw-in-base64-out \
             --payload file://{} out.json`)",
            event_file.display()
        );
    }
    let text = std::fs::read_to_string(event_file)
        .with_context(|| format!("cannot read {}", event_file.display()))?;
    let target = target::resolve(stack).await?;
    match function {
        "metrics" => invoke_metrics(&text, event_file, &target).await,
        "poller" => invoke_poller(&text, event_file, &target).await,
        "alerts" => invoke_alerts(&text, event_file, &target, stack).await,
        other => bail!("no function {other:?}: poller, metrics or alerts"),
    }
}

/// The metrics handler on a Kinesis event, applied as a replay.
async fn invoke_metrics(text: &str, event_file: &Path, target: &Target) -> Result<()> {
    let event: KinesisEvent = serde_json::from_str(text)
        .with_context(|| format!("{} is not a Kinesis event", event_file.display()))?;
    let handler = MetricsFunction::new(&target.sdk, &target.resources);
    refuse_while_left_part_way(&handler.markets, &event).await?;
    let event = as_replay(event);
    let (response, outcomes) = Box::pin(handler.handle(event)).await;
    for outcome in &outcomes {
        eprintln!("{}", serde_json::to_string(&outcome.stats)?);
        if let Some(e) = &outcome.error {
            eprintln!("batch failed: {e}");
        }
    }
    println!("{}", serde_json::to_string_pretty(&response)?);
    failed_records(
        response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref()),
    )
}

/// The poller on a poll request, its sources the simulator (a running `realty sim serve`,
/// or one started for this call).
async fn invoke_poller(text: &str, event_file: &Path, target: &Target) -> Result<()> {
    let request: PollRequest = serde_json::from_str(text).with_context(|| {
        format!(
            "{} is not a poller event ({{\"markets\": [...]}})",
            event_file.display()
        )
    })?;
    // The sources are a running `realty sim serve`, or one started for this call.
    let (base_url, started) = match sim::running() {
        Some(url) => (url, None),
        None => {
            let server = realty_sim::SimServer::start(
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                sim::config(42, "", &request.markets, Some(1_000))?,
            )
            .await?;
            eprintln!(
                "started a simulated market at {} for this poll",
                server.base_url()
            );
            (server.base_url(), Some(server))
        }
    };
    let lookup = |name: &str| -> Option<String> {
        match name {
            "REALTY_ZILLOW_URL" | "REALTY_REALTOR_URL" => Some(base_url.clone()),
            "REALTY_RESO_URL" => Some(format!("{base_url}/reso/odata")),
            // A local simulator needs no politeness; a real API's limit stays the default.
            "REALTY_REQUESTS_PER_SECOND" => std::env::var(name).ok().or(Some("200".into())),
            other => std::env::var(other).ok(),
        }
    };
    let config = PollerConfig::from_lookup(lookup)?;
    // The simulator takes any RapidAPI key; RESO wants a token from its token endpoint.
    let keys = crate::sim::poller_keys(&base_url);
    let poller = build_poller(&target.sdk, &target.resources, &config, &keys)?;
    let summary = Box::pin(poller.poll(&request, chrono::Utc::now())).await;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(server) = started {
        server.shutdown().await?;
    }
    // As the Lambda fails the invocation (the poll could not start), and as a
    // script wants to know: any market that failed fails the command.
    if let Some(error) = &summary.error {
        bail!("the poll failed: {error}");
    }
    if summary.failed_markets > 0 {
        bail!(
            "{} market reads failed (their `error` in the summary above)",
            summary.failed_markets
        );
    }
    Ok(())
}

/// The alerts handler on a DynamoDB stream event, with the thresholds the stack runs with.
async fn invoke_alerts(
    text: &str,
    event_file: &Path,
    target: &Target,
    stack: Option<&str>,
) -> Result<()> {
    let event: DynamoDbEvent = serde_json::from_str(text)
        .with_context(|| format!("{} is not a DynamoDB stream event", event_file.display()))?;
    // The thresholds the stack runs with: a deployed stack's parameters (the template's
    // defaults locally), not the alerts' built-in defaults, which would publish real
    // alerts to real subscribers under thresholds the stack does not use.
    let parameters = match stack {
        Some(name) => realty_infra::stack::deployed_parameters(&target.sdk, name).await?,
        None => Default::default(),
    };
    // The template this CLI was built with, wherever it runs.
    let template = realty_infra::template::Template::parse(include_str!("../../template.yaml"))?;
    let config = crate::pipeline::alerts_config_with(&template, &parameters)?;
    let handler = AlertsFunction::new(&target.sdk, &target.resources, &config);
    let (response, outcome) = Box::pin(handler.handle(event)).await;
    eprintln!("{}", serde_json::to_string(&outcome.stats)?);
    if let Some(e) = &outcome.error {
        eprintln!("batch failed: {e}");
    }
    println!("{}", serde_json::to_string_pretty(&response)?);
    failed_records(
        response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref()),
    )
}

/// The shard a replay is applied as: its own journal and applied counts. Under the live
/// shard's name (the records' event ids), a replay while the stream runs finished and deleted
/// the journal of the batch the live invocation was applying, or lost its market writes to
/// the live shard's and took them as applied: figures double counted or lost.
pub const REPLAY_SHARD: &str = "shardId-replay";

/// `event` with every record's event id naming [`REPLAY_SHARD`]. What the live shard applied
/// is still skipped (each listing's state is newer), so a replay stays exactly once.
fn as_replay(mut event: KinesisEvent) -> KinesisEvent {
    for record in &mut event.records {
        record.event_id = Some(format!("{REPLAY_SHARD}:{}", record.kinesis.sequence_number));
    }
    event
}

/// Refuses a replay while a shard its records came from has a batch left part-way (its
/// journal): that batch's market writes may have landed without its listing states, and the
/// replay, planning from those states, would count them again, then the shard's next batch,
/// finding the states written, would take the batch as done.
async fn refuse_while_left_part_way(
    markets: &impl MarketStore,
    event: &KinesisEvent,
) -> Result<()> {
    let shards: BTreeSet<&str> = event
        .records
        .iter()
        .map(|r| shard_of(r.event_id.as_deref()))
        .filter(|shard| *shard != REPLAY_SHARD)
        .collect();
    for shard in shards {
        if let Some(journal) = markets
            .get_journal(shard)
            .await
            .with_context(|| format!("reading the journal of {shard}"))?
        {
            bail!(
                "{shard} has a batch left part-way ({} bytes of journal): replaying now would \
                 count what it wrote again. Its next batch finishes it (`journals_finished`); \
                 for a shard closed by a reshard, follow docs/metrics.md, \"Runbook: a batch \
                 Lambda discarded\", step 5. Then replay.",
                journal.body.len()
            );
        }
    }
    Ok(())
}

/// Fails the command when the handler reported records as failed (which Lambda would deliver
/// again from the first): a replay of a discarded range by `realty invoke metrics` that
/// failed exited 0 before.
fn failed_records<'a>(sequence_numbers: impl Iterator<Item = &'a str>) -> Result<()> {
    let failed: Vec<&str> = sequence_numbers.collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => bail!(
            "{} records failed: Lambda would deliver the batch again from sequence number {first}",
            failed.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample event of `events/` (`sam local invoke`'s and `realty invoke`'s).
    fn sample_event() -> KinesisEvent {
        serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../events/metrics-kinesis.json"
            ))
            .expect("sample event"),
        )
        .expect("a Kinesis event")
    }

    #[test]
    fn a_replay_is_applied_as_a_shard_of_its_own() {
        let event = sample_event();
        assert!(!event.records.is_empty());
        let replay = as_replay(event);
        for record in &replay.records {
            let id = record.event_id.as_deref().expect("an event id");
            assert_eq!(
                realty_aws::functions::metrics::shard_of(Some(id)),
                REPLAY_SHARD
            );
            assert!(id.ends_with(record.kinesis.sequence_number.as_str()));
        }
    }

    /// A shard the replay's records came from with a journal refuses the replay; the
    /// replay's own journal (a replay left part-way) does not: the replay finishes it.
    #[test]
    fn a_replay_waits_for_the_batches_its_shards_left_part_way() {
        use realty_metrics::memory::MemoryStores;
        use realty_metrics::ports::EncodedJournal;

        let event = sample_event();
        let shard = realty_aws::functions::metrics::shard_of(event.records[0].event_id.as_deref())
            .to_owned();
        let stores = MemoryStores::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let check = || runtime.block_on(refuse_while_left_part_way(&stores, &event));
        assert!(check().is_ok());
        let journal = |shard: &str| EncodedJournal {
            shard: shard.to_owned(),
            body: vec![1, 2, 3],
        };
        stores
            .journals
            .lock()
            .expect("lock")
            .insert(REPLAY_SHARD.to_owned(), journal(REPLAY_SHARD));
        assert!(check().is_ok());
        stores
            .journals
            .lock()
            .expect("lock")
            .insert(shard.clone(), journal(&shard));
        let refused = check().expect_err("refused");
        assert!(refused.to_string().contains(&shard), "{refused}");
    }

    #[test]
    fn a_batch_with_failed_records_fails_the_command() {
        assert!(failed_records(std::iter::empty()).is_ok());
        let failed = failed_records(["4959", "4960"].into_iter()).expect_err("failed");
        assert!(failed.to_string().contains("2 records failed"), "{failed}");
        assert!(failed.to_string().contains("4959"), "{failed}");
    }
}
