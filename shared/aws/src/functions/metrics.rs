//! The metrics function as Lambda sees it: a Kinesis event in, `batchItemFailures` out.
//! Built once per container (clients, table names) and called per batch.

use aws_config::SdkConfig;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use realty_metrics::interest::InterestRules;

use crate::adapters::dynamodb::{DynamoListingStore, DynamoMarketStore};
use crate::adapters::firehose::FirehoseArchive;
use crate::adapters::retry::RetryPolicy;
use crate::adapters::sqs::SqsPoisonSink;
use realty_metrics::process::{BatchOutcome, InputRecord, MetricsPorts, process_batch};
use realty_model::config::StackResources;

/// The metrics function's AWS adapters.
#[derive(Debug, Clone)]
pub struct MetricsFunction {
    pub listings: DynamoListingStore,
    pub markets: DynamoMarketStore,
    pub archive: FirehoseArchive,
    pub poison: SqsPoisonSink,
    /// How listings of interest are judged (the default until the caller sets the stack's).
    pub rules: InterestRules,
}

impl MetricsFunction {
    pub fn new(config: &SdkConfig, resources: &StackResources) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(config);
        let retry = RetryPolicy::default();
        Self {
            listings: DynamoListingStore {
                client: dynamodb.clone(),
                table: resources.listing_table.clone(),
                retry,
            },
            markets: DynamoMarketStore {
                client: dynamodb,
                table: resources.market_table.clone(),
                retry,
            },
            archive: FirehoseArchive {
                client: aws_sdk_firehose::Client::new(config),
                delivery_stream: resources.delivery_stream.clone(),
                retry,
            },
            poison: SqsPoisonSink {
                client: aws_sdk_sqs::Client::new(config),
                queue_url: resources.poison_record_queue_url.clone(),
                retry,
            },
            rules: InterestRules::default(),
        }
    }

    /// Processes one Kinesis event. Never fails the invocation: a batch that cannot finish
    /// is reported through `batchItemFailures` from its first record.
    pub async fn handle(&self, event: KinesisEvent) -> (KinesisEventResponse, Vec<BatchOutcome>) {
        let ports = MetricsPorts {
            listings: &self.listings,
            markets: &self.markets,
            archive: &self.archive,
            poison: &self.poison,
            rules: self.rules,
        };
        handle_event(&ports, event).await
    }
}

/// The shard a Kinesis record came from: its event id is `shardId-...:sequence`.
pub fn shard_of(event_id: Option<&str>) -> &str {
    event_id
        .and_then(|id| id.split_once(':'))
        .map_or("shardId-unknown", |(shard, _)| shard)
}

/// Splits a Kinesis event into its shards' batches (one in practice: an event source
/// mapping sends one shard per invocation) and processes each.
pub async fn handle_event<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    event: KinesisEvent,
) -> (KinesisEventResponse, Vec<BatchOutcome>)
where
    L: realty_model::state::ListingStore,
    M: realty_metrics::ports::MarketStore,
    A: realty_metrics::ports::EventArchive,
    S: realty_metrics::ports::PoisonSink,
{
    let mut shards: Vec<(String, Vec<InputRecord>)> = Vec::new();
    for record in event.records {
        let shard = shard_of(record.event_id.as_deref()).to_owned();
        let input = InputRecord {
            sequence_number: record.kinesis.sequence_number,
            data: record.kinesis.data.0,
            approximate_arrival: record.kinesis.approximate_arrival_timestamp.0,
        };
        match shards.last_mut() {
            Some((s, records)) if *s == shard => records.push(input),
            _ => shards.push((shard, vec![input])),
        }
    }
    let mut response = KinesisEventResponse::default();
    let mut outcomes = Vec::with_capacity(shards.len());
    for (shard, records) in shards {
        let outcome = process_batch(ports, &shard, &records).await;
        record_metrics(&outcome);
        match (&outcome.failed_from, &outcome.error) {
            (Some(from), Some(error)) => {
                tracing::error!(shard, failed_from = %from, %error, stats = ?outcome.stats, "batch failed; Lambda re-delivers it");
                response.add_failure(from.clone());
            }
            _ => tracing::info!(shard, stats = ?outcome.stats, "batch processed"),
        }
        outcomes.push(outcome);
    }
    (response, outcomes)
}

fn record_metrics(outcome: &BatchOutcome) {
    let s = &outcome.stats;
    metrics::counter!("events_in").increment(s.records as u64);
    metrics::counter!("events_accepted").increment(s.accepted as u64);
    metrics::counter!("events_rejected").increment(s.rejected as u64);
    metrics::counter!("events_new").increment(s.new as u64);
    metrics::counter!("events_changed").increment(s.changed as u64);
    metrics::counter!("events_delisted").increment(s.delisted as u64);
    metrics::counter!("events_already_applied").increment(s.already_applied as u64);
    metrics::counter!("events_superseded").increment(s.superseded as u64);
    metrics::counter!("journals_finished").increment(s.journals_finished as u64);
    metrics::counter!("market_underflows").increment(s.market_underflows as u64);
    metrics::counter!("market_write_conflicts").increment(s.conflict_retries as u64);
    metrics::counter!("batches_failed").increment(u64::from(outcome.failed_from.is_some()));
    metrics::histogram!("batch_duration_ms").record(s.duration_ms as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use realty_metrics::memory::MemoryStores;
    use realty_model::scope::Scope;

    #[tokio::test(flavor = "current_thread")]
    async fn the_sample_kinesis_event_is_accepted_whole() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/metrics-kinesis.json"
        );
        let text = std::fs::read_to_string(path).expect("events/metrics-kinesis.json");
        let event: KinesisEvent = serde_json::from_str(&text).expect("a Kinesis event");
        let stores = MemoryStores::default();
        let ports = stores.ports();
        let (response, outcomes) = handle_event(&ports, event).await;
        assert!(response.batch_item_failures.is_empty());
        let stats = &outcomes[0].stats;
        assert_eq!(
            (
                stats.accepted,
                stats.rejected,
                stats.new,
                stats.changed,
                stats.delisted
            ),
            (4, 0, 2, 1, 1)
        );
        let live = &stores.aggregates.lock().expect("lock")[&Scope::city("nashville-tn").key()];
        assert_eq!(live.aggregate.active, 1);
        let figures = live.aggregate.figures();
        assert_eq!(
            (
                figures.price_cuts_today,
                figures.new_listings_today,
                figures.delistings_today
            ),
            (1, 2, 1)
        );
        assert_eq!(figures.average_cut_pct_7d, Some(20.0));
    }
}
