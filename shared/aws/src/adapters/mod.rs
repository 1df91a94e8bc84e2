//! AWS SDK adapters behind the ports, and the retry of partly failed calls they share.

#[cfg(feature = "alerts")]
pub mod alert_claims;
#[cfg(feature = "alerts")]
pub mod alert_sink;
pub mod config;
pub mod dynamodb;
#[cfg(feature = "metrics")]
pub mod firehose;
#[cfg(feature = "poller")]
pub mod imports;
#[cfg(feature = "poller")]
pub mod kinesis;
#[cfg(feature = "alerts")]
pub mod market_median;
#[cfg(feature = "poller")]
pub mod poll_state;
#[cfg(feature = "poller")]
pub mod raw_pages;
pub mod retry;
pub mod secrets;
#[cfg(feature = "alerts")]
pub mod sns;
#[cfg(feature = "metrics")]
pub mod sqs;

#[cfg(all(test, feature = "poller", feature = "metrics"))]
mod tests;
