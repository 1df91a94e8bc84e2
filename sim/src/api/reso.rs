//! RESO Web API (OData) `GET /reso/odata/Property`, with RESO Data Dictionary names.
//!
//! Every listing is served, closed and withdrawn ones included, as MLS replication feeds
//! do. `$filter` accepts `and`-joined comparisons (`eq ne gt ge lt le`) on
//! `ModificationTimestamp`, `City`, `StateOrProvince`, `PostalCode`, `StandardStatus`,
//! `PropertyType`, `OriginatingSystemName` and `ListPrice`, parentheses allowed, and is
//! required (a replication client names what it replicates; 400 without it); `$select`
//! keeps the fields named (any Data Dictionary name; those the simulator does not serve
//! are left out); requests need a token from [`super::reso_auth`]; `$orderby` only
//! `ModificationTimestamp` (ascending, the default); `$top` up to 5000 (default 100),
//! `$skip`, `$count=true`. `@odata.nextLink` repeats the query with the next `$skip` until
//! the last page. `DaysOnMarket` is computed at the current simulated time without a new
//! `ModificationTimestamp`, as real feeds let it go stale.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use super::{QueryPairs, Reply, percent_encode, query_value};
use crate::listing::{ListingStatus, SimListing};
use crate::market::{ListingRef, Market};
use crate::time_format;

pub(crate) const MAX_TOP: usize = 5_000;
const DEFAULT_TOP: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }

    fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Self::Eq => left == right,
            Self::Ne => left != right,
            Self::Gt => left > right,
            Self::Ge => left >= right,
            Self::Lt => left < right,
            Self::Le => left <= right,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextField {
    City,
    StateOrProvince,
    PostalCode,
    StandardStatus,
    PropertyType,
    OriginatingSystemName,
}

/// One comparison of a `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    Modified(Op, DateTime<Utc>),
    Text(TextField, Op, String),
    ListPrice(Op, f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

fn tokenize(filter: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = filter.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        // '' is an escaped quote.
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            text.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => text.push(other),
                    }
                }
                tokens.push(Token::Quoted(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Parses a `$filter`: comparisons joined by `and`, parentheses allowed.
pub(crate) fn parse_filter(filter: &str) -> Result<Vec<Clause>, String> {
    let tokens = tokenize(filter)?;
    let mut clauses = Vec::new();
    let mut position = 0;
    let mut depth = 0usize;
    let mut expect_term = true;
    while position < tokens.len() {
        match &tokens[position] {
            Token::Open if expect_term => {
                depth += 1;
                position += 1;
            }
            Token::Close if !expect_term && depth > 0 => {
                depth -= 1;
                position += 1;
            }
            Token::Word(word) if !expect_term && word.eq_ignore_ascii_case("and") => {
                expect_term = true;
                position += 1;
            }
            Token::Word(field) if expect_term => {
                let op = match tokens.get(position + 1) {
                    Some(Token::Word(op)) => Op::parse(&op.to_ascii_lowercase())
                        .ok_or_else(|| format!("unsupported operator {op:?}"))?,
                    _ => return Err(format!("expected an operator after {field}")),
                };
                let value = match tokens.get(position + 2) {
                    Some(Token::Word(v) | Token::Quoted(v)) => v.clone(),
                    _ => return Err(format!("expected a value after {field} {op:?}")),
                };
                clauses.push(clause(field, op, &value)?);
                position += 3;
                expect_term = false;
            }
            other => {
                return Err(format!(
                    "unexpected {other:?}: only comparisons joined by 'and' are supported"
                ));
            }
        }
    }
    if (expect_term && !clauses.is_empty()) || depth != 0 {
        return Err("incomplete $filter".into());
    }
    Ok(clauses)
}

fn clause(field: &str, op: Op, value: &str) -> Result<Clause, String> {
    let text = |f: TextField| {
        if matches!(op, Op::Eq | Op::Ne) {
            Ok(Clause::Text(f, op, value.to_owned()))
        } else {
            Err(format!("{field} supports only eq and ne"))
        }
    };
    match field {
        "ModificationTimestamp" => time_format::parse(value)
            .map(|t| Clause::Modified(op, t))
            .ok_or_else(|| format!("{value:?} is not a DateTimeOffset")),
        "ListPrice" => value
            .parse::<f64>()
            .map(|p| Clause::ListPrice(op, p))
            .map_err(|_| format!("{value:?} is not a number")),
        "City" => text(TextField::City),
        "StateOrProvince" => text(TextField::StateOrProvince),
        "PostalCode" => text(TextField::PostalCode),
        "StandardStatus" => text(TextField::StandardStatus),
        "PropertyType" => text(TextField::PropertyType),
        "OriginatingSystemName" => text(TextField::OriginatingSystemName),
        other => Err(format!("filtering on {other} is not supported")),
    }
}

fn clause_holds(clause: &Clause, listing: &SimListing, mls_name: &str) -> bool {
    match clause {
        Clause::Modified(op, at) => op.holds(listing.modified_at, *at),
        Clause::ListPrice(op, price) => op.holds(listing.list_price as f64, *price),
        Clause::Text(field, op, value) => {
            let actual = match field {
                TextField::City => listing.address.city,
                TextField::StateOrProvince => listing.address.state,
                TextField::PostalCode => listing.address.zip,
                TextField::StandardStatus => listing.status.reso(),
                TextField::PropertyType => listing.property_type.reso_property_type(),
                TextField::OriginatingSystemName => mls_name,
            };
            let equal = actual.eq_ignore_ascii_case(value.trim());
            if *op == Op::Eq { equal } else { !equal }
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub clauses: Vec<Clause>,
    /// The `$filter` as sent, repeated in the next link.
    pub raw_filter: Option<String>,
    pub top: usize,
    pub skip: usize,
    pub count: bool,
    /// `$select`, as sent (repeated in the next link) and as field names.
    pub select: Option<(String, Vec<String>)>,
}

/// Most fields one `$select` names.
const MAX_SELECT_FIELDS: usize = 200;

fn parse_select(text: &str) -> Result<Vec<String>, String> {
    let fields: Vec<String> = text.split(',').map(|f| f.trim().to_owned()).collect();
    if fields.len() > MAX_SELECT_FIELDS {
        return Err(format!("at most {MAX_SELECT_FIELDS} fields"));
    }
    match fields
        .iter()
        .find(|f| f.is_empty() || !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        Some(bad) => Err(format!("{bad:?} is not a property name")),
        None => Ok(fields),
    }
}

/// Parses the OData query options; a bad one is a 400 with an OData error body.
pub(crate) fn parse(pairs: &QueryPairs) -> Result<Query, Reply> {
    let raw_filter = query_value(pairs, "$filter")
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned);
    let clauses = match &raw_filter {
        Some(filter) => {
            parse_filter(filter).map_err(|why| odata_error(400, &format!("$filter: {why}")))?
        }
        None => {
            return Err(odata_error(
                400,
                "$filter is required: name what is replicated (City and StateOrProvince, PostalCode or OriginatingSystemName)",
            ));
        }
    };
    let select = match query_value(pairs, "$select").map(str::trim) {
        None | Some("") => None,
        Some(text) => Some((
            text.to_owned(),
            parse_select(text).map_err(|why| odata_error(400, &format!("$select: {why}")))?,
        )),
    };
    if let Some(order) = query_value(pairs, "$orderby") {
        let order = order.trim();
        if !(order == "ModificationTimestamp" || order == "ModificationTimestamp asc") {
            return Err(odata_error(
                400,
                "$orderby: only ModificationTimestamp (ascending) is supported",
            ));
        }
    }
    let number = |name: &str, default: usize| -> Result<usize, Reply> {
        match query_value(pairs, name).map(str::trim) {
            None | Some("") => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .map_err(|_| odata_error(400, &format!("{name} must be a whole number"))),
        }
    };
    let top = number("$top", DEFAULT_TOP)?;
    if !(1..=MAX_TOP).contains(&top) {
        return Err(odata_error(
            400,
            &format!("$top must be from 1 to {MAX_TOP}"),
        ));
    }
    Ok(Query {
        clauses,
        raw_filter,
        top,
        skip: number("$skip", 0)?,
        count: query_value(pairs, "$count").is_some_and(|c| c.trim().eq_ignore_ascii_case("true")),
        select,
    })
}

/// `{"error": {"code", "message"}}`, the OData error shape.
pub(crate) fn odata_error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({"error": {"code": status.to_string(), "message": message}}),
    )
}

/// Renders one page. `base` is the scheme and host the links are made absolute with.
pub(crate) fn render(market: &Market, query: &Query, base: &str) -> Reply {
    let now = market.now();
    // Lower bound on ModificationTimestamp: a binary search instead of a scan.
    let lower = query.clauses.iter().filter_map(|c| match c {
        Clause::Modified(Op::Gt | Op::Ge, at) => Some(*at),
        _ => None,
    });
    let since = lower.max();
    // A City/StateOrProvince/PostalCode equality narrows the search to one market.
    let area = single_area(market, &query.clauses);
    let candidates: Box<dyn Iterator<Item = ListingRef>> = match area {
        Some(Some(position)) => {
            let view = &market.areas()[position].view.by_modification;
            let listings = &market.areas()[position].listings;
            let first = since.map_or(0, |t| {
                view.partition_point(|&i| listings[i as usize].modified_at < t)
            });
            Box::new(view[first..].iter().map(move |&i| (position as u32, i)))
        }
        Some(None) => Box::new(std::iter::empty()),
        None => Box::new(ByModification::new(market, since)),
    };
    let matching = candidates.filter(|&at| {
        let listing = market.listing(at);
        let mls_name = market.areas()[at.0 as usize].profile.mls_name;
        query
            .clauses
            .iter()
            .all(|c| clause_holds(c, listing, mls_name))
    });

    let mut page = Vec::with_capacity(query.top.min(1_024));
    let mut more = false;
    let mut total = 0usize;
    for (index, at) in matching.enumerate() {
        total += 1;
        if index < query.skip {
            continue;
        }
        if page.len() < query.top {
            page.push(at);
        } else {
            more = true;
            // Only `$count=true` needs the rest of the matches.
            if !query.count {
                break;
            }
        }
    }
    let values: Vec<serde_json::Value> = page
        .iter()
        .map(|&at| {
            let offset = market.areas()[at.0 as usize].profile.utc_offset_hours;
            let record = property(
                market.listing(at),
                market.areas()[at.0 as usize].profile.mls_name,
                offset,
                now,
            );
            let mut value = serde_json::to_value(record).unwrap_or_default();
            if let (Some((_, fields)), serde_json::Value::Object(map)) = (&query.select, &mut value)
            {
                map.retain(|name, _| fields.iter().any(|f| f == name));
            }
            value
        })
        .collect();
    let next_link = more.then(|| {
        let mut link = format!("{base}/reso/odata/Property?");
        if let Some(filter) = &query.raw_filter {
            link.push_str(&format!("$filter={}&", percent_encode(filter)));
        }
        if let Some((select, _)) = &query.select {
            link.push_str(&format!("$select={}&", percent_encode(select)));
        }
        link.push_str(&format!(
            "$orderby=ModificationTimestamp&$top={}&$skip={}",
            query.top,
            query.skip + query.top
        ));
        if query.count {
            link.push_str("&$count=true");
        }
        link
    });
    Reply::json(
        200,
        &Envelope {
            context: format!("{base}/reso/odata/$metadata#Property"),
            count: query.count.then_some(total),
            value: values,
            next_link,
        },
    )
}

/// Every listing of every market modified at or after `since`, by (modification time,
/// zpid): a merge of the markets' own orders, so no global order has to be kept.
struct ByModification<'a> {
    market: &'a Market,
    /// Each market's next candidate: (modification time, zpid, market, index in its order).
    heads: BinaryHeap<Reverse<Head>>,
}

/// (modification time, zpid, market position, index in that market's order).
type Head = (DateTime<Utc>, u64, u32, usize);

impl<'a> ByModification<'a> {
    fn new(market: &'a Market, since: Option<DateTime<Utc>>) -> Self {
        let mut heads = BinaryHeap::new();
        for (position, area) in market.areas().iter().enumerate() {
            let order = &area.view.by_modification;
            let first = since.map_or(0, |t| {
                order.partition_point(|&i| area.listings[i as usize].modified_at < t)
            });
            if let Some(head) = Self::head(market, position as u32, first) {
                heads.push(Reverse(head));
            }
        }
        Self { market, heads }
    }

    fn head(market: &Market, area: u32, index: usize) -> Option<Head> {
        let listing_area = &market.areas()[area as usize];
        let position = *listing_area.view.by_modification.get(index)?;
        let listing = &listing_area.listings[position as usize];
        Some((listing.modified_at, listing.zpid, area, index))
    }
}

impl Iterator for ByModification<'_> {
    type Item = ListingRef;

    fn next(&mut self) -> Option<ListingRef> {
        let Reverse((_, _, area, index)) = self.heads.pop()?;
        if let Some(head) = Self::head(self.market, area, index + 1) {
            self.heads.push(Reverse(head));
        }
        let position = self.market.areas()[area as usize].view.by_modification[index];
        Some((area, position))
    }
}

/// `Some(Some(area))` when the clauses pin one market, `Some(None)` when they pin none
/// that is simulated, `None` when they do not pin a market.
fn single_area(market: &Market, clauses: &[Clause]) -> Option<Option<usize>> {
    let equal = |field: TextField| {
        clauses.iter().find_map(|c| match c {
            Clause::Text(f, Op::Eq, value) if *f == field => Some(value.as_str()),
            _ => None,
        })
    };
    if let Some(zip) = equal(TextField::PostalCode) {
        return Some(market.area_of_zip(zip).map(|(area, _)| area));
    }
    match (equal(TextField::City), equal(TextField::StateOrProvince)) {
        (Some(city), Some(state)) => Some(market.area_of_city(city, state)),
        _ => None,
    }
}

#[derive(Serialize)]
struct Envelope {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
    value: Vec<serde_json::Value>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Property<'a> {
    listing_key: &'a str,
    listing_id: &'a str,
    originating_system_name: &'static str,
    standard_status: &'static str,
    mls_status: &'static str,
    list_price: u64,
    original_list_price: u64,
    previous_list_price: Option<u64>,
    price_change_timestamp: Option<String>,
    close_price: Option<u64>,
    close_date: Option<NaiveDate>,
    modification_timestamp: String,
    status_change_timestamp: String,
    on_market_date: NaiveDate,
    on_market_timestamp: String,
    listing_contract_date: NaiveDate,
    pending_timestamp: Option<String>,
    off_market_date: Option<NaiveDate>,
    property_type: &'static str,
    property_sub_type: &'static str,
    living_area: Option<u32>,
    living_area_units: Option<&'static str>,
    lot_size_square_feet: Option<u64>,
    lot_size_acres: Option<f64>,
    bedrooms_total: Option<u8>,
    bathrooms_total_integer: Option<u8>,
    bathrooms_full: Option<u8>,
    bathrooms_half: Option<u8>,
    year_built: Option<u16>,
    unparsed_address: &'a str,
    street_number: &'a str,
    street_dir_prefix: Option<&'a str>,
    street_name: &'a str,
    street_suffix: Option<&'a str>,
    street_dir_suffix: Option<&'a str>,
    unit_number: Option<&'a str>,
    city: &'static str,
    state_or_province: &'static str,
    postal_code: &'static str,
    country: &'static str,
    latitude: f64,
    longitude: f64,
    days_on_market: i64,
}

fn property<'a>(
    listing: &'a SimListing,
    mls_name: &'static str,
    utc_offset_hours: i32,
    now: DateTime<Utc>,
) -> Property<'a> {
    let local_date =
        |at: DateTime<Utc>| (at + TimeDelta::hours(i64::from(utc_offset_hours))).date_naive();
    let derived = &listing.derived;
    let has_bath = listing.baths_full > 0;
    let days_on_market = match listing.status {
        ListingStatus::Active => listing.days_on_market(now),
        // Counting stops when the listing goes under contract or off the market.
        _ => {
            let until = listing.pending_at.or(listing.closed_at).unwrap_or(now);
            (until - listing.on_market_at).num_days().max(0)
        }
    };
    Property {
        listing_key: &listing.ids.reso_listing_key,
        listing_id: &listing.ids.reso_listing_id,
        originating_system_name: mls_name,
        standard_status: listing.status.reso(),
        mls_status: match listing.status {
            ListingStatus::Active => "Active",
            ListingStatus::Pending => "Under Contract",
            ListingStatus::Sold => "Sold",
            ListingStatus::Withdrawn => "Withdrawn",
        },
        list_price: listing.list_price,
        original_list_price: listing.original_list_price,
        previous_list_price: listing.last_price_change.map(|c| c.old),
        price_change_timestamp: listing.last_price_change.map(|c| time_format::millis(c.at)),
        close_price: listing.close_price,
        close_date: listing
            .closed_at
            .filter(|_| listing.status == ListingStatus::Sold)
            .map(local_date),
        modification_timestamp: time_format::millis(listing.modified_at),
        status_change_timestamp: time_format::millis(listing.status_changed_at),
        on_market_date: local_date(listing.on_market_at),
        on_market_timestamp: time_format::millis(listing.on_market_at),
        listing_contract_date: local_date(listing.on_market_at),
        pending_timestamp: listing.pending_at.map(time_format::millis),
        off_market_date: listing
            .closed_at
            .filter(|_| listing.status == ListingStatus::Withdrawn)
            .map(local_date),
        property_type: listing.property_type.reso_property_type(),
        property_sub_type: listing.property_type.reso_property_sub_type(),
        living_area: listing.living_area_sqft,
        living_area_units: listing.living_area_sqft.map(|_| "Square Feet"),
        lot_size_square_feet: listing.lot_sqft().map(|s| s.round() as u64),
        lot_size_acres: listing.lot_acres,
        bedrooms_total: listing.beds,
        bathrooms_total_integer: has_bath.then_some(listing.baths_full + listing.baths_half),
        bathrooms_full: has_bath.then_some(listing.baths_full),
        bathrooms_half: has_bath.then_some(listing.baths_half),
        year_built: listing.year_built,
        unparsed_address: &derived.line,
        street_number: &listing.address.street_number,
        street_dir_prefix: derived.street_dir_prefix.as_deref(),
        street_name: &derived.street_name,
        street_suffix: derived.street_suffix.as_deref(),
        street_dir_suffix: derived.street_dir_suffix.as_deref(),
        unit_number: listing
            .address
            .unit
            .as_ref()
            .map(|(_, number)| number.as_str()),
        city: listing.address.city,
        state_or_province: listing.address.state,
        postal_code: listing.address.zip,
        country: "US",
        latitude: listing.latitude,
        longitude: listing.longitude,
        days_on_market,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::config::MarketConfig;

    fn pairs(list: &[(&str, &str)]) -> QueryPairs {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn filters_parse_and_the_unsupported_is_refused() {
        let at = Utc
            .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
            .single()
            .expect("valid time");
        assert_eq!(
            parse_filter(
                "ModificationTimestamp gt 2024-03-01T12:00:00Z and (StandardStatus eq 'Active')"
            )
            .expect("valid"),
            vec![
                Clause::Modified(Op::Gt, at),
                Clause::Text(TextField::StandardStatus, Op::Eq, "Active".into()),
            ]
        );
        assert_eq!(
            parse_filter("City eq 'St. John''s' and ListPrice le 500000").expect("valid"),
            vec![
                Clause::Text(TextField::City, Op::Eq, "St. John's".into()),
                Clause::ListPrice(Op::Le, 500_000.0),
            ]
        );
        assert_eq!(parse_filter("").expect("empty is fine"), vec![]);
        for bad in [
            "City eq 'Nashville' or City eq 'Austin'",
            "City gt 'A'",
            "Bedrooms eq 3",
            "ModificationTimestamp gt yesterday",
            "City eq 'Nashville",
            "(City eq 'Nashville'",
            "City eq 'Nashville' and",
            "City 'Nashville'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn incremental_sync_pages_through_modified_records_in_order() {
        let mut market = Market::new(
            4,
            MarketConfig {
                markets: vec!["denver-co".into(), "chicago-il".into()],
                listings_per_market: 600,
                ..MarketConfig::default()
            },
        )
        .expect("market");
        let watermark = market.now();
        market.advance(TimeDelta::hours(48)).expect("advance");
        let filter = format!(
            "ModificationTimestamp gt {}",
            time_format::millis(watermark)
        );
        let expected: Vec<&SimListing> = market
            .all_listings()
            .filter(|l| l.modified_at > watermark)
            .collect();
        assert!(!expected.is_empty());

        let mut keys = Vec::new();
        let mut request = pairs(&[
            ("$filter", &filter),
            ("$top", "25"),
            ("$orderby", "ModificationTimestamp"),
        ]);
        loop {
            let query = parse(&request).expect("valid query");
            let body: serde_json::Value =
                serde_json::from_slice(&render(&market, &query, "http://sim").body).expect("json");
            for record in body["value"].as_array().expect("value") {
                keys.push((
                    record["ModificationTimestamp"]
                        .as_str()
                        .expect("timestamp")
                        .to_owned(),
                    record["ListingKey"].as_str().expect("key").to_owned(),
                ));
            }
            match body["@odata.nextLink"].as_str() {
                Some(link) => {
                    let skip = link.rsplit("$skip=").next().expect("skip").to_owned();
                    assert!(link.starts_with(
                        "http://sim/reso/odata/Property?$filter=ModificationTimestamp%20gt%20"
                    ));
                    request = pairs(&[("$filter", &filter), ("$top", "25"), ("$skip", &skip)]);
                }
                None => break,
            }
        }
        assert_eq!(keys.len(), expected.len());
        assert!(keys.windows(2).all(|w| w[0].0 <= w[1].0));

        // Narrowed to one market by City + StateOrProvince, with a count.
        let city = format!("{filter} and City eq 'Denver' and StateOrProvince eq 'CO'");
        let query = parse(&pairs(&[
            ("$filter", &city),
            ("$top", "5000"),
            ("$count", "true"),
        ]))
        .expect("valid");
        let body: serde_json::Value =
            serde_json::from_slice(&render(&market, &query, "http://sim").body).expect("json");
        let denver = expected.iter().filter(|l| l.market == "denver-co").count();
        assert_eq!(body["@odata.count"], denver);
        assert_eq!(body["value"].as_array().map(Vec::len), Some(denver));
        assert!(body.get("@odata.nextLink").is_none());
    }

    #[test]
    fn the_filter_is_required_and_select_keeps_the_fields_named() {
        let market = Market::new(
            5,
            MarketConfig {
                markets: vec!["nashville-tn".into(), "syracuse-ny".into()],
                listings_per_market: 50,
                ..MarketConfig::default()
            },
        )
        .expect("market");
        let reply = parse(&pairs(&[("$top", "10")])).expect_err("no filter");
        assert_eq!(reply.status, 400);
        let query = parse(&pairs(&[
            ("$filter", "OriginatingSystemName eq 'RealTracs'"),
            ("$select", "ListingKey, City,LotSizeUnits"),
            ("$top", "5000"),
        ]))
        .expect("valid");
        let body: serde_json::Value =
            serde_json::from_slice(&render(&market, &query, "http://sim").body).expect("json");
        let records = body["value"].as_array().expect("value");
        let nashville = market
            .all_listings()
            .filter(|l| l.market == "nashville-tn")
            .count();
        assert_eq!(records.len(), nashville);
        for record in records {
            let mut names: Vec<&String> = record.as_object().expect("object").keys().collect();
            names.sort();
            assert_eq!(names, ["City", "ListingKey"]);
            assert_eq!(record["City"], "Nashville");
        }
        for bad in ["ListingKey,", "List-Price", "a b"] {
            let reply = parse(&pairs(&[
                ("$filter", "City eq 'Nashville'"),
                ("$select", bad),
            ]))
            .expect_err("bad $select");
            assert_eq!(reply.status, 400, "{bad}");
        }
    }

    #[test]
    fn bad_options_are_odata_errors() {
        for bad in [
            vec![("$top", "0")],
            vec![("$top", "5001")],
            vec![("$skip", "-3")],
            vec![("$orderby", "ListPrice desc")],
            vec![("$filter", "Bedrooms eq 3")],
        ] {
            let mut bad = bad;
            if bad[0].0 != "$filter" {
                bad.push(("$filter", "City eq 'Nashville'"));
            }
            let reply = parse(&pairs(&bad)).expect_err("invalid");
            assert_eq!(reply.status, 400);
            let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
            assert!(body["error"]["message"].is_string());
        }
    }
}
