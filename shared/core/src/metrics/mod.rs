//! Exactly-once rolling market metrics: the pure aggregation ([`histogram`], [`aggregate`],
//! [`batch`]), the ports it needs ([`ports`]), the batch workflow over them ([`process`]),
//! and in-memory ports ([`memory`]) for tests and benchmarks. Definitions: docs/metrics.md.

pub mod aggregate;
pub mod batch;
pub mod histogram;
pub mod history;
pub mod interest;
pub mod memory;
pub mod ports;
pub mod process;
pub mod reconcile;
pub mod rents;
pub mod values;

#[cfg(test)]
pub(crate) mod tests;
