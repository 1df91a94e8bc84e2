//! `realty demo`, run as a user runs it (the binary, against this run's local AWS), checked
//! against what really happened:
//!
//! - the price-drop alerts it raised are exactly the simulator's ground truth of drops at or
//!   over the threshold, as the poller could see them (net changes between two polls);
//! - the market figures of its report agree with a recomputation, written here and
//!   independent of the metrics code, from the events Firehose wrote to S3;
//! - its first poll records the markets' inventory: no alert for a listing on the market
//!   before they were added, and the first day's new listings are those listed that day;
//! - its HTML report, opened from its file in headless Chromium, draws every chart (the
//!   dashboard's chart code: a canvas with a size and values) without a script error
//!   (skipped, with a reason, where Chromium is not installed);
//! - and, on their own, the local event source mappings: bisection down to a poison record,
//!   its description on the on-failure queue, the MODIFY filter of the alerts trigger.

mod figures;
mod first_read;
mod ground_truth;
mod helpers;
mod rendering;
mod run;
mod runner;

use run::the_demo_raises_the_true_alerts_and_reports_what_the_lake_holds;
use runner::the_runner_bisects_to_the_poison_record_describes_it_and_filters_removes;

// What other tests (`operations`, `monitoring`, `portals`, `dashboard`, `api`) use of these.
pub(crate) use helpers::{realty_binary, workspace_binary};
pub(crate) use runner::pump_until_quiet;

crate::async_tests!(
    the_demo_raises_the_true_alerts_and_reports_what_the_lake_holds,
    the_runner_bisects_to_the_poison_record_describes_it_and_filters_removes,
);
