//! Delivery of a batch: the function's response, retries, bisection and discards.

use std::cell::RefCell;
use std::time::Duration;

use serde_json::{Value, json};

use crate::runner::*;

#[test]
fn reads_batch_item_failures_as_lambda_does() {
    let seqs = ["10", "20", "30", "40"];
    let failures = |ids: Value| json!({ "batchItemFailures": ids });
    assert_eq!(read_response(&json!({}), &seqs), InvokeOutcome::Success);
    assert_eq!(read_response(&Value::Null, &seqs), InvokeOutcome::Success);
    assert_eq!(
        read_response(&failures(json!([])), &seqs),
        InvokeOutcome::Success
    );
    assert_eq!(
        read_response(
            &failures(json!([{"itemIdentifier": "40"}, {"itemIdentifier": "20"}])),
            &seqs
        ),
        InvokeOutcome::FailedFrom(1)
    );
    for bad in [json!(""), Value::Null, json!("99")] {
        assert_eq!(
            read_response(&failures(json!([{ "itemIdentifier": bad }])), &seqs),
            InvokeOutcome::FailedFrom(0)
        );
    }
}

fn rules(max: Option<u32>, bisect: bool) -> RetryRules {
    RetryRules {
        report_batch_item_failures: true,
        bisect_on_error: bisect,
        max_retry_attempts: max,
        backoff: Duration::ZERO,
    }
}

/// Runs `deliver` over records 0..n with a function that fails as `fail` says, and
/// returns the delivery and every invocation's records.
async fn run(
    n: u32,
    rules: RetryRules,
    fail: impl Fn(&[u32], usize) -> InvokeOutcome,
) -> (Delivered<u32>, Vec<Vec<u32>>) {
    let calls: RefCell<Vec<Vec<u32>>> = RefCell::new(Vec::new());
    let delivered = deliver(
        (0..n).collect(),
        &rules,
        |_| false,
        |records: Vec<u32>| {
            let call = calls.borrow().len();
            calls.borrow_mut().push(records.clone());
            let result = fail(&records, call);
            async move { result }
        },
    )
    .await;
    (delivered, calls.into_inner())
}

fn error() -> InvokeOutcome {
    InvokeOutcome::Failed(FunctionError {
        error_type: "Boom".into(),
        message: "boom".into(),
    })
}

#[tokio::test]
async fn redelivers_from_the_first_failed_record() {
    // Record 5 fails twice, then succeeds.
    let (d, calls) = run(8, rules(Some(10), true), |records, call| {
        match records.iter().position(|r| *r == 5) {
            Some(i) if call < 2 => InvokeOutcome::FailedFrom(i),
            _ => InvokeOutcome::Success,
        }
    })
    .await;
    assert_eq!(
        calls,
        vec![(0..8).collect::<Vec<_>>(), vec![5, 6, 7], vec![5, 6, 7]]
    );
    assert_eq!((d.succeeded, d.retries, d.invocations), (8, 2, 3));
    assert!(d.discards.is_empty());
}

#[tokio::test]
async fn bisects_on_function_errors_down_to_the_poison_record_and_discards_it() {
    // Any part containing record 5 fails; retries are 2.
    let (d, calls) = run(8, rules(Some(2), true), |records, _| {
        if records.contains(&5) {
            error()
        } else {
            InvokeOutcome::Success
        }
    })
    .await;
    assert_eq!(
        calls,
        vec![
            (0..8).collect::<Vec<_>>(),
            vec![0, 1, 2, 3],
            vec![4, 5, 6, 7],
            vec![4, 5],
            vec![4],
            vec![5],
            vec![5],
            vec![5],
            vec![6, 7],
        ]
    );
    assert_eq!(d.bisections, 3);
    assert_eq!(d.succeeded, 7);
    assert_eq!(
        d.discards,
        vec![Discard {
            records: vec![5],
            condition: DiscardCondition::RetryAttemptsExhausted,
            invoke_count: 6,
            function_error: Some("Boom".into()),
        }]
    );
}

#[tokio::test]
async fn without_bisection_the_whole_batch_is_retried_then_discarded() {
    let (d, calls) = run(4, rules(Some(3), false), |_, _| error()).await;
    assert_eq!(calls.len(), 4, "the first invocation and three retries");
    assert_eq!(d.succeeded, 0);
    assert_eq!(d.discards.len(), 1);
    assert_eq!(d.discards[0].records, vec![0, 1, 2, 3]);
    assert_eq!(d.discards[0].invoke_count, 4);
}

#[tokio::test]
async fn partial_failures_use_up_retries_and_are_not_bisected() {
    let (d, calls) = run(6, rules(Some(1), true), |records, _| {
        InvokeOutcome::FailedFrom(records.iter().position(|r| *r == 3).unwrap_or(0))
    })
    .await;
    assert_eq!(calls, vec![(0..6).collect::<Vec<_>>(), vec![3, 4, 5]]);
    assert_eq!(d.succeeded, 3);
    assert_eq!(d.discards.len(), 1);
    assert_eq!(d.discards[0].records, vec![3, 4, 5]);
    assert_eq!(d.discards[0].function_error, None);
}

#[tokio::test]
async fn ignores_the_response_without_report_batch_item_failures() {
    let mut r = rules(Some(1), false);
    r.report_batch_item_failures = false;
    let (d, calls) = run(3, r, |_, _| InvokeOutcome::FailedFrom(0)).await;
    assert_eq!((calls.len(), d.succeeded), (1, 3));
}

#[tokio::test]
async fn discards_records_past_their_age_before_invoking() {
    let calls = RefCell::new(Vec::new());
    let d = deliver(
        (0..5).collect::<Vec<u32>>(),
        &rules(None, true),
        |r| *r < 2,
        |records| {
            calls.borrow_mut().push(records);
            async { InvokeOutcome::Success }
        },
    )
    .await;
    assert_eq!(calls.into_inner(), vec![vec![2, 3, 4]]);
    assert_eq!(d.discards.len(), 1);
    assert_eq!(d.discards[0].records, vec![0, 1]);
    assert_eq!(d.discards[0].condition, DiscardCondition::RecordAgeExceeded);
    assert_eq!(d.discards[0].invoke_count, 0);
}
