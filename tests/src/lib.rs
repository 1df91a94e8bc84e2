//! Support for the integration tests: one local AWS per test run, and a fresh stack
//! (resource-name prefix) per test, so tests run in parallel without meeting.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_smithy_types::error::display::DisplayErrorContext;
use realty_infra::emulator::{self, Emulator, EmulatorKind};
use realty_infra::provision::{self, ProvisionOptions, ProvisionedStack};
use realty_infra::template::Template;

pub mod calls;
pub mod lake_reader;

/// The AWS endpoint of this test run: an emulator started for it (LocalStack by default,
/// moto with `REALTY_EMULATOR=moto`; stopped when this is dropped, or by the kernel if the run
/// dies), or `AWS_ENDPOINT_URL` when set.
pub struct TestAws {
    pub endpoint: String,
    pub project_root: PathBuf,
    /// The emulator this run started (none for `AWS_ENDPOINT_URL`).
    pub kind: Option<EmulatorKind>,
    /// The log of the emulator this run started.
    pub emulator_log: Option<PathBuf>,
    emulator: Option<Emulator>,
    next_stack: AtomicUsize,
}

impl TestAws {
    pub fn start() -> Result<Self, String> {
        let project_root = emulator::project_root().map_err(|e| e.to_string())?;
        if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|v| !v.is_empty())
        {
            return Ok(Self {
                endpoint,
                project_root,
                kind: None,
                emulator_log: None,
                emulator: None,
                next_stack: AtomicUsize::new(0),
            });
        }
        let kind = emulator::choose(&project_root, None).map_err(|e| e.to_string())?;
        eprintln!("integration tests against {kind}");
        let log = project_root.join(format!(
            "target/realty/it-{}-{}.log",
            kind.name(),
            std::process::id()
        ));
        let started =
            Emulator::start_attached(kind, &project_root, &log).map_err(|e| e.to_string())?;
        Ok(Self {
            endpoint: started.endpoint.clone(),
            project_root,
            kind: Some(kind),
            emulator_log: Some(log),
            emulator: Some(started),
            next_stack: AtomicUsize::new(0),
        })
    }

    /// Stops the emulator this run started.
    pub fn stop(self) {
        if let Some(emulator) = self.emulator {
            emulator.stop();
        }
    }

    pub async fn sdk_config(&self) -> SdkConfig {
        realty_aws::sdk::sdk_config(Some(&self.endpoint)).await
    }

    /// The SDK config of the function `function` (its logical id in template.yaml): every
    /// call of its clients is checked against its role when the test ends ([`calls`]).
    pub async fn function_sdk(&self, function: &'static str) -> SdkConfig {
        let sdk = self.sdk_config().await;
        let account = aws_sdk_sts::Client::new(&sdk)
            .get_caller_identity()
            .send()
            .await
            .ok()
            .and_then(|o| o.account)
            .unwrap_or_else(|| "000000000000".into());
        let keys = calls::partition_keys(&self.template())
            .into_values()
            .collect();
        calls::record(&sdk, function, &account, keys)
    }

    pub fn template(&self) -> Template {
        Template::load(&self.project_root.join("template.yaml")).expect("template.yaml parses")
    }

    /// A stack name no other test of any run against this endpoint uses.
    pub fn unique_stack_name(&self) -> String {
        let n = self.next_stack.fetch_add(1, Ordering::Relaxed);
        format!("it{}-{n}", std::process::id())
    }

    /// Provisions template.yaml under a fresh stack name.
    pub async fn provision(&self, parameters: &[(&str, &str)]) -> ProvisionedStack {
        let name = self.unique_stack_name();
        self.provision_as(&name, parameters).await
    }

    pub async fn provision_as(
        &self,
        stack_name: &str,
        parameters: &[(&str, &str)],
    ) -> ProvisionedStack {
        let options = ProvisionOptions {
            stack_name: stack_name.to_owned(),
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        };
        let stack = provision::provision(&self.sdk_config().await, &self.template(), &options)
            .await
            .unwrap_or_else(|e| panic!("provisioning {stack_name}: {e}"));
        // Outside a test's scope (no task-local) the stack is simply kept.
        let _ = TEST_STACKS.try_with(|stacks| {
            if let Ok(mut stacks) = stacks.lock() {
                stacks.push(stack.clone());
            }
        });
        stack
    }

    /// Deletes the stacks' streams and delivery streams: the resources with per-account
    /// quotas (moto allows 50 delivery streams, LocalStack 50 on-demand streams), which a
    /// whole suite of stacks on one emulator would otherwise exhaust. Tables, queues and
    /// buckets stay for a post-mortem.
    pub async fn retire(&self, stacks: &[ProvisionedStack]) -> Result<(), String> {
        let sdk = self.sdk_config().await;
        let kinesis = aws_sdk_kinesis::Client::new(&sdk);
        let firehose = aws_sdk_firehose::Client::new(&sdk);
        // A stack provisioned twice under one name is listed twice.
        let resources: std::collections::BTreeSet<(&str, &str)> = stacks
            .iter()
            .flat_map(|s| &s.resources)
            .map(|r| (r.kind.as_str(), r.physical_id.as_str()))
            .collect();
        for (kind, name) in resources {
            match kind {
                "AWS::KinesisFirehose::DeliveryStream" => {
                    let deleted = firehose
                        .delete_delivery_stream()
                        .delivery_stream_name(name)
                        .allow_force_delete(true)
                        .send()
                        .await;
                    match deleted {
                        Ok(_) => {}
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
                        Err(e) => {
                            return Err(format!("deleting {name}: {}", DisplayErrorContext(e)));
                        }
                    }
                }
                "AWS::Kinesis::Stream" => {
                    let request = kinesis.delete_stream().enforce_consumer_deletion(true);
                    let request = if name.starts_with("arn:") {
                        request.stream_arn(name)
                    } else {
                        request.stream_name(name)
                    };
                    match request.send().await {
                        Ok(_) => {}
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
                        Err(e) => {
                            return Err(format!("deleting {name}: {}", DisplayErrorContext(e)));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

tokio::task_local! {
    /// The stacks the current test provisioned, retired when it ends (see `retire`).
    pub static TEST_STACKS: std::sync::Mutex<Vec<ProvisionedStack>>;
}

/// The stacks the current test provisioned so far (none outside a test's scope).
pub fn take_test_stacks() -> Vec<ProvisionedStack> {
    TEST_STACKS
        .try_with(|stacks| match stacks.lock() {
            Ok(mut stacks) => std::mem::take(&mut *stacks),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        })
        .unwrap_or_default()
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `command` to its end within `deadline`, its standard output and error written to
/// `<dir>/<name>.stdout` and `.stderr`. A command still running at the deadline is killed
/// and its output so far returned in the error, so a hang fails the test with what the
/// command last printed instead of stalling the run.
pub async fn run_bounded(
    mut command: tokio::process::Command,
    deadline: Duration,
    dir: &Path,
    name: &str,
) -> Result<Output, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let out_path = dir.join(format!("{name}.stdout"));
    let err_path = dir.join(format!("{name}.stderr"));
    let file = |path: &Path| {
        std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))
    };
    command
        .stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {name}: {e}"))?;
    let status = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(status) => status.map_err(|e| format!("waiting for {name}: {e}"))?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!(
                "{name} did not finish within {} s and was killed; the end of its output:\n{}\n--- stderr ---\n{}",
                deadline.as_secs(),
                tail(&out_path, 40),
                tail(&err_path, 60)
            ));
        }
    };
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()));
    Ok(Output {
        status,
        stdout: read(&out_path)?,
        stderr: read(&err_path)?,
    })
}

/// Every record of a Kinesis stream, shard after shard, each shard read from TRIM_HORIZON
/// until a page comes back empty.
pub async fn kinesis_records(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<aws_sdk_kinesis::types::Record>, libtest_mimic::Failed> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .explain("ListShards")?;
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .explain("GetShardIterator")?
            .shard_iterator;
        while let Some(current) = iterator.take() {
            let page = kinesis
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await
                .explain("GetRecords")?;
            if page.records().is_empty() {
                break;
            }
            iterator = page.next_shard_iterator;
            out.extend(page.records);
        }
    }
    Ok(out)
}

/// Reads a DynamoDB table's stream shard by shard from TRIM_HORIZON, remembering where it
/// stopped.
pub struct TableStreamReader {
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    iterators: BTreeMap<String, Option<String>>,
}

impl TableStreamReader {
    pub fn new(streams: aws_sdk_dynamodbstreams::Client, stream_arn: &str) -> Self {
        Self {
            streams,
            stream_arn: stream_arn.to_owned(),
            iterators: BTreeMap::new(),
        }
    }

    /// Every record written since the last call, in stream order per shard.
    pub async fn next_records(
        &mut self,
    ) -> Result<Vec<aws_sdk_dynamodbstreams::types::Record>, libtest_mimic::Failed> {
        let mut records = Vec::new();
        loop {
            let page = self.next_page().await?;
            if page.is_empty() {
                return Ok(records);
            }
            records.extend(page);
        }
    }

    /// At most one page of each shard, from where the last call stopped.
    pub async fn next_page(
        &mut self,
    ) -> Result<Vec<aws_sdk_dynamodbstreams::types::Record>, libtest_mimic::Failed> {
        let description = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .explain("DescribeStream")?
            .stream_description
            .ok_or("no stream description")?;
        for shard in description.shards() {
            let Some(shard_id) = shard.shard_id() else {
                continue;
            };
            if !self.iterators.contains_key(shard_id) {
                let iterator = self
                    .streams
                    .get_shard_iterator()
                    .stream_arn(&self.stream_arn)
                    .shard_id(shard_id)
                    .shard_iterator_type(
                        aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon,
                    )
                    .send()
                    .await
                    .explain("GetShardIterator")?
                    .shard_iterator;
                self.iterators.insert(shard_id.to_owned(), iterator);
            }
        }
        let mut records = Vec::new();
        for iterator in self.iterators.values_mut() {
            if let Some(current) = iterator.clone() {
                let page = self
                    .streams
                    .get_records()
                    .shard_iterator(current)
                    .send()
                    .await
                    .explain("GetRecords")?;
                records.extend(page.records.unwrap_or_default());
                // An open shard always hands out a next iterator: keep it for the next call.
                *iterator = page.next_shard_iterator;
            }
        }
        Ok(records)
    }
}

/// Names what failed, with the whole AWS error chain (an SDK error alone prints as
/// "service error").
pub trait Explain<T> {
    fn explain(self, what: &str) -> Result<T, libtest_mimic::Failed>;
}

impl<T, E: std::error::Error> Explain<T> for Result<T, E> {
    fn explain(self, what: &str) -> Result<T, libtest_mimic::Failed> {
        self.map_err(|e| format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)).into())
    }
}

/// `Ok` when `condition` holds, else the test's failure with `message`.
pub fn ensure(condition: bool, message: impl Into<String>) -> Result<(), libtest_mimic::Failed> {
    if condition {
        Ok(())
    } else {
        Err(message.into().into())
    }
}

/// The metrics function as the local event source mapping invokes it.
pub struct MetricsHandler(pub realty_aws::functions::metrics::MetricsFunction);

impl realty_infra::runner::StreamFunction for MetricsHandler {
    type Event = aws_lambda_events::event::kinesis::KinesisEvent;
    type Response = aws_lambda_events::event::streams::KinesisEventResponse;

    async fn invoke(
        &self,
        event: Self::Event,
    ) -> Result<Self::Response, realty_infra::runner::FunctionError> {
        Ok(Box::pin(self.0.handle(event)).await.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_past_its_deadline_is_killed_and_its_output_kept() {
        let dir = std::env::temp_dir().join(format!("realty-run-bounded-{}", std::process::id()));
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "echo started; echo working >&2; sleep 30"]);
        let started = std::time::Instant::now();
        let error = run_bounded(command, Duration::from_millis(500), &dir, "sleeper")
            .await
            .expect_err("the deadline passes");
        assert!(started.elapsed() < Duration::from_secs(10), "{error}");
        assert!(
            error.contains("did not finish")
                && error.contains("started")
                && error.contains("working"),
            "{error}"
        );

        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "echo done"]);
        let output = run_bounded(command, Duration::from_secs(30), &dir, "quick")
            .await
            .expect("it finishes");
        assert!(output.status.success() && output.stdout == b"done\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
