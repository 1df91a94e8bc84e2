//! The curated lake (docs/lake.md): Apache Iceberg tables in the stack's Glue catalog, data
//! in the lake bucket under `iceberg/<table>/`, written by the curator function and read
//! by `realty check` and the tests:
//!
//! - `listing_events`: every accepted event once, appended with an anti-join on the event
//!   id ([`append`]) committed only onto the snapshot it was planned against;
//! - `listings` and `market_daily`: rewritten whole when they change, one snapshot per
//!   rewrite ([`replace`]), so time travel returns what they held then.
//!
//! The rows themselves are `crate::rows`'s plain types; this crate turns them into
//! Arrow batches and Parquet files ([`batches`]) and commits them through the `iceberg`
//! crate with its Glue catalog.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod append;
pub mod batches;
pub mod catalog;
pub mod check;
pub mod commit;
pub mod curate;
pub mod delivered;
pub mod read;
pub mod replace;
pub mod rows;
pub mod schema;
pub mod write;

pub use catalog::{Lake, LakeConfig};

/// Why a lake operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    #[error("arrow conversion: {0}")]
    Arrow(#[from] serde_arrow::Error),
    #[error("glue: {0}")]
    Glue(String),
    /// Another writer committed first; the operation was re-planned and still lost.
    #[error("commit conflict on {table}: another writer kept committing first")]
    Conflict { table: String },
    #[error("{0}")]
    Invalid(String),
}
