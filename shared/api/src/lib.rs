//! The market API: what `functions/api` answers and `realty serve` serves locally, as plain
//! functions over the stores' ports. [`routes`] reads a request into a [`routes::Route`] (or a
//! 4xx with a clear message), [`views`] builds the answers (the same market report
//! `realty report --json` prints), [`respond`](fn@respond) ties them together. The contract is the
//! OpenAPI document [`OPENAPI`] (served at `/openapi.json`, checked against the routes by
//! tests).

// Test code is exempt from the 80-line bar (clippy.toml); the library is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod auth;
pub mod config_cache;
pub mod dashboard;
pub mod lists;
pub mod respond;
pub mod routes;
pub mod views;

#[cfg(test)]
mod feed_tests;
#[cfg(test)]
mod interest_tests;

pub use respond::{ApiResponse, CONTENT_SECURITY_POLICY, JSON, respond};

/// The OpenAPI 3 document of the API.
pub const OPENAPI: &str = include_str!("openapi.json");
