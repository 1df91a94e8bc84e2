//! (b) The demo's market figures against the data lake.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use libtest_mimic::Failed;
use realty_model::stats::nearest_rank;
use realty_tests::{Explain, TestAws, ensure};
use serde_json::Value;

use super::helpers::{DAYS, DEMO_REGION, MARKETS, STEP_DAYS, sdk_in};

/// Every event object Firehose wrote under `listings/`, as JSON lines.
pub(super) async fn lake_events(aws: &TestAws, bucket: &str) -> Result<Vec<Value>, Failed> {
    let s3 = realty_aws::sdk::s3_client(&sdk_in(aws, DEMO_REGION).await);
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix("listings/")
            .set_continuation_token(token.take())
            .send()
            .await
            .explain("ListObjectsV2")?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        match page.next_continuation_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    ensure(!keys.is_empty(), "Firehose wrote nothing under listings/")?;
    let mut events = Vec::new();
    for key in keys {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .explain("GetObject")?
            .body
            .collect()
            .await?
            .into_bytes();
        for line in String::from_utf8_lossy(&body).lines() {
            if !line.trim().is_empty() {
                events.push(serde_json::from_str(line)?);
            }
        }
    }
    Ok(events)
}

#[derive(Debug, Default, Clone, PartialEq)]
struct DayFigures {
    active: i64,
    pending: i64,
    median_price: Option<f64>,
    new_listings: i64,
    price_cuts: i64,
}

/// Per market and day, the figures recomputed from the events: inventory and median as the
/// listings stood after the day's last event, and the day's counts.
fn recompute(events: &[Value]) -> Result<BTreeMap<(String, NaiveDate), DayFigures>, Failed> {
    // Deduplicated (the lake is at least once) and in observation order.
    let mut unique: BTreeMap<(DateTime<Utc>, String, String), &Value> = BTreeMap::new();
    for e in events {
        let observed: DateTime<Utc> = serde_json::from_value(e["observed_at"].clone())?;
        let id = e["listing"]["id"].as_str().ok_or("an event without id")?;
        let kind = e["kind"].as_str().ok_or("an event without kind")?;
        unique.insert((observed, id.to_owned(), kind.to_owned()), e);
    }
    // Listing id -> (its markets: city and ZIP, status, price, delisted).
    let mut listings: BTreeMap<String, (Vec<String>, String, f64, bool)> = BTreeMap::new();
    let mut out: BTreeMap<(String, NaiveDate), DayFigures> = BTreeMap::new();
    let mut days: Vec<NaiveDate> = unique.keys().map(|(t, _, _)| t.date_naive()).collect();
    days.dedup();
    let mut pending = unique.into_iter().peekable();
    for day in days {
        while let Some(((observed, id, kind), e)) =
            pending.next_if(|((t, _, _), _)| t.date_naive() == day)
        {
            let listing = &e["listing"];
            if listing["offer"] != "sale" {
                continue;
            }
            let market = listing["market"]["city_state"]
                .as_str()
                .ok_or("no market")?
                .to_owned();
            let status = listing["status"].as_str().ok_or("no status")?.to_owned();
            let price = listing["price_minor"].as_f64().ok_or("no price")? / 100.0;
            let counts = out
                .entry((market.clone(), observed.date_naive()))
                .or_default();
            // A feed that reports status (RESO) also lists sold and withdrawn records: first
            // seen, they are no new listing on the market.
            let on_market = matches!(status.as_str(), "active" | "under_contract" | "pending");
            // A market's first read is inventory: new only on its own on-market day.
            let news = e["baseline"] != true
                || listing["on_market_date"] == observed.date_naive().to_string();
            match kind.as_str() {
                "new" if on_market && news => counts.new_listings += 1,
                "changed" => {
                    let change = &e["changes"]["price"];
                    let stays_listed = status != "sold" && status != "off_market";
                    if let (Some(old), Some(new)) = (change["old"].as_i64(), change["new"].as_i64())
                        && new < old
                        && stays_listed
                    {
                        counts.price_cuts += 1;
                    }
                }
                _ => {}
            }
            let mut markets = vec![market];
            if let Some(zip) = listing["market"]["zip"].as_str() {
                markets.push(format!("zip#{zip}#all"));
            }
            listings.insert(id, (markets, status, price, kind == "delisted"));
        }
        // The state at the end of the day, per market.
        let mut per_market: BTreeMap<&str, (i64, i64, Vec<f64>)> = BTreeMap::new();
        for (markets, status, price, delisted) in listings.values() {
            for market in markets {
                let entry = per_market.entry(market.as_str()).or_default();
                if *delisted {
                    continue;
                }
                match status.as_str() {
                    "active" => {
                        entry.0 += 1;
                        entry.2.push(*price);
                    }
                    "under_contract" | "pending" => entry.1 += 1,
                    _ => {}
                }
            }
        }
        for (market, (active, pending, prices)) in per_market {
            let figures = out.entry((market.to_owned(), day)).or_default();
            figures.active = active;
            figures.pending = pending;
            // The nearest-rank median, rank ceil(n/2).
            figures.median_price = nearest_rank(&prices, 0.5);
        }
    }
    Ok(out)
}

pub(super) fn check_figures_against_the_lake(
    report: &Value,
    events: &[Value],
) -> Result<(), Failed> {
    let recomputed = recompute(events)?;
    let close = same_to_the_cent;
    let mut checked_days = 0;
    let mut checked_trends = 0;
    for m in report["markets"].as_array().ok_or("no markets")? {
        let market = m["market"].as_str().ok_or("no market name")?;
        let live = &m["live"];
        let last_day = m["daily"]
            .as_array()
            .and_then(|d| d.last())
            .ok_or(format!("{market}: no daily figures"))?;
        let last_date: NaiveDate = serde_json::from_value(last_day["period"].clone())?;
        let ours = recomputed
            .get(&(market.to_owned(), last_date))
            .ok_or(format!("{market}: nothing in the lake on {last_date}"))?;
        ensure(
            live["active_listings"].as_i64() == Some(ours.active)
                && live["pending_listings"].as_i64() == Some(ours.pending)
                && close(live["median_price"].as_f64(), ours.median_price),
            format!("{market} live figures {live} differ from the lake's {ours:?}"),
        )?;
        checked_trends += check_trend(market, &m["trends"], &recomputed, last_date)?;
        for day in m["daily"].as_array().ok_or("no daily")? {
            let date: NaiveDate = serde_json::from_value(day["period"].clone())?;
            let ours = recomputed
                .get(&(market.to_owned(), date))
                .cloned()
                .unwrap_or_default();
            let figures = &day["figures"];
            let theirs = DayFigures {
                active: figures["active_listings"].as_i64().unwrap_or(-1),
                pending: figures["pending_listings"].as_i64().unwrap_or(-1),
                median_price: figures["median_price"].as_f64(),
                new_listings: figures["new_listings_today"].as_i64().unwrap_or(-1),
                price_cuts: figures["price_cuts_today"].as_i64().unwrap_or(-1),
            };
            ensure(
                theirs.active == ours.active
                    && theirs.pending == ours.pending
                    && theirs.new_listings == ours.new_listings
                    && theirs.price_cuts == ours.price_cuts
                    && close(theirs.median_price, ours.median_price),
                format!("{market} on {date}: the report says {theirs:?}, the lake {ours:?}"),
            )?;
            checked_days += 1;
        }
    }
    ensure(
        // A day a poll: the report's days are the days something happened.
        checked_days >= MARKETS.len() * (DAYS / STEP_DAYS) as usize,
        format!("only {checked_days} market-days in the report"),
    )?;
    ensure(
        checked_trends == MARKETS.len(),
        format!("only {checked_trends} markets have a 7-day change to check"),
    )
}

/// Medians are exact (docs/metrics.md, "Exact medians"): the same to the cent.
fn same_to_the_cent(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 0.005,
        (None, None) => true,
        _ => false,
    }
}

/// The market's 7-day change of its median price against the change of the exact daily
/// closes recomputed from the lake (the close of `today` against the last on or before 7
/// days earlier, as `realty_metrics::history` takes it), within 0.01 percentage point:
/// 1 when checked, 0 when the market has no close 7 days back.
fn check_trend(
    market: &str,
    trends: &Value,
    recomputed: &BTreeMap<(String, NaiveDate), DayFigures>,
    today: NaiveDate,
) -> Result<usize, Failed> {
    let latest = recomputed
        .get(&(market.to_owned(), today))
        .and_then(|d| d.median_price);
    let cutoff = today - chrono::Duration::days(7);
    let earlier = recomputed
        .range((market.to_owned(), NaiveDate::MIN)..=(market.to_owned(), cutoff))
        .rev()
        .find_map(|(_, d)| d.median_price);
    let exact = latest
        .zip(earlier)
        .map(|(latest, earlier)| (latest / earlier - 1.0) * 100.0);
    let reported = trends["median_price_change_7d_pct"].as_f64();
    ensure(
        match (reported, exact) {
            (Some(r), Some(e)) => (r - e).abs() <= 0.01,
            (None, None) => true,
            _ => false,
        },
        format!("{market}: the 7-day change reads {reported:?}, the exact closes give {exact:?}"),
    )?;
    Ok(usize::from(exact.is_some()))
}

/// Every ZIP's live median price and inventory, as `realty report --market zip#…#all
/// --json` prints them, against the listings recomputed from the lake: exact, to the cent.
pub(super) async fn check_zip_medians(
    cli: &crate::demo_lake::DemoCli<'_>,
    events: &[Value],
) -> Result<(), Failed> {
    let recomputed = recompute(events)?;
    let last_day = recomputed
        .keys()
        .map(|(_, day)| *day)
        .max()
        .ok_or("nothing recomputed")?;
    let zips: Vec<(&String, &DayFigures)> = recomputed
        .iter()
        .filter(|((key, day), _)| key.starts_with("zip#") && *day == last_day)
        .map(|((key, _), figures)| (key, figures))
        .collect();
    ensure(
        zips.len() >= MARKETS.len(),
        format!("only {} ZIPs in the lake", zips.len()),
    )?;
    for (zip, ours) in zips {
        let report = realty_report(cli, zip).await?;
        let live = &report["live"];
        ensure(
            live["active_listings"].as_i64() == Some(ours.active)
                && same_to_the_cent(live["median_price"].as_f64(), ours.median_price),
            format!("{zip} live figures {live} differ from the lake's {ours:?}"),
        )?;
    }
    Ok(())
}

/// `realty report --market <scope> --json` on the demo's stack.
async fn realty_report(cli: &crate::demo_lake::DemoCli<'_>, scope: &str) -> Result<Value, Failed> {
    let command = cli.command(&["report", "--market", scope, "--json"]);
    let output = realty_tests::run_bounded(
        command,
        std::time::Duration::from_secs(120),
        cli.state_dir,
        "realty-report",
    )
    .await?;
    ensure(
        output.status.success(),
        format!(
            "realty report --market {scope}: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    )?;
    Ok(serde_json::from_slice(&output.stdout)?)
}
