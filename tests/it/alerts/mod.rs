//! The alerts function against the local AWS: listing items change in the listing table,
//! the table's real stream records (read through the DynamoDB Streams API and turned into the
//! Lambda event shape) go through the handler, and SQS queues subscribed to the alert topic
//! with filter policies receive exactly the alerts they asked for, once, however often the
//! batch is replayed.

mod batching;
mod claims;
mod delivery;
mod helpers;
mod publish_failures;
mod sns_limit;

use batching::the_same_events_fire_the_same_alerts_however_metrics_batched_them;
use claims::a_live_claim_is_not_taken_over_and_an_expired_one_is;
use delivery::subscribers_get_each_alert_they_filter_for_once;
use publish_failures::{
    a_publish_without_an_answer_is_sent_once_and_its_record_comes_again,
    an_unreachable_topic_fails_the_batch_and_the_replay_delivers_once,
};
use sns_limit::an_alert_over_the_sns_limit_goes_to_the_error_sink_and_one_at_it_is_delivered;

// What the investor alerts' tests (`alerts_investors`) use of these.
pub(crate) use batching::kinesis_record;
pub(crate) use helpers::{
    Received, Stack, drain, ensure_clean, expected, keys, lambda_event, stack, subscribe,
};

crate::async_tests!(
    subscribers_get_each_alert_they_filter_for_once,
    an_unreachable_topic_fails_the_batch_and_the_replay_delivers_once,
    an_alert_over_the_sns_limit_goes_to_the_error_sink_and_one_at_it_is_delivered,
    a_live_claim_is_not_taken_over_and_an_expired_one_is,
    a_publish_without_an_answer_is_sent_once_and_its_record_comes_again,
    the_same_events_fire_the_same_alerts_however_metrics_batched_them,
);
