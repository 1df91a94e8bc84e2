//! AWS SDK adapters behind the ports, and the retry of partly failed calls they share.

pub mod alert_sink;
pub mod config;
pub mod dynamodb;
pub mod firehose;
pub mod idempotency;
pub mod imports;
pub mod kinesis;
pub mod market_median;
pub mod poll_state;
pub mod raw_pages;
pub mod retry;
pub mod secrets;
pub mod sns;
pub mod sqs;

#[cfg(test)]
mod tests;
