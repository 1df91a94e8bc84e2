//! A market's first read is a baseline (docs/metrics.md, "A first read is a baseline"): the
//! listings the first read of a watch finds were on the market before it, so their `new`
//! events say so ([`ListingEvent::baseline`]): inventory, not news. The same holds for an
//! import or a replay of history ([`MarketRead::history`]): a listing it finds new whose
//! on-market date is before the day it was seen, or unknown.
//!
//! A watch is a source reading a market under its settings
//! ([`WatchedMarket::watched_since`](realty_model::markets::WatchedMarket::watched_since)). Its
//! baseline lasts from its first read to its first whole one (complete, or as far as a
//! portal's crawl goes), for at most [`MAX_BASELINE`]: a listing an incomplete first read
//! missed is inventory too when the next read finds it.

use chrono::{DateTime, TimeDelta, Utc};

use super::MarketRead;
use crate::ports::StoredPollState;
use crate::state::PollState;
use realty_model::listing::{Listing, ListingEvent};

/// Longest a baseline lasts without a whole read: a market whose reads never add up
/// (`poll_incomplete_reads`, alarmed) reports news again after it rather than never.
pub const MAX_BASELINE: TimeDelta = TimeDelta::days(1);

/// Starts a baseline at `at` on a state not yet read under `watched_since`: never saved (a
/// market or source added, rentals read for the first time), or last read under another
/// watch (the market re-added after its removal, a source added back, its search changed).
pub fn begin(
    stored: &mut StoredPollState,
    watched_since: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) {
    if stored.version.is_none() || stored.state.watched_since != watched_since {
        stored.state.baseline_since = Some(at);
        stored.state.watched_since = watched_since;
    }
}

/// The event of `listing`, which `previous` does not hold: a baseline during a baseline, or
/// from history with an on-market date before the day it was seen (or none); else news.
pub(super) fn new_event(
    previous: &PollState,
    read: &MarketRead,
    listing: Listing,
    poll_id: &str,
) -> ListingEvent {
    let listed_before = |l: &Listing| {
        l.on_market_date
            .is_none_or(|day| day < l.observed_at.date_naive())
    };
    if previous.baseline_since.is_some() || (read.history && listed_before(&listing)) {
        ListingEvent::baseline_listing(listing, poll_id)
    } else {
        ListingEvent::new_listing(listing, poll_id)
    }
}

/// The baseline after a read at `at`: ended by a `whole` read (complete, or a portal's as far
/// as its crawl goes), or once it has lasted [`MAX_BASELINE`].
pub(super) fn after_read(
    previous: &PollState,
    read: &MarketRead,
    complete: bool,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let whole = complete || read.crawl_limited;
    previous
        .baseline_since
        .filter(|since| !whole && at - *since < MAX_BASELINE)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::detect::tests::listing;
    use crate::detect::{DelistingGuard, detect, settle};

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-09-12T16:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
            + TimeDelta::hours(hour)
    }

    fn read(ids: &[u32], complete: bool) -> MarketRead {
        MarketRead {
            listings: ids.iter().map(|&id| listing(id, 10_000_000)).collect(),
            complete,
            ..MarketRead::default()
        }
    }

    /// Whether each event of the read is a baseline, by native id.
    fn baselines(previous: &PollState, read: MarketRead, hour: i64) -> (Vec<bool>, PollState) {
        let d = detect(
            previous,
            read,
            "p",
            at(hour),
            DelistingGuard { max_share: 1.0 },
        );
        (d.events.iter().map(|e| e.baseline).collect(), d.next)
    }

    /// A state never saved, or last read under another watch, begins a baseline; one read
    /// under the same watch does not, whatever it holds.
    #[test]
    fn a_baseline_begins_with_a_new_state_or_a_new_watch() {
        let watch = Some(at(-48));
        let mut fresh = StoredPollState::default();
        begin(&mut fresh, watch, at(0));
        assert_eq!(
            (fresh.state.baseline_since, fresh.state.watched_since),
            (Some(at(0)), watch)
        );
        // Polled as before: news. Also a market watched from before watches were kept.
        for kept in [watch, None] {
            let mut polled = StoredPollState {
                state: PollState {
                    watched_since: kept,
                    ..PollState::default()
                },
                version: Some("v1".into()),
            };
            begin(&mut polled, kept, at(0));
            assert_eq!(polled.state.baseline_since, None);
        }
        // The market removed and added again, or a source added back: a new watch.
        let mut readded = StoredPollState {
            state: PollState {
                watched_since: watch,
                ..PollState::default()
            },
            version: Some("v1".into()),
        };
        begin(&mut readded, Some(at(-1)), at(0));
        assert_eq!(
            (readded.state.baseline_since, readded.state.watched_since),
            (Some(at(0)), Some(at(-1)))
        );
    }

    /// Every listing a baseline's reads find is a baseline until a complete read, which ends
    /// it; then a listing found new is news.
    #[test]
    fn a_baseline_lasts_until_a_complete_read() {
        let reading = PollState {
            baseline_since: Some(at(0)),
            ..PollState::default()
        };
        let (first, next) = baselines(&reading, read(&[1, 2], false), 0);
        assert_eq!(first, [true, true]);
        assert_eq!(next.baseline_since, Some(at(0)));
        let (second, next) = baselines(&next, read(&[1, 2, 3], true), 1);
        assert_eq!(second, [true]);
        assert_eq!(next.baseline_since, None);
        let (third, _) = baselines(&next, read(&[1, 2, 3, 4], true), 2);
        assert_eq!(third, [false]);
        // A portal's read as far as its crawl goes ends it too.
        let crawled = MarketRead {
            crawl_limited: true,
            ..read(&[1], false)
        };
        let (events, next) = baselines(&reading, crawled, 0);
        assert_eq!((events, next.baseline_since), (vec![true], None));
    }

    /// A market whose reads never add up reports news after [`MAX_BASELINE`], not never.
    #[test]
    fn a_baseline_without_a_whole_read_ends_after_its_longest() {
        let reading = PollState {
            baseline_since: Some(at(0)),
            ..PollState::default()
        };
        let just_before = MAX_BASELINE.num_hours() - 1;
        let (_, next) = baselines(&reading, read(&[1], false), just_before);
        assert_eq!(next.baseline_since, Some(at(0)));
        let (events, next) = baselines(&reading, read(&[1], false), MAX_BASELINE.num_hours());
        assert_eq!((events, next.baseline_since), (vec![true], None));
    }

    /// A baseline whose events were not all published goes on: the listings found again
    /// next time are inventory still.
    #[test]
    fn a_baseline_not_delivered_goes_on() {
        let reading = PollState {
            baseline_since: Some(at(0)),
            ..PollState::default()
        };
        let d = detect(
            &reading,
            read(&[1, 2], true),
            "p",
            at(0),
            DelistingGuard::default(),
        );
        assert_eq!(d.next.baseline_since, None);
        let kept = settle(&reading, d, &BTreeSet::from([1]));
        assert_eq!(kept.baseline_since, Some(at(0)));
        assert_eq!(kept.listings.len(), 1);
    }

    /// History (an import, a replay) finds a listing new: inventory when its on-market date
    /// is before the day it was seen, or unknown; news when it is that day or later.
    #[test]
    fn history_is_inventory_unless_listed_the_day_it_was_seen() {
        let seen = listing(1, 10_000_000);
        let day = seen.observed_at.date_naive();
        let history = |dates: &[Option<chrono::NaiveDate>]| MarketRead {
            listings: dates
                .iter()
                .enumerate()
                .map(|(i, date)| {
                    let mut l = listing(i as u32 + 1, 10_000_000);
                    l.on_market_date = *date;
                    l
                })
                .collect(),
            history: true,
            ..MarketRead::default()
        };
        let dates = [day.pred_opt(), Some(day), day.succ_opt(), None];
        let (events, _) = baselines(&PollState::default(), history(&dates), 0);
        assert_eq!(events, [true, false, false, true]);
        // A poll's read is not history: news, whatever the dates.
        let polled = MarketRead {
            history: false,
            ..history(&dates)
        };
        let (events, _) = baselines(&PollState::default(), polled, 0);
        assert_eq!(events, [false; 4]);
    }

    /// `realty markets add` dates the watch of each source it makes read anew: all of a new
    /// market's, a source added, every source when the search widens or rentals are turned
    /// on; a source that reads as before keeps its time; a removed source loses its own.
    #[test]
    fn a_source_reads_a_new_watch_when_added_or_its_search_changes() {
        use realty_model::markets::SourceKind::{Realtor, Zillow};
        use realty_model::markets::WatchedMarket;
        let mut first = WatchedMarket::with_defaults("nashville-tn", vec!["zillow".into()]);
        first.rentals = false;
        first.watch_from(None, at(0));
        assert_eq!(first.watch_of(Zillow), Some(at(0)));
        let mut slower = first.clone();
        slower.poll_every_minutes = 120;
        slower.watch_from(Some(&first), at(1));
        assert_eq!(slower.watch_of(Zillow), Some(at(0)));
        let mut two = first.clone();
        two.sources.push("realtor".into());
        two.watch_from(Some(&first), at(2));
        assert_eq!(
            (two.watch_of(Zillow), two.watch_of(Realtor)),
            (Some(at(0)), Some(at(2)))
        );
        assert_eq!(two.validate(), Ok(()));
        let mut wider = two.clone();
        wider.min_price = Some(100_000);
        wider.watch_from(Some(&two), at(3));
        assert_eq!(wider.watch_of(Zillow), Some(at(3)));
        let mut rentals = two.clone();
        rentals.rentals = true;
        rentals.watch_from(Some(&two), at(4));
        assert_eq!(rentals.watch_of(Realtor), Some(at(4)));
        let mut fewer = two.clone();
        fewer.sources.pop();
        fewer.watch_from(Some(&two), at(5));
        assert_eq!(fewer.watched_since.len(), 1);
        // A watch time of a source the market does not name is refused, one past the
        // sources (the map's bound).
        let mut stray = fewer.clone();
        stray.watched_since.insert("realtor".into(), at(5));
        assert!(stray.validate().is_err());
        // A market watched before times were kept reads as before when only its interval
        // changes (no baseline), and a source added to it gets a time.
        let mut legacy = two.clone();
        legacy.watched_since.clear();
        let mut later = legacy.clone();
        later.poll_every_minutes = 30;
        later.sources.push("reso".into());
        later.watch_from(Some(&legacy), at(6));
        assert_eq!(
            later.watched_since,
            [("reso".to_owned(), at(6))].into_iter().collect()
        );
    }
}
