//! `realty`: the realty-stream operator CLI.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

mod api_token;
mod bench;
mod check;
mod curate;
mod demo;
#[cfg(test)]
mod docs_commands;
mod html;
mod invoke;
mod markets;
mod normalize;
mod pipeline;
mod reconcile;
mod replay;
mod replay_raw;
mod report;
mod secrets;
mod serve;
mod sim;
mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use realty_infra::emulator::{self, EmulatorKind};
use realty_infra::provision::ProvisionOptions;
use realty_infra::stack::{self, LocalAws, UpOptions};

#[derive(Parser)]
#[command(
    name = "realty",
    version,
    about = "Operate realty-stream: local AWS, invocations, reports"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the local AWS (LocalStack by default, or moto; installed into the project on
    /// first use) and provision every resource of template.yaml into it. With
    /// AWS_ENDPOINT_URL set it provisions there instead; with --stack it reads a deployed stack.
    Up(UpArgs),
    /// Stop the local AWS that `realty up` started; nothing of it keeps running.
    Down(JsonArg),
    /// Run the whole pipeline locally: a simulated market, the poller, the metrics and alerts
    /// handlers fed from the streams, an HTML report (docs/demo.md).
    Demo(demo::DemoArgs),
    /// Print the canonical listings of one saved API response as JSON lines (rejects and a
    /// summary on stderr).
    Normalize {
        /// Where the file came from: zillow, reso, realtor (API pages), avito, mubawab (saved
        /// portal search pages, HTML), or file (a CSV / JSON-lines export).
        #[arg(long)]
        source: realty_model::markets::SourceKind,
        file: PathBuf,
        /// When the page was read (RFC 3339), for the listings' `observed_at` and the days a
        /// portal's relative dates ("il y a 3 heures") point to; default now. Not after now.
        #[arg(long)]
        observed_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Send an export (CSV or JSON lines, as `realty normalize` prints) through the poller's
    /// change detection into the stream of the local stack (or --stack): only what changed
    /// is published, and nothing is delisted for being absent from the file (docs/sources.md).
    Replay(replay::ReplayArgs),
    /// Parse the raw API pages the poller kept (raw/ of the lake bucket) of some days again
    /// with this build's parsers, and show, per poll and market, the listings that now parse
    /// differently from the poller's stored state (what it last published of each): a dry
    /// run. --apply publishes them through the same change detection as `replay`
    /// (docs/lake.md).
    ReplayRaw(replay_raw::ReplayRawArgs),
    /// Run a function's real handler once, in-process, on an event file, against the local
    /// stack (or --stack), and print its response.
    Invoke {
        /// poller, metrics or alerts.
        function: String,
        #[arg(long)]
        event: PathBuf,
        /// A stack deployed in AWS instead of the local one.
        #[arg(long)]
        stack: Option<String>,
    },
    /// The simulated market (Zillow-, RESO- and Realtor.com-shaped APIs) for local runs.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// A market's live figures, moving averages, trends and latest snapshots.
    Report {
        /// Market key: a city-state (`nashville-tn`) or a full scope key (`zip#37201#condo`).
        #[arg(long)]
        market: String,
        /// table, json, csv (the daily history) or html (a report page).
        #[arg(long, value_enum, default_value = "table")]
        format: report::Format,
        /// Same as --format json.
        #[arg(long)]
        json: bool,
        /// A stack deployed in AWS instead of the local one.
        #[arg(long)]
        stack: Option<String>,
    },
    /// Recompute market inventory figures from the listing states and repair drift.
    Reconcile {
        /// One market: a city-state (its `city#...` scopes) or a full scope key.
        #[arg(long)]
        market: Option<String>,
        /// A stack deployed in AWS instead of the local one.
        #[arg(long)]
        stack: Option<String>,
        /// Report what differs without writing.
        #[arg(long, conflicts_with = "check")]
        dry_run: bool,
        /// As --dry-run, and exit non-zero if anything differs.
        #[arg(long)]
        check: bool,
    },
    /// Bring the lake's Iceberg tables (listing_events, listings, market_daily) up to date now,
    /// as the hourly curator function does (docs/lake.md), and print what it did.
    Curate {
        /// A stack deployed in AWS instead of the local one.
        #[arg(long)]
        stack: Option<String>,
    },
    /// Run the lake's data-quality checks (unique and not-null keys, accepted values, daily
    /// counts against the events, market figures against the market table, freshness), write
    /// the report to the bucket, and exit non-zero naming any failed check (docs/lake.md).
    Check {
        /// A stack deployed in AWS instead of the local one.
        #[arg(long)]
        stack: Option<String>,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure throughput, latency and footprint, with DuckDB and PySpark beside it
    /// (docs/capacity.md). Starts a local AWS of its own (--emulator) unless AWS_ENDPOINT_URL
    /// is set.
    Bench(bench::BenchArgs),
    /// The watched markets and the sources' request budgets (read by the poller at every run).
    Markets {
        #[command(subcommand)]
        command: markets::MarketsCommand,
    },
    /// Serve the market API over the local stack (or --stack) on a loopback port, as the
    /// deployed HTTP API answers it (docs/api.md).
    Serve {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// A stack deployed in AWS instead of the local one.
        #[arg(long)]
        stack: Option<String>,
    },
    /// The market API's bearer token.
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
    /// The listing-API keys in the stack's secret.
    Secrets {
        #[command(subcommand)]
        command: secrets::SecretsCommand,
    },
    /// Install (or check) the pinned local tools in .venv (and, with --emulator localstack,
    /// LocalStack in .venv-localstack) and print the path.
    Tools {
        #[arg(long, value_parser = parse_emulator)]
        emulator: Option<EmulatorKind>,
    },
}

#[derive(Subcommand)]
enum ApiCommand {
    /// Print the token the data routes need (`Authorization: Bearer <token>`).
    Token {
        /// Write a new random token first.
        #[arg(long)]
        rotate: bool,
        /// A stack deployed in AWS instead of the local one.
        #[arg(long)]
        stack: Option<String>,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// Serve the simulated market over HTTP until Ctrl-C.
    Serve {
        #[arg(long, default_value_t = 8089)]
        port: u16,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Fault probabilities, e.g. `rate_limit=0.05,server_error=0.05,slow=0.02,truncated=0.02,malformed=0.02,page_shift=0.1`.
        #[arg(long, default_value = "")]
        faults: String,
        /// Markets to simulate (default: the built-in set).
        #[arg(long, value_delimiter = ',')]
        markets: Vec<String>,
        /// Listings per market.
        #[arg(long)]
        listings: Option<u32>,
    },
}

#[derive(Args)]
struct JsonArg {
    /// Print JSON for machines instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    output: JsonArg,
    /// Prefix of every local resource name (stands in for the CloudFormation stack name).
    #[arg(long, default_value = "realty")]
    prefix: String,
    /// Template parameter override, as Name=Value (repeatable).
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    parameters: Vec<(String, String)>,
    /// Read the resources of this stack deployed in AWS (its Outputs) instead of starting
    /// anything locally.
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,
    /// The local emulator: localstack or moto (default: REALTY_EMULATOR, else LocalStack
    /// where it can run, else moto, saying why).
    #[arg(long, value_parser = parse_emulator)]
    emulator: Option<EmulatorKind>,
}

/// `--emulator`'s value.
pub fn parse_emulator(s: &str) -> Result<EmulatorKind, String> {
    s.parse()
        .map_err(|e: emulator::EmulatorError| e.to_string())
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`realty up --json | head`), as Unix tools do, instead of
    // panicking in println!.
    // SAFETY: resetting a signal disposition before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    realty_aws::telemetry::init_cli_logging("warn");
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("realty: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("realty: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Up(args) => up(args).await,
        Command::Down(args) => down(args),
        Command::Demo(args) => demo(args).await,
        Command::Bench(args) => bench::run(args, endpoint_override()).await,
        Command::Normalize {
            source,
            file,
            observed_at,
        } => normalize::run(source, &file, observed_at),
        Command::Replay(args) => replay::run(args).await,
        Command::ReplayRaw(args) => replay_raw::run(args).await,
        Command::Invoke {
            function,
            event,
            stack,
        } => invoke::run(&function, &event, stack.as_deref()).await,
        Command::Markets { command } => markets::run(command).await,
        Command::Secrets { command } => secrets::run(command).await,
        Command::Serve { port, stack } => serve::run(port, stack.as_deref()).await,
        Command::Api {
            command: ApiCommand::Token { rotate, stack },
        } => api_token::run(rotate, stack.as_deref()).await,
        Command::Report {
            market,
            format,
            json,
            stack,
        } => {
            let format = if json { report::Format::Json } else { format };
            report::run(&market, format, stack.as_deref()).await
        }
        Command::Curate { stack } => curate::run(stack.as_deref()).await,
        Command::Check { stack, json } => check::run(stack.as_deref(), json).await,
        Command::Reconcile {
            market,
            stack,
            dry_run,
            check,
        } => {
            let mode = match (dry_run, check) {
                (_, true) => reconcile::Mode::Check,
                (true, false) => reconcile::Mode::DryRun,
                (false, false) => reconcile::Mode::Repair,
            };
            reconcile::run(market.as_deref(), stack.as_deref(), mode).await
        }
        Command::Sim {
            command:
                SimCommand::Serve {
                    port,
                    seed,
                    faults,
                    markets,
                    listings,
                },
        } => sim::serve(port, sim::config(seed, &faults, &markets, listings)?).await,
        Command::Tools { emulator: kind } => {
            let root = emulator::project_root()?;
            let venv = emulator::ensure_venv(&root)?;
            match kind {
                Some(EmulatorKind::LocalStack) => {
                    let found = realty_infra::emulator::localstack::prerequisites()
                        .map_err(emulator::EmulatorError::LocalStackUnavailable)?;
                    let install =
                        realty_infra::emulator::localstack::ensure_installed(&root, &found)?;
                    println!("{}", install.venv.display());
                }
                _ => println!("{}", venv.display()),
            }
            Ok(())
        }
    }
}

fn endpoint_override() -> Option<String> {
    realty_aws::sdk::endpoint_from_env()
}

async fn up(args: UpArgs) -> Result<()> {
    if let Some(stack_name) = &args.stack {
        if endpoint_override().is_some() {
            bail!("--stack reads a stack deployed in AWS; unset AWS_ENDPOINT_URL to use it");
        }
        let config = realty_aws::sdk::sdk_config(None).await;
        let outputs = stack::deployed_outputs(&config, stack_name).await?;
        if args.output.json {
            let doc = serde_json::json!({ "endpoint": null, "stack_name": stack_name, "outputs": outputs });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            println!("stack {stack_name} in AWS:");
            print_outputs(&outputs);
        }
        return Ok(());
    }
    let options = UpOptions {
        project_root: emulator::project_root()?,
        endpoint: endpoint_override(),
        emulator: args.emulator,
        provision: ProvisionOptions {
            stack_name: args.prefix,
            parameters: args.parameters.into_iter().collect(),
        },
    };
    let local = stack::up(&options)
        .await
        .context("bringing up the local AWS")?;
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&local)?);
    } else {
        print_local(&local);
    }
    Ok(())
}

fn print_outputs(outputs: &BTreeMap<String, String>) {
    let width = outputs.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in outputs {
        println!("  {k:<width$}  {v}");
    }
}

fn print_local(local: &LocalAws) {
    match (local.emulator, local.pid, &local.log_path) {
        (Some(kind), Some(pid), Some(log)) => println!(
            "local AWS ({kind}) at {}  pid {pid}, log {}",
            local.endpoint,
            log.display()
        ),
        _ => println!("AWS endpoint {} (AWS_ENDPOINT_URL)", local.endpoint),
    }
    let s = &local.stack;
    println!(
        "stack {} provisioned from template.yaml (account {}, {}):",
        s.stack_name, s.account_id, s.region
    );
    print_outputs(&s.outputs);
    println!("not hostable by the emulator, skipped:");
    let width = s
        .skipped
        .iter()
        .map(|r| r.logical_id.len())
        .max()
        .unwrap_or(0);
    for r in &s.skipped {
        println!("  {:<width$}  {}", r.logical_id, r.reason);
    }
    println!(
        "inspect: AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={} aws --endpoint-url {} kinesis list-streams",
        s.region, local.endpoint
    );
    if local.pid.is_some() {
        println!("stop:    realty down");
    }
}

fn down(args: JsonArg) -> Result<()> {
    let root = emulator::project_root()?;
    let result = stack::down(&root)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    match (result.stopped_pid, result.endpoint) {
        (Some(pid), Some(endpoint)) => println!("stopped the local AWS at {endpoint} (pid {pid})"),
        (None, Some(endpoint)) => {
            println!("forgot the stack at {endpoint}; no emulator of ours was running")
        }
        _ => println!("no local AWS is running"),
    }
    Ok(())
}

async fn demo(args: demo::DemoArgs) -> Result<()> {
    demo::run(args, endpoint_override()).await
}
