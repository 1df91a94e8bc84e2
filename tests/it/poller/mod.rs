//! The poller against the simulated market and the local AWS: it finds exactly what the
//! simulator's ground truth says happened, survives every fault mode, and never advances a
//! market past an event it could not publish.

mod advancing;
mod anti_entropy;
mod delisting;
mod ground_truth;
mod helpers;
mod memory;
mod oversize;
mod reso_cursor;

use advancing::{
    events_that_cannot_be_published_are_found_again, overlapping_polls_cannot_both_advance_a_market,
};
use anti_entropy::a_lost_delisting_is_reported_then_republished_once_by_anti_entropy;
use delisting::{
    a_listing_that_becomes_a_reject_stays_listed, a_mass_loss_waits_for_a_second_read,
    a_null_realtor_search_is_not_an_empty_market, a_page_without_a_total_infers_no_delisting,
    listings_hidden_from_a_read_are_not_delisted,
};
use ground_truth::{
    every_fault_mode_loses_nothing_and_invents_no_delisting,
    two_polls_find_exactly_the_ground_truth,
};
use memory::a_100000_row_import_then_a_poll_stays_within_the_poller_s_memory;
use oversize::{
    a_gzip_bomb_or_a_huge_page_fails_its_read_alone, an_event_over_1_mib_is_rejected_alone,
};
use reso_cursor::reso_reads_records_committed_late_at_the_cursor;

// What the tests of the other sources (`realtor`, `rentals`, `portals`) use of these.
pub(crate) use delisting::hidden_listings_against;
pub(crate) use ground_truth::{
    every_fault_mode_against, truth_id, two_polls_against_the_ground_truth,
};
pub(crate) use helpers::{MARKETS, by_listing, poll, sim_of, source_poller, stack, stream_events};

crate::async_tests!(
    two_polls_find_exactly_the_ground_truth,
    every_fault_mode_loses_nothing_and_invents_no_delisting,
    events_that_cannot_be_published_are_found_again,
    overlapping_polls_cannot_both_advance_a_market,
    a_page_without_a_total_infers_no_delisting,
    a_listing_that_becomes_a_reject_stays_listed,
    a_null_realtor_search_is_not_an_empty_market,
    a_mass_loss_waits_for_a_second_read,
    listings_hidden_from_a_read_are_not_delisted,
    a_gzip_bomb_or_a_huge_page_fails_its_read_alone,
    an_event_over_1_mib_is_rejected_alone,
    reso_reads_records_committed_late_at_the_cursor,
    a_100000_row_import_then_a_poll_stays_within_the_poller_s_memory,
    a_lost_delisting_is_reported_then_republished_once_by_anti_entropy,
);
