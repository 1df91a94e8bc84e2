//! (a) The demo's alerts against the ground truth.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use libtest_mimic::Failed;
use realty_sim::{EventKind, Market, MarketConfig};
use realty_tests::ensure;
use serde_json::Value;

use super::helpers::{
    ACTIVITY, DAYS, LISTINGS, MARKETS, MIN_PLAUSIBLE_PRICE, SEED, SOURCES, STEP_DAYS,
};

/// A listing as its source lists it for sale: there (active or pending) and its price.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    listed: bool,
    price: u64,
}

pub(super) fn check_alerts_against_ground_truth(report: &Value) -> Result<(), Failed> {
    let run = &report["run"];
    let poll_times: Vec<DateTime<Utc>> = serde_json::from_value(run["poll_times"].clone())?;
    let threshold = run["price_drop_threshold_centi_pct"]
        .as_u64()
        .ok_or("no threshold in the report")?;
    let mut market = Market::new(
        SEED,
        MarketConfig {
            markets: MARKETS.iter().map(|m| m.to_string()).collect(),
            listings_per_market: LISTINGS,
            activity: ACTIVITY,
            start: serde_json::from_value(run["sim_start"].clone())?,
            ..MarketConfig::default()
        },
    )?;
    let start = market.now();
    let expected_polls: Vec<DateTime<Utc>> = (0..=DAYS / STEP_DAYS)
        .map(|i| start + TimeDelta::days(i * STEP_DAYS))
        .collect();
    ensure(
        poll_times == expected_polls,
        format!("the demo polled at {poll_times:?}, expected every {STEP_DAYS} days from {start}"),
    )?;
    // Each listing by the id its market's source gives it (`zillow:<zpid>`...).
    let id_of = |market: &str, ids: &realty_sim::SourceIds| -> String {
        match MARKETS
            .iter()
            .position(|m| *m == market)
            .map(|i| SOURCES[i])
        {
            Some("realtor") => format!("realtor:{}", ids.realtor_property_id),
            Some("reso") => format!("reso:{}", ids.reso_listing_key),
            _ => format!("zillow:{}", ids.zpid),
        }
    };
    let mut state: HashMap<String, Seen> = HashMap::new();
    for key in MARKETS {
        for l in market.listings(key).ok_or("a market is missing")? {
            state.insert(
                id_of(key, &l.ids),
                Seen {
                    listed: l.status.is_live(),
                    price: l.list_price,
                },
            );
        }
    }
    let end = *poll_times.last().ok_or("no poll")?;
    market.advance_to(end)?;
    let truth = market.ground_truth(start, end).to_vec();

    let mut expected: BTreeSet<(String, DateTime<Utc>)> = BTreeSet::new();
    for window in poll_times.windows(2) {
        let (from, to) = (window[0], window[1]);
        let before = state.clone();
        for e in truth.iter().filter(|e| e.at > from && e.at <= to) {
            let seen = state.entry(id_of(&e.market, &e.ids)).or_insert(Seen {
                listed: false,
                price: 0,
            });
            match e.kind {
                EventKind::New { price, .. } => {
                    *seen = Seen {
                        listed: true,
                        price,
                    }
                }
                EventKind::PriceChange { new, .. } => seen.price = new,
                EventKind::StatusChange { .. } => seen.listed = true,
                EventKind::Delisted { .. } => seen.listed = false,
            }
        }
        // What the poll at `to` sees against the poll at `from`: net changes only.
        for (id, now) in &state {
            let Some(was) = before.get(id) else {
                continue;
            };
            let plausible = was.price >= MIN_PLAUSIBLE_PRICE && now.price >= MIN_PLAUSIBLE_PRICE;
            let dropped = now.price < was.price
                && u128::from(was.price - now.price) * 10_000
                    >= u128::from(threshold) * u128::from(was.price);
            if was.listed && now.listed && plausible && dropped {
                expected.insert((id.clone(), to));
            }
        }
    }

    let mut raised: BTreeSet<(String, DateTime<Utc>)> = BTreeSet::new();
    let mut all_alerts = 0;
    for m in report["markets"].as_array().ok_or("no markets")? {
        for a in m["alerts"].as_array().ok_or("no alerts list")? {
            all_alerts += 1;
            if a["alert_type"] != "price_drop" {
                continue;
            }
            let id = a["listing_id"]
                .as_str()
                .ok_or("an alert without listing_id")?;
            let at: DateTime<Utc> = serde_json::from_value(a["observed_at"].clone())?;
            ensure(
                raised.insert((id.to_owned(), at)),
                format!("alert for {id} at {at} raised twice"),
            )?;
        }
    }
    ensure(
        expected.len() >= 3,
        format!(
            "the ground truth has only {} drops at or over the threshold: too few to test",
            expected.len()
        ),
    )?;
    let missing: Vec<_> = expected.difference(&raised).collect();
    let extra: Vec<_> = raised.difference(&expected).collect();
    ensure(
        missing.is_empty() && extra.is_empty(),
        format!(
            "price-drop alerts differ from the ground truth ({} expected, {} raised, {all_alerts} alerts in all)\nmissing: {missing:?}\nnot in the ground truth: {extra:?}",
            expected.len(),
            raised.len()
        ),
    )
}
