//! Readers of the listing APIs as a poller reads them: paged Zillow and Realtor.com
//! searches and a RESO sync, naive or re-reading pages that do not add up.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::client::{Client, Failure};

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

/// What a query component percent-encodes: all but RFC 3986's unreserved characters.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, QUERY_COMPONENT).to_string()
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
    // The API requires a $filter: a full sync asks for everything modified since 1970.
    let filter = match since {
        Some(since) => format!("ModificationTimestamp gt {since}"),
        None => "ModificationTimestamp ge 1970-01-01T00:00:00Z".to_owned(),
    };
    let mut target = format!(
        "/reso/odata/Property?$filter={}&$top=700&$count=true&$orderby=ModificationTimestamp",
        percent_encode(&filter)
    );
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
