//! The market API: what `functions/api` answers and `realty serve` serves locally, as plain
//! functions over the stores' ports. [`routes`] reads a request into a [`routes::Route`] (or a
//! 4xx with a clear message), [`views`] builds the answers (the same market report
//! `realty report --json` prints), [`respond`](fn@respond) ties them together. The contract is the
//! OpenAPI document [`OPENAPI`] (served at `/openapi.json`, checked against the routes by
//! tests).

pub mod auth;
pub mod config_cache;
pub mod dashboard;
pub mod lists;
pub mod ports;
pub mod respond;
pub mod routes;
pub mod views;

pub use respond::{ApiResponse, CONTENT_SECURITY_POLICY, JSON, respond};

/// The OpenAPI 3 document of the API.
pub const OPENAPI: &str = include_str!("openapi.json");
