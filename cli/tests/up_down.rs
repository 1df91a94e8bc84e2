//! `realty up --json` brings up a working local AWS and names its resources; `realty down`
//! leaves nothing running.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use std::process::Command;

use serde_json::Value;

fn realty(state_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_realty"))
        .args(args)
        .env("REALTY_STATE_DIR", state_dir)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("realty runs")
}

/// Runs `realty down` however the test ends, so a failed assertion leaves no emulator behind.
struct DownOnDrop(std::path::PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = realty(&self.0, &["down"]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn up_names_every_resource_and_down_stops_the_emulator() {
    let state_dir = std::env::temp_dir().join(format!("realty-up-down-{}", std::process::id()));
    let _cleanup = DownOnDrop(state_dir.clone());
    let up = realty(&state_dir, &["up", "--json", "--prefix", "clitest"]);
    assert!(
        up.status.success(),
        "realty up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let doc: Value = serde_json::from_slice(&up.stdout).expect("realty up --json prints JSON");

    let pid = doc["pid"].as_u64().expect("a pid") as u32;
    let emulator = doc["emulator"]
        .as_str()
        .expect("the emulator's name")
        .to_owned();
    assert!(emulator == "localstack" || emulator == "moto", "{emulator}");
    // LocalStack's engines (DynamoDB Local, kinesis-mock) run in process groups of their own.
    let instance_dir = doc["instance_dir"].as_str().map(std::path::PathBuf::from);
    if emulator == "localstack" {
        let dir = instance_dir
            .as_deref()
            .expect("LocalStack's instance folder");
        assert!(
            !realty_infra::emulator::localstack::instance_processes(dir).is_empty(),
            "no process carries LocalStack's instance marker"
        );
    }
    let endpoint = doc["endpoint"].as_str().expect("an endpoint").to_owned();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    // Reachable from this machine only: LocalStack's own server bound every interface.
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        listening_on(port),
        ["127.0.0.1"],
        "{emulator} listens on {port} beyond the loopback interface"
    );
    let outputs = &doc["outputs"];
    for key in [
        "ListingEventsStreamName",
        "ListingTableName",
        "MarketTableName",
        "DataLakeBucketName",
        "DeliveryStreamName",
        "AlertTopicArn",
        "PoisonRecordQueueUrl",
        "PollerFailureQueueUrl",
        "MetricsFailureQueueUrl",
        "AlertsFailureQueueUrl",
    ] {
        let value = outputs[key].as_str().unwrap_or_default();
        assert!(value.contains("clitest-"), "output {key} = {value:?}");
    }

    // The stream is really there, through the AWS API.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let streams = runtime.block_on(async {
        let config = realty_aws::sdk::sdk_config(Some(&endpoint)).await;
        aws_sdk_kinesis::Client::new(&config)
            .list_streams()
            .send()
            .await
    });
    let streams = streams.expect("ListStreams answers");
    assert!(
        streams
            .stream_names()
            .iter()
            .any(|s| s == outputs["ListingEventsStreamName"].as_str().unwrap()),
        "{:?}",
        streams.stream_names()
    );

    // Every other resource is really there too, through the AWS API.
    let output = |key: &str| outputs[key].as_str().unwrap_or_default().to_owned();
    runtime.block_on(async {
        let config = realty_aws::sdk::sdk_config(Some(&endpoint)).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        for key in ["ListingTableName", "MarketTableName"] {
            let table = dynamodb
                .describe_table()
                .table_name(output(key))
                .send()
                .await
                .unwrap_or_else(|e| panic!("DescribeTable {key}: {e:?}"))
                .table
                .expect("a table description");
            if key == "ListingTableName" {
                let stream = table
                    .stream_specification
                    .expect("the listing table's stream");
                assert_eq!(
                    stream.stream_view_type,
                    Some(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                );
                assert!(table.latest_stream_arn.is_some(), "no stream ARN");
            }
        }
        realty_aws::sdk::s3_client(&config)
            .head_bucket()
            .bucket(output("DataLakeBucketName"))
            .send()
            .await
            .expect("HeadBucket");
        aws_sdk_firehose::Client::new(&config)
            .describe_delivery_stream()
            .delivery_stream_name(output("DeliveryStreamName"))
            .send()
            .await
            .expect("DescribeDeliveryStream");
        aws_sdk_sns::Client::new(&config)
            .get_topic_attributes()
            .topic_arn(output("AlertTopicArn"))
            .send()
            .await
            .expect("GetTopicAttributes");
        let sqs = aws_sdk_sqs::Client::new(&config);
        for key in [
            "PoisonRecordQueueUrl",
            "PollerFailureQueueUrl",
            "MetricsFailureQueueUrl",
            "AlertsFailureQueueUrl",
        ] {
            sqs.get_queue_attributes()
                .queue_url(output(key))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetQueueAttributes {key}: {e:?}"));
        }
    });

    // A second `up` reuses the running emulator.
    let again = realty(&state_dir, &["up", "--json", "--prefix", "clitest"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["pid"], doc["pid"]);
    assert_eq!(again["outputs"], doc["outputs"]);
    // So does one given its endpoint (`AWS_ENDPOINT_URL`, as `up` prints it); one given another
    // endpoint is refused, and the record still names the emulator for `down` below.
    let with_endpoint = |endpoint: &str| {
        Command::new(env!("CARGO_BIN_EXE_realty"))
            .args(["up", "--json", "--prefix", "clitest"])
            .env("REALTY_STATE_DIR", &state_dir)
            .env("AWS_ENDPOINT_URL", endpoint)
            .output()
            .expect("realty runs")
    };
    let same = with_endpoint(&endpoint);
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let same: Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(same["pid"], doc["pid"]);
    let other = with_endpoint("http://127.0.0.1:9");
    assert!(
        !other.status.success(),
        "another endpoint replaced the record"
    );
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("realty down"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );

    let down = realty(&state_dir, &["down", "--json"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let down: Value = serde_json::from_slice(&down.stdout).unwrap();
    assert_eq!(down["stopped_pid"].as_u64(), Some(u64::from(pid)));
    assert!(
        !realty_infra::emulator::pid_alive(pid),
        "{emulator} (pid {pid}) still runs"
    );
    if let Some(dir) = &instance_dir {
        let left = realty_infra::emulator::localstack::instance_processes(dir);
        assert!(
            left.is_empty(),
            "processes of {emulator} still run: {left:?}"
        );
        assert!(!dir.exists(), "{} is still there", dir.display());
    }
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        !realty_infra::emulator::answers_http(port),
        "something still answers on {endpoint}"
    );

    let nothing = realty(&state_dir, &["down"]);
    assert!(nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stdout).contains("no local AWS is running"));
}

/// A provisioning that fails (here an unknown parameter) stops the emulator `realty up`
/// started for it: no record named it yet, so `realty down` could not, and every retry left
/// one more emulator running.
#[test]
fn a_failed_provisioning_leaves_no_emulator_running() {
    let state_dir = std::env::temp_dir().join(format!("realty-up-failed-{}", std::process::id()));
    let _cleanup = DownOnDrop(state_dir.clone());
    let up = Command::new(env!("CARGO_BIN_EXE_realty"))
        .args(["up", "--parameter", "NoSuchParameter=1"])
        .env("REALTY_STATE_DIR", &state_dir)
        .env("REALTY_EMULATOR", "moto")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("realty runs");
    assert!(!up.status.success(), "an unknown parameter was provisioned");
    assert!(
        String::from_utf8_lossy(&up.stderr).contains("NoSuchParameter"),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // The emulator wrote its log in the state folder: no process holds a file there.
    let holders = processes_with_files_under(&state_dir);
    assert!(holders.is_empty(), "still running: {holders:?}");
}

/// A `realty up` cut short (here killed) while its emulator starts or the stack is
/// provisioned leaves a record of that emulator, and `realty down` stops it: before, nothing
/// named it and it ran on.
#[test]
fn an_up_cut_short_leaves_an_emulator_down_stops() {
    let state_dir = std::env::temp_dir().join(format!("realty-up-cut-{}", std::process::id()));
    let _cleanup = DownOnDrop(state_dir.clone());
    let mut up = Command::new(env!("CARGO_BIN_EXE_realty"))
        .args(["up"])
        .env("REALTY_STATE_DIR", &state_dir)
        .env("REALTY_EMULATOR", "moto")
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("realty runs");
    let pending = state_dir.join("pending-emulator.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !pending.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(pending.exists(), "no record of the starting emulator");
    up.kill().expect("killed");
    up.wait().expect("reaped");
    // The killed `up` may have recorded the stack already; either way `down` stops all.
    let down = realty(&state_dir, &["down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let holders = processes_with_files_under(&state_dir);
    assert!(holders.is_empty(), "still running: {holders:?}");
    assert!(!pending.exists());
}

/// The processes with a file open under `dir` (from /proc: Linux, as CI).
fn processes_with_files_under(dir: &std::path::Path) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(dir))
                })
            })
        })
        .collect()
}

/// The addresses something listens on `port` at (IPv4 from /proc/net/tcp, IPv6 from
/// /proc/net/tcp6: Linux, as CI), such as `127.0.0.1`, `0.0.0.0` or `::`.
fn listening_on(port: u16) -> Vec<String> {
    let mut addresses = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Local address, then state: 0A is LISTEN.
            let (Some(local), Some(&"0A")) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((ip, hex_port)) = local.split_once(':') else {
                continue;
            };
            if u16::from_str_radix(hex_port, 16).ok() != Some(port) {
                continue;
            }
            let bytes: Vec<u8> = (0..ip.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(&ip[i..i + 2], 16).ok())
                .collect();
            // Each 32-bit word is in host (little-endian) order.
            let ordered: Vec<u8> = bytes
                .chunks(4)
                .flat_map(|w| w.iter().rev().copied())
                .collect();
            addresses.push(if v6 {
                let octets: [u8; 16] = ordered.try_into().unwrap_or([0; 16]);
                std::net::Ipv6Addr::from(octets).to_string()
            } else {
                let octets: [u8; 4] = ordered.try_into().unwrap_or([0; 4]);
                std::net::Ipv4Addr::from(octets).to_string()
            });
        }
    }
    addresses.sort();
    addresses.dedup();
    addresses
}
