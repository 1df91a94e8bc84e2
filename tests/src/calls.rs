//! Every AWS call a function makes in the integration tests, checked against its role as the
//! stack deploys it. The emulators enforce no IAM, so a call the role does not allow (the
//! curator's GetItem on the market table, fixed in b4b07e8) would otherwise first fail in
//! AWS. Each request is turned into the IAM authorisations AWS would check for it (the action,
//! the resource's ARN, the condition keys the roles use), recorded for the test that built
//! the function, and checked against the roles when the test ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use realty_infra::provision::ProvisionedStack;
use realty_infra::template::Template;
use serde_json::Value;
use wildmatch::WildMatch;

tokio::task_local! {
    /// The authorisations the functions built by the current test asked for.
    pub static TEST_CALLS: CallLog;
}

/// Authorisations recorded so far (shared by the clients of the functions of one test).
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<BTreeSet<Authorisation>>>);

impl CallLog {
    fn record(&self, found: Vec<Authorisation>) {
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        log.extend(found);
    }

    pub fn take(&self) -> BTreeSet<Authorisation> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Forgets the current test's calls on `resource`: one a test points a function at on
/// purpose (a topic the stack does not have, where its role rightly grants nothing).
pub fn forget_calls_on(resource: &str) {
    let _ = TEST_CALLS.try_with(|log| {
        let mut log = log.0.lock().unwrap_or_else(|p| p.into_inner());
        log.retain(|a| a.resource != resource);
    });
}

/// One thing AWS authorises for a request: `action` on `resource`, with the values of the
/// condition keys the request sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Authorisation {
    /// The function's logical id in template.yaml.
    pub function: &'static str,
    pub action: String,
    pub resource: String,
    /// `s3:prefix`; for DynamoDB `leading:<attribute>`, the values of every top-level
    /// attribute a table of the template has as its partition key (which one is this
    /// table's is known only from the stack).
    pub context: BTreeMap<String, BTreeSet<String>>,
}

/// `sdk` with the requests of every client built from it recorded as `function`'s (a
/// function's logical id) in `account`, in the current test's log (outside a test, nowhere).
/// `partition_keys` are the attributes that are a table's partition key in the template.
pub fn record(
    sdk: &SdkConfig,
    function: &'static str,
    account: &str,
    partition_keys: BTreeSet<String>,
) -> SdkConfig {
    let Ok(log) = TEST_CALLS.try_with(CallLog::clone) else {
        return sdk.clone();
    };
    let Some(base) = sdk.http_client() else {
        return sdk.clone();
    };
    let partition_keys = Arc::new(partition_keys);
    let account: Arc<str> = account.into();
    let recording = http_client_fn(move |settings, components| {
        SharedHttpConnector::new(RecordingConnector {
            inner: base.http_connector(settings, components),
            log: log.clone(),
            function,
            account: account.clone(),
            partition_keys: partition_keys.clone(),
        })
    });
    sdk.to_builder().http_client(recording).build()
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    log: CallLog,
    function: &'static str,
    account: Arc<str>,
    partition_keys: Arc<BTreeSet<String>>,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let found = authorisations(&request, self.function, &self.account, &self.partition_keys);
        let listing = missing_object_listing(&found);
        self.log.record(found);
        let (log, response) = (self.log.clone(), self.inner.call(request));
        HttpConnectorFuture::new(async move {
            let response = response.await;
            // S3 answers a missing object 404 (which the code reads as "not there yet") only
            // to a caller that may list the bucket at that key; to any other, 403.
            if let (Ok(r), Some(listing)) = (&response, listing)
                && r.status().as_u16() == 404
            {
                log.record(vec![listing]);
            }
            response
        })
    }
}

/// The ListBucket an object read needs to be answered 404 when the object is missing: on
/// its bucket, with the key as `s3:prefix`.
fn missing_object_listing(found: &[Authorisation]) -> Option<Authorisation> {
    let [read] = found else { return None };
    let object = read.resource.strip_prefix("arn:aws:s3:::")?;
    let (bucket, key) = object.split_once('/')?;
    (read.action == "s3:GetObject").then(|| Authorisation {
        function: read.function,
        action: "s3:ListBucket".to_owned(),
        resource: format!("arn:aws:s3:::{bucket}"),
        context: BTreeMap::from([("s3:prefix".to_owned(), BTreeSet::from([key.to_owned()]))]),
    })
}

/// The partition key attribute of each table of `template`, by logical id.
pub fn partition_keys(template: &Template) -> BTreeMap<String, String> {
    template
        .resources_of("AWS::DynamoDB::Table")
        .filter_map(|(id, table)| {
            let schema = table.properties["KeySchema"].as_array()?;
            let hash = schema.iter().find(|k| k["KeyType"] == "HASH")?;
            Some((id.to_owned(), hash["AttributeName"].as_str()?.to_owned()))
        })
        .collect()
}

/// The calls of `calls` that no role of `stacks` allows its function, one line each.
pub fn denied(
    calls: &BTreeSet<Authorisation>,
    stacks: &[ProvisionedStack],
    partition_keys: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for call in calls {
        let allowed = stacks.iter().any(|stack| {
            let Some(policies) = stack.function_policies.get(call.function) else {
                return false;
            };
            let context = stack_context(call, stack, partition_keys);
            allows(policies, &call.action, &call.resource, &context)
        });
        if !allowed {
            let context = if call.context.is_empty() {
                String::new()
            } else {
                format!(" ({:?})", call.context)
            };
            out.push(format!(
                "{}'s role does not allow {} on {}{context}",
                call.function, call.action, call.resource
            ));
        }
    }
    out
}

/// The call's condition keys as this stack's policies read them: `dynamodb:LeadingKeys` is
/// the values of the attribute that is the partition key of the table called.
fn stack_context(
    call: &Authorisation,
    stack: &ProvisionedStack,
    partition_keys: &BTreeMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut context = call.context.clone();
    let Some(table) = call.resource.split(":table/").nth(1) else {
        return context;
    };
    let table = table.split('/').next().unwrap_or(table);
    let attribute = stack
        .resources
        .iter()
        .find(|r| {
            r.kind == "AWS::DynamoDB::Table" && r.physical_id.rsplit('/').next() == Some(table)
        })
        .and_then(|r| partition_keys.get(&r.logical_id));
    let values = attribute
        .and_then(|a| call.context.get(&format!("leading:{a}")))
        .cloned()
        .unwrap_or_default();
    context.retain(|k, _| !k.starts_with("leading:"));
    context.insert("dynamodb:LeadingKeys".to_owned(), values);
    context
}

/// Whether the identity policies `policies` allow `action` on `resource` in `context`: an
/// Allow statement matches and no Deny does. Conditions other than the string comparisons
/// the template uses make a statement not apply, so the check errs towards refusing.
fn allows(
    policies: &[Value],
    action: &str,
    resource: &str,
    context: &BTreeMap<String, BTreeSet<String>>,
) -> bool {
    let mut allowed = false;
    for statement in policies.iter().flat_map(|p| statements(&p["Statement"])) {
        let applies = strings(&statement["Action"])
            .iter()
            .any(|a| wildcard_match(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && strings(&statement["Resource"])
                .iter()
                .any(|r| wildcard_match(r, resource))
            && conditions_hold(&statement["Condition"], context);
        match statement["Effect"].as_str() {
            Some("Allow") if applies => allowed = true,
            Some("Deny") if applies => return false,
            _ => {}
        }
    }
    allowed
}

fn statements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![v],
        _ => Vec::new(),
    }
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn conditions_hold(conditions: &Value, context: &BTreeMap<String, BTreeSet<String>>) -> bool {
    let Some(conditions) = conditions.as_object() else {
        return conditions.is_null();
    };
    conditions.iter().all(|(operator, keys)| {
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(key, patterns)| {
            let patterns = strings(patterns);
            let values = context.get(key);
            let like = |value: &str, exact: bool| {
                patterns.iter().any(|p| {
                    if exact {
                        *p == value
                    } else {
                        wildcard_match(p, value)
                    }
                })
            };
            match operator.as_str() {
                // A single-valued key: present, and one of the patterns.
                "StringLike" | "StringEquals" => values.is_some_and(|v| {
                    !v.is_empty() && v.iter().all(|x| like(x, operator == "StringEquals"))
                }),
                // Every value one of the patterns (true of no values, as in IAM).
                "ForAllValues:StringLike" | "ForAllValues:StringEquals" => {
                    values.is_none_or(|v| v.iter().all(|x| like(x, operator.ends_with("Equals"))))
                }
                _ => false,
            }
        })
    })
}

/// IAM's wildcards: `*` any run of characters, `?` any one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    WildMatch::new(pattern).matches(text)
}

/// What AWS authorises for `request`, made by `function` in `account`.
fn authorisations(
    request: &HttpRequest,
    function: &'static str,
    account: &str,
    partition_keys: &BTreeSet<String>,
) -> Vec<Authorisation> {
    let Some((region, service)) = credential_scope(request) else {
        return Vec::new();
    };
    let body: Value = request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    let operation = operation(request);
    let arn =
        |service: &str, resource: &str| format!("arn:aws:{service}:{region}:{account}:{resource}");
    let one = |action: &str, resource: String| {
        vec![(format!("{service}:{action}"), resource, BTreeMap::new())]
    };
    let found: Vec<(String, String, BTreeMap<String, BTreeSet<String>>)> = match service.as_str() {
        // DynamoDB Streams (signed as dynamodb): a stream by its ARN, or a table's streams.
        "dynamodb" if body["StreamArn"].is_string() => one(
            &operation,
            body["StreamArn"].as_str().unwrap_or("?").to_owned(),
        ),
        "dynamodb" if operation == "ListStreams" => {
            let table = body["TableName"].as_str().unwrap_or("*");
            one(
                &operation,
                arn("dynamodb", &format!("table/{table}/stream/*")),
            )
        }
        "dynamodb" => dynamodb(&operation, &body, partition_keys)
            .into_iter()
            .map(|(action, table, context)| {
                (
                    format!("dynamodb:{action}"),
                    arn("dynamodb", &format!("table/{table}")),
                    context,
                )
            })
            .collect(),
        "kinesis" => {
            let stream = body["StreamARN"]
                .as_str()
                .and_then(|a| a.rsplit('/').next())
                .or(body["StreamName"].as_str())
                .unwrap_or("?");
            one(&operation, arn("kinesis", &format!("stream/{stream}")))
        }
        "firehose" => {
            let stream = body["DeliveryStreamName"].as_str().unwrap_or("?");
            one(
                &operation,
                arn("firehose", &format!("deliverystream/{stream}")),
            )
        }
        "sqs" => {
            let url = body["QueueUrl"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| form_field(request, "QueueUrl"))
                .unwrap_or_default();
            let queue = url.rsplit('/').next().unwrap_or("?");
            let action = operation.strip_suffix("Batch").unwrap_or(&operation);
            one(action, arn("sqs", queue))
        }
        "sns" => {
            let topic = form_field(request, "TopicArn").unwrap_or_default();
            // PublishBatch is authorised as Publish.
            let action = operation.strip_suffix("Batch").unwrap_or(&operation);
            one(action, topic)
        }
        "secretsmanager" => one(
            &operation,
            body["SecretId"].as_str().unwrap_or("?").to_owned(),
        ),
        "glue" => {
            let database = body["DatabaseName"]
                .as_str()
                .or(body["Name"]
                    .as_str()
                    .filter(|_| operation.ends_with("Database")))
                .unwrap_or("?");
            let mut resources = vec![
                arn("glue", "catalog"),
                arn("glue", &format!("database/{database}")),
            ];
            let table = body["TableInput"]["Name"]
                .as_str()
                .or(body["Name"].as_str());
            if let Some(table) = table.filter(|_| operation.ends_with("Table")) {
                resources.push(arn("glue", &format!("table/{database}/{table}")));
            }
            resources
                .into_iter()
                .map(|r| (format!("glue:{operation}"), r, BTreeMap::new()))
                .collect()
        }
        "s3" => s3(request)
            .into_iter()
            .map(|(action, resource, context)| (format!("s3:{action}"), resource, context))
            .collect(),
        // GetCallerIdentity needs no permission.
        "sts" => Vec::new(),
        "monitoring" => vec![(
            format!("cloudwatch:{operation}"),
            "*".to_owned(),
            BTreeMap::new(),
        )],
        other => vec![(
            format!("{other}:{operation}"),
            "*".to_owned(),
            BTreeMap::new(),
        )],
    };
    found
        .into_iter()
        .map(|(action, resource, context)| Authorisation {
            function,
            action,
            resource,
            context,
        })
        .collect()
}

/// Region and signing name from the request's SigV4 credential scope
/// (`Credential=AKID/20261127/us-east-1/dynamodb/aws4_request`).
fn credential_scope(request: &HttpRequest) -> Option<(String, String)> {
    let header = request.headers().get("authorization")?;
    let scope = header.split("Credential=").nth(1)?.split(',').next()?;
    let mut parts = scope.split('/').skip(2);
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// The API operation: from `X-Amz-Target` (JSON protocols), the `Action` form field (query
/// protocol), `x-id` in the query (the Rust SDK's REST calls) or the path of an RPC v2 call.
fn operation(request: &HttpRequest) -> String {
    if let Some(target) = request.headers().get("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    if let Some(action) = form_field(request, "Action") {
        return action;
    }
    if let Some(id) = query(request).remove("x-id") {
        return id;
    }
    let path = request.uri().split('?').next().unwrap_or_default();
    if let Some(op) = path.split("/operation/").nth(1) {
        return op.to_owned();
    }
    request.method().to_owned()
}

fn query(request: &HttpRequest) -> BTreeMap<String, String> {
    let q = request
        .uri()
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default();
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn form_field(request: &HttpRequest, name: &str) -> Option<String> {
    let body = request.body().bytes()?;
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

type Found = (String, String, BTreeMap<String, BTreeSet<String>>);

/// DynamoDB's authorisations: (action, table or `table/index/name`, leading keys) for
/// every table a call touches, the items of a transaction each by its own action.
fn dynamodb(operation: &str, body: &Value, partition_keys: &BTreeSet<String>) -> Vec<Found> {
    let leading = |items: &mut dyn Iterator<Item = &Value>| {
        let mut context: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for item in items {
            for attribute in partition_keys {
                if let Some(value) = scalar_attribute(&item[attribute]) {
                    context
                        .entry(format!("leading:{attribute}"))
                        .or_default()
                        .insert(value);
                }
            }
        }
        context
    };
    let table = |body: &Value| {
        let name = body["TableName"].as_str().unwrap_or("?");
        match body["IndexName"].as_str() {
            Some(index) => format!("{name}/index/{index}"),
            None => name.to_owned(),
        }
    };
    match operation {
        "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, request)| {
                let keys: Vec<&Value> = if operation == "BatchGetItem" {
                    request["Keys"].as_array().into_iter().flatten().collect()
                } else {
                    request
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|w| {
                            let put = &w["PutRequest"]["Item"];
                            if put.is_null() {
                                &w["DeleteRequest"]["Key"]
                            } else {
                                put
                            }
                        })
                        .collect()
                };
                (
                    operation.to_owned(),
                    name.clone(),
                    leading(&mut keys.into_iter()),
                )
            })
            .collect(),
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let (kind, inner) = item.as_object()?.iter().next()?;
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    _ => return None,
                };
                let key = if inner["Item"].is_null() {
                    &inner["Key"]
                } else {
                    &inner["Item"]
                };
                Some((
                    action.to_owned(),
                    table(inner),
                    leading(&mut std::iter::once(key)),
                ))
            })
            .collect(),
        "Query" => {
            let names = &body["ExpressionAttributeNames"];
            let values = &body["ExpressionAttributeValues"];
            let expression = body["KeyConditionExpression"].as_str().unwrap_or_default();
            // `pk = :v` or `#p = :v`: the equality on the partition key, as a one-item key.
            let mut key = serde_json::Map::new();
            for clause in expression.replace(" and ", " AND ").split(" AND ") {
                if let Some((name, value)) = clause.split_once('=') {
                    let name = name.trim().trim_start_matches('(');
                    let name = names[name].as_str().unwrap_or(name);
                    let value = value.trim().trim_end_matches(')');
                    key.insert(name.to_owned(), values[value].clone());
                }
            }
            let key = Value::Object(key);
            vec![(
                operation.to_owned(),
                table(body),
                leading(&mut std::iter::once(&key)),
            )]
        }
        _ => {
            let key = if body["Item"].is_null() {
                &body["Key"]
            } else {
                &body["Item"]
            };
            vec![(
                operation.to_owned(),
                table(body),
                leading(&mut std::iter::once(key)),
            )]
        }
    }
}

/// A DynamoDB attribute value that can be a key (`{"S": ..}`, `{"N": ..}`, `{"B": ..}`).
fn scalar_attribute(v: &Value) -> Option<String> {
    ["S", "N", "B"]
        .iter()
        .find_map(|t| v[*t].as_str())
        .map(str::to_owned)
}

/// S3's authorisations for a path-style request (`/bucket/key`, as the SDK sends to an
/// endpoint override): objects by their key, the bucket for listing it with its prefix.
fn s3(request: &HttpRequest) -> Vec<Found> {
    let uri = request.uri();
    let path = uri
        .split("://")
        .nth(1)
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(uri);
    let path = path.split('?').next().unwrap_or_default();
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let bucket = parts.next().unwrap_or_default().to_owned();
    let key = parts.next().filter(|k| !k.is_empty()).map(str::to_owned);
    let query = query(request);
    let method = request.method();
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    match key {
        None => {
            let prefix = query.get("prefix").cloned().unwrap_or_default();
            let context = BTreeMap::from([("s3:prefix".to_owned(), BTreeSet::from([prefix]))]);
            let action = if query.contains_key("delete") {
                "DeleteObject"
            } else {
                "ListBucket"
            };
            let resource = if action == "DeleteObject" {
                format!("{bucket_arn}/*")
            } else {
                bucket_arn
            };
            vec![(action.to_owned(), resource, context)]
        }
        Some(key) => {
            let action = match method {
                "GET" | "HEAD" => "GetObject",
                "PUT" | "POST" => "PutObject",
                "DELETE" if query.contains_key("uploadId") => "AbortMultipartUpload",
                "DELETE" => "DeleteObject",
                other => other,
            };
            vec![(
                action.to_owned(),
                format!("{bucket_arn}/{key}"),
                BTreeMap::new(),
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;
    use realty_infra::provision::ProvisionedResource;
    use serde_json::json;

    const ACCOUNT: &str = "000000000000";

    fn request(
        uri: &str,
        method: &str,
        service: &str,
        target: Option<&str>,
        body: &str,
    ) -> HttpRequest {
        let mut request = HttpRequest::new(SdkBody::from(body.to_owned()));
        request.set_uri(uri).expect("a uri");
        request.set_method(method).expect("a method");
        request.headers_mut().insert(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20261127/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        );
        if let Some(t) = target {
            request.headers_mut().insert("x-amz-target", t.to_owned());
        }
        request
    }

    fn found(request: &HttpRequest) -> Vec<(String, String)> {
        let keys = BTreeSet::from(["pk".to_owned(), "listing_id".to_owned()]);
        authorisations(request, "AlertsFunction", ACCOUNT, &keys)
            .into_iter()
            .map(|a| (a.action, a.resource))
            .collect()
    }

    fn stack(policy: Value) -> ProvisionedStack {
        ProvisionedStack {
            stack_name: "s".into(),
            region: "us-east-1".into(),
            account_id: ACCOUNT.into(),
            outputs: BTreeMap::new(),
            resources: vec![ProvisionedResource {
                logical_id: "MarketTable".into(),
                kind: "AWS::DynamoDB::Table".into(),
                physical_id: "s-market-table".into(),
            }],
            skipped: Vec::new(),
            function_policies: BTreeMap::from([("AlertsFunction".to_owned(), vec![policy])]),
        }
    }

    fn keys() -> BTreeMap<String, String> {
        BTreeMap::from([("MarketTable".to_owned(), "pk".to_owned())])
    }

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/s-market-table";

    #[test]
    fn a_transaction_is_authorised_item_by_item_and_a_publish_batch_as_publish() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "s-market-table", "Item": {"pk": {"S": "alerts#a"}}}},
            {"ConditionCheck": {"TableName": "s-listing-table", "Key": {"listing_id": {"S": "x"}}}},
        ]});
        let r = request(
            "http://127.0.0.1:4566/",
            "POST",
            "dynamodb",
            Some("DynamoDB_20120810.TransactWriteItems"),
            &body.to_string(),
        );
        assert_eq!(
            found(&r),
            vec![
                ("dynamodb:PutItem".to_owned(), TABLE.to_owned()),
                (
                    "dynamodb:ConditionCheckItem".to_owned(),
                    "arn:aws:dynamodb:us-east-1:000000000000:table/s-listing-table".to_owned()
                ),
            ]
        );
        let topic = "arn:aws:sns:us-east-1:000000000000:s-alert-topic";
        let form = format!(
            "Action=PublishBatch&Version=2010-03-31&TopicArn={}",
            topic.replace(':', "%3A")
        );
        let r = request("http://127.0.0.1:4566/", "POST", "sns", None, &form);
        assert_eq!(
            found(&r),
            vec![("sns:Publish".to_owned(), topic.to_owned())]
        );
    }

    #[test]
    fn s3_objects_are_named_by_key_and_a_listing_by_its_prefix() {
        let r = request(
            "http://127.0.0.1:4566/lake/iceberg/a%20b.json?x-id=GetObject",
            "GET",
            "s3",
            None,
            "",
        );
        assert_eq!(
            found(&r),
            vec![(
                "s3:GetObject".to_owned(),
                "arn:aws:s3:::lake/iceberg/a b.json".to_owned()
            )]
        );
        let r = request(
            "http://127.0.0.1:4566/lake?list-type=2&prefix=listings%2Fdt%3D2026",
            "GET",
            "s3",
            None,
            "",
        );
        let keys = BTreeSet::new();
        let all = authorisations(&r, "CuratorFunction", ACCOUNT, &keys);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].action, "s3:ListBucket");
        assert_eq!(all[0].resource, "arn:aws:s3:::lake");
        assert_eq!(
            all[0].context["s3:prefix"],
            BTreeSet::from(["listings/dt=2026".to_owned()])
        );
    }

    #[test]
    fn a_missing_object_answered_404_needs_the_bucket_listed_at_its_key() {
        let read = call(
            "s3:GetObject",
            "arn:aws:s3:::lake/poller-state/zillow.json",
            &[],
        );
        let listing = missing_object_listing(std::slice::from_ref(&read));
        assert_eq!(
            listing,
            Some(call(
                "s3:ListBucket",
                "arn:aws:s3:::lake",
                &[("s3:prefix", "poller-state/zillow.json")]
            ))
        );
        let write = call("s3:PutObject", "arn:aws:s3:::lake/raw/a", &[]);
        assert_eq!(missing_object_listing(&[write]), None);
    }

    fn call(action: &str, resource: &str, context: &[(&str, &str)]) -> Authorisation {
        let mut c: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (k, v) in context {
            c.entry((*k).to_owned())
                .or_default()
                .insert((*v).to_owned());
        }
        Authorisation {
            function: "AlertsFunction",
            action: action.to_owned(),
            resource: resource.to_owned(),
            context: c,
        }
    }

    /// The curator's role before b4b07e8: Query on the market table but no GetItem.
    #[test]
    fn a_call_the_role_does_not_grant_is_reported_and_one_it_grants_is_not() {
        let policy = json!({"Statement": [{
            "Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": TABLE
        }]});
        let calls = BTreeSet::from([
            call("dynamodb:Query", TABLE, &[]),
            call("dynamodb:GetItem", TABLE, &[]),
        ]);
        let denied = denied(&calls, &[stack(policy)], &keys());
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert!(denied[0].contains("dynamodb:GetItem"), "{denied:?}");
    }

    #[test]
    fn leading_keys_and_prefixes_are_held_to_the_roles_conditions() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
             "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["alerts#*"]}}},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::lake",
             "Condition": {"StringLike": {"s3:prefix": ["listings/*"]}}},
        ]});
        let stacks = [stack(policy)];
        let check = |c: Authorisation| denied(&BTreeSet::from([c]), &stacks, &keys()).is_empty();
        assert!(check(call(
            "dynamodb:PutItem",
            TABLE,
            &[("leading:pk", "alerts#nashville-tn")]
        )));
        assert!(!check(call(
            "dynamodb:PutItem",
            TABLE,
            &[("leading:pk", "city#nashville-tn")]
        )));
        assert!(check(call(
            "s3:ListBucket",
            "arn:aws:s3:::lake",
            &[("s3:prefix", "listings/dt=1")]
        )));
        assert!(!check(call(
            "s3:ListBucket",
            "arn:aws:s3:::lake",
            &[("s3:prefix", "raw/")]
        )));
        assert!(!check(call("s3:ListBucket", "arn:aws:s3:::lake", &[])));
    }
}
