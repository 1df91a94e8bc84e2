//! Bounded resources (issue 12, point 6): an oversized body or event fails alone.

use std::collections::BTreeSet;
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_model::listing::ListingEvent;
use realty_poller::ports::EventPublisher;
use realty_tests::{TestAws, ensure};

use super::helpers::{
    FixtureApi, FixtureReply, fixture_poller, poll_markets, serve_json, stack, stream_events,
    syracuse_props, zillow_envelope,
};

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, Failed> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

pub(super) async fn a_gzip_bomb_or_a_huge_page_fails_its_read_alone(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    use realty_poller::fetch::DEFAULT_MAX_BODY_BYTES;
    let resources = stack(&aws).await?;
    // 48 KiB on the wire, past the body cap once decompressed.
    let bomb = gzip(&vec![b' '; DEFAULT_MAX_BODY_BYTES + 1024 * 1024])?;
    let huge = vec![b' '; DEFAULT_MAX_BODY_BYTES + 1];
    let good = zillow_envelope(&syracuse_props()?);
    let api = FixtureApi::start(Box::new(move |target, _| {
        if target.contains("Nashville") {
            FixtureReply {
                status: 200,
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("content-encoding", "gzip".into()),
                ],
                body: bomb.clone(),
            }
        } else if target.contains("Austin") {
            FixtureReply::json(huge.clone())
        } else {
            FixtureReply::json(good.clone())
        }
    }))
    .await?;
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let summary = poll_markets(&p, &["nashville-tn", "austin-tx", "syracuse-ny"]).await;
    let market = |key: &str| summary.per_market.iter().find(|m| m.market == key);
    for key in ["nashville-tn", "austin-tx"] {
        let error = market(key)
            .and_then(|m| m.error.clone())
            .unwrap_or_default();
        ensure(
            error.contains("larger than"),
            format!("{key}: the oversized body must fail its read: {summary:?}"),
        )?;
    }
    ensure(
        api.requests_containing("Nashville") == 1 && api.requests_containing("Austin") == 1,
        "an oversized body is not fetched again",
    )?;
    ensure(
        market("syracuse-ny").is_some_and(|m| m.error.is_none() && m.new > 30),
        format!("the other market is read as usual: {summary:?}"),
    )
}

pub(super) async fn an_event_over_1_mib_is_rejected_alone(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let api = FixtureApi::start(serve_json(Vec::new())).await?;
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let mut listings = realty_sources::normalize_file(
        realty_model::markets::SourceKind::Zillow,
        &zillow_envelope(&syracuse_props()?),
        chrono::Utc::now(),
    )?
    .listings;
    listings.truncate(3);
    ensure(listings.len() == 3, "three listings")?;
    let mut events: Vec<ListingEvent> = listings
        .into_iter()
        .map(|l| ListingEvent::new_listing(l, "poll-oversize"))
        .collect();
    events[1].listing.address.line = Some("x".repeat(1024 * 1024));
    let failures = p.publisher.publish(&events).await?;
    ensure(
        failures.len() == 1 && failures[0].index == 1 && failures[0].error.contains("limit"),
        format!("only the oversized event fails, with its reason: {failures:?}"),
    )?;
    let landed = stream_events(&aws, &resources.listing_events_stream).await?;
    let ids: BTreeSet<&str> = landed.iter().map(|e| e.listing.id.as_str()).collect();
    let want: BTreeSet<&str> = [&events[0], &events[2]]
        .iter()
        .map(|e| e.listing.id.as_str())
        .collect();
    ensure(
        ids == want && landed.len() == 2,
        format!("the two good events land, once each: {ids:?}"),
    )
}
