//! `realty replay-raw --from DATE --to DATE [--source S] [--stack NAME] [--apply]`: the raw
//! API pages the poller kept (`raw/` of the lake bucket) parsed again with this build's
//! parsers, and what that would change (`realty_poller::raw_replay`, docs/lake.md).
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
use realty_model::format::money;
use realty_model::listing::{EventKind, ListingEvent};
use realty_model::markets::SourceKind;
use realty_poller::ports::{EventPublisher, PollStateStore};
use realty_poller::raw::{RawPage, day_prefix};
use realty_poller::raw_replay::{DryRunStates, RawReads, ReadReplay, Recorded, replay_reads};

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
    let sources = sources_to_read(args.source)?;
    let target = target::resolve(args.stack.as_deref()).await?;
    let s3 = realty_aws::sdk::s3_client(&target.sdk);
    let raw = S3RawPageStore {
        client: s3.clone(),
        bucket: target.resources.data_lake_bucket.clone(),
    };
    let days = list_days(&raw, &args, &sources).await?;
    let bar = ProgressBar::new(days.iter().map(Vec::len).sum::<usize>() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} pages {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let states = S3PollStateStore {
        client: s3,
        bucket: target.resources.data_lake_bucket.clone(),
    };
    let kinesis = KinesisPublisher {
        client: aws_sdk_kinesis::Client::new(&target.sdk),
        stream: target.resources.listing_events_stream.clone(),
        retry: RetryPolicy::default(),
    };
    let run = Run {
        raw: &raw,
        bar: &bar,
        verb: if args.apply {
            "published"
        } else {
            "would publish"
        },
        started_at: chrono::Utc::now(),
    };
    let totals = if args.apply {
        run.days(&days, &Recorded::new(Some(&kinesis)), &states)
            .await?
    } else {
        run.days(
            &days,
            &Recorded::new(None::<&KinesisPublisher>),
            &DryRunStates::new(&states),
        )
        .await?
    };
    bar.finish_and_clear();
    totals.report(&args, &target.description, run.verb)
}

/// The sources whose pages are read: the one asked for, or every polled one.
fn sources_to_read(source: Option<SourceKind>) -> Result<Vec<SourceKind>> {
    Ok(match source {
        Some(source) if !source.is_polled() => {
            bail!(
                "{}: the raw layer has no pages of it",
                source.why_not_polled()
            )
        }
        Some(source) => vec![source],
        None => vec![
            SourceKind::Zillow,
            SourceKind::Realtor,
            SourceKind::Reso,
            SourceKind::Avito,
            SourceKind::Mubawab,
        ],
    })
}

/// The keys of each day's pages. The keys only are listed up front (for the progress bar);
/// pages are read, parsed and replayed a day at a time, so memory holds one day's listings
/// whatever the range.
async fn list_days(
    raw: &S3RawPageStore,
    args: &ReplayRawArgs,
    sources: &[SourceKind],
) -> Result<Vec<Vec<String>>> {
    let mut days = Vec::new();
    for day in args.from.iter_days().take_while(|d| *d <= args.to) {
        let mut keys = Vec::new();
        for source in sources {
            keys.extend(raw.list(&day_prefix(*source, day)).await?);
        }
        days.push(keys);
    }
    Ok(days)
}

/// What a run did, over every day.
#[derive(Default)]
struct Totals {
    pages: usize,
    unreadable: usize,
    reads: usize,
    events: usize,
    failed: usize,
}

struct Run<'a> {
    raw: &'a S3RawPageStore,
    bar: &'a ProgressBar,
    verb: &'static str,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl Totals {
    /// The run's line; an error when a read was not replayed whole or a page was
    /// unreadable.
    fn report(&self, args: &ReplayRawArgs, target: &str, verb: &str) -> Result<()> {
        println!(
            "replay-raw {} to {} on {}: {} pages ({} unreadable) in {} reads; {} {} events{}",
            args.from,
            args.to,
            target,
            self.pages,
            self.unreadable,
            self.reads,
            verb,
            self.events,
            if args.apply {
                ""
            } else {
                " (dry run: nothing sent; --apply sends them)"
            }
        );
        if self.failed > 0 {
            bail!(
                "{} reads were not replayed whole; running it again sends only what is missing",
                self.failed
            );
        }
        if self.unreadable > 0 {
            return Err(anyhow::anyhow!(
                "{} pages could not be read",
                self.unreadable
            ))
            .context("see the lines above");
        }
        Ok(())
    }
}

impl Run<'_> {
    /// Each day's pages read, gathered into reads and replayed, oldest day first.
    async fn days<P: EventPublisher, S: PollStateStore>(
        &self,
        days: &[Vec<String>],
        publisher: &Recorded<'_, P>,
        states: &S,
    ) -> Result<Totals> {
        let mut totals = Totals::default();
        for keys in days {
            let mut reads = RawReads::default();
            for key in keys {
                // A page that cannot be fetched (expired since it was listed, or S3 failing
                // past its retries) is unreadable like one that cannot be parsed: its read
                // is replayed without it (never complete, so nothing is delisted for it),
                // the run goes on to its summary and fails at the end naming it.
                let read = match self.raw.get(key).await {
                    Ok((body, metadata)) => RawPage::from_metadata(&metadata)
                        .and_then(|page| page.normalise(&body).map(|parsed| (page, parsed)))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match read {
                    Ok((page, parsed)) => reads.add(page, parsed),
                    Err(e) => {
                        totals.unreadable += 1;
                        self.bar.println(format!("unreadable {key}: {e}"));
                    }
                }
                totals.pages += 1;
                self.bar.inc(1);
            }
            let replayed =
                replay_reads(reads.into_reads(), publisher, states, self.started_at).await;
            for r in &replayed {
                totals.reads += 1;
                totals.events += r.events.len();
                let whole = r
                    .outcome
                    .as_ref()
                    .is_ok_and(|m| m.delivery.unpublished == 0 && !m.delivery.state_conflict);
                totals.failed += usize::from(!whole);
                self.bar.suspend(|| print_read(self.verb, r));
            }
        }
        Ok(totals)
    }
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

fn print_read(verb: &str, r: &ReadReplay) {
    let read = &r.read;
    let offer = if read.state_key().ends_with("/rent") {
        "rentals"
    } else {
        "sale"
    };
    match &r.outcome {
        Ok(m) => {
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
        }
        Err(e) => println!(
            "{} {}: not replayed: {e}",
            read.first.poll_id,
            read.state_key()
        ),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::Client;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use realty_poller::memory::{MemoryPollStates, MemoryStream};

    use super::*;

    /// Pages that cannot be fetched (gone since they were listed, or S3 failing) are counted
    /// unreadable, and the run goes on to the next and to its summary.
    #[tokio::test]
    async fn a_page_that_cannot_be_fetched_is_unreadable_and_the_run_goes_on() {
        let gone = mock!(Client::get_object)
            .match_requests(|r| r.key() == Some("raw/gone"))
            .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
        let failing = mock!(Client::get_object).then_error(|| {
            GetObjectError::generic(
                aws_sdk_s3::error::ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("no")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&gone, &failing]);
        let raw = S3RawPageStore {
            client,
            bucket: "lake".into(),
        };
        let bar = ProgressBar::hidden();
        let run = Run {
            raw: &raw,
            bar: &bar,
            verb: "would publish",
            started_at: chrono::Utc::now(),
        };
        let days = vec![vec!["raw/gone".to_owned()], vec!["raw/denied".to_owned()]];
        let states = MemoryPollStates::default();
        let totals = run
            .days(
                &days,
                &Recorded::new(None::<&MemoryStream>),
                &DryRunStates::new(&states),
            )
            .await
            .expect("the run goes on");
        assert_eq!((totals.pages, totals.unreadable, totals.events), (2, 2, 0));
    }
}
