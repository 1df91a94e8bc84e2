//! realty-stream's domain: the listing model and its wire format, the sources' parsing, the
//! poller's change detection, the metrics' exactly-once aggregation and the alert rules, as
//! plain functions over plain types. What they need from outside (streams, tables, queues,
//! topics, secrets) they reach through the small traits in each module's `ports`, with
//! [`ports::PortError`] their one error; `realty-aws` implements them over the AWS SDK, and
//! in-memory ones serve tests and benchmarks. This crate depends on no AWS crate.
//! docs/architecture.md draws the crates and the data's path through them.

pub mod alerts;
pub mod api;
pub mod backoff;
pub mod config;
pub mod format;
pub mod importer;
pub mod lake;
pub mod listing;
pub mod metrics;
pub mod poller;
pub mod ports;
pub mod sources;
pub mod stats;
pub mod store;
