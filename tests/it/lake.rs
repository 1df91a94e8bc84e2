//! The curated lake against a local stack (docs/lake.md): the curator turns the events
//! Firehose delivered under `listings/` into the Iceberg tables of the stack's Glue
//! catalog, each event once even when a batch was delivered twice and the curator ran
//! twice (or two runs overlapped); `listings` holds each listing's newest state, and a
//! read as of an earlier snapshot returns what the table held then; a column added by a
//! newer build reads as null in the rows written before it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use libtest_mimic::Failed;
use realty_lake::append::{append_events_onto, append_events_to};
use realty_lake::commit::SOURCE_THROUGH;
use realty_lake::curate::{Curator, RunLimits, source_through};
use realty_lake::read;
use realty_lake::replace::{Replaced, replace_rows};
use realty_lake::rows::{EventRow, ListingRow, event_id, merge_listings};
use realty_lake::schema::{LISTING_EVENTS, LISTING_EVENTS_TABLE, LISTINGS_TABLE, TableDef};
use realty_model::config::StackResources;
use realty_model::listing::{Listing, ListingEvent, ListingId, ListingSource};
use realty_model::markets::SourceKind;
use realty_sources::normalize_file;
use realty_tests::{TestAws, ensure};

crate::async_tests!(
    each_event_lands_once_though_delivered_twice_and_curated_twice,
    a_backlog_is_worked_off_over_runs_in_bounded_commits,
    a_line_that_is_no_event_is_skipped_and_a_newer_schema_stops_the_run,
    listings_read_as_of_an_earlier_snapshot_give_what_the_table_held_then,
    a_column_added_by_a_newer_build_reads_as_null_in_older_rows,
    an_append_planned_before_another_commit_adds_nothing_and_is_replanned,
    a_chunk_is_bounded_by_the_json_it_decompresses_to,
);

const LISTINGS: usize = 60;

/// `LISTINGS` listings of the real Nashville page, each with its own id and price.
fn listings(aws: &TestAws, at: DateTime<Utc>) -> Result<Vec<Listing>, Failed> {
    let page = std::fs::read(aws.project_root.join(
        "shared/sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json",
    ))?;
    let real = normalize_file(SourceKind::Zillow, &page, at)?.listings;
    ensure(!real.is_empty(), "the fixture has listings")?;
    (0..LISTINGS)
        .map(|i| {
            let mut listing = real[i % real.len()].clone();
            listing.id = ListingId::new(ListingSource::Zillow, &(700_000 + i).to_string())?;
            listing.price_minor = 30_000_000 + i as i64 * 100_000;
            listing.observed_at = at;
            Ok(listing)
        })
        .collect()
}

/// The listings' first sightings, then every third one cut by 5 % an hour later and every
/// seventh one gone two hours later.
fn history(listings: &[Listing]) -> Vec<ListingEvent> {
    let mut events: Vec<ListingEvent> = listings
        .iter()
        .map(|l| ListingEvent::new_listing(l.clone(), "poll-1"))
        .collect();
    for (i, listing) in listings.iter().enumerate() {
        let mut last_seen = listing.clone();
        if i.is_multiple_of(3) {
            let mut cut = listing.clone();
            cut.price_minor = listing.price_minor / 100 * 95;
            cut.observed_at = listing.observed_at + Duration::hours(1);
            events.extend(ListingEvent::changed(listing, cut.clone(), "poll-2"));
            last_seen = cut;
        }
        if i.is_multiple_of(7) {
            events.push(ListingEvent::delisted(
                last_seen,
                listing.observed_at + Duration::hours(2),
                "poll-3",
            ));
        }
    }
    events
}

fn lines(events: &[ListingEvent]) -> Result<Vec<u8>, Failed> {
    let mut out = Vec::new();
    for event in events {
        out.extend(event.encode()?);
        out.push(b'\n');
    }
    Ok(out)
}

struct Lake {
    resources: StackResources,
    sdk: aws_config::SdkConfig,
    /// The curator's: its calls are checked against its role.
    curator_sdk: aws_config::SdkConfig,
}

impl Lake {
    async fn new(aws: &TestAws) -> Result<Self, Failed> {
        let stack = aws.provision(&[]).await;
        Ok(Self {
            resources: StackResources::from_outputs(&stack.outputs)?,
            sdk: aws.sdk_config().await,
            curator_sdk: aws.function_sdk("CuratorFunction").await,
        })
    }

    /// Delivers `body` as Firehose would, under the stack's `listings/` prefix.
    async fn deliver(&self, key: &str, body: Vec<u8>) -> Result<(), Failed> {
        realty_aws::sdk::s3_client(&self.sdk)
            .put_object()
            .bucket(&self.resources.data_lake_bucket)
            // Under the day it arrives, as Firehose names it: the curator lists from the day
            // before its last run, so a fixed day would fall out of its listing.
            .key(format!(
                "listings/dt={}/{key}",
                Utc::now().format("%Y-%m-%d")
            ))
            .body(body.into())
            .send()
            .await?;
        Ok(())
    }

    /// The keys of every file under a table's `location` (its data and metadata).
    async fn table_files(&self, location: &str) -> Result<BTreeSet<String>, Failed> {
        let prefix = location
            .strip_prefix(&format!("s3://{}/", self.resources.data_lake_bucket))
            .ok_or_else(|| format!("{location} is not in the lake bucket"))?;
        let mut pages = realty_aws::sdk::s3_client(&self.sdk)
            .list_objects_v2()
            .bucket(&self.resources.data_lake_bucket)
            .prefix(format!("{prefix}/"))
            .into_paginator()
            .send();
        let mut keys = BTreeSet::new();
        while let Some(page) = pages.next().await {
            keys.extend(
                page?
                    .contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
        }
        Ok(keys)
    }

    async fn curator(&self) -> Result<Curator, Failed> {
        Ok(Curator::new(&self.curator_sdk, &self.resources).await?)
    }

    /// The curator's lake code with the test's clients, for probe tables the function never
    /// writes (its role grants its own three tables only).
    async fn probe_curator(&self) -> Result<Curator, Failed> {
        Ok(Curator::new(&self.sdk, &self.resources).await?)
    }
}

async fn each_event_lands_once_though_delivered_twice_and_curated_twice(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let lake = Lake::new(&aws).await?;
    let start = Utc::now() - Duration::hours(3);
    let events = history(&listings(&aws, start)?);
    let distinct: HashSet<String> = events.iter().map(event_id).collect();
    ensure(
        distinct.len() == events.len(),
        "the history's events are distinct",
    )?;
    let (first, second) = events.split_at(events.len() / 2);
    lake.deliver("batch-1", lines(first)?).await?;
    // The same batch delivered again (a retried PutRecordBatch), and the second half.
    lake.deliver("batch-1-again", lines(first)?).await?;
    lake.deliver("batch-2", lines(second)?).await?;

    // Two runs at once: one commit wins, the other re-plans and adds only what is left.
    let (a, b) = (lake.curator().await?, lake.curator().await?);
    let (ra, rb) = tokio::join!(a.run(Utc::now()), b.run(Utc::now()));
    let (ra, rb) = (ra?, rb?);
    ensure(
        ra.events_added + rb.events_added == events.len(),
        format!(
            "the two runs added {} and {} events of {}",
            ra.events_added,
            rb.events_added,
            events.len()
        ),
    )?;
    // A third run finds nothing new and commits nothing.
    let again = a.run(Utc::now()).await?;
    ensure(
        again.events_added == 0
            && again.listings == Replaced::Unchanged
            && again.market_daily == Replaced::Unchanged,
        format!("a run over the same objects changed something: {again:?}"),
    )?;
    // An object of events all curated before (a replay delivered again) adds no snapshot,
    // but the run's position moves past it, in the table's properties, which outlive any
    // snapshot: the next runs do not read it again.
    let before = a.lake.table(&LISTING_EVENTS_TABLE).await?;
    let position_before = source_through(before.metadata());
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    lake.deliver("batch-2-replayed", lines(second)?).await?;
    let replayed = a.run(Utc::now()).await?;
    let after = a.lake.table(&LISTING_EVENTS_TABLE).await?;
    let position_after = source_through(after.metadata());
    ensure(
        replayed.events_added == 0
            && replayed.events_duplicate >= second.len()
            && after.metadata().current_snapshot_id() == before.metadata().current_snapshot_id()
            && position_after > position_before
            && after.metadata().properties().contains_key(SOURCE_THROUGH),
        format!(
            "a replayed object: {replayed:?}, position {position_before:?} -> {position_after:?}"
        ),
    )?;

    let table = a.lake.table(&LISTING_EVENTS_TABLE).await?;
    let rows: Vec<EventRow> = read::rows(&table, None).await?;
    let ids: HashSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    ensure(
        rows.len() == events.len() && ids.len() == rows.len(),
        format!(
            "listing_events holds {} rows ({} distinct) for {} events",
            rows.len(),
            ids.len(),
            events.len()
        ),
    )?;
    ensure(
        ids == distinct.iter().map(String::as_str).collect(),
        "listing_events holds exactly the events delivered",
    )?;
    // The columns listing schema version 2 added read back (these listings are in the US).
    ensure(
        rows.iter().all(|r| r.country.as_deref() == Some("US")),
        "every listing_events row says its country",
    )?;

    // `listings`: one row per listing, each as its history left it.
    let listings_table = a.lake.table(&LISTINGS_TABLE).await?;
    let states: Vec<ListingRow> = read::rows(&listings_table, None).await?;
    ensure(
        states.len() == LISTINGS && states.iter().all(|r| r.country.as_deref() == Some("US")),
        format!("{} listing rows, each with its country", states.len()),
    )?;
    for state in &states {
        let i: usize = state
            .listing_id
            .trim_start_matches("zillow:")
            .parse::<usize>()?
            - 700_000;
        let price = 30_000_000 + i as i64 * 100_000;
        let want_price = if i.is_multiple_of(3) {
            price / 100 * 95
        } else {
            price
        };
        ensure(
            state.delisted == (i.is_multiple_of(7))
                && state.price_minor == want_price
                && state.first_price_minor == price,
            format!("listing {i}: {state:?}"),
        )?;
    }
    Ok(())
}

/// Five objects, two a commit, two commits a run: the first run takes the four oldest, the
/// second (reading the four again within its lookback, which adds nothing and counts
/// nothing) the last; `listings` follows each commit, and the result is the same as one run.
async fn a_backlog_is_worked_off_over_runs_in_bounded_commits(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let lake = Lake::new(&aws).await?;
    // The lake keeps instants to the microsecond.
    let start = (Utc::now() - Duration::hours(3)).trunc_subsecs(6);
    let events = history(&listings(&aws, start)?);
    let per_object = events.len().div_ceil(5);
    for (i, part) in events.chunks(per_object).enumerate() {
        lake.deliver(&format!("part-{i}"), lines(part)?).await?;
        // Distinct LastModified times, so "oldest first" is the order delivered.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    }
    let mut curator = lake.curator().await?;
    curator.limits = RunLimits {
        objects_per_commit: 2,
        json_bytes_per_commit: usize::MAX,
        commits_per_run: 2,
        time_budget: std::time::Duration::from_secs(600),
    };
    let first = curator.run(Utc::now()).await?;
    ensure(
        first.objects_read == 4 && first.events_added == per_object * 4,
        format!("the first run: {first:?}"),
    )?;
    let table = curator.lake.table(&LISTING_EVENTS_TABLE).await?;
    ensure(
        table.metadata().snapshots().count() == 2,
        "two commits in the first run",
    )?;
    let second = curator.run(Utc::now()).await?;
    ensure(
        second.events_added == events.len() - per_object * 4,
        format!("the second run: {second:?}"),
    )?;
    let listings_table = curator.lake.table(&LISTINGS_TABLE).await?;
    let states: Vec<ListingRow> = read::rows(&listings_table, None).await?;
    let all: Vec<EventRow> = events.iter().map(EventRow::from).collect();
    let at_once = realty_lake::rows::merge_listings(Vec::new(), &all);
    ensure(
        states == at_once,
        format!(
            "listings after the backlog differ from the listings of every event at once: {:?}",
            states
                .iter()
                .zip(&at_once)
                .find(|(a, b)| a != b)
                .map_or_else(
                    || format!("{} rows, {} rows", states.len(), at_once.len()),
                    |d| format!("{d:?}")
                )
        ),
    )?;
    Ok(())
}

/// A line that is no listing event is counted and skipped; an event of a newer schema
/// version (a newer build's) stops the run before anything of its object is committed, so
/// the curator of that build still finds it.
async fn a_line_that_is_no_event_is_skipped_and_a_newer_schema_stops_the_run(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let lake = Lake::new(&aws).await?;
    let start = (Utc::now() - Duration::hours(3)).trunc_subsecs(6);
    let events = history(&listings(&aws, start)?);
    let mut body = lines(&events[..10])?;
    body.extend_from_slice(b"{\"not\": \"an event\"}\n");
    lake.deliver("with-a-bad-line", body).await?;
    let curator = lake.curator().await?;
    let run = curator.run(Utc::now()).await?;
    ensure(
        run.events_added == 10 && run.lines_rejected == 1,
        format!("a bad line among ten events: {run:?}"),
    )?;

    let whole = a_cut_gzip_object_keeps_its_whole_lines(&lake, &curator, &events).await?;

    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let newer = String::from_utf8(lines(&events[10..12])?)?.replacen(
        &format!(
            "\"schema_version\":{}",
            realty_model::listing::CURRENT_SCHEMA_VERSION
        ),
        "\"schema_version\":99",
        1,
    );
    ensure(
        newer.contains("\"schema_version\":99"),
        "the line names version 99",
    )?;
    lake.deliver("newer", newer.into_bytes()).await?;
    let stopped = curator.run(Utc::now()).await;
    ensure(
        stopped
            .as_ref()
            .is_err_and(|e| e.to_string().contains("older than the events it reads")),
        format!("a newer schema version: {stopped:?}"),
    )?;
    let table = curator.lake.table(&LISTING_EVENTS_TABLE).await?;
    let rows: Vec<EventRow> = read::rows(&table, None).await?;
    ensure(
        rows.len() == 12 + whole,
        format!("{} rows after the stopped run", rows.len()),
    )?;
    Ok(())
}

/// A GZIP object cut short: the events of the whole lines before the cut are curated
/// (before, the object was skipped whole), the rest is skipped, and the object counted
/// (`objects_skipped`, the metric of LakeObjectsSkippedAlarm); the events delivered beside
/// it are curated too. How many whole lines it had.
async fn a_cut_gzip_object_keeps_its_whole_lines(
    lake: &Lake,
    curator: &Curator,
    events: &[ListingEvent],
) -> Result<usize, Failed> {
    let cut_events = &events[40..70];
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gzip, &lines(cut_events)?)?;
    let gzip = gzip.finish()?;
    let cut = &gzip[..gzip.len() / 2];
    // What any GZIP reader gets of it before the fault: the lines ended by a newline.
    let mut prefix = Vec::new();
    let read = std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(cut), &mut prefix);
    ensure(read.is_err(), "the cut stream fails")?;
    let whole = prefix.iter().filter(|b| **b == b'\n').count();
    ensure(
        whole > 0 && whole < cut_events.len(),
        format!("{whole} whole lines of {} before the cut", cut_events.len()),
    )?;
    lake.deliver("cut-short.gz", cut.to_vec()).await?;
    lake.deliver("beside-it", lines(&events[20..22])?).await?;
    let run = curator.run(Utc::now()).await?;
    ensure(
        run.events_added == 2 + whole && run.objects_skipped == 1,
        format!("a GZIP object cut after {whole} whole lines, beside two events: {run:?}"),
    )?;
    let table = curator.lake.table(&LISTING_EVENTS_TABLE).await?;
    let ids: HashSet<String> = read::rows::<EventRow>(&table, None)
        .await?
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    ensure(
        cut_events
            .iter()
            .enumerate()
            .all(|(i, e)| ids.contains(&EventRow::from(e).event_id) == (i < whole)),
        "the events curated of the cut object are those of its whole lines",
    )?;
    Ok(whole)
}

/// A chunk is bounded by the JSON it decompresses to, not by its GZIP bytes: one object of
/// highly compressible events, far under the bound as stored and several times over it
/// decompressed, is committed in as many chunks as its JSON fills, cut mid-object (each
/// commit reaches the bound by at most one line), and every event lands once.
async fn a_chunk_is_bounded_by_the_json_it_decompresses_to(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let lake = Lake::new(&aws).await?;
    let start = (Utc::now() - Duration::hours(3)).trunc_subsecs(6);
    let events = history(&listings(&aws, start)?);
    let text = lines(&events)?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gzip, &text)?;
    let gzip = gzip.finish()?;
    let bound = text.len() / 4;
    ensure(
        gzip.len() < bound,
        format!(
            "{} bytes of GZIP for {} of JSON: under the bound ({bound}) as stored",
            gzip.len(),
            text.len()
        ),
    )?;
    lake.deliver("compressible.gz", gzip).await?;
    let mut curator = lake.curator().await?;
    curator.limits.json_bytes_per_commit = bound;
    let run = curator.run(Utc::now()).await?;
    // The chunks the bound makes of the object's lines (their bytes without the newline).
    let mut chunks = vec![0_usize];
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let last = chunks.len() - 1;
        if chunks[last] >= bound {
            chunks.push(0);
        }
        *chunks.last_mut().ok_or("no chunk")? += line.len();
    }
    ensure(
        chunks.len() >= 4 && run.commits == chunks.len() && run.events_added == events.len(),
        format!(
            "{} chunks of at most {bound} bytes and a line: {run:?}",
            chunks.len()
        ),
    )?;
    let table = curator.lake.table(&LISTING_EVENTS_TABLE).await?;
    let stored: Vec<EventRow> = read::rows(&table, None).await?;
    let ids: HashSet<&str> = stored.iter().map(|r| r.event_id.as_str()).collect();
    ensure(
        stored.len() == events.len() && ids.len() == events.len(),
        format!(
            "{} rows ({} distinct) of {} events",
            stored.len(),
            ids.len(),
            events.len()
        ),
    )?;
    // Run again (the lookback reads the object again): nothing is added, nothing counted.
    let again = curator.run(Utc::now()).await?;
    ensure(
        again.events_added == 0 && again.commits == 0,
        format!("the run after: {again:?}"),
    )?;
    Ok(())
}

async fn listings_read_as_of_an_earlier_snapshot_give_what_the_table_held_then(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let lake = Lake::new(&aws).await?;
    let start = Utc::now() - Duration::hours(3);
    let listings = listings(&aws, start)?;
    let firsts: Vec<ListingEvent> = listings
        .iter()
        .map(|l| ListingEvent::new_listing(l.clone(), "poll-1"))
        .collect();
    lake.deliver("first", lines(&firsts)?).await?;
    let curator = lake.curator().await?;
    let run = curator.run(Utc::now()).await?;
    let Replaced::Committed {
        snapshot_id: before,
        ..
    } = run.listings
    else {
        return Err(format!("the first run wrote no listings: {run:?}").into());
    };

    // Every listing cut by 10 %, an hour later.
    let cuts: Vec<ListingEvent> = listings
        .iter()
        .filter_map(|l| {
            let mut cut = l.clone();
            cut.price_minor = l.price_minor / 10 * 9;
            cut.observed_at = l.observed_at + Duration::hours(1);
            ListingEvent::changed(l, cut, "poll-2")
        })
        .collect();
    lake.deliver("cuts", lines(&cuts)?).await?;
    let run = curator.run(Utc::now()).await?;
    ensure(
        matches!(run.listings, Replaced::Committed { .. }),
        format!("the second run did not rewrite listings: {run:?}"),
    )?;

    let table = curator.lake.table(&LISTINGS_TABLE).await?;
    let prices = |rows: Vec<ListingRow>| -> BTreeMap<String, i64> {
        rows.into_iter()
            .map(|r| (r.listing_id, r.price_minor))
            .collect()
    };
    let then = prices(read::rows(&table, Some(before)).await?);
    let now = prices(read::rows(&table, None).await?);
    let originally: BTreeMap<String, i64> = listings
        .iter()
        .map(|l| (l.id.as_str().to_owned(), l.price_minor))
        .collect();
    ensure(
        then == originally,
        "as of the first snapshot, the first prices",
    )?;
    ensure(
        now.iter()
            .all(|(id, price)| *price == originally[id] / 10 * 9),
        "now, the cut prices",
    )?;
    ensure(
        table.metadata().snapshots().count() == 2,
        format!(
            "two rewrites, two snapshots (found {})",
            table.metadata().snapshots().count()
        ),
    )?;
    Ok(())
}

/// Two appends of the same events planned against the same snapshot (two curator runs that
/// read the table at once): the second to commit must not land on top of the first's
/// snapshot, where its anti-join no longer holds and every event would be written twice.
/// It is refused, adds nothing, and re-planned from a fresh read it adds nothing either.
async fn an_append_planned_before_another_commit_adds_nothing_and_is_replanned(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let lake = Lake::new(&aws).await?;
    let curator = lake.probe_curator().await?;
    let def = TableDef {
        name: "race_probe",
        ..LISTING_EVENTS_TABLE
    };
    let start = Utc::now() - Duration::hours(3);
    let events = history(&listings(&aws, start)?);
    let rows: Vec<EventRow> = events.iter().map(EventRow::from).collect();
    let (first, second) = rows.split_at(rows.len() / 2);

    // Both writers' first commit: the slower one's planning read is `stale`.
    let stale = curator.lake.table(&def).await?;
    let won = append_events_onto(&curator.lake, &stale, first, HashMap::new()).await?;
    ensure(
        won.as_ref().map(|a| a.added) == Some(first.len()),
        format!("the first writer's append: {won:?}"),
    )?;
    let files_before = lake.table_files(stale.metadata().location()).await?;
    let lost = append_events_onto(&curator.lake, &stale, first, HashMap::new()).await?;
    ensure(
        lost.is_none(),
        format!("an append planned before the other writer's commit landed anyway: {lost:?}"),
    )?;
    // What the lost attempt wrote (its data files, manifest, manifest list and metadata
    // file) is deleted: nothing will ever reference it, and nothing expires under iceberg/.
    let files_after = lake.table_files(stale.metadata().location()).await?;
    ensure(
        files_after == files_before,
        format!(
            "the lost commit left {:?}",
            files_after.difference(&files_before).collect::<Vec<_>>()
        ),
    )?;
    // Both writers' second commit, planned on the same (now current) snapshot, with
    // different events: the later one is refused here too, then adds its own on a re-plan.
    let current = curator.lake.table(&def).await?;
    let head = &second[..second.len() / 2];
    ensure(
        append_events_onto(&curator.lake, &current, head, HashMap::new())
            .await?
            .is_some_and(|a| a.added == head.len()),
        "the second commit's first writer added its events",
    )?;
    ensure(
        append_events_onto(&curator.lake, &current, second, HashMap::new())
            .await?
            .is_none(),
        "the second commit's later writer landed on a snapshot it never read",
    )?;
    let replanned = append_events_to(&curator.lake, &def, rows.clone(), HashMap::new()).await?;
    ensure(
        replanned.added == second.len() - head.len()
            && replanned.duplicates == first.len() + head.len(),
        format!("the re-planned append: {replanned:?}"),
    )?;

    the_race_s_table_holds_each_event_once(&curator, &def, &rows).await?;
    a_replace_planned_before_another_commit_is_refused(&lake, &curator, &rows, first).await
}

/// The table the two writers raced on holds each event once, its summary says so, and each
/// of its three commits wrote a metadata file of its own.
async fn the_race_s_table_holds_each_event_once(
    curator: &Curator,
    def: &TableDef,
    rows: &[EventRow],
) -> Result<(), Failed> {
    let table = curator.lake.table(def).await?;
    let stored: Vec<EventRow> = read::rows(&table, None).await?;
    let ids: HashSet<&str> = stored.iter().map(|r| r.event_id.as_str()).collect();
    ensure(
        stored.len() == rows.len() && ids.len() == rows.len(),
        format!(
            "the table holds {} rows ({} distinct) of {} events",
            stored.len(),
            ids.len(),
            rows.len()
        ),
    )?;
    // Each append's snapshot says what the table holds after it, as the crate's own would.
    let summary = &table
        .metadata()
        .current_snapshot()
        .ok_or("no snapshot")?
        .summary()
        .additional_properties;
    ensure(
        summary.get("total-records") == Some(&rows.len().to_string()),
        format!("the current snapshot's summary: {summary:?}"),
    )?;
    // Each commit wrote a metadata file of its own: none was rewritten in place.
    let mut files: Vec<&str> = table
        .metadata()
        .metadata_log()
        .iter()
        .map(|entry| entry.metadata_file.as_str())
        .collect();
    files.push(table.metadata_location_result()?);
    let distinct: HashSet<&str> = files.iter().copied().collect();
    ensure(
        distinct.len() == files.len() && files.len() == 4,
        format!("the table's metadata files (created, three commits): {files:?}"),
    )?;
    Ok(())
}

/// A whole-table replace commits onto the table it was planned from: rows planned before
/// another run's commit are refused (to be planned again), not written over the newer rows
/// (before, the replace read the table again and its check passed); the refused attempt's
/// files are deleted.
async fn a_replace_planned_before_another_commit_is_refused(
    lake: &Lake,
    curator: &Curator,
    rows: &[EventRow],
    first: &[EventRow],
) -> Result<(), Failed> {
    let def = TableDef {
        name: "replace_probe",
        ..LISTINGS_TABLE
    };
    let planned_from = curator.lake.table(&def).await?;
    let newer = merge_listings(Vec::new(), rows);
    let older = merge_listings(Vec::new(), first);
    ensure(
        replace_rows(&curator.lake, &planned_from, &newer, HashMap::new())
            .await?
            .is_some(),
        "the first run's replace",
    )?;
    let files_before = lake.table_files(planned_from.metadata().location()).await?;
    let late = replace_rows(&curator.lake, &planned_from, &older, HashMap::new()).await?;
    ensure(
        late.is_none(),
        format!("rows planned before the other run's commit replaced its rows: {late:?}"),
    )?;
    ensure(
        lake.table_files(planned_from.metadata().location()).await? == files_before,
        "the refused replace left its files",
    )?;
    let kept: Vec<ListingRow> = read::rows(&curator.lake.table(&def).await?, None).await?;
    ensure(
        kept.len() == newer.len(),
        format!(
            "{} rows kept, the newer run wrote {}",
            kept.len(),
            newer.len()
        ),
    )?;
    Ok(())
}

/// A table laid out as `listing_events` but created by an "older build" that knew fewer
/// columns: a newer build's append adds the missing columns (no data rewritten) and the
/// older rows read them as null.
async fn a_column_added_by_a_newer_build_reads_as_null_in_older_rows(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let lake = Lake::new(&aws).await?;
    let curator = lake.probe_curator().await?;
    let def = TableDef {
        name: "evolution_probe",
        ..LISTING_EVENTS_TABLE
    };
    let start = Utc::now() - Duration::hours(3);
    let listings = listings(&aws, start)?;
    let rows =
        |events: &[ListingEvent]| -> Vec<EventRow> { events.iter().map(EventRow::from).collect() };
    // The build before the change columns (old_price_minor and after).
    let older_columns = LISTING_EVENTS
        .iter()
        .position(|(name, _, _)| *name == "old_price_minor")
        .ok_or("no old_price_minor column")?;
    let old = curator.lake.table_with(&def, older_columns).await?;
    ensure(
        old.metadata()
            .current_schema()
            .field_by_name("old_price_minor")
            .is_none(),
        "the older table has no old_price_minor",
    )?;
    // Written by the older build: its rows carry no old price.
    let cut = |l: &Listing, pct: i64, hours: i64| {
        let mut c = l.clone();
        c.price_minor = l.price_minor / 100 * (100 - pct);
        c.observed_at = l.observed_at + Duration::hours(hours);
        ListingEvent::changed(l, c, "poll")
    };
    let first: Vec<ListingEvent> = listings[..10].iter().filter_map(|l| cut(l, 5, 1)).collect();
    // The older build's append (it writes the columns it knows).
    realty_lake::append::append_events_to_with(
        &curator.lake,
        &def,
        older_columns,
        rows(&first),
        HashMap::new(),
    )
    .await?;
    let before = curator.lake.table_with(&def, older_columns).await?;
    let first_snapshot = before.metadata().current_snapshot_id();

    // The newer build: the full column set, so old_price_minor is added.
    let second: Vec<ListingEvent> = listings[10..20]
        .iter()
        .filter_map(|l| cut(l, 5, 1))
        .collect();
    append_events_to(&curator.lake, &def, rows(&second), HashMap::new()).await?;
    let table = curator.lake.table(&def).await?;
    let all: Vec<EventRow> = read::rows(&table, None).await?;
    ensure(all.len() == 20, format!("{} rows", all.len()))?;
    let older: HashSet<String> = first.iter().map(event_id).collect();
    for row in &all {
        let want = if older.contains(&row.event_id) {
            None
        } else {
            Some(
                listings[row
                    .listing_id
                    .trim_start_matches("zillow:")
                    .parse::<usize>()?
                    - 700_000]
                    .price_minor,
            )
        };
        ensure(
            row.old_price_minor == want,
            format!(
                "{}: old_price_minor {:?}, want {want:?}",
                row.event_id, row.old_price_minor
            ),
        )?;
    }
    // The files written before the column was added are the same files (nothing rewritten).
    ensure(
        first_snapshot.is_some()
            && table
                .metadata()
                .snapshots()
                .any(|s| Some(s.snapshot_id()) == first_snapshot),
        "the older snapshot is still in the table's history",
    )?;
    Ok(())
}
