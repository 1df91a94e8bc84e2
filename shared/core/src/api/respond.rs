//! A request in, a response out: the route, the view, the status. Bad input is a 4xx with
//! a message; a store that cannot be read is a 503 (retry), never a 500.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::OPENAPI;
use super::dashboard::ASSETS;
use super::lists::{listings_of_interest, recent_alerts};
use super::ports::MarketReader;
use super::routes::{ApiError, ApiRequest, Route, history_range, route};
use super::views::{health, history, market_list, market_report, scope_of};
use crate::poller::markets::month_of;
use crate::poller::ports::ConfigStore;
use crate::ports::PortError;

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

/// The body of every error: `{"error": "..."}`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl ApiResponse {
    /// The `Allow` header the answer needs: a 405 names the methods the API answers.
    pub fn allow(&self) -> Option<&'static str> {
        (self.status == 405).then_some(ALLOWED_METHODS)
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
        } => match listings_of_interest(markets, &market, kind, limit, after.as_deref()).await {
            Ok(Some(list)) => Ok(ApiResponse::json(&list)),
            Ok(None) => Ok(no_figures(&market)),
            Err(e) => Err(e),
        },
        Route::Alerts {
            market,
            kind,
            limit,
            before,
        } => {
            let watched = match market {
                Some(m) => Ok(vec![m]),
                None => config
                    .load(&month_of(now))
                    .await
                    .map(|s| s.markets.into_iter().map(|m| m.market).collect()),
            };
            match watched {
                Ok(list) => recent_alerts(markets, &list, kind, limit, before.as_deref())
                    .await
                    .map(|f| ApiResponse::json(&f)),
                Err(e) => Err(e),
            }
        }
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
        } => match markets.live(&scope_of(&market)).await {
            Ok(Some(live)) => {
                let today = live.as_of.unwrap_or(now).date_naive();
                match history_range(granularity, from, to, today) {
                    Ok((from, to)) => history(markets, &market, granularity, from, to)
                        .await
                        .map(|h| ApiResponse::json(&h)),
                    Err(e) => Ok(ApiResponse::error(&e)),
                }
            }
            Ok(None) => Ok(no_figures(&market)),
            Err(e) => Err(e),
        },
    };
    answer.unwrap_or_else(|e| ApiResponse::unavailable(&e))
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
