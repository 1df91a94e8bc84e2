//! Re-sending the failed part of a partly failed AWS call (PutRecords, PutRecordBatch,
//! BatchWriteItem, BatchGetItem, SendMessageBatch, PublishBatch), with the project's backoff,
//! until every part succeeds or a deadline passes.
//!
//! One retry layer per failure: a call that failed as a whole (throttled, a 5xx, no answer)
//! was already retried by the SDK's standard retries, so it is not sent again here; only the
//! entries an answered call lists as failed are.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long and how often to retry the failed part of a call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Give up when the next attempt would start after this long.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(2),
            deadline: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// No waiting: for tests that inject failures.
    pub fn immediate(attempts_window: Duration) -> Self {
        Self {
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            deadline: attempts_window,
        }
    }
}

/// Whether a failed entry's error code names a fault in the entry itself (a parameter, an
/// attribute or contents the service rejects), which no re-send of the same entry gets past.
/// Every other code names a condition of the stack or the service, whichever side the
/// entry's `SenderFault` blames: throttling, an internal error, or the topic's or queue's key
/// disabled, denied or not yet usable after a policy change (`KMSAccessDenied`,
/// `KMS.DisabledException`), which passes or is fixed; such an entry is sent again, and fails
/// its record for a re-delivery if it still fails at the deadline, instead of being given up.
pub fn entry_content_error(code: &str) -> bool {
    // SQS names some codes by a dotted namespace (`AWS.SimpleQueueService.…`, `KMS.…`).
    let name = code.rsplit('.').next().unwrap_or(code).to_ascii_lowercase();
    let namespace_is_kms = code.to_ascii_lowercase().starts_with("kms");
    !namespace_is_kms
        && (name.starts_with("invalid")
            || name.starts_with("validation")
            || name.contains("toolong")
            || name.contains("toolarge"))
}

/// What is left after retrying: the items that never went through, with the last error.
#[derive(Debug)]
pub struct Unsent<T> {
    pub items: Vec<T>,
    pub last_error: String,
    pub attempts: u32,
}

/// What one call did with its entries.
#[derive(Debug)]
pub enum Sent<T> {
    /// The call answered: these entries carry an error (none: all went through).
    Answered { failed: Vec<T>, error: String },
    /// The call failed as a whole, after the SDK's own retries: nothing is re-sent.
    Failed { unsent: Vec<T>, error: String },
}

impl<T> Sent<T> {
    /// Every entry went through.
    pub fn all() -> Self {
        Self::Answered {
            failed: Vec::new(),
            error: String::new(),
        }
    }
}

/// Sends `items` with `send`; re-sends the entries an answered call lists as failed until none
/// is left or the policy's deadline passes. Returns the number of retries.
pub async fn send_with_retries<T, F, Fut>(
    policy: RetryPolicy,
    items: Vec<T>,
    mut send: F,
) -> Result<u32, Unsent<T>>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Sent<T>>,
{
    let started = Instant::now();
    let mut pending = items;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let (failed, error) = match send(pending).await {
            Sent::Answered { failed, .. } if failed.is_empty() => return Ok(attempts - 1),
            Sent::Answered { failed, error } => (failed, error),
            Sent::Failed { unsent, error } => {
                return Err(Unsent {
                    items: unsent,
                    last_error: error,
                    attempts,
                });
            }
        };
        let jittered =
            realty_model::backoff::full_jitter(policy.first_delay, policy.max_delay, attempts - 1);
        if started.elapsed() + jittered > policy.deadline {
            return Err(Unsent {
                items: failed,
                last_error: error,
                attempts,
            });
        }
        metrics::counter!("aws_partial_retries").increment(1);
        tokio::time::sleep(jittered).await;
        pending = failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn resends_only_what_failed() {
        let mut calls: Vec<Vec<u32>> = Vec::new();
        let result = send_with_retries(
            RetryPolicy::immediate(Duration::from_secs(5)),
            vec![1, 2, 3, 4],
            |batch| {
                calls.push(batch.clone());
                let failed: Vec<u32> = if calls.len() == 1 {
                    batch.into_iter().filter(|x| x % 2 == 0).collect()
                } else {
                    vec![]
                };
                async move {
                    Sent::Answered {
                        failed,
                        error: "throttled".to_owned(),
                    }
                }
            },
        )
        .await;
        assert_eq!(result.unwrap(), 1);
        assert_eq!(calls, vec![vec![1, 2, 3, 4], vec![2, 4]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn gives_up_at_the_deadline_and_returns_what_failed() {
        let result = send_with_retries(
            RetryPolicy::immediate(Duration::ZERO),
            vec![7],
            |batch| async move {
                Sent::Answered {
                    failed: batch,
                    error: "InternalFailure".to_owned(),
                }
            },
        )
        .await;
        let unsent = result.unwrap_err();
        assert_eq!(unsent.items, vec![7]);
        assert_eq!(unsent.last_error, "InternalFailure");
    }

    /// Only a fault in the entry itself is given up on; a key denied or disabled, throttling
    /// and internal errors are conditions a re-send (or a re-delivery) gets past.
    #[test]
    fn only_an_entry_s_own_contents_are_a_fault_no_resend_gets_past() {
        for code in [
            "InvalidParameter",
            "InvalidParameterValue",
            "ValidationError",
            "InvalidMessageContents",
            "AWS.SimpleQueueService.InvalidMessageContents",
            "MessageTooLong",
        ] {
            assert!(entry_content_error(code), "{code}");
        }
        for code in [
            "KMSAccessDenied",
            "KMSDisabled",
            "KMSInvalidState",
            "KMSNotFound",
            "KMS.DisabledException",
            "KMS.InvalidStateException",
            "AuthorizationError",
            "EndpointDisabled",
            "Throttled",
            "KMSThrottling",
            "InternalError",
            "ServiceUnavailable",
        ] {
            assert!(!entry_content_error(code), "{code}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_failed_whole_is_not_sent_again() {
        let mut calls = 0;
        let result = send_with_retries(
            RetryPolicy::immediate(Duration::from_secs(5)),
            vec![1, 2],
            |batch| {
                calls += 1;
                async move {
                    Sent::Failed {
                        unsent: batch,
                        error: "ServiceUnavailable".to_owned(),
                    }
                }
            },
        )
        .await;
        let unsent = result.unwrap_err();
        assert_eq!((calls, unsent.attempts), (1, 1));
        assert_eq!(unsent.items, vec![1, 2]);
        assert_eq!(unsent.last_error, "ServiceUnavailable");
    }
}
