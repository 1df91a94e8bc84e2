//! `realty bench`: every throughput, latency and footprint figure of realty-stream, measured
//! in one run on the same generated events, with its peers beside it (docs/capacity.md reads
//! these figures; the README shows the latest table).
//!
//! - compute: the metrics workflow over in-memory stores on one core, batches of 1,000,
//!   against serde_json merely parsing the same bytes;
//! - peers: DuckDB and PySpark (local mode) computing the same per-market figures from the
//!   same events as JSON lines, per core and on every core; their answers are checked
//!   against ours before their speed is;
//! - end to end: the local pipeline on each emulator (LocalStack and moto, side by side) with
//!   that emulator's bare Kinesis ceiling beside it, alert latency, and AWS calls per 1,000
//!   events by API;
//! - Lambda: binary sizes (arm64), cold start and peak memory of the real bootstraps
//!   against a local Lambda Runtime API.

mod calls;
mod compute;
mod e2e;
mod events;
mod items;
mod lambda;
mod parse;
mod peers;
mod writes;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use clap::{Args, ValueEnum};
use realty_core::config::StackResources;
use realty_core::stats::nearest_rank;
use realty_infra::emulator::{self, EmulatorKind};
use realty_infra::provision::ProvisionOptions;
use realty_infra::stack;
use realty_infra::template::Template;
use serde_json::{Value, json};

use peers::Peer;

/// The parts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Part {
    Compute,
    Peers,
    /// DynamoDB calls and write units per 1,000 events, regional and national, by shards.
    Writes,
    E2e,
    Lambda,
}

/// `realty bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Events for the compute and peer figures.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events for the end-to-end run (the emulator is the slow part).
    #[arg(long, default_value_t = 20_000)]
    pub e2e_events: usize,
    /// Timed runs of each compute figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: u32,
    /// Timed runs of each peer in its one session (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub peer_repeat: u32,
    /// Seed of the generated events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Parts to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub parts: Vec<Part>,
    /// Where the arm64 Lambda bootstraps are (`make build`: target/lambda/<function>/bootstrap).
    #[arg(long)]
    pub lambda_dir: Option<PathBuf>,
    /// Where release bootstraps for this machine are (`cargo build --release -p realty-poller
    /// -p realty-metrics -p realty-alerts`, as `make bench` builds them), run for the cold
    /// start and memory figures.
    #[arg(long)]
    pub host_bin_dir: Option<PathBuf>,
    /// The emulators of the end-to-end part, each run in turn and shown side by side; the
    /// Lambda part uses the first (default: REALTY_EMULATOR, else LocalStack where it can run
    /// and moto).
    #[arg(long, value_parser = crate::parse_emulator, value_delimiter = ',')]
    pub emulator: Vec<EmulatorKind>,
}

/// Shard counts the DynamoDB writes are measured over (2: the local stream's; 15: 10k
/// updates/s in docs/capacity.md).
const WRITE_SHARDS: [usize; 3] = [1, 2, 15];

/// Load of the latency run, as a share of the measured end-to-end throughput.
const LATENCY_LOAD: f64 = 0.5;
/// About how long the latency run lasts.
const LATENCY_RUN: std::time::Duration = std::time::Duration::from_secs(30);

/// Median of samples (upper median for an even count: never better than a real run).
pub fn median(samples: &[f64]) -> Option<f64> {
    let n = samples.iter().filter(|v| v.is_finite()).count();
    // The upper median is rank n/2 + 1: aim half a rank below it so rounding cannot miss.
    nearest_rank(samples, ((n / 2) as f64 + 0.5) / n.max(1) as f64)
}

pub async fn run(args: BenchArgs, endpoint: Option<String>) -> Result<()> {
    let parts: Vec<Part> = if args.parts.is_empty() {
        Part::value_variants().to_vec()
    } else {
        args.parts.clone()
    };
    if args.events < 1_000 || args.e2e_events < 500 || args.repeat == 0 || args.peer_repeat == 0 {
        bail!("--events needs at least 1,000, --e2e-events 500, --repeat and --peer-repeat 1");
    }
    let root = emulator::project_root()?;
    let out_dir = stack::state_dir(&root).join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut report = Report::new(&args);

    progress(&format!(
        "generating {} events (seed {})",
        args.events, args.seed
    ));
    let events = events::generate(args.events, args.seed);
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| e.encode())
        .collect::<Result<_, _>>()
        .context("encoding the generated events")?;
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    report.set("events", json!(events.len()));
    report.set("event_bytes_mean", json!(bytes / events.len()));
    let markets = events::market_keys();

    let mut ours_per_s = None;
    let mut our_figures = None;
    if parts.contains(&Part::Compute) || parts.contains(&Part::Peers) {
        progress("metrics compute and parse-only, one core");
        let records = compute::records(&encoded);
        let mut compute_s = Vec::new();
        let mut parse_s: Vec<Vec<f64>> = vec![Vec::new(); parse::Parser::ALL.len()];
        let mut last_stores = None;
        for _ in 0..args.repeat {
            let (elapsed, stores) = compute::run_metrics(&records, 1_000)?;
            compute_s.push(elapsed.as_secs_f64());
            last_stores = Some(stores);
            for (times, parser) in parse_s.iter_mut().zip(parse::Parser::ALL) {
                times.push(parse::run(parser, &records)?.as_secs_f64());
            }
        }
        let n = records.len() as f64;
        let compute_per_s = median(&compute_s).map(|s| n / s);
        ours_per_s = compute_per_s;
        report.set(
            "metrics_compute_events_per_s",
            json!(compute_per_s.map(f64::round)),
        );
        // Compute is compared with the fastest parse of the same bytes (the cost of merely
        // reading them), and, on its own key, with the `Value` parse.
        let mut fastest: Option<(parse::Parser, f64)> = None;
        let mut value_per_s = None;
        for (times, parser) in parse_s.iter().zip(parse::Parser::ALL) {
            let per_s = median(times).map(|s| n / s);
            report.set(
                &format!("parse_{}_events_per_s", parser.name()),
                json!(per_s.map(f64::round)),
            );
            if parser == parse::Parser::Value {
                value_per_s = per_s;
            }
            if let Some(p) = per_s.filter(|p| fastest.is_none_or(|(_, f)| *p > f)) {
                fastest = Some((parser, p));
            }
        }
        report.set("parse_fastest", json!(fastest.map(|(p, _)| p.name())));
        report.set(
            "parse_only_events_per_s",
            json!(fastest.map(|(_, p)| p.round())),
        );
        report.set(
            "compute_to_parse_ratio",
            json!(compute_per_s.zip(fastest).map(|(c, (_, p))| round3(c / p))),
        );
        report.set(
            "compute_to_value_parse_ratio",
            json!(compute_per_s.zip(value_per_s).map(|(c, p)| round3(c / p))),
        );
        if let Some(stores) = last_stores {
            let sizes = items::measure(&stores, &events)?;
            report.set(
                "listing_item_bytes_mean",
                json!(sizes.listing_item_bytes_mean.round()),
            );
            report.set(
                "market_item_bytes_mean",
                json!(sizes.market_item_bytes_mean.round()),
            );
            report.set("market_item_bytes_max", json!(sizes.market_item_bytes_max));
            let steady = items::measure_steady_state(args.events, args.seed)?;
            report.set(
                "market_item_steady_bytes_mean",
                json!(steady.market_item_bytes_mean.round()),
            );
            report.set(
                "market_item_steady_bytes_max",
                json!(steady.market_item_bytes_max),
            );
            report.set(
                "market_item_steady_transact_wru_mean",
                json!(round3(steady.market_item_transact_wru_mean)),
            );
            report.set(
                "snapshot_item_bytes_mean",
                json!(sizes.snapshot_item_bytes_mean.round()),
            );
            report.set(
                "scopes_per_1000_events",
                json!(sizes.scopes_per_1000_events.round()),
            );
            let figures = compute::figures(&stores, &markets);
            report.set("markets", serde_json::to_value(&figures)?);
            our_figures = Some(figures);
        }
    }

    if parts.contains(&Part::Peers) {
        let python = peers::ensure_installed(&root)?;
        let jsonl = out_dir.join("events.jsonl");
        write_json_lines(&jsonl, &encoded)?;
        for peer in [Peer::DuckDb, Peer::Spark] {
            let mut per_core = None;
            for threads in [1, 0] {
                progress(&format!(
                    "{} over the same events, {}",
                    peer.name(),
                    if threads == 1 {
                        "one thread"
                    } else {
                        "every core"
                    }
                ));
                let run = peers::run(&root, &python, peer, &jsonl, threads, args.peer_repeat)?;
                if run.events != events.len() as u64 {
                    bail!(
                        "{} read {} events of {}",
                        peer.name(),
                        run.events,
                        events.len()
                    );
                }
                if let Some(ours) = &our_figures {
                    compute::compare(peer.name(), ours, &run.markets)?;
                }
                let name = peer.name();
                let per_s = run.events_per_s().map(f64::round);
                if threads == 1 {
                    per_core = per_s;
                    report.set(&format!("peer_{name}_events_per_s"), json!(per_s));
                    report.set(&format!("peer_{name}_version"), json!(run.engine_version));
                    report.set(
                        &format!("peer_{name}_startup_s"),
                        json!(round3(run.startup_s)),
                    );
                } else {
                    report.set(&format!("peer_{name}_all_cores_events_per_s"), json!(per_s));
                    report.set(
                        &format!("peer_{name}_all_cores_threads"),
                        json!(run.threads),
                    );
                }
            }
            report.set(
                &format!("vs_{}", peer.name()),
                json!(ours_per_s.zip(per_core).map(|(o, p)| round3(o / p))),
            );
        }
    }

    if parts.contains(&Part::Writes) {
        progress("DynamoDB calls and write units, regional and national, by shard count");
        let n = args.e2e_events;
        let mut runs = serde_json::Map::new();
        for spread in [events::Spread::Regional, events::Spread::National] {
            let spread_events = match spread {
                events::Spread::Regional => events[..n.min(events.len())].to_vec(),
                events::Spread::National => events::generate_spread(n, args.seed, spread),
            };
            let mut by_shards = Vec::new();
            for shards in WRITE_SHARDS {
                by_shards.push(serde_json::to_value(
                    writes::measure(&spread_events, shards).await?,
                )?);
            }
            let name = match spread {
                events::Spread::Regional => "regional",
                events::Spread::National => "national",
            };
            runs.insert(name.to_owned(), Value::Array(by_shards));
        }
        report.set("dynamodb_writes", Value::Object(runs));
    }

    if parts.contains(&Part::E2e) || parts.contains(&Part::Lambda) {
        // One run against a given endpoint; else each emulator in turn, on its own instance.
        let runs: Vec<Option<EmulatorKind>> = if endpoint.is_some() {
            vec![None]
        } else {
            emulators_to_run(&root, &args.emulator)?
                .into_iter()
                .map(Some)
                .collect()
        };
        let mut e2e_runs = serde_json::Map::new();
        for (i, kind) in runs.into_iter().enumerate() {
            let aws = LocalAws::start(&root, endpoint.clone(), kind, &out_dir).await?;
            let result = async {
                if parts.contains(&Part::E2e) {
                    let mut run = serde_json::Map::new();
                    run_end_to_end(&args, &aws, &events, &mut run).await?;
                    let name = aws.kind.map_or("endpoint", EmulatorKind::name);
                    e2e_runs.insert(name.to_owned(), Value::Object(run));
                }
                if parts.contains(&Part::Lambda) && i == 0 {
                    let lambda_dir = args
                        .lambda_dir
                        .clone()
                        .unwrap_or_else(|| root.join("target/lambda"));
                    let host_dir = args
                        .host_bin_dir
                        .clone()
                        .unwrap_or_else(|| root.join("target/release"));
                    progress("Lambda binaries, cold starts and peak memory");
                    lambda::measure(&aws, &lambda_dir, &host_dir, &events, &out_dir, &mut report)
                        .await?;
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            aws.stop();
            result?;
        }
        if !e2e_runs.is_empty() {
            report.set("e2e", Value::Object(e2e_runs));
        }
    }

    let path = out_dir.join("latest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report.figures)?)
        .with_context(|| format!("writing {}", path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.figures)?);
    } else {
        print!("{}", render_table(&report.figures));
        println!("\n(all figures: {})", path.display());
    }
    Ok(())
}

/// The emulators of the end-to-end part: those asked for (`--emulator`, in that order, once
/// each), else `REALTY_EMULATOR`'s, else LocalStack (where it can run) and moto side by side.
fn emulators_to_run(root: &Path, requested: &[EmulatorKind]) -> Result<Vec<EmulatorKind>> {
    let mut kinds: Vec<EmulatorKind> = Vec::new();
    for kind in requested {
        if !kinds.contains(kind) {
            kinds.push(emulator::choose(root, Some(*kind))?);
        }
    }
    if kinds.is_empty() {
        if let Some(kind) = EmulatorKind::from_env()? {
            kinds.push(emulator::choose(root, Some(kind))?);
        } else {
            kinds.push(emulator::choose(root, None)?);
            if !kinds.contains(&EmulatorKind::Moto) {
                kinds.push(EmulatorKind::Moto);
            }
        }
    }
    Ok(kinds)
}

/// The AWS a run talks to: the given endpoint (`AWS_ENDPOINT_URL`), or an emulator of its own
/// (LocalStack or moto), started now on a free port and stopped at the end, so earlier runs'
/// data never slows this one.
pub struct LocalAws {
    pub endpoint: String,
    /// The emulator started for the run (none for `AWS_ENDPOINT_URL`).
    pub kind: Option<EmulatorKind>,
    emulator: Option<emulator::Emulator>,
    pub sdk: aws_config::SdkConfig,
    pub template: Template,
    /// Makes each provisioned stack's prefix unique within the run.
    prefix: String,
}

impl LocalAws {
    async fn start(
        root: &Path,
        endpoint: Option<String>,
        requested: Option<EmulatorKind>,
        out_dir: &Path,
    ) -> Result<Self> {
        let (endpoint, kind, emulator) = match endpoint {
            Some(endpoint) => (endpoint, None, None),
            None => {
                let kind = emulator::choose(root, requested)?;
                progress(&format!("starting a {kind} of the benchmark's own"));
                let started = emulator::Emulator::start_attached(
                    kind,
                    root,
                    &out_dir.join(format!("{}.log", kind.name())),
                )?;
                (started.endpoint.clone(), Some(kind), Some(started))
            }
        };
        let sdk = realty_aws::sdk::sdk_config(Some(&endpoint)).await;
        Ok(Self {
            endpoint,
            kind,
            emulator,
            sdk,
            template: Template::load(&root.join("template.yaml"))?,
            prefix: format!("bench-{}", Utc::now().format("%Y%m%d-%H%M%S")),
        })
    }

    /// Provisions template.yaml as the stack `<run prefix>-<name>`.
    pub async fn provision(
        &self,
        name: &str,
    ) -> Result<(realty_infra::provision::ProvisionedStack, StackResources)> {
        let stack = realty_infra::provision::provision(
            &self.sdk,
            &self.template,
            &ProvisionOptions {
                stack_name: format!("{}-{name}", self.prefix),
                parameters: BTreeMap::new(),
            },
        )
        .await
        .with_context(|| format!("provisioning template.yaml at {}", self.endpoint))?;
        let resources = StackResources::from_outputs(&stack.outputs)?;
        Ok((stack, resources))
    }

    /// A template parameter's default.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        self.template
            .parameters
            .get(name)?
            .default
            .as_ref()
            .and_then(realty_infra::template::scalar_to_string)
    }

    fn stop(self) {
        if let Some(emulator) = self.emulator {
            emulator.stop();
        }
    }
}

async fn run_end_to_end(
    args: &BenchArgs,
    aws: &LocalAws,
    events: &[realty_core::listing::ListingEvent],
    run: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    let mut set = |key: &str, value: Value| {
        run.insert(key.to_owned(), value);
    };
    progress(&format!(
        "{}: provisioning the end-to-end stack",
        aws.kind.map_or("endpoint", EmulatorKind::name)
    ));
    let (stack, resources) = aws.provision("e2e").await?;
    // Half the events at most: the latency run takes the ones after them.
    let e2e_events = &events[..args.e2e_events.min(events.len() / 2)];
    let mut pipeline = e2e::Pipeline::new(&aws.sdk, &aws.template, &stack, &resources).await?;
    progress(&format!(
        "end to end, throughput: {} events through the local pipeline, as fast as it goes",
        e2e_events.len()
    ));
    let burst = pipeline.run(e2e_events, None).await?;
    let e2e_per_s = burst.events as f64 / burst.elapsed.as_secs_f64();
    set("e2e_events", json!(burst.events));
    set("e2e_events_per_s", json!(e2e_per_s.round()));
    set("e2e_metrics_invocations", json!(burst.metrics_invocations));
    set("e2e_alerts_invocations", json!(burst.alerts_invocations));
    let per_1000 = |calls: u64| round3(calls as f64 * 1000.0 / burst.events as f64);
    let by_api: BTreeMap<String, f64> = burst
        .calls
        .iter()
        .map(|(name, calls)| (name.clone(), per_1000(*calls)))
        .collect();
    set("aws_calls_per_1000_events", json!(by_api));
    let by_caller: BTreeMap<&str, f64> = burst
        .calls_by_caller
        .iter()
        .map(|(caller, calls)| (*caller, per_1000(*calls)))
        .collect();
    set("aws_calls_per_1000_events_by_caller", json!(by_caller));
    set(
        "e2e_alerts_per_1000_events",
        json!(round3(burst.alerts as f64 * 1000.0 / burst.events as f64)),
    );

    // Latency at a steady share of that throughput (at the throughput itself it is only
    // the queue), over the events that follow, for about LATENCY_RUN.
    let pace = (e2e_per_s * LATENCY_LOAD).max(1.0);
    let rest = &events[e2e_events.len()..];
    let count = ((pace * LATENCY_RUN.as_secs_f64()) as usize).clamp(1, rest.len());
    let paced_events = &rest[..count];
    progress(&format!(
        "end to end, latency: {} events at {pace:.0} events/s ({:.0} % of the throughput)",
        paced_events.len(),
        LATENCY_LOAD * 100.0
    ));
    let paced = pipeline.run(paced_events, Some(pace)).await?;
    set("e2e_latency_load_events_per_s", json!(pace.round()));
    set("e2e_alerts", json!(paced.alerts));
    // How long an invocation takes at that load (the handler's own work and its AWS calls,
    // on this emulator): the part of the alert latency that is not waiting.
    let mean_ms = |total: std::time::Duration, n: u32| {
        (n > 0).then(|| (total.as_secs_f64() * 1000.0 / f64::from(n)).round())
    };
    set(
        "e2e_metrics_invocation_ms_mean",
        json!(mean_ms(paced.metrics_delivery, paced.metrics_invocations)),
    );
    set(
        "e2e_alerts_invocation_ms_mean",
        json!(mean_ms(paced.alerts_delivery, paced.alerts_invocations)),
    );
    set(
        "e2e_aws_call_ms_mean",
        json!(
            paced
                .call_ms
                .iter()
                .map(|(call, ms)| (call.clone(), round3(*ms)))
                .collect::<BTreeMap<_, _>>()
        ),
    );
    set(
        "e2e_alert_latency_ms_p50",
        json!(paced.latency.as_ref().map(|l| l.p50_ms.round())),
    );
    set(
        "e2e_alert_latency_ms_p99",
        json!(paced.latency.as_ref().map(|l| l.p99_ms.round())),
    );
    for (stage, summary) in ["to_metrics", "metrics", "to_publish"]
        .iter()
        .zip(&paced.latency_stages)
    {
        set(
            &format!("e2e_alert_latency_ms_{stage}_p50_p99"),
            json!(
                summary
                    .as_ref()
                    .map(|l| [l.p50_ms.round(), l.p99_ms.round()])
            ),
        );
    }
    set(
        "e2e_burst_alert_latency_ms_p50",
        json!(burst.latency.as_ref().map(|l| l.p50_ms.round())),
    );

    progress("emulator ceiling: bare PutRecords/GetRecords of the same events");
    let encoded: Vec<Vec<u8>> = e2e_events
        .iter()
        .map(|e| e.encode())
        .collect::<Result<_, _>>()?;
    let shards = aws
        .parameter_default("KinesisShardCount")
        .and_then(|s| s.parse().ok())
        .context("template.yaml has no numeric KinesisShardCount default")?;
    let ceiling = e2e::emulator_ceiling(
        &aws.sdk,
        &format!("{}-ceiling", stack.stack_name),
        shards,
        &encoded,
    )
    .await?;
    let ceiling_per_s = encoded.len() as f64 / ceiling.as_secs_f64();
    set(
        "emulator_ceiling_events_per_s",
        json!(ceiling_per_s.round()),
    );
    set(
        "e2e_to_ceiling_ratio",
        json!(round3(e2e_per_s / ceiling_per_s)),
    );
    set("endpoint", json!(aws.endpoint));
    Ok(())
}

fn write_json_lines(path: &Path, encoded: &[Vec<u8>]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for line in encoded {
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// Progress goes to stderr, so `--json` output stays one object on stdout.
fn progress(what: &str) {
    eprintln!("bench: {what}...");
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The figures of a run, in the order they were measured.
struct Report {
    figures: serde_json::Map<String, Value>,
}

impl Report {
    fn new(args: &BenchArgs) -> Self {
        let mut figures = serde_json::Map::new();
        figures.insert("measured_at".into(), json!(Utc::now().to_rfc3339()));
        figures.insert("machine".into(), machine());
        figures.insert("seed".into(), json!(args.seed));
        Self { figures }
    }

    fn set(&mut self, key: &str, value: Value) {
        self.figures.insert(key.to_owned(), value);
    }
}

/// What the numbers were measured on.
fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, name)| name.trim().to_owned());
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| (kib / 1024.0 / 1024.0).round());
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory_gib": mem_gib,
        "arch": std::env::consts::ARCH,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "load_average_at_start": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

fn render_table(f: &serde_json::Map<String, Value>) -> String {
    let num = |key: &str| f.get(key).and_then(Value::as_f64);
    let per_s = |key: &str| num(key).map_or("-".into(), group_thousands);
    let ratio = |key: &str| num(key).map_or("-".into(), |v| format!("{v:.3}"));
    let mut out = String::new();
    let machine = &f["machine"];
    out.push_str(&format!(
        "realty bench: {} events of {} bytes on average, seed {}\nmachine: {} ({} cores, {} GiB, {}), load average at start {}\n\n",
        f.get("events").map_or("-".into(), Value::to_string),
        f.get("event_bytes_mean").map_or("-".into(), Value::to_string),
        f.get("seed").map_or("-".into(), Value::to_string),
        machine["cpu"].as_str().unwrap_or("unknown CPU"),
        machine["cores"],
        machine["memory_gib"],
        machine["arch"].as_str().unwrap_or("?"),
        machine["load_average_at_start"].as_str().unwrap_or("?"),
    ));
    let row = |out: &mut String, what: &str, value: String, note: String| {
        out.push_str(&format!("  {what:<52} {value:>12}  {note}\n"));
    };
    out.push_str("throughput, events/s (median run)\n");
    row(
        &mut out,
        "metrics compute: decode + aggregate, 1 core",
        per_s("metrics_compute_events_per_s"),
        String::new(),
    );
    row(
        &mut out,
        "parse only, serde_json::Value, same bytes, 1 core",
        per_s("parse_serde_json_value_events_per_s"),
        format!("compute/parse {}", ratio("compute_to_value_parse_ratio")),
    );
    row(
        &mut out,
        "parse only, serde_json typed (borrowed), 1 core",
        per_s("parse_serde_json_typed_events_per_s"),
        String::new(),
    );
    row(
        &mut out,
        "parse only, sonic-rs typed (borrowed), 1 core",
        per_s("parse_sonic_rs_typed_events_per_s"),
        format!("compute/fastest parse {}", ratio("compute_to_parse_ratio")),
    );
    for (peer, label) in [("duckdb", "DuckDB"), ("spark", "PySpark")] {
        let version = f
            .get(&format!("peer_{peer}_version"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let one = if peer == "spark" {
            "local[1]"
        } else {
            "threads=1"
        };
        row(
            &mut out,
            &format!("{label} {version}, {one}"),
            per_s(&format!("peer_{peer}_events_per_s")),
            format!("ours/{peer} {}", ratio(&format!("vs_{peer}"))),
        );
        let threads = f
            .get(&format!("peer_{peer}_all_cores_threads"))
            .map_or("-".into(), Value::to_string);
        row(
            &mut out,
            &format!("{label} {version}, all {threads} cores"),
            per_s(&format!("peer_{peer}_all_cores_events_per_s")),
            format!(
                "start-up {} s, excluded",
                f.get(&format!("peer_{peer}_startup_s"))
                    .map_or("-".into(), Value::to_string)
            ),
        );
    }
    let empty = serde_json::Map::new();
    let e2e = match f.get("e2e") {
        Some(Value::Object(runs)) => runs,
        _ => &empty,
    };
    // Each emulator's figures, by the same keys.
    let run_figure = |run: &Value, key: &str| run.get(key).and_then(Value::as_f64);
    let run_text = |run: &Value, key: &str| run.get(key).map_or("-".into(), Value::to_string);
    for (name, run) in e2e {
        row(
            &mut out,
            &format!(
                "end to end, local pipeline ({} events, {name})",
                run_text(run, "e2e_events")
            ),
            run_figure(run, "e2e_events_per_s").map_or("-".into(), group_thousands),
            format!(
                "e2e/ceiling {}",
                run_figure(run, "e2e_to_ceiling_ratio").map_or("-".into(), |v| format!("{v:.3}"))
            ),
        );
        row(
            &mut out,
            &format!("{name} ceiling: bare PutRecords + GetRecords"),
            run_figure(run, "emulator_ceiling_events_per_s").map_or("-".into(), group_thousands),
            String::new(),
        );
    }
    out.push_str("\nlatency\n");
    for (name, run) in e2e {
        let ms = |key: &str| run_figure(run, key).map_or("-".into(), group_thousands);
        row(
            &mut out,
            &format!("alert, PutRecords -> SNS publish, p50 / p99 (ms), {name}"),
            format!(
                "{} / {}",
                ms("e2e_alert_latency_ms_p50"),
                ms("e2e_alert_latency_ms_p99")
            ),
            format!(
                "{} alerts, at {} events/s",
                run_text(run, "e2e_alerts"),
                ms("e2e_latency_load_events_per_s")
            ),
        );
        let stage = |key: &str| {
            run.get(key)
                .and_then(|v| v.get(0))
                .and_then(Value::as_f64)
                .map_or("-".into(), group_thousands)
        };
        row(
            &mut out,
            "  of which: to metrics / metrics / to publish, p50 (ms)",
            format!(
                "{} / {} / {}",
                stage("e2e_alert_latency_ms_to_metrics_p50_p99"),
                stage("e2e_alert_latency_ms_metrics_p50_p99"),
                stage("e2e_alert_latency_ms_to_publish_p50_p99")
            ),
            String::new(),
        );
        row(
            &mut out,
            &format!("invocation, metrics / alerts, mean (ms), {name}"),
            format!(
                "{} / {}",
                ms("e2e_metrics_invocation_ms_mean"),
                ms("e2e_alerts_invocation_ms_mean")
            ),
            "at that load".to_owned(),
        );
    }
    if let Some(Value::Object(cold)) = f.get("cold_start_ms") {
        let idle = num("cold_start_cpu_idle_share").map_or(String::new(), |s| {
            format!("machine {:.0} % idle", s * 100.0)
        });
        for (function, ms) in cold {
            row(
                &mut out,
                &format!("cold start, {function} (spawn -> ready, ms)"),
                ms.as_f64().map_or("-".into(), |v| format!("{v:.1}")),
                idle.clone(),
            );
        }
    }
    out.push_str("\nfootprint\n");
    row(
        &mut out,
        "metrics peak RSS, batch at the 6 MB payload limit (MB)",
        num("metrics_peak_rss_mb").map_or("-".into(), |v| format!("{v:.1}")),
        String::new(),
    );
    for (key, what) in [
        (
            "listing_item_bytes_mean",
            "listing item, mean (bytes, as DynamoDB bills)",
        ),
        ("market_item_bytes_mean", "market item, mean (bytes)"),
        ("market_item_bytes_max", "market item, largest (bytes)"),
        (
            "market_item_steady_bytes_mean",
            "market item, 37 days of events, mean (bytes)",
        ),
        (
            "market_item_steady_bytes_max",
            "market item, 37 days of events, largest (bytes)",
        ),
        ("snapshot_item_bytes_mean", "snapshot item, mean (bytes)"),
        (
            "scopes_per_1000_events",
            "markets a 1,000-event batch writes",
        ),
    ] {
        row(&mut out, what, per_s(key), String::new());
    }
    row(
        &mut out,
        "market item, 37 days of events, transact WRU, mean",
        num("market_item_steady_transact_wru_mean").map_or("-".into(), |v| format!("{v:.2}")),
        String::new(),
    );
    for (key, note) in [
        ("lambda_binary_bytes", ""),
        ("lambda_binary_bytes_added_later", ", added later"),
    ] {
        if let Some(Value::Object(sizes)) = f.get(key) {
            for (function, bytes) in sizes {
                row(
                    &mut out,
                    &format!("Lambda binary, {function} (arm64, bytes{note})"),
                    bytes.as_f64().map_or("-".into(), group_thousands),
                    String::new(),
                );
            }
        }
    }
    if let Some(Value::Object(spreads)) = f.get("dynamodb_writes") {
        out.push_str(
            "\nDynamoDB per 1,000 events at 1,000 events/s (metrics workflow, in-memory, as billed)\n",
        );
        for (spread, runs) in spreads {
            for run in runs.as_array().into_iter().flatten() {
                let get = |key: &str| run.get(key).and_then(Value::as_f64);
                let calls: f64 = run
                    .get("calls_per_1000_events")
                    .and_then(Value::as_object)
                    .map_or(0.0, |c| c.values().filter_map(Value::as_f64).sum());
                row(
                    &mut out,
                    &format!(
                        "{spread}, {} shards: calls / write units per event",
                        run.get("shards").map_or("-".into(), Value::to_string)
                    ),
                    format!(
                        "{calls:.1} / {}",
                        get("write_units_per_event").map_or("-".into(), |v| format!("{v:.2}"))
                    ),
                    format!(
                        "{} market writes, {} market units/event",
                        get("market_writes_per_1000_events").map_or("-".into(), group_thousands),
                        get("market_write_units_per_event")
                            .map_or("-".into(), |v| format!("{v:.2}"))
                    ),
                );
            }
        }
    }
    // One column per emulator: the same pipeline's calls, as each emulator answered them.
    if per_api_table(
        &mut out,
        e2e,
        "AWS calls per 1,000 events (end-to-end run)",
        "aws_calls_per_1000_events",
    ) {
        // The same calls in total and by who made them, beside the alerts they carried
        // (SNS takes at most 10 a call).
        let column = |f: &dyn Fn(&serde_json::Map<String, Value>) -> Option<f64>| -> String {
            e2e.iter()
                .filter(|(_, run)| run.get("aws_calls_per_1000_events").is_some())
                .map(|(_, run)| match run {
                    Value::Object(run) => {
                        format!("{:>12}", f(run).map_or("-".into(), |v| format!("{v:.1}")))
                    }
                    _ => format!("{:>12}", "-"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let total = |run: &serde_json::Map<String, Value>| {
            run.get("aws_calls_per_1000_events")
                .and_then(Value::as_object)
                .map(|c| c.values().filter_map(Value::as_f64).sum::<f64>())
        };
        out.push_str(&format!("  {:<52} {}\n", "total", column(&total)));
        let callers: std::collections::BTreeSet<String> = e2e
            .values()
            .filter_map(|run| run.get("aws_calls_per_1000_events_by_caller")?.as_object())
            .flat_map(|c| c.keys().cloned())
            .collect();
        for caller in callers {
            let of_caller = |run: &serde_json::Map<String, Value>| {
                run.get("aws_calls_per_1000_events_by_caller")?
                    .get(caller.as_str())?
                    .as_f64()
            };
            out.push_str(&format!(
                "  {:<52} {}\n",
                format!("  by {caller}"),
                column(&of_caller)
            ));
        }
        let alerts =
            |run: &serde_json::Map<String, Value>| run.get("e2e_alerts_per_1000_events")?.as_f64();
        out.push_str(&format!(
            "  {:<52} {}\n",
            "alerts published per 1,000 events",
            column(&alerts)
        ));
    }
    per_api_table(
        &mut out,
        e2e,
        "AWS call time, request to response, mean (ms), at the latency run's load",
        "e2e_aws_call_ms_mean",
    );
    out
}

/// A table of `title`: the figures under `key` of each end-to-end run, one row per API and
/// one column per emulator. Returns whether any run had them.
fn per_api_table(
    out: &mut String,
    e2e: &serde_json::Map<String, Value>,
    title: &str,
    key: &str,
) -> bool {
    let runs: Vec<(&String, &serde_json::Map<String, Value>)> = e2e
        .iter()
        .filter_map(|(name, run)| match run.get(key) {
            Some(Value::Object(figures)) => Some((name, figures)),
            _ => None,
        })
        .collect();
    if runs.is_empty() {
        return false;
    }
    let apis: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|(_, f)| f.keys()).collect();
    out.push_str(&format!("\n{title}\n"));
    let header: Vec<String> = runs.iter().map(|(name, _)| format!("{name:>12}")).collect();
    out.push_str(&format!("  {:<52} {}\n", "", header.join(" ")));
    for api in apis {
        let cells: Vec<String> = runs
            .iter()
            .map(|(_, f)| {
                let n = f.get(api.as_str()).and_then(Value::as_f64);
                format!("{:>12}", n.map_or("-".into(), |v| format!("{v:.1}")))
            })
            .collect();
        out.push_str(&format!("  {api:<52} {}\n", cells.join(" ")));
    }
    true
}

/// `1234567.0` as `1,234,567`.
fn group_thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_grouping() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(3.0));
        assert_eq!(median(&[]), None);
        assert_eq!(group_thousands(1_234_567.4), "1,234,567");
        assert_eq!(group_thousands(999.0), "999");
        assert_eq!(group_thousands(1000.0), "1,000");
    }
}
