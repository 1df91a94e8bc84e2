//! `realty replay`, the real binary against a local stack: a 1,000-row CSV (made from the
//! real Nashville page of Zillow) publishes 1,000 events, and replaying it again (this time
//! from S3) publishes none; a file with bad rows sends the good ones and names the bad ones
//! by row; a file of nothing but bad rows fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_model::listing::{Listing, ListingId, ListingSource};
use realty_model::markets::SourceKind;
use realty_sources::file::write_csv;
use realty_sources::normalize_file;
use realty_tests::{TestAws, ensure};

use crate::operations::{run, setup};

crate::async_tests!(a_replayed_file_publishes_each_listing_once_and_reports_bad_rows);

const ROWS: usize = 1_000;

/// `ROWS` listings: the real page's listings over and over, each copy with its own id and
/// price.
fn listings(project_root: &Path) -> Result<Vec<Listing>, Failed> {
    let page = std::fs::read(project_root.join(
        "shared/sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json",
    ))?;
    let real = normalize_file(SourceKind::Zillow, &page, chrono::Utc::now())?.listings;
    ensure(!real.is_empty(), "the fixture has listings")?;
    (0..ROWS)
        .map(|i| {
            let mut listing = real[i % real.len()].clone();
            listing.id = ListingId::new(ListingSource::Zillow, &(900_000 + i).to_string())?;
            listing.price_minor += i as i64 * 100;
            Ok(listing)
        })
        .collect()
}

fn csv(listings: &[Listing]) -> Result<Vec<u8>, Failed> {
    let mut out = Vec::new();
    write_csv(listings, &mut out)?;
    Ok(out)
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn a_replayed_file_publishes_each_listing_once_and_reports_bad_rows(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let cli = s.local_cli(&aws).await?;
    let dir = cli.state_dir.clone();
    let all = listings(&aws.project_root)?;
    let file = dir.join("listings.csv");
    std::fs::write(&file, csv(&all)?)?;
    let file_arg = file.to_string_lossy().into_owned();

    let first = run(cli.command(&["replay", &file_arg]), &dir, "replay-first").await?;
    ensure(first.status.success(), stdout(&first))?;
    ensure(
        stdout(&first).contains("1000 rows, 0 rejected, 1000 published"),
        stdout(&first),
    )?;
    let events = s.events().await?;
    let ids: BTreeSet<&str> = events.iter().map(|e| e.listing.id.as_str()).collect();
    ensure(
        events.len() == ROWS && ids.len() == ROWS,
        format!("{} events for {} listings", events.len(), ids.len()),
    )?;

    // The same file again, from the lake bucket: nothing new.
    let s3 = realty_aws::sdk::s3_client(&s.sdk);
    s3.put_object()
        .bucket(&s.resources.data_lake_bucket)
        .key("imports/listings.csv")
        .body(csv(&all)?.into())
        .send()
        .await?;
    let location = format!("s3://{}/imports/listings.csv", s.resources.data_lake_bucket);
    let second = run(
        cli.command(&["replay", &location, "--rate", "5000/s"]),
        &dir,
        "replay-second",
    )
    .await?;
    ensure(second.status.success(), stdout(&second))?;
    ensure(
        stdout(&second).contains("0 published (0 new, 0 changed), 1000 unchanged"),
        stdout(&second),
    )?;
    ensure(
        s.events().await?.len() == ROWS,
        "the second replay published",
    )?;

    // Three cut prices among two bad rows: the good ones go, the bad ones are named.
    let mut cut: Vec<Listing> = all[..3].to_vec();
    for l in &mut cut {
        l.price_minor -= 1_000_000;
        l.observed_at += chrono::TimeDelta::minutes(1);
    }
    let text = String::from_utf8(csv(&cut)?)?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.insert(2, lines[1].replacen("zillow:", "", 1)); // line 3: an id without a source
    let mut cityless = cut[0].clone();
    cityless.address.city.clear();
    let cityless = String::from_utf8(csv(&[cityless])?)?;
    lines.extend(cityless.lines().skip(1).map(str::to_owned)); // line 6: no city
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, lines.join("\n"))?;
    let bad_arg = bad.to_string_lossy().into_owned();
    let third = run(cli.command(&["replay", &bad_arg]), &dir, "replay-bad").await?;
    let out = stdout(&third);
    ensure(third.status.success(), out.clone())?;
    ensure(out.contains("5 rows, 2 rejected, 3 published"), out.clone())?;
    ensure(
        out.contains("(line 3)") && out.contains("(line 6): city: empty"),
        out.clone(),
    )?;
    let events = s.events().await?;
    ensure(events.len() == ROWS + 3, format!("{} events", events.len()))?;

    // Nothing but bad rows: a failure, and nothing sent.
    let hopeless = dir.join("hopeless.csv");
    std::fs::write(&hopeless, [lines[0].as_str(), &lines[2]].join("\n"))?;
    let fourth = run(
        cli.command(&["replay", &hopeless.to_string_lossy()]),
        &dir,
        "replay-hopeless",
    )
    .await?;
    ensure(!fourth.status.success(), stdout(&fourth))?;
    ensure(
        s.events().await?.len() == ROWS + 3,
        "a hopeless file published",
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
