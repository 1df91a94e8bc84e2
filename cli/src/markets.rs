//! `realty markets`: the watched markets and the sources' request budgets, in the stack's
//! ConfigTable (the poller reads it at every run: no redeploy), and the request plan.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use realty_aws::adapters::config::DynamoConfigStore;
use realty_model::markets::ConfigStore;
use realty_model::markets::{SourcePlan, WatchedMarket, month_of};

use crate::target;

#[derive(Subcommand)]
pub enum MarketsCommand {
    /// Watch a market, or change how a watched one is watched: only the settings given
    /// change (`--any-price`, `--all-home-types`, `--no-reso-filter` clear theirs).
    Add(AddArgs),
    /// Stop watching a market (its figures stay).
    Remove {
        market: String,
        #[command(flatten)]
        stack: StackArg,
    },
    /// The watched markets.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        stack: StackArg,
    },
    /// Requests per poll and per month of the watched markets, against each budget.
    Plan {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        stack: StackArg,
    },
    /// Set a source's monthly request budget (0 removes it).
    Budget {
        /// zillow, realtor or reso (the portals avito and mubawab are not charged).
        source: String,
        /// Requests per month (your API plan's quota).
        requests_per_month: u64,
        #[command(flatten)]
        stack: StackArg,
    },
}

#[derive(Args)]
pub struct StackArg {
    /// A stack deployed in AWS instead of the local one.
    #[arg(long)]
    stack: Option<String>,
}

#[derive(Args)]
pub struct AddArgs {
    /// City-state key of a US market (nashville-tn), or country and city of a market outside
    /// the US (ma/casablanca).
    market: String,
    /// Sources to poll it from: zillow, realtor, reso for US markets; avito, mubawab (the
    /// property portals) for Moroccan ones [default for a new market: zillow].
    #[arg(long, value_delimiter = ',')]
    sources: Option<Vec<String>>,
    /// Lowest price in whole dollars.
    #[arg(long)]
    min_price: Option<u64>,
    /// Highest price in whole dollars.
    #[arg(long)]
    max_price: Option<u64>,
    /// Clear the price range of a watched market.
    #[arg(long, conflicts_with_all = ["min_price", "max_price"])]
    any_price: bool,
    /// Home types (houses, condos, townhomes, multi-family, apartments, manufactured,
    /// lots-land); every type by default.
    #[arg(long, value_delimiter = ',')]
    home_types: Option<Vec<String>>,
    /// Read every home type of a watched market again.
    #[arg(long, conflicts_with = "home_types")]
    all_home_types: bool,
    /// Poll interval: minutes, or with a unit (`30m`, `2h`, `1d`) [default for a new
    /// market: 60].
    #[arg(long)]
    every: Option<String>,
    /// RESO: an OData condition ANDed to the market's city and state, e.g.
    /// "OriginatingSystemName eq 'actris'" (MLS Grid requires it).
    #[arg(long)]
    reso_filter: Option<String>,
    /// Drop the RESO filter of a watched market.
    #[arg(long, conflicts_with = "reso_filter")]
    no_reso_filter: bool,
    /// Do not read the market's rentals (read by default from zillow, realtor and the
    /// portals: a second search per poll, counted in zillow's and realtor's request budgets).
    #[arg(long)]
    no_rentals: bool,
    /// Read a watched market's rentals again.
    #[arg(long, conflicts_with = "no_rentals")]
    rentals: bool,
    #[command(flatten)]
    stack: StackArg,
}

/// `30`, `30m`, `2h`, `1d` as minutes.
fn minutes(text: &str) -> Result<u32> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "m"),
    };
    let n: u32 = number.parse().map_err(|_| {
        anyhow::anyhow!("poll interval {text:?}: a number of minutes, or 30m, 2h, 1d")
    })?;
    let factor = match unit {
        "m" | "min" => 1,
        "h" => 60,
        "d" => 24 * 60,
        other => bail!("poll interval {text:?}: unknown unit {other:?} (m, h or d)"),
    };
    n.checked_mul(factor)
        .ok_or_else(|| anyhow::anyhow!("poll interval {text:?} is too long"))
}

/// A market's settings after `add`: those of the watched market (or, for a new one, the
/// defaults) with the ones given changed. Before, `add` on a watched market replaced it with
/// the defaults of every setting not given: `--every 2h` on a RESO market with a filter and
/// a price range made it a Zillow market of every price.
fn settings(watched: Option<WatchedMarket>, args: AddArgs) -> Result<WatchedMarket> {
    let mut market = watched.unwrap_or_else(|| {
        WatchedMarket::with_defaults(args.market.clone(), vec!["zillow".to_owned()])
    });
    if let Some(sources) = args.sources {
        market.sources = sources;
    }
    if args.any_price {
        (market.min_price, market.max_price) = (None, None);
    }
    if args.min_price.is_some() {
        market.min_price = args.min_price;
    }
    if args.max_price.is_some() {
        market.max_price = args.max_price;
    }
    if args.all_home_types {
        market.home_types.clear();
    }
    if let Some(types) = args.home_types {
        market.home_types = types;
    }
    if let Some(every) = &args.every {
        market.poll_every_minutes = minutes(every)?;
    }
    if args.no_reso_filter {
        market.reso_filter = None;
    }
    if args.reso_filter.is_some() {
        market.reso_filter = args.reso_filter;
    }
    if args.no_rentals {
        market.rentals = false;
    }
    if args.rentals {
        market.rentals = true;
    }
    Ok(market)
}

/// A market's settings in a line: `zillow, realtor every 60 min, $100000..$900000, houses,
/// rentals`.
fn describe(m: &WatchedMarket) -> String {
    let mut parts = vec![format!(
        "{} every {} min",
        m.sources.join(", "),
        m.poll_every_minutes
    )];
    if m.min_price.is_some() || m.max_price.is_some() {
        parts.push(format!(
            "${}..{}",
            m.min_price.unwrap_or(0),
            m.max_price.map(|p| format!("${p}")).unwrap_or_default()
        ));
    }
    if !m.home_types.is_empty() {
        parts.push(m.home_types.join(","));
    }
    if let Some(filter) = &m.reso_filter {
        parts.push(format!("RESO filter {filter:?}"));
    }
    parts.push(if m.rentals { "rentals" } else { "no rentals" }.to_owned());
    parts.join(", ")
}

async fn store(stack: &StackArg) -> Result<(DynamoConfigStore, String)> {
    let target = target::resolve(stack.stack.as_deref()).await?;
    Ok((
        DynamoConfigStore {
            client: aws_sdk_dynamodb::Client::new(&target.sdk),
            table: target.resources.config_table.clone(),
        },
        target.description,
    ))
}

pub async fn run(command: MarketsCommand) -> Result<()> {
    match command {
        MarketsCommand::Add(args) => add(args).await?,
        MarketsCommand::Remove { market, stack } => {
            let (store, at) = store(&stack).await?;
            if !store.remove_market(&market).await? {
                bail!("{market} is not watched ({at})");
            }
            println!("stopped watching {market} ({at}); its figures stay");
        }
        MarketsCommand::List { json, stack } => {
            let (store, _) = store(&stack).await?;
            let snapshot = store.load(&month_of(chrono::Utc::now())).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&snapshot.markets)?);
            } else {
                print_markets(&snapshot.markets);
            }
        }
        MarketsCommand::Plan { json, stack } => {
            let (store, _) = store(&stack).await?;
            let now = chrono::Utc::now();
            let plan = store.load(&month_of(now)).await?.plan(now);
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_plan(&plan);
            }
        }
        MarketsCommand::Budget {
            source,
            requests_per_month,
            stack,
        } => {
            let kind: realty_model::markets::SourceKind = source.parse()?;
            let (store, at) = store(&stack).await?;
            let budget = (requests_per_month > 0).then_some(requests_per_month);
            store.set_budget(kind.as_str(), budget).await?;
            match budget {
                Some(n) => println!("{kind}: {n} requests a month ({at})"),
                None => println!("{kind}: no budget ({at})"),
            }
        }
    }
    Ok(())
}

/// `realty markets add`: a market watched, or a watched one's settings changed (what it is
/// not told to change, it keeps).
async fn add(args: AddArgs) -> Result<()> {
    let (store, at) = store(&args.stack).await?;
    let watched = store
        .load(&month_of(chrono::Utc::now()))
        .await?
        .markets
        .into_iter()
        .find(|m| m.market == args.market);
    let was = watched.as_ref().map(describe);
    let mut market = settings(watched.clone(), args)?;
    // What a source reads anew, it first reads as the market's inventory, not news.
    market.watch_from(watched.as_ref(), chrono::Utc::now());
    // Refused here, before anything is stored, with what to change.
    if let Err(reason) = market.validate() {
        match &was {
            // A watched market keeps what it is not told to change: say how.
            Some(was) => bail!(
                "{reason} (watched as {was}: --any-price, --all-home-types and --no-reso-filter drop what the new sources cannot use)"
            ),
            None => bail!("{reason}"),
        }
    }
    store.put_market(&market).await?;
    if market.sources.len() > 1 {
        eprintln!(
            "note: {} is polled from {} sources: a home listed on more than one counts once per source in its figures (docs/metrics.md, \"Markets\")",
            market.market,
            market.sources.len()
        );
    }
    match was {
        Some(was) if was == describe(&market) => {
            println!("{}: unchanged ({at})", market.market);
        }
        Some(was) => println!(
            "{}: changed from {was} to {} ({at}); the next poll run reads it so",
            market.market,
            describe(&market)
        ),
        None => println!(
            "watching {}: {} ({at}); the next poll run reads it",
            market.market,
            describe(&market)
        ),
    }
    Ok(())
}

fn print_markets(markets: &[WatchedMarket]) {
    if markets.is_empty() {
        println!("no market watched: add one with `realty markets add nashville-tn`");
        return;
    }
    println!("{:<28} {:<22} {:>8}  filter", "market", "sources", "every");
    for m in markets {
        println!(
            "{:<28} {:<22} {:>6} m  {}",
            m.market,
            m.sources.join(","),
            m.poll_every_minutes,
            filter_of(m)
        );
    }
}

/// What a watched market's reads keep: price range, home types, RESO filter, rentals.
fn filter_of(m: &WatchedMarket) -> String {
    let mut filter = Vec::new();
    if m.min_price.is_some() || m.max_price.is_some() {
        filter.push(format!(
            "{}..{}",
            m.min_price.map(|p| format!("${p}")).unwrap_or_default(),
            m.max_price.map(|p| format!("${p}")).unwrap_or_default()
        ));
    }
    if !m.home_types.is_empty() {
        filter.push(m.home_types.join(","));
    }
    if let Some(raw) = &m.reso_filter {
        filter.push(format!("reso: {raw}"));
    }
    if !m.rentals {
        filter.push("no rentals".to_owned());
    }
    filter.join(" ")
}

fn print_plan(plan: &[SourcePlan]) {
    if plan.is_empty() {
        println!("no market watched and no budget set");
        return;
    }
    println!(
        "{:<8} {:>7} {:>13} {:>15} {:>10} {:>10} {:>22}",
        "source",
        "markets",
        "requests/poll",
        "requests/month",
        "budget",
        "used",
        "interval the budget allows"
    );
    for p in plan {
        let interval = match p.budget_interval_minutes {
            _ if p.out_of_budget => "spent until next month".to_owned(),
            Some(m) if m.is_finite() => format!("every {:.0} min", m.ceil()),
            Some(_) => "less than one poll left".to_owned(),
            None => "no budget".to_owned(),
        };
        println!(
            "{:<8} {:>7} {:>13} {:>15} {:>10} {:>10} {:>22}",
            p.source,
            p.markets,
            p.requests_per_poll,
            format!("{:.0}", p.requests_per_month),
            p.monthly_budget.map_or("-".to_owned(), |b| b.to_string()),
            p.used_this_month,
            interval
        );
    }
    println!(
        "requests/poll: each market's last poll (1 before its first); requests/month: at each market's own interval over 30 days"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use realty_model::markets::DEFAULT_POLL_MINUTES;

    #[test]
    fn intervals_read_with_or_without_a_unit() {
        assert_eq!(minutes("30").unwrap(), 30);
        assert_eq!(minutes("30m").unwrap(), 30);
        assert_eq!(minutes("2h").unwrap(), 120);
        assert_eq!(minutes("1d").unwrap(), 1440);
        for bad in ["", "h", "2w", "-5", "99999999999"] {
            assert!(minutes(bad).is_err(), "{bad}");
        }
    }

    /// `realty markets add` as typed after `realty`.
    fn add(words: &[&str]) -> AddArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            markets: MarketsCommand,
        }
        let argv = ["realty", "add"].iter().chain(words);
        match <Cli as clap::Parser>::try_parse_from(argv)
            .expect("parses")
            .markets
        {
            MarketsCommand::Add(args) => args,
            _ => unreachable!("an add"),
        }
    }

    /// `add` on a watched market changes what it is given and keeps the rest; a new one
    /// gets the defaults.
    #[test]
    fn add_changes_only_what_it_is_given() {
        let fresh = settings(None, add(&["austin-tx"])).unwrap();
        assert_eq!(
            (
                fresh.sources.clone(),
                fresh.poll_every_minutes,
                fresh.rentals
            ),
            (vec!["zillow".to_owned()], DEFAULT_POLL_MINUTES, true)
        );
        let watched = settings(
            None,
            add(&[
                "austin-tx",
                "--sources",
                "reso,realtor",
                "--min-price",
                "200000",
                "--home-types",
                "houses",
                "--reso-filter",
                "OriginatingSystemName eq 'actris'",
                "--no-rentals",
            ]),
        )
        .unwrap();
        let slower = settings(Some(watched.clone()), add(&["austin-tx", "--every", "2h"])).unwrap();
        assert_eq!(
            slower,
            WatchedMarket {
                poll_every_minutes: 120,
                ..watched.clone()
            }
        );
        let cleared = settings(
            Some(watched.clone()),
            add(&[
                "austin-tx",
                "--any-price",
                "--all-home-types",
                "--no-reso-filter",
                "--rentals",
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                cleared.min_price,
                cleared.home_types.len(),
                cleared.reso_filter,
                cleared.rentals
            ),
            (None, 0, None, true)
        );
        assert_eq!(cleared.sources, watched.sources);
        assert!(
            describe(&watched).contains("$200000.."),
            "{}",
            describe(&watched)
        );
    }
}
