//! Unit tests of the RESO API: filters, query options, incremental sync and `$select`.

use chrono::{TimeDelta, TimeZone as _, Utc};

use super::filter::{Op, TextField};
use super::*;
use crate::config::MarketConfig;
use crate::listing::SimListing;
use crate::market::Market;
use crate::time_format;

fn pairs(list: &[(&str, &str)]) -> QueryPairs {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn filters_parse_and_the_unsupported_is_refused() {
    let at = Utc
        .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
        .single()
        .expect("valid time");
    assert_eq!(
        parse_filter(
            "ModificationTimestamp gt 2024-03-01T12:00:00Z and (StandardStatus eq 'Active')"
        )
        .expect("valid"),
        vec![
            Clause::Modified(Op::Gt, at),
            Clause::Text(TextField::StandardStatus, Op::Eq, "Active".into()),
        ]
    );
    assert_eq!(
        parse_filter("City eq 'St. John''s' and ListPrice le 500000").expect("valid"),
        vec![
            Clause::Text(TextField::City, Op::Eq, "St. John's".into()),
            Clause::ListPrice(Op::Le, 500_000.0),
        ]
    );
    assert_eq!(parse_filter("").expect("empty is fine"), vec![]);
    for bad in [
        "City eq 'Nashville' or City eq 'Austin'",
        "City gt 'A'",
        "Bedrooms eq 3",
        "ModificationTimestamp gt yesterday",
        "City eq 'Nashville",
        "(City eq 'Nashville'",
        "City eq 'Nashville' and",
        "City 'Nashville'",
    ] {
        assert!(parse_filter(bad).is_err(), "{bad}");
    }
}

#[test]
fn incremental_sync_pages_through_modified_records_in_order() {
    let mut market = Market::new(
        4,
        MarketConfig {
            markets: vec!["denver-co".into(), "chicago-il".into()],
            listings_per_market: 600,
            ..MarketConfig::default()
        },
    )
    .expect("market");
    let watermark = market.now();
    market.advance(TimeDelta::hours(48)).expect("advance");
    let filter = format!(
        "ModificationTimestamp gt {}",
        time_format::millis(watermark)
    );
    let expected: Vec<&SimListing> = market
        .all_listings()
        .filter(|l| l.modified_at > watermark)
        .collect();
    assert!(!expected.is_empty());

    let mut keys = Vec::new();
    let mut request = pairs(&[
        ("$filter", &filter),
        ("$top", "25"),
        ("$orderby", "ModificationTimestamp"),
    ]);
    loop {
        let query = parse(&request).expect("valid query");
        let body: serde_json::Value =
            serde_json::from_slice(&render(&market, &query, "http://sim").body).expect("json");
        for record in body["value"].as_array().expect("value") {
            keys.push((
                record["ModificationTimestamp"]
                    .as_str()
                    .expect("timestamp")
                    .to_owned(),
                record["ListingKey"].as_str().expect("key").to_owned(),
            ));
        }
        match body["@odata.nextLink"].as_str() {
            Some(link) => {
                let skip = link.rsplit("$skip=").next().expect("skip").to_owned();
                assert!(link.starts_with(
                    "http://sim/reso/odata/Property?$filter=ModificationTimestamp%20gt%20"
                ));
                request = pairs(&[("$filter", &filter), ("$top", "25"), ("$skip", &skip)]);
            }
            None => break,
        }
    }
    assert_eq!(keys.len(), expected.len());
    assert!(keys.windows(2).all(|w| w[0].0 <= w[1].0));

    // Narrowed to one market by City + StateOrProvince, with a count.
    let city = format!("{filter} and City eq 'Denver' and StateOrProvince eq 'CO'");
    let query = parse(&pairs(&[
        ("$filter", &city),
        ("$top", "5000"),
        ("$count", "true"),
    ]))
    .expect("valid");
    let body: serde_json::Value =
        serde_json::from_slice(&render(&market, &query, "http://sim").body).expect("json");
    let denver = expected.iter().filter(|l| l.market == "denver-co").count();
    assert_eq!(body["@odata.count"], denver);
    assert_eq!(body["value"].as_array().map(Vec::len), Some(denver));
    assert!(body.get("@odata.nextLink").is_none());
}

#[test]
fn the_filter_is_required_and_select_keeps_the_fields_named() {
    let market = Market::new(
        5,
        MarketConfig {
            markets: vec!["nashville-tn".into(), "syracuse-ny".into()],
            listings_per_market: 50,
            ..MarketConfig::default()
        },
    )
    .expect("market");
    let reply = parse(&pairs(&[("$top", "10")])).expect_err("no filter");
    assert_eq!(reply.status, 400);
    let query = parse(&pairs(&[
        ("$filter", "OriginatingSystemName eq 'RealTracs'"),
        ("$select", "ListingKey, City,LotSizeUnits"),
        ("$top", "5000"),
    ]))
    .expect("valid");
    let body: serde_json::Value =
        serde_json::from_slice(&render(&market, &query, "http://sim").body).expect("json");
    let records = body["value"].as_array().expect("value");
    let nashville = market
        .all_listings()
        .filter(|l| l.market == "nashville-tn")
        .count();
    assert_eq!(records.len(), nashville);
    for record in records {
        let mut names: Vec<&String> = record.as_object().expect("object").keys().collect();
        names.sort();
        assert_eq!(names, ["City", "ListingKey"]);
        assert_eq!(record["City"], "Nashville");
    }
    for bad in ["ListingKey,", "List-Price", "a b"] {
        let reply = parse(&pairs(&[
            ("$filter", "City eq 'Nashville'"),
            ("$select", bad),
        ]))
        .expect_err("bad $select");
        assert_eq!(reply.status, 400, "{bad}");
    }
}

#[test]
fn bad_options_are_odata_errors() {
    for bad in [
        vec![("$top", "0")],
        vec![("$top", "5001")],
        vec![("$skip", "-3")],
        vec![("$orderby", "ListPrice desc")],
        vec![("$filter", "Bedrooms eq 3")],
    ] {
        let mut bad = bad;
        if bad[0].0 != "$filter" {
            bad.push(("$filter", "City eq 'Nashville'"));
        }
        let reply = parse(&pairs(&bad)).expect_err("invalid");
        assert_eq!(reply.status, 400);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
        assert!(body["error"]["message"].is_string());
    }
}
