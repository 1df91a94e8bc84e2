//! Unit tests of the call check: requests read as IAM authorisations, and policies
//! held to them.

use aws_smithy_types::body::SdkBody;
use realty_infra::provision::ProvisionedResource;
use serde_json::json;

use super::requests::authorisations;
use super::*;

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
