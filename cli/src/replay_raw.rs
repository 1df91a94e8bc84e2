//! `realty replay-raw --from DATE --to DATE [--source S] [--stack NAME] [--apply]`: the raw
//! API pages the poller kept (`raw/` of the lake bucket) parsed again with this build's
//! parsers, and what that would change (`realty_core::poller::raw_replay`, docs/lake.md).
//! A dry run by default; `--apply` sends the changed listings through the replay's detection
//! and publishing (the same as `realty replay`).

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use realty_aws::adapters::kinesis::KinesisPublisher;
use realty_aws::adapters::poll_state::S3PollStateStore;
use realty_aws::adapters::raw_pages::S3RawPageStore;
use realty_aws::adapters::retry::RetryPolicy;
use realty_core::format::money;
use realty_core::listing::{EventKind, ListingEvent};
use realty_core::poller::raw::{RawPage, day_prefix};
use realty_core::poller::raw_replay::{DryRunStates, RawReads, ReadReplay, Recorded, replay_reads};
use realty_core::sources::SourceKind;

use crate::target;

/// Most days one run reads (a year and a day: the raw layer's retention is 90 days by default).
const MAX_DAYS: i64 = 366;

/// Listings printed per read (the counts say the rest).
const SHOWN_PER_READ: usize = 20;

#[derive(Args)]
pub struct ReplayRawArgs {
    /// First day (UTC, the day the pages were fetched), `2026-11-20`.
    #[arg(long)]
    from: NaiveDate,
    /// Last day, included.
    #[arg(long)]
    to: NaiveDate,
    /// Only this source's pages (zillow, realtor, reso).
    #[arg(long)]
    source: Option<SourceKind>,
    /// A stack deployed in AWS instead of the local one.
    #[arg(long)]
    stack: Option<String>,
    /// Publish the listings that now parse differently (the default only shows them).
    #[arg(long)]
    apply: bool,
}

pub async fn run(args: ReplayRawArgs) -> Result<()> {
    if args.to < args.from {
        bail!("--to {} is before --from {}", args.to, args.from);
    }
    if (args.to - args.from).num_days() >= MAX_DAYS {
        bail!("at most {MAX_DAYS} days at a time: split the range");
    }
    let sources: Vec<SourceKind> = match args.source {
        Some(SourceKind::File) => bail!("file exports are not polled: the raw layer has none"),
        Some(source) => vec![source],
        None => vec![SourceKind::Zillow, SourceKind::Realtor, SourceKind::Reso],
    };
    let target = target::resolve(args.stack.as_deref()).await?;
    let s3 = realty_aws::sdk::s3_client(&target.sdk);
    let raw = S3RawPageStore {
        client: s3.clone(),
        bucket: target.resources.data_lake_bucket.clone(),
    };
    let mut keys = Vec::new();
    for day in args.from.iter_days().take_while(|d| *d <= args.to) {
        for source in &sources {
            keys.extend(raw.list(&day_prefix(*source, day)).await?);
        }
    }

    let bar = ProgressBar::new(keys.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("pages");
    let mut reads = RawReads::default();
    let mut unreadable = 0usize;
    for key in &keys {
        let (body, metadata) = raw.get(key).await?;
        match RawPage::from_metadata(&metadata)
            .and_then(|page| page.normalise(&body).map(|parsed| (page, parsed)))
        {
            Ok((page, parsed)) => reads.add(page, parsed),
            Err(e) => {
                unreadable += 1;
                bar.println(format!("unreadable {key}: {e}"));
            }
        }
        bar.inc(1);
    }
    let reads = reads.into_reads();
    bar.set_length(reads.len() as u64);
    bar.set_position(0);
    bar.set_message("reads");

    let states = S3PollStateStore {
        client: s3,
        bucket: target.resources.data_lake_bucket.clone(),
    };
    let kinesis = KinesisPublisher {
        client: aws_sdk_kinesis::Client::new(&target.sdk),
        stream: target.resources.listing_events_stream.clone(),
        retry: RetryPolicy::default(),
    };
    let started_at = chrono::Utc::now();
    let done = |_: &ReadReplay| bar.inc(1);
    let replayed = if args.apply {
        replay_reads(
            reads,
            &Recorded::new(Some(&kinesis)),
            &states,
            started_at,
            &done,
        )
        .await
    } else {
        replay_reads(
            reads,
            &Recorded::new(None::<&KinesisPublisher>),
            &DryRunStates::new(&states),
            started_at,
            &done,
        )
        .await
    };
    bar.finish_and_clear();
    print_report(
        &args,
        &target.description,
        keys.len(),
        unreadable,
        &replayed,
    )
}

fn describe(event: &ListingEvent) -> String {
    let id = event.listing.id.as_str();
    match &event.kind {
        EventKind::New => format!(
            "new      {id}: not in the poller's state (rejected then?), {}",
            money(event.listing.price_minor, &event.listing.currency)
        ),
        EventKind::Delisted => format!("delisted {id}"),
        EventKind::Changed { changes } => {
            let mut parts = Vec::new();
            if let Some(price) = changes.price {
                let currency = &event.listing.currency;
                parts.push(format!(
                    "price {} -> {}",
                    money(price.old, currency),
                    money(price.new, currency)
                ));
            }
            if let Some(status) = changes.status {
                parts.push(format!("status {:?} -> {:?}", status.old, status.new));
            }
            for field in &changes.fields {
                parts.push(format!("{field:?}"));
            }
            format!("changed  {id}: {}", parts.join(", "))
        }
    }
}

fn print_report(
    args: &ReplayRawArgs,
    target: &str,
    pages: usize,
    unreadable: usize,
    replayed: &[ReadReplay],
) -> Result<()> {
    let verb = if args.apply {
        "published"
    } else {
        "would publish"
    };
    let mut events = 0;
    let mut failed = 0;
    for r in replayed {
        let read = &r.read;
        let offer = if read.state_key().ends_with("/rent") {
            "rentals"
        } else {
            "sale"
        };
        match &r.outcome {
            Ok(m) => {
                events += r.events.len();
                println!(
                    "{} {} {} ({offer}): {} pages, {} listings, {} rejected; {verb} {} ({} new, {} changed), {} unchanged, {} superseded by a later poll{}",
                    read.first.poll_id,
                    read.first.source,
                    read.first.market,
                    read.pages,
                    read.listings.len(),
                    read.rejects,
                    r.events.len(),
                    m.delivery.new,
                    m.delivery.changed,
                    m.unchanged,
                    m.stale,
                    if r.outside_window > 0 {
                        format!(", {} too old to replay", r.outside_window)
                    } else {
                        String::new()
                    }
                );
                for event in r.events.iter().take(SHOWN_PER_READ) {
                    println!("  {}", describe(event));
                }
                if r.events.len() > SHOWN_PER_READ {
                    println!("  ... and {} more", r.events.len() - SHOWN_PER_READ);
                }
                if m.delivery.unpublished > 0 || m.delivery.state_conflict {
                    failed += 1;
                }
            }
            Err(e) => {
                failed += 1;
                println!(
                    "{} {}: not replayed: {e}",
                    read.first.poll_id,
                    read.state_key()
                );
            }
        }
    }
    println!(
        "replay-raw {} to {} on {target}: {pages} pages ({unreadable} unreadable) in {} reads; {verb} {events} events{}",
        args.from,
        args.to,
        replayed.len(),
        if args.apply {
            ""
        } else {
            " (dry run: nothing sent; --apply sends them)"
        }
    );
    if failed > 0 {
        bail!(
            "{failed} reads were not replayed whole; running it again sends only what is missing"
        );
    }
    if unreadable > 0 {
        return Err(anyhow::anyhow!("{unreadable} pages could not be read"))
            .context("see the lines above");
    }
    Ok(())
}
