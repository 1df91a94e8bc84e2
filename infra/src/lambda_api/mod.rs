//! A local Lambda Runtime API (2018-06-01): runs a function's real `bootstrap` binary as a
//! child process, measures its cold start, invokes it with events and reads its peak memory.
//!
//! [`RuntimeApi`] is the HTTP side, as much of it as the `lambda_runtime` crate uses: the
//! function long-polls `GET /runtime/invocation/next`, answers each event with
//! `POST /runtime/invocation/{id}/response` or `.../{id}/error`, and may report a failed start
//! with `POST /runtime/init/error`. [`LambdaProcess`] starts a binary against it with the
//! environment Lambda gives a function (see [`LambdaProcess::start`]).
//!
//! **Cold start** here is the time from spawning the process to its first `next` request:
//! Lambda's Init phase (the runtime starting, reading configuration, building SDK and HTTP
//! clients, whatever `main` does before it polls). It leaves out what comes before Init on
//! Lambda: downloading and unpacking the deployment package and starting the Firecracker
//! micro-VM. This machine is not Lambda's either (there, CPU scales with the memory setting),
//! so compare these numbers with each other rather than with CloudWatch's `Init Duration`.
//!
//! **Peak memory** is the process's `VmHWM` (peak resident set) from `/proc`; Lambda's
//! `Max Memory Used` counts the whole sandbox, so it reads somewhat higher.

mod environment;
mod process;
mod routes;
mod runtime_api;

#[cfg(test)]
mod tests;

use std::time::Duration;

use serde_json::Value;

pub use crate::invocation::{FunctionError, MAX_INVOKE_PAYLOAD_BYTES};
pub use environment::{DEFAULT_MEMORY_MB, DEFAULT_REGION};
pub use process::LambdaProcess;
pub use runtime_api::RuntimeApi;

#[derive(Debug, thiserror::Error)]
pub enum LambdaApiError {
    #[error("cannot start the local Lambda Runtime API: {0}")]
    Bind(std::io::Error),
    #[error("cannot open the function log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("{binary} did not become ready: {reason}; its log ({log}) ends with:\n{tail}")]
    NotReady {
        binary: String,
        reason: String,
        log: String,
        tail: String,
    },
    #[error("{binary} exited during an invocation ({status}); its log ({log}) ends with:\n{tail}")]
    Exited {
        binary: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error(
        "the event is {bytes} bytes, over the limit of {limit} (Lambda's is {MAX_INVOKE_PAYLOAD_BYTES})"
    )]
    EventTooLarge { bytes: usize, limit: usize },
    #[error("invocation {request_id} got no response within {timeout:?} ({stage})")]
    Timeout {
        request_id: String,
        timeout: Duration,
        /// Whether the function had fetched the event or never asked for it.
        stage: &'static str,
    },
    #[error("the response to invocation {request_id} is not JSON: {reason}")]
    BadResponse { request_id: String, reason: String },
    #[error("the local Lambda Runtime API has shut down")]
    Closed,
}

/// One completed invocation.
#[derive(Debug, Clone)]
pub struct CompletedInvocation {
    pub request_id: String,
    /// The function's JSON response, or the error it reported.
    pub result: Result<Value, FunctionError>,
    /// From handing the event out (the answer to `next`) to the function's response: the
    /// handler plus the runtime's own work, without time spent waiting for `next`.
    pub duration: Duration,
}
