//! Conditional puts in TransactWriteItems calls: what became of each put, and only the
//! failed part of a call sent again.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem};

use futures::stream::{self, StreamExt};

use super::{BATCH_CALLS_IN_FLIGHT, Item, TRANSACTION_BYTES, TRANSACTION_ITEMS, sdk_error};
use crate::adapters::retry::{RetryPolicy, Sent, send_with_retries};
use realty_model::ports::PortError;

/// A put of `item` conditional on the stored item's revision being `expected_revision`
/// (empty: no item yet).
pub(super) fn conditional_put(
    table: &str,
    item: Item,
    expected_revision: &str,
) -> Result<TransactWriteItem, PortError> {
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = if expected_revision.is_empty() {
        put.condition_expression("attribute_not_exists(pk)")
    } else {
        put.condition_expression("revision = :expected")
            .expression_attribute_values(
                ":expected",
                AttributeValue::S(expected_revision.to_owned()),
            )
    };
    let put = put
        .build()
        .map_err(|e| PortError::new("TransactWriteItems", e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// What became of one conditional put of [`transact_puts`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PutOutcome {
    Landed,
    /// Its condition failed: the item it saw, when the put asked for it
    /// (`ReturnValuesOnConditionCheckFailure`) and the store returned it.
    Lost(Option<Item>),
}

/// Writes conditional puts of distinct items in TransactWriteItems calls of at most
/// [`TRANSACTION_ITEMS`] puts and [`TRANSACTION_BYTES`] (one call where PutItem took one per
/// item). Answers, per put in order, what became of it. A transaction is all or nothing: one
/// cancelled because some puts lost their condition is sent again without those (answered
/// [`PutOutcome::Lost`]), and the puts cancelled for other reasons (a conflicting transaction,
/// throttling) are re-sent with backoff, so only the failed part of a call is sent again. A
/// call that fails for good answers its puts that had not landed with its error, and leaves
/// the other calls' answers as they are. The calls run [`BATCH_CALLS_IN_FLIGHT`] at a time.
pub(crate) async fn transact_puts(
    client: &Client,
    actions: Vec<TransactWriteItem>,
    retry: RetryPolicy,
) -> Vec<Result<PutOutcome, PortError>> {
    let outcomes = Outcomes::new(actions.len());
    let sizes: Vec<usize> = actions
        .iter()
        .map(|a| a.put().map_or(0, |p| crate::items::item_size(p.item())))
        .collect();
    let indexed: Vec<IndexedPut> = actions.into_iter().enumerate().collect();
    let chunks = realty_model::ports::chunk_by_limits(&sizes, TRANSACTION_ITEMS, TRANSACTION_BYTES);
    let write_chunk = |range: std::ops::Range<usize>| {
        let outcomes = &outcomes;
        let chunk = indexed[range.clone()].to_vec();
        async move {
            let sent = send_with_retries(retry, chunk, move |puts| {
                transact_call(client, puts, outcomes)
            })
            .await;
            (range, sent)
        }
    };
    let mut calls = stream::iter(chunks)
        .map(write_chunk)
        .buffer_unordered(BATCH_CALLS_IN_FLIGHT);
    let mut failures: Vec<(std::ops::Range<usize>, PortError)> = Vec::new();
    while let Some((range, result)) = calls.next().await {
        if let Err(unsent) = result {
            let error = PortError::new(
                "TransactWriteItems",
                format!(
                    "{} puts unwritten after {} attempts: {}",
                    unsent.items.len(),
                    unsent.attempts,
                    unsent.last_error
                ),
            );
            failures.push((range, error));
        }
    }
    drop(calls);
    outcomes.answers(&failures)
}

/// A put and its index among the puts asked for.
type IndexedPut = (usize, TransactWriteItem);

/// What became of each put so far, answered from inside the calls.
struct Outcomes(std::sync::Mutex<Vec<Option<Result<PutOutcome, PortError>>>>);

impl Outcomes {
    fn new(puts: usize) -> Self {
        Self(std::sync::Mutex::new(vec![None; puts]))
    }

    fn answer(&self, put: usize, outcome: Result<PutOutcome, PortError>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)[put] = Some(outcome);
    }

    /// Every put's answer: one without is answered with the error of the call that failed
    /// for good with it (`failures`: each call's range of puts, and its error).
    fn answers(
        self,
        failures: &[(std::ops::Range<usize>, PortError)],
    ) -> Vec<Result<PutOutcome, PortError>> {
        let outcomes = self
            .0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| {
                outcome.unwrap_or_else(|| {
                    Err(failures
                        .iter()
                        .find(|(range, _)| range.contains(&i))
                        .map(|(_, e)| e.clone())
                        .unwrap_or_else(|| PortError::new("TransactWriteItems", "no answer")))
                })
            })
            .collect()
    }
}

/// One TransactWriteItems of `puts`: the puts to send again. Landed puts, and those of a
/// cancelled transaction that are settled, are answered in `outcomes`.
async fn transact_call(
    client: &Client,
    puts: Vec<IndexedPut>,
    outcomes: &Outcomes,
) -> Sent<IndexedPut> {
    let sent = client
        .transact_write_items()
        .set_transact_items(Some(puts.iter().map(|(_, a)| a.clone()).collect()))
        .send()
        .await;
    let reasons = match sent {
        Ok(_) => {
            for (i, _) in &puts {
                outcomes.answer(*i, Ok(PutOutcome::Landed));
            }
            return Sent::all();
        }
        Err(e) => match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                c.cancellation_reasons().to_vec()
            }
            _ => {
                return Sent::Failed {
                    unsent: puts,
                    error: sdk_error("TransactWriteItems", &e).message,
                };
            }
        },
    };
    if reasons.len() != puts.len() {
        let error = format!(
            "TransactionCanceledException with {} reasons for {} puts",
            reasons.len(),
            puts.len()
        );
        return Sent::Failed {
            unsent: puts,
            error,
        };
    }
    cancelled(puts, reasons, outcomes)
}

/// A cancelled transaction's puts, each by its reason: a lost condition or a refusal of its
/// own answered, the others (cancelled with them, by a conflict or throttling) to send again.
fn cancelled(
    puts: Vec<IndexedPut>,
    reasons: Vec<CancellationReason>,
    outcomes: &Outcomes,
) -> Sent<IndexedPut> {
    let mut again = Vec::new();
    let mut error = String::new();
    for (put, reason) in puts.into_iter().zip(reasons) {
        match reason.code().unwrap_or("None") {
            // Lost to another writer: answered with what it saw, not sent again.
            "ConditionalCheckFailed" => {
                outcomes.answer(put.0, Ok(PutOutcome::Lost(reason.item().cloned())));
            }
            // Cancelled with the others, or by a concurrent transaction or throttling on
            // its item: it may land on the next attempt.
            code @ ("None"
            | "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded") => {
                if code != "None" {
                    error = code.to_owned();
                }
                again.push(put);
            }
            // Refused for itself (a validation error, an item collection full): answered
            // so, alone; the puts cancelled with it go again without it.
            code => {
                let message = reason.message().unwrap_or_default();
                outcomes.answer(
                    put.0,
                    Err(PortError::new(
                        "TransactWriteItems",
                        format!("TransactionCanceledException: {code}: {message}"),
                    )),
                );
            }
        }
    }
    Sent::Answered {
        failed: again,
        error: if error.is_empty() {
            "cancelled with puts that lost their condition".to_owned()
        } else {
            error
        },
    }
}
