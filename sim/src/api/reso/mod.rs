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
//!
//! Here a request's query options; in their own files the `$filter` (`filter`), the page
//! answered with its candidates in modification order (`page`), and one record with its
//! Data Dictionary names (`property`).

mod filter;
mod page;
mod property;

pub(crate) use filter::parse_filter;
pub(crate) use page::render;

use super::{QueryPairs, Reply, query_value};
use filter::Clause;

pub(crate) const MAX_TOP: usize = 5_000;
const DEFAULT_TOP: usize = 100;

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

#[cfg(test)]
mod tests;
