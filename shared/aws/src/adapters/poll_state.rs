//! The poller's last complete read of each market, one gzipped object per (source, market)
//! in S3, written conditionally so two overlapping polls cannot both advance it.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use realty_model::ports::PortError;
use realty_poller::anti_entropy::{AntiEntropyCursor, AntiEntropyStore};
use realty_poller::detect::{MAX_STATE_JSON_BYTES, PollState};
use realty_poller::ports::{PollStateStore, StoredPollState};

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

/// Times a save that meets another write under way on its key (409) is made again.
const MAX_CONFLICT_RETRIES: u32 = 3;
const CONFLICT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

impl S3PollStateStore {
    /// Whether the key holds exactly `body` now (`false` when it cannot be read).
    async fn holds(&self, key: &str, body: &[u8]) -> bool {
        let read = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object_key(key))
            .send()
            .await;
        match read {
            Ok(out) => out
                .body
                .collect()
                .await
                .is_ok_and(|held| held.into_bytes().as_ref() == body),
            Err(_) => false,
        }
    }
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
                // Gzipped, a state is far smaller than its JSON: an object past the JSON's
                // bound is not one to hold (its market's poll fails alone).
                if out
                    .content_length()
                    .is_some_and(|n| n > MAX_STATE_JSON_BYTES as i64)
                {
                    return Err(PortError::new(
                        "GetObject",
                        format!(
                            "{key}: a state object of {} bytes, over the {MAX_STATE_JSON_BYTES}-byte bound of a market's state",
                            out.content_length().unwrap_or_default()
                        ),
                    ));
                }
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
            Err(e) => Err(PortError::new("GetObject", crate::sdk::error_line(&e))),
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
        let mut conflicts = 0;
        loop {
            let put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(object_key(key))
                .content_type("application/json")
                .content_encoding("gzip")
                .body(ByteStream::from(body.clone()));
            let put = match expected_version {
                Some(etag) => put.if_match(etag),
                None => put.if_none_match("*"),
            };
            let error = match put.send().await {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let status = error.raw_response().map(|r| r.status().as_u16());
            // Another write was under way on the key: S3 asks for the request again.
            if (error.code() == Some("ConditionalRequestConflict") || status == Some(409))
                && conflicts < MAX_CONFLICT_RETRIES
            {
                conflicts += 1;
                tokio::time::sleep(CONFLICT_BACKOFF * conflicts).await;
                continue;
            }
            if error.code() == Some("PreconditionFailed") || status == Some(412) {
                // The condition failed, maybe on the SDK's retry of this very write, which
                // had landed: saved if what the key holds now is what was written.
                return Ok(self.holds(key, &body).await);
            }
            if error.code() == Some("ConditionalRequestConflict") || status == Some(409) {
                return Ok(false);
            }
            return Err(PortError::new("PutObject", crate::sdk::error_line(&error)));
        }
    }
}

/// Where the anti-entropy pass keeps its cursor: beside the states (the poller's role reaches
/// that prefix already), under a name no state has (states end in `.json.gz`).
pub const ANTI_ENTROPY_CURSOR_KEY: &str = "poller-state/_anti-entropy.json";
/// Suffix of every state object.
const STATE_SUFFIX: &str = ".json.gz";
/// Most state objects listed: a (source, market, offer) each, far above any deployment's;
/// past it the listing stops with an error rather than filling memory.
pub const MAX_STATE_KEYS: usize = 100_000;
/// Largest cursor read back (it holds two keys and two times).
const MAX_CURSOR_BYTES: i64 = 64 * 1024;

fn sdk_error<E: std::error::Error + 'static>(call: &'static str, e: E) -> PortError {
    PortError::new(call, aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
}

impl AntiEntropyStore for S3PollStateStore {
    async fn state_keys(&self) -> Result<Vec<String>, PortError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(STATE_PREFIX)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ListObjectsV2", e))?;
            keys.extend(page.contents().iter().filter_map(|o| {
                o.key()?
                    .strip_prefix(STATE_PREFIX)?
                    .strip_suffix(STATE_SUFFIX)
                    .map(str::to_owned)
            }));
            if keys.len() > MAX_STATE_KEYS {
                return Err(PortError::new(
                    "ListObjectsV2",
                    format!("more than {MAX_STATE_KEYS} poll states under {STATE_PREFIX}"),
                ));
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn load_cursor(&self) -> Result<AntiEntropyCursor, PortError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(ANTI_ENTROPY_CURSOR_KEY)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(AntiEntropyCursor::default());
            }
            Err(e) => return Err(sdk_error("GetObject", e)),
        };
        if out.content_length().is_some_and(|n| n > MAX_CURSOR_BYTES) {
            return Err(PortError::new(
                "GetObject",
                format!("{ANTI_ENTROPY_CURSOR_KEY}: over {MAX_CURSOR_BYTES} bytes"),
            ));
        }
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| PortError::new("GetObject", e.to_string()))?
            .into_bytes();
        // A cursor that cannot be read starts the round again: it only says where to go on.
        Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable anti-entropy cursor; the round starts again");
            AntiEntropyCursor::default()
        }))
    }

    async fn save_cursor(&self, cursor: &AntiEntropyCursor) -> Result<(), PortError> {
        let body =
            serde_json::to_vec(cursor).map_err(|e| PortError::new("PutObject", e.to_string()))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(ANTI_ENTROPY_CURSOR_KEY)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", e))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::GetObjectOutput;
    use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn failed(code: &'static str) -> impl Fn() -> PutObjectError + Send + Sync + 'static {
        move || PutObjectError::generic(ErrorMetadata::builder().code(code).build())
    }

    fn state() -> PollState {
        PollState {
            cursor: chrono::DateTime::from_timestamp(1_800_000_000, 0),
            ..PollState::default()
        }
    }

    fn store(client: Client) -> S3PollStateStore {
        S3PollStateStore {
            client,
            bucket: "b".into(),
        }
    }

    /// A condition failed on the SDK's retry of a write that had landed: the key holds what
    /// was written, so it is saved (before, the poll was taken as lost and published again).
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_that_landed_before_its_condition_failed_is_saved() {
        let written = state().encode().expect("encodes");
        let put = mock!(aws_sdk_s3::Client::put_object).then_error(failed("PreconditionFailed"));
        let get = mock!(aws_sdk_s3::Client::get_object).then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from(written.clone()))
                .build()
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put, &get]);
        assert!(
            store(client)
                .save("k", &state(), Some("\"e\""))
                .await
                .expect("answered")
        );
    }

    /// Another writer's state under the key: lost.
    #[tokio::test(flavor = "current_thread")]
    async fn a_condition_failed_on_another_writer_s_state_is_lost() {
        let other = PollState::default().encode().expect("encodes");
        let put = mock!(aws_sdk_s3::Client::put_object).then_error(failed("PreconditionFailed"));
        let get = mock!(aws_sdk_s3::Client::get_object).then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from(other.clone()))
                .build()
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put, &get]);
        assert!(
            !store(client)
                .save("k", &state(), None)
                .await
                .expect("answered")
        );
    }

    /// S3's 409 asks for the request again: made again, and saved.
    #[tokio::test(flavor = "current_thread")]
    async fn a_conflict_with_a_write_under_way_is_tried_again() {
        let conflict =
            mock!(aws_sdk_s3::Client::put_object).then_error(failed("ConditionalRequestConflict"));
        let put = mock!(aws_sdk_s3::Client::put_object)
            .then_output(|| PutObjectOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&conflict, &put]);
        assert!(
            store(client)
                .save("k", &state(), None)
                .await
                .expect("answered")
        );
        assert_eq!((conflict.num_calls(), put.num_calls()), (1, 1));
    }

    /// The listing names the states only: the pass's cursor and anything else under the
    /// prefix are no state.
    #[tokio::test(flavor = "current_thread")]
    async fn state_keys_are_the_state_objects_only() {
        use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
        use aws_sdk_s3::types::Object;
        let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| {
            let object = |key: &str| Object::builder().key(key).build();
            ListObjectsV2Output::builder()
                .contents(object("poller-state/zillow/nashville-tn/rent.json.gz"))
                .contents(object(ANTI_ENTROPY_CURSOR_KEY))
                .contents(object("poller-state/zillow/austin-tx.json.gz"))
                .contents(object("poller-state/notes.txt"))
                .build()
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list]);
        assert_eq!(
            store(client).state_keys().await.expect("listed"),
            ["zillow/austin-tx", "zillow/nashville-tn/rent"]
        );
    }

    /// No cursor yet, or one that cannot be read: the round starts from the first state.
    #[tokio::test(flavor = "current_thread")]
    async fn a_missing_or_unreadable_cursor_starts_the_round_again() {
        use aws_sdk_s3::operation::get_object::GetObjectError;
        use aws_sdk_s3::types::error::NoSuchKey;
        let missing = mock!(aws_sdk_s3::Client::get_object)
            .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
        let garbled = mock!(aws_sdk_s3::Client::get_object).then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"{not json"))
                .build()
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&missing, &garbled]);
        let store = store(client);
        for _ in 0..2 {
            assert_eq!(
                store.load_cursor().await.expect("read"),
                AntiEntropyCursor::default()
            );
        }
    }
}
