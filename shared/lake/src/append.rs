//! `listing_events`: every accepted event exactly once.
//!
//! Firehose delivers at least once and the curator may run twice over the same objects, so
//! each append is an anti-join: the incoming events' ids are looked up in the table (only
//! the day partitions they fall in: a duplicate is observed at the same instant as its
//! original, so it lands in the same partition), and only the unseen ones are written and
//! committed, as one snapshot, onto the snapshot the anti-join read (`commit`). A
//! commit that loses to another writer is re-planned from a fresh read of the table.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::rows::EventRow;
use iceberg::expr::Reference;
use iceberg::spec::Datum;
use iceberg::table::Table;
use serde::Deserialize;

use crate::commit::{SnapshotKind, commit_snapshot};
use crate::schema::{LISTING_EVENTS_TABLE, TableDef};
use crate::write::data_files;
use crate::{Lake, LakeError, read};

/// Attempts of one append before it gives up on a busy table.
const COMMIT_ATTEMPTS: usize = 5;

/// What an append did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appended {
    /// Events written.
    pub added: usize,
    /// Events already in the table, or repeated in the input.
    pub duplicates: usize,
    /// The snapshot committed (`None` when nothing was new).
    pub snapshot_id: Option<i64>,
    /// The events written, in input order.
    pub rows: Vec<EventRow>,
}

#[derive(Deserialize)]
struct EventId {
    event_id: String,
}

/// Appends the events of `rows` the table does not hold yet, with `properties` in the
/// snapshot's summary (the curator records what it read through there).
pub async fn append_events(
    lake: &Lake,
    rows: Vec<EventRow>,
    properties: HashMap<String, String>,
) -> Result<Appended, LakeError> {
    append_events_to(lake, &LISTING_EVENTS_TABLE, rows, properties).await
}

/// [`append_events`] into the table of `def` (a table laid out as `listing_events`).
pub async fn append_events_to(
    lake: &Lake,
    def: &TableDef,
    rows: Vec<EventRow>,
    properties: HashMap<String, String>,
) -> Result<Appended, LakeError> {
    append_events_to_with(lake, def, def.columns.len(), rows, properties).await
}

/// [`append_events_to`] as a build that knew only the first `columns` columns of `def`
/// would append (the schema-evolution test's older build).
pub async fn append_events_to_with(
    lake: &Lake,
    def: &TableDef,
    columns: usize,
    rows: Vec<EventRow>,
    properties: HashMap<String, String>,
) -> Result<Appended, LakeError> {
    for _ in 0..COMMIT_ATTEMPTS {
        let table = lake.table_with(def, columns).await?;
        match append_events_onto(lake, &table, &rows, properties.clone()).await? {
            Some(appended) => return Ok(appended),
            None => tracing::info!(table = def.name, "commit conflict: re-planning"),
        }
    }
    Err(LakeError::Conflict {
        table: def.name.to_owned(),
    })
}

/// One attempt of [`append_events_to`], planned and committed against `table` as read:
/// `None` when another writer committed since (nothing was added; read the table again).
pub async fn append_events_onto(
    lake: &Lake,
    table: &Table,
    rows: &[EventRow],
    properties: HashMap<String, String>,
) -> Result<Option<Appended>, LakeError> {
    let known = known_ids(table, rows).await?;
    let mut seen = HashSet::new();
    let fresh: Vec<EventRow> = rows
        .iter()
        .filter(|row| !known.contains(&row.event_id) && seen.insert(row.event_id.as_str()))
        .cloned()
        .collect();
    let duplicates = rows.len() - fresh.len();
    if fresh.is_empty() {
        return Ok(Some(Appended {
            added: 0,
            duplicates,
            snapshot_id: None,
            rows: Vec::new(),
        }));
    }
    let run = uuid::Uuid::new_v4().to_string();
    let files = data_files(table, &fresh, &run).await?;
    let committed =
        commit_snapshot(lake, table, SnapshotKind::Append, files, properties, &run).await?;
    Ok(committed.map(|snapshot_id| Appended {
        added: fresh.len(),
        duplicates,
        snapshot_id: Some(snapshot_id),
        rows: fresh,
    }))
}

/// The ids among `rows`' that the table already holds, looked up one day at a time over the
/// span of that day's rows: a chunk with a replay's 90-day-old events beside live ones read
/// every day between them before, all at once (every event id of 90 days in memory, again
/// at each retry), and the function ran out of memory on the same chunk at every run.
async fn known_ids(table: &Table, rows: &[EventRow]) -> Result<HashSet<String>, LakeError> {
    let wanted: HashSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    let column = Reference::new("observed_at");
    let mut known = HashSet::new();
    for (first, last) in day_spans(rows.iter().map(|r| r.observed_at)) {
        let filter = column
            .clone()
            .greater_than_or_equal_to(Datum::timestamp_micros(first.timestamp_micros()))
            .and(
                column
                    .clone()
                    .less_than_or_equal_to(Datum::timestamp_micros(last.timestamp_micros())),
            );
        // Kept batch by batch: a day's span can hold far more ids than the chunk wants.
        read::for_each_batch(
            table,
            None,
            Some(&["event_id"]),
            Some(filter),
            |ids: Vec<EventId>| {
                known.extend(
                    ids.into_iter()
                        .map(|r| r.event_id)
                        .filter(|id| wanted.contains(id.as_str())),
                );
            },
        )
        .await?;
    }
    Ok(known)
}

/// Per UTC day the instants fall in (a day partition), the first and last of them.
fn day_spans(instants: impl Iterator<Item = DateTime<Utc>>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut spans: BTreeMap<NaiveDate, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for at in instants {
        spans
            .entry(at.date_naive())
            .and_modify(|(first, last)| {
                *first = (*first).min(at);
                *last = (*last).max(at);
            })
            .or_insert((at, at));
    }
    spans.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_looked_up_in_the_days_the_rows_fall_in_only() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("time")
                .with_timezone(&Utc)
        };
        let rows = [
            at("2026-11-28T10:00:00Z"),
            at("2026-08-30T23:59:59Z"),
            at("2026-11-28T09:00:00Z"),
            at("2026-08-30T00:00:00Z"),
        ];
        assert_eq!(
            day_spans(rows.into_iter()),
            [
                (at("2026-08-30T00:00:00Z"), at("2026-08-30T23:59:59Z")),
                (at("2026-11-28T09:00:00Z"), at("2026-11-28T10:00:00Z")),
            ]
        );
        assert!(day_spans(std::iter::empty()).is_empty());
    }
}
