//! Price-drop and undervalued-listing alerts from the listing table's stream, published to
//! SNS once per listing change: the rules as plain functions ([`rules`]), the SNS message
//! ([`message`]), the thresholds ([`config`]), the ports ([`ports`]), the batch workflow
//! over them ([`process`]) and the feed of published alerts the API reads ([`feed`]).
//! `realty_aws::functions::alerts` decodes the stream records and wires the AWS adapters.
//! Users' view: docs/alerts.md.

// Test code is exempt from the 80-line bar (clippy.toml); the library is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod config;
pub mod feed;
pub mod message;
pub mod ports;
pub mod process;
pub mod rules;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
