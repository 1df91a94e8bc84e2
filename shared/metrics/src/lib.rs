//! Exactly-once rolling market metrics: the pure aggregation ([`histogram`], [`aggregate`],
//! [`batch`]), the ports it needs ([`ports`]), the batch workflow over them ([`process`]), its compute alone ([`kernel`]),
//! and in-memory ports ([`memory`]) for tests and benchmarks. Definitions: docs/metrics.md.

// Test code is exempt from the 80-line bar (clippy.toml); the library is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod aggregate;
pub mod batch;
pub mod histogram;
pub mod interest;
pub mod items;
pub mod kernel;
pub mod memory;
pub mod ports;
pub mod process;
pub mod reader;
pub mod reconcile;
pub mod values;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
pub(crate) mod tests;
