//! The local Glue catalog is a real one: provisioning creates the lake's database in it, its
//! UpdateTable refuses a stale `VersionId` as Glue does (the compare-and-swap every Iceberg
//! commit relies on), and pyiceberg, an engine none of our code is part of, writes and reads
//! an Iceberg table through it, time travel included. On both emulators: moto serves Glue
//! itself (its VersionId check added in infra/src/moto_serial.py), LocalStack through the moto
//! it bundles (infra/src/localstack_main.py).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_glue::types::TableInput;
use libtest_mimic::Failed;
use realty_infra::provision::ProvisionedStack;
use realty_tests::lake_reader::{LakeCatalog, read_iceberg, write_sample_iceberg};
use realty_tests::{Explain, TestAws, ensure};
use serde_json::json;

crate::async_tests!(
    provisioning_creates_the_lake_database,
    update_table_refuses_a_stale_version_id,
    pyiceberg_writes_and_reads_back_a_table_in_the_local_catalog,
);

fn output<'s>(stack: &'s ProvisionedStack, name: &str) -> Result<&'s str, Failed> {
    stack
        .outputs
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("the stack has no output {name}").into())
}

async fn glue(aws: &TestAws) -> aws_sdk_glue::Client {
    aws_sdk_glue::Client::new(&aws.sdk_config().await)
}

async fn provisioning_creates_the_lake_database(aws: Arc<TestAws>) -> Result<(), Failed> {
    let stack = aws.provision(&[]).await;
    let database = output(&stack, "DataLakeDatabaseName")?;
    ensure(
        database == format!("{}_data_lake_database", stack.stack_name.replace('-', "_")),
        format!("database {database}: not the stack's name with '-' replaced by '_'"),
    )?;
    ensure(
        stack
            .resources
            .iter()
            .any(|r| r.logical_id == "DataLakeDatabase" && r.physical_id == database),
        "DataLakeDatabase is not among the provisioned resources",
    )?;
    let found = glue(&aws)
        .await
        .get_database()
        .name(database)
        .send()
        .await
        .explain("GetDatabase")?;
    let found = found.database().ok_or("GetDatabase: no database")?;
    ensure(found.name() == database, "GetDatabase: another name")?;
    ensure(
        found.description() == Some("realty-stream data lake"),
        format!("description {:?}: not the template's", found.description()),
    )?;
    // Idempotent: a second provisioning finds the database.
    let again = aws.provision_as(&stack.stack_name, &[]).await;
    ensure(
        output(&again, "DataLakeDatabaseName")? == database,
        "provisioning again named another database",
    )
}

fn table_input(name: &str, marker: &str) -> Result<TableInput, Failed> {
    Ok(TableInput::builder()
        .name(name)
        .table_type("EXTERNAL_TABLE")
        .parameters("marker", marker)
        .build()?)
}

async fn update_table_refuses_a_stale_version_id(aws: Arc<TestAws>) -> Result<(), Failed> {
    let stack = aws.provision(&[]).await;
    let database = output(&stack, "DataLakeDatabaseName")?;
    let glue = glue(&aws).await;
    let name = "version_check";
    glue.create_table()
        .database_name(database)
        .table_input(table_input(name, "created")?)
        .send()
        .await
        .explain("CreateTable")?;
    let current = |glue: aws_sdk_glue::Client| async move {
        let out = glue
            .get_table()
            .database_name(database)
            .name(name)
            .send()
            .await
            .explain("GetTable")?;
        let table = out.table().ok_or("GetTable: no table")?;
        let marker = table
            .parameters()
            .and_then(|p| p.get("marker"))
            .cloned()
            .unwrap_or_default();
        let version = table
            .version_id()
            .ok_or("GetTable: no VersionId")?
            .to_owned();
        Ok::<_, Failed>((version, marker))
    };
    let (read, marker) = current(glue.clone()).await?;
    ensure(
        marker == "created",
        format!("marker {marker:?} after CreateTable"),
    )?;

    // The version just read: the update lands.
    glue.update_table()
        .database_name(database)
        .table_input(table_input(name, "first")?)
        .version_id(&read)
        .send()
        .await
        .explain("UpdateTable with the current VersionId")?;
    let (after_first, marker) = current(glue.clone()).await?;
    ensure(
        marker == "first",
        format!("marker {marker:?} after the update"),
    )?;
    ensure(after_first != read, "the update left VersionId as it was")?;

    // The same, now stale, version (a second writer that read before the first committed):
    // refused, and the table keeps the first writer's update.
    let stale = glue
        .update_table()
        .database_name(database)
        .table_input(table_input(name, "second")?)
        .version_id(&read)
        .send()
        .await;
    match stale {
        Ok(_) => return Err("UpdateTable with a stale VersionId was accepted".into()),
        Err(e) => {
            let refused = e
                .as_service_error()
                .is_some_and(|e| e.is_concurrent_modification_exception());
            let status = e.raw_response().map(|r| r.status().as_u16());
            ensure(
                refused && status == Some(400),
                format!(
                    "UpdateTable with a stale VersionId: {} (HTTP {status:?}), not a 400 ConcurrentModificationException",
                    aws_sdk_glue::error::DisplayErrorContext(&e)
                ),
            )?;
        }
    }
    let (version, marker) = current(glue.clone()).await?;
    ensure(
        marker == "first" && version == after_first,
        format!("the refused update changed the table: marker {marker:?}, version {version}"),
    )?;

    // No VersionId: unconditional, as on AWS.
    glue.update_table()
        .database_name(database)
        .table_input(table_input(name, "unconditional")?)
        .send()
        .await
        .explain("UpdateTable without VersionId")?;
    let (_, marker) = current(glue.clone()).await?;
    ensure(
        marker == "unconditional",
        format!("marker {marker:?} after the unconditional update"),
    )
}

async fn pyiceberg_writes_and_reads_back_a_table_in_the_local_catalog(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = aws.provision(&[]).await;
    let database = output(&stack, "DataLakeDatabaseName")?.to_owned();
    let bucket = output(&stack, "DataLakeBucketName")?;
    let catalog = LakeCatalog {
        glue_endpoint: Some(aws.endpoint.clone()),
        s3_endpoint: None,
        region: stack.region.clone(),
        database: database.clone(),
    };
    let table = "sample_events";
    let location = format!("s3://{bucket}/iceberg/{table}");
    let root = &aws.project_root;
    let first = [
        json!({"event_id": "e1", "price_minor": 45_000_000, "observed_at": "2026-11-20T10:00:00+00:00"}),
        json!({"event_id": "e2", "price_minor": null, "observed_at": "2026-11-21T09:30:00+00:00"}),
    ];
    let second = [
        json!({"event_id": "e3", "price_minor": 39_900_000, "observed_at": "2026-11-21T11:15:00+00:00"}),
    ];
    let first_snapshot = write_sample_iceberg(root, &catalog, table, &location, &first).await?;
    let second_snapshot = write_sample_iceberg(root, &catalog, table, &location, &second).await?;

    // The catalog holds an Iceberg table whose metadata is where the reader found it.
    let got = glue(&aws)
        .await
        .get_table()
        .database_name(&database)
        .name(table)
        .send()
        .await
        .explain("GetTable")?;
    let parameters: HashMap<String, String> = got
        .table()
        .and_then(|t| t.parameters())
        .cloned()
        .unwrap_or_default();
    ensure(
        parameters
            .get("table_type")
            .is_some_and(|t| t.eq_ignore_ascii_case("ICEBERG")),
        format!("Glue table parameters {parameters:?}: not an Iceberg table"),
    )?;

    let now = read_iceberg(root, &catalog, table, None).await?;
    ensure(
        Some(&now.metadata_location) == parameters.get("metadata_location"),
        format!(
            "the reader read {} but Glue points at {:?}",
            now.metadata_location,
            parameters.get("metadata_location")
        ),
    )?;
    ensure(
        now.metadata_location
            .starts_with(&format!("{location}/metadata/")),
        format!(
            "metadata at {}, not under {location}",
            now.metadata_location
        ),
    )?;
    let columns: Vec<(&str, &str, bool)> = now
        .schema
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str(), f.required))
        .collect();
    ensure(
        columns
            == [
                ("event_id", "string", true),
                ("price_minor", "long", false),
                ("observed_at", "timestamptz", true),
            ],
        format!("schema {columns:?}"),
    )?;
    let snapshots: Vec<(i64, Option<i64>)> = now
        .snapshots
        .iter()
        .map(|s| (s.snapshot_id, s.parent_snapshot_id))
        .collect();
    ensure(
        snapshots
            == [
                (first_snapshot, None),
                (second_snapshot, Some(first_snapshot)),
            ],
        format!("snapshots {snapshots:?}, written {first_snapshot} then {second_snapshot}"),
    )?;
    ensure(
        now.current_snapshot_id == Some(second_snapshot)
            && now.snapshot_id == Some(second_snapshot),
        "the current snapshot is not the last one written",
    )?;
    let ids = |rows: &[serde_json::Map<String, serde_json::Value>]| {
        let mut ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.get("event_id")?.as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    };
    ensure(
        ids(&now.rows) == ["e1", "e2", "e3"],
        format!("rows now {:?}", now.rows),
    )?;
    let e2 = now
        .rows
        .iter()
        .find(|r| r.get("event_id") == Some(&json!("e2")))
        .ok_or("no e2")?;
    ensure(
        e2.get("price_minor") == Some(&serde_json::Value::Null)
            && e2.get("observed_at") == Some(&json!("2026-11-21T09:30:00+00:00")),
        format!("e2 read back as {e2:?}"),
    )?;

    // Time travel: as of the first snapshot, the table held the first two rows.
    let then = read_iceberg(root, &catalog, table, Some(first_snapshot)).await?;
    ensure(
        then.snapshot_id == Some(first_snapshot) && ids(&then.rows) == ["e1", "e2"],
        format!("rows as of {first_snapshot}: {:?}", then.rows),
    )?;
    // A snapshot the table never had is an error, not an empty read.
    ensure(
        read_iceberg(root, &catalog, table, Some(first_snapshot ^ 1))
            .await
            .is_err(),
        "reading an unknown snapshot succeeded",
    )
}
