//! Counting the AWS calls a run makes, by API and by caller, at the HTTP layer: every client
//! built from a wrapped [`SdkConfig`] sends through [`CallCounter`], so retries count as the
//! calls they are (and are billed as), whatever the service.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;

/// Calls seen so far, by caller (a function, the event source mappings) and
/// `Service.Operation` (`Kinesis.PutRecords`), with the time they took.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<(&'static str, String), Calls>>>,
}

/// Calls of one caller and operation: how many, and their time from request to response.
#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    count: u64,
    took: Duration,
}

impl CallCounter {
    /// `sdk` with every request counted here, as `caller`'s.
    pub fn wrap(&self, sdk: &SdkConfig, caller: &'static str) -> SdkConfig {
        // The client the SDK would pick by default (hyper, rustls with aws-lc), made here
        // because aws-config leaves it to each service client.
        let base = sdk.http_client().unwrap_or_else(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https()
        });
        let counter = self.clone();
        let counting = http_client_fn(move |settings, components| {
            SharedHttpConnector::new(CountingConnector {
                inner: base.http_connector(settings, components),
                counter: counter.clone(),
                caller,
            })
        });
        sdk.to_builder().http_client(counting).build()
    }

    /// The counts now, by `Service.Operation`.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((_, call), calls) in self.counts_now() {
            *out.entry(call).or_default() += calls.count;
        }
        out
    }

    /// Mean time of a call, by `Service.Operation`, in milliseconds.
    pub fn mean_ms(&self) -> BTreeMap<String, f64> {
        let mut sums: BTreeMap<String, Calls> = BTreeMap::new();
        for ((_, call), calls) in self.counts_now() {
            let sum = sums.entry(call).or_default();
            sum.count += calls.count;
            sum.took += calls.took;
        }
        sums.into_iter()
            .filter(|(_, c)| c.count > 0)
            .map(|(call, c)| (call, c.took.as_secs_f64() * 1000.0 / c.count as f64))
            .collect()
    }

    /// The counts now, by caller.
    pub fn by_caller(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for ((caller, _), calls) in self.counts_now() {
            *out.entry(caller).or_default() += calls.count;
        }
        out
    }

    fn counts_now(&self) -> BTreeMap<(&'static str, String), Calls> {
        self.counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Forgets what was counted.
    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
        }
    }

    fn count(&self, caller: &'static str, call: String, took: Duration) {
        if let Ok(mut counts) = self.counts.lock() {
            let calls = counts.entry((caller, call)).or_default();
            calls.count += 1;
            calls.took += took;
        }
    }
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    counter: CallCounter,
    caller: &'static str,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let name = call_name(&request);
        let (counter, caller) = (self.counter.clone(), self.caller);
        let response = self.inner.call(request);
        let started = Instant::now();
        HttpConnectorFuture::new(async move {
            let response = response.await;
            counter.count(caller, name, started.elapsed());
            response
        })
    }
}

/// `Service.Operation` of a request: from `X-Amz-Target` (JSON protocols: Kinesis,
/// DynamoDB, DynamoDB Streams, Firehose, SQS), the `Action` form field (query protocol:
/// SNS), else the method and host (REST: S3).
fn call_name(request: &HttpRequest) -> String {
    if let Some(target) = request.headers().get("x-amz-target") {
        let (service, operation) = target.split_once('.').unwrap_or(("", target));
        let service = match service.split('_').next().unwrap_or(service) {
            "DynamoDBStreams" => "DynamoDBStreams",
            "DynamoDB" => "DynamoDB",
            "Kinesis" => "Kinesis",
            "Firehose" => "Firehose",
            "AmazonSQS" => "SQS",
            other => other,
        };
        return format!("{service}.{operation}");
    }
    if let Some(action) = form_field(request, "Action") {
        // The query protocol names the service by its API version.
        let service = match form_field(request, "Version") {
            Some("2010-03-31") => "SNS",
            Some("2011-06-15") => "STS",
            Some("2012-11-05") => "SQS",
            _ => "Query",
        };
        return format!("{service}.{action}");
    }
    format!("REST.{}", request.method())
}

/// A field of a form-encoded request body.
fn form_field<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    let form = std::str::from_utf8(request.body().bytes()?).ok()?;
    form.split('&').find_map(|pair| {
        pair.split_once('=')
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;

    fn request(target: Option<&str>, body: &str) -> HttpRequest {
        let mut request = HttpRequest::new(SdkBody::from(body.to_owned()));
        request.set_method("POST").expect("a method");
        if let Some(t) = target {
            request.headers_mut().insert("x-amz-target", t.to_owned());
        }
        request
    }

    #[test]
    fn names_calls_of_each_protocol() {
        assert_eq!(
            call_name(&request(Some("Kinesis_20131202.PutRecords"), "{}")),
            "Kinesis.PutRecords"
        );
        assert_eq!(
            call_name(&request(Some("DynamoDB_20120810.BatchWriteItem"), "{}")),
            "DynamoDB.BatchWriteItem"
        );
        assert_eq!(
            call_name(&request(Some("DynamoDBStreams_20120810.GetRecords"), "{}")),
            "DynamoDBStreams.GetRecords"
        );
        assert_eq!(
            call_name(&request(Some("Firehose_20150804.PutRecordBatch"), "{}")),
            "Firehose.PutRecordBatch"
        );
        assert_eq!(
            call_name(&request(
                None,
                "Action=Publish&Version=2010-03-31&TopicArn=x"
            )),
            "SNS.Publish"
        );
        assert_eq!(call_name(&request(None, "")), "REST.POST");
    }
}
