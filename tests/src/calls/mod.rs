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

use requests::authorisations;

mod requests;
#[cfg(test)]
mod tests;

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
