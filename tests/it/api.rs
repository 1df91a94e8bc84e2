//! The market API as Lambda runs it, over a local stack the pipeline has filled (the poller
//! as Lambda builds it, the metrics function through the local event source mapping): each
//! market's answer equals what `realty report --json` prints for it, bad input through the
//! API Gateway event is a 4xx, and the authorizer admits the stack's token only.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::event::apigw::{
    ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest,
};
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use libtest_mimic::Failed;
use realty_aws::functions::api::{ApiAuthorizer, ApiFunction};
use realty_aws::functions::metrics::MetricsFunction;
use realty_core::poller::ports::SecretSource;
use realty_core::poller::run::PollRequest;
use realty_core::sources::SourceKind;
use realty_infra::runner::{FunctionError, Mapping, StreamFunction};
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{TestAws, ensure};
use serde_json::{Value, json};

use crate::demo::pump_until_quiet;
use crate::operations::{run, setup};

crate::async_tests!(the_api_answers_what_realty_report_says_and_only_to_its_token);

const MARKETS: [&str; 2] = ["nashville-tn", "syracuse-ny"];

struct Metrics(MetricsFunction);

impl StreamFunction for Metrics {
    type Event = KinesisEvent;
    type Response = KinesisEventResponse;

    async fn invoke(&self, event: KinesisEvent) -> Result<KinesisEventResponse, FunctionError> {
        Ok(Box::pin(self.0.handle(event)).await.0)
    }
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

async fn the_api_answers_what_realty_report_says_and_only_to_its_token(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let sim = SimServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimConfig {
            seed: 91,
            market: MarketConfig {
                markets: MARKETS.iter().map(|m| m.to_string()).collect(),
                listings_per_market: 150,
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
    let polled = poller
        .handle(&PollRequest::default(), sim.handle().now())
        .await;
    ensure(
        polled.failed_markets == 0 && polled.published > 0,
        format!("{polled:?}"),
    )?;
    let template = aws.template();
    let mut metrics = Mapping::new(
        &s.sdk,
        &template,
        &s.stack,
        "MetricsFunction",
        Metrics(MetricsFunction::new(&s.sdk, &s.resources)),
    )
    .await?;
    pump_until_quiet(&mut metrics).await?;

    let api = ApiFunction::new(&s.sdk, &s.resources);
    let now = chrono::Utc::now();
    let answer = |status: i64, body: Option<&aws_lambda_events::encodings::Body>| {
        let text = match body {
            Some(aws_lambda_events::encodings::Body::Text(t)) => t.clone(),
            _ => String::new(),
        };
        (status, text)
    };
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

    let authorizer = ApiAuthorizer::new(&s.sdk, &s.resources);
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
        .await;
    ensure(admitted.is_authorized, "the stack's token is refused")?;
    for wrong in [None, Some("Bearer nope"), Some(token.trim())] {
        let refused = authorizer.handle(&authorizer_event(wrong)?).await;
        ensure(!refused.is_authorized, format!("{wrong:?} admitted"))?;
    }
    let _ = std::fs::remove_dir_all(&cli.state_dir);
    sim.shutdown().await?;
    Ok(())
}
