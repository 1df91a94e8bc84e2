//! realty-stream's model: what every part of the pipeline speaks. The listing and its wire
//! format and bounds ([`listing`]), a listing's stored state and its item ([`state`]), the
//! markets as scopes ([`scope`]), the watched markets and their sources ([`markets`]), a price
//! move ([`price_move`]), money and figures as people read them ([`format`](mod@format)), and the one
//! error every port returns ([`ports::PortError`]). Plain types and functions: no AWS crate,
//! no I/O, no other realty crate. docs/architecture.md draws the crates above it.

// Test code is exempt from the 80-line bar (clippy.toml); the library is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod backoff;
pub mod config;
pub mod format;
pub mod listing;
pub mod markets;
pub mod ports;
pub mod price_move;
pub mod scope;
pub mod state;
pub mod stats;
pub mod varint;
