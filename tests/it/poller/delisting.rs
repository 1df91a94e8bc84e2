//! Reads that must not delist (issue 12, point 3).

use std::net::SocketAddr;
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_model::markets::SourceKind;
use realty_poller::detect::MASS_LOSS_CONFIRMATION;
use realty_poller::run::{PollRequest, PollSummary};
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{TestAws, ensure};

use super::helpers::{
    FixtureApi, fixture_poller, poll_events, poll_markets, poll_markets_at, serve_json,
    source_poller, stack, syracuse_props, zillow_envelope,
};

pub(super) async fn a_page_without_a_total_infers_no_delisting(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let props = syracuse_props()?;
    let api = FixtureApi::start(serve_json(zillow_envelope(&props))).await?;
    // No guard: only the missing total may stop the delistings.
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, Some("1")).await?;
    let first = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        first.failed_markets == 0 && first.per_market[0].complete && first.new > 30,
        format!("a page with its total is a complete read: {first:?}"),
    )?;
    // The same API now answers with a bare `props` array (no total), five listings short.
    api.answer(serve_json(serde_json::to_vec(&props[..36])?));
    let second = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        second.failed_markets == 0 && !second.per_market[0].complete,
        format!("a page without a total is no complete read: {second:?}"),
    )?;
    ensure(
        second.delisted == 0,
        format!(
            "a read without a total delisted {}: {second:?}",
            second.delisted
        ),
    )?;
    let events = poll_events(&aws, &resources, &second).await?;
    ensure(events.is_empty(), format!("events: {events:?}"))
}

pub(super) async fn a_listing_that_becomes_a_reject_stays_listed(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let mut props = syracuse_props()?;
    let api = FixtureApi::start(serve_json(zillow_envelope(&props))).await?;
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let first = poll_markets(&p, &["syracuse-ny"]).await;
    let listed = poll_events(&aws, &resources, &first).await?;
    ensure(first.new > 30, format!("{first:?}"))?;
    // A listing of the first poll now has "call for price".
    let (index, zpid) = props
        .iter()
        .enumerate()
        .find_map(|(i, prop)| {
            let zpid = prop.get("zpid")?.as_str()?.to_owned();
            listed.contains_key(&zpid).then_some((i, zpid))
        })
        .ok_or("no listed prop")?;
    let price = props[index]["price"].as_f64().ok_or("a numeric price")?;
    props[index]["price"] = serde_json::json!("call for price");
    api.answer(serve_json(zillow_envelope(&props)));
    let second = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        second.per_market[0].complete && second.rejects == first.rejects + 1,
        format!("the call-for-price record is a reject of a complete read: {second:?}"),
    )?;
    ensure(
        second.delisted == 0 && second.new + second.changed == 0,
        format!("a listing that became a reject was delisted: {second:?}"),
    )?;
    // Priced again, lower: a price cut of a listing known all along, not a new listing.
    props[index]["price"] = serde_json::json!((price * 0.9).round());
    api.answer(serve_json(zillow_envelope(&props)));
    let third = poll_markets(&p, &["syracuse-ny"]).await;
    let events = poll_events(&aws, &resources, &third).await?;
    ensure(
        events.len() == 1 && events.get(&zpid) == Some(&"changed"),
        format!("expected one change of {zpid}, got {events:?}: {third:?}"),
    )
}

pub(super) async fn a_null_realtor_search_is_not_an_empty_market(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let mut page: serde_json::Value = serde_json::from_slice(include_bytes!(
        "../../../shared/sources/tests/fixtures/realtor_realty-in-us_properties_v3_list.json"
    ))?;
    // The saved page is the first of 79; here it is the whole market.
    let results = page["data"]["home_search"]["results"]
        .as_array()
        .map_or(0, Vec::len);
    page["data"]["home_search"]["total"] = serde_json::json!(results);
    let api = FixtureApi::start(serve_json(serde_json::to_vec(&page)?)).await?;
    // No guard: only reading the null search right may stop the delistings.
    let p = fixture_poller(&aws, &resources, "realtor", &api.base_url, Some("1")).await?;
    let first = poll_markets(&p, &["los-angeles-ca"]).await;
    ensure(
        first.failed_markets == 0 && first.per_market[0].complete && first.new > 0,
        format!("{first:?}"),
    )?;
    api.answer(serve_json(br#"{"data": {"home_search": null}}"#.to_vec()));
    let second = poll_markets(&p, &["los-angeles-ca"]).await;
    ensure(
        !second.per_market[0].complete && second.delisted == 0,
        format!("a null search emptied the market: {second:?}"),
    )
}

pub(super) async fn a_mass_loss_waits_for_a_second_read(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let props = syracuse_props()?;
    let api = FixtureApi::start(serve_json(zillow_envelope(&props))).await?;
    // The default share, 30 %. The first polls run as if earlier, so that a later one comes
    // after the confirmation time without waiting for it.
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let now = chrono::Utc::now();
    let earlier = now - MASS_LOSS_CONFIRMATION - chrono::TimeDelta::minutes(10);
    let first = poll_markets_at(&p, &["syracuse-ny"], earlier).await;
    ensure(first.new > 30, format!("{first:?}"))?;
    // A complete read (its total agrees) of half the market.
    api.answer(serve_json(zillow_envelope(&props[..20])));
    let held_at = earlier + chrono::TimeDelta::minutes(1);
    let second = poll_markets_at(&p, &["syracuse-ny"], held_at).await;
    let gone = first.new - second.listings;
    ensure(
        second.per_market[0].complete && second.delisted == 0 && second.held_delistings == gone,
        format!(
            "{gone} of {} missing at once must wait: {second:?}",
            first.new
        ),
    )?;
    // A second read soon after does not confirm them yet.
    let soon = held_at + chrono::TimeDelta::minutes(5);
    let third = poll_markets_at(&p, &["syracuse-ny"], soon).await;
    ensure(
        third.delisted == 0 && third.held_delistings == gone,
        format!("a read at {soon} must still hold the {gone}: {third:?}"),
    )?;
    // A read past the confirmation time confirms: now they go.
    let fourth = poll_markets_at(&p, &["syracuse-ny"], now).await;
    ensure(
        fourth.delisted == gone && fourth.held_delistings == 0,
        format!("the confirming read must delist the {gone}: {fourth:?}"),
    )?;
    let events = poll_events(&aws, &resources, &fourth).await?;
    ensure(
        events.len() == gone && events.values().all(|k| *k == "delisted"),
        format!("{events:?}"),
    )?;
    // Nothing more happens after.
    let fifth = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        fifth.new + fifth.changed + fifth.delisted + fifth.held_delistings == 0,
        format!("{fifth:?}"),
    )
}

pub(super) async fn listings_hidden_from_a_read_are_not_delisted(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    // Big enough that Zillow reads it in price bands, so a listing hides from one band read.
    let (first, hidden) = hidden_listings_against(&aws, SourceKind::Zillow, 1_200).await?;
    ensure(
        first.new > 820,
        format!("a market past 20 pages: {first:?}"),
    )?;
    ensure(
        hidden >= 2,
        format!("the simulator hid listings from {hidden} band reads"),
    )
}

/// A whole read of Nashville (`listings` live listings) from `source` whose every query
/// first misses one listing, its counts still adding up, finds nothing changed since a clean
/// read of the same market at the same time: the missing listing is not delisted, a second
/// read finds it. Returns the clean poll, and how many reads the simulator hid a listing from.
pub(crate) async fn hidden_listings_against(
    aws: &TestAws,
    source: SourceKind,
    listings: u32,
) -> Result<(PollSummary, u64), Failed> {
    let resources = stack(aws).await?;
    let big = |faults: FaultConfig| SimConfig {
        seed: 41,
        market: MarketConfig {
            markets: vec!["nashville-tn".into()],
            listings_per_market: listings,
            ..MarketConfig::default()
        },
        faults,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let clean = SimServer::start(addr, big(FaultConfig::none())).await?;
    // Every query's first read misses one listing, its counts still adding up; reads after
    // it see everything.
    let faulty = SimServer::start(addr, big("hidden=1,faulty_attempts=1".parse()?)).await?;
    let clean_poller = source_poller(aws, &resources, &clean, source).await?;
    let p = source_poller(aws, &resources, &faulty, source).await?;
    let request = PollRequest {
        markets: vec!["nashville-tn".into()],
        ..PollRequest::default()
    };
    let first = Box::pin(clean_poller.poll(&request, clean.handle().now())).await;
    ensure(
        first.failed_markets == 0 && first.per_market.first().is_some_and(|m| m.complete),
        format!("a clean read is complete: {first:?}"),
    )?;
    // The same market at the same time, read through the fault: nothing happened.
    let second = Box::pin(p.poll(&request, faulty.handle().now())).await;
    let hidden = faulty
        .handle()
        .faults_served()
        .get(&realty_sim::FaultKind::Hidden)
        .copied()
        .unwrap_or(0);
    ensure(
        hidden >= 1,
        format!("the simulator hid listings from {hidden} reads"),
    )?;
    ensure(
        second.failed_markets == 0
            && second.new + second.changed + second.delisted == 0
            && second.per_market[0].reconciliations == 1,
        format!("a hidden listing was taken for delisted: {second:?}"),
    )?;
    clean.shutdown().await?;
    faulty.shutdown().await?;
    Ok((first, hidden))
}
