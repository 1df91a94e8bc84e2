//! The local pipeline as `realty demo` and `realty bench` run it: the real metrics and alerts
//! handlers behind the local event source mappings ([`realty_infra::runner`]), with both ends
//! of each alert timed in-process (the event handed to PutRecords, the alert accepted by SNS).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Result, anyhow};
use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::{DynamoDbEventResponse, KinesisEventResponse};
use chrono::{DateTime, Utc};
use realty_alerts::config::AlertsConfig;
use realty_alerts::message::{AlertBody, AlertMessage};
use realty_alerts::ports::{AlertPublisher, PublishReport};
use realty_alerts::process::AlertPorts;
use realty_aws::adapters::kinesis::KinesisPublisher;
use realty_aws::adapters::sns::SnsAlertPublisher;
use realty_aws::functions::alerts::{AlertsFunction, handle_event};
use realty_aws::functions::metrics::MetricsFunction;
use realty_infra::provision::ProvisionedStack;
use realty_infra::runner::{FunctionError, Mapping, StreamFunction};
use realty_infra::template::{Template, scalar_to_string};
use realty_model::config::StackResources;
use realty_model::listing::ListingEvent;
use realty_model::ports::PortError;
use realty_poller::ports::{EventPublisher, PublishFailure};

/// When each listing event was handed to PutRecords, by (listing id, observed at).
pub type SentAt = Arc<Mutex<HashMap<(String, DateTime<Utc>), Instant>>>;

/// A Kinesis publisher noting when each event is sent.
pub struct StampedPublisher {
    pub inner: KinesisPublisher,
    pub sent: SentAt,
}

impl EventPublisher for StampedPublisher {
    async fn publish(&self, events: &[ListingEvent]) -> Result<Vec<PublishFailure>, PortError> {
        let now = Instant::now();
        if let Ok(mut sent) = self.sent.lock() {
            for e in events {
                sent.entry((e.listing.id.as_str().to_owned(), e.observed_at))
                    .or_insert(now);
            }
        }
        self.inner.publish(events).await
    }
}

/// One alert SNS accepted, and when.
pub struct Published {
    pub listing_id: String,
    pub observed_at: DateTime<Utc>,
    pub at: Instant,
}

/// The alert topic's publisher, noting when each alert was published.
pub struct StampedAlertPublisher {
    pub inner: SnsAlertPublisher,
    pub published: Arc<Mutex<Vec<Published>>>,
}

impl AlertPublisher for StampedAlertPublisher {
    async fn publish(&self, messages: &[AlertMessage], deadline: DateTime<Utc>) -> PublishReport {
        let report = self.inner.publish(messages, deadline).await;
        let now = Instant::now();
        if let Ok(mut published) = self.published.lock() {
            for (i, m) in messages.iter().enumerate() {
                if !report.published(i) {
                    continue;
                }
                if let Ok(body) = serde_json::from_str::<AlertBody>(&m.body) {
                    published.push(Published {
                        listing_id: body.listing_id,
                        observed_at: body.observed_at,
                        at: now,
                    });
                }
            }
        }
        report
    }
}

/// When the metrics function was first invoked with each listing event, and when that
/// invocation returned, by (listing id, observed at).
pub type MetricsStages = Arc<Mutex<HashMap<(String, DateTime<Utc>), (Instant, Instant)>>>;

/// The metrics handler, as the runner invokes it, noting when each event went through it.
pub struct MetricsHandler {
    pub function: MetricsFunction,
    pub stages: MetricsStages,
}

impl StreamFunction for MetricsHandler {
    type Event = KinesisEvent;
    type Response = KinesisEventResponse;

    async fn invoke(&self, event: KinesisEvent) -> Result<KinesisEventResponse, FunctionError> {
        let keys: Vec<(String, DateTime<Utc>)> = event
            .records
            .iter()
            .filter_map(|r| ListingEvent::decode(&r.kinesis.data).ok())
            .map(|e| (e.listing.id.as_str().to_owned(), e.observed_at))
            .collect();
        // After reading the keys: the invocation's stage is the handler's time only.
        let invoked = Instant::now();
        let response = Box::pin(self.function.handle(event)).await.0;
        let returned = Instant::now();
        if let Ok(mut stages) = self.stages.lock() {
            for key in keys {
                stages.entry(key).or_insert((invoked, returned));
            }
        }
        Ok(response)
    }
}

/// The alerts handler with its publisher timed, as the runner invokes it.
pub struct AlertsHandler {
    pub function: AlertsFunction,
    pub publisher: StampedAlertPublisher,
}

impl StreamFunction for AlertsHandler {
    type Event = DynamoDbEvent;
    type Response = DynamoDbEventResponse;

    async fn invoke(&self, event: DynamoDbEvent) -> Result<DynamoDbEventResponse, FunctionError> {
        let ports = AlertPorts {
            idempotency: &self.function.idempotency,
            medians: &self.function.medians,
            publisher: &self.publisher,
            sink: &self.function.sink,
        };
        Ok(
            Box::pin(handle_event(&ports, &self.function.thresholds, event))
                .await
                .0,
        )
    }
}

/// The alert thresholds the template gives the alerts function (its environment, with
/// parameters at their defaults).
pub fn alerts_config(template: &Template) -> Result<AlertsConfig> {
    alerts_config_with(template, &BTreeMap::new())
}

/// The alerts function's settings as the template gives them, with `parameters` (a deployed
/// stack's, used as they are) in place of the parameters' defaults; without any (the local
/// stack), a `REALTY_*` variable set in the shell (not blank) over the defaults.
pub fn alerts_config_with(
    template: &Template,
    parameters: &BTreeMap<String, String>,
) -> Result<AlertsConfig> {
    let variables = template
        .resources
        .get("AlertsFunction")
        .and_then(|r| r.properties.pointer("/Environment/Variables"))
        .cloned()
        .unwrap_or_default();
    let lookup = |name: &str| -> Option<String> {
        if parameters.is_empty()
            && let Ok(set) = std::env::var(name)
            && !set.trim().is_empty()
        {
            return Some(set);
        }
        let value = variables.get(name)?;
        match value.get("Ref").and_then(|r| r.as_str()) {
            Some(parameter) => parameters.get(parameter).cloned().or_else(|| {
                template
                    .parameters
                    .get(parameter)?
                    .default
                    .as_ref()
                    .and_then(scalar_to_string)
            }),
            None => scalar_to_string(value),
        }
    };
    Ok(AlertsConfig::from_lookup(lookup)?)
}

/// Both event source mappings of a provisioned stack, with the real handlers, and the
/// publish times of the alerts they raise.
pub struct StreamMappings {
    pub metrics: Mapping<MetricsHandler>,
    pub alerts: Mapping<AlertsHandler>,
    pub published: Arc<Mutex<Vec<Published>>>,
    pub metrics_stages: MetricsStages,
}

/// The SDK configs of a pipeline's parts: the event source mappings' stream reads, and each
/// function's clients (one config for all, or one each to tell their calls apart).
pub struct PipelineSdks {
    pub mappings: SdkConfig,
    pub metrics: SdkConfig,
    pub alerts: SdkConfig,
}

impl PipelineSdks {
    /// `sdk` for every part.
    pub fn same(sdk: &SdkConfig) -> Self {
        Self {
            mappings: sdk.clone(),
            metrics: sdk.clone(),
            alerts: sdk.clone(),
        }
    }
}

impl StreamMappings {
    pub async fn new(
        sdks: &PipelineSdks,
        template: &Template,
        stack: &ProvisionedStack,
        resources: &StackResources,
    ) -> Result<Self> {
        let published: Arc<Mutex<Vec<Published>>> = Arc::default();
        let alerts_function =
            AlertsFunction::new(&sdks.alerts, resources, &alerts_config(template)?);
        let alerts_handler = AlertsHandler {
            publisher: StampedAlertPublisher {
                inner: alerts_function.publisher.clone(),
                published: published.clone(),
            },
            function: alerts_function,
        };
        let metrics_stages = MetricsStages::default();
        let metrics = Mapping::new(
            &sdks.mappings,
            template,
            stack,
            "MetricsFunction",
            MetricsHandler {
                function: MetricsFunction::new(&sdks.metrics, resources),
                stages: metrics_stages.clone(),
            },
        )
        .await?;
        let alerts = Mapping::new(
            &sdks.mappings,
            template,
            stack,
            "AlertsFunction",
            alerts_handler,
        )
        .await?;
        Ok(Self {
            metrics,
            alerts,
            published,
            metrics_stages,
        })
    }
}

/// Milliseconds from PutRecords of the event that raised each alert to its publish.
pub fn alert_latencies_ms(published: &Mutex<Vec<Published>>, sent: &SentAt) -> Result<Vec<f64>> {
    let sent = sent.lock().map_err(|_| anyhow!("timing lock poisoned"))?;
    let published = published
        .lock()
        .map_err(|_| anyhow!("timing lock poisoned"))?;
    Ok(published
        .iter()
        .filter_map(|p| {
            let put = sent.get(&(p.listing_id.clone(), p.observed_at))?;
            Some(p.at.saturating_duration_since(*put).as_secs_f64() * 1000.0)
        })
        .collect())
}

/// Where each alert's latency went, in milliseconds: PutRecords to the metrics invocation
/// that took its event, that invocation, and its return to the alert's publish (the table's
/// stream, the alerts mapping and function, SNS).
#[derive(Debug, Clone, Default)]
pub struct LatencyStages {
    pub to_metrics: Vec<f64>,
    pub metrics: Vec<f64>,
    pub to_publish: Vec<f64>,
}

/// The stages of each alert's latency (see [`LatencyStages`]).
pub fn alert_latency_stages(
    published: &Mutex<Vec<Published>>,
    sent: &SentAt,
    metrics: &MetricsStages,
) -> Result<LatencyStages> {
    let poisoned = || anyhow!("timing lock poisoned");
    let sent = sent.lock().map_err(|_| poisoned())?;
    let published = published.lock().map_err(|_| poisoned())?;
    let metrics = metrics.lock().map_err(|_| poisoned())?;
    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1000.0;
    let mut stages = LatencyStages::default();
    for p in published.iter() {
        let key = (p.listing_id.clone(), p.observed_at);
        let (Some(put), Some((invoked, returned))) = (sent.get(&key), metrics.get(&key)) else {
            continue;
        };
        stages.to_metrics.push(ms(*put, *invoked));
        stages.metrics.push(ms(*invoked, *returned));
        stages.to_publish.push(ms(*returned, p.at));
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deployed stack's parameters replace the template's defaults; the others stay.
    #[test]
    fn a_stack_s_parameters_set_its_alert_thresholds() {
        let template = Template::parse(include_str!("../../template.yaml")).expect("template");
        let defaults = alerts_config(&template).expect("defaults").thresholds;
        assert_eq!(defaults.price_drop_centi_pct, 1_500);
        let parameters = BTreeMap::from([
            ("PriceDropThresholdPct".to_owned(), "5".to_owned()),
            ("NewListingAlerts".to_owned(), "true".to_owned()),
        ]);
        let deployed = alerts_config_with(&template, &parameters)
            .expect("deployed")
            .thresholds;
        assert_eq!(deployed.price_drop_centi_pct, 500);
        assert!(deployed.new_listing_alerts);
        assert_eq!(deployed.undervalued_ratio, defaults.undervalued_ratio);
    }
}
