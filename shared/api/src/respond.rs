//! A request in, a response out: the route, the view, the status. Bad input is a 4xx with
//! a message; a store that cannot be read is a 503 (retry), never a 500.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::OPENAPI;
use super::dashboard::ASSETS;
use super::lists::{listings_of_interest, recent_alerts};
use super::routes::{ApiError, ApiRequest, Granularity, Route, history_range, route};
use super::views::{health, history, market_list, market_report, scope_of};
use realty_metrics::reader::MarketReader;
use realty_model::markets::ConfigStore;
use realty_model::markets::month_of;
use realty_model::ports::PortError;

/// What the API answers: a status, the body's media type (JSON but for the page and its
/// assets) and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// The media type of the API's answers.
pub const JSON: &str = "application/json; charset=utf-8";
/// The methods the API answers (the `Allow` header of a 405).
pub const ALLOWED_METHODS: &str = "GET, HEAD";
/// Most watched markets `GET /alerts` reads without a `market` (a Query per market and
/// alert type: 300 at most); a stack watching more asks for its alerts market by market.
pub const MAX_UNSCOPED_FEED_MARKETS: usize = 50;

/// The body of every error: `{"error": "..."}`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// What the dashboard page may load and do: its own scripts, styles and images, requests to
/// the API it came from, nothing inline, no frame around it. It keeps the bearer token in the
/// browser, so a script that got in could not send the token anywhere else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

impl ApiResponse {
    /// The `Allow` header the answer needs: a 405 names the methods the API answers.
    pub fn allow(&self) -> Option<&'static str> {
        (self.status == 405).then_some(ALLOWED_METHODS)
    }

    /// Every header of the answer, as the Lambda function and `realty serve` both send them:
    /// its media type (never sniffed), no cache (the figures change by the minute, and the
    /// page must not outlive a new deployment), no referrer sent to the listings' sites, the
    /// page's [`CONTENT_SECURITY_POLICY`], and `Allow` on a 405.
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        let mut headers = vec![
            ("content-type", self.content_type),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("content-security-policy", CONTENT_SECURITY_POLICY),
        ];
        if let Some(allow) = self.allow() {
            headers.push(("allow", allow));
        }
        headers
    }

    fn json(value: &impl Serialize) -> Self {
        match serde_json::to_string(value) {
            Ok(body) => Self {
                status: 200,
                content_type: JSON,
                body,
            },
            Err(e) => Self::error(&ApiError::new(
                500,
                format!("cannot encode the answer: {e}"),
            )),
        }
    }

    fn error(e: &ApiError) -> Self {
        let body = serde_json::to_string(&ErrorBody { error: &e.message })
            .unwrap_or_else(|_| r#"{"error":"unknown"}"#.to_owned());
        Self {
            status: e.status,
            content_type: JSON,
            body,
        }
    }

    fn unavailable(e: &PortError) -> Self {
        tracing::error!(error = %e, "a store cannot be read");
        Self::error(&ApiError::new(
            503,
            format!(
                "the stores cannot be read just now ({}): retry shortly",
                e.operation
            ),
        ))
    }
}

/// Answers one request.
pub async fn respond(
    markets: &impl MarketReader,
    config: &impl ConfigStore,
    request: &ApiRequest,
    now: DateTime<Utc>,
) -> ApiResponse {
    let route = match route(request) {
        Ok(r) => r,
        Err(e) => return ApiResponse::error(&e),
    };
    let answer = match route {
        Route::Spec => {
            return ApiResponse {
                status: 200,
                content_type: JSON,
                body: OPENAPI.to_owned(),
            };
        }
        Route::Page => return asset("index.html"),
        Route::Asset(name) => return asset(&name),
        Route::Markets { limit, after } => match config.load(&month_of(now)).await {
            Ok(snapshot) => market_list(markets, &snapshot, limit, after.as_deref())
                .await
                .map(|l| ApiResponse::json(&l)),
            Err(e) => Err(e),
        },
        Route::Listings {
            market,
            kind,
            limit,
            after,
        } => match listings_of_interest(markets, &market, kind, limit, after.as_deref(), now).await
        {
            Ok(Some(list)) => Ok(ApiResponse::json(&list)),
            Ok(None) => Ok(no_figures(&market)),
            Err(e) => Err(e),
        },
        Route::Alerts {
            market,
            kind,
            limit,
            before,
        } => match watched_markets(config, market, now).await {
            // A feed across every market is a Query per market and type: bounded, so that
            // no request can make thousands of them.
            Ok(list) if list.len() > MAX_UNSCOPED_FEED_MARKETS => {
                return too_many_markets(list.len());
            }
            Ok(list) => recent_alerts(markets, &list, kind, limit, before.as_deref(), now)
                .await
                .map(|f| ApiResponse::json(&f)),
            Err(e) => Err(e),
        },
        Route::Health => config
            .load(&month_of(now))
            .await
            .map(|snapshot| ApiResponse::json(&health(&snapshot, now))),
        Route::Market { market } => match market_report(markets, &market).await {
            Ok(Some(report)) => Ok(ApiResponse::json(&report)),
            Ok(None) => Ok(no_figures(&market)),
            Err(e) => Err(e),
        },
        Route::History {
            market,
            granularity,
            from,
            to,
        } => history_answer(markets, &market, granularity, from, to, now).await,
    };
    answer.unwrap_or_else(|e| ApiResponse::unavailable(&e))
}

/// The markets whose alerts `GET /alerts` reads: the one it names, or every watched one.
async fn watched_markets(
    config: &impl ConfigStore,
    market: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, PortError> {
    match market {
        Some(m) => Ok(vec![m]),
        None => config
            .load(&month_of(now))
            .await
            .map(|s| s.markets.into_iter().map(|m| m.market).collect()),
    }
}

/// The 400 of an alert feed across more than [`MAX_UNSCOPED_FEED_MARKETS`] markets.
fn too_many_markets(watched: usize) -> ApiResponse {
    ApiResponse::error(&ApiError::new(
        400,
        format!(
            "name a market (market=...): the alerts of all {watched} watched markets are not read at once (at most {MAX_UNSCOPED_FEED_MARKETS})"
        ),
    ))
}

/// A market's history over the range asked, its default end the market's last event; a
/// range refused is a 4xx, a market without figures a 404.
async fn history_answer(
    markets: &impl MarketReader,
    market: &str,
    granularity: Granularity,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<ApiResponse, PortError> {
    match markets.live(&scope_of(market)).await {
        Ok(Some(live)) => {
            let today = live.as_of.unwrap_or(now).date_naive();
            match history_range(granularity, from, to, today) {
                Ok((from, to)) => history(markets, market, granularity, from, to)
                    .await
                    .map(|h| ApiResponse::json(&h)),
                Err(e) => Ok(ApiResponse::error(&e)),
            }
        }
        Ok(None) => Ok(no_figures(market)),
        Err(e) => Err(e),
    }
}

/// One of the dashboard's files, or a 404.
fn asset(name: &str) -> ApiResponse {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => ApiResponse {
            status: 200,
            content_type: a.content_type,
            body: a.body.to_owned(),
        },
        None => ApiResponse::error(&ApiError::new(404, "no such asset")),
    }
}

fn no_figures(market: &str) -> ApiResponse {
    ApiResponse::error(&ApiError::new(
        404,
        format!(
            "no figures for market {market}: markets appear once their listings have been polled (`realty markets list` shows the watched ones)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use realty_metrics::memory::MemoryStores;
    use realty_model::markets::MemoryConfigStore;
    use realty_model::markets::WatchedMarket;

    fn market(key: &str, sources: &[&str], minutes: u32) -> WatchedMarket {
        WatchedMarket::new(key, sources, minutes)
    }

    /// A stack watching `count` markets.
    async fn watching(count: usize) -> MemoryConfigStore {
        let config = MemoryConfigStore::default();
        for i in 0..count {
            let market = market(&format!("city{i}-tn"), &["zillow"], 15);
            config.put_market(&market).await.expect("put");
        }
        config
    }

    fn alerts(query: &[(&str, &str)]) -> ApiRequest {
        ApiRequest {
            method: "GET".into(),
            path: "/alerts".into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// The alerts of every watched market are read at once up to the bound; past it the
    /// request names what to ask instead, and a market's own alerts are still served.
    #[tokio::test]
    async fn an_alert_feed_across_too_many_markets_is_refused() {
        let stores = MemoryStores::default();
        let now = Utc::now();
        let at_bound = watching(MAX_UNSCOPED_FEED_MARKETS).await;
        let answer = respond(&stores, &at_bound, &alerts(&[]), now).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let past = watching(MAX_UNSCOPED_FEED_MARKETS + 1).await;
        let answer = respond(&stores, &past, &alerts(&[]), now).await;
        assert_eq!(answer.status, 400);
        assert!(answer.body.contains("name a market"), "{}", answer.body);
        let answer = respond(&stores, &past, &alerts(&[("market", "city3-tn")]), now).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}
