//! The alerts function as Lambda sees it: a DynamoDB stream event in ([`stream`] decodes its
//! records), `batchItemFailures` out. Built once per container (clients, table and topic
//! names, thresholds) and called per batch.

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};

use crate::adapters::alert_claims::DynamoAlertClaimStore;
use crate::adapters::market_median::DynamoMarketMedians;
use crate::adapters::retry::RetryPolicy;
use crate::adapters::sns::SnsAlertPublisher;
use crate::adapters::sqs::SqsPoisonSink;
use realty_alerts::config::AlertsConfig;
use realty_alerts::ports::{AlertClaimStore, AlertErrorSink, AlertPublisher, MarketMedians};
use realty_alerts::process::{AlertOutcome, AlertPorts, process_batch};
use realty_alerts::rules::{AlertKind, AlertThresholds};
use realty_model::config::StackResources;

pub mod stream;

#[cfg(test)]
mod tests;

/// The alerts function's thresholds and AWS adapters.
#[derive(Debug, Clone)]
pub struct AlertsFunction {
    pub thresholds: AlertThresholds,
    /// Claims and marks of alerts, at their keys in the feed of published alerts (the
    /// market table; docs/alerts.md, "Once per price change" and "The alert feed").
    pub idempotency: DynamoAlertClaimStore,
    pub medians: DynamoMarketMedians,
    pub publisher: SnsAlertPublisher,
    /// Alerts that can never be published, with their reason (the stack's error queue).
    pub sink: SqsPoisonSink,
}

/// The function's timeout in template.yaml: the deadline assumed when a caller gives none
/// (the local runner, `realty invoke`).
pub const DEFAULT_INVOCATION_TIMEOUT: chrono::Duration = chrono::Duration::seconds(60);

/// The deadline of an invocation starting now with the template's timeout.
pub fn default_deadline() -> DateTime<Utc> {
    Utc::now() + DEFAULT_INVOCATION_TIMEOUT
}

impl AlertsFunction {
    pub fn new(sdk: &SdkConfig, resources: &StackResources, config: &AlertsConfig) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let retry = RetryPolicy::default();
        Self {
            thresholds: config.thresholds,
            idempotency: DynamoAlertClaimStore::new(
                dynamodb.clone(),
                resources.market_table.clone(),
            ),
            medians: DynamoMarketMedians {
                client: dynamodb,
                table: resources.market_table.clone(),
                retry,
            },
            publisher: SnsAlertPublisher::new(sdk, resources.alert_topic_arn.clone(), retry),
            sink: SqsPoisonSink {
                client: aws_sdk_sqs::Client::new(sdk),
                queue_url: resources.poison_record_queue_url.clone(),
                retry,
            },
        }
    }

    /// Processes one stream event. Never fails the invocation: what cannot be published is
    /// reported through `batchItemFailures` from the first record concerned.
    pub async fn handle(&self, event: Event) -> (DynamoDbEventResponse, AlertOutcome) {
        self.handle_until(event, default_deadline()).await
    }

    /// [`Self::handle`] for an invocation Lambda stops at `deadline` (its context's).
    pub async fn handle_until(
        &self,
        event: Event,
        deadline: DateTime<Utc>,
    ) -> (DynamoDbEventResponse, AlertOutcome) {
        let ports = AlertPorts {
            idempotency: &self.idempotency,
            medians: &self.medians,
            publisher: &self.publisher,
            sink: &self.sink,
        };
        handle_event_until(&ports, &self.thresholds, event, deadline).await
    }
}

/// A batch failure from `sequence_number` on. (`DynamoDbEventResponse` has no `add_failure`
/// in aws_lambda_events 1.2, and its structs are non-exhaustive.)
pub fn failure_from(sequence_number: &str) -> DynamoDbEventResponse {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence_number.to_owned());
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures.push(failure);
    response
}

/// Processes one stream event over any ports with the template's timeout from now.
pub async fn handle_event<I, M, P, S>(
    ports: &AlertPorts<'_, I, M, P, S>,
    thresholds: &AlertThresholds,
    event: Event,
) -> (DynamoDbEventResponse, AlertOutcome)
where
    I: AlertClaimStore,
    M: MarketMedians,
    P: AlertPublisher,
    S: AlertErrorSink,
{
    handle_event_until(ports, thresholds, event, default_deadline()).await
}

/// Processes one stream event over any ports, logs it and records its metrics.
pub async fn handle_event_until<I, M, P, S>(
    ports: &AlertPorts<'_, I, M, P, S>,
    thresholds: &AlertThresholds,
    event: Event,
    deadline: DateTime<Utc>,
) -> (DynamoDbEventResponse, AlertOutcome)
where
    I: AlertClaimStore,
    M: MarketMedians,
    P: AlertPublisher,
    S: AlertErrorSink,
{
    let records = event.records.into_iter().map(stream::decode).collect();
    let outcome = process_batch(ports, thresholds, records, deadline).await;
    record_metrics(&outcome);
    let response = match (&outcome.failed_from, &outcome.error) {
        (Some(from), error) => {
            tracing::error!(failed_from = %from, error = error.as_deref().unwrap_or_default(), stats = ?outcome.stats, "batch failed; Lambda re-delivers it from the failed record");
            failure_from(from)
        }
        (None, _) => {
            tracing::info!(stats = ?outcome.stats, "batch processed");
            DynamoDbEventResponse::default()
        }
    };
    (response, outcome)
}

fn record_metrics(outcome: &AlertOutcome) {
    let s = &outcome.stats;
    metrics::counter!("records_in").increment(s.records as u64);
    metrics::counter!("listing_changes").increment(s.changes as u64);
    for kind in AlertKind::ALL {
        let due = s.due.get(kind.as_str()).copied().unwrap_or(0);
        metrics::counter!("alerts_due", "alert_type" => kind.as_str()).increment(due as u64);
    }
    metrics::counter!("changes_without_median").increment(s.without_median as u64);
    // The total (the dashboard's); `process` also counts them per alert type.
    metrics::counter!("alerts_published").increment(s.published as u64);
    metrics::counter!("alerts_already_published").increment(s.already_published as u64);
    metrics::counter!("alerts_unpublished").increment(s.unpublished as u64);
    metrics::counter!("alerts_publish_unknown").increment(s.publish_unknown as u64);
    metrics::counter!("alerts_rejected").increment(s.rejected as u64);
    metrics::counter!("alert_claims_held").increment(s.claims_held as u64);
    metrics::counter!("alert_mark_retries").increment(u64::from(s.mark_retries));
    metrics::counter!("alert_marks_failed").increment(s.marks_failed as u64);
    metrics::counter!("publish_retries").increment(u64::from(s.publish_retries));
    metrics::counter!("batches_failed").increment(u64::from(outcome.failed_from.is_some()));
    metrics::histogram!("batch_duration_ms").record(s.duration_ms as f64);
}
