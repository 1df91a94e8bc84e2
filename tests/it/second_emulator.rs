//! The tests the second emulator runs (`REALTY_TESTS=emulator-dependent`, as `make unit`
//! runs moto after the whole suite on LocalStack): each exercises an AWS behaviour the two
//! emulators implement apart (docs/local-aws.md, "What differs"), named here with that
//! behaviour. The rest drive the same calls through the project's own logic (a poller over
//! the simulator's faults, a portal's pages, the alert rules) and differ by emulator only in
//! the calls these tests already make. The whole suite on moto: `REALTY_EMULATOR=moto cargo
//! test --workspace --test integration`.

/// Environment variable and value that select the emulator-dependent tests alone.
pub const SELECT_VARIABLE: &str = "REALTY_TESTS";
pub const SELECT_VALUE: &str = "emulator-dependent";

/// Each emulator-dependent test, by its full name, and the behaviour it checks.
pub const EMULATOR_DEPENDENT: &[(&str, &str)] = &[
    (
        "integration::provisioning::provisioned_resources_match_template",
        "the provisioner against each emulator's APIs; account ids differ (local-aws.md #6)",
    ),
    (
        "integration::provisioning::every_template_resource_is_provisioned_or_skipped_with_a_reason",
        "resource policies and CloudWatch skipped for different reasons (#7, #12)",
    ),
    (
        "integration::provisioning::on_demand_stream_mode_follows_the_parameter",
        "Kinesis stream modes as each emulator models them",
    ),
    (
        "integration::lake_catalog::provisioning_creates_the_lake_database",
        "Glue: moto's, or LocalStack's bundled one",
    ),
    (
        "integration::lake_catalog::update_table_refuses_a_stale_version_id",
        "Glue's optimistic concurrency on UpdateTable",
    ),
    (
        "integration::lake_catalog::pyiceberg_writes_and_reads_back_a_table_in_the_local_catalog",
        "pyiceberg over each emulator's Glue and S3",
    ),
    (
        "integration::emulator::concurrent_puts_to_one_shard_each_keep_their_record",
        "Kinesis sequence numbers under concurrent writers (#2, #9)",
    ),
    (
        "integration::emulator::concurrent_table_writes_each_get_their_own_stream_record",
        "table streams under concurrent writers, CreateTable retried (#3, #5, #9)",
    ),
    (
        "integration::metrics::replays_and_crashes_leave_every_item_as_one_clean_delivery",
        "conditional transactions, Firehose DirectPut to S3 (#8)",
    ),
    (
        "integration::metrics::two_shards_writing_one_market_concurrently_give_the_true_figures",
        "conditional writes racing on one item",
    ),
    (
        "integration::reconcile::reconcile_beside_metrics_writing_leaves_the_true_figures",
        "scans and conditional writes racing",
    ),
    (
        "integration::bounds::a_450_kb_address_line_is_rejected_and_never_counted_twice",
        "DynamoDB's 400 KB item limit, as each emulator enforces it",
    ),
    (
        "integration::bounds::two_600_kb_statuses_reach_the_error_sink_bounded",
        "the error sink's SQS message size limit",
    ),
    (
        "integration::poller::an_event_over_1_mib_is_rejected_alone",
        "Kinesis's 1 MiB record limit",
    ),
    (
        "integration::poller::overlapping_polls_cannot_both_advance_a_market",
        "the poll lease: a conditional write under contention",
    ),
    (
        "integration::raw::a_firehose_record_lands_under_the_day_it_arrived",
        "Firehose's S3 prefixes, patched on both (#13)",
    ),
    (
        "integration::importer::a_dropped_file_is_imported_once_with_its_bad_rows_named_by_line",
        "S3 notifications to SQS (moto's s3:TestEvent, LocalStack's delay), SQS redrive",
    ),
    (
        "integration::importer::two_deliveries_of_one_file_at_once_publish_it_once",
        "S3 versions in notifications (moto names none)",
    ),
    (
        "integration::lake::each_event_lands_once_though_delivered_twice_and_curated_twice",
        "Firehose objects: one per record or one per call, compressed or not (#8)",
    ),
    (
        "integration::lake::an_append_planned_before_another_commit_adds_nothing_and_is_replanned",
        "the Iceberg commit race: Glue's version check and S3 writes",
    ),
    (
        "integration::reso::a_reso_poll_sends_the_market_filter_and_an_oauth_token_then_reads_only_changes",
        "Secrets Manager holding the OAuth client",
    ),
    (
        "integration::operations::a_source_without_a_key_is_reported_while_the_others_poll",
        "Secrets Manager without a key in the secret",
    ),
    (
        "integration::monitoring::alarms_and_the_dashboard_watch_metrics_the_functions_emit",
        "CloudWatch: served by LocalStack, skipped on moto (#12)",
    ),
    (
        "integration::alerts::subscribers_get_each_alert_they_filter_for_once",
        "SNS filter policies with raw delivery to SQS",
    ),
    (
        "integration::alerts::an_unreachable_topic_fails_the_batch_and_the_replay_delivers_once",
        "PublishBatch's errors for a topic that is gone",
    ),
    (
        "integration::alerts::an_alert_over_the_sns_limit_goes_to_the_error_sink_and_one_at_it_is_delivered",
        "SNS's 256 KB message limit",
    ),
    (
        "integration::alerts::a_live_claim_is_not_taken_over_and_an_expired_one_is",
        "conditional writes on a lease attribute",
    ),
    (
        "integration::demo::the_demo_raises_the_true_alerts_and_reports_what_the_lake_holds",
        "every service the stack uses, end to end, as a newcomer's `make demo` on moto",
    ),
];

/// Whether this run selects the emulator-dependent tests alone.
pub fn selected() -> bool {
    std::env::var(SELECT_VARIABLE).is_ok_and(|value| value == SELECT_VALUE)
}

/// Whether `name` runs when the emulator-dependent tests are selected.
pub fn is_emulator_dependent(name: &str) -> bool {
    EMULATOR_DEPENDENT.iter().any(|(listed, _)| *listed == name)
}

/// The listed names that name no test (a test renamed or removed), so the list cannot rot.
pub fn unknown<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let names: std::collections::HashSet<&str> = names.into_iter().collect();
    EMULATOR_DEPENDENT
        .iter()
        .map(|(listed, _)| *listed)
        .filter(|listed| !names.contains(listed))
        .collect()
}
