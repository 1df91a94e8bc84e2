//! (d) The demo's first poll records the markets' inventory, not news: no alert for a
//! listing on the market before the markets were added, and the first day's new listings
//! are the listings whose on-market date is that day.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use libtest_mimic::Failed;
use realty_tests::ensure;
use serde_json::Value;

pub(super) fn check_first_read(report: &Value, events: &[Value]) -> Result<(), Failed> {
    let poll_times: Vec<DateTime<Utc>> =
        serde_json::from_value(report["run"]["poll_times"].clone())?;
    // The demo adds its markets at the simulated start, and polls them then first.
    let added = *poll_times.first().ok_or("no poll")?;
    let day = added.date_naive();
    // The first poll's sale listings (the lake is at least once: each id once), by market:
    // on the market before the day the markets were added, and listed that day.
    let mut before: BTreeSet<&str> = BTreeSet::new();
    let mut listed_that_day: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut for_sale: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in events {
        let observed: DateTime<Utc> = serde_json::from_value(e["observed_at"].clone())?;
        let listing = &e["listing"];
        if observed != added || listing["offer"] != "sale" {
            continue;
        }
        ensure(
            e["kind"] == "new" && e["baseline"] == true,
            format!("the first poll's event is not a baseline: {e}"),
        )?;
        let id = listing["id"].as_str().ok_or("no id")?;
        let market = listing["market"]["city_state"]
            .as_str()
            .ok_or("no market")?;
        let on_market_date = listing["on_market_date"].as_str();
        if on_market_date.is_none_or(|d| d < day.to_string().as_str()) {
            before.insert(id);
        }
        let status = listing["status"].as_str().unwrap_or_default();
        if matches!(status, "active" | "under_contract" | "pending") {
            for_sale.entry(market).or_default().insert(id);
            if on_market_date == Some(day.to_string().as_str()) {
                listed_that_day.entry(market).or_default().insert(id);
            }
        }
    }
    ensure(
        !before.is_empty(),
        "the first poll found no listing on the market before it: nothing to check",
    )?;
    let mut checked_fewer = false;
    for m in report["markets"].as_array().ok_or("no markets")? {
        let market = m["market"].as_str().ok_or("no market name")?;
        for a in m["alerts"].as_array().ok_or("no alerts list")? {
            let id = a["listing_id"].as_str().unwrap_or_default();
            let at: DateTime<Utc> = serde_json::from_value(a["observed_at"].clone())?;
            ensure(
                !(at == added && before.contains(id)),
                format!("{market}: the first poll alerted a listing already on the market: {a}"),
            )?;
        }
        let first_day = m["daily"]
            .as_array()
            .ok_or("no daily")?
            .iter()
            .find(|d| d["period"] == day.to_string())
            .ok_or(format!("{market}: no figures on {day}"))?;
        let counted = first_day["figures"]["new_listings_today"].as_i64();
        let expected = listed_that_day.get(market).map_or(0, BTreeSet::len);
        ensure(
            counted == Some(expected as i64),
            format!("{market} on {day}: {counted:?} new listings, {expected} listed that day"),
        )?;
        checked_fewer |= expected < for_sale.get(market).map_or(0, BTreeSet::len);
    }
    ensure(
        checked_fewer,
        "every listing of the first poll was listed that day: nothing told apart",
    )
}
