//! What one full read (or the union of several) saw ([`Tally`]), whether it accounts for
//! every record the source holds, and each fetched page kept then counted ([`take_page`]).

use std::collections::{BTreeMap, BTreeSet};

use super::ReadStats;
use crate::detect::MarketRead;
use crate::fetch::Fetched;
use crate::raw::KeepPages;
use realty_model::listing::Listing;
use realty_sources::Paging;

/// Keeps a fetched page in the raw layer, then counts it in `tally`.
pub(super) async fn take_page(
    tally: &mut Tally,
    fetched: Fetched,
    pages: &impl KeepPages,
    stats: &mut ReadStats,
) -> Paging {
    stats.count_kept(pages.keep(&fetched.body).await);
    tally.add_page(fetched, stats)
}

/// What one full read (or the union of several) saw.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) listings: BTreeMap<String, Listing>,
    /// Ids of rejected records, not also read as listings.
    pub(super) rejected_ids: BTreeSet<String>,
    /// Rejected records without a usable id: they could be any listing.
    anonymous_rejects: u64,
    /// What the source said it holds, summed over the queries; `None` when any query did
    /// not say (a bare `props` array, a null search).
    expected: Option<u64>,
    /// Results the queries' pages cannot reach.
    pub(super) unreachable: bool,
    /// The read stopped at a bound on its requests (Zillow's price-band splits,
    /// Realtor.com's pages) or at a page that repeats: another pass would stop there too.
    pub(super) bounded: bool,
}

impl Tally {
    pub(super) fn new() -> Self {
        Self {
            expected: Some(0),
            ..Self::default()
        }
    }

    fn add_page(&mut self, fetched: Fetched, stats: &mut ReadStats) -> Paging {
        stats.pages += 1;
        stats.retries += fetched.retries;
        let mut page = fetched.page;
        for reject in &page.rejects {
            match &reject.source_id {
                Some(id) => {
                    self.rejected_ids.insert(id.clone());
                }
                None => self.anonymous_rejects += 1,
            }
        }
        stats.rejects.append(&mut page.rejects);
        for l in page.listings.drain(..) {
            self.listings.insert(l.id.as_str().to_owned(), l);
        }
        page.paging
    }

    /// How many distinct records (listings and rejected ones with an id) were read.
    pub(super) fn known_ids(&self) -> usize {
        self.listings.len()
            + self
                .rejected_ids
                .iter()
                .filter(|id| !self.listings.contains_key(*id))
                .count()
    }

    pub(super) fn expect(&mut self, total: Option<u64>) {
        self.expected = match (self.expected, total) {
            // A sum past u64 (a hostile total) says nothing: never complete.
            (Some(sum), Some(total)) => sum.checked_add(total),
            _ => None,
        };
    }

    /// Complete: the source said how many it holds, every page was reachable, every
    /// rejected record is a known listing, and listings plus rejects reach the total.
    pub(super) fn complete(&self) -> bool {
        let Some(expected) = self.expected else {
            return false;
        };
        let rejected_only = self
            .rejected_ids
            .iter()
            .filter(|id| !self.listings.contains_key(*id))
            .count() as u64;
        !self.unreachable
            && !self.bounded
            && self.anonymous_rejects == 0
            && self.listings.len() as u64 + rejected_only >= expected
    }

    /// No pass of the same query can be complete: the source does not say how many it
    /// holds, or a record has no id (the next pass reads the same records).
    pub(super) fn never_complete(&self) -> bool {
        self.expected.is_none() || self.anonymous_rejects > 0
    }

    pub(super) fn merge(&mut self, other: Tally) {
        self.listings.extend(other.listings);
        self.rejected_ids.extend(other.rejected_ids);
    }

    pub(super) fn into_read(mut self, complete: bool) -> MarketRead {
        for duplicate in building_duplicates(&self.listings) {
            self.listings.remove(&duplicate);
        }
        let rejected_ids = self
            .rejected_ids
            .into_iter()
            .filter(|id| !self.listings.contains_key(id))
            .collect();
        MarketRead {
            listings: self.listings.into_values().collect(),
            complete,
            cursor: None,
            full: false,
            rejected_ids,
            gone_ids: BTreeSet::new(),
            asked_not_gone_ids: BTreeSet::new(),
            crawl_limited: false,
            history: false,
            moved_away: BTreeMap::new(),
        }
    }
}

/// Words a unit starts with after the street (Zillow writes `# 411`, `Apt 610`, `Unit 2016`,
/// `Ste 300`, `Floor 6`).
const UNIT_WORDS: [&str; 8] = ["#", "apt", "unit", "ste", "suite", "fl", "floor", "bldg"];

/// Zillow listings of a building's page that are one of its units again: Zillow returns a
/// unit both under its own zpid (`817 3rd Ave N #411`) and under the building's
/// (`817 3rd Ave N`, no unit), same price, beds, baths, area and type (the Nashville capture
/// has one). Counted twice, the home was two listings and two cuts of its market. They still
/// count in the read's completeness (the source's total counts them), and one kept from
/// before leaves with a delisting.
fn building_duplicates(listings: &BTreeMap<String, Listing>) -> Vec<String> {
    type Facts = (
        i64,
        Option<u16>,
        Option<u32>,
        u32,
        realty_model::listing::PropertyType,
    );
    let facts = |l: &Listing| -> Option<Facts> {
        Some((
            l.price_minor,
            l.beds,
            l.baths.map(|b| (b * 10.0).round() as u32),
            l.living_area_sqft?,
            l.property_type,
        ))
    };
    let zillow = |l: &&Listing| l.source == realty_model::listing::ListingSource::Zillow;
    let mut units: std::collections::HashMap<Facts, Vec<&Listing>> = Default::default();
    for l in listings.values().filter(zillow) {
        if let Some(f) = facts(l) {
            units.entry(f).or_default().push(l);
        }
    }
    let unit_of = |building: &Listing, unit: &Listing| {
        let (Some(street), Some(line)) = (&building.address.line, &unit.address.line) else {
            return false;
        };
        let Some(rest) = line.strip_prefix(street.as_str()) else {
            return false;
        };
        let Some(rest) = rest.strip_prefix(' ') else {
            return false;
        };
        let rest = rest.to_ascii_lowercase();
        unit.id != building.id
            && unit.offer == building.offer
            && unit.status == building.status
            && unit.market == building.market
            && UNIT_WORDS.iter().any(|w| {
                rest.strip_prefix(w)
                    .is_some_and(|after| *w == "#" || after.starts_with(' '))
            })
    };
    listings
        .values()
        .filter(zillow)
        .filter(|building| {
            facts(building)
                .and_then(|f| units.get(&f))
                .is_some_and(|same| same.iter().any(|unit| unit_of(building, unit)))
        })
        .map(|building| {
            tracing::info!(id = %building.id, "a building's listing of one of its units: not counted twice");
            building.id.as_str().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use realty_sources::{RecordPosition, Reject, zillow};

    fn tally_of(listings: usize, rejects: &[Option<&str>], total: Option<u64>) -> Tally {
        let page = include_bytes!(
            "../../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        );
        let mut page = zillow::parse_page(page, Utc::now()).expect("fixture");
        page.listings.truncate(listings);
        assert_eq!(page.listings.len(), listings);
        page.rejects = rejects
            .iter()
            .enumerate()
            .map(|(i, id)| Reject {
                source_id: id.map(str::to_owned),
                position: RecordPosition::Index(i),
                reason: "price: \"call for price\"".into(),
            })
            .collect();
        let mut tally = Tally::new();
        tally.add_page(
            Fetched {
                page,
                retries: 0,
                body: Vec::new(),
            },
            &mut ReadStats::default(),
        );
        tally.expect(total);
        tally
    }

    /// The Nashville capture's unit #411 of 817 3rd Ave N, also listed as the building (zpid
    /// 2106002389, no unit, the same price, beds, baths and area): one home, one listing;
    /// the read stays complete. Units of one building at other prices stay.
    #[test]
    fn a_building_s_listing_of_one_of_its_units_counts_once() {
        let total = 41;
        let tally = tally_of(total, &[], Some(total as u64));
        assert!(tally.complete());
        let read = tally.into_read(true);
        let ids: BTreeSet<&str> = read.listings.iter().map(|l| l.id.as_str()).collect();
        assert!(!ids.contains("zillow:2106002389"));
        assert!(ids.contains("zillow:108715663"));
        assert_eq!(read.listings.len(), total - 1);
        assert!(read.complete);
    }

    #[test]
    fn a_read_is_complete_only_when_a_total_accounts_for_every_record() {
        assert!(tally_of(3, &[], Some(3)).complete());
        assert!(tally_of(3, &[Some("zillow:9")], Some(4)).complete());
        // No total: never complete, however much was read.
        assert!(!tally_of(3, &[], None).complete());
        // Short of the total.
        assert!(!tally_of(3, &[], Some(4)).complete());
        // A reject without an id could be any listing.
        assert!(!tally_of(3, &[None], Some(4)).complete());
        // A reject counted once however often it was read.
        assert!(!tally_of(3, &[Some("zillow:9"), Some("zillow:9")], Some(5)).complete());
    }
}
