//! One page of the answer: the candidates in modification order (narrowed to one market
//! when the filter pins one), the page of those that match, and the link to the next.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Query;
use super::filter::{Clause, Op, TextField, clause_holds};
use super::property::property;
use crate::api::{Reply, percent_encode};
use crate::market::{ListingRef, Market};

/// Renders one page. `base` is the scheme and host the links are made absolute with.
pub(crate) fn render(market: &Market, query: &Query, base: &str) -> Reply {
    let now = market.now();
    let matching = candidates(market, query).filter(|&at| {
        let listing = market.listing(at);
        let mls_name = market.areas()[at.0 as usize].profile.mls_name;
        query
            .clauses
            .iter()
            .all(|c| clause_holds(c, listing, mls_name))
    });
    let page = Page::of(matching, query);
    let values: Vec<serde_json::Value> = page
        .refs
        .iter()
        .map(|&at| record(market, query, at, now))
        .collect();
    Reply::json(
        200,
        &Envelope {
            context: format!("{base}/reso/odata/$metadata#Property"),
            count: query.count.then_some(page.total),
            value: values,
            next_link: page.more.then(|| next_link(base, query)),
        },
    )
}

/// The listings the filter could match, in modification order.
fn candidates<'a>(market: &'a Market, query: &Query) -> Box<dyn Iterator<Item = ListingRef> + 'a> {
    // Lower bound on ModificationTimestamp: a binary search instead of a scan.
    let lower = query.clauses.iter().filter_map(|c| match c {
        Clause::Modified(Op::Gt | Op::Ge, at) => Some(*at),
        _ => None,
    });
    let since = lower.max();
    // A City/StateOrProvince/PostalCode equality narrows the search to one market.
    match single_area(market, &query.clauses) {
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
    }
}

/// The matches of one page, whether more follow, and how many matched in all (counted
/// to the end only for `$count=true`).
struct Page {
    refs: Vec<ListingRef>,
    more: bool,
    total: usize,
}

impl Page {
    fn of(matching: impl Iterator<Item = ListingRef>, query: &Query) -> Self {
        let mut page = Self {
            refs: Vec::with_capacity(query.top.min(1_024)),
            more: false,
            total: 0,
        };
        for (index, at) in matching.enumerate() {
            page.total += 1;
            if index < query.skip {
                continue;
            }
            if page.refs.len() < query.top {
                page.refs.push(at);
            } else {
                page.more = true;
                // Only `$count=true` needs the rest of the matches.
                if !query.count {
                    break;
                }
            }
        }
        page
    }
}

/// A listing's Property record, narrowed to the `$select`ed fields.
fn record(market: &Market, query: &Query, at: ListingRef, now: DateTime<Utc>) -> serde_json::Value {
    let offset = market.areas()[at.0 as usize].profile.utc_offset_hours;
    let record = property(
        market.listing(at),
        market.areas()[at.0 as usize].profile.mls_name,
        offset,
        now,
    );
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let (Some((_, fields)), serde_json::Value::Object(map)) = (&query.select, &mut value) {
        map.retain(|name, _| fields.iter().any(|f| f == name));
    }
    value
}

/// The next page's link: the same filter and selection, skipping this page.
fn next_link(base: &str, query: &Query) -> String {
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
