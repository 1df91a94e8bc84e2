//! The simulator served over HTTP and read as a poller reads the real APIs. One test
//! binary rather than one per file, so the shared client and readers are compiled and
//! linked once and every part of them is used.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

mod client;
mod readers;

mod faults;
mod ground_truth;
mod http_api;
