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

const API: &str = r#"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties: { Description: market API }
  Handler:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Data: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: "/{proxy+}" } }
  Api5xx:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/ApiGateway
      MetricName: 5xx
      Dimensions: [{ Name: ApiId, Value: !Ref Api }]
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
Outputs:
  ApiUrl: { Value: !Sub "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/" }
  HandlerName: { Value: !Ref Handler }
"#;

#[tokio::test]
async fn the_http_api_is_skipped_its_address_left_out_and_its_alarm_still_resolves() {
    let template = Template::parse(API).unwrap();
    let stack = provision(&endpoint_answering(404), &template, &options(&[]))
        .await
        .unwrap();
    let skipped: BTreeMap<&str, (&str, &str)> = stack
        .skipped
        .iter()
        .map(|s| (s.logical_id.as_str(), (s.kind.as_str(), s.reason.as_str())))
        .collect();
    for id in ["Api", "Handler.Data", "Outputs.ApiUrl"] {
        assert!(
            skipped[id]
                .1
                .contains("no API Gateway locally: `realty serve`"),
            "{id}: {skipped:?}"
        );
    }
    assert_eq!(skipped["Outputs.ApiUrl"].0, "Output");
    assert_eq!(skipped["Handler.Data"].0, "HttpApi event");
    // The alarm on the API's metrics got as far as CloudWatch (which this endpoint lacks).
    assert!(skipped["Api5xx"].1.contains("CBOR"), "{skipped:?}");
    assert!(!stack.outputs.contains_key("ApiUrl"), "{:?}", stack.outputs);
    assert_eq!(stack.outputs["HandlerName"], "s-handler");
}

const GENERATED_SECRETS: &str = r#"
Resources:
  Token:
    Type: AWS::SecretsManager::Secret
    Properties:
      GenerateSecretString: { PasswordLength: 40, ExcludePunctuation: true, IncludeSpace: false }
  Login:
    Type: AWS::SecretsManager::Secret
    Properties:
      GenerateSecretString:
        SecretStringTemplate: '{"user": "admin"}'
        GenerateStringKey: password
        PasswordLength: 12
Outputs:
  TokenArn: { Value: !Ref Token }
"#;

/// The requests an endpoint received: `X-Amz-Target` and JSON body of each.
type Calls = std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>;

/// Secrets Manager as far as secrets are created: every request is recorded (target, body);
/// GetRandomPassword draws `PASSWORD`; CreateSecret answers `ResourceExistsException` when
/// `exists`.
fn secrets_endpoint(exists: bool) -> (SdkConfig, Calls) {
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = calls.clone();
    let http = aws_smithy_http_client::test_util::infallible_client_fn(move |req| {
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = req
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        recorded
            .lock()
            .unwrap()
            .push((target.clone(), body.clone()));
        let (status, answer) = match target.as_str() {
            "secretsmanager.GetRandomPassword" => {
                (200, serde_json::json!({ "RandomPassword": PASSWORD }))
            }
            "secretsmanager.CreateSecret" if exists => (
                400,
                serde_json::json!({ "__type": "ResourceExistsException", "message": "exists" }),
            ),
            "secretsmanager.CreateSecret" | "secretsmanager.DescribeSecret" => (
                200,
                serde_json::json!({ "ARN": format!("arn:aws:secretsmanager:us-east-1:1:secret:{}", body["Name"].as_str().or(body["SecretId"].as_str()).unwrap_or("?")) }),
            ),
            _ => (404, Value::Null),
        };
        http::Response::builder()
            .status(status)
            .body(answer.to_string())
            .expect("a response")
    });
    let config = endpoint_answering(404)
        .into_builder()
        .http_client(http)
        .build();
    (config, calls)
}

const PASSWORD: &str = "Zq0rKc7mW2xT9bLp4VnY8sJd1HfG6aQe3UoR5iEw";

/// Provisions GENERATED_SECRETS (into an endpoint where they exist already, if `exist`):
/// the calls made.
async fn provision_generated_secrets(exist: bool) -> Calls {
    let template = Template::parse(GENERATED_SECRETS).unwrap();
    let (config, calls) = secrets_endpoint(exist);
    let stack = provision(&config, &template, &options(&[])).await.unwrap();
    assert_eq!(
        stack.outputs["TokenArn"],
        "arn:aws:secretsmanager:us-east-1:1:secret:s-token"
    );
    calls
}

#[tokio::test]
async fn a_generated_secret_is_drawn_with_the_templates_settings() {
    let calls = provision_generated_secrets(false).await;
    let calls = calls.lock().unwrap();
    let bodies = |target: &str| -> Vec<Value> {
        calls
            .iter()
            .filter(|(t, _)| t == target)
            .map(|(_, b)| b.clone())
            .collect()
    };
    let draws = bodies("secretsmanager.GetRandomPassword");
    assert!(
        draws.contains(&serde_json::json!({
            "PasswordLength": 40, "ExcludePunctuation": true, "IncludeSpace": false
        })),
        "{draws:?}"
    );
    let created: BTreeMap<String, Value> = bodies("secretsmanager.CreateSecret")
        .into_iter()
        .map(|b| {
            (
                b["Name"].as_str().unwrap().to_owned(),
                b["SecretString"].clone(),
            )
        })
        .collect();
    assert_eq!(created["s-token"], PASSWORD);
    let login: Value = serde_json::from_str(created["s-login"].as_str().unwrap()).unwrap();
    assert_eq!(
        login,
        serde_json::json!({ "user": "admin", "password": PASSWORD })
    );
}

#[tokio::test]
async fn a_generated_secret_that_exists_keeps_its_value() {
    let calls = provision_generated_secrets(true).await;
    let calls = calls.lock().unwrap();
    let writes: Vec<&str> = calls
        .iter()
        .map(|(target, _)| target.as_str())
        .filter(|t| t.starts_with("secretsmanager."))
        .filter(|t| {
            !t.ends_with(".GetRandomPassword")
                && !t.ends_with(".CreateSecret")
                && !t.ends_with(".DescribeSecret")
        })
        .collect();
    assert!(
        writes.is_empty(),
        "the existing value was written: {writes:?}"
    );
}
