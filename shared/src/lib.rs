//! realty-stream's shared library: domain types and pure logic, the ports (traits) the
//! functions use to reach AWS, and the AWS SDK adapters behind them.
//!
//! Handlers in `functions/*` stay thin: they build a config and clients once, then call
//! into this crate.

pub mod adapters;
pub mod alerts;
pub mod aws;
pub mod backoff;
pub mod config;
pub mod items;
pub mod listing;
pub mod metrics;
pub mod poller;
pub mod sources;
pub mod telemetry;
