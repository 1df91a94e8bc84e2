//! The figures of a run as the table `realty bench` prints without `--json`.

use serde_json::Value;

type Figures = serde_json::Map<String, Value>;

pub(super) fn render_table(f: &Figures) -> String {
    let empty = Figures::new();
    // Each emulator's end-to-end figures, by the same keys.
    let e2e = match f.get("e2e") {
        Some(Value::Object(runs)) => runs,
        _ => &empty,
    };
    let mut table = Table {
        f,
        out: String::new(),
    };
    table.heading();
    table.throughput();
    table.peers();
    table.end_to_end(e2e);
    table.latency(e2e);
    table.cold_starts();
    table.footprint();
    table.lambda_binaries();
    table.dynamodb_writes();
    table.realistic();
    table.aws_calls(e2e);
    per_api_table(
        &mut table.out,
        e2e,
        "AWS call time, request to response, mean (ms), at the latency run's load",
        "e2e_aws_call_ms_mean",
    );
    table.out
}

/// The table as it is written, section by section, from a run's figures.
struct Table<'a> {
    f: &'a Figures,
    out: String,
}

impl Table<'_> {
    fn num(&self, key: &str) -> Option<f64> {
        self.f.get(key).and_then(Value::as_f64)
    }

    fn per_s(&self, key: &str) -> String {
        self.num(key).map_or("-".into(), group_thousands)
    }

    fn ratio(&self, key: &str) -> String {
        self.num(key).map_or("-".into(), |v| format!("{v:.3}"))
    }

    fn row(&mut self, what: &str, value: String, note: String) {
        self.out
            .push_str(&format!("  {what:<52} {value:>12}  {note}\n"));
    }

    /// What was measured, on what machine and build.
    fn heading(&mut self) {
        let f = self.f;
        let machine = &f["machine"];
        let build = &f["build"];
        self.out.push_str(&format!(
            "realty bench: {} events of {} bytes on average, seed {}\ncommit {}{}, {}\nmachine: {} ({} cores, {} GiB, {}), load average at start {}\n\n",
            f.get("events").map_or("-".into(), Value::to_string),
            f.get("event_bytes_mean").map_or("-".into(), Value::to_string),
            f.get("seed").map_or("-".into(), Value::to_string),
            build["commit"].as_str().unwrap_or("unknown"),
            if build["work_tree_changed"].as_bool() == Some(true) {
                " with changes"
            } else {
                ""
            },
            build["rustc"].as_str().unwrap_or("unknown rustc"),
            machine["cpu"].as_str().unwrap_or("unknown CPU"),
            machine["cores"],
            machine["memory_gib"],
            machine["arch"].as_str().unwrap_or("?"),
            machine["load_average_at_start"].as_str().unwrap_or("?"),
        ));
    }

    /// Our compute against the parse-only baselines.
    fn throughput(&mut self) {
        self.out.push_str("throughput, events/s (median run)\n");
        self.row(
            "metrics compute: the whole workflow, 1 core",
            self.per_s("metrics_compute_events_per_s"),
            String::new(),
        );
        self.row(
            "metrics kernel: decode, plan, apply, figures, 1 core",
            self.per_s("kernel_events_per_s"),
            format!(
                "instructions/event: kernel {}, workflow {}",
                self.per_s("kernel_instructions_per_event"),
                self.per_s("workflow_instructions_per_event")
            ),
        );
        self.row(
            "parse only, serde_json::Value, same bytes, 1 core",
            self.per_s("parse_serde_json_value_events_per_s"),
            format!(
                "compute/parse {}",
                self.ratio("compute_to_value_parse_ratio")
            ),
        );
        self.row(
            "parse only, serde_json typed (borrowed), 1 core",
            self.per_s("parse_serde_json_typed_events_per_s"),
            String::new(),
        );
        self.row(
            "parse only, sonic-rs typed (borrowed), 1 core",
            self.per_s("parse_sonic_rs_typed_events_per_s"),
            format!(
                "compute/fastest parse {}",
                self.ratio("compute_to_parse_ratio")
            ),
        );
    }

    /// Each peer on one thread and on every core.
    fn peers(&mut self) {
        let f = self.f;
        for (peer, label) in [("duckdb", "DuckDB"), ("spark", "PySpark")] {
            let version = f
                .get(&format!("peer_{peer}_version"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let one = if peer == "spark" {
                "local[1]"
            } else {
                "threads=1"
            };
            self.row(
                &format!("{label} {version}, {one}"),
                self.per_s(&format!("peer_{peer}_events_per_s")),
                format!(
                    "kernel/{peer} {}, workflow/{peer} {}",
                    self.ratio(&format!("kernel_vs_{peer}")),
                    self.ratio(&format!("vs_{peer}"))
                ),
            );
            let threads = f
                .get(&format!("peer_{peer}_all_cores_threads"))
                .map_or("-".into(), Value::to_string);
            self.row(
                &format!("{label} {version}, all {threads} cores"),
                self.per_s(&format!("peer_{peer}_all_cores_events_per_s")),
                format!(
                    "start-up {} s (one-thread session), excluded",
                    f.get(&format!("peer_{peer}_startup_s"))
                        .map_or("-".into(), Value::to_string)
                ),
            );
        }
    }

    /// Each emulator's pipeline against its bare Kinesis ceiling.
    fn end_to_end(&mut self, e2e: &Figures) {
        for (name, run) in e2e {
            self.row(
                &format!(
                    "end to end, local pipeline ({} events, {name})",
                    run_text(run, "e2e_events")
                ),
                run_figure(run, "e2e_events_per_s").map_or("-".into(), group_thousands),
                format!(
                    "e2e/ceiling {}",
                    run_figure(run, "e2e_to_ceiling_ratio")
                        .map_or("-".into(), |v| format!("{v:.3}"))
                ),
            );
            self.row(
                &format!("{name} ceiling: bare PutRecords + GetRecords"),
                run_figure(run, "emulator_ceiling_events_per_s")
                    .map_or("-".into(), group_thousands),
                String::new(),
            );
        }
    }

    /// Each emulator's alert latency, its stages, and the invocations at that load.
    fn latency(&mut self, e2e: &Figures) {
        self.out.push_str("\nlatency\n");
        for (name, run) in e2e {
            let ms = |key: &str| run_figure(run, key).map_or("-".into(), group_thousands);
            self.row(
                &format!("alert, PutRecords -> SNS publish, p50 / p99 (ms), {name}"),
                format!(
                    "{} / {}",
                    ms("e2e_alert_latency_ms_p50"),
                    ms("e2e_alert_latency_ms_p99")
                ),
                format!(
                    "{} alerts, at {} events/s",
                    run_text(run, "e2e_alerts"),
                    ms("e2e_latency_load_events_per_s")
                ),
            );
            let stage = |key: &str| {
                run.get(key)
                    .and_then(|v| v.get(0))
                    .and_then(Value::as_f64)
                    .map_or("-".into(), group_thousands)
            };
            self.row(
                "  of which: to metrics / metrics / to publish, p50 (ms)",
                format!(
                    "{} / {} / {}",
                    stage("e2e_alert_latency_ms_to_metrics_p50_p99"),
                    stage("e2e_alert_latency_ms_metrics_p50_p99"),
                    stage("e2e_alert_latency_ms_to_publish_p50_p99")
                ),
                String::new(),
            );
            self.row(
                &format!("invocation, metrics / alerts, mean (ms), {name}"),
                format!(
                    "{} / {}",
                    ms("e2e_metrics_invocation_ms_mean"),
                    ms("e2e_alerts_invocation_ms_mean")
                ),
                "at that load".to_owned(),
            );
        }
    }

    fn cold_starts(&mut self) {
        if let Some(Value::Object(cold)) = self.f.get("cold_start_ms") {
            let idle = self
                .num("cold_start_cpu_idle_share")
                .map_or(String::new(), |s| {
                    format!("machine {:.0} % idle", s * 100.0)
                });
            for (function, ms) in cold {
                self.row(
                    &format!("cold start, {function} (spawn -> ready, ms)"),
                    ms.as_f64().map_or("-".into(), |v| format!("{v:.1}")),
                    idle.clone(),
                );
            }
        }
    }

    /// Peak memory, and the DynamoDB items' sizes and write units.
    fn footprint(&mut self) {
        self.out.push_str("\nfootprint\n");
        self.row(
            "metrics peak RSS, batch at the 6 MB payload limit (MB)",
            self.num("metrics_peak_rss_mb")
                .map_or("-".into(), |v| format!("{v:.1}")),
            String::new(),
        );
        for (key, what) in [
            (
                "listing_item_bytes_mean",
                "listing item, mean (bytes, as DynamoDB bills)",
            ),
            ("market_item_bytes_mean", "market item, mean (bytes)"),
            ("market_item_bytes_max", "market item, largest (bytes)"),
            (
                "market_item_steady_bytes_mean",
                "market item, 37 days of events, mean (bytes)",
            ),
            (
                "market_item_steady_bytes_max",
                "market item, 37 days of events, largest (bytes)",
            ),
            ("snapshot_item_bytes_mean", "snapshot item, mean (bytes)"),
            (
                "scopes_per_1000_events",
                "markets a 1,000-event batch writes",
            ),
        ] {
            self.row(what, self.per_s(key), String::new());
        }
        self.row(
            "market item, 37 days of events, transact WRU, mean",
            self.num("market_item_steady_transact_wru_mean")
                .map_or("-".into(), |v| format!("{v:.2}")),
            self.num("market_item_steady_transact_wru_mean_bucketed")
                .map_or(String::new(), |v| {
                    format!("{v:.2} with values in 2 % buckets")
                }),
        );
    }

    fn lambda_binaries(&mut self) {
        for (key, note) in [
            ("lambda_binary_bytes", ""),
            ("lambda_binary_bytes_added_later", ", added later"),
        ] {
            if let Some(Value::Object(sizes)) = self.f.get(key) {
                for (function, bytes) in sizes {
                    self.row(
                        &format!("Lambda binary, {function} (arm64, bytes{note})"),
                        bytes.as_f64().map_or("-".into(), group_thousands),
                        String::new(),
                    );
                }
            }
        }
    }

    /// DynamoDB calls and write units of each spread, by shard count.
    fn dynamodb_writes(&mut self) {
        let Some(Value::Object(spreads)) = self.f.get("dynamodb_writes") else {
            return;
        };
        self.out.push_str(
            "\nDynamoDB per 1,000 events in batches of 1,000, the events a second apart (metrics workflow, in-memory, as billed)\n",
        );
        for (spread, runs) in spreads {
            for run in runs.as_array().into_iter().flatten() {
                let get = |key: &str| run.get(key).and_then(Value::as_f64);
                let calls: f64 = run
                    .get("calls_per_1000_events")
                    .and_then(Value::as_object)
                    .map_or(0.0, |c| c.values().filter_map(Value::as_f64).sum());
                self.row(
                    &format!(
                        "{spread}, {} shards: calls / write units per event",
                        run.get("shards").map_or("-".into(), Value::to_string)
                    ),
                    format!(
                        "{calls:.1} / {}",
                        get("write_units_per_event").map_or("-".into(), |v| format!("{v:.2}"))
                    ),
                    format!(
                        "{} market writes, {} market units/event; {} units/event with values in 2 % buckets; encoding {} µs/event",
                        get("market_writes_per_1000_events").map_or("-".into(), group_thousands),
                        get("market_write_units_per_event")
                            .map_or("-".into(), |v| format!("{v:.2}")),
                        get("write_units_per_event_bucketed")
                            .map_or("-".into(), |v| format!("{v:.2}")),
                        get("journal_and_store_us_per_event")
                            .map_or("-".into(), |v| format!("{v:.1}"))
                    ),
                );
            }
        }
    }

    /// The realistic mix's headline costs (docs/capacity.md's targets are of this mix).
    fn realistic(&mut self) {
        let Some(Value::Object(realistic)) = self.f.get("realistic") else {
            return;
        };
        let get = |key: &str| realistic.get(key).and_then(Value::as_f64);
        self.out.push_str(
            "\nThe realistic mix (new 30 %, leaving 30 %, closing 28 %, cuts 12 %; one listing write an event)\n",
        );
        self.row(
            "AWS calls per 1,000 events, end to end",
            get("aws_calls_per_1000_events").map_or("-".into(), |v| format!("{v:.1}")),
            "the first emulator's run".into(),
        );
        self.row(
            "DynamoDB write units per event at 10k updates/s",
            get("write_units_per_event_at_10k").map_or("-".into(), |v| format!("{v:.2}")),
            format!(
                "15 shards, alerts' claims and feed entries included ({} alerts per 1,000 events)",
                get("alerts_per_1000_events").map_or("-".into(), |v| format!("{v:.1}"))
            ),
        );
    }

    /// AWS calls per 1,000 events by API, one column per emulator (the same pipeline's calls,
    /// as each emulator answered them); then in total and by who made them, beside the
    /// alerts they carried (SNS takes at most 10 a call).
    fn aws_calls(&mut self, e2e: &Figures) {
        if !per_api_table(
            &mut self.out,
            e2e,
            "AWS calls per 1,000 events (end-to-end run)",
            "aws_calls_per_1000_events",
        ) {
            return;
        }
        let column = |f: &dyn Fn(&Figures) -> Option<f64>| -> String {
            e2e.iter()
                .filter(|(_, run)| run.get("aws_calls_per_1000_events").is_some())
                .map(|(_, run)| match run {
                    Value::Object(run) => {
                        format!("{:>12}", f(run).map_or("-".into(), |v| format!("{v:.1}")))
                    }
                    _ => format!("{:>12}", "-"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let total = |run: &Figures| {
            run.get("aws_calls_per_1000_events")
                .and_then(Value::as_object)
                .map(|c| c.values().filter_map(Value::as_f64).sum::<f64>())
        };
        self.out
            .push_str(&format!("  {:<52} {}\n", "total", column(&total)));
        let callers: std::collections::BTreeSet<String> = e2e
            .values()
            .filter_map(|run| run.get("aws_calls_per_1000_events_by_caller")?.as_object())
            .flat_map(|c| c.keys().cloned())
            .collect();
        for caller in callers {
            let of_caller = |run: &Figures| {
                run.get("aws_calls_per_1000_events_by_caller")?
                    .get(caller.as_str())?
                    .as_f64()
            };
            self.out.push_str(&format!(
                "  {:<52} {}\n",
                format!("  by {caller}"),
                column(&of_caller)
            ));
        }
        let alerts = |run: &Figures| run.get("e2e_alerts_per_1000_events")?.as_f64();
        self.out.push_str(&format!(
            "  {:<52} {}\n",
            "alerts published per 1,000 events",
            column(&alerts)
        ));
    }
}

fn run_figure(run: &Value, key: &str) -> Option<f64> {
    run.get(key).and_then(Value::as_f64)
}

fn run_text(run: &Value, key: &str) -> String {
    run.get(key).map_or("-".into(), Value::to_string)
}

/// A table of `title`: the figures under `key` of each end-to-end run, one row per API and
/// one column per emulator. Returns whether any run had them.
fn per_api_table(out: &mut String, e2e: &Figures, title: &str, key: &str) -> bool {
    let runs: Vec<(&String, &Figures)> = e2e
        .iter()
        .filter_map(|(name, run)| match run.get(key) {
            Some(Value::Object(figures)) => Some((name, figures)),
            _ => None,
        })
        .collect();
    if runs.is_empty() {
        return false;
    }
    let apis: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|(_, f)| f.keys()).collect();
    out.push_str(&format!("\n{title}\n"));
    let header: Vec<String> = runs.iter().map(|(name, _)| format!("{name:>12}")).collect();
    out.push_str(&format!("  {:<52} {}\n", "", header.join(" ")));
    for api in apis {
        let cells: Vec<String> = runs
            .iter()
            .map(|(_, f)| {
                let n = f.get(api.as_str()).and_then(Value::as_f64);
                format!("{:>12}", n.map_or("-".into(), |v| format!("{v:.1}")))
            })
            .collect();
        out.push_str(&format!("  {api:<52} {}\n", cells.join(" ")));
    }
    true
}

/// `1234567.0` as `1,234,567`.
pub(super) fn group_thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}
