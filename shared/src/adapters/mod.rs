//! AWS SDK adapters behind the ports, and the retry of partly failed calls they share.

pub mod dynamodb;
pub mod firehose;
pub mod retry;
pub mod sqs;

#[cfg(test)]
mod tests;
