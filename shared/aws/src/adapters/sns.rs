//! The alert topic over SNS PublishBatch: 10 messages and 256 KiB a call.
//!
//! One retry layer per kind of failure, and nothing re-sent that SNS may have accepted:
//! - a call SNS answered with an error (throttling, a 5xx) accepted nothing: the SDK's
//!   standard retries re-send it;
//! - a call with no answer (the attempt timed out, the connection dropped) may have been
//!   accepted: nobody re-sends it here ([`NoRetryWithoutAnswer`]); its alerts are reported
//!   `unknown` and their records come again from Lambda;
//! - entries SNS lists in `Failed` of an answered call were not accepted: those alone are
//!   re-sent, with backoff, for a while ([`send_with_retries`]); those failed as the
//!   sender's fault are never re-sent and go to the error sink.

use std::sync::Mutex;

use aws_config::SdkConfig;
use aws_sdk_sns::Client;
use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::config::interceptors::InterceptorContext;
use aws_sdk_sns::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish_batch::{PublishBatchError, PublishBatchOutput};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use chrono::{DateTime, Utc};

use super::retry::{RetryPolicy, Sent, Unsent, send_with_retries};
use realty_alerts::message::{AlertMessage, MAX_SINK_FIELD_BYTES, cut_to, publish_batches};
use realty_alerts::ports::{AlertPublisher, PublishReport};

#[derive(Debug, Clone)]
pub struct SnsAlertPublisher {
    pub client: Client,
    pub topic_arn: String,
    pub retry: RetryPolicy,
    /// How long past the publish deadline a call may run ([`CALL_OVERRUN`]).
    pub call_overrun: chrono::Duration,
}

impl SnsAlertPublisher {
    /// A publisher whose client never re-sends a call that got no answer.
    pub fn new(sdk: &SdkConfig, topic_arn: impl Into<String>, retry: RetryPolicy) -> Self {
        let config = aws_sdk_sns::config::Builder::from(sdk)
            .retry_classifier(NoRetryWithoutAnswer)
            .build();
        Self {
            client: Client::from_conf(config),
            topic_arn: topic_arn.into(),
            retry,
            call_overrun: CALL_OVERRUN,
        }
    }
}

/// Forbids the SDK's retry of an attempt that got no error status from SNS: a timeout or a
/// dropped connection after the request left, or a success status whose body could not be
/// read, may be a call SNS accepted, and SNS standard topics do not deduplicate, so a
/// re-send would deliver its alerts twice. (A connection that could not even be opened is
/// not retried either: the SDK does not tell it apart reliably, and Lambda's re-delivery
/// retries it soon enough.) Error statuses are left to the standard classifiers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetryWithoutAnswer;

impl ClassifyRetry for NoRetryWithoutAnswer {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(_)) if ctx.response().is_none_or(|r| r.status().is_success()) => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "no retry without an answer"
    }
}

/// Whether a failed call certainly accepted nothing: SNS answered it with an error status,
/// or it never left (it could not be built). An unreadable answer with a success status may
/// be a call SNS accepted.
pub fn answered_or_unsent<E>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(_) | SdkError::ConstructionFailure(_) => true,
        SdkError::ResponseError(_) => error
            .raw_response()
            .is_some_and(|r| !r.status().is_success()),
        _ => false,
    }
}

/// Whether SNS refused a whole PublishBatch for what an entry holds (a parameter it finds
/// invalid, the batch's bytes over its limit): it accepted none of them, and names none.
/// Not an error of the stack (credentials, the topic, its key), which every entry alone
/// would meet too.
fn refused_for_content(error: &SdkError<PublishBatchError, HttpResponse>) -> bool {
    match error.as_service_error() {
        Some(
            PublishBatchError::InvalidParameterException(_)
            | PublishBatchError::InvalidParameterValueException(_)
            | PublishBatchError::ValidationException(_)
            | PublishBatchError::BatchRequestTooLongException(_),
        ) => true,
        // A code the model does not name (an emulator's `ValidationError`).
        Some(other) => other
            .code()
            .is_some_and(|code| matches!(code, "ValidationError" | "InvalidParameter")),
        None => false,
    }
}

/// The PublishBatch entry of `messages[index]`; its id is the index, so failures map back.
pub fn batch_entry(
    index: usize,
    message: &AlertMessage,
) -> Result<PublishBatchRequestEntry, aws_sdk_sns::error::BuildError> {
    let mut entry = PublishBatchRequestEntry::builder()
        .id(index.to_string())
        .subject(&message.subject)
        .message(&message.body);
    for (name, data_type, value) in message.attributes.entries() {
        entry = entry.message_attributes(
            name,
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()?,
        );
    }
    entry.build()
}

type Indexed = (usize, PublishBatchRequestEntry);

/// How long past the publish deadline a PublishBatch that started before it may run: the
/// publish deadline is 10 s before the invocation's
/// ([`realty_alerts::process::PUBLISH_MARGIN`]), so half of that is left to mark.
pub const CALL_OVERRUN: chrono::Duration = chrono::Duration::seconds(5);

impl AlertPublisher for SnsAlertPublisher {
    async fn publish(&self, messages: &[AlertMessage], deadline: DateTime<Utc>) -> PublishReport {
        let fates = Fates::default();
        let mut batches: std::collections::VecDeque<std::ops::Range<usize>> =
            publish_batches(messages).into();
        while let Some(batch) = batches.pop_front() {
            let entries = built_entries(messages, batch, &fates);
            if entries.is_empty() {
                continue;
            }
            // The groups go one after another: each gets what is left of the time, none
            // starts once it is spent (its alerts were sent nowhere: unpublished).
            let left = (deadline - Utc::now()).to_std().unwrap_or_default();
            if left.is_zero() {
                fates.note(|r| {
                    r.unpublished.extend(entries.iter().map(|(i, _)| *i));
                    r.error = Some("not sent: the invocation's time to publish was spent".into());
                });
                continue;
            }
            let retry = RetryPolicy {
                deadline: self.retry.deadline.min(left),
                ..self.retry
            };
            let fates = &fates;
            let result = send_with_retries(retry, entries, |entries| {
                self.send_call(entries, deadline, fates)
            })
            .await;
            batches.extend(fates.take_alone().into_iter().map(|i| i..i + 1));
            fates.note_retries(result);
        }
        fates.into_report()
    }
}

/// What became of each message, filled from inside the re-send loop (which owns only the
/// entries still to send).
#[derive(Default)]
struct Fates {
    report: Mutex<PublishReport>,
    /// Entries of a call refused whole for what one of them holds, sent again one a call.
    alone: Mutex<Vec<usize>>,
}

impl Fates {
    fn note(&self, f: impl FnOnce(&mut PublishReport)) {
        f(&mut self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// `messages[index]` refused for good, for `reason`.
    fn refuse(&self, index: usize, reason: String) {
        self.note(|r| {
            r.error = Some(reason.clone());
            r.refused.push((index, reason));
        });
    }

    fn send_alone(&self, entries: &[Indexed]) {
        self.alone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(entries.iter().map(|(i, _)| *i));
    }

    fn take_alone(&self) -> Vec<usize> {
        self.alone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .collect()
    }

    /// The re-sends a group took, and its entries still failing after them.
    fn note_retries(&self, result: Result<u32, Unsent<Indexed>>) {
        match result {
            Ok(retries) => self.note(|r| r.retries += retries),
            Err(unsent) => self.note(|r| {
                r.retries += unsent.attempts.saturating_sub(1);
                r.unpublished
                    .extend(unsent.items.iter().map(|(index, _)| *index));
                r.error = Some(format!(
                    "PublishBatch: {} alerts still failed after {} attempts: {}",
                    unsent.items.len(),
                    unsent.attempts,
                    unsent.last_error
                ));
            }),
        }
    }

    /// The report: its error says why alerts were refused when nothing else failed; its
    /// indices ascending, each once.
    fn into_report(self) -> PublishReport {
        let mut report = self
            .report
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if report.error.is_none() && !report.refused.is_empty() {
            report.error = Some(format!(
                "PublishBatch refused {} alerts (sender fault)",
                report.refused.len()
            ));
        }
        report.unpublished.sort_unstable();
        report.unpublished.dedup();
        report.unknown.sort_unstable();
        report.unknown.dedup();
        report.refused.sort_unstable();
        report
    }
}

/// The entries of the messages of `batch`; one that cannot be built is refused.
fn built_entries(
    messages: &[AlertMessage],
    batch: std::ops::Range<usize>,
    fates: &Fates,
) -> Vec<Indexed> {
    let mut entries: Vec<Indexed> = Vec::with_capacity(batch.len());
    for index in batch {
        match batch_entry(index, &messages[index]) {
            Ok(entry) => entries.push((index, entry)),
            Err(e) => fates.refuse(
                index,
                cut_to(
                    &format!("cannot build the entry: {e}"),
                    MAX_SINK_FIELD_BYTES,
                ),
            ),
        }
    }
    entries
}

impl SnsAlertPublisher {
    /// One PublishBatch of `entries`: the entries of its answer to re-send; every other
    /// outcome noted in `fates`.
    async fn send_call(
        &self,
        entries: Vec<Indexed>,
        deadline: DateTime<Utc>,
        fates: &Fates,
    ) -> Sent<Indexed> {
        let request: Vec<PublishBatchRequestEntry> =
            entries.iter().map(|(_, e)| e.clone()).collect();
        // A call (the SDK's attempts of 20 s and its backoff) ends by the deadline plus
        // CALL_OVERRUN: past it, the invocation would be stopped before its marks, and its
        // batch re-delivered and published again.
        let until_overrun = (deadline + self.call_overrun - Utc::now())
            .to_std()
            .unwrap_or_default();
        let sent = tokio::time::timeout(
            until_overrun,
            self.client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(request))
                .send(),
        )
        .await;
        let Ok(sent) = sent else {
            // It may have been accepted: unknown, as a call without an answer is.
            fates.note(|r| {
                r.unknown.extend(entries.iter().map(|(i, _)| *i));
                r.error = Some(
                    "PublishBatch got no answer before the invocation's time to publish ran out"
                        .into(),
                );
            });
            return Sent::all();
        };
        match sent {
            Ok(out) => answered(entries, out, fates),
            Err(e) if refused_for_content(&e) => {
                refused_whole(&entries, &e, fates);
                Sent::all()
            }
            Err(e) => {
                failed_whole(&entries, &e, fates);
                Sent::all()
            }
        }
    }
}

/// A call SNS refused whole for what an entry holds: it accepted none and names no entry,
/// so each goes again on its own, so that one entry's fault leaves the others published
/// and goes alone to the error sink, rather than failing every alert of the batch at each
/// re-delivery, for an hour, then for good. An entry alone is refused.
fn refused_whole(
    entries: &[Indexed],
    e: &SdkError<PublishBatchError, HttpResponse>,
    fates: &Fates,
) {
    let error = crate::sdk::error_line(e);
    match entries {
        [(index, _)] => fates.refuse(*index, cut_to(&error, MAX_SINK_FIELD_BYTES)),
        _ => fates.send_alone(entries),
    }
}

/// A call that failed whole, after the SDK retried what it could (the loop re-sends no
/// whole call): its entries unpublished when SNS certainly accepted none, else unknown.
fn failed_whole(entries: &[Indexed], e: &SdkError<PublishBatchError, HttpResponse>, fates: &Fates) {
    let known = answered_or_unsent(e);
    let error = crate::sdk::error_line(e);
    fates.note(|r| {
        let indices = entries.iter().map(|(i, _)| *i);
        if known {
            r.unpublished.extend(indices);
        } else {
            r.unknown.extend(indices);
        }
        r.error = Some(format!(
            "PublishBatch {}: {error}",
            if known { "failed" } else { "got no answer" }
        ));
    });
}

/// The entries of an answered call to re-send: those failed for a reason re-sending can
/// mend. One failed as the sender's fault is refused; one the answer leaves out is unknown.
fn answered(entries: Vec<Indexed>, out: PublishBatchOutput, fates: &Fates) -> Sent<Indexed> {
    let failures = out.failed.unwrap_or_default();
    let successful = out.successful.unwrap_or_default();
    let mut error = None;
    let mut retry = Vec::new();
    for (index, entry) in entries {
        let Some(failure) = failures.iter().find(|f| f.id == entry.id) else {
            // Neither published nor failed in the answer: unknown, as a call without an
            // answer is (re-sending might publish it twice).
            if !successful
                .iter()
                .any(|s| s.id.as_deref() == Some(&entry.id))
            {
                fates.note(|r| {
                    r.unknown.push(index);
                    r.error = Some(format!(
                        "PublishBatch's answer leaves out entry {}",
                        entry.id
                    ));
                });
            }
            continue;
        };
        let reason = cut_to(
            &format!(
                "{}: {}",
                failure.code,
                failure.message.as_deref().unwrap_or_default()
            ),
            MAX_SINK_FIELD_BYTES,
        );
        if crate::adapters::retry::entry_content_error(&failure.code) {
            // Re-sending the same entry cannot succeed.
            fates.note(|r| r.refused.push((index, reason.clone())));
        } else {
            retry.push((index, entry));
        }
        error = Some(reason);
    }
    Sent::Answered {
        failed: retry,
        error: error.unwrap_or_default(),
    }
}

#[cfg(test)]
mod alerts_topic_tests {
    use std::time::Duration;

    use aws_sdk_sns::Client;
    use aws_sdk_sns::operation::publish_batch::{PublishBatchError, PublishBatchOutput};
    use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use realty_alerts::message::AlertAttributes;
    use realty_alerts::rules::AlertKind;

    /// A deadline no test reaches.
    fn far() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::hours(1)
    }

    fn messages(n: usize) -> Vec<AlertMessage> {
        (0..n)
            .map(|i| AlertMessage {
                alert_id: format!("alert#price_drop#zillow:{i}#7"),
                subject: format!("Price drop 20%: {i} Church St, Nashville, TN now $400,000"),
                body: format!("{{\"n\":{i}}}"),
                attributes: AlertAttributes {
                    listing_id: format!("zillow:{i}"),
                    market: "nashville-tn".into(),
                    property_type: "condo".into(),
                    alert_type: AlertKind::PriceDrop,
                    drop_pct: 20.0,
                    price: 400_000,
                    bedrooms: Some(2),
                },
                observed_at: chrono::DateTime::UNIX_EPOCH,
            })
            .collect()
    }

    fn publisher(client: Client, retry: RetryPolicy) -> SnsAlertPublisher {
        SnsAlertPublisher {
            client,
            topic_arn: "arn:aws:sns:us-east-1:123456789012:alerts".into(),
            retry,
            call_overrun: CALL_OVERRUN,
        }
    }

    fn ok(id: &str) -> PublishBatchResultEntry {
        PublishBatchResultEntry::builder()
            .id(id)
            .message_id(format!("m-{id}"))
            .build()
    }

    fn failed(id: &str, code: &str, sender_fault: bool) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(code)
            .message("try again")
            .sender_fault(sender_fault)
            .build()
            .expect("entry")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn resends_only_the_failed_entries() {
        let first = mock!(Client::publish_batch)
            .match_requests(|r| r.publish_batch_request_entries().len() == 3)
            .then_output(|| {
                PublishBatchOutput::builder()
                    .successful(ok("0"))
                    .successful(ok("2"))
                    .failed(failed("1", "InternalError", false))
                    .build()
            });
        let retry = mock!(Client::publish_batch)
            .match_requests(|r| {
                let entries = r.publish_batch_request_entries();
                entries.len() == 1
                    && entries[0].id() == "1"
                    && entries[0].message() == "{\"n\":1}"
                    && entries[0]
                        .message_attributes()
                        .and_then(|a| a.get("drop_pct"))
                        .is_some_and(|v| {
                            v.data_type() == "Number" && v.string_value() == Some("20.00")
                        })
            })
            .then_output(|| PublishBatchOutput::builder().successful(ok("1")).build());
        let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&first, &retry]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(3), far())
            .await;
        assert_eq!(report.unpublished, Vec::<usize>::new());
        assert_eq!(report.retries, 1);
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    }

    /// An entry the answer names neither published nor failed may have been published:
    /// unknown, never sent again.
    #[tokio::test(flavor = "current_thread")]
    async fn an_entry_the_answer_leaves_out_is_unknown_not_sent_again() {
        let first = mock!(Client::publish_batch)
            .then_output(|| PublishBatchOutput::builder().successful(ok("0")).build());
        let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&first]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(2), far())
            .await;
        assert_eq!(report.unknown, vec![1]);
        assert_eq!(report.unpublished, Vec::<usize>::new());
        assert_eq!(first.num_calls(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reports_what_keeps_failing() {
        // Entry 1 fails on every attempt; the others go through the first time.
        let always = mock!(Client::publish_batch).then_compute_output(|r| {
            let mut out = PublishBatchOutput::builder();
            for e in r.publish_batch_request_entries() {
                out = if e.id() == "1" {
                    out.failed(failed("1", "KMSThrottling", false))
                } else {
                    out.successful(ok(e.id()))
                };
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&always]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_millis(50)))
            .publish(&messages(3), far())
            .await;
        assert_eq!(report.unpublished, vec![1]);
        assert!(
            report
                .error
                .as_deref()
                .is_some_and(|e| e.contains("KMSThrottling")),
            "{report:?}"
        );
        assert!(always.num_calls() >= 2, "entry 1 was never re-sent");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_sender_fault_is_not_retried() {
        let refusing = mock!(Client::publish_batch).then_output(|| {
            PublishBatchOutput::builder()
                .successful(ok("0"))
                .failed(failed("1", "InvalidParameter", true))
                .build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&refusing]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(2), far())
            .await;
        // Refused for good: for the error sink, not for a re-delivery.
        assert_eq!(report.unpublished, Vec::<usize>::new());
        assert_eq!(
            report.refused,
            vec![(1, "InvalidParameter: try again".to_owned())]
        );
        assert!(!report.published(1) && report.published(0));
        assert_eq!(refusing.num_calls(), 1);
    }

    /// A PublishBatch that never answers (a connection SNS holds open) ends at the publish
    /// deadline plus the overrun, its alerts unknown, instead of running on with the SDK's
    /// attempts until Lambda stops the invocation before its marks.
    #[tokio::test(flavor = "current_thread")]
    async fn a_call_that_never_answers_ends_at_the_overrun_and_is_unknown() {
        let (endpoint, held) = crate::sdk::silent_endpoint().await;
        let config = aws_sdk_sns::Config::builder()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sns::config::Credentials::for_tests())
            .endpoint_url(endpoint)
            // The stack's client: without one every call failed at once, unsent, and the
            // test passed without a call ever waiting on the silent server.
            .http_client(crate::sdk::https_client())
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
            .build();
        let mut publisher = publisher(
            Client::from_conf(config),
            RetryPolicy::immediate(Duration::from_secs(5)),
        );
        publisher.call_overrun = chrono::Duration::milliseconds(300);
        let report = tokio::time::timeout(
            Duration::from_secs(30),
            publisher.publish(
                &messages(2),
                Utc::now() + chrono::Duration::milliseconds(200),
            ),
        )
        .await
        .expect("the call ends by the deadline plus the overrun");
        held.abort();
        assert_eq!(report.unknown, vec![0, 1], "{report:?}");
        assert!(report.unpublished.is_empty() && report.refused.is_empty());
    }

    /// Throttled is throttled, and the topic's key denied (a policy change still
    /// propagating, the key disabled for a while) is the stack's fault, whichever side SNS
    /// blames: re-sent, not refused for good, so the alert reaches subscribers.
    #[tokio::test(flavor = "current_thread")]
    async fn an_entry_failed_for_a_passing_condition_is_retried_even_as_a_sender_fault() {
        for code in ["KMSThrottling", "KMSAccessDenied"] {
            let first = mock!(Client::publish_batch)
                .match_requests(|r| r.publish_batch_request_entries().len() == 2)
                .then_output(move || {
                    PublishBatchOutput::builder()
                        .successful(ok("0"))
                        .failed(failed("1", code, true))
                        .build()
                });
            let retry = mock!(Client::publish_batch)
                .match_requests(|r| {
                    let entries = r.publish_batch_request_entries();
                    entries.len() == 1 && entries[0].id() == "1"
                })
                .then_output(|| PublishBatchOutput::builder().successful(ok("1")).build());
            let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&first, &retry]);
            let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
                .publish(&messages(2), far())
                .await;
            assert!(report.refused.is_empty(), "{code}: {report:?}");
            assert!(report.published(0) && report.published(1), "{code}");
            assert_eq!((first.num_calls(), retry.num_calls()), (1, 1), "{code}");
        }
    }

    /// Entries that keep failing are re-sent only until the deadline, and a group due after
    /// it is not sent at all: reported unpublished, where running on (each group with its own
    /// window) outlasted the invocation and left published alerts unmarked.
    #[tokio::test(flavor = "current_thread")]
    async fn nothing_is_sent_or_re_sent_past_the_deadline() {
        let throttled = mock!(Client::publish_batch).then_compute_output(|r| {
            let mut out = PublishBatchOutput::builder();
            for e in r.publish_batch_request_entries() {
                out = out.failed(failed(e.id(), "Throttled", false));
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&throttled]);
        // A window far longer than the deadline: the deadline must bind.
        let publisher = publisher(client, RetryPolicy::immediate(Duration::from_secs(600)));
        let deadline = Utc::now() + chrono::Duration::milliseconds(200);
        let report = tokio::time::timeout(
            Duration::from_secs(30),
            publisher.publish(&messages(12), deadline),
        )
        .await
        .expect("publishing stopped at the deadline");
        assert_eq!(report.unpublished, (0..12).collect::<Vec<_>>());
        assert!(report.unknown.is_empty() && report.refused.is_empty());

        let calls = throttled.num_calls();
        let late = publisher
            .publish(&messages(3), Utc::now() - chrono::Duration::seconds(1))
            .await;
        assert_eq!(late.unpublished, vec![0, 1, 2]);
        assert_eq!(
            throttled.num_calls(),
            calls,
            "a call started past the deadline"
        );
    }

    /// SNS refuses a whole call for one entry's content (LocalStack: "AWS fails the whole
    /// publish if something is wrong in the format of 1 message"): each entry goes again on
    /// its own; the one refused alone goes to the error sink, the others are published.
    #[tokio::test(flavor = "current_thread")]
    async fn a_call_refused_whole_for_one_entry_sends_each_alone() {
        let invalid = || {
            PublishBatchError::InvalidParameterException(
                aws_sdk_sns::types::error::InvalidParameterException::builder()
                    .message("Invalid parameter: Message")
                    .build(),
            )
        };
        let whole = mock!(Client::publish_batch)
            .match_requests(|r| r.publish_batch_request_entries().len() > 1)
            .then_error(invalid);
        let culprit = mock!(Client::publish_batch)
            .match_requests(|r| {
                r.publish_batch_request_entries()
                    .iter()
                    .any(|e| e.id() == "1")
            })
            .then_error(invalid);
        let alone = mock!(Client::publish_batch).then_compute_output(|r| {
            let mut out = PublishBatchOutput::builder();
            for e in r.publish_batch_request_entries() {
                out = out.successful(ok(e.id()));
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&whole, &culprit, &alone]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(3), far())
            .await;
        assert_eq!(
            (whole.num_calls(), culprit.num_calls(), alone.num_calls()),
            (1, 1, 2)
        );
        let refused: Vec<usize> = report.refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(refused, [1]);
        assert!(
            report.refused[0].1.contains("Invalid parameter"),
            "{:?}",
            report.refused
        );
        assert!(report.unpublished.is_empty() && report.unknown.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_call_is_never_resent_whole() {
        // The SDK has retried the call already (its standard retries, on the real client);
        // the loop re-sends failed entries of answered calls only, never a whole call, which
        // might have been accepted.
        let down = mock!(Client::publish_batch).then_error(|| {
            PublishBatchError::InternalErrorException(
                aws_sdk_sns::types::error::InternalErrorException::builder()
                    .message("down")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&down]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(12), far())
            .await;
        assert_eq!(
            down.num_calls(),
            2,
            "one call per group of 10, none re-sent"
        );
        // SNS answered: known not accepted, so a re-delivery cannot duplicate them.
        assert_eq!(report.unpublished, (0..12).collect::<Vec<_>>());
        assert!(report.unknown.is_empty());
        assert_eq!(report.retries, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_call_leaves_its_whole_batch_unpublished() {
        let down = mock!(Client::publish_batch).then_error(|| {
            PublishBatchError::InternalErrorException(
                aws_sdk_sns::types::error::InternalErrorException::builder()
                    .message("down")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&down]);
        let report = publisher(client, RetryPolicy::immediate(Duration::ZERO))
            .publish(&messages(12), far())
            .await;
        assert_eq!(report.unpublished, (0..12).collect::<Vec<_>>());
        assert!(report.error.is_some());
    }

    /// A local SNS that reads each PublishBatch call whole, keeps it (as SNS would accept
    /// and deliver it) and then writes `answer` and hangs up, or with `None` never answers:
    /// either way the answer is lost after SNS accepted the call.
    async fn accepting_sns(
        answer: Option<&'static [u8]>,
    ) -> (String, std::sync::Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = std::sync::Arc::new(Mutex::new(Vec::new()));
        let calls = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let calls = calls.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 8192];
                    loop {
                        let Ok(n) = socket.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).into_owned();
                        let Some(head_end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())
                                    .flatten()
                            })
                            .unwrap_or(0);
                        if request.len() >= head_end + 4 + length {
                            calls
                                .lock()
                                .expect("lock")
                                .push(text[head_end + 4..].to_owned());
                            break;
                        }
                    }
                    match answer {
                        Some(answer) => {
                            let _ = socket.write_all(answer).await;
                        }
                        // The answer never comes (the connection stays open).
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                    drop(socket);
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_accepted_without_an_answer_is_never_sent_again() {
        let (url, accepted) = accepting_sns(None).await;
        // The stack's SDK configuration (standard retries, 3 attempts), with a short attempt
        // timeout so the lost answer shows quickly.
        let sdk = crate::sdk::sdk_config(Some(&url))
            .await
            .to_builder()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build();
        let publisher = SnsAlertPublisher::new(
            &sdk,
            "arn:aws:sns:us-east-1:123456789012:alerts",
            RetryPolicy::immediate(Duration::from_secs(5)),
        );
        let report = publisher.publish(&messages(3), far()).await;
        let calls = accepted.lock().expect("lock").clone();
        // SNS has the three alerts once: neither the SDK nor the loop sent the call again.
        assert_eq!(calls.len(), 1, "PublishBatch calls SNS received");
        assert!(calls[0].contains("Action=PublishBatch"), "{}", calls[0]);
        // Their fate is unknown: not published as far as we know, not known unpublished.
        assert_eq!(report.unknown, vec![0, 1, 2]);
        assert!(report.unpublished.is_empty() && report.refused.is_empty());
        assert!((0..3).all(|i| !report.published(i)));
        assert!(
            report
                .error
                .as_deref()
                .is_some_and(|e| e.contains("got no answer")),
            "{report:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_answered_with_success_and_a_cut_body_is_never_sent_again() {
        // 200 and the start of a body, then the connection closes: SNS took the call.
        let (url, accepted) = accepting_sns(Some(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 900\r\n\r\n<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishBatchResult>",
        ))
        .await;
        let sdk = crate::sdk::sdk_config(Some(&url)).await;
        let publisher = SnsAlertPublisher::new(
            &sdk,
            "arn:aws:sns:us-east-1:123456789012:alerts",
            RetryPolicy::immediate(Duration::from_secs(5)),
        );
        let report = publisher.publish(&messages(3), far()).await;
        let calls = accepted.lock().expect("lock").clone();
        assert_eq!(calls.len(), 1, "PublishBatch calls SNS received");
        assert_eq!(report.unknown, vec![0, 1, 2], "{report:?}");
        assert!(report.unpublished.is_empty() && report.refused.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn calls_hold_at_most_ten_entries() {
        let sizes = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let counting = mock!(Client::publish_batch).then_compute_output(move |r| {
            let entries = r.publish_batch_request_entries();
            seen.lock().expect("lock").push(entries.len());
            let mut out = PublishBatchOutput::builder();
            for e in entries {
                out = out.successful(ok(e.id()));
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&counting]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(23), far())
            .await;
        assert!(report.unpublished.is_empty());
        assert_eq!(*sizes.lock().expect("lock"), vec![10, 10, 3]);
    }
}
