//! The market API as Lambda runs it, over a local stack the pipeline has filled (the poller
//! as Lambda builds it, the metrics function through the local event source mapping): each
//! market's answer equals what `realty report --json` prints for it, bad input through the
//! API Gateway event is a 4xx, and the authorizer admits the stack's token only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::apigw::{
    ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest,
};
use libtest_mimic::Failed;
use realty_alerts::feed::{AlertFeedItem, feed_key, feed_sort_key};
use realty_alerts::rules::AlertKind;
use realty_aws::functions::api::{ApiAuthorizer, ApiFunction};
use realty_aws::functions::metrics::MetricsFunction;
use realty_infra::runner::Mapping;
use realty_model::markets::SourceKind;
use realty_model::ports::SecretSource;
use realty_poller::run::PollRequest;
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{MetricsHandler, TestAws, ensure, run_bounded};
use serde_json::{Value, json};

use crate::dashboard::address_and_token;
use crate::demo::pump_until_quiet;
use crate::operations::{Setup, run, setup};

crate::async_tests!(
    the_api_answers_what_realty_report_says_and_only_to_its_token,
    the_served_api_conforms_to_its_openapi_document,
);

const MARKETS: [&str; 2] = ["nashville-tn", "syracuse-ny"];

/// The status and text body of an answer.
fn answer(status: i64, body: Option<&aws_lambda_events::encodings::Body>) -> (i64, String) {
    let text = match body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => t.clone(),
        _ => String::new(),
    };
    (status, text)
}

/// `GET path?query` through the API function: a 200's JSON body.
pub(crate) async fn get_json(
    api: &ApiFunction,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Value, Failed> {
    let response = api.handle(&get(path, query)?, chrono::Utc::now()).await;
    let (status, body) = answer(response.status_code, response.body.as_ref());
    ensure(status == 200, format!("{path} {query:?}: {status} {body}"))?;
    Ok(serde_json::from_str(&body)?)
}

/// Every number in `value` has at most `places(field)` decimals, as people read it
/// (docs/metrics.md: money to the cent, percentages to 0.01, shares to 0.01 %).
fn check_decimals(what: &str, value: &Value, places: &dyn Fn(&str) -> usize) -> Result<(), Failed> {
    fn walk(field: &str, v: &Value, places: &dyn Fn(&str) -> usize, out: &mut Vec<String>) {
        match v {
            Value::Number(n) => {
                let text = n.to_string();
                let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
                if text.contains(['e', 'E']) || decimals > places(field) {
                    out.push(format!("{field}: {text}"));
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(field, i, places, out)),
            Value::Object(map) => map.iter().for_each(|(k, i)| walk(k, i, places, out)),
            _ => {}
        }
    }
    let mut over = Vec::new();
    walk("", value, places, &mut over);
    ensure(
        over.is_empty(),
        format!("{what}: figures with more decimals than they have: {over:?}"),
    )
}

/// The lists read back from the stack's tables: every price cut the markets counted is
/// listed once (all pages), each cut is a cut, the undervalued and anomalous listings are
/// so against the live figures, and the alert feed pages newest first through DynamoDB.
async fn check_lists(
    s: &Setup,
    api: &ApiFunction,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failed> {
    let mut all_cuts = 0;
    for market in MARKETS {
        let report = get_json(api, &format!("/markets/{market}"), &[]).await?;
        let counted: i64 = report["daily"]
            .as_array()
            .ok_or("no daily")?
            .iter()
            .filter_map(|d| d["figures"]["price_cuts_today"].as_i64())
            .sum();
        let path = format!("/markets/{market}/listings");
        let mut cuts = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("kind", "price_cut"), ("limit", "7")];
            if let Some(a) = after.as_deref() {
                query.push(("after", a));
            }
            let page = get_json(api, &path, &query).await?;
            cuts.extend(page["listings"].as_array().ok_or("no listings")?.clone());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        ensure(
            cuts.len() as i64 == counted,
            format!(
                "{market}: {} cuts listed, {counted} counted by day",
                cuts.len()
            ),
        )?;
        for c in &cuts {
            let (price, before) = (c["price"].as_f64(), c["previous_price"].as_f64());
            ensure(
                matches!((price, before), (Some(p), Some(b)) if p < b),
                format!("{market}: not a cut: {c}"),
            )?;
        }
        let times: Vec<&str> = cuts
            .iter()
            .filter_map(|c| c["observed_at"].as_str())
            .collect();
        ensure(
            times.windows(2).all(|w| w[0] >= w[1]),
            format!("{market}: cuts not newest first: {times:?}"),
        )?;
        all_cuts += cuts.len();
        let live = &report["live"];
        let undervalued = get_json(api, &path, &[("kind", "undervalued"), ("limit", "50")]).await?;
        for l in undervalued["listings"].as_array().ok_or("no listings")? {
            ensure(
                l["price_per_sqft_to_median"]
                    .as_f64()
                    .is_some_and(|r| r <= 0.8 + 1e-9),
                format!("{market}: not undervalued: {l}"),
            )?;
        }
        let anomalous = get_json(api, &path, &[("kind", "anomalous"), ("limit", "50")]).await?;
        let (low, high) = (
            live["price_per_sqft_anomaly_below"].as_f64(),
            live["price_per_sqft_anomaly_above"].as_f64(),
        );
        for l in anomalous["listings"].as_array().ok_or("no listings")? {
            let ppsf = l["price_per_sqft"].as_f64().ok_or("no price per sqft")?;
            ensure(
                low.is_some_and(|b| ppsf < b) || high.is_some_and(|b| ppsf > b),
                format!("{market}: {ppsf} within [{low:?}, {high:?}]: {l}"),
            )?;
        }
    }
    ensure(all_cuts > 0, "four days of polls made no price cut")?;

    // Three alerts of one market, put as the alerts function keeps them, read back a page
    // of one at a time, newest first, through the Query the API makes.
    let dynamodb = aws_sdk_dynamodb::Client::new(&s.sdk);
    let mut bodies = Vec::new();
    for (minutes, kind) in [
        (0, AlertKind::PriceDrop),
        (1, AlertKind::Undervalued),
        (2, AlertKind::PriceDrop),
    ] {
        let at = now - chrono::TimeDelta::minutes(10 - minutes);
        let body = json!({
            "alert_type": kind.as_str(), "alert_id": format!("{}:zillow:7:{minutes}", kind.as_str()),
            "listing_id": "zillow:7", "address": "1 Main St, Nashville, TN 37201",
            "market": MARKETS[0], "zip": "37201", "property_type": "condo", "currency": "USD",
            "old_price": 500000.0, "new_price": 400000.0, "drop_amount": 100000.0, "drop_pct": 20.0,
            "price_per_sqft": 200.0, "market_median_price_per_sqft": 300.0,
            "price_per_sqft_to_median": 0.6667, "median_scope": "city#nashville-tn#condo",
            "living_area_sqft": 2000, "beds": 2, "baths": 2.0, "url": null, "new_listing": false,
            "observed_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let item = AlertFeedItem {
            pk: feed_key(MARKETS[0]),
            sk: feed_sort_key(
                kind.as_str(),
                at,
                body["alert_id"].as_str().unwrap_or_default(),
            ),
            alert_type: kind,
            observed_at: at,
            body: body.to_string(),
            expires_at: at.timestamp() + 86_400,
        };
        dynamodb
            .put_item()
            .table_name(&s.resources.market_table)
            .set_item(Some(serde_dynamo::to_item(&item)?))
            .send()
            .await?;
        bodies.push(body);
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut query = vec![("market", MARKETS[0]), ("limit", "1")];
        if let Some(b) = before.as_deref() {
            query.push(("before", b));
        }
        let page = get_json(api, "/alerts", &query).await?;
        seen.extend(page["alerts"].as_array().ok_or("no alerts")?.clone());
        match page["next"].as_str() {
            Some(next) if seen.len() < 10 => before = Some(next.to_owned()),
            _ => break,
        }
    }
    bodies.reverse();
    ensure(seen == bodies, format!("the feed read back {seen:?}"))?;
    let drops = get_json(api, "/alerts", &[("type", "price_drop")]).await?;
    ensure(
        drops["alerts"].as_array().map(Vec::len) == Some(2),
        format!("price drops of every watched market: {drops}"),
    )?;
    Ok(())
}

/// An HTTP API (payload 2.0) event for `GET path?query`.
fn get(path: &str, query: &[(&str, &str)]) -> Result<ApiGatewayV2httpRequest, Failed> {
    let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let parameters: serde_json::Map<String, Value> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    Ok(serde_json::from_value(json!({
        "version": "2.0",
        "routeKey": "GET /{proxy+}",
        "rawPath": path,
        "rawQueryString": raw_query.join("&"),
        "queryStringParameters": parameters,
        "headers": {},
        "requestContext": {
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "it"},
            "requestId": "it", "routeKey": "GET /{proxy+}", "stage": "$default",
            "time": "23/Nov/2026:17:00:00 +0000", "timeEpoch": 0
        },
        "isBase64Encoded": false
    }))?)
}

fn authorizer_event(
    authorization: Option<&str>,
) -> Result<ApiGatewayV2CustomAuthorizerV2Request, Failed> {
    let headers = authorization.map_or(json!({}), |a| json!({ "authorization": a }));
    Ok(serde_json::from_value(json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/$default/GET/markets",
        "identitySource": [authorization.unwrap_or_default()],
        "routeKey": "GET /{proxy+}",
        "rawPath": "/markets",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {"method": "GET", "path": "/markets", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "it"},
            "requestId": "it", "routeKey": "GET /{proxy+}", "stage": "$default",
            "time": "23/Nov/2026:17:00:00 +0000", "timeEpoch": 0
        }
    }))?)
}

/// A stack the pipeline has filled: both markets watched and polled from the simulator once
/// a day for `days` days (seed `seed`), their events through the metrics function.
pub(crate) async fn filled(
    aws: &TestAws,
    seed: u64,
    days: i64,
) -> Result<(Setup, SimServer), Failed> {
    let s = setup(aws).await?;
    let sim = SimServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimConfig {
            seed,
            market: MarketConfig {
                markets: MARKETS.iter().map(|m| m.to_string()).collect(),
                listings_per_market: 120,
                // Busier than a real market, so a few days of polls see cuts.
                activity: 6.0,
                // Days before now, as `make demo` runs: what the API lists is what has not
                // expired by the wall clock (DynamoDB's TTL).
                start: {
                    let now = chrono::Utc::now();
                    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::hours(1))
                        .unwrap_or(now)
                        - chrono::TimeDelta::days(days)
                },
                ..MarketConfig::default()
            },
            faults: FaultConfig::none(),
        },
    )
    .await?;
    s.set_key(SourceKind::Zillow, "test-key-zillow").await?;
    for market in MARKETS {
        s.watch(market, &["zillow"]).await?;
    }
    let poller = s.function(&sim).await?;
    let mut metrics = Mapping::new(
        &s.sdk,
        &aws.template(),
        &s.stack,
        "MetricsFunction",
        MetricsHandler(MetricsFunction::new(
            &aws.function_sdk("MetricsFunction").await,
            &s.resources,
        )),
    )
    .await?;
    for day in 0..days {
        if day > 0 {
            sim.handle().advance(chrono::TimeDelta::days(1))?;
        }
        let polled = poller
            .handle(&PollRequest::default(), sim.handle().now())
            .await;
        ensure(
            polled.failed_markets == 0 && (day > 0 || polled.published > 0),
            format!("day {day}: {polled:?}"),
        )?;
        pump_until_quiet(&mut metrics).await?;
    }
    Ok((s, sim))
}

async fn the_api_answers_what_realty_report_says_and_only_to_its_token(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    // Four days of polls: prices move, so there are cuts to list.
    let (s, sim) = filled(&aws, 91, 4).await?;
    let api = ApiFunction::new(&aws.function_sdk("ApiFunction").await, &s.resources);
    let now = chrono::Utc::now();
    check_lists(&s, &api, now).await?;
    let cli = s.local_cli(&aws).await?;
    for market in MARKETS {
        let response = api
            .handle(&get(&format!("/markets/{market}"), &[])?, now)
            .await;
        let (status, body) = answer(response.status_code, response.body.as_ref());
        ensure(status == 200, format!("{market}: {status} {body}"))?;
        let ours: Value = serde_json::from_str(&body)?;
        let printed = run(
            cli.command(&["report", "--market", market, "--json"]),
            &cli.state_dir,
            &format!("report-{market}"),
        )
        .await?;
        ensure(
            printed.status.success(),
            String::from_utf8_lossy(&printed.stderr).into_owned(),
        )?;
        let theirs: Value = serde_json::from_slice(&printed.stdout)?;
        ensure(
            ours == theirs,
            format!("{market}: the API says {ours}\nrealty report says {theirs}"),
        )?;
        ensure(
            ours["live"]["active_listings"].as_i64().unwrap_or(0) > 0,
            format!("{market}: no listings: {ours}"),
        )?;
    }
    let list = api.handle(&get("/markets", &[("limit", "1")])?, now).await;
    let (status, body) = answer(list.status_code, list.body.as_ref());
    let page: Value = serde_json::from_str(&body)?;
    ensure(
        status == 200 && page["markets"][0]["market"] == MARKETS[0] && page["next"] == MARKETS[0],
        format!("{status} {body}"),
    )?;
    let all = get_json(&api, "/markets", &[]).await?;
    ensure(
        all["markets"]
            .as_array()
            .is_some_and(|m| m.len() == MARKETS.len()),
        format!("GET /markets: {all}"),
    )?;
    check_decimals("GET /markets", &all, &|_| 2)?;
    for market in MARKETS {
        let report = get_json(&api, &format!("/markets/{market}"), &[]).await?;
        // Shares (of active listings with a cut, pending) and yields are fractions to
        // 0.01 %.
        let places = |field: &str| {
            let fraction =
                field.starts_with("share_") || matches!(field, "pending_ratio" | "gross_yield");
            if fraction { 4 } else { 2 }
        };
        check_decimals(&format!("GET /markets/{market}"), &report, &places)?;
    }
    for (path, query) in [
        ("/markets/Nashville-TN", vec![]),
        ("/markets/nowhere-zz", vec![]),
        ("/markets", vec![("limit", "0")]),
        (
            "/markets/nashville-tn/history",
            vec![("from", "2026-02-30")],
        ),
        (
            "/markets/nashville-tn/history",
            vec![
                ("period", "hour"),
                ("from", "2026-01-01"),
                ("to", "2026-02-01"),
            ],
        ),
        ("/nothing-here", vec![]),
    ] {
        let response = api.handle(&get(path, &query)?, now).await;
        let (status, body) = answer(response.status_code, response.body.as_ref());
        ensure(
            (400..500).contains(&status) && body.contains("\"error\""),
            format!("{path} {query:?}: {status} {body}"),
        )?;
    }

    let authorizer = ApiAuthorizer::new(
        &aws.function_sdk("ApiAuthorizerFunction").await,
        &s.resources,
    );
    let token = s
        .secrets
        .secret_string(&s.resources.api_token_secret)
        .await?;
    ensure(token.trim().len() >= 32, "the stack's token is too short")?;
    let admitted = authorizer
        .handle(&authorizer_event(Some(&format!(
            "Bearer {}",
            token.trim()
        )))?)
        .await?;
    ensure(admitted.is_authorized, "the stack's token is refused")?;
    for wrong in [None, Some("Bearer nope"), Some(token.trim())] {
        let refused = authorizer.handle(&authorizer_event(wrong)?).await?;
        ensure(!refused.is_authorized, format!("{wrong:?} admitted"))?;
    }
    let _ = std::fs::remove_dir_all(&cli.state_dir);
    sim.shutdown().await?;
    Ok(())
}

/// Schemathesis, pinned, in a virtualenv of its own (its dependencies must not move the local
/// AWS tools' in `.venv`), installed once per requirements file.
async fn schemathesis(project_root: &Path) -> Result<PathBuf, Failed> {
    let root = project_root.to_path_buf();
    let venv = tokio::task::spawn_blocking(move || {
        realty_infra::emulator::ensure_separate_venv(
            &root,
            &root.join("target/realty/venv-schemathesis"),
            &root.join("tests/schemathesis-requirements.txt"),
            "schemathesis, the API's checker (first use)",
        )
    })
    .await??;
    Ok(venv.join("bin/schemathesis"))
}

async fn the_served_api_conforms_to_its_openapi_document(aws: Arc<TestAws>) -> Result<(), Failed> {
    let (s, sim) = filled(&aws, 91, 1).await?;
    let cli = s.local_cli(&aws).await?;
    let checker = schemathesis(&aws.project_root).await?;
    let mut serve = cli.command(&["serve", "--port", "0"]);
    serve.stdout(Stdio::piped()).kill_on_drop(true);
    let mut server = serve.spawn()?;
    let (url, token) =
        tokio::time::timeout(Duration::from_secs(120), address_and_token(&mut server))
            .await
            .map_err(|_| "realty serve printed no address in time")??;
    let token = token.trim();

    // The same answers as API Gateway in front of the authorizer.
    let http = reqwest::Client::new();
    let status = |auth: Option<String>| {
        let mut request = http.get(format!("{url}markets"));
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };
    ensure(status(None).await? == 401, "no token: not 401")?;
    ensure(
        status(Some("Bearer wrong".into())).await? == 403,
        "a wrong token: not 403",
    )?;
    ensure(
        status(Some(format!("Bearer {token}"))).await? == 200,
        "the token: not 200",
    )?;
    let page = http.get(url.clone()).send().await?;
    ensure(
        page.status() == 200
            && page
                .headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("text/html")),
        "the page is not served at /",
    )?;

    // Every operation, with valid and invalid input, against the document: no 5xx, only
    // declared statuses, bodies as the schemas say, invalid input refused, undeclared methods
    // answered 405 with `Allow`. Left out: `ignored_auth`, which wants a 401 for a wrong token
    // where API Gateway answers a refused token with 403 (checked above); and
    // `positive_data_acceptance`, which wants every schema-valid request accepted, where the
    // API refuses on purpose what a schema cannot state (ranges that run backwards or past
    // their limit, page tokens that name no page, a market key's spelling rules; each such
    // 400 is tested with its message in realty-core's API tests).
    let mut check = tokio::process::Command::new(&checker);
    check
        .args(["run", &format!("{url}openapi.json")])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "ignored_auth,positive_data_acceptance"])
        .args([
            "--mode",
            "all",
            "--max-examples",
            "40",
            "--generation-deterministic",
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Per request, 30 s instead of schemathesis's 10, both to wait for an answer and for
        // `--checks all`'s response-time check: moto serves one request at a time to every
        // test of the suite running beside this one, and a request queued behind them is
        // slow, not wrong (the whole run stays bounded below).
        .args(["--request-timeout", "30", "--max-response-time", "30"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Hypothesis keeps its database in the working folder: a temporary one, not the repo.
        .current_dir(&cli.state_dir);
    let checked = run_bounded(
        check,
        Duration::from_secs(300),
        &cli.state_dir,
        "schemathesis",
    )
    .await?;
    let report = String::from_utf8_lossy(&checked.stdout);
    ensure(
        checked.status.success(),
        format!("schemathesis found problems:\n{report}"),
    )?;
    // Every operation schemathesis found in the document tested, and cases generated: not a
    // run that found nothing to do.
    let field = |name: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let total = field("Selected:").and_then(|v| {
        let (selected, total) = v.split_once('/')?;
        (selected == total).then(|| total.to_owned())
    });
    let generated = report
        .lines()
        .find_map(|l| l.trim().strip_suffix(" passed")?.split_once(" generated, "))
        .and_then(|(generated, passed)| {
            (generated == passed).then(|| generated.parse::<u32>().ok())
        })
        .flatten();
    ensure(
        total
            .as_deref()
            .is_some_and(|t| t.parse::<u32>().is_ok_and(|n| n >= 6))
            && field("Tested:") == total
            && generated.is_some_and(|n| n > 100),
        format!("schemathesis did not test every operation:\n{report}"),
    )?;
    server.kill().await?;
    let _ = std::fs::remove_dir_all(&cli.state_dir);
    sim.shutdown().await?;
    Ok(())
}
