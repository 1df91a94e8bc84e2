//! The poller's last complete read of each market, one gzipped object per (source, market)
//! in S3, written conditionally so two overlapping polls cannot both advance it.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use realty_core::poller::detect::PollState;
use realty_core::poller::ports::{PollStateStore, StoredPollState};
use realty_core::ports::PortError;

/// Prefix of the state objects in the data-lake bucket (the poller's IAM policy names it).
pub const STATE_PREFIX: &str = "poller-state/";

#[derive(Debug, Clone)]
pub struct S3PollStateStore {
    pub client: Client,
    pub bucket: String,
}

fn object_key(key: &str) -> String {
    format!("{STATE_PREFIX}{key}.json.gz")
}

impl PollStateStore for S3PollStateStore {
    async fn load(&self, key: &str) -> Result<StoredPollState, PortError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object_key(key))
            .send()
            .await
        {
            Ok(out) => {
                let etag = out.e_tag.clone();
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| PortError::new("GetObject", e.to_string()))?
                    .into_bytes();
                let state = PollState::decode(&bytes)
                    .map_err(|e| PortError::new("GetObject", format!("{key}: {e}")))?;
                Ok(StoredPollState {
                    state,
                    version: etag,
                })
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Ok(StoredPollState::default())
            }
            Err(e) => Err(PortError::new(
                "GetObject",
                aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            )),
        }
    }

    async fn save(
        &self,
        key: &str,
        state: &PollState,
        expected_version: Option<&str>,
    ) -> Result<bool, PortError> {
        let body = state
            .encode()
            .map_err(|e| PortError::new("PutObject", e.to_string()))?;
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(object_key(key))
            .content_type("application/json")
            .content_encoding("gzip")
            .body(ByteStream::from(body));
        put = match expected_version {
            Some(etag) => put.if_match(etag),
            None => put.if_none_match("*"),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed") | Some("ConditionalRequestConflict")
                ) =>
            {
                Ok(false)
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(false),
            Err(e) => Err(PortError::new(
                "PutObject",
                aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            )),
        }
    }
}
