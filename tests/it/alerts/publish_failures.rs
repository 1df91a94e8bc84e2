//! SNS refusing a publish, or never answering it: the record fails, its claim is handed
//! back, and the re-delivery publishes the alert once.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Failed;
use realty_aws::adapters::retry::RetryPolicy;
use realty_aws::adapters::sns::SnsAlertPublisher;
use realty_model::listing::PropertyType;
use realty_tests::{TestAws, ensure};

use super::helpers::{
    City, alert_records, drain, ensure_clean, expected, keys, lambda_event, listing, put_listing,
    repriced, stack, subscribe,
};

pub(super) async fn an_unreachable_topic_fails_the_batch_and_the_replay_delivers_once(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let mut stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let quiet = listing(2001, City::Nashville, PropertyType::Condo, 500_000)?;
    let cut = listing(2002, City::Nashville, PropertyType::Condo, 500_000)?;
    for item in [&quiet, &cut] {
        put_listing(&stack, item).await?;
    }
    put_listing(&stack, &repriced(&quiet, 505_000, 2)).await?;
    put_listing(&stack, &repriced(&cut, 400_000, 2)).await?;
    let records = stack.stream_reader().next_records().await?;
    let event = lambda_event(&stack, &records)?;
    let cut_sequence = event
        .records
        .iter()
        .filter(|r| r.event_name == "MODIFY")
        .nth(1)
        .and_then(|r| r.change.sequence_number.clone())
        .ok_or("no second MODIFY")?;

    // SNS refuses every call (a topic that is not there): the batch fails from the record
    // whose alert could not go out, and its claim is handed back.
    let topic = stack.function.publisher.topic_arn.clone();
    stack.function.publisher.topic_arn = format!("{topic}-gone");
    stack.function.publisher.retry = RetryPolicy::immediate(Duration::from_millis(200));
    let (response, outcome) = stack.function.handle(event.clone()).await;
    realty_tests::calls::forget_calls_on(&stack.function.publisher.topic_arn);
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ensure(
        failed == [Some(cut_sequence.clone())],
        format!("failures {failed:?}, expected from {cut_sequence}"),
    )?;
    ensure(
        outcome.stats.unpublished == 1,
        format!("{:?}", outcome.stats),
    )?;
    let claims = alert_records(&stack).await?.len();
    ensure(claims == 0, format!("{claims} claims left behind"))?;
    ensure(
        drain(&stack, &everything).await?.is_empty(),
        "delivered while failing",
    )?;

    // Lambda re-delivers from the failed record; SNS is back.
    stack.function.publisher.topic_arn = topic;
    let mut rest = event.clone();
    let from = rest
        .records
        .iter()
        .position(|r| r.change.sequence_number.as_deref() == Some(cut_sequence.as_str()))
        .ok_or("failed record not in the batch")?;
    rest.records.drain(..from);
    for round in 0..2 {
        let (response, outcome) = stack.function.handle(rest.clone()).await;
        ensure(
            response.batch_item_failures.is_empty(),
            "re-delivery failed",
        )?;
        ensure_clean(&outcome, 1 - round, round)?;
    }
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("price_drop", 2002)]),
        format!("delivered {:?}", keys(&got)),
    )
}

/// A local SNS endpoint that reads each call whole, counts it (as SNS would accept it) and
/// never answers.
async fn silent_sns() -> Result<(String, Arc<std::sync::Mutex<usize>>), Failed> {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let calls = Arc::new(std::sync::Mutex::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    let Some(head) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..head]
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= head + 4 + length {
                        if let Ok(mut n) = counted.lock() {
                            *n += 1;
                        }
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(socket);
            });
        }
    });
    Ok((url, calls))
}

/// SNS accepts the PublishBatch call and its answer is lost: the call is not sent again (by
/// the SDK or the function), the record fails with its alert `unknown` and its claim handed
/// back, and the re-delivery publishes it. With a real SNS that had delivered the first call,
/// the subscriber gets the documented duplicate: two copies with one `alert_id`.
pub(super) async fn a_publish_without_an_answer_is_sent_once_and_its_record_comes_again(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let mut stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let item = listing(5001, City::Nashville, PropertyType::Condo, 500_000)?;
    put_listing(&stack, &item).await?;
    put_listing(&stack, &repriced(&item, 400_000, 2)).await?;
    let records = stack.stream_reader().next_records().await?;
    let event = lambda_event(&stack, &records)?;
    let sequence = event
        .records
        .iter()
        .find(|r| r.event_name == "MODIFY")
        .and_then(|r| r.change.sequence_number.clone())
        .ok_or("no MODIFY")?;

    let (url, calls) = silent_sns().await?;
    let silent = aws
        .sdk_config()
        .await
        .to_builder()
        .endpoint_url(url)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(500))
                .build(),
        )
        .build();
    let real = stack.function.publisher.clone();
    stack.function.publisher = SnsAlertPublisher::new(&silent, real.topic_arn.clone(), real.retry);
    let (response, outcome) = stack.function.handle(event.clone()).await;
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ensure(
        failed == [Some(sequence.clone())],
        format!("failures {failed:?}, expected from {sequence}"),
    )?;
    ensure(
        (outcome.stats.publish_unknown, outcome.stats.unpublished) == (1, 0),
        format!("{:?}", outcome.stats),
    )?;
    let sent = *calls.lock().map_err(|_| "lock")?;
    ensure(sent == 1, format!("SNS received the call {sent} times"))?;
    let claims = alert_records(&stack).await?.len();
    ensure(claims == 0, format!("{claims} claims left behind"))?;

    // Lambda re-delivers the record: published once, then known.
    stack.function.publisher = real;
    for round in 0..2 {
        let (response, outcome) = stack.function.handle(event.clone()).await;
        ensure(
            response.batch_item_failures.is_empty(),
            format!("re-delivery {round}: {:?}", outcome.error),
        )?;
        ensure_clean(&outcome, 1 - round, round)?;
    }
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("price_drop", 5001)]),
        format!("delivered {:?}", keys(&got)),
    )
}
