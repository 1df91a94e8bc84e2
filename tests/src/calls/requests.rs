//! A request as the IAM authorisations AWS checks for it: the service and operation from
//! the SigV4 scope and the protocol, the resources from the body, path or form, and the
//! condition keys the stack's roles use.

use std::collections::{BTreeMap, BTreeSet};

use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use serde_json::Value;

use super::Authorisation;

/// What AWS authorises for `request`, made by `function` in `account`.
pub(super) fn authorisations(
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
    let leading = LeadingKeys(partition_keys);
    match operation {
        "BatchGetItem" | "BatchWriteItem" => batch(operation, body, &leading),
        "TransactWriteItems" | "TransactGetItems" => transaction(body, &leading),
        "Query" => {
            let key = query_key(body);
            vec![(
                operation.to_owned(),
                table(body),
                leading.of(&mut std::iter::once(&key)),
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
                leading.of(&mut std::iter::once(key)),
            )]
        }
    }
}

/// The tables' partition key attributes, whose values are the `dynamodb:LeadingKeys` a
/// call's items carry.
struct LeadingKeys<'a>(&'a BTreeSet<String>);

impl LeadingKeys<'_> {
    fn of(&self, items: &mut dyn Iterator<Item = &Value>) -> BTreeMap<String, BTreeSet<String>> {
        let mut context: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for item in items {
            for attribute in self.0 {
                if let Some(value) = scalar_attribute(&item[attribute]) {
                    context
                        .entry(format!("leading:{attribute}"))
                        .or_default()
                        .insert(value);
                }
            }
        }
        context
    }
}

/// The table a call names, or its index as `table/index/name`.
fn table(body: &Value) -> String {
    let name = body["TableName"].as_str().unwrap_or("?");
    match body["IndexName"].as_str() {
        Some(index) => format!("{name}/index/{index}"),
        None => name.to_owned(),
    }
}

/// A batch's tables, each with the keys (or written items) it names.
fn batch(operation: &str, body: &Value, leading: &LeadingKeys<'_>) -> Vec<Found> {
    body["RequestItems"]
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
                leading.of(&mut keys.into_iter()),
            )
        })
        .collect()
}

/// A transaction's items, each by its own action.
fn transaction(body: &Value, leading: &LeadingKeys<'_>) -> Vec<Found> {
    body["TransactItems"]
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
                leading.of(&mut std::iter::once(key)),
            ))
        })
        .collect()
}

/// A query's key condition as a one-item key: `pk = :v` or `#p = :v`, the equality on the
/// partition key.
fn query_key(body: &Value) -> Value {
    let names = &body["ExpressionAttributeNames"];
    let values = &body["ExpressionAttributeValues"];
    let expression = body["KeyConditionExpression"].as_str().unwrap_or_default();
    let mut key = serde_json::Map::new();
    for clause in expression.replace(" and ", " AND ").split(" AND ") {
        if let Some((name, value)) = clause.split_once('=') {
            let name = name.trim().trim_start_matches('(');
            let name = names[name].as_str().unwrap_or(name);
            let value = value.trim().trim_end_matches(')');
            key.insert(name.to_owned(), values[value].clone());
        }
    }
    Value::Object(key)
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
