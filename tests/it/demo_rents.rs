//! The demo's rent figures and yields against a recomputation from the lake's events, written
//! here and independent of the metrics code (docs/metrics.md, "Rents and yields").

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use libtest_mimic::Failed;
use realty_model::stats::nearest_rank;
use realty_tests::ensure;
use serde_json::Value;

/// Rentals a size class needs before its median rent is matched (`MIN_RENTALS_TO_MATCH`).
const MIN_RENTALS_TO_MATCH: usize = 3;
/// A median is within 1 % (0.995 %); a ratio of two such medians within 2.01 %.
const MEDIAN_BOUND: f64 = 0.01;
const RATIO_BOUND: f64 = 0.0201;

/// One market's rent figures as the listings stand after the lake's last event.
#[derive(Debug, Default)]
struct Rents {
    rentals: i64,
    rents: Vec<f64>,
    /// Per size class (`0`..`3`, `4+`): rents and sale prices.
    rents_by_class: BTreeMap<&'static str, Vec<f64>>,
    prices_by_class: BTreeMap<&'static str, Vec<f64>>,
    /// 12 × rent estimate / price of active sale listings with an estimate.
    estimate_yields: Vec<f64>,
}

fn class(beds: u64) -> &'static str {
    ["0", "1", "2", "3"]
        .get(beds as usize)
        .copied()
        .unwrap_or("4+")
}

impl Rents {
    /// The market's gross yield and its basis, as docs/metrics.md defines them.
    fn gross_yield(&self) -> Option<(f64, &'static str)> {
        let (mut prices, mut yearly_rents) = (0.0, 0.0);
        for (class, rents) in &self.rents_by_class {
            let Some(sales) = self.prices_by_class.get(class) else {
                continue;
            };
            if rents.len() < MIN_RENTALS_TO_MATCH || sales.is_empty() {
                continue;
            }
            let (rent, price) = (nearest_rank(rents, 0.5)?, nearest_rank(sales, 0.5)?);
            prices += sales.len() as f64 * price;
            yearly_rents += sales.len() as f64 * 12.0 * rent;
        }
        if prices > 0.0 && yearly_rents > 0.0 {
            return Some((yearly_rents / prices, "market_rents"));
        }
        nearest_rank(&self.estimate_yields, 0.5).map(|y| (y, "rent_estimates"))
    }
}

/// Per market, the rent figures recomputed from the events (deduplicated, the last event of
/// each listing in observation order).
fn recompute(events: &[Value]) -> Result<BTreeMap<String, Rents>, Failed> {
    let mut last: BTreeMap<&str, (DateTime<Utc>, &Value)> = BTreeMap::new();
    for e in events {
        let observed: DateTime<Utc> = serde_json::from_value(e["observed_at"].clone())?;
        let id = e["listing"]["id"].as_str().ok_or("an event without id")?;
        if last.get(id).is_none_or(|(t, _)| observed >= *t) {
            last.insert(id, (observed, e));
        }
    }
    let mut out: BTreeMap<String, Rents> = BTreeMap::new();
    for (_, e) in last.values() {
        let listing = &e["listing"];
        if e["kind"] == "delisted" || listing["status"] != "active" {
            continue;
        }
        let market = listing["market"]["city_state"]
            .as_str()
            .ok_or("no market")?;
        let entry = out.entry(market.to_owned()).or_default();
        let price = listing["price_minor"].as_f64().ok_or("no price")? / 100.0;
        let beds = listing["beds"].as_u64();
        match listing["offer"].as_str() {
            Some("rent") => {
                entry.rentals += 1;
                entry.rents.push(price);
                if let Some(b) = beds {
                    entry
                        .rents_by_class
                        .entry(class(b))
                        .or_default()
                        .push(price);
                }
            }
            Some("sale") => {
                if let Some(b) = beds {
                    entry
                        .prices_by_class
                        .entry(class(b))
                        .or_default()
                        .push(price);
                }
                if let Some(estimate) = listing["rent_estimate_minor"].as_f64().filter(|r| *r > 0.0)
                {
                    entry.estimate_yields.push(12.0 * estimate / 100.0 / price);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Every market of the report has its live rent figures and yield as the recomputation says,
/// within the documented bounds; those of `with_rentals` (their source lists rentals) have
/// rentals, and a yield from their market rents.
pub(crate) fn check_rents_against_the_lake(
    report: &Value,
    events: &[Value],
    with_rentals: &[&str],
) -> Result<(), Failed> {
    let recomputed = recompute(events)?;
    let within = |a: Option<f64>, b: Option<f64>, bound: f64| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= bound * b.abs(),
        (None, None) => true,
        _ => false,
    };
    let mut checked = 0;
    for m in report["markets"].as_array().ok_or("no markets")? {
        let market = m["market"].as_str().ok_or("no market name")?;
        let live = &m["live"];
        let ours = recomputed
            .get(market)
            .ok_or(format!("{market}: no active listing in the lake"))?;
        let (yield_, basis) = ours.gross_yield().unzip();
        if with_rentals.contains(&market) {
            ensure(
                ours.rentals > 0 && basis == Some("market_rents"),
                format!("{market}: the demo polled no rentals to match ({basis:?})"),
            )?;
            checked += 1;
        }
        ensure(
            live["active_rentals"].as_i64() == Some(ours.rentals)
                && within(
                    live["median_rent"].as_f64(),
                    nearest_rank(&ours.rents, 0.5),
                    MEDIAN_BOUND,
                )
                && within(live["gross_yield"].as_f64(), yield_, RATIO_BOUND)
                && live["yield_basis"].as_str() == basis,
            format!(
                "{market}: rentals {} median rent {} yield {} ({}) in the report; the lake: {} rentals, median rent {:?}, yield {yield_:?} ({basis:?})",
                live["active_rentals"],
                live["median_rent"],
                live["gross_yield"],
                live["yield_basis"],
                ours.rentals,
                nearest_rank(&ours.rents, 0.5),
            ),
        )?;
    }
    ensure(
        checked == with_rentals.len(),
        format!(
            "rents checked in {checked} markets of {}",
            with_rentals.len()
        ),
    )
}
