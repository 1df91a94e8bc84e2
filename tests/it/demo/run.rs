//! `realty demo` run as a user runs it, its report checked against what really happened.

use std::collections::BTreeMap;
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_tests::{TestAws, ensure, run_bounded};
use serde_json::Value;
use tokio::process::Command;

use super::figures::{check_figures_against_the_lake, check_zip_medians, lake_events};
use super::first_read::check_first_read;
use super::ground_truth::check_alerts_against_ground_truth;
use super::helpers::{
    ACTIVITY, CHARTS, DAYS, DEMO_DEADLINE, DEMO_REGION, LISTINGS, MARKETS, SEED, SOURCES,
    STEP_DAYS, realty_binary, sdk_in,
};
use super::rendering::check_rendering;

pub(super) async fn the_demo_raises_the_true_alerts_and_reports_what_the_lake_holds(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let state_dir = std::env::temp_dir().join(format!("realty-demo-it-{}", std::process::id()));
    let report_dir = state_dir.join("report");
    let prefix = aws.unique_stack_name();
    let realty = realty_binary(&aws.project_root, &state_dir).await?;
    let mut demo = Command::new(&realty);
    demo.args([
        "demo",
        "--seed",
        &SEED.to_string(),
        "--markets",
        &MARKETS.join(","),
        "--source",
        &SOURCES.join(","),
        "--listings",
        &LISTINGS.to_string(),
        "--days",
        &DAYS.to_string(),
        "--step-hours",
        &(STEP_DAYS * 24).to_string(),
        "--activity",
        &ACTIVITY.to_string(),
        "--prefix",
        &prefix,
        "--report-dir",
    ])
    .arg(&report_dir)
    .env("AWS_ENDPOINT_URL", &aws.endpoint)
    .env("AWS_REGION", DEMO_REGION)
    .env("REALTY_STATE_DIR", &state_dir)
    .env("REALTY_NO_PROGRESS", "1");
    let output = run_bounded(demo, DEMO_DEADLINE, &state_dir, "realty-demo").await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure(
        output.status.success(),
        format!(
            "realty demo failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    )?;
    ensure(
        stdout.contains("alert latency") && stdout.contains("report:"),
        format!("the demo printed no summary:\n{stdout}"),
    )?;
    check_output_reads(&stdout)?;
    check_output_reads(&String::from_utf8_lossy(&output.stderr))?;
    let report: Value = serde_json::from_slice(&std::fs::read(report_dir.join("report.json"))?)?;
    let run = &report["run"];
    let polled: BTreeMap<String, String> = serde_json::from_value(run["market_sources"].clone())?;
    let asked: BTreeMap<String, String> = MARKETS
        .iter()
        .zip(SOURCES)
        .map(|(m, s)| (m.to_string(), s.to_owned()))
        .collect();
    ensure(
        polled == asked,
        format!("the demo polled {polled:?}, not a market from each source"),
    )?;

    check_alerts_against_ground_truth(&report).map_err(|e| format!("the alerts: {e:?}"))?;
    let bucket = run["data_lake_bucket"]
        .as_str()
        .ok_or("no data_lake_bucket in the report")?;
    let events = lake_events(&aws, bucket)
        .await
        .map_err(|e| format!("the lake: {e:?}"))?;
    check_figures_against_the_lake(&report, &events).map_err(|e| format!("the figures: {e:?}"))?;
    check_first_read(&report, &events).map_err(|e| format!("the first read: {e:?}"))?;
    // The markets whose source lists rentals (Zillow, Realtor.com) have their rents.
    let with_rentals: Vec<&str> = MARKETS
        .iter()
        .zip(SOURCES)
        .filter(|(_, s)| matches!(*s, "zillow" | "realtor"))
        .map(|(m, _)| *m)
        .collect();
    crate::demo_rents::check_rents_against_the_lake(&report, &events, &with_rentals)
        .map_err(|e| format!("the rents: {e:?}"))?;
    let cli = crate::demo_lake::DemoCli {
        realty: &realty,
        state_dir: &state_dir,
        region: DEMO_REGION,
    };
    check_zip_medians(&cli, &events)
        .await
        .map_err(|e| format!("the ZIPs' medians: {e:?}"))?;
    crate::demo_lake::check_lake_tables(
        &aws.project_root,
        &sdk_in(&aws, DEMO_REGION).await,
        &report,
        &events,
        &cli,
    )
    .await
    .map_err(|e| format!("the lake's tables: {e:?}"))?;
    check_rendering(&report_dir.join("index.html"), MARKETS.len() * CHARTS).await?;
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// What the demo prints is read by a person: no line past 200 characters, and no SDK error
/// dump (an error's Debug form: its raw response, headers and body), which
/// `DisplayErrorContext` appends (warnings are one line; details at `RUST_LOG=debug`).
fn check_output_reads(output: &str) -> Result<(), Failed> {
    const LONGEST_LINE: usize = 200;
    if let Some(line) = output.lines().find(|l| l.chars().count() > LONGEST_LINE) {
        return Err(format!(
            "the demo printed a line of {} characters (at most {LONGEST_LINE}): {line}",
            line.chars().count()
        )
        .into());
    }
    for dump in ["raw: Response", "HeaderMap", "SdkBody", "ServiceError {"] {
        ensure(
            !output.contains(dump),
            format!("the demo printed an SDK error dump ({dump}):\n{output}"),
        )?;
    }
    Ok(())
}
