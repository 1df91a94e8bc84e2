//! The S3 import source's objects in the lake bucket: the dropped file under `imports/`
//! (read once, bounded before and while reading) and its result under `import-results/`.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;

use realty_core::importer::ports::{ImportObject, ImportObjects};
use realty_core::ports::PortError;

/// Largest result object read back (results are bounded to well under 100 KB).
const MAX_RESULT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct S3ImportObjects {
    pub client: Client,
    pub bucket: String,
}

/// The object is not there: S3's 404 (`NoSuchKey`; `NoSuchVersion`, which the SDK does not
/// model, for completeness).
fn is_missing(error: &SdkError<GetObjectError, HttpResponse>) -> bool {
    error.as_service_error().is_some_and(|e| e.is_no_such_key())
        || error.code() == Some("NoSuchVersion")
        || error
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 404)
}

fn port_error<E>(operation: &'static str, error: E) -> PortError
where
    E: std::error::Error + 'static,
{
    PortError::new(operation, DisplayErrorContext(&error).to_string())
}

impl ImportObjects for S3ImportObjects {
    async fn read(
        &self,
        key: &str,
        version_id: Option<&str>,
        max_bytes: u64,
    ) -> Result<ImportObject, PortError> {
        // The key's object now, not the version named: one read both tells whether that
        // version is still the current one and gives it.
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if is_missing(&e) => return Ok(ImportObject::Missing),
            Err(e) => return Err(port_error("GetObject", e)),
        };
        if let Some(wanted) = version_id
            && object.version_id() != Some(wanted)
        {
            return Ok(ImportObject::Superseded);
        }
        // Refused unread when S3 gives its length, and while reading when it does not.
        if let Some(bytes) = object.content_length().and_then(|n| u64::try_from(n).ok())
            && bytes > max_bytes
        {
            return Ok(ImportObject::TooLarge { bytes });
        }
        let mut body = object.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| port_error("GetObject", e))?
        {
            let read = (bytes.len() + chunk.len()) as u64;
            if read > max_bytes {
                return Ok(ImportObject::TooLarge { bytes: read });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(ImportObject::Body(bytes))
    }

    async fn read_result(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => {
                // A result is tens of KB: anything far larger is not one of ours, and
                // reading it whole would let it exhaust the function's memory at every
                // notification of its file. It counts as no result.
                if object
                    .content_length()
                    .is_some_and(|n| n > MAX_RESULT_BYTES as i64)
                {
                    return Ok(None);
                }
                let mut body = object.body;
                let mut bytes = Vec::new();
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| port_error("GetObject", e))?
                {
                    if bytes.len() + chunk.len() > MAX_RESULT_BYTES {
                        return Ok(None);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Some(bytes))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(port_error("GetObject", e)),
        }
    }

    async fn write_result(&self, key: &str, body: &[u8]) -> Result<(), PortError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(|e| port_error("PutObject", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::get_object::GetObjectOutput;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn objects(client: Client) -> S3ImportObjects {
        S3ImportObjects {
            client,
            bucket: "lake".into(),
        }
    }

    #[tokio::test]
    async fn a_file_is_read_whole_within_the_bound_and_refused_past_it() {
        let body = b"id,status\n".to_vec();
        let exact = body.clone();
        let at_bound = mock!(Client::get_object)
            .match_requests(|r| r.key() == Some("imports/a.csv") && r.version_id().is_none())
            .then_output(move || {
                GetObjectOutput::builder()
                    .version_id("v1")
                    .content_length(exact.len() as i64)
                    .body(ByteStream::from(exact.clone()))
                    .build()
            });
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&at_bound]);
        let read = objects(client)
            .read("imports/a.csv", Some("v1"), body.len() as u64)
            .await
            .expect("read");
        assert_eq!(read, ImportObject::Body(body.clone()));

        // One byte past the bound, by its declared length and by what is read.
        let declared = mock!(Client::get_object).then_output(|| {
            GetObjectOutput::builder()
                .content_length(11)
                .body(ByteStream::from(vec![b'a'; 11]))
                .build()
        });
        let undeclared = mock!(Client::get_object).then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from(vec![b'a'; 11]))
                .build()
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&declared, &undeclared]);
        let objects = objects(client);
        for _ in 0..2 {
            assert_eq!(
                objects.read("imports/a.csv", None, 10).await.expect("read"),
                ImportObject::TooLarge { bytes: 11 }
            );
        }
    }

    /// A result object past the bound (not one the importer wrote) is read as no result,
    /// refused by its declared length or while reading; one at the bound is read.
    #[tokio::test]
    async fn a_result_past_its_bound_is_no_result() {
        let sized = |declared: bool, len: usize| {
            mock!(Client::get_object).then_output(move || {
                let builder = GetObjectOutput::builder().body(ByteStream::from(vec![b'{'; len]));
                if declared {
                    builder.content_length(len as i64).build()
                } else {
                    builder.build()
                }
            })
        };
        for (declared, len, read) in [
            (true, MAX_RESULT_BYTES, true),
            (true, MAX_RESULT_BYTES + 1, false),
            (false, MAX_RESULT_BYTES + 1, false),
        ] {
            let rule = sized(declared, len);
            let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule]);
            let result = objects(client)
                .read_result("import-results/imports/a.csv.json")
                .await
                .expect("read");
            assert_eq!(result.is_some(), read, "{len} bytes, declared {declared}");
        }
    }

    /// A version that is no longer the key's current one (the file was uploaded again) is
    /// not read as if it were: its notification came late, or was retried.
    #[tokio::test]
    async fn a_version_no_longer_current_is_superseded() {
        let current = mock!(Client::get_object)
            .match_requests(|r| r.version_id().is_none())
            .then_output(|| {
                GetObjectOutput::builder()
                    .version_id("v2")
                    .content_length(3)
                    .body(ByteStream::from(b"v2\n".to_vec()))
                    .build()
            });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&current]);
        let objects = objects(client);
        assert_eq!(
            objects
                .read("imports/a.csv", Some("v1"), 10)
                .await
                .expect("read"),
            ImportObject::Superseded
        );
        assert_eq!(
            objects
                .read("imports/a.csv", Some("v2"), 10)
                .await
                .expect("read"),
            ImportObject::Body(b"v2\n".to_vec())
        );
        // Without a version (an unversioned bucket), what is there.
        assert_eq!(
            objects.read("imports/a.csv", None, 10).await.expect("read"),
            ImportObject::Body(b"v2\n".to_vec())
        );
    }

    #[tokio::test]
    async fn a_missing_object_or_result_is_not_an_error_but_access_denied_is() {
        let missing = mock!(Client::get_object)
            .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&missing]);
        let objects = objects(client);
        assert_eq!(
            objects
                .read("imports/gone.csv", None, 10)
                .await
                .expect("read"),
            ImportObject::Missing
        );
        assert_eq!(
            objects
                .read_result("import-results/x.json")
                .await
                .expect("read"),
            None
        );

        let denied = mock!(Client::get_object).then_error(|| {
            GetObjectError::generic(
                aws_sdk_s3::error::ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("no")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&denied]);
        let error = objects_err(client).await;
        assert!(error.contains("AccessDenied"), "{error}");
    }

    async fn objects_err(client: Client) -> String {
        objects(client)
            .read("imports/a.csv", None, 10)
            .await
            .expect_err("denied")
            .to_string()
    }
}
