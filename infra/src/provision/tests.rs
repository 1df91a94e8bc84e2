use aws_config::SdkConfig;

use super::*;

#[test]
fn physical_names_are_lower_kebab_case_under_the_stack_name() {
    assert_eq!(
        physical_name("realty", "ListingEventsStream"),
        "realty-listing-events-stream"
    );
    assert_eq!(
        physical_name("It-3", "DataLakeBucket"),
        "it-3-data-lake-bucket"
    );
    assert_eq!(physical_name("s", "S3Bucket"), "s-s3-bucket");
}

const MONITORING: &str = r#"
Parameters:
  Email: { Type: String, Default: "" }
Conditions:
  HasEmail: !Not [!Equals [!Ref Email, ""]]
Resources:
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: RealtyStream
      MetricName: batches_failed
      Dimensions: [{ Name: function, Value: metrics }]
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
  Board:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardName: !Sub ${AWS::StackName}-ops
      DashboardBody: !Sub '{"widgets": [{"type": "alarm", "properties": {"alarms": ["${Alarm.Arn}"]}}]}'
  Subscription:
    Type: AWS::SNS::Subscription
    Condition: HasEmail
    Properties: { Protocol: email, Endpoint: !Ref Email, TopicArn: arn:aws:sns:us-east-1:1:t }
Outputs:
  AlarmName: { Value: !Ref Alarm }
  BoardName: { Value: !Ref Board }
"#;

/// An endpoint answering every request with `status` (STS too: the account falls back).
fn endpoint_answering(status: u16) -> SdkConfig {
    let http = aws_smithy_http_client::test_util::infallible_client_fn(move |_| {
        http::Response::builder()
            .status(status)
            .body("<html>nope</html>".to_owned())
            .expect("a response")
    });
    SdkConfig::builder()
        .http_client(http)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::for_tests(),
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

fn options(parameters: &[(&str, &str)]) -> ProvisionOptions {
    ProvisionOptions {
        stack_name: "s".into(),
        parameters: parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn cloudwatch_not_served_is_skipped_with_the_reason_and_names_stay_known() {
    let template = Template::parse(MONITORING).unwrap();
    let stack = provision(&endpoint_answering(404), &template, &options(&[]))
        .await
        .unwrap();
    let skipped: BTreeMap<&str, &str> = stack
        .skipped
        .iter()
        .map(|s| (s.logical_id.as_str(), s.reason.as_str()))
        .collect();
    assert!(skipped["Alarm"].contains("CBOR"), "{skipped:?}");
    assert!(skipped["Board"].contains("CBOR"), "{skipped:?}");
    assert!(
        skipped["Subscription"].contains("HasEmail is false"),
        "{skipped:?}"
    );
    assert!(stack.resources.is_empty());
    assert_eq!(stack.outputs["AlarmName"], "s-alarm");
    assert_eq!(stack.outputs["BoardName"], "s-ops");
}

#[tokio::test]
async fn other_cloudwatch_errors_fail_provisioning() {
    let template = Template::parse(MONITORING).unwrap();
    let err = provision(&endpoint_answering(500), &template, &options(&[]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PutMetricAlarm"), "{err}");
}

#[tokio::test]
async fn a_subscription_whose_condition_holds_is_skipped_as_undeliverable() {
    let template = Template::parse(MONITORING).unwrap();
    let stack = provision(
        &endpoint_answering(404),
        &template,
        &options(&[("Email", "ops@example.com")]),
    )
    .await
    .unwrap();
    let reason = &stack
        .skipped
        .iter()
        .find(|s| s.logical_id == "Subscription")
        .unwrap()
        .reason;
    assert!(reason.contains("no email notification"), "{reason}");
}
