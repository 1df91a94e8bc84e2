//! Reading a request: its path and query into a [`Route`], or an [`ApiError`] that says what
//! to change (a 4xx). Every input is bounded before it is used.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use realty_alerts::rules::AlertKind;
use realty_model::markets::check_market_key;
use realty_model::state::InterestKind;

/// Longest path read.
pub const MAX_PATH_BYTES: usize = 1_024;
/// Most query parameters read.
pub const MAX_QUERY_PARAMS: usize = 16;
/// Longest query value read: a market key (`after`, `market`) is the longest a value is.
pub const MAX_QUERY_VALUE_BYTES: usize = realty_model::listing::MAX_MARKET_KEY_BYTES;
/// Markets per page of `/markets` by default, and at most.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 200;
/// Days of `/history` by default, and at most per period.
pub const DEFAULT_HISTORY_DAYS: i64 = 30;
pub const MAX_DAILY_HISTORY_DAYS: i64 = 366;
pub const MAX_HOURLY_HISTORY_DAYS: i64 = 14;
/// Listings per list of interest by default, and at most.
pub const DEFAULT_INTEREST_PAGE: usize = 10;
pub const MAX_INTEREST_PAGE: usize = 50;
/// Alerts per page by default, and at most.
pub const DEFAULT_ALERT_PAGE: usize = 20;
pub const MAX_ALERT_PAGE: usize = 100;

/// A request as the API sees it, whatever carried it (API Gateway, `realty serve`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
}

/// Daily or hourly snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Hour,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the dashboard page.
    Page,
    /// `GET /assets/{file}`: the page's scripts and styles.
    Asset(String),
    /// `GET /openapi.json`
    Spec,
    /// `GET /markets?limit=&after=`: the watched markets with their headline figures.
    Markets { limit: usize, after: Option<String> },
    /// `GET /markets/{market}`: live figures, trends, the latest snapshots.
    Market { market: String },
    /// `GET /markets/{market}/history?period=day|hour&from=&to=`
    History {
        market: String,
        granularity: Granularity,
        /// Both `None`: the last [`DEFAULT_HISTORY_DAYS`] to the market's last event.
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    },
    /// `GET /markets/{market}/listings?kind=&limit=&after=`: a list of interest.
    Listings {
        market: String,
        kind: InterestKind,
        limit: usize,
        after: Option<String>,
    },
    /// `GET /alerts?market=&type=&limit=&before=`: the recent alerts.
    Alerts {
        market: Option<String>,
        kind: Option<AlertKind>,
        limit: usize,
        before: Option<String>,
    },
    /// `GET /health`: the last event per market, the last poll per source.
    Health,
}

/// A request the API refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
}

/// The route of a request.
pub fn route(request: &ApiRequest) -> Result<Route, ApiError> {
    check_bounds(request)?;
    // Decoded here whichever way the path came: API Gateway's HTTP API hands the function
    // the path decoded, `realty serve` as the client sent it.
    let path = percent_encoding::percent_decode_str(&request.path)
        .decode_utf8()
        .map_err(|_| ApiError::bad("a path that is UTF-8 once percent-decoded"))?;
    let mut segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    // A market outside the US is `country/city` (`ma/casablanca`): its two segments are one
    // key. No US key is two letters alone (it ends in `-` and its state), so this reads no
    // other path differently.
    let joined;
    if let ["markets", country, city, ..] = segments.as_slice()
        && country.len() == 2
        && country.bytes().all(|b| b.is_ascii_lowercase())
    {
        joined = format!("{country}/{city}");
        segments.splice(1..3, [joined.as_str()]);
    }
    let route = route_of(&segments, request)?;
    check_known_params(&route, &request.query)?;
    Ok(route)
}

/// Refuses a request before its path is read: a method other than GET or HEAD (whatever
/// else the request holds), then a path or query over its bounds.
fn check_bounds(request: &ApiRequest) -> Result<(), ApiError> {
    if request.method != "GET" && request.method != "HEAD" {
        return Err(ApiError::new(
            405,
            format!(
                "{} is not allowed: the API is read only (GET)",
                truncate(&request.method)
            ),
        ));
    }
    if request.path.len() > MAX_PATH_BYTES {
        return Err(ApiError::bad(format!(
            "a path of at most {MAX_PATH_BYTES} bytes"
        )));
    }
    if request.query.len() > MAX_QUERY_PARAMS {
        return Err(ApiError::bad(format!(
            "{} query parameters: at most {MAX_QUERY_PARAMS}",
            request.query.len()
        )));
    }
    if let Some((name, _)) = request
        .query
        .iter()
        .find(|(k, v)| k.len() > MAX_QUERY_VALUE_BYTES || v.len() > MAX_QUERY_VALUE_BYTES)
    {
        return Err(ApiError::bad(format!(
            "query parameter {:?} is over {MAX_QUERY_VALUE_BYTES} bytes",
            truncate(name)
        )));
    }
    Ok(())
}

/// The route `segments` (the decoded path's, a foreign market's two as one) name, with its
/// query read; a 404 when they name none.
fn route_of(segments: &[&str], request: &ApiRequest) -> Result<Route, ApiError> {
    let query = &request.query;
    Ok(match segments {
        [] | [""] => Route::Page,
        ["assets", file] => Route::Asset((*file).to_owned()),
        ["openapi.json"] => Route::Spec,
        ["health"] => Route::Health,
        ["alerts"] => alerts_route(query)?,
        ["markets", market, "listings"] => listings_route(market, query)?,
        ["markets"] => Route::Markets {
            limit: limit(query)?,
            after: query.get("after").map(|a| market_key(a)).transpose()?,
        },
        ["markets", market] => Route::Market {
            market: market_key(market)?,
        },
        ["markets", market, "history"] => history_route(market, query)?,
        _ => {
            return Err(ApiError::new(
                404,
                format!("no such resource: {}", truncate(&request.path)),
            ));
        }
    })
}

/// `/alerts`, its query read in order: `market`, `type`, `limit`, `before`.
fn alerts_route(query: &BTreeMap<String, String>) -> Result<Route, ApiError> {
    Ok(Route::Alerts {
        market: query.get("market").map(|m| market_key(m)).transpose()?,
        kind: query
            .get("type")
            .map(|t| {
                AlertKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == t)
                    .ok_or_else(|| {
                        ApiError::bad(format!(
                            "type {:?}: price_drop, price_cut, undervalued, back_on_market, new_listing or anomaly",
                            truncate(t)
                        ))
                    })
            })
            .transpose()?,
        limit: page_size(query, DEFAULT_ALERT_PAGE, MAX_ALERT_PAGE)?,
        before: query.get("before").map(|t| alert_token(t)).transpose()?,
    })
}

/// `/markets/{market}/listings`: `kind` is required, and only the price cuts page on.
fn listings_route(market: &str, query: &BTreeMap<String, String>) -> Result<Route, ApiError> {
    let kind = match query.get("kind") {
        Some(k) => InterestKind::parse(k).ok_or_else(|| {
            ApiError::bad(format!(
                "kind {:?}: price_cut, undervalued or anomalous",
                truncate(k)
            ))
        })?,
        None => {
            return Err(ApiError::bad(
                "kind is required: price_cut, undervalued or anomalous",
            ));
        }
    };
    let after = query.get("after");
    if after.is_some() && kind != InterestKind::PriceCut {
        return Err(ApiError::bad(format!(
            "after pages the price cuts only: the {} list is one page",
            kind.as_str()
        )));
    }
    Ok(Route::Listings {
        market: market_key(market)?,
        kind,
        limit: page_size(query, DEFAULT_INTEREST_PAGE, MAX_INTEREST_PAGE)?,
        after: after.map(|t| cut_token(t)).transpose()?,
    })
}

/// `/markets/{market}/history`: its period, and its range when both ends are given.
fn history_route(market: &str, query: &BTreeMap<String, String>) -> Result<Route, ApiError> {
    let granularity = match query.get("period").map(String::as_str) {
        None | Some("day") => Granularity::Day,
        Some("hour") => Granularity::Hour,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "period {:?}: day or hour",
                truncate(other)
            )));
        }
    };
    let from = date(query, "from")?;
    let to = date(query, "to")?;
    if let (Some(f), Some(t)) = (from, to) {
        history_range(granularity, Some(f), Some(t), t)?;
    }
    Ok(Route::History {
        market: market_key(market)?,
        granularity,
        from,
        to,
    })
}

/// Refuses a query parameter `route` does not take.
fn check_known_params(route: &Route, query: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let known: &[&str] = match route {
        Route::Markets { .. } => &["limit", "after"],
        Route::History { .. } => &["period", "from", "to"],
        Route::Listings { .. } => &["kind", "limit", "after"],
        Route::Alerts { .. } => &["market", "type", "limit", "before"],
        _ => &[],
    };
    if let Some(name) = query.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad(if known.is_empty() {
            format!(
                "unknown query parameter {:?}: this resource takes none",
                truncate(name)
            )
        } else {
            format!(
                "unknown query parameter {:?}: this resource takes {}",
                truncate(name),
                known.join(", ")
            )
        }));
    }
    Ok(())
}

/// The days a history covers: `to` defaults to `today` (the market's last event), `from`
/// to [`DEFAULT_HISTORY_DAYS`] before `to`, or as many as the period allows when fewer
/// (hourly: [`MAX_HOURLY_HISTORY_DAYS`]); a range that runs backwards or past its
/// period's limit is refused.
pub fn history_range(
    granularity: Granularity,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let most = match granularity {
        Granularity::Day => MAX_DAILY_HISTORY_DAYS,
        Granularity::Hour => MAX_HOURLY_HISTORY_DAYS,
    };
    let to = to.unwrap_or(today);
    let from = match from {
        Some(from) => from,
        // `to` is a four-digit year (see `date`) or the market's own day, so this only fails
        // at the edge of chrono's calendar; refused rather than trusted to never happen.
        None => to
            .checked_sub_days(chrono::Days::new(
                DEFAULT_HISTORY_DAYS.min(most).unsigned_abs() - 1,
            ))
            .ok_or_else(|| ApiError::bad(format!("to {to}: too early for a history")))?,
    };
    if from > to {
        return Err(ApiError::bad(format!(
            "from {from} is after to {to} (without `to`: the market's last event)"
        )));
    }
    let days = (to - from).num_days() + 1;
    if days > most {
        return Err(ApiError::bad(format!(
            "{days} days asked: at most {most} of {} history at once",
            if granularity == Granularity::Day {
                "daily"
            } else {
                "hourly"
            }
        )));
    }
    Ok((from, to))
}

fn truncate(text: &str) -> String {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn market_key(text: &str) -> Result<String, ApiError> {
    check_market_key(text).map_err(ApiError::bad)?;
    Ok(text.to_owned())
}

fn limit(query: &BTreeMap<String, String>) -> Result<usize, ApiError> {
    page_size(query, DEFAULT_PAGE, MAX_PAGE)
}

fn page_size(
    query: &BTreeMap<String, String>,
    default: usize,
    most: usize,
) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=most).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(format!(
                "limit {:?}: a whole number from 1 to {most}",
                truncate(text)
            ))),
        },
    }
}

/// A position in time order: `2026-11-21T18:02:11Z#` and 16 hex digits.
fn is_position(text: &str) -> bool {
    let Some((at, hash)) = text.split_once('#') else {
        return false;
    };
    chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%SZ").is_ok()
        && at.len() == 20
        && hash.len() == 16
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A page token of the alerts (the `next` of a page: a position).
fn alert_token(text: &str) -> Result<String, ApiError> {
    if is_position(text) {
        Ok(text.to_owned())
    } else {
        Err(ApiError::bad(format!(
            "before {:?} is not a page token: pass the `next` of the previous page",
            truncate(text)
        )))
    }
}

/// A page token of the price cuts (the `next` of a page).
fn cut_token(text: &str) -> Result<String, ApiError> {
    match text.strip_prefix(&InterestKind::PriceCut.prefix()) {
        Some(position) if is_position(position) => Ok(text.to_owned()),
        _ => Err(ApiError::bad(format!(
            "after {:?} is not a page token: pass the `next` of the previous page",
            truncate(text)
        ))),
    }
}

fn date(query: &BTreeMap<String, String>, name: &str) -> Result<Option<NaiveDate>, ApiError> {
    query
        .get(name)
        .map(|text| {
            let refused = || {
                ApiError::bad(format!(
                    "{name} {:?}: a date such as 2026-11-23",
                    truncate(text)
                ))
            };
            // RFC 3339's full-date (what the spec's `format: date` means): four digits of
            // year, where chrono's `%Y` also takes a sign and more digits.
            let shaped = text.len() == 10 && text.as_bytes()[..4].iter().all(u8::is_ascii_digit);
            if !shaped {
                return Err(refused());
            }
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| refused())
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, query: &[(&str, &str)]) -> Result<Route, ApiError> {
        route(&ApiRequest {
            method: "GET".into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    #[test]
    fn reads_every_route() {
        assert_eq!(get("/openapi.json", &[]), Ok(Route::Spec));
        assert_eq!(get("/", &[]), Ok(Route::Page));
        assert_eq!(
            get("/assets/app.js", &[]),
            Ok(Route::Asset("app.js".into()))
        );
        assert_eq!(get("/health/", &[]), Ok(Route::Health));
        assert_eq!(
            get("/markets", &[("limit", "10"), ("after", "nashville-tn")]),
            Ok(Route::Markets {
                limit: 10,
                after: Some("nashville-tn".into())
            })
        );
        assert_eq!(
            get("/markets/nashville-tn", &[]),
            Ok(Route::Market {
                market: "nashville-tn".into()
            })
        );
        assert_eq!(
            get(
                "/markets/nashville-tn/history",
                &[
                    ("period", "hour"),
                    ("from", "2026-11-01"),
                    ("to", "2026-11-14")
                ]
            ),
            Ok(Route::History {
                market: "nashville-tn".into(),
                granularity: Granularity::Hour,
                from: NaiveDate::from_ymd_opt(2026, 11, 1),
                to: NaiveDate::from_ymd_opt(2026, 11, 14),
            })
        );
    }

    /// A market outside the US (`ma/casablanca`) is read at its two segments, or at one with
    /// the `/` percent-encoded (what `encodeURIComponent` sends; API Gateway's HTTP API
    /// decodes it before the function sees it).
    #[test]
    fn a_market_outside_the_us_is_read_at_its_country_and_city() {
        let market = || Route::Market {
            market: "ma/casablanca".into(),
        };
        assert_eq!(get("/markets/ma/casablanca", &[]), Ok(market()));
        assert_eq!(get("/markets/ma%2Fcasablanca", &[]), Ok(market()));
        assert_eq!(get("/markets/ma%2fcasablanca/", &[]), Ok(market()));
        for path in [
            "/markets/ma/casablanca/history",
            "/markets/ma%2Fcasablanca/history",
        ] {
            assert_eq!(
                get(path, &[]),
                Ok(Route::History {
                    market: "ma/casablanca".into(),
                    granularity: Granularity::Day,
                    from: None,
                    to: None,
                }),
                "{path}"
            );
        }
        assert_eq!(
            get("/markets/ma/casablanca/listings", &[("kind", "price_cut")]),
            Ok(Route::Listings {
                market: "ma/casablanca".into(),
                kind: InterestKind::PriceCut,
                limit: DEFAULT_INTEREST_PAGE,
                after: None,
            })
        );
        assert_eq!(
            get("/markets", &[("after", "ma/casablanca")]),
            Ok(Route::Markets {
                limit: DEFAULT_PAGE,
                after: Some("ma/casablanca".into())
            })
        );
        // US keys as before; a country alone, a city not spelled as its key and a path that
        // is not UTF-8 once decoded are refused.
        assert_eq!(
            get("/markets/nashville-tn", &[]),
            Ok(Route::Market {
                market: "nashville-tn".into()
            })
        );
        for path in [
            "/markets/ma",
            "/markets/ma/Casablanca",
            "/markets/ma/casa%20blanca",
            "/markets/%FF",
        ] {
            assert_eq!(get(path, &[]).map_err(|e| e.status), Err(400), "{path}");
        }
        assert_eq!(
            get("/markets/ma/casablanca/rents", &[]).map_err(|e| e.status),
            Err(404)
        );
    }

    #[test]
    fn bad_input_is_a_4xx_that_says_what_to_change() {
        let status = |r: Result<Route, ApiError>| r.expect_err("refused").status;
        assert_eq!(status(get("/nope", &[])), 404);
        assert_eq!(status(get("/markets/Nashville-TN", &[])), 400);
        assert_eq!(status(get("/markets/nashville", &[])), 400);
        assert_eq!(status(get("/markets", &[("limit", "0")])), 400);
        assert_eq!(status(get("/markets", &[("limit", "201")])), 400);
        assert_eq!(status(get("/markets", &[("after", "x")])), 400);
        assert_eq!(status(get("/markets", &[("", "false")])), 400);
        assert_eq!(status(get("/health", &[("verbose", "1")])), 400);
        assert_eq!(
            status(get(
                "/markets/nashville-tn/history",
                &[("from", "2026-13-01")]
            )),
            400
        );
        assert_eq!(
            status(get(
                "/markets/nashville-tn/history",
                &[("from", "2026-11-02"), ("to", "2026-11-01")]
            )),
            400
        );
        assert_eq!(
            status(get("/markets/nashville-tn/history", &[("period", "week")])),
            400
        );
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        assert_eq!(status(get(&format!("/{long}"), &[])), 400);
        let value = "x".repeat(MAX_QUERY_VALUE_BYTES + 1);
        assert_eq!(status(get("/markets", &[("after", value.as_str())])), 400);
        // The longest market key `realty markets add` takes (a city at its bound) pages on,
        // and names a market's alerts.
        let key = format!("ma/{}", "a".repeat(realty_model::listing::MAX_CITY_BYTES));
        assert!(check_market_key(&key).is_ok());
        assert!(get("/markets", &[("after", key.as_str())]).is_ok());
        assert!(get("/alerts", &[("market", key.as_str())]).is_ok());
        let post = route(&ApiRequest {
            method: "POST".into(),
            path: "/markets".into(),
            query: BTreeMap::new(),
        });
        assert_eq!(status(post), 405);
    }

    /// Without `from`, each period covers what it may: the 30 days of a daily history, the
    /// 14 of an hourly one (30 would be refused by its own limit).
    #[test]
    fn history_ranges_default_within_their_period() {
        let to = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        for (granularity, days) in [
            (Granularity::Day, DEFAULT_HISTORY_DAYS),
            (Granularity::Hour, MAX_HOURLY_HISTORY_DAYS),
        ] {
            for asked in [None, Some(to)] {
                let (from, until) = history_range(granularity, None, asked, to).unwrap();
                assert_eq!((until - from).num_days() + 1, days, "{granularity:?}");
                assert_eq!(until, to);
            }
        }
    }

    #[test]
    fn history_ranges_stop_at_their_limit() {
        let range = |period: &str, days: i64| {
            let from = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            let to = from + chrono::TimeDelta::days(days - 1);
            get(
                "/markets/nashville-tn/history",
                &[
                    ("period", period),
                    ("from", &from.to_string()),
                    ("to", &to.to_string()),
                ],
            )
        };
        assert!(range("day", MAX_DAILY_HISTORY_DAYS).is_ok());
        assert_eq!(
            range("day", MAX_DAILY_HISTORY_DAYS + 1).unwrap_err().status,
            400
        );
        assert!(range("hour", MAX_HOURLY_HISTORY_DAYS).is_ok());
        assert_eq!(
            range("hour", MAX_HOURLY_HISTORY_DAYS + 1)
                .unwrap_err()
                .status,
            400
        );
    }

    /// A date is RFC 3339's full-date: chrono's `%Y` alone takes signed years of any
    /// length, and a history ending at the calendar's first day has no default start.
    #[test]
    fn dates_are_four_digit_years_and_histories_never_run_off_the_calendar() {
        let history = |to: &str| get("/markets/nashville-tn/history", &[("to", to)]);
        for refused in [
            "-262143-01-01",
            "+2026-11-23",
            "12026-11-23",
            "2026-1-23",
            "202-11-23",
        ] {
            assert_eq!(history(refused).unwrap_err().status, 400, "{refused}");
        }
        assert!(history("0000-01-01").is_ok());
        assert!(history("9999-12-31").is_ok());
        let first = NaiveDate::MIN;
        assert_eq!(
            history_range(Granularity::Day, None, Some(first), first)
                .unwrap_err()
                .status,
            400
        );
        let early = NaiveDate::from_ymd_opt(0, 1, 1).unwrap();
        assert_eq!(
            history_range(Granularity::Day, None, Some(early), early)
                .unwrap()
                .0,
            early - chrono::TimeDelta::days(DEFAULT_HISTORY_DAYS - 1)
        );
    }
}
