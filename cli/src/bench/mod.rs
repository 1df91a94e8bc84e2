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
mod e2e;
mod e2e_figures;
mod events;
mod history;
mod items;
mod lambda;
mod local_aws;
mod parse;
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
use realty_model::stats::nearest_rank;
use serde_json::{Value, json};

pub use args::{BenchArgs, Part};
use e2e_figures::run_end_to_end;
use local_aws::{LocalAws, emulators_to_run};
use peers::Peer;
use report::Report;
use table::render_table;

/// Shard counts the DynamoDB writes are measured over (2: the local stream's; 15: 10k
/// updates/s in docs/capacity.md).
const WRITE_SHARDS: [usize; 3] = [1, 2, 15];

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
                "market_item_steady_transact_wru_mean_bucketed",
                json!(round3(steady.market_item_transact_wru_mean_bucketed)),
            );
            let (city_bytes, city_exact) =
                items::city_item_bytes(items::LARGE_CITY_LISTINGS, args.seed)?;
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
