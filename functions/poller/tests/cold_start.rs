//! The bootstrap as Lambda starts it, without its configuration: it stops at once, naming
//! the setting it lacks (typed configuration checked at start-up), and calls no AWS.
//! (`cargo test --workspace` builds the bootstrap for this test, with the workspace's
//! features: the memory test of `tests/it` runs the same binary.)

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use std::process::Command;

#[test]
fn a_cold_start_without_its_configuration_names_what_is_missing() {
    let output = Command::new(env!("CARGO_BIN_EXE_poller"))
        .env_clear()
        .output()
        .expect("the bootstrap runs");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("REALTY_LISTING_EVENTS_STREAM"),
        "the bootstrap said: {said}"
    );
}
