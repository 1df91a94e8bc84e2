//! The error sink: poison records, with their reason, as SQS messages.
//!
//! Limits. SendMessageBatch takes at most 10 messages. Since August 2025 AWS takes a message,
//! and a request's message bodies added up, of up to 1 MiB (256 KiB before, and still the
//! limit of a queue whose `MaximumMessageSize` says so); moto 5.2 checks 1 MiB; LocalStack
//! releases before the change check 256 KiB. The sink keeps under the smallest on each
//! count: at most [`MAX_BATCH_BYTES`] (256 KiB) of bodies a call, and each body at most
//! [`MAX_MESSAGE_BYTES`], so a full call of ten always fits. A poison record whose message
//! would be larger (a long reason, a data prefix full of escapes) is sent cut to a bounded
//! reason and a shorter prefix, with its metadata (shard, sequence number, reason kind, size
//! of the record) whole; a message SQS still refuses as the sender's fault is sent once more
//! as metadata alone, and never fails the batch: the record itself stays in the stream.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchRequestEntry};

use super::retry::{RetryPolicy, Sent, send_with_retries};
use realty_metrics::ports::{PoisonRecord, PoisonSink};
use realty_model::listing::bound_reason;
use realty_model::ports::PortError;

/// Messages a SendMessageBatch call takes.
pub const MAX_MESSAGES_PER_BATCH: usize = 10;
/// Bytes of message bodies a SendMessageBatch call carries: the 256 KiB every SQS
/// (AWS before and after its 1 MiB change, moto, LocalStack) accepts.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Largest message body the sink sends: a tenth of a call, so ten always fit in one.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES / MAX_MESSAGES_PER_BATCH;
/// Bytes of the record's start kept in a message that had to be cut.
pub const CUT_DATA_PREFIX_BYTES: usize = 1024;
/// Bytes of the shard or sequence number kept in a metadata-only message (Kinesis's are
/// far shorter; this only bounds what a caller might pass).
const METADATA_FIELD_BYTES: usize = 256;

#[derive(Debug, Clone)]
pub struct SqsPoisonSink {
    pub client: Client,
    pub queue_url: String,
    pub retry: RetryPolicy,
}

/// One message on its way: its batch entry id, its body, and the metadata-only body to send
/// instead if SQS refuses this one as the sender's fault (`None` once it is that body).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub metadata_only: Option<String>,
}

/// `text` cut to at most `max` bytes at a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// A record as a message body: JSON, with the two characters JSON allows raw but SQS
/// refuses (U+FFFE, U+FFFF) escaped.
pub(crate) fn body_of(record: &impl serde::Serialize) -> String {
    // The error sink's records are structs of strings and integers: they always serialize.
    let json = serde_json::to_string(record).unwrap_or_default();
    if json.contains(['\u{FFFE}', '\u{FFFF}']) {
        json.replace('\u{FFFE}', "\\ufffe")
            .replace('\u{FFFF}', "\\uffff")
    } else {
        json
    }
}

/// The metadata of a record, its reason bounded, without its data.
fn metadata_only(record: &PoisonRecord) -> PoisonRecord {
    PoisonRecord {
        shard: prefix(&record.shard, METADATA_FIELD_BYTES).to_owned(),
        sequence_number: prefix(&record.sequence_number, METADATA_FIELD_BYTES).to_owned(),
        reason_kind: prefix(&record.reason_kind, METADATA_FIELD_BYTES).to_owned(),
        reason: bound_reason(record.reason.clone()),
        data_bytes: record.data_bytes,
        data_prefix: String::new(),
    }
}

/// The message for `record` (entry id `id`): its whole JSON when that fits in
/// [`MAX_MESSAGE_BYTES`], else cut to a bounded reason and [`CUT_DATA_PREFIX_BYTES`] of data,
/// else metadata alone.
pub fn message_of(id: String, record: &PoisonRecord) -> Message {
    let whole = body_of(record);
    let minimal = body_of(&metadata_only(record));
    if whole.len() <= MAX_MESSAGE_BYTES {
        return Message {
            id,
            body: whole,
            metadata_only: Some(minimal),
        };
    }
    let mut cut = metadata_only(record);
    cut.data_prefix = prefix(&record.data_prefix, CUT_DATA_PREFIX_BYTES).to_owned();
    let cut = body_of(&cut);
    if cut.len() <= MAX_MESSAGE_BYTES {
        Message {
            id,
            body: cut,
            metadata_only: Some(minimal),
        }
    } else {
        Message {
            id,
            body: minimal,
            metadata_only: None,
        }
    }
}

/// Groups messages (by body size, in order) into calls of at most
/// [`MAX_MESSAGES_PER_BATCH`] messages and [`MAX_BATCH_BYTES`] of bodies.
pub fn chunk_messages(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    realty_model::ports::chunk_by_limits(sizes, MAX_MESSAGES_PER_BATCH, MAX_BATCH_BYTES)
}

/// What to do with the failed entries of a call: re-send those SQS may take next time (any
/// fault but the entry's own contents, such as the queue's key denied or throttling), as
/// metadata alone those it refused for their contents, and give up on those it refused even so (logged; the record stays in the stream for its retention period).
fn to_resend(messages: Vec<Message>, failed: &[BatchResultErrorEntry]) -> Vec<Message> {
    let mut resend = Vec::new();
    for mut message in messages {
        let Some(failure) = failed.iter().find(|f| f.id == message.id) else {
            continue;
        };
        if !crate::adapters::retry::entry_content_error(&failure.code) {
            resend.push(message);
        } else if let Some(minimal) = message.metadata_only.take() {
            message.body = minimal;
            resend.push(message);
        } else {
            metrics::counter!("poison_messages_refused").increment(1);
            tracing::error!(
                code = %failure.code,
                message = failure.message.as_deref().unwrap_or_default(),
                body = prefix(&message.body, 512),
                "SQS refused a poison record's metadata; the record stays in the stream only"
            );
        }
    }
    resend
}

impl SqsPoisonSink {
    async fn send_batch(&self, messages: Vec<Message>) -> Sent<Message> {
        let entries: Result<Vec<SendMessageBatchRequestEntry>, _> = messages
            .iter()
            .map(|m| {
                SendMessageBatchRequestEntry::builder()
                    .id(&m.id)
                    .message_body(&m.body)
                    .build()
            })
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                return Sent::Failed {
                    unsent: messages,
                    error: e.to_string(),
                };
            }
        };
        match self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                // An entry the answer names neither way is sent again (a poison record
                // twice in the queue is read twice, never lost).
                let answered = |id: &str| {
                    out.successful.iter().any(|s| s.id == id)
                        || out.failed.iter().any(|f| f.id == id)
                };
                let (answered, unanswered): (Vec<Message>, Vec<Message>) =
                    messages.into_iter().partition(|m| answered(&m.id));
                let error = out
                    .failed
                    .first()
                    .map(|f| format!("{}: {}", f.code, f.message.as_deref().unwrap_or_default()))
                    .or_else(|| {
                        (!unanswered.is_empty()).then(|| {
                            format!(
                                "SendMessageBatch's answer leaves out {} entries",
                                unanswered.len()
                            )
                        })
                    });
                let mut failed = to_resend(answered, &out.failed);
                failed.extend(unanswered);
                Sent::Answered {
                    failed,
                    error: error.unwrap_or_default(),
                }
            }
            Err(e) => Sent::Failed {
                unsent: messages,
                error: crate::sdk::error_line(&e),
            },
        }
    }
}

impl PoisonSink for SqsPoisonSink {
    async fn send(&self, records: &[PoisonRecord]) -> Result<(), PortError> {
        let messages: Vec<Message> = records
            .iter()
            .enumerate()
            .map(|(i, r)| message_of(i.to_string(), r))
            .collect();
        self.send_messages(messages, "poison records").await
    }
}

impl SqsPoisonSink {
    /// Sends messages of at most [`MAX_MESSAGE_BYTES`] each (entry ids unique), in calls
    /// within SendMessageBatch's limits, re-sending only the failed entries. `what` names
    /// them in the error.
    pub async fn send_messages(&self, messages: Vec<Message>, what: &str) -> Result<(), PortError> {
        let sizes: Vec<usize> = messages.iter().map(|m| m.body.len()).collect();
        for range in chunk_messages(&sizes) {
            let chunk = messages[range].to_vec();
            // Re-sent messages are the failed part of the chunk, as large or smaller: they
            // stay within its limits.
            let result = send_with_retries(self.retry, chunk, |chunk| self.send_batch(chunk)).await;
            if let Err(unsent) = result {
                return Err(PortError::new(
                    "SendMessageBatch",
                    format!(
                        "{} {what} unsent after {} attempts: {}",
                        unsent.items.len(),
                        unsent.attempts,
                        bound_reason(unsent.last_error)
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use aws_sdk_sqs::operation::send_message_batch::{
        SendMessageBatchInput, SendMessageBatchOutput,
    };
    use aws_sdk_sqs::types::SendMessageBatchResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use proptest::prelude::*;

    use super::*;

    fn record(sequence: usize, reason: String, data_prefix: String) -> PoisonRecord {
        PoisonRecord {
            shard: "shardId-000000000000".into(),
            sequence_number: sequence.to_string(),
            reason_kind: "malformed".into(),
            reason,
            data_bytes: 600 * 1024,
            data_prefix,
        }
    }

    /// The body of a message that exactly fills `size` bytes.
    fn record_of_body_size(size: usize) -> PoisonRecord {
        let empty = body_of(&record(1, String::new(), String::new())).len();
        record(1, "r".repeat(size - empty), String::new())
    }

    #[test]
    fn a_message_at_its_limit_is_whole_and_just_past_it_is_cut() {
        let at = record_of_body_size(MAX_MESSAGE_BYTES);
        let message = message_of("0".into(), &at);
        assert_eq!(message.body.len(), MAX_MESSAGE_BYTES);
        assert_eq!(
            serde_json::from_str::<PoisonRecord>(&message.body).ok(),
            Some(at)
        );

        let past = record_of_body_size(MAX_MESSAGE_BYTES + 1);
        let message = message_of("0".into(), &past);
        assert!(message.body.len() <= MAX_MESSAGE_BYTES);
        let sent: PoisonRecord = serde_json::from_str(&message.body).expect("json");
        assert_eq!(
            (
                &sent.shard,
                &sent.sequence_number,
                &sent.reason_kind,
                sent.data_bytes
            ),
            (
                &past.shard,
                &past.sequence_number,
                &past.reason_kind,
                past.data_bytes
            )
        );
        assert!(sent.reason.len() < past.reason.len());
    }

    #[test]
    fn a_600_kb_reason_and_a_prefix_of_escapes_make_a_bounded_message() {
        let huge = record(
            7,
            format!("unknown variant `{}`", "ü".repeat(300 * 1024)),
            "\u{1}".repeat(2048),
        );
        let message = message_of("0".into(), &huge);
        assert!(
            message.body.len() <= MAX_MESSAGE_BYTES,
            "{}",
            message.body.len()
        );
        let sent: PoisonRecord = serde_json::from_str(&message.body).expect("json");
        assert!(sent.reason.starts_with("unknown variant `ü"));
        assert_eq!(sent.data_bytes, 600 * 1024);
        assert!(!sent.data_prefix.is_empty());
    }

    #[test]
    fn characters_sqs_refuses_are_escaped() {
        let message = message_of(
            "0".into(),
            &record(1, "x".into(), "a\u{FFFE}b\u{FFFF}".into()),
        );
        assert!(!message.body.contains(['\u{FFFE}', '\u{FFFF}']));
        let sent: PoisonRecord = serde_json::from_str(&message.body).expect("json");
        assert_eq!(sent.data_prefix, "a\u{FFFE}b\u{FFFF}");
    }

    proptest! {
        #[test]
        fn calls_stay_within_ten_messages_and_256_kib(
            sizes in proptest::collection::vec(1..=MAX_MESSAGE_BYTES, 0..60)
        ) {
            let chunks = chunk_messages(&sizes);
            let mut next = 0;
            for chunk in &chunks {
                prop_assert_eq!(chunk.start, next);
                prop_assert!(!chunk.is_empty());
                prop_assert!(chunk.len() <= MAX_MESSAGES_PER_BATCH);
                prop_assert!(sizes[chunk.clone()].iter().sum::<usize>() <= MAX_BATCH_BYTES);
                next = chunk.end;
            }
            prop_assert_eq!(next, sizes.len());
        }
    }

    #[test]
    fn calls_split_by_bytes_before_count() {
        let big = MAX_BATCH_BYTES / 3;
        assert_eq!(chunk_messages(&[big; 4]), vec![0..3, 3..4]);
        assert_eq!(chunk_messages(&[10; 21]), vec![0..10, 10..20, 20..21]);
        assert_eq!(chunk_messages(&[]), Vec::<std::ops::Range<usize>>::new());
    }

    fn sink(client: Client) -> SqsPoisonSink {
        SqsPoisonSink {
            client,
            queue_url: "q".into(),
            retry: RetryPolicy::immediate(Duration::from_secs(5)),
        }
    }

    /// A successful entry of SendMessageBatch's answer.
    fn went_through(id: &str) -> SendMessageBatchResultEntry {
        SendMessageBatchResultEntry::builder()
            .id(id)
            .message_id(format!("m-{id}"))
            .md5_of_message_body("-")
            .build()
            .expect("entry")
    }

    /// SendMessageBatch's answer when every message of `input` went through.
    pub(crate) fn accepted(input: &SendMessageBatchInput) -> SendMessageBatchOutput {
        SendMessageBatchOutput::builder()
            .set_successful(Some(
                input
                    .entries()
                    .iter()
                    .map(|e| went_through(e.id()))
                    .collect(),
            ))
            .set_failed(Some(vec![]))
            .build()
            .expect("output")
    }

    /// SendMessageBatch's answer to `input` with entry `id` failed as `code` and the
    /// others through.
    pub(crate) fn one_failed(
        input: &SendMessageBatchInput,
        id: &str,
        code: &str,
        sender_fault: bool,
    ) -> SendMessageBatchOutput {
        let others = input.entries().iter().filter(|e| e.id() != id);
        SendMessageBatchOutput::builder()
            .set_successful(Some(others.map(|e| went_through(e.id())).collect()))
            .failed(
                BatchResultErrorEntry::builder()
                    .id(id)
                    .code(code)
                    .sender_fault(sender_fault)
                    .build()
                    .expect("entry"),
            )
            .build()
            .expect("output")
    }

    /// Issue 12, point 2: two records with a 600 KB `status` failed the whole batch with
    /// `BatchRequestTooLong`. Every call now stays within the limits.
    #[tokio::test(flavor = "current_thread")]
    async fn two_600_kb_reasons_go_out_in_bounded_calls() {
        let records: Vec<PoisonRecord> = (0..12)
            .map(|i| {
                record(
                    i,
                    format!("unknown variant `{}`", "a".repeat(600 * 1024)),
                    "a".repeat(2048),
                )
            })
            .collect();
        let within_limits = mock!(Client::send_message_batch)
            .match_requests(|r| {
                r.entries().len() <= MAX_MESSAGES_PER_BATCH
                    && r.entries()
                        .iter()
                        .map(|e| e.message_body().len())
                        .sum::<usize>()
                        <= MAX_BATCH_BYTES
            })
            .then_compute_output(accepted);
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&within_limits]);
        sink(client).send(&records).await.expect("sent");
        assert_eq!(within_limits.num_calls(), 2);
    }

    /// A message SQS refuses as the sender's fault is sent again as metadata alone, and only
    /// it: the others of its call went through.
    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_message_is_resent_as_metadata_alone() {
        let records = vec![
            record(1, "r".into(), "good".into()),
            record(2, "r".into(), "refused".into()),
        ];
        let first = mock!(Client::send_message_batch)
            .match_requests(|r| r.entries().len() == 2)
            .then_compute_output(|input| one_failed(input, "1", "InvalidMessageContents", true));
        let retry = mock!(Client::send_message_batch)
            .match_requests(|r| {
                r.entries().len() == 1
                    && r.entries()[0].id() == "1"
                    && serde_json::from_str::<PoisonRecord>(r.entries()[0].message_body())
                        .is_ok_and(|p| p.data_prefix.is_empty() && p.sequence_number == "2")
            })
            .then_compute_output(accepted);
        let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, [&first, &retry]);
        sink(client).send(&records).await.expect("sent");
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    }

    /// Throttled (here the queue's KMS key) is re-sent whole, whichever side SQS blames.
    #[tokio::test(flavor = "current_thread")]
    async fn a_throttled_message_is_resent_whole_even_as_a_sender_fault() {
        let records = vec![record(1, "r".into(), "throttled".into())];
        let first = mock!(Client::send_message_batch)
            .match_requests(|r| r.entries().len() == 1)
            .then_compute_output(|input| one_failed(input, "0", "KMS.ThrottlingException", true));
        let retry = mock!(Client::send_message_batch)
            .match_requests(|r| {
                r.entries().len() == 1
                    && serde_json::from_str::<PoisonRecord>(r.entries()[0].message_body())
                        .is_ok_and(|p| !p.data_prefix.is_empty())
            })
            .then_compute_output(accepted);
        let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, [&first, &retry]);
        sink(client).send(&records).await.expect("sent");
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    }

    /// Refused even as metadata: given up on (logged), not a failed batch.
    #[tokio::test(flavor = "current_thread")]
    async fn metadata_refused_again_does_not_fail_the_batch() {
        let refused = mock!(Client::send_message_batch)
            .then_compute_output(|input| one_failed(input, "0", "InvalidMessageContents", true));
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&refused]);
        sink(client)
            .send(&[record(1, "r".into(), "x".into())])
            .await
            .expect("given up, not failed");
        assert_eq!(refused.num_calls(), 2);
    }
}
