//! Reading a trigger's stream: its shards, their iterators and pages of records, for
//! Kinesis and DynamoDB Streams alike.

use std::collections::{HashSet, VecDeque};
use tokio::time::Instant;

use aws_config::SdkConfig;

use super::records::{StreamRecord, dynamodb_record, kinesis_record};
use super::settings::{StartingPosition, TriggerKind};
use super::{RunnerError, aws_error};

/// Largest `Limit` of one Kinesis `GetRecords` call.
const KINESIS_GET_RECORDS_LIMIT: i32 = 10_000;
/// Largest `Limit` of one DynamoDB Streams `GetRecords` call.
const DYNAMODB_GET_RECORDS_LIMIT: i32 = 1_000;
/// How many of a shard's latest record identities [`RecentlyRead`] keeps.
const RECENTLY_READ_CAPACITY: usize = 20_000;

/// Where in a shard an iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReadFrom {
    /// The trigger's starting position: a shard read for the first time.
    Start(StartingPosition),
    /// Just after the record with this sequence number: the shard's reading picked up again.
    After(String),
}

/// One `GetRecords` answer.
#[derive(Debug)]
pub(super) enum Page {
    /// The records, and the next iterator (`None`: the shard is closed and read to its end).
    Records(Vec<StreamRecord>, Option<String>),
    /// The iterator can no longer be read (`ExpiredIteratorException`, 15 minutes unused;
    /// `TrimmedDataAccessException`, past the stream's retention, or raised spuriously by
    /// DynamoDB Local): the reader takes a new one, as Lambda's pollers do. The error's text.
    IteratorLost(String),
}

/// The stream a mapping reads, resolved against a provisioned stack.
#[derive(Debug, Clone)]
pub(super) enum SourceStream {
    Kinesis {
        client: aws_sdk_kinesis::Client,
        stream_name: String,
        stream_arn: String,
    },
    DynamoDb {
        client: aws_sdk_dynamodbstreams::Client,
        stream_arn: String,
    },
}

impl SourceStream {
    /// The stream of `resource_name` (a Kinesis stream, or a table's stream), as
    /// `function`'s trigger of `kind` reads it.
    pub(super) async fn connect(
        sdk: &SdkConfig,
        kind: TriggerKind,
        resource_name: String,
        function: &str,
    ) -> Result<Self, RunnerError> {
        Ok(match kind {
            TriggerKind::Kinesis => {
                let client = aws_sdk_kinesis::Client::new(sdk);
                let summary = client
                    .describe_stream_summary()
                    .stream_name(&resource_name)
                    .send()
                    .await
                    .map_err(aws_error("DescribeStreamSummary"))?;
                let stream_arn = summary
                    .stream_description_summary
                    .map(|d| d.stream_arn)
                    .unwrap_or_default();
                Self::Kinesis {
                    client,
                    stream_name: resource_name,
                    stream_arn,
                }
            }
            TriggerKind::DynamoDb => {
                let table = aws_sdk_dynamodb::Client::new(sdk)
                    .describe_table()
                    .table_name(&resource_name)
                    .send()
                    .await
                    .map_err(aws_error("DescribeTable"))?;
                let stream_arn =
                    table
                        .table
                        .and_then(|t| t.latest_stream_arn)
                        .ok_or_else(|| RunnerError::Settings {
                            function: function.to_owned(),
                            reason: format!("table {resource_name} has no stream"),
                        })?;
                Self::DynamoDb {
                    client: aws_sdk_dynamodbstreams::Client::new(sdk),
                    stream_arn,
                }
            }
        })
    }

    pub(super) fn arn(&self) -> &str {
        match self {
            Self::Kinesis { stream_arn, .. } | Self::DynamoDb { stream_arn, .. } => stream_arn,
        }
    }

    /// Every shard of the stream, with its parent.
    pub(super) async fn list_shards(&self) -> Result<Vec<(String, Option<String>)>, RunnerError> {
        let mut out = Vec::new();
        match self {
            Self::Kinesis {
                client,
                stream_name,
                ..
            } => {
                let mut token: Option<String> = None;
                loop {
                    let request = match &token {
                        Some(t) => client.list_shards().next_token(t),
                        None => client.list_shards().stream_name(stream_name),
                    };
                    let page = request.send().await.map_err(aws_error("ListShards"))?;
                    for shard in page.shards() {
                        out.push((shard.shard_id.clone(), shard.parent_shard_id.clone()));
                    }
                    token = page.next_token;
                    if token.is_none() {
                        break;
                    }
                }
            }
            Self::DynamoDb { client, stream_arn } => {
                let mut start: Option<String> = None;
                loop {
                    let page = client
                        .describe_stream()
                        .stream_arn(stream_arn)
                        .set_exclusive_start_shard_id(start.clone())
                        .send()
                        .await
                        .map_err(aws_error("DescribeStream"))?;
                    let Some(description) = page.stream_description else {
                        break;
                    };
                    for shard in description.shards() {
                        if let Some(id) = shard.shard_id() {
                            out.push((id.to_owned(), shard.parent_shard_id.clone()));
                        }
                    }
                    start = description.last_evaluated_shard_id;
                    if start.is_none() {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// An iterator of `shard_id` reading `from` (`None`: the shard has nothing to read).
    pub(super) async fn shard_iterator(
        &self,
        shard_id: &str,
        from: &ReadFrom,
    ) -> Result<Option<String>, RunnerError> {
        match self {
            Self::Kinesis {
                client,
                stream_name,
                ..
            } => {
                use aws_sdk_kinesis::types::ShardIteratorType as T;
                let (kind, after) = match from {
                    ReadFrom::Start(StartingPosition::Latest) => (T::Latest, None),
                    ReadFrom::Start(StartingPosition::TrimHorizon) => (T::TrimHorizon, None),
                    ReadFrom::After(seq) => (T::AfterSequenceNumber, Some(seq.clone())),
                };
                Ok(client
                    .get_shard_iterator()
                    .stream_name(stream_name)
                    .shard_id(shard_id)
                    .shard_iterator_type(kind)
                    .set_starting_sequence_number(after)
                    .send()
                    .await
                    .map_err(aws_error("GetShardIterator"))?
                    .shard_iterator)
            }
            Self::DynamoDb { client, stream_arn } => {
                use aws_sdk_dynamodbstreams::types::ShardIteratorType as T;
                let (kind, after) = match from {
                    ReadFrom::Start(StartingPosition::Latest) => (T::Latest, None),
                    ReadFrom::Start(StartingPosition::TrimHorizon) => (T::TrimHorizon, None),
                    ReadFrom::After(seq) => (T::AfterSequenceNumber, Some(seq.clone())),
                };
                Ok(client
                    .get_shard_iterator()
                    .stream_arn(stream_arn)
                    .shard_id(shard_id)
                    .shard_iterator_type(kind)
                    .set_sequence_number(after)
                    .send()
                    .await
                    .map_err(aws_error("GetShardIterator"))?
                    .shard_iterator)
            }
        }
    }

    /// One `GetRecords` page from `iterator`, as event records. `region` and `account_id`
    /// go into Kinesis records.
    pub(super) async fn get_records(
        &self,
        shard_id: &str,
        iterator: String,
        region: &str,
        account_id: &str,
    ) -> Result<Page, RunnerError> {
        match self {
            Self::Kinesis {
                client, stream_arn, ..
            } => {
                use aws_sdk_kinesis::operation::get_records::GetRecordsError as E;
                let sent = client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(KINESIS_GET_RECORDS_LIMIT)
                    .send()
                    .await;
                let page = match sent {
                    Ok(page) => page,
                    Err(e)
                        if matches!(e.as_service_error(), Some(E::ExpiredIteratorException(_))) =>
                    {
                        return Ok(Page::IteratorLost(realty_aws::sdk::error_line(&e)));
                    }
                    Err(e) => return Err(aws_error("GetRecords")(e)),
                };
                let records = page
                    .records
                    .iter()
                    .map(|r| kinesis_record(r, shard_id, stream_arn, region, account_id))
                    .collect::<Vec<_>>();
                Ok(Page::Records(records, page.next_shard_iterator))
            }
            Self::DynamoDb { client, stream_arn } => {
                use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError as E;
                let sent = client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(DYNAMODB_GET_RECORDS_LIMIT)
                    .send()
                    .await;
                let page = match sent {
                    Ok(page) => page,
                    Err(e)
                        if matches!(
                            e.as_service_error(),
                            Some(E::ExpiredIteratorException(_) | E::TrimmedDataAccessException(_))
                        ) =>
                    {
                        return Ok(Page::IteratorLost(realty_aws::sdk::error_line(&e)));
                    }
                    Err(e) => return Err(aws_error("GetRecords")(e)),
                };
                let records = page
                    .records
                    .unwrap_or_default()
                    .iter()
                    .map(|r| dynamodb_record(r, stream_arn))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Page::Records(records, page.next_shard_iterator))
            }
        }
    }
}

/// A shard's reading position and records read but not yet delivered.
#[derive(Debug, Default)]
pub(super) struct ShardCursor {
    pub(super) parent: Option<String>,
    pub(super) iterator: Option<String>,
    /// The shard is closed and everything in it was read.
    pub(super) finished: bool,
    pub(super) buffer: VecDeque<StreamRecord>,
    /// When the oldest buffered record was read (the batching window runs from it).
    pub(super) buffered_since: Option<Instant>,
    pub(super) recently_read: RecentlyRead,
    /// The sequence number of the last record read: where a lost iterator picks up.
    pub(super) last_read: Option<String>,
}

/// The identities (`eventID`) of a shard's latest records read, so a record the stream hands
/// out twice is delivered once. A bare moto server numbers concurrent writes to a table's
/// stream without a lock: two records can share a sequence number, and the iterator after a
/// page ending on such a record starts on that record again (forever, when it is the
/// stream's last, so a drain would never end). The project's emulator serves one request at a
/// time (infra/src/moto_serial.py), so this needs an emulator started some other way
/// (`AWS_ENDPOINT_URL`); a real stream never repeats a record, and there the guard never
/// fires. Bounded: a re-read reaches back at most a few records.
#[derive(Debug, Default)]
pub(super) struct RecentlyRead {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl RecentlyRead {
    /// Notes `id`; false if it was read before.
    pub(super) fn first_time(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == RECENTLY_READ_CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }
}
