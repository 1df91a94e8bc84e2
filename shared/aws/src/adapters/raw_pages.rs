//! The raw layer in S3: one gzipped object per API page under `raw/` of the lake bucket
//! (`realty_poller::raw`), written by the poller and read back by `realty replay-raw`.

use std::collections::HashMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use realty_model::ports::PortError;
use realty_poller::raw::{MAX_RAW_PAGE_BYTES, RawPageStore};

#[derive(Debug, Clone)]
pub struct S3RawPageStore {
    pub client: Client,
    pub bucket: String,
}

fn s3_error<E: std::error::Error + 'static>(call: &'static str, e: E) -> PortError {
    PortError::new(call, crate::sdk::error_chain(&e))
}

impl RawPageStore for S3RawPageStore {
    async fn put(
        &self,
        key: &str,
        gzipped: Vec<u8>,
        metadata: &[(&'static str, String)],
    ) -> Result<(), PortError> {
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            // The object is a gzip file: readers get it as stored, and gunzip it themselves.
            .content_type("application/gzip")
            .body(ByteStream::from(gzipped));
        for (name, value) in metadata {
            put = put.metadata(*name, value);
        }
        put.send()
            .await
            .map_err(|e| s3_error("PutObject", e))
            .map(|_| ())
    }
}

/// Most keys one listing returns: a year of days is far below it; past it the listing
/// stops with an error rather than filling memory.
pub const MAX_LISTED_KEYS: usize = 1_000_000;

impl S3RawPageStore {
    /// Every key under `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("ListObjectsV2", e))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    keys.push(key.to_owned());
                }
            }
            if keys.len() > MAX_LISTED_KEYS {
                return Err(PortError::new(
                    "ListObjectsV2",
                    format!(
                        "more than {MAX_LISTED_KEYS} objects under {prefix}: narrow the days or the source"
                    ),
                ));
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// One kept page: its gzipped bytes and its metadata. A body larger than any kept page
    /// could be (gzip never grows a page by much) is refused unread.
    pub async fn get(&self, key: &str) -> Result<(Vec<u8>, HashMap<String, String>), PortError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("GetObject", e))?;
        let limit = (MAX_RAW_PAGE_BYTES + MAX_RAW_PAGE_BYTES / 8) as i64;
        if out.content_length().is_some_and(|n| n > limit) {
            return Err(PortError::new(
                "GetObject",
                format!("{key} is larger than any raw page ({limit} bytes)"),
            ));
        }
        let metadata = out.metadata().cloned().unwrap_or_default();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| PortError::new("GetObject", e.to_string()))?
            .into_bytes()
            .to_vec();
        Ok((body, metadata))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::Client;
    use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn store(client: Client) -> S3RawPageStore {
        S3RawPageStore {
            client,
            bucket: "lake".into(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_page_is_put_with_its_metadata() {
        let put = mock!(Client::put_object)
            .match_requests(|r| {
                r.bucket() == Some("lake")
                    && r.key() == Some("raw/source=zillow/dt=2026-11-24/x.json.gz")
                    && r.content_type() == Some("application/gzip")
                    && r.metadata()
                        .and_then(|m| m.get("poll-id"))
                        .map(String::as_str)
                        == Some("poll-1")
            })
            .then_output(|| PutObjectOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&put]);
        store(client)
            .put(
                "raw/source=zillow/dt=2026-11-24/x.json.gz",
                vec![0x1f, 0x8b],
                &[("poll-id", "poll-1".into())],
            )
            .await
            .expect("kept");
        assert_eq!(put.num_calls(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_put_is_an_error_naming_the_call() {
        let denied = mock!(Client::put_object).then_error(|| {
            PutObjectError::generic(
                aws_sdk_s3::error::ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not raw/*")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&denied]);
        let error = store(client)
            .put("raw/k", Vec::new(), &[])
            .await
            .expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains("PutObject") && text.contains("AccessDenied"),
            "{text}"
        );
    }
}
