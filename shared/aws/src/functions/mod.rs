//! Each function's wiring: its config from the environment, the AWS adapters behind the
//! domain's ports, and the Lambda event decoded into the domain's input and its outcome
//! encoded into Lambda's response.

#[cfg(feature = "alerts")]
pub mod alerts;
#[cfg(feature = "api")]
pub mod api;
#[cfg(feature = "importer")]
pub mod importer;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "poller")]
pub mod poller;
