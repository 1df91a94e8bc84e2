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

mod args;
mod calls;
mod compute;
#[cfg(test)]
mod differential;
mod e2e;
mod e2e_figures;
mod events;
mod history;
mod instructions;
mod items;
mod lambda;
mod local_aws;
mod peers;
mod report;
mod table;
mod writes;

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use realty_infra::emulator::{self, EmulatorKind};
use realty_infra::stack;
use realty_metrics::memory::MemoryStores;
use realty_model::listing::ListingEvent;
use realty_model::stats::nearest_rank;
use serde_json::{Value, json};

pub use args::{BenchArgs, Part};
use compute::MarketFigures;
use e2e_figures::run_end_to_end;
use local_aws::{LocalAws, emulators_to_run};
use peers::{Peer, PeerRun};
use report::Report;
use table::render_table;

/// Shard counts the DynamoDB writes are measured over (2: the local stream's; 15: 10k
/// updates/s in docs/capacity.md).
const WRITE_SHARDS: [usize; 3] = [1, 2, 15];

/// The realistic mix's write figures: 10k updates/s on 15 shards (docs/capacity.md).
const REALISTIC_EVENTS_PER_SECOND: usize = 10_000;
const REALISTIC_SHARDS: usize = 15;

/// Median of samples (upper median for an even count: never better than a real run).
pub fn median(samples: &[f64]) -> Option<f64> {
    let n = samples.iter().filter(|v| v.is_finite()).count();
    // The upper median is rank n/2 + 1: aim half a rank below it so rounding cannot miss.
    nearest_rank(samples, ((n / 2) as f64 + 0.5) / n.max(1) as f64)
}

pub async fn run(args: BenchArgs, endpoint: Option<String>) -> Result<()> {
    let parts = parts_to_run(&args);
    check_sizes(&args)?;
    let root = emulator::project_root()?;
    let out_dir = stack::state_dir(&root).join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut report = Report::new(&args);

    let generated = Generated::new(&args, &mut report)?;
    let mut ours = OurCompute::default();
    // The events as JSON lines: what the timed compute and the peers read.
    let jsonl = out_dir.join("events.jsonl");
    if parts.contains(&Part::Compute) || parts.contains(&Part::Peers) {
        write_json_lines(&jsonl, &generated.encoded)?;
        ours = measure_compute(&args, &root, &jsonl, &generated, &mut report)?;
    }
    if parts.contains(&Part::Instructions) {
        measure_instructions(&args, &root, &out_dir, &generated, &mut report)?;
    }
    if parts.contains(&Part::Peers) {
        measure_peers(&args, &root, &jsonl, &generated, &ours, &mut report)?;
    }
    if parts.contains(&Part::Writes) {
        measure_writes(&args, &generated.events, &mut report).await?;
    }
    if parts.contains(&Part::E2e) || parts.contains(&Part::Lambda) {
        let local = LocalRuns {
            args: &args,
            parts: &parts,
            root: &root,
            out_dir: &out_dir,
            endpoint,
        };
        local.measure(&generated.events, &mut report).await?;
    }
    write_results(&args, &root, &out_dir, &report)
}

/// The parts asked for (every part when none is).
fn parts_to_run(args: &BenchArgs) -> Vec<Part> {
    if args.parts.is_empty() {
        Part::value_variants().to_vec()
    } else {
        args.parts.clone()
    }
}

fn check_sizes(args: &BenchArgs) -> Result<()> {
    if args.events < 1_000 || args.e2e_events < 500 || args.repeat == 0 || args.peer_repeat == 0 {
        bail!("--events needs at least 1,000, --e2e-events 500, --repeat and --peer-repeat 1");
    }
    Ok(())
}

/// The events every part runs on, and their encoding as the poller publishes them.
struct Generated {
    events: Vec<ListingEvent>,
    encoded: Vec<Vec<u8>>,
}

impl Generated {
    fn new(args: &BenchArgs, report: &mut Report) -> Result<Self> {
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
        Ok(Self { events, encoded })
    }
}

/// What the compute part found that the peers' part compares with.
#[derive(Default)]
struct OurCompute {
    events_per_s: Option<f64>,
    kernel_events_per_s: Option<f64>,
    figures: Option<Vec<MarketFigures>>,
}

/// The metrics compute, its kernel and the parse-only baselines, one core, in the release
/// binary of their own; then, untimed here, the figures of every scope and the item sizes.
fn measure_compute(
    args: &BenchArgs,
    root: &Path,
    jsonl: &Path,
    generated: &Generated,
    report: &mut Report,
) -> Result<OurCompute> {
    progress("metrics compute, its kernel and parse-only, one core");
    let timings = compute::run_timed(&compute_binary(args, root), jsonl, args.repeat)?;
    let n = generated.encoded.len() as f64;
    let compute_per_s = median(&timings.compute_s).map(|s| n / s);
    report.set(
        "metrics_compute_events_per_s",
        json!(compute_per_s.map(f64::round)),
    );
    let kernel_per_s = median(&timings.kernel_s).map(|s| n / s);
    report.set("kernel_events_per_s", json!(kernel_per_s.map(f64::round)));
    report_parse_rates(&timings.parse_s, n, compute_per_s, report);
    let mut ours = OurCompute {
        events_per_s: compute_per_s,
        kernel_events_per_s: kernel_per_s,
        figures: None,
    };
    progress("the figures of every scope, workflow and kernel, untimed");
    let records = compute::records(&generated.encoded);
    let (_, stores) = compute::run_metrics(&records, realty_bench_compute::BATCH_RECORDS)?;
    let (_, kernel) = compute::run_kernel(&records, realty_bench_compute::BATCH_RECORDS)?;
    report_item_sizes(args, &stores, &generated.events, report)?;
    let figures = compute::figures(&stores);
    if compute::kernel_figures(&kernel) != figures {
        bail!("the kernel's figures differ from the metrics workflow's over the same events");
    }
    // Every scope is checked against the peers; the city markets are shown.
    let cities: Vec<&MarketFigures> = figures
        .iter()
        .filter(|f| f.market.starts_with("city#") && f.market.ends_with("#all"))
        .collect();
    report.set("markets", serde_json::to_value(&cities)?);
    report.set("scopes_with_listings", json!(figures.len()));
    ours.figures = Some(figures);
    Ok(ours)
}

/// The timed compute's binary.
fn compute_binary(args: &BenchArgs, root: &Path) -> std::path::PathBuf {
    args.compute_bin
        .clone()
        .unwrap_or_else(|| root.join("target/release/realty-bench-compute"))
}

/// Instructions per event of the workflow and the kernel over the timed stream's first
/// events (callgrind; skipped, with a note, where valgrind is not installed).
fn measure_instructions(
    args: &BenchArgs,
    root: &Path,
    out_dir: &Path,
    generated: &Generated,
    report: &mut Report,
) -> Result<()> {
    let n = instructions::EVENTS.min(generated.encoded.len() / 2);
    if !instructions::available() {
        progress("valgrind is not installed: instructions per event not counted");
        return Ok(());
    }
    progress(&format!(
        "instructions per event, workflow and kernel (callgrind over {n} and {} events)",
        2 * n
    ));
    let smaller = out_dir.join("events-instructions-n.jsonl");
    let larger = out_dir.join("events-instructions-2n.jsonl");
    write_json_lines(&smaller, &generated.encoded[..n])?;
    write_json_lines(&larger, &generated.encoded[..2 * n])?;
    let counted = instructions::measure(&compute_binary(args, root), &smaller, &larger, n)?;
    report.set(
        "workflow_instructions_per_event",
        json!(counted.workflow.round()),
    );
    report.set(
        "kernel_instructions_per_event",
        json!(counted.kernel.round()),
    );
    Ok(())
}

/// Each parser's rate, and compute against the fastest parse of the same bytes (the cost of
/// merely reading them) and, on its own key, against the `Value` parse.
fn report_parse_rates(
    parse_s: &[Vec<f64>],
    n: f64,
    compute_per_s: Option<f64>,
    report: &mut Report,
) {
    let mut fastest: Option<(realty_bench_compute::parse::Parser, f64)> = None;
    let mut value_per_s = None;
    for (times, parser) in parse_s.iter().zip(realty_bench_compute::parse::Parser::ALL) {
        let per_s = median(times).map(|s| n / s);
        report.set(
            &format!("parse_{}_events_per_s", parser.name()),
            json!(per_s.map(f64::round)),
        );
        if parser == realty_bench_compute::parse::Parser::Value {
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
}

/// The DynamoDB item sizes: of the compute's stores, in the steady state, and of a large
/// city's market item.
fn report_item_sizes(
    args: &BenchArgs,
    stores: &MemoryStores,
    events: &[ListingEvent],
    report: &mut Report,
) -> Result<()> {
    let sizes = items::measure(stores, events)?;
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
        "market_item_steady_transact_wru_mean_bucketed",
        json!(round3(steady.market_item_transact_wru_mean_bucketed)),
    );
    let (city_bytes, city_exact) = items::city_item_bytes(items::LARGE_CITY_LISTINGS, args.seed)?;
    report.set("market_item_bytes_city_20000", json!(city_bytes));
    report.set("market_item_exact_city_20000", json!(city_exact));
    report.set(
        "snapshot_item_bytes_mean",
        json!(sizes.snapshot_item_bytes_mean.round()),
    );
    report.set(
        "scopes_per_1000_events",
        json!(sizes.scopes_per_1000_events.round()),
    );
    Ok(())
}

/// DuckDB and PySpark over the same events as JSON lines, on one thread and on every core,
/// their answers checked against ours before their speed is.
fn measure_peers(
    args: &BenchArgs,
    root: &Path,
    jsonl: &Path,
    generated: &Generated,
    ours: &OurCompute,
    report: &mut Report,
) -> Result<()> {
    let python = peers::ensure_installed(root)?;
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
            let run = peers::run(root, &python, peer, jsonl, threads, args.peer_repeat)?;
            check_peer_run(peer, &run, generated.events.len(), ours)?;
            let per_s = run.events_per_s().map(f64::round);
            if threads == 1 {
                per_core = per_s;
            }
            report_peer_run(peer, threads, &run, per_s, report);
        }
        report.set(
            &format!("vs_{}", peer.name()),
            json!(ours.events_per_s.zip(per_core).map(|(o, p)| round3(o / p))),
        );
        report.set(
            &format!("kernel_vs_{}", peer.name()),
            json!(
                ours.kernel_events_per_s
                    .zip(per_core)
                    .map(|(o, p)| round3(o / p))
            ),
        );
    }
    Ok(())
}

/// A peer read every event and computed the figures we did.
fn check_peer_run(peer: Peer, run: &PeerRun, events: usize, ours: &OurCompute) -> Result<()> {
    if run.events != events as u64 {
        bail!("{} read {} events of {}", peer.name(), run.events, events);
    }
    if let Some(ours) = &ours.figures {
        compute::compare(peer.name(), ours, &run.markets)?;
    }
    Ok(())
}

fn report_peer_run(
    peer: Peer,
    threads: u32,
    run: &PeerRun,
    per_s: Option<f64>,
    report: &mut Report,
) {
    let name = peer.name();
    if threads == 1 {
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

/// DynamoDB calls and write units, regional and national, by shard count.
async fn measure_writes(
    args: &BenchArgs,
    events: &[ListingEvent],
    report: &mut Report,
) -> Result<()> {
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
            let costs = writes::measure(&spread_events, shards, writes::EVENTS_PER_SECOND).await?;
            if spread == events::Spread::Regional && shards == 1 {
                // The compute's stream and batches (one shard): its encoding beside it.
                report.set(
                    "journal_and_store_us_per_event",
                    json!(round3(costs.journal_and_store_us_per_event)),
                );
            }
            by_shards.push(serde_json::to_value(costs)?);
        }
        let name = match spread {
            events::Spread::Regional => "regional",
            events::Spread::National => "national",
        };
        runs.insert(name.to_owned(), Value::Array(by_shards));
    }
    report.set("dynamodb_writes", Value::Object(runs));
    measure_realistic_writes(args, report).await
}

/// The realistic mix's DynamoDB writes at 10k updates/s: its events in seconds of 10,000 over
/// the 15 shards docs/capacity.md sizes that rate with, the alerts' writes included, its first
/// read written but not counted.
async fn measure_realistic_writes(args: &BenchArgs, report: &mut Report) -> Result<()> {
    progress("DynamoDB write units of the realistic mix at 10k updates/s");
    let rate = events::realistic::FeedRate {
        per_second: REALISTIC_EVENTS_PER_SECOND,
    };
    let events =
        events::realistic::generate(args.events, args.seed, events::Spread::Regional, rate);
    let costs =
        writes::measure_after(&events, rate.inventory(), REALISTIC_SHARDS, rate.per_second).await?;
    report.set_in(
        "realistic",
        "write_units_per_event_at_10k",
        json!(round3(costs.write_units_per_event_with_alerts)),
    );
    report.set_in(
        "realistic",
        "alerts_per_1000_events",
        json!(round3(costs.alerts_per_event * 1000.0)),
    );
    report.set_in(
        "realistic",
        "dynamodb_writes_at_10k",
        serde_json::to_value(costs)?,
    );
    Ok(())
}

/// The parts measured on a local AWS: end to end on each emulator in turn (each on its own
/// instance), or once against a given endpoint; the Lambda figures on the first.
struct LocalRuns<'a> {
    args: &'a BenchArgs,
    parts: &'a [Part],
    root: &'a Path,
    out_dir: &'a Path,
    endpoint: Option<String>,
}

impl LocalRuns<'_> {
    async fn measure(&self, events: &[ListingEvent], report: &mut Report) -> Result<()> {
        let runs: Vec<Option<EmulatorKind>> = if self.endpoint.is_some() {
            vec![None]
        } else {
            emulators_to_run(self.root, &self.args.emulator)?
                .into_iter()
                .map(Some)
                .collect()
        };
        let mut e2e_runs = serde_json::Map::new();
        for (i, kind) in runs.into_iter().enumerate() {
            let aws = LocalAws::start(self.root, self.endpoint.clone(), kind, self.out_dir).await?;
            let result = self
                .measure_on(&aws, i == 0, events, &mut e2e_runs, report)
                .await;
            aws.stop();
            result?;
        }
        if !e2e_runs.is_empty() {
            report.set("e2e", Value::Object(e2e_runs));
        }
        Ok(())
    }

    async fn measure_on(
        &self,
        aws: &LocalAws,
        first: bool,
        events: &[ListingEvent],
        e2e_runs: &mut serde_json::Map<String, Value>,
        report: &mut Report,
    ) -> Result<()> {
        if self.parts.contains(&Part::E2e) {
            let mut run = serde_json::Map::new();
            run_end_to_end(self.args, aws, events, &mut run).await?;
            if first && let Some(calls) = run.get("realistic_aws_calls_per_1000_events") {
                // The first emulator's (LocalStack's, where it runs): the headline figure.
                report.set_in("realistic", "aws_calls_per_1000_events", calls.clone());
            }
            let name = aws.kind.map_or("endpoint", EmulatorKind::name);
            e2e_runs.insert(name.to_owned(), Value::Object(run));
        }
        if self.parts.contains(&Part::Lambda) && first {
            let lambda_dir = self
                .args
                .lambda_dir
                .clone()
                .unwrap_or_else(|| self.root.join("target/lambda"));
            let host_dir = self
                .args
                .host_bin_dir
                .clone()
                .unwrap_or_else(|| self.root.join("target/release"));
            progress("Lambda binaries, cold starts and peak memory");
            lambda::measure(aws, &lambda_dir, &host_dir, events, self.out_dir, report).await?;
        }
        Ok(())
    }
}

/// The figures to latest.json and a row of the history, then to stdout as JSON or a table.
fn write_results(args: &BenchArgs, root: &Path, out_dir: &Path, report: &Report) -> Result<()> {
    let path = out_dir.join("latest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report.figures)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let history_path = args
        .history
        .clone()
        .unwrap_or_else(|| root.join("docs/benchmarks/history.csv"));
    history::append(&history_path, &Value::Object(report.figures.clone()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.figures)?);
    } else {
        print!("{}", render_table(&report.figures));
        println!(
            "\n(all figures: {}; this run's row appended to {})",
            path.display(),
            history_path.display()
        );
    }
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

#[cfg(test)]
mod tests {
    use super::table::group_thousands;
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
