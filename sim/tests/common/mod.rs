//! A small HTTP/1.1 client and API readers for the simulator's tests.
//!
//! The client is written here (rather than pulled in) so the tests see exactly the bytes
//! the server sends: truncated bodies, missing headers, timeouts.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The `Host` every test request sends, so absolute links are the same across servers.
pub const HOST: &str = "sim.test";
pub const RESO_TOKEN: &str = "test-token";

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

#[derive(Debug)]
pub enum ClientError {
    Io(std::io::Error),
    Timeout,
    BadResponse(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "io: {e}"),
            Self::Timeout => write!(f, "timed out"),
            Self::BadResponse(why) => write!(f, "bad response: {why}"),
        }
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, ClientError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(ClientError::Io)?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(ClientError::Io)?;
        stream.write_all(body).await.map_err(ClientError::Io)?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(ClientError::Io)?;
        parse_response(&raw)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ClientError::Timeout)?
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, ClientError> {
    let bad = |why: &str| ClientError::BadResponse(why.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status code"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest).ok_or_else(|| bad("broken chunked body"))?
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < length {
            return Err(bad("body shorter than Content-Length"));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Why a call did not produce a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Status(u16),
    NotJson,
    Transport(String),
}

/// A listing-API client. With `retries`, it retries what a careful client retries:
/// timeouts, 429 (after `Retry-After`, capped so tests stay fast), 5xx and bodies that are
/// not JSON.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub timeout: Duration,
    pub retries: u32,
}

impl Client {
    pub fn naive(addr: SocketAddr) -> Self {
        Self {
            addr,
            timeout: Duration::from_secs(30),
            retries: 0,
        }
    }

    pub fn careful(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            retries: 12,
        }
    }

    pub async fn call(&self, method: &str, target: &str, body: &[u8]) -> Result<Value, Failure> {
        let mut attempt = 0;
        loop {
            let result = self.once(method, target, body).await;
            match result {
                Ok(value) => return Ok(value),
                Err(failure) if attempt < self.retries => {
                    attempt += 1;
                    let wait = match &failure {
                        Failure::Status(429) => Duration::from_millis(20),
                        _ => Duration::from_millis(2),
                    };
                    tokio::time::sleep(wait).await;
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    async fn once(&self, method: &str, target: &str, body: &[u8]) -> Result<Value, Failure> {
        let mut headers = vec![("Content-Type", "application/json")];
        let auth = format!("Bearer {RESO_TOKEN}");
        if target.starts_with("/reso/") {
            headers.push(("Authorization", auth.as_str()));
        }
        let response = send(self.addr, method, target, &headers, body, self.timeout)
            .await
            .map_err(|e| match e {
                ClientError::Timeout => Failure::Timeout,
                other => Failure::Transport(other.to_string()),
            })?;
        if response.status != 200 {
            return Err(Failure::Status(response.status));
        }
        response.json().map_err(|_| Failure::NotJson)
    }

    pub async fn get(&self, target: &str) -> Result<Value, Failure> {
        self.call("GET", target, b"").await
    }

    pub async fn post(&self, target: &str, body: &Value) -> Result<Value, Failure> {
        self.call("POST", target, body.to_string().as_bytes()).await
    }
}

/// What a reader saw of one listing: its price and status (`active`, `pending`, `sold`,
/// `withdrawn`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub price: u64,
    pub status: String,
}

/// Source id -> what was seen.
pub type Snapshot = BTreeMap<String, Seen>;

/// How a paged read went.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadStats {
    pub requests: u32,
    /// Pages re-read because their listings did not add up to the stated total.
    pub restarts: u32,
}

/// Whether a naive reader's pages added up: no duplicates, as many as the stated total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagingCheck {
    pub total: usize,
    pub rows: usize,
    pub unique: usize,
}

impl PagingCheck {
    pub fn consistent(&self) -> bool {
        self.rows == self.total && self.unique == self.total
    }
}

pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn zillow_target(location: &str, min: u64, max: Option<u64>, page: u32) -> String {
    let mut target = format!(
        "/propertyExtendedSearch?location={}&page={page}&status_type=ForSale&minPrice={min}",
        percent_encode(location)
    );
    if let Some(max) = max {
        target.push_str(&format!("&maxPrice={max}"));
    }
    target
}

fn zillow_seen(prop: &Value) -> Option<(String, Seen)> {
    let zpid = prop["zpid"].as_str()?.to_owned();
    let status = match prop["listingStatus"].as_str()? {
        "FOR_SALE" => "active",
        "PENDING" => "pending",
        _ => return None,
    };
    Some((
        zpid,
        Seen {
            price: prop["price"].as_u64()?,
            status: status.to_owned(),
        },
    ))
}

/// Reads pages 1..=totalPages of one Zillow query as a naive client would, returning the
/// props of every page and how they added up.
pub async fn zillow_pages(
    client: &Client,
    location: &str,
    min: u64,
    max: Option<u64>,
) -> Result<(Vec<Value>, PagingCheck), Failure> {
    let first = client.get(&zillow_target(location, min, max, 1)).await?;
    let total = first["totalResultCount"].as_u64().unwrap_or(0) as usize;
    let pages = first["totalPages"].as_u64().unwrap_or(0) as u32;
    let mut props: Vec<Value> = first["props"].as_array().cloned().unwrap_or_default();
    for page in 2..=pages {
        let next = client.get(&zillow_target(location, min, max, page)).await?;
        props.extend(next["props"].as_array().cloned().unwrap_or_default());
    }
    let unique: std::collections::BTreeSet<&str> =
        props.iter().filter_map(|p| p["zpid"].as_str()).collect();
    let check = PagingCheck {
        total,
        rows: props.len(),
        unique: unique.len(),
    };
    Ok((props, check))
}

/// Every for-sale listing of a Zillow location, splitting the price range until each band
/// fits in 20 pages and re-reading a band whose pages do not add up.
pub async fn zillow_for_sale(
    client: &Client,
    location: &str,
    stats: &mut ReadStats,
) -> Result<Snapshot, String> {
    let mut snapshot = Snapshot::new();
    let mut bands = vec![(0u64, None::<u64>)];
    while let Some((min, max)) = bands.pop() {
        let mut restarts = 0;
        loop {
            let first = client
                .get(&zillow_target(location, min, max, 1))
                .await
                .map_err(|f| format!("{location} {min}-{max:?}: {f:?}"))?;
            stats.requests += 1;
            let total = first["totalResultCount"].as_u64().unwrap_or(0);
            if total > 20 * 41 {
                let cut = match max {
                    None => (min * 2).max(500_000),
                    Some(max) => min + (max - min) / 2,
                };
                bands.push((min, Some(cut)));
                bands.push((cut + 1, max));
                break;
            }
            let (props, check) = zillow_pages(client, location, min, max)
                .await
                .map_err(|f| format!("{location} {min}-{max:?}: {f:?}"))?;
            stats.requests += check.total.div_ceil(41) as u32;
            if check.consistent() {
                for prop in &props {
                    let (id, seen) = zillow_seen(prop).ok_or("unreadable prop")?;
                    snapshot.insert(id, seen);
                }
                break;
            }
            restarts += 1;
            stats.restarts += 1;
            if restarts > 10 {
                return Err(format!("{location}: pages never added up: {check:?}"));
            }
        }
    }
    Ok(snapshot)
}

fn realtor_seen(result: &Value) -> Option<(String, Seen)> {
    let id = result["property_id"].as_str()?.to_owned();
    let under_contract =
        result["flags"]["is_pending"] == true || result["flags"]["is_contingent"] == true;
    let status = match (result["status"].as_str()?, under_contract) {
        ("for_sale", true) => "pending",
        ("for_sale", false) => "active",
        ("sold", _) => "sold",
        ("off_market", _) => "withdrawn",
        _ => return None,
    };
    Some((
        id,
        Seen {
            price: result["list_price"].as_u64()?,
            status: status.to_owned(),
        },
    ))
}

/// Reads every offset of one Realtor.com search as a naive client would.
pub async fn realtor_pages(
    client: &Client,
    city: &str,
    state_code: &str,
    limit: u64,
) -> Result<(Vec<Value>, PagingCheck), Failure> {
    let mut results: Vec<Value> = Vec::new();
    let mut offset = 0u64;
    let mut total;
    loop {
        let body = json!({"city": city, "state_code": state_code, "status": ["for_sale"],
            "limit": limit, "offset": offset, "sort": {"field": "list_date", "direction": "desc"}});
        let page = client.post("/properties/v3/list", &body).await?;
        let search = &page["data"]["home_search"];
        total = search["total"].as_u64().unwrap_or(0);
        let rows = search["results"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            break;
        }
        offset += rows.len() as u64;
        results.extend(rows);
        if offset >= total {
            break;
        }
    }
    let unique: std::collections::BTreeSet<&str> = results
        .iter()
        .filter_map(|r| r["property_id"].as_str())
        .collect();
    let check = PagingCheck {
        total: total as usize,
        rows: results.len(),
        unique: unique.len(),
    };
    Ok((results, check))
}

/// Every for-sale listing of a Realtor.com city, re-reading when the pages do not add up.
pub async fn realtor_for_sale(
    client: &Client,
    city: &str,
    state_code: &str,
    stats: &mut ReadStats,
) -> Result<Snapshot, String> {
    for _ in 0..10 {
        let (results, check) = realtor_pages(client, city, state_code, 200)
            .await
            .map_err(|f| format!("{city}: {f:?}"))?;
        stats.requests += check.total.div_ceil(200) as u32;
        if check.consistent() {
            return results
                .iter()
                .map(|r| realtor_seen(r).ok_or_else(|| "unreadable result".to_owned()))
                .collect();
        }
        stats.restarts += 1;
    }
    Err(format!("{city}: pages never added up"))
}

/// The target of an absolute OData link on the simulator.
pub fn link_target(link: &str) -> String {
    let without_scheme = link.split_once("://").map_or(link, |(_, rest)| rest);
    without_scheme
        .find('/')
        .map_or_else(|| "/".to_owned(), |at| without_scheme[at..].to_owned())
}

/// Every record of a RESO sync (all of it, or modified after `since`), following
/// `@odata.nextLink`; checks the records add up to `@odata.count`.
pub async fn reso_sync(
    client: &Client,
    since: Option<&str>,
    stats: &mut ReadStats,
) -> Result<Snapshot, String> {
    let mut target =
        "/reso/odata/Property?$top=700&$count=true&$orderby=ModificationTimestamp".to_owned();
    if let Some(since) = since {
        target.push_str(&format!(
            "&$filter={}",
            percent_encode(&format!("ModificationTimestamp gt {since}"))
        ));
    }
    let mut snapshot = Snapshot::new();
    let mut rows = 0;
    let mut count = None;
    loop {
        let page = client
            .get(&target)
            .await
            .map_err(|f| format!("RESO: {f:?}"))?;
        stats.requests += 1;
        count = count.or(page["@odata.count"].as_u64());
        for record in page["value"].as_array().cloned().unwrap_or_default() {
            rows += 1;
            let status = match record["StandardStatus"].as_str() {
                Some("Active") => "active",
                Some("Pending") => "pending",
                Some("Closed") => "sold",
                Some("Withdrawn") => "withdrawn",
                other => return Err(format!("unknown StandardStatus {other:?}")),
            };
            let key = record["ListingKey"]
                .as_str()
                .ok_or("no ListingKey")?
                .to_owned();
            let price = record["ListPrice"].as_u64().ok_or("no ListPrice")?;
            snapshot.insert(
                key,
                Seen {
                    price,
                    status: status.to_owned(),
                },
            );
        }
        match page["@odata.nextLink"].as_str() {
            Some(link) => target = link_target(link),
            None => break,
        }
    }
    if Some(rows as u64) != count || snapshot.len() != rows {
        return Err(format!(
            "RESO: {rows} rows, {} unique, count {count:?}",
            snapshot.len()
        ));
    }
    Ok(snapshot)
}
