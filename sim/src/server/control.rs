//! The control API: advancing time, the portals' layout, the state, the ground truth and
//! the markets.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::SimHandle;
use super::http::{query_pairs, respond};
use crate::api::Reply;
use crate::config::FaultConfig;
use crate::market::{MAX_ADVANCE_DAYS, MarketSummary};
use crate::time_format;
use crate::truth::GroundTruthEvent;

/// `POST /control/advance` body: `{"hours": 6}`, `{"minutes": 5}`, `{"seconds": 30}` or
/// `{"to": "2025-03-04T00:00:00Z"}`.
pub(super) async fn control_advance(State(sim): State<SimHandle>, body: Bytes) -> Response {
    let target = match advance_target(&sim, &body) {
        Ok(target) => target,
        Err(message) => return respond(Reply::message(400, &message), false),
    };
    let worker = sim.clone();
    // Simulating days of events is CPU work: keep it off the reactor.
    let outcome = tokio::task::spawn_blocking(move || worker.advance_to(target)).await;
    let reply = match outcome {
        Ok(Ok(report)) => Reply::json(
            200,
            &serde_json::json!({
                "previous": time_format::millis(report.from),
                "now": time_format::millis(report.to),
                "events": report.events,
            }),
        ),
        Ok(Err(error)) => Reply::message(400, &error.to_string()),
        Err(join) => Reply::message(500, &format!("advance failed: {join}")),
    };
    respond(reply, false)
}

fn advance_target(sim: &SimHandle, body: &[u8]) -> Result<DateTime<Utc>, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("expected a JSON body like {{\"hours\": 1}}: {e}"))?;
    if let Some(to) = value.get("to") {
        return to
            .as_str()
            .and_then(time_format::parse)
            .ok_or_else(|| format!("\"to\" must be an RFC 3339 time, got {to}"));
    }
    let units = [
        ("hours", 3_600_000.0),
        ("minutes", 60_000.0),
        ("seconds", 1_000.0),
    ];
    let (amount, millis_per_unit) = units
        .iter()
        .find_map(|(name, millis)| value.get(*name).map(|v| (v, *millis)))
        .ok_or("expected one of \"hours\", \"minutes\", \"seconds\" or \"to\"")?;
    let amount = amount
        .as_f64()
        .filter(|a| a.is_finite() && *a >= 0.0)
        .ok_or_else(|| format!("the duration must be a non-negative number, got {amount}"))?;
    let millis = amount * millis_per_unit;
    if millis > (MAX_ADVANCE_DAYS * 86_400_000) as f64 {
        return Err(format!(
            "one advance may cover at most {MAX_ADVANCE_DAYS} days"
        ));
    }
    sim.now()
        .checked_add_signed(TimeDelta::milliseconds(millis.round() as i64))
        .ok_or_else(|| "the target time is out of range".to_owned())
}

/// `POST /control/portal-layout` body: `{"changed": true}` (see
/// [`SimHandle::change_portal_layout`]).
pub(super) async fn control_portal_layout(State(sim): State<SimHandle>, body: Bytes) -> Response {
    let changed = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("changed").and_then(serde_json::Value::as_bool));
    let reply = match changed {
        Some(changed) => {
            sim.change_portal_layout(changed);
            Reply::json(200, &serde_json::json!({ "changed": changed }))
        }
        None => Reply::message(400, "expected a JSON body like {\"changed\": true}"),
    };
    respond(reply, false)
}

#[derive(Serialize)]
struct StateView<'a> {
    seed: u64,
    start: String,
    now: String,
    events: usize,
    markets: Vec<MarketSummary>,
    faults: &'a FaultConfig,
    faults_served: BTreeMap<&'static str, u64>,
}

pub(super) async fn control_state(State(sim): State<SimHandle>) -> Response {
    let served = sim
        .faults_served()
        .into_iter()
        .map(|(kind, count)| (kind.name(), count))
        .collect();
    let reply = sim.with_market(|market| {
        Reply::json(
            200,
            &StateView {
                seed: sim.seed(),
                start: time_format::millis(market.start()),
                now: time_format::millis(market.now()),
                events: market.events().len(),
                markets: market.summary(),
                faults: sim.faults(),
                faults_served: served,
            },
        )
    });
    respond(reply, false)
}

#[derive(Serialize)]
struct GroundTruthView<'a> {
    from: String,
    to: String,
    count: usize,
    events: Vec<&'a GroundTruthEvent>,
}

/// `GET /control/ground-truth?from=T1&to=T2[&market=KEY][&offer=rent]`: events with
/// `T1 < at <= T2` (of the rentals with `offer=rent`); `from` defaults to the start, `to`
/// to now.
pub(super) async fn control_ground_truth(State(sim): State<SimHandle>, uri: Uri) -> Response {
    let pairs = match query_pairs(&uri) {
        Ok(pairs) => pairs,
        Err(reply) => return respond(reply, false),
    };
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        match crate::api::query_value(&pairs, name) {
            None | Some("") => Ok(None),
            Some(text) => time_format::parse(text)
                .map(Some)
                .ok_or_else(|| format!("{name} must be an RFC 3339 time, got {text:?}")),
        }
    };
    let (from, to) = match (time("from"), time("to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(message), _) | (_, Err(message)) => {
            return respond(Reply::message(400, &message), false);
        }
    };
    let market_filter = crate::api::query_value(&pairs, "market").map(str::to_owned);
    let rentals = match crate::api::query_value(&pairs, "offer") {
        None | Some("" | "sale") => false,
        Some("rent") => true,
        Some(other) => {
            let message = format!("offer must be sale or rent, got {other:?}");
            return respond(Reply::message(400, &message), false);
        }
    };
    let reply = sim.with_market(|market| {
        let from = from.unwrap_or(market.start());
        let to = to.unwrap_or(market.now());
        if from > to {
            return Reply::message(400, "from is after to");
        }
        let events = if rentals {
            market.rental_ground_truth(from, to)
        } else {
            market.ground_truth(from, to)
        };
        let events: Vec<&GroundTruthEvent> = events
            .iter()
            .filter(|e| market_filter.as_deref().is_none_or(|m| e.market == m))
            .collect();
        Reply::json(
            200,
            &GroundTruthView {
                from: time_format::millis(from),
                to: time_format::millis(to),
                count: events.len(),
                events,
            },
        )
    });
    respond(reply, false)
}

#[derive(Serialize)]
struct MarketView {
    key: String,
    city: &'static str,
    state: &'static str,
    zillow_location: String,
    latitude: f64,
    longitude: f64,
    median_list_price: u64,
    zips: &'static [&'static str],
    active: usize,
    pending: usize,
}

pub(super) async fn control_markets(State(sim): State<SimHandle>) -> Response {
    let reply = sim.with_market(|market| {
        let views: Vec<MarketView> = market
            .summary()
            .into_iter()
            .filter_map(|summary| {
                let profile = market.profile(&summary.key)?;
                Some(MarketView {
                    zillow_location: profile.zillow_location(),
                    key: summary.key,
                    city: profile.city,
                    state: profile.state,
                    latitude: profile.latitude,
                    longitude: profile.longitude,
                    median_list_price: profile.median_list_price,
                    zips: profile.zips,
                    active: summary.active,
                    pending: summary.pending,
                })
            })
            .collect();
        Reply::json(200, &views)
    });
    respond(reply, false)
}
