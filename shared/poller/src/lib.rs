//! The poller: read listing APIs and crawl property portals ([`read`], [`fetch`],
//! [`read::portal`]), find what changed since the last complete read ([`detect`]), publish the
//! events ([`ports`]) and remember the read ([`run`]), with its settings ([`config`]), the
//! watched markets and request budgets of the model
//! ([`realty_model::markets`]; [`memory`] for tests), every page it read kept in the raw
//! layer ([`raw`]), and the imports of exports dropped in S3 ([`importer`]). `realty_aws::functions::poller` wires the HTTP
//! client and the AWS adapters.

// Test code is exempt from the 80-line bar (clippy.toml); the library is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod anti_entropy;
pub mod config;
pub mod deliver;
pub mod detect;
pub mod fetch;
pub mod gone;
pub mod hops;
pub mod importer;
pub mod memory;
pub mod ports;
pub mod raw;
pub mod raw_replay;
pub mod read;
pub mod replay;
pub mod reso_auth;
pub mod run;
mod run_market;
pub mod state;

/// Runs a future to completion on a current-thread runtime (the tests' proptests).
#[cfg(test)]
pub(crate) fn testing_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Serves `router` on a free loopback port for a test; its base URL (`http://127.0.0.1:PORT`).
#[cfg(test)]
pub(crate) async fn serve_on_loopback(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}")
}
