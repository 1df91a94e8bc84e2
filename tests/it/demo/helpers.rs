//! What the demo tests share: the demo's settings, the run's endpoint in a region of the
//! demo's own, and the `realty` binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use libtest_mimic::Failed;
use realty_tests::{TestAws, ensure, run_bounded};
use tokio::process::Command;

pub(super) const SEED: u64 = 11;
/// Each market from its own source, as the demo polls its default markets (its `--source`
/// list). Through RESO a listing cut and sold between two polls arrives as one `changed`
/// event (status sold, price down): a delisting, not a cut, as the recount here says too.
pub(super) const MARKETS: [&str; 3] = ["nashville-tn", "syracuse-ny", "austin-tx"];
pub(super) const SOURCES: [&str; 3] = ["zillow", "realtor", "reso"];
/// The simulated market's activity follows the local hour and weekday, and the demo starts
/// three days before the current hour: at 120 listings a market, 12 of the week's 168 start
/// hours gave fewer than 3 cuts of 15 % (the template's threshold) between polls, too few for
/// the check below (2026-11-25 08:00 UTC gave 2); at 240 the fewest in the week is 5.
pub(super) const LISTINGS: u32 = 240;
/// The charts the report draws per market (the dashboard's, charts.js).
pub(super) const CHARTS: usize = 6;
/// Eight: a market has a close 7 days before its last, so its 7-day change is checked.
pub(super) const DAYS: i64 = 8;
/// A poll every other day: the 7-day change still has its close 8 days back, in 5 polls.
pub(super) const STEP_DAYS: i64 = 2;
pub(super) const ACTIVITY: f64 = 20.0;
/// Prices below this are placeholders the sources reject (`MIN_PLAUSIBLE_SALE_PRICE`).
pub(super) const MIN_PLAUSIBLE_PRICE: u64 = 5_000;
/// Bounds on the commands this test runs, each many times what it takes here, so that one
/// that hangs fails the test with its output instead of stalling the run.
const BUILD_DEADLINE: Duration = Duration::from_secs(20 * 60);
pub(super) const DEMO_DEADLINE: Duration = Duration::from_secs(8 * 60);
/// Regions of their own: moto allows 50 Firehose delivery streams per region, one per stack,
/// and the other integration tests provision theirs in the default region.
pub(super) const DEMO_REGION: &str = "eu-west-1";
pub(super) const RUNNER_REGION: &str = "us-west-2";

/// The test run's endpoint, in `region`.
pub(super) async fn sdk_in(aws: &TestAws, region: &'static str) -> aws_config::SdkConfig {
    aws.sdk_config()
        .await
        .into_builder()
        .region(aws_config::Region::new(region))
        .build()
}

/// Newest modification time of the files under `dir` (recursively).
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    let mut latest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        latest = latest.max(time);
    }
    latest
}

/// The `realty` binary of this checkout. `cargo test --workspace` builds it (for the CLI's
/// own tests) next to this test's binary; when it is missing or older than the sources it is
/// built here. The nested cargo gets the environment without the variables cargo sets for
/// tests, so it does not see a changed environment and rebuild everything.
pub(crate) async fn realty_binary(project_root: &Path, log_dir: &Path) -> Result<PathBuf, Failed> {
    workspace_binary(project_root, log_dir, "realty-cli", "realty").await
}

/// The binary `bin` of the package `package` of this checkout (a function's bootstrap, the
/// `realty` CLI), built as [`realty_binary`] says.
pub(crate) async fn workspace_binary(
    project_root: &Path,
    log_dir: &Path,
    package: &str,
    bin: &str,
) -> Result<PathBuf, Failed> {
    // This test runs from target/<profile>/deps/; the binary sits in target/<profile>/.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory above the test binary")?;
    let binary = profile_dir.join(bin);
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let sources = [
        "cli/src",
        "functions",
        "infra/src",
        "shared",
        "sim/src",
        "template.yaml",
        "Cargo.lock",
    ]
    .iter()
    .filter_map(|p| {
        let path = project_root.join(p);
        if path.is_dir() {
            newest(&path)
        } else {
            std::fs::metadata(path).and_then(|m| m.modified()).ok()
        }
    })
    .max();
    if built.is_none() || built < sources {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(project_root)
            .args(["build", "--quiet", "-p", package, "--bin", bin]);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            let set_for_tests = name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || name.starts_with("CARGO_BIN_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&name.as_str());
            if set_for_tests {
                command.env_remove(&name);
            }
        }
        let output = run_bounded(command, BUILD_DEADLINE, log_dir, "cargo-build").await?;
        ensure(
            output.status.success(),
            format!(
                "cargo build -p {package} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ),
        )?;
    }
    ensure(binary.exists(), format!("{} is missing", binary.display()))?;
    Ok(binary)
}
