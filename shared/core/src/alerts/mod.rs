//! Price-drop and undervalued-listing alerts from the listing table's stream, published to
//! SNS once per listing change: the rules as plain functions ([`rules`]), the SNS message
//! ([`message`]), the thresholds ([`config`]), the ports ([`ports`]) and the batch workflow
//! over them ([`process`]). `realty_aws::functions::alerts` decodes the stream records and
//! wires the AWS adapters. Users' view: docs/alerts.md.

pub mod config;
pub mod message;
pub mod ports;
pub mod process;
pub mod rules;
