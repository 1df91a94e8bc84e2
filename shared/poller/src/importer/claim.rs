//! One delivery of a version imports it. The importer runs two at once (reserved
//! concurrency 2), and S3 and SQS deliver a notification at least once: two deliveries of
//! one object both replayed it and published every event twice. Before it publishes, a
//! delivery claims the import: it writes the result object as `importing`, conditionally on
//! the result it read (`If-Match` its ETag, `If-None-Match: *` when there was none). Of two
//! deliveries that read the same result, one claim lands; the other finds a conflict, does
//! nothing and is delivered again later, when it finds the result `done`. A claim whose
//! delivery was stopped (Lambda's timeout) is abandoned after [`CLAIM_LIFETIME`], and the
//! next delivery claims it in turn.

use chrono::{DateTime, TimeDelta, Utc};

use super::ports::{ImportObjects, ResultCondition, ResultWrite};
use super::{ImportRequest, ImportResult, ImportStatus};
use realty_model::ports::PortError;

/// How long a claim is held: the importer's timeout (300 s, template.yaml), past which
/// Lambda has stopped the delivery that wrote it, and a margin for the clocks of two hosts.
pub const CLAIM_LIFETIME: TimeDelta = TimeDelta::seconds(300 + 60);

/// The reason a delivery that found another's claim gives.
pub const HELD_ELSEWHERE: &str =
    "another delivery of this file is importing it; this one is delivered again later";

/// A claim this delivery holds: the version of the result object it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    etag: Option<String>,
}

impl Claim {
    /// The condition of the result written when the import ends: over this claim only.
    pub fn condition(&self) -> ResultCondition<'_> {
        self.etag
            .as_deref()
            .map_or(ResultCondition::Any, ResultCondition::Matches)
    }
}

/// `previous` is a claim of the version `request` names, held by a delivery that may still
/// run at `now`.
pub fn held_for(previous: &ImportResult, request: &ImportRequest, now: DateTime<Utc>) -> bool {
    let since = previous.started_at.unwrap_or(previous.finished_at);
    previous.status == ImportStatus::Importing
        && previous.key == request.key
        && previous.version_id == request.version_id
        && now - since < CLAIM_LIFETIME
}

/// Claims the import `result` begins, over the result read under `condition`: `None` when
/// another delivery wrote the result first (it holds the import, or finished it).
pub async fn claim<O: ImportObjects>(
    objects: &O,
    result_key: &str,
    result: &ImportResult,
    condition: ResultCondition<'_>,
) -> Result<Option<Claim>, PortError> {
    let claim = ImportResult {
        status: ImportStatus::Importing,
        ..result.clone()
    };
    let body = serde_json::to_vec_pretty(&claim)
        .map_err(|e| PortError::new("import claim", e.to_string()))?;
    Ok(
        match objects.write_result(result_key, &body, condition).await? {
            ResultWrite::Written { etag } => Some(Claim { etag }),
            ResultWrite::Conflict => None,
        },
    )
}
