//! The alerts function's work on one batch of the listing table's stream, over the ports.
//!
//! Order of effects, in stream order:
//! 1. decode each record into the listing's old and new item; anything else is skipped with
//!    its reason (never a failure: re-delivering it would not make it readable);
//! 2. read the market medians the batch needs, in one lookup;
//! 3. decide the alerts due ([`super::rules`]);
//! 4. claim each alert's idempotency key: an alert already published is skipped;
//! 5. publish the claimed alerts (PublishBatch, partial failures re-sent);
//! 6. mark what was published; release the claims of what was not.
//!
//! A failure in steps 2, 4 or 5 fails the batch from the first record it touches: that
//! record's sequence number goes back as `batchItemFailures`, and Lambda re-delivers it and
//! everything after it. The records before it are done. Why a crash between steps cannot lose
//! an alert, and duplicates at most one: docs/alerts.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use aws_lambda_events::event::dynamodb::EventRecord;
use serde::Serialize;

use super::message::{AlertMessage, message};
use super::ports::{AlertPublisher, Claim, IdempotencyStore, MarketMedians};
use super::rules::{
    Alert, AlertKind, AlertThresholds, ListingChange, classify, evaluate, median_scope_keys,
    needs_median, pick_median,
};

/// All the ports the alerts function uses.
pub struct AlertPorts<'a, I, M, P> {
    pub idempotency: &'a I,
    pub medians: &'a M,
    pub publisher: &'a P,
}

/// What happened to a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertStats {
    pub records: usize,
    /// Records skipped, by reason (`not_modify`, `malformed_new_image`, ...).
    pub skipped: BTreeMap<&'static str, usize>,
    /// MODIFY records decoded into a listing change.
    pub changes: usize,
    pub price_drops_due: usize,
    pub undervalued_due: usize,
    /// Changes whose market has no median yet (their undervalued check could not run).
    pub without_median: usize,
    /// Alerts skipped because they were published before (re-deliveries).
    pub already_published: usize,
    pub published: usize,
    pub unpublished: usize,
    pub publish_retries: u32,
    /// Published alerts whose record could not be marked (a replay would repeat them).
    pub marks_failed: usize,
    pub duration_ms: u64,
}

/// The batch's result: stats, and where Lambda must re-deliver from if it failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertOutcome {
    pub stats: AlertStats,
    /// Sequence number of the first record not fully processed (`batchItemFailures`).
    pub failed_from: Option<String>,
    pub error: Option<String>,
}

/// The earliest failure so far: the index of the change it touches, and why.
#[derive(Debug, Default)]
struct FirstFailure(Option<(usize, String)>);

impl FirstFailure {
    fn record(&mut self, change: usize, error: impl Into<String>) {
        if self.0.as_ref().is_none_or(|(first, _)| change < *first) {
            self.0 = Some((change, error.into()));
        }
    }

    /// Changes before this index are unaffected.
    fn limit(&self) -> usize {
        self.0.as_ref().map_or(usize::MAX, |(first, _)| *first)
    }
}

/// An alert on its way: the change it came from (index) and its message.
struct Pending {
    change: usize,
    kind: AlertKind,
    message: AlertMessage,
}

/// A random name for this invocation's claims.
fn claim_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Processes one batch of stream records.
pub async fn process_batch<I, M, P>(
    ports: &AlertPorts<'_, I, M, P>,
    thresholds: &AlertThresholds,
    records: Vec<EventRecord>,
) -> AlertOutcome
where
    I: IdempotencyStore,
    M: MarketMedians,
    P: AlertPublisher,
{
    let started = Instant::now();
    let mut stats = AlertStats {
        records: records.len(),
        ..AlertStats::default()
    };

    // 1. Decode.
    let mut changes: Vec<ListingChange> = Vec::with_capacity(records.len());
    for record in records {
        let event_id = record.event_id.clone();
        let sequence_number = record.change.sequence_number.clone();
        match classify(record) {
            Ok(change) => changes.push(change),
            Err(skipped) => {
                let reason = skipped.reason.as_str();
                tracing::warn!(event_id, ?sequence_number, reason, detail = %skipped.detail, "record skipped");
                metrics::counter!("records_skipped", "reason" => reason).increment(1);
                *stats.skipped.entry(reason).or_default() += 1;
            }
        }
    }
    stats.changes = changes.len();

    // 2. The medians of every market the batch needs, in one lookup.
    let mut failure = FirstFailure::default();
    let wanted: BTreeSet<String> = changes
        .iter()
        .filter(|c| needs_median(&c.old, &c.new))
        .flat_map(|c| median_scope_keys(&c.new.listing))
        .collect();
    let medians = if wanted.is_empty() {
        BTreeMap::new()
    } else {
        let keys: Vec<String> = wanted.into_iter().collect();
        match ports.medians.medians_per_sqft(&keys).await {
            Ok(medians) => medians,
            Err(e) => {
                // Only the changes that needed a median are blocked, from the first of them.
                if let Some(first) = changes.iter().position(|c| needs_median(&c.old, &c.new)) {
                    failure.record(first, e.to_string());
                }
                BTreeMap::new()
            }
        }
    };

    // 3. Decide, in stream order, up to the first change that cannot be judged.
    let mut due: Vec<Pending> = Vec::new();
    for (i, change) in changes.iter().enumerate().take(failure.limit()) {
        let median = if needs_median(&change.old, &change.new) {
            let median = pick_median(&change.new.listing, &medians);
            if median.is_none() {
                stats.without_median += 1;
            }
            median
        } else {
            None
        };
        for alert in evaluate(change, thresholds, median.as_ref()) {
            match alert.kind {
                AlertKind::PriceDrop => stats.price_drops_due += 1,
                AlertKind::Undervalued => stats.undervalued_due += 1,
            }
            match message(&alert) {
                Ok(message) => due.push(Pending {
                    change: i,
                    kind: alert.kind,
                    message,
                }),
                Err(e) => {
                    failure.record(
                        i,
                        format!("cannot encode the alert of {}: {e}", alert_name(&alert)),
                    );
                    break;
                }
            }
        }
        if failure.limit() <= i {
            break;
        }
    }

    // 4. Claim, in order, up to the first store failure.
    let token = claim_token();
    let mut claimed: Vec<Pending> = Vec::with_capacity(due.len());
    for pending in due {
        if pending.change >= failure.limit() {
            break;
        }
        match ports
            .idempotency
            .claim(&pending.message.alert_id, &token)
            .await
        {
            Ok(Claim::Acquired) => claimed.push(pending),
            Ok(Claim::AlreadyPublished) => {
                tracing::info!(alert_id = %pending.message.alert_id, "alert already published; skipped");
                stats.already_published += 1;
            }
            Err(e) => failure.record(pending.change, e.to_string()),
        }
    }
    // A change with one alert claimed and the next failing is re-delivered whole: hand its
    // claims back instead of publishing half of it.
    let (to_publish, handed_back): (Vec<Pending>, Vec<Pending>) = claimed
        .into_iter()
        .partition(|p| p.change < failure.limit());
    release(ports.idempotency, &handed_back, &token).await;

    // 5. Publish.
    let messages: Vec<AlertMessage> = to_publish.iter().map(|p| p.message.clone()).collect();
    let report = if messages.is_empty() {
        Default::default()
    } else {
        ports.publisher.publish(&messages).await
    };
    stats.publish_retries = report.retries;
    let unpublished: BTreeSet<usize> = report.unpublished.iter().copied().collect();
    let (mut published, mut failed) = (Vec::new(), Vec::new());
    for (i, pending) in to_publish.into_iter().enumerate() {
        if unpublished.contains(&i) {
            failed.push(pending);
        } else {
            published.push(pending);
        }
    }
    if let Some(first) = failed.first() {
        failure.record(
            first.change,
            format!(
                "{} alerts unpublished: {}",
                failed.len(),
                report.error.as_deref().unwrap_or("unknown error")
            ),
        );
    }

    // 6. Record the outcome of each claim.
    release(ports.idempotency, &failed, &token).await;
    stats.unpublished = failed.len();
    for pending in &published {
        stats.published += 1;
        metrics::counter!("alerts_published", "alert_type" => pending.kind.as_str()).increment(1);
        tracing::info!(alert_id = %pending.message.alert_id, subject = %pending.message.subject, "alert published");
        if let Err(e) = ports
            .idempotency
            .mark_published(&pending.message.alert_id, &token)
            .await
        {
            // Published is published: failing the record would publish it again. The
            // pending claim left behind only matters if this record is re-delivered.
            tracing::warn!(alert_id = %pending.message.alert_id, error = %e, "alert published but not marked");
            stats.marks_failed += 1;
        }
    }

    stats.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (failed_from, error) = match failure.0 {
        Some((change, error)) => (Some(changes[change].sequence_number.clone()), Some(error)),
        None => (None, None),
    };
    AlertOutcome {
        stats,
        failed_from,
        error,
    }
}

fn alert_name(alert: &Alert) -> String {
    format!("{} {}", alert.kind.as_str(), alert.listing.listing_id)
}

/// Hands claims back; a failure here is logged only, since a pending claim is taken over by
/// the next delivery anyway.
async fn release<I: IdempotencyStore>(store: &I, claims: &[Pending], token: &str) {
    for pending in claims {
        if let Err(e) = store.release(&pending.message.alert_id, token).await {
            tracing::warn!(alert_id = %pending.message.alert_id, error = %e, "cannot release an alert claim");
        }
    }
}
