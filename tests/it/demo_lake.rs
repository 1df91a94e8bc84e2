//! The demo's curated lake (docs/lake.md): after `realty demo` (which runs the curator
//! twice), the three Iceberg tables of its Glue catalog hold every distinct event once,
//! each listing's state and each market day's figures, as the report says them; a Firehose
//! batch delivered again and a third run add nothing.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use libtest_mimic::Failed;
use realty_lake::curate::Curator;
use realty_lake::read;
use realty_lake::replace::replace_rows;
use realty_lake::rows::{EventRow, ListingRow, MarketDayRow};
use realty_lake::schema::{LISTING_EVENTS_TABLE, LISTINGS_TABLE, MARKET_DAILY_TABLE};
use realty_model::config::StackResources;
use realty_model::stats::nearest_rank;
use realty_tests::ensure;
use realty_tests::lake_reader::{LakeCatalog, read_iceberg};
use serde_json::Value;

/// The demo stack's resources as the curator needs them (the lake bucket and database, the
/// market and config tables, as the report names them; the curator reads no other).
fn resources(run: &Value) -> Result<StackResources, Failed> {
    let bucket = run["data_lake_bucket"]
        .as_str()
        .ok_or("no data_lake_bucket")?;
    let database = run["lake_database"].as_str().ok_or("no lake_database")?;
    let stack = run["stack_name"].as_str().ok_or("no stack_name")?;
    let table = |name: &str| -> Result<String, Failed> {
        Ok(run[name].as_str().ok_or(format!("no {name}"))?.to_owned())
    };
    let outputs: BTreeMap<String, String> = StackResources::SETTINGS
        .iter()
        .map(|s| (s.output.to_owned(), format!("{stack}-unused")))
        .chain([
            ("DataLakeBucketName".to_owned(), bucket.to_owned()),
            ("DataLakeDatabaseName".to_owned(), database.to_owned()),
            ("MarketTableName".to_owned(), table("market_table")?),
            ("ConfigTableName".to_owned(), table("config_table")?),
        ])
        .collect();
    Ok(StackResources::from_outputs(&outputs)?)
}

/// The lake's distinct events: `(listing id, observed_at, kind)`, unique per event.
fn distinct(events: &[Value]) -> Result<HashSet<(String, DateTime<Utc>, String)>, Failed> {
    events
        .iter()
        .map(|e| {
            Ok((
                e["listing"]["id"].as_str().ok_or("no id")?.to_owned(),
                serde_json::from_value(e["observed_at"].clone())?,
                e["kind"].as_str().ok_or("no kind")?.to_owned(),
            ))
        })
        .collect()
}

/// The `realty` binary and the state folder the demo left (its stack and endpoint).
pub(crate) struct DemoCli<'a> {
    pub realty: &'a Path,
    pub state_dir: &'a Path,
    pub region: &'a str,
}

impl DemoCli<'_> {
    /// `realty <args>` on the demo's stack, as a user runs it after the demo: the endpoint
    /// from the state folder, not the test's.
    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.realty);
        command
            .args(args)
            .env_remove("AWS_ENDPOINT_URL")
            .env("REALTY_STATE_DIR", self.state_dir)
            .env("AWS_REGION", self.region)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        command
    }
}

pub(crate) async fn check_lake_tables(
    project_root: &Path,
    sdk: &aws_config::SdkConfig,
    report: &Value,
    events: &[Value],
    cli: &DemoCli<'_>,
) -> Result<(), Failed> {
    let run = &report["run"];
    let curated = run["curated"]
        .as_array()
        .ok_or("no curator runs in the report")?;
    ensure(
        curated.len() == 2 && curated[1]["events_added"] == 0,
        format!("the demo's second curator run added events: {curated:?}"),
    )?;
    let resources = resources(run)?;
    let curator = Curator::new(sdk, &resources).await?;

    // listing_events: each distinct event once.
    let truth = distinct(events)?;
    let table = curator.lake.table(&LISTING_EVENTS_TABLE).await?;
    let rows: Vec<EventRow> = read::rows(&table, None).await?;
    let held: HashSet<(String, DateTime<Utc>, String)> = rows
        .iter()
        .map(|r| (r.listing_id.clone(), r.observed_at, r.kind.clone()))
        .collect();
    ensure(
        rows.len() == truth.len() && held == truth,
        format!(
            "listing_events holds {} rows ({} distinct) for {} distinct events in the lake",
            rows.len(),
            held.len(),
            truth.len()
        ),
    )?;

    // A Firehose batch delivered again, then a third run: nothing added.
    let s3 = realty_aws::sdk::s3_client(sdk);
    let listed = s3
        .list_objects_v2()
        .bucket(&resources.data_lake_bucket)
        .prefix("listings/")
        .max_keys(1)
        .send()
        .await?;
    let key = listed
        .contents()
        .first()
        .and_then(|o| o.key())
        .ok_or("no object under listings/")?
        .to_owned();
    s3.copy_object()
        .bucket(&resources.data_lake_bucket)
        .copy_source(format!("{}/{key}", resources.data_lake_bucket))
        .key(format!("{key}.delivered-again"))
        .send()
        .await?;
    let third = curator.run(Utc::now()).await?;
    ensure(
        third.events_added == 0 && third.events_duplicate > 0,
        format!("a batch delivered again changed listing_events: {third:?}"),
    )?;
    let table = curator.lake.table(&LISTING_EVENTS_TABLE).await?;
    let after: Vec<EventRow> = read::rows(&table, None).await?;
    ensure(
        after.len() == truth.len(),
        format!("{} rows after the batch came again", after.len()),
    )?;

    let listings: Vec<ListingRow> =
        read::rows(&curator.lake.table(&LISTINGS_TABLE).await?, None).await?;
    let days: Vec<MarketDayRow> =
        read::rows(&curator.lake.table(&MARKET_DAILY_TABLE).await?, None).await?;
    let ids: HashSet<&str> = listings.iter().map(|l| l.listing_id.as_str()).collect();
    ensure(
        ids.len() == listings.len(),
        "listings is unique per listing id",
    )?;
    ensure(
        days.iter()
            .all(|d| d.currency.as_deref() == Some("USD") && d.country.as_deref() == Some("US")),
        "every market_daily row of the demo's US markets says USD and US",
    )?;
    for m in report["markets"].as_array().ok_or("no markets")? {
        let market = m["market"].as_str().ok_or("no market name")?;
        check_market(market, m, &listings, &days)?;
    }

    // An independent reader (pyiceberg, through the Glue catalog) sees the same tables.
    let catalog = LakeCatalog {
        glue_endpoint: sdk.endpoint_url().map(str::to_owned),
        s3_endpoint: None,
        region: sdk
            .region()
            .map_or_else(|| "us-east-1".to_owned(), ToString::to_string),
        database: resources.lake_database.clone(),
    };
    let read = read_iceberg(project_root, &catalog, "listing_events", None).await?;
    let their_ids: HashSet<&str> = read
        .rows
        .iter()
        .filter_map(|r| r.get("event_id").and_then(Value::as_str))
        .collect();
    let our_ids: HashSet<&str> = after.iter().map(|r| r.event_id.as_str()).collect();
    ensure(
        read.rows.len() == after.len() && their_ids == our_ids,
        format!(
            "pyiceberg reads {} listing_events rows, we wrote {}",
            read.rows.len(),
            after.len()
        ),
    )?;
    let read = read_iceberg(project_root, &catalog, "listings", None).await?;
    let their_prices: BTreeMap<&str, i64> = read
        .rows
        .iter()
        .filter_map(|r| {
            Some((
                r.get("listing_id")?.as_str()?,
                r.get("price_minor")?.as_i64()?,
            ))
        })
        .collect();
    let our_prices: BTreeMap<&str, i64> = listings
        .iter()
        .map(|l| (l.listing_id.as_str(), l.price_minor))
        .collect();
    ensure(
        their_prices == our_prices,
        "pyiceberg reads other listings than ours",
    )?;
    let read = read_iceberg(project_root, &catalog, "market_daily", None).await?;
    ensure(
        read.rows.len() == days.len(),
        format!(
            "pyiceberg reads {} market_daily rows, we wrote {}",
            read.rows.len(),
            days.len()
        ),
    )?;

    // `realty check` passes on the demo's data, then fails naming the check when a row is
    // corrupted (a listing written twice into `listings`).
    let (ok, out) = realty_check(cli).await?;
    ensure(
        ok,
        format!("realty check failed on the demo's data:\n{out}"),
    )?;
    let mut corrupted = listings.clone();
    corrupted.push(listings[0].clone());
    corrupted.sort_by(|a, b| a.listing_id.cmp(&b.listing_id));
    replace_rows(
        &curator.lake,
        &curator.lake.table(&LISTINGS_TABLE).await?,
        &corrupted,
        std::collections::HashMap::new(),
    )
    .await?
    .ok_or("nothing else commits to the demo's lake")?;
    let (ok, out) = realty_check(cli).await?;
    ensure(
        !ok && out.contains("FAIL  listings.unique_listing_id")
            && out.contains("data-quality checks failed: listings.unique_listing_id"),
        format!("realty check over a listing written twice:\n{out}"),
    )?;
    Ok(())
}

/// Runs `realty check` on the demo's stack: whether it passed, and what it printed.
async fn realty_check(cli: &DemoCli<'_>) -> Result<(bool, String), Failed> {
    let command = cli.command(&["check"]);
    let output = realty_tests::run_bounded(
        command,
        std::time::Duration::from_secs(300),
        cli.state_dir,
        "realty-check",
    )
    .await?;
    Ok((
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

/// One market of the report against `listings` (its live inventory) and `market_daily`
/// (every day of its history, figure by figure).
fn check_market(
    market: &str,
    report: &Value,
    listings: &[ListingRow],
    days: &[MarketDayRow],
) -> Result<(), Failed> {
    let live = &report["live"];
    let mut prices = Vec::new();
    let mut pending = 0;
    for l in listings
        .iter()
        .filter(|l| l.market == market && l.offer == "sale" && !l.delisted)
    {
        match l.status.as_str() {
            "active" => prices.push(l.price_minor as f64 / 100.0),
            "under_contract" | "pending" => pending += 1,
            _ => {}
        }
    }
    let median = nearest_rank(&prices, 0.5);
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        // The metrics keep medians within 1 % (docs/metrics.md).
        (Some(a), Some(b)) => (a - b).abs() <= 0.01 * b,
        (None, None) => true,
        _ => false,
    };
    ensure(
        live["active_listings"].as_i64() == Some(prices.len() as i64)
            && live["pending_listings"].as_i64() == Some(pending)
            && close(live["median_price"].as_f64(), median),
        format!(
            "{market}: the report's live figures {live} differ from listings ({} active, {pending} pending, median {median:?})",
            prices.len()
        ),
    )?;
    let scope = format!("city#{market}#all");
    let reported = report["daily"].as_array().ok_or("no daily")?;
    ensure(!reported.is_empty(), format!("{market}: no daily figures"))?;
    for day in reported {
        let date: NaiveDate = serde_json::from_value(day["period"].clone())?;
        let row = days
            .iter()
            .find(|r| r.scope == scope && r.day == date)
            .ok_or(format!("{market}: no market_daily row for {date}"))?;
        let ours = serde_json::to_value(row)?;
        let figures = &day["figures"];
        for (name, value) in figures.as_object().ok_or("figures are no object")? {
            if name == "rents_by_bedrooms" {
                ensure(
                    serde_json::from_str::<Value>(&row.rents_by_bedrooms)? == *value,
                    format!("{market} {date}: rents_by_bedrooms"),
                )?;
                continue;
            }
            if name == "as_of" {
                let theirs: Option<DateTime<Utc>> = serde_json::from_value(value.clone())?;
                ensure(
                    theirs == row.as_of,
                    format!(
                        "{market} {date}: as_of {:?} in market_daily, {theirs:?} in the report",
                        row.as_of
                    ),
                )?;
                continue;
            }
            ensure(
                same(&ours[name.as_str()], value),
                format!(
                    "{market} {date}: {name} is {} in market_daily, {value} in the report",
                    ours[name.as_str()]
                ),
            )?;
        }
    }
    Ok(())
}

/// Equal, numbers within float rounding (Parquet keeps doubles exactly, but JSON may print
/// a double's last digit differently).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * y.abs().max(1.0),
            _ => false,
        },
        _ => a == b,
    }
}
