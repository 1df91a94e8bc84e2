use std::collections::BTreeMap;
use std::path::Path;

use super::*;

const TEMPLATE: &str = r#"
Parameters:
  Threshold: { Type: Number, Default: 300000 }
Resources:
  Fn: { Type: AWS::Serverless::Function }
  Queue: { Type: AWS::SQS::Queue }
  AgeAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/Lambda
      MetricName: IteratorAge
      Dimensions:
        - Name: FunctionName
          Value: !Ref Fn
      Threshold: !Ref Threshold
  SumAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics:
        - Id: a
          MetricStat:
            Metric:
              Namespace: RealtyStream
              MetricName: poll_failed_markets
              Dimensions: [{ Name: function, Value: poller }]
        - Id: b
          MetricStat:
            Metric:
              Namespace: AWS/SQS
              MetricName: ApproximateNumberOfMessagesVisible
              Dimensions: [{ Name: QueueName, Value: !GetAtt Queue.QueueName }]
        - Id: q
          Expression: SELECT SUM(source_requests) FROM SCHEMA("RealtyStream", function, source) WHERE function = 'poller'
        - Id: total
          Expression: SUM([a, b])
  Board:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardBody: !Sub |
        {"widgets": [
          {"type": "alarm", "properties": {"title": "Alarms", "alarms": ["${AgeAlarm.Arn}"]}},
          {"type": "text", "properties": {"markdown": "hello"}},
          {"type": "metric", "properties": {"title": "Ages", "metrics": [
            ["AWS/Lambda", "IteratorAge", "FunctionName", "${Fn}", {"stat": "Maximum"}],
            [".", "Errors", ".", "."]
          ]}},
          {"type": "metric", "properties": {"title": "Freshness", "metrics": [
            [{"id": "f", "expression": "SELECT MAX(market_minutes_since_event) FROM SCHEMA(\"RealtyStream\", function, market) WHERE function = 'poller' GROUP BY market ORDER BY MAX() DESC LIMIT 50"}],
            [{"id": "m", "expression": "f * 60"}]
          ]}}
        ]}
"#;

fn metric(
    used_by: &str,
    namespace: &str,
    name: &str,
    dimensions: &[(&str, &str)],
) -> MonitoredMetric {
    MonitoredMetric {
        used_by: used_by.into(),
        namespace: namespace.into(),
        metric: name.into(),
        dimensions: dimensions
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn reads_plain_math_and_insights_alarms_and_every_metric_widget() {
    let t = Template::parse(TEMPLATE).unwrap();
    let mut ctx = Context::new(&t, "s", "eu-west-1", "123456789012", &BTreeMap::new()).unwrap();
    ctx.set_ref("Fn", "s-fn");
    ctx.set_attribute("Queue", "QueueName", "s-queue");
    ctx.set_attribute(
        "AgeAlarm",
        "Arn",
        "arn:aws:cloudwatch:eu-west-1:1:alarm:s-age",
    );
    let got = monitored_metrics(&t, &ctx).unwrap();
    assert_eq!(
        got,
        vec![
            metric(
                "alarm AgeAlarm",
                "AWS/Lambda",
                "IteratorAge",
                &[("FunctionName", "s-fn")]
            ),
            metric(
                "alarm SumAlarm",
                "RealtyStream",
                "poll_failed_markets",
                &[("function", "poller")]
            ),
            metric(
                "alarm SumAlarm",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &[("QueueName", "s-queue")]
            ),
            metric(
                "alarm SumAlarm",
                "RealtyStream",
                "source_requests",
                &[("function", "poller"), ("source", "*")]
            ),
            metric(
                "dashboard widget Ages",
                "AWS/Lambda",
                "IteratorAge",
                &[("FunctionName", "s-fn")]
            ),
            metric(
                "dashboard widget Ages",
                "AWS/Lambda",
                "Errors",
                &[("FunctionName", "s-fn")]
            ),
            metric(
                "dashboard widget Freshness",
                "RealtyStream",
                "market_minutes_since_event",
                &[("function", "poller"), ("market", "*")]
            ),
        ]
    );
}

#[test]
fn a_symbolic_context_names_resources_by_logical_id() {
    let t = Template::parse(TEMPLATE).unwrap();
    let got = monitored_metrics(&t, &Context::symbolic(&t).unwrap()).unwrap();
    assert_eq!(got[0].dimensions["FunctionName"], "Fn");
    assert_eq!(got[2].dimensions["QueueName"], "Queue.QueueName");
}

#[test]
fn insights_queries_name_their_namespace_metric_and_dimensions() {
    let q = |text| insights::parse("w", text).unwrap();
    let m = q(r#"SELECT AVG("batch_duration_ms") FROM "RealtyStream" WHERE function = 'metrics'"#);
    assert_eq!(
        m,
        metric(
            "w",
            "RealtyStream",
            "batch_duration_ms",
            &[("function", "metrics")]
        )
    );
    let m = q("select max(x) from schema(Ns, a, b) where a != 'z' and b = 'y' group by a limit 5");
    assert_eq!(m, metric("w", "Ns", "x", &[("a", "*"), ("b", "y")]));
    let m = q("SELECT COUNT(y) FROM Ns GROUP BY c, d");
    assert_eq!(m, metric("w", "Ns", "y", &[("c", "*"), ("d", "*")]));
    assert!(insights::is_query("  select MAX(x) FROM n"));
    assert!(!insights::is_query("SUM([a, b])"));
    for bad in [
        "SELECT MAX x FROM n",
        "SELECT MAX(x) n",
        "SELECT MAX() FROM n",
    ] {
        let err = insights::parse("w", bad).unwrap_err().to_string();
        assert!(err.contains("Metrics Insights"), "{err}");
    }
}

#[test]
fn refuses_what_it_cannot_read() {
    let with_body = |rows: &str| {
        format!(
            "Resources:\n  B:\n    Type: AWS::CloudWatch::Dashboard\n    Properties:\n      DashboardBody: '{{\"widgets\": [{{\"type\": \"metric\", \"properties\": {{\"title\": \"T\", \"metrics\": {rows}}}}}]}}'\n"
        )
    };
    for rows in [
        r#"[["N", "m"], ["..."]]"#,
        r#"[[".", "m"]]"#,
        r#"[["N", "m", "dimension-without-value"]]"#,
        r#"[["N", 3]]"#,
    ] {
        let t = Template::parse(&with_body(rows)).unwrap();
        let err = monitored_metrics(&t, &Context::symbolic(&t).unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("dashboard widget T"),
            "{rows}: {err}"
        );
    }
    let t = Template::parse(
        "Resources:\n  A:\n    Type: AWS::CloudWatch::Alarm\n    Properties: { Threshold: 1 }\n",
    )
    .unwrap();
    let err = monitored_metrics(&t, &Context::symbolic(&t).unwrap()).unwrap_err();
    assert!(err.to_string().contains("alarm A"), "{err}");
}

#[test]
fn every_alarm_and_metric_widget_of_the_project_template_watches_a_metric() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let t = Template::load(&path).unwrap();
    let got = monitored_metrics(&t, &Context::symbolic(&t).unwrap()).unwrap();
    for (id, _) in t.resources_of("AWS::CloudWatch::Alarm") {
        assert!(
            got.iter().any(|m| m.used_by == format!("alarm {id}")),
            "{id} watches no metric"
        );
    }
    assert!(got.contains(&metric(
        "alarm MetricsIteratorAgeAlarm",
        "AWS/Lambda",
        "IteratorAge",
        &[("FunctionName", "MetricsFunction")]
    )));
    // The market API's 5xx answers, by the API's id (`!Ref MarketApi`).
    assert!(got.contains(&metric(
        "alarm Api5xxAlarm",
        "AWS/ApiGateway",
        "5xx",
        &[("ApiId", "MarketApi")]
    )));
    assert!(got.contains(&metric(
        "dashboard widget Market freshness (minutes since the last event)",
        "RealtyStream",
        "market_minutes_since_event",
        &[("function", "poller"), ("market", "*")]
    )));
    // Every custom metric is one of the functions' own, under their dimension.
    for m in got.iter().filter(|m| m.namespace == "RealtyStream") {
        let function = m.dimensions.get("function").map(String::as_str);
        assert!(
            matches!(
                function,
                Some("poller" | "metrics" | "alerts" | "curator" | "importer")
            ),
            "{m:?}"
        );
    }
}
