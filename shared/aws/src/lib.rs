//! realty-stream's AWS side: the SDK adapters behind `realty-core`'s ports ([`adapters`]),
//! the DynamoDB item mapping ([`items`]), SDK configuration ([`sdk`]), logs and metrics
//! ([`telemetry`]), and each function's wiring from its Lambda event to the domain
//! ([`functions`]). The functions' `main.rs` build config and clients once through this
//! crate, then hand each event to it. docs/architecture.md draws the crates.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod adapters;
pub mod functions;
pub mod items;
pub mod sdk;
pub mod telemetry;
