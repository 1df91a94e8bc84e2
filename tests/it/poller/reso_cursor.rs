//! RESO records committed late, at the cursor's timestamp, are read once.

use std::sync::Arc;

use libtest_mimic::Failed;
use realty_tests::{TestAws, ensure};

use super::helpers::{FixtureApi, FixtureReply, fixture_poller, poll_events, poll_markets, stack};

/// A RESO Property page of `records` whose `ModificationTimestamp` passes the request's
/// `$filter` (`gt` or `ge` against one timestamp), as a feed evaluates it.
fn reso_answer(records: &[serde_json::Value], target: &str) -> FixtureReply {
    let decoded: String = target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| k.replace("%24", "$") == "$filter")
        .map(|(_, v)| {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let bytes = v.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%'
                    && let Some(b) = v
                        .get(i + 1..i + 3)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(b);
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
        .next()
        .unwrap_or_default();
    let bound = decoded
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(3)
        .find(|w| w[0] == "ModificationTimestamp")
        .and_then(|w| {
            let at = chrono::DateTime::parse_from_rfc3339(w[2]).ok()?;
            Some((w[1].to_owned(), at))
        });
    let value: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| {
            let Some((op, bound)) = &bound else {
                return true;
            };
            let Some(at) = r["ModificationTimestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            else {
                return false;
            };
            match op.as_str() {
                "gt" => at > *bound,
                "ge" => at >= *bound,
                _ => true,
            }
        })
        .collect();
    FixtureReply::json(
        serde_json::to_vec(&serde_json::json!({
            "@odata.context": "$metadata#Property",
            "value": value,
        }))
        .unwrap_or_default(),
    )
}

pub(super) async fn reso_reads_records_committed_late_at_the_cursor(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let page: serde_json::Value = serde_json::from_slice(include_bytes!(
        "../../../shared/sources/tests/fixtures/reso_property_page1.json"
    ))?;
    let mut records: Vec<serde_json::Value> = page["value"]
        .as_array()
        .ok_or("a value array")?
        .iter()
        .take(2)
        .cloned()
        .collect();
    ensure(records.len() == 2, "two records")?;
    // Both carry the same timestamp; the second is committed after the first poll.
    for r in &mut records {
        r["ModificationTimestamp"] = serde_json::json!("2025-03-03T12:00:00.000Z");
    }
    let first_only = records[..1].to_vec();
    let api = FixtureApi::start(Box::new(move |t, _| reso_answer(&first_only, t))).await?;
    let p = fixture_poller(&aws, &resources, "reso", &api.base_url, None).await?;
    let first = poll_markets(&p, &["nashville-tn"]).await;
    ensure(
        first.failed_markets == 0 && first.new == 1,
        format!("{first:?}"),
    )?;
    let both = records.clone();
    api.answer(Box::new(move |t, _| reso_answer(&both, t)));
    let second = poll_markets(&p, &["nashville-tn"]).await;
    let events = poll_events(&aws, &resources, &second).await?;
    let late = records[1]["ListingKey"].as_str().unwrap_or_default();
    ensure(
        second.new == 1 && second.changed == 0 && events.len() == 1 && events.contains_key(late),
        format!(
            "the late record {late} must be read once, the other not again: {events:?} {second:?}"
        ),
    )?;
    // And a poll with nothing new finds nothing.
    let third = poll_markets(&p, &["nashville-tn"]).await;
    ensure(
        third.new + third.changed + third.delisted == 0,
        format!("{third:?}"),
    )
}
