//! A trigger's settings as template.yaml gives them, and its filter patterns.

use std::time::Duration;

use serde_json::json;

use super::helpers::project_template;
use crate::runner::*;
use crate::template::Template;

#[test]
fn reads_the_metrics_and_alerts_triggers_from_the_template() {
    let t = project_template();
    let metrics = TriggerSettings::from_template(&t, "MetricsFunction").unwrap();
    assert_eq!(metrics.kind, TriggerKind::Kinesis);
    assert_eq!(metrics.source_logical_id, "ListingEventsStream");
    assert_eq!(metrics.starting_position, StartingPosition::TrimHorizon);
    assert_eq!(metrics.batch_size, 1000);
    assert_eq!(metrics.batching_window, Duration::from_secs(1));
    assert!(metrics.report_batch_item_failures && metrics.bisect_on_error);
    assert_eq!(metrics.max_retry_attempts, Some(10));
    assert_eq!(metrics.max_record_age, Some(Duration::from_secs(3600)));
    assert_eq!(
        metrics.on_failure,
        Some(OnFailure {
            kind: "SQS".into(),
            logical_id: "MetricsFailureQueue".into()
        })
    );
    assert!(metrics.filters.is_empty());

    let alerts = TriggerSettings::from_template(&t, "AlertsFunction").unwrap();
    assert_eq!(alerts.kind, TriggerKind::DynamoDb);
    assert_eq!(alerts.source_logical_id, "ListingTable");
    assert_eq!(alerts.batch_size, 100);
    assert_eq!(alerts.batching_window, Duration::ZERO);
    // A MODIFY or INSERT (a new listing can be undervalued) the metrics function marked as
    // possibly alerting, or written before the mark; never one marked as alerting nothing,
    // never a REMOVE.
    let passes = |record: serde_json::Value| alerts.filters.iter().any(|f| f.matches(&record));
    let image = |name: &str, mark: Option<bool>| match mark {
        Some(m) => json!({"eventName": name, "dynamodb": {"NewImage": {"may_alert": {"BOOL": m}}}}),
        None => json!({"eventName": name, "dynamodb": {"NewImage": {}}}),
    };
    assert_eq!(alerts.filters.len(), 2);
    for name in ["MODIFY", "INSERT"] {
        assert!(passes(image(name, Some(true))));
        assert!(passes(image(name, None)));
        assert!(!passes(image(name, Some(false))));
    }
    assert!(!passes(json!({"eventName": "REMOVE", "dynamodb": {}})));
    assert_eq!(
        alerts.on_failure.map(|o| o.logical_id).as_deref(),
        Some("AlertsFailureQueue")
    );
    assert!(TriggerSettings::from_template(&t, "PollerFunction").is_err());
}

const SMALL: &str = r#"
Parameters:
  Size: { Type: Number, Default: 7 }
Resources:
  S: { Type: AWS::Kinesis::Stream }
  F:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        E:
          Type: Kinesis
          Properties:
            Stream: !GetAtt S.Arn
            StartingPosition: LATEST
            BatchSize: !Ref Size
"#;

#[test]
fn applies_lambda_defaults_and_parameter_defaults() {
    let t = Template::parse(SMALL).unwrap();
    let s = TriggerSettings::from_template(&t, "F").unwrap();
    assert_eq!(s.batch_size, 7);
    assert_eq!(s.starting_position, StartingPosition::Latest);
    assert_eq!(s.batching_window, Duration::ZERO);
    assert!(!s.report_batch_item_failures && !s.bisect_on_error);
    assert_eq!((s.max_retry_attempts, s.max_record_age), (None, None));
    assert_eq!(s.on_failure, None);
}

#[test]
fn refuses_what_it_cannot_honour() {
    for (from, to) in [
        ("StartingPosition: LATEST", "StartingPosition: AT_TIMESTAMP"),
        ("BatchSize: !Ref Size", "BatchSize: 0"),
        ("BatchSize: !Ref Size", "MaximumRecordAgeInSeconds: 30"),
        (
            "BatchSize: !Ref Size",
            "FilterCriteria: { Filters: [ { Pattern: '{\"eventName\": [{\"prefix\": \"M\"}]}' } ] }",
        ),
    ] {
        let t = Template::parse(&SMALL.replace(from, to)).unwrap();
        assert!(
            TriggerSettings::from_template(&t, "F").is_err(),
            "{to} was accepted"
        );
    }
}

#[test]
fn filter_patterns_match_nested_values_and_lists() {
    let p = FilterPattern::parse(
        r#"{"eventName": ["MODIFY", "INSERT"], "dynamodb": {"Keys": {"id": {"S": ["a"]}}}}"#,
    )
    .unwrap();
    let record =
        |name: &str, id: &str| json!({"eventName": name, "dynamodb": {"Keys": {"id": {"S": id}}}});
    assert!(p.matches(&record("MODIFY", "a")));
    assert!(p.matches(&record("INSERT", "a")));
    assert!(!p.matches(&record("REMOVE", "a")));
    assert!(!p.matches(&record("MODIFY", "b")));
    assert!(!p.matches(&json!({"eventName": "MODIFY"})));
}

/// `exists`, as Lambda evaluates it: `false` matches a record without the field, `true` one
/// with it whatever its value; beside exact values in one list, either may match.
#[test]
fn filter_patterns_match_whether_a_field_exists() {
    let p =
        FilterPattern::parse(r#"{"dynamodb": {"NewImage": {"may_alert": [{"exists": false}]}}}"#)
            .unwrap();
    let image = |fields: serde_json::Value| json!({"dynamodb": {"NewImage": fields}});
    assert!(p.matches(&image(json!({"id": {"S": "a"}}))));
    assert!(!p.matches(&image(json!({"may_alert": {"BOOL": false}}))));
    let marked =
        FilterPattern::parse(r#"{"dynamodb": {"NewImage": {"may_alert": {"BOOL": [true]}}}}"#)
            .unwrap();
    assert!(marked.matches(&image(json!({"may_alert": {"BOOL": true}}))));
    assert!(!marked.matches(&image(json!({"may_alert": {"BOOL": false}}))));
    assert!(!marked.matches(&image(json!({"id": {"S": "a"}}))));
    let either = FilterPattern::parse(r#"{"tag": [{"exists": false}, "x"]}"#).unwrap();
    assert!(either.matches(&json!({})));
    assert!(either.matches(&json!({"tag": "x"})));
    assert!(!either.matches(&json!({"tag": "y"})));
    assert!(FilterPattern::parse(r#"{"tag": [{"exists": "no"}]}"#).is_err());
    assert!(FilterPattern::parse(r#"{"tag": [{"exists": true, "prefix": "a"}]}"#).is_err());
}
