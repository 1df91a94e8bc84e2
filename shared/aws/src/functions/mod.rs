//! Each function's wiring: its config from the environment, the AWS adapters behind the
//! domain's ports, and the Lambda event decoded into the domain's input and its outcome
//! encoded into Lambda's response.

pub mod alerts;
pub mod api;
pub mod importer;
pub mod metrics;
pub mod poller;
