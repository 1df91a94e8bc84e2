//! Integration tests against a local AWS. One emulator serves the whole run (see
//! `realty_tests::TestAws`); each test provisions its own stack under a unique prefix.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

mod alerts;
mod alerts_investors;
mod api;
mod bounds;
mod dashboard;
mod demo;
mod demo_lake;
mod demo_rents;
mod emulator;
mod first_read;
mod importer;
mod lake;
mod lake_catalog;
mod metrics;
mod monitoring;
mod operations;
mod poller;
mod portals;
mod portals_gone;
mod provisioning;
mod raw;
mod realtor;
mod reconcile;
mod rentals;
mod replay;
mod reso;
mod second_emulator;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use realty_tests::TestAws;
use realty_tests::calls::{self, CallLog, TEST_CALLS};

/// Ten times the longest test (the demo, under a minute on two cores with the others beside
/// it); past it a test has hung, and failing it with the emulator's last words beats
/// stalling the run until CI's own limit.
const TEST_DEADLINE: Duration = Duration::from_secs(10 * 60);

type TestFn = fn(Arc<TestAws>) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Failed>>>>;

/// Every test of the run, by name.
fn tests() -> Vec<(&'static str, TestFn)> {
    let mut all: Vec<(&'static str, TestFn)> = Vec::new();
    all.extend(provisioning::tests());
    all.extend(lake_catalog::tests());
    all.extend(emulator::tests());
    all.extend(metrics::tests());
    all.extend(reconcile::tests());
    all.extend(bounds::tests());
    all.extend(poller::tests());
    all.extend(portals::tests());
    all.extend(portals_gone::tests());
    all.extend(realtor::tests());
    all.extend(rentals::tests());
    all.extend(replay::tests());
    all.extend(raw::tests());
    all.extend(importer::tests());
    all.extend(lake::tests());
    all.extend(operations::tests());
    all.extend(reso::tests());
    all.extend(monitoring::tests());
    all.extend(api::tests());
    all.extend(dashboard::tests());
    all.extend(alerts::tests());
    all.extend(alerts_investors::tests());
    all.extend(first_read::tests());
    all.extend(demo::tests());
    all
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let tests = tests();
    let unknown = second_emulator::unknown(tests.iter().map(|(name, _)| *name));
    if !unknown.is_empty() {
        eprintln!("tests/it/second_emulator.rs names tests that do not exist: {unknown:?}");
        return ExitCode::FAILURE;
    }
    let listing_only = args.list;
    let aws = if listing_only {
        None
    } else {
        match TestAws::start() {
            Ok(aws) => Some(Arc::new(aws)),
            Err(e) => {
                eprintln!("cannot start the local AWS for the integration tests: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let emulator_dependent_only = second_emulator::selected();
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            let aws = aws.clone();
            let unselected =
                emulator_dependent_only && !second_emulator::is_emulator_dependent(name);
            Trial::test(name, move || {
                let aws = aws.ok_or("no local AWS")?;
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                let emulator_log = aws.emulator_log.clone();
                let outcome = runtime.block_on(async {
                    let stacks = Default::default();
                    let calls = CallLog::default();
                    let ran = realty_tests::TEST_STACKS
                        .scope(
                            stacks,
                            TEST_CALLS.scope(calls.clone(), async {
                                let ran =
                                    tokio::time::timeout(TEST_DEADLINE, test(aws.clone())).await;
                                let stacks = realty_tests::take_test_stacks();
                                (ran, stacks)
                            }),
                        )
                        .await;
                    let (ran, stacks) = ran;
                    let retired = aws.retire(&stacks).await;
                    let denied = calls::denied(
                        &calls.take(),
                        &stacks,
                        &calls::partition_keys(&aws.template()),
                    );
                    let outcome = match ran {
                        // Emulators enforce no IAM: a call the role refuses fails here.
                        Ok(Ok(())) if !denied.is_empty() => Err(format!(
                            "calls their functions' roles do not allow, as deployed \
                             (template.yaml):\n{}",
                            denied.join("\n")
                        )
                        .into()),
                        Ok(outcome) => outcome,
                        Err(_) => Err(format!(
                            "no result within {} s: the test hangs{}",
                            TEST_DEADLINE.as_secs(),
                            emulator_log.map_or(String::new(), |log| format!(
                                "; the end of the emulator's log ({}):\n{}",
                                log.display(),
                                realty_tests::tail(&log, 30)
                            ))
                        )
                        .into()),
                    };
                    // A test that passed but left its streams behind fails: the next ones
                    // would meet the quota instead.
                    outcome.and(retired.map_err(Failed::from))
                });
                // A hung call may hold a blocking thread: do not wait for it.
                runtime.shutdown_timeout(Duration::from_secs(5));
                outcome
            })
            .with_ignored_flag(unselected)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(aws) = aws.and_then(Arc::into_inner) {
        aws.stop();
    }
    conclusion.exit_code()
}

/// Turns an `async fn(Arc<TestAws>) -> Result<(), Failed>` into a [`TestFn`].
#[macro_export]
macro_rules! async_tests {
    ($($name:ident),* $(,)?) => {
        pub fn tests() -> Vec<(&'static str, $crate::TestFn)> {
            vec![$((
                concat!(module_path!(), "::", stringify!($name)),
                |aws| Box::pin($name(aws)) as std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), libtest_mimic::Failed>>>>,
            )),*]
        }
    };
}
