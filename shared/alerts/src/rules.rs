//! The alert rules, as plain functions over a listing's item before and after a change (the
//! listing table's stream images, decoded by `realty_aws`): no AWS, no clock. docs/alerts.md states them for users.

use realty_model::price_move::PriceMove;
use serde::{Deserialize, Serialize};

use realty_model::listing::{CENTS_PER_DOLLAR, Listing, ListingStatus, Offer};
use realty_model::scope::city_scope_key;
use realty_model::state::AppliedEvent;
use realty_model::state::InterestKind;
use realty_model::state::ListingItem;

/// Hundredths of a percent in a whole (10,000 = 100 %).
const CENTI_PCT_PER_WHOLE: i128 = 10_000;

/// Relative slack on the undervalued bound, so a price per sqft exactly at the bound is not
/// missed for a rounding error in its last bit.
const UNDERVALUED_BOUND_SLACK: f64 = 1e-12;

/// What an alert says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The price fell by at least the threshold.
    PriceDrop,
    /// The price per sqft is at or below a fraction of the market median: a new listing, or
    /// a change that made it so.
    Undervalued,
    /// The price fell by less than the price-drop threshold: what a watchlist (a filter on
    /// `listing_id`) wants to hear of. Each cut is one alert, `price_cut` or `price_drop`.
    PriceCut,
    /// A listing that was delisted, sold or off the market is for sale again.
    BackOnMarket,
    /// A listing seen for the first time (when the stack publishes them: `NewListingAlerts`):
    /// subscribers pick the ones in their criteria with a filter policy on `price`,
    /// `bedrooms`, `property_type` and `market`.
    NewListing,
    /// The metrics function flagged the listing as anomalous for its market: its price per
    /// sqft outside the market's robust bounds (docs/metrics.md).
    Anomaly,
}

impl AlertKind {
    /// Every kind, in the order [`evaluate`] raises them.
    pub const ALL: [Self; 6] = [
        Self::PriceDrop,
        Self::PriceCut,
        Self::Undervalued,
        Self::BackOnMarket,
        Self::NewListing,
        Self::Anomaly,
    ];

    /// The `alert_type` message attribute and JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PriceDrop => "price_drop",
            Self::Undervalued => "undervalued",
            Self::PriceCut => "price_cut",
            Self::BackOnMarket => "back_on_market",
            Self::NewListing => "new_listing",
            Self::Anomaly => "anomaly",
        }
    }
}

/// When alerts fire (the template's `PriceDropThresholdPct`, `PriceDropMinAmount`,
/// `UndervaluedRatio` and `NewListingAlerts`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertThresholds {
    /// A drop alerts from this many hundredths of a percent of the old price (1,500 = 15 %).
    /// Integer, so a drop of exactly the threshold is compared exactly.
    pub price_drop_centi_pct: u32,
    /// ...and only when it is at least this many minor units (0: no floor).
    pub price_drop_min_minor: i64,
    /// Undervalued: price per sqft at or below this fraction of the market median.
    pub undervalued_ratio: f64,
    /// Publish a `new_listing` alert for every new listing. Off by default: one message per
    /// new listing, which a subscriber without a filter policy would get every one of.
    pub new_listing_alerts: bool,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            price_drop_centi_pct: 1_500,
            price_drop_min_minor: 0,
            undervalued_ratio: 0.8,
            new_listing_alerts: false,
        }
    }
}

/// One listing's change, decoded from an INSERT or MODIFY record of the listing table's
/// stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingChange {
    /// The stream record's `dynamodb.SequenceNumber` (the `itemIdentifier` of a failure).
    pub sequence_number: String,
    /// The listing before the change; `None` for a listing seen for the first time (a new
    /// listing: judged on its own, with no old price).
    pub old: Option<ListingItem>,
    pub new: ListingItem,
}

/// Why a stream record carries no listing change to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// REMOVE (a removed item has no new price), or another event name.
    NotModify,
    /// Without it the record could not be reported as failed.
    NoSequenceNumber,
    NoNewImage,
    NoOldImage,
    MalformedNewImage,
    MalformedOldImage,
    /// The two images name different listings.
    InconsistentImages,
}

impl SkipReason {
    /// A short stable label (metric dimension `reason`, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotModify => "not_modify",
            Self::NoSequenceNumber => "no_sequence_number",
            Self::NoNewImage => "no_new_image",
            Self::NoOldImage => "no_old_image",
            Self::MalformedNewImage => "malformed_new_image",
            Self::MalformedOldImage => "malformed_old_image",
            Self::InconsistentImages => "inconsistent_images",
        }
    }
}

/// A stream record skipped, with its reason and the detail (the serde error, the event name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Skipped {
    pub reason: SkipReason,
    pub detail: String,
}

impl Skipped {
    fn new(reason: SkipReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// A record of the listing table's stream as the AWS side decoded it: which write, and its
/// images as listing items (or why one did not decode).
#[derive(Debug, Clone, PartialEq)]
pub struct ListingStreamRecord {
    pub event_id: String,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: String,
    /// The record's `dynamodb.SequenceNumber`.
    pub sequence_number: Option<String>,
    pub new_image: Image,
    pub old_image: Image,
}

/// One image of a stream record.
#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    /// No image (or an empty one).
    Absent,
    Item(Box<ListingItem>),
    /// An image that is not a listing item of this build, with the decoder's error.
    Malformed(String),
}

impl Image {
    fn item(self, reason: SkipReason, which: &str) -> Result<ListingItem, Skipped> {
        match self {
            Self::Item(item) => Ok(*item),
            Self::Malformed(e) => Err(Skipped::new(reason, e)),
            Self::Absent => Err(Skipped::new(reason, format!("empty {which}"))),
        }
    }
}

/// The listing's old and new items of a stream record, or why it carries no change to judge.
/// An INSERT is a new listing (no old item); when its write applied several events (a
/// listing first seen and changed in one metrics batch), [`per_event`] judges the first as
/// the new listing and each later one against the one before.
pub fn classify(record: ListingStreamRecord) -> Result<ListingChange, Skipped> {
    let insert = record.event_name == "INSERT";
    if record.event_name != "MODIFY" && !insert {
        return Err(Skipped::new(
            SkipReason::NotModify,
            format!("event {:?}", record.event_name),
        ));
    }
    let sequence_number = record
        .sequence_number
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Skipped::new(SkipReason::NoSequenceNumber, "no dynamodb.SequenceNumber"))?;
    if record.new_image == Image::Absent {
        return Err(Skipped::new(SkipReason::NoNewImage, "empty NewImage"));
    }
    if insert {
        let new = record
            .new_image
            .item(SkipReason::MalformedNewImage, "NewImage")?;
        return Ok(ListingChange {
            sequence_number,
            old: None,
            new,
        });
    }
    if record.old_image == Image::Absent {
        return Err(Skipped::new(
            SkipReason::NoOldImage,
            "empty OldImage (is the stream NEW_AND_OLD_IMAGES?)",
        ));
    }
    let new = record
        .new_image
        .item(SkipReason::MalformedNewImage, "NewImage")?;
    let old = record
        .old_image
        .item(SkipReason::MalformedOldImage, "OldImage")?;
    if old.listing_id != new.listing_id {
        return Err(Skipped::new(
            SkipReason::InconsistentImages,
            format!("old {:?}, new {:?}", old.listing_id, new.listing_id),
        ));
    }
    Ok(ListingChange {
        sequence_number,
        old: Some(old),
        new,
    })
}

/// `item` as `event` left it (one of the events its write applied): only what alerts look
/// at differs.
fn as_of(item: &ListingItem, event: AppliedEvent) -> ListingItem {
    let mut step = item.clone();
    step.recent_events.clear();
    step.several_recent_events = false;
    step.listing.price_minor = event.price_minor;
    step.listing.living_area_sqft = event.living_area_sqft;
    step.listing.status = event.status;
    step.listing.offer = event.offer;
    step.listing.observed_at = event.observed_at;
    step.delisted = event.delisted;
    step.baseline = event.baseline;
    step.observed_at = event.observed_at;
    step.sequence = event.sequence.as_kinesis().to_owned();
    step
}

/// Whether two stored sequence numbers are one: items written before held them zero-padded,
/// and an item written since keeps the events it carried over as they were.
fn same_sequence(a: &str, b: &str) -> bool {
    a.trim_start_matches('0') == b.trim_start_matches('0')
}

/// The listing changes of one stream record, one per event its write applied, oldest
/// first. The metrics function writes a listing once per batch, however many of its events
/// the batch held; the item keeps its last events (`recent_events`), and those after the old
/// image's version are judged each against the one before, as if each had been written on
/// its own: the alerts, and their idempotency keys, are the same however the Kinesis stream
/// was cut into batches. A list that does not end at the item's version (an item not
/// written by this build) is ignored: the record is one change.
pub fn per_event(change: ListingChange) -> Vec<ListingChange> {
    let ListingChange {
        sequence_number,
        mut old,
        mut new,
    } = change;
    if let Some(old) = old.as_mut() {
        old.recent_events.clear();
        old.several_recent_events = false;
    }
    // The list is in the order metrics applied the events, which within the clock skew is
    // the stream's, not the clocks': the events of this write are those after the old
    // image's own, or all of them when the write applied more than the list keeps (or
    // created the item: the first is then the new listing).
    let recent = std::mem::take(&mut new.recent_events);
    let start = old.as_ref().map_or(0, |old| {
        recent
            .iter()
            .position(|e| same_sequence(e.sequence.as_kinesis(), &old.sequence))
            .map_or(0, |i| i + 1)
    });
    let events: Vec<AppliedEvent> = recent.into_iter().skip(start).collect();
    new.several_recent_events = false;
    let fits = events.len() > 1
        && events.last().is_some_and(|e| {
            same_sequence(e.sequence.as_kinesis(), &new.sequence)
                && e.observed_at == new.observed_at
        });
    if !fits {
        return vec![ListingChange {
            sequence_number,
            old,
            new,
        }];
    }
    let last = events.len() - 1;
    let mut changes: Vec<ListingChange> = Vec::with_capacity(events.len());
    // The lists of interest are judged once per write, after its last event: the steps
    // before it keep the flags the listing had before the write.
    let interest_before = old.as_ref().map(|o| o.interest.clone()).unwrap_or_default();
    let mut previous = old;
    for (i, event) in events.into_iter().enumerate() {
        let next = if i == last {
            new.clone()
        } else {
            let baseline = event.baseline;
            let mut step = as_of(&new, event);
            // A first read's listing is taken as flagged as the write left it: flagged, not
            // announced, so its next change in the write is not news for a flag it had.
            if !baseline {
                step.interest.clone_from(&interest_before);
            }
            step
        };
        let old = previous.replace(next.clone());
        changes.push(ListingChange {
            sequence_number: sequence_number.clone(),
            old,
            new: next,
        });
    }
    changes
}

/// Whether a listing can alert at all: for sale, still listed, not sold or off the market
/// (nobody can act on a closed or withdrawn listing's price).
pub fn is_alertable(item: &ListingItem) -> bool {
    item.listing.offer == Offer::Sale
        && !item.delisted
        && !matches!(
            item.listing.status,
            ListingStatus::Sold | ListingStatus::OffMarket
        )
}

/// Price per sqft in major units (dollars), where the living area is known.
pub fn price_per_sqft(listing: &Listing) -> Option<f64> {
    let area = listing.living_area_sqft.filter(|a| *a > 0)?;
    (listing.price_minor > 0)
        .then(|| listing.price_minor as f64 / CENTS_PER_DOLLAR as f64 / f64::from(area))
}

/// The price cut of a change, of any size: the new item alertable, both prices positive
/// sale prices in one currency, the new one lower.
pub fn price_cut(old: &ListingItem, new: &ListingItem) -> Option<PriceMove> {
    if !is_alertable(new)
        || old.listing.offer != Offer::Sale
        || old.listing.currency != new.listing.currency
    {
        return None;
    }
    let (from, to) = (old.listing.price_minor, new.listing.price_minor);
    (from > 0 && to > 0 && to < from).then(|| PriceMove::between(from, to))
}

/// Whether a cut reaches the price-drop thresholds: at least the threshold percentage of the
/// old price and at least the floor.
fn reaches_drop_thresholds(cut: &PriceMove, thresholds: &AlertThresholds) -> bool {
    let (from, drop) = (i128::from(cut.old_minor), i128::from(cut.drop_minor));
    // Exact: drop / from >= pct / 100 as integers, so a drop of exactly the threshold fires.
    let reaches_pct =
        drop * CENTI_PCT_PER_WHOLE >= i128::from(thresholds.price_drop_centi_pct) * from;
    reaches_pct && drop >= i128::from(thresholds.price_drop_min_minor)
}

/// The price drop of a change, if it is a [`price_cut`] reaching the thresholds.
pub fn price_drop(
    old: &ListingItem,
    new: &ListingItem,
    thresholds: &AlertThresholds,
) -> Option<PriceMove> {
    price_cut(old, new).filter(|cut| reaches_drop_thresholds(cut, thresholds))
}

/// Whether the listing is for sale again after being delisted, sold or off the market (a
/// relisting: the seller is back, often at a new price).
pub fn back_on_market(old: &ListingItem, new: &ListingItem) -> bool {
    let was_off = old.delisted
        || matches!(
            old.listing.status,
            ListingStatus::Sold | ListingStatus::OffMarket
        );
    was_off && old.listing.offer == Offer::Sale && is_alertable(new)
}

/// Whether the metrics function newly flagged the listing as anomalous for its market (its
/// price per sqft outside the market's bounds), while it can alert. The metrics function
/// flags active listings only, so one back from under contract or pending at the same price
/// and area was not judged meanwhile, not cleared: it stayed anomalous, and alerted already
/// (before, every contingent and active flip alerted again).
pub fn newly_anomalous(old: Option<&ListingItem>, new: &ListingItem) -> bool {
    let flagged = |item: &ListingItem| item.interest.contains(&InterestKind::Anomalous);
    let paused_as_it_is = |old: &ListingItem| {
        !old.delisted
            && old.listing.offer == Offer::Sale
            && matches!(
                old.listing.status,
                ListingStatus::UnderContract | ListingStatus::Pending
            )
            && old.listing.price_minor == new.listing.price_minor
            && old.listing.living_area_sqft == new.listing.living_area_sqft
    };
    is_alertable(new)
        && flagged(new)
        && old.is_none_or(|old| !flagged(old) && !paused_as_it_is(old))
}

/// A market's median price per sqft, and the scope it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketMedian {
    /// `city#nashville-tn#condo`, or the all-types `city#nashville-tn#all` fallback.
    pub scope_key: String,
    /// Dollars per sqft.
    pub price_per_sqft: f64,
}

/// The market-table scopes whose median a listing is compared with, in order of preference:
/// its city and property type, then its city across types.
pub fn median_scope_keys(listing: &Listing) -> [String; 2] {
    let city = &listing.market.city_state;
    [
        city_scope_key(city, Some(listing.property_type)),
        city_scope_key(city, None),
    ]
}

/// The first of `listing`'s scopes with a usable median in `medians` (scope key -> dollars
/// per sqft).
pub fn pick_median(
    listing: &Listing,
    medians: &std::collections::BTreeMap<String, f64>,
) -> Option<MarketMedian> {
    median_scope_keys(listing)
        .into_iter()
        .find_map(|key| usable_median(key, medians))
}

fn usable_median(
    scope_key: String,
    medians: &std::collections::BTreeMap<String, f64>,
) -> Option<MarketMedian> {
    let median = *medians.get(&scope_key)?;
    (median.is_finite() && median > 0.0).then_some(MarketMedian {
        scope_key,
        price_per_sqft: median,
    })
}

/// The medians a change is told against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Medians {
    /// The listing's type in its city, else its city across types ([`pick_median`]): what
    /// undervalued is judged by, and what the other alerts show.
    pub judged: Option<MarketMedian>,
    /// Its city across types: the median whose bounds flagged an anomaly (docs/metrics.md),
    /// which the anomaly alert shows.
    pub city: Option<MarketMedian>,
}

impl Medians {
    /// `listing`'s medians among those read (scope key -> dollars per sqft).
    pub fn of(listing: &Listing, medians: &std::collections::BTreeMap<String, f64>) -> Self {
        Self {
            judged: pick_median(listing, medians),
            city: usable_median(city_scope_key(&listing.market.city_state, None), medians),
        }
    }

    /// One median for both (a city whose only median is across types).
    pub fn both(median: &MarketMedian) -> Self {
        Self {
            judged: Some(median.clone()),
            city: Some(median.clone()),
        }
    }
}

fn is_undervalued(item: &ListingItem, thresholds: &AlertThresholds, median: &MarketMedian) -> bool {
    let bound = thresholds.undervalued_ratio * median.price_per_sqft;
    is_alertable(item)
        && price_per_sqft(&item.listing)
            .is_some_and(|p| p <= bound + bound.abs() * UNDERVALUED_BOUND_SLACK)
}

/// Whether judging the change needs its market's median: when the listing was just flagged
/// anomalous (the alert reports the median), or the new item could be undervalued and
/// something that decides it changed (price, area, alertability), or it is a new listing. With none of those changed, old and new are equally undervalued and
/// nothing fires, so a change of status or `observed_at` alone costs no market read.
pub fn needs_median(old: Option<&ListingItem>, new: &ListingItem) -> bool {
    newly_anomalous(old, new)
        || is_alertable(new)
            && price_per_sqft(&new.listing).is_some()
            && old.is_none_or(|old| {
                old.listing.price_minor != new.listing.price_minor
                    || old.listing.living_area_sqft != new.listing.living_area_sqft
                    || !is_alertable(old)
            })
}

/// Whether the change makes the listing an undervalued alert: the new price per sqft is at
/// or below `undervalued_ratio` x the median, and this is news: a new listing, or the old
/// item was not undervalued (by the same median), or the price fell further. An unchanged
/// listing, or one whose price rose but stays under the bound, does not alert again.
pub fn undervalued(
    old: Option<&ListingItem>,
    new: &ListingItem,
    thresholds: &AlertThresholds,
    median: &MarketMedian,
) -> bool {
    if !(median.price_per_sqft.is_finite() && median.price_per_sqft > 0.0) {
        return false;
    }
    is_undervalued(new, thresholds, median)
        && old.is_none_or(|old| {
            !is_undervalued(old, thresholds, median)
                || new.listing.price_minor < old.listing.price_minor
        })
}

/// One alert due: what fired, on which version of the listing, with the figures the message
/// reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    /// The listing after the change.
    pub listing: ListingItem,
    pub price: PriceMove,
    /// The new price per sqft (dollars), where the living area is known.
    pub price_per_sqft: Option<f64>,
    pub median: Option<MarketMedian>,
    /// The change is the listing's first sighting (no old price).
    pub new_listing: bool,
}

impl Alert {
    /// The idempotency key: one alert of a kind per listing version. The version is the
    /// listing item's `sequence` (the Kinesis sequence number of the event that wrote it),
    /// leading zeros cut: a re-delivered stream record maps to the same key, a later price
    /// change to a new one.
    pub fn idempotency_key(&self) -> String {
        let version = self.listing.sequence.trim_start_matches('0');
        let version = if version.is_empty() { "0" } else { version };
        format!(
            "alert#{}#{}#{version}",
            self.kind.as_str(),
            self.listing.listing_id
        )
    }
}

/// The alerts a change makes, in the order of [`AlertKind::ALL`]: a price cut (a
/// `price_drop` when it reaches the thresholds, else a `price_cut`), undervalued, back on
/// market, new listing (when the thresholds ask for them), anomaly; the undervalued,
/// new-listing and anomaly alerts not for a baseline ([`ListingItem::baseline`]). `medians` are the
/// listing's market medians, where [`needs_median`] asked for them and the market table has
/// them.
pub fn evaluate(
    change: &ListingChange,
    thresholds: &AlertThresholds,
    medians: &Medians,
) -> Vec<Alert> {
    let (old, new) = (change.old.as_ref(), &change.new);
    // A new listing has no old price: its old price is its price.
    let old_price = old.map_or(new.listing.price_minor, |o| o.listing.price_minor);
    let alert = |kind| Alert {
        kind,
        listing: new.clone(),
        price: PriceMove::between(old_price, new.listing.price_minor),
        price_per_sqft: price_per_sqft(&new.listing),
        median: if kind == AlertKind::Anomaly {
            medians.city.clone()
        } else {
            medians.judged.clone()
        },
        new_listing: old.is_none(),
    };
    // A first read's listing (or history's) was on the market before: judged and flagged,
    // but not news (docs/alerts.md, "A market's first read").
    let news = !new.baseline;
    let mut alerts = Vec::new();
    if let Some(cut) = old.and_then(|old| price_cut(old, new)) {
        alerts.push(alert(if reaches_drop_thresholds(&cut, thresholds) {
            AlertKind::PriceDrop
        } else {
            AlertKind::PriceCut
        }));
    }
    if news
        && medians
            .judged
            .as_ref()
            .is_some_and(|m| undervalued(old, new, thresholds, m))
    {
        alerts.push(alert(AlertKind::Undervalued));
    }
    if old.is_some_and(|old| back_on_market(old, new)) {
        alerts.push(alert(AlertKind::BackOnMarket));
    }
    if news && thresholds.new_listing_alerts && old.is_none() && is_alertable(new) {
        alerts.push(alert(AlertKind::NewListing));
    }
    if news && newly_anomalous(old, new) {
        alerts.push(alert(AlertKind::Anomaly));
    }
    alerts
}
