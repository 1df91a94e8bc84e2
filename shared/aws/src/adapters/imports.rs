//! The S3 import source's objects in the lake bucket: the dropped file under `imports/`
//! (read once, bounded before and while reading) and its result under `import-results/`.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;

use realty_model::ports::PortError;
use realty_poller::importer::ports::{
    ImportObject, ImportObjects, ResultCondition, ResultWrite, StoredResult,
};

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

/// Why S3 will never serve the object to the importer, however often it asks: archived
/// (`InvalidObjectState`: Glacier Flexible Retrieval, Deep Archive, or the Intelligent-Tiering
/// archive tiers, read only after a restore), encrypted with a customer-provided key
/// (SSE-C: `InvalidRequest`, 400, without the key's headers, which the importer never has),
/// or with a KMS key the importer may not use, disabled or deleted (`AccessDenied` naming
/// `kms:`, or a `KMS.` error). Retried as transient, each went through three tries and the
/// dead-letter queue's alarm for a file only its uploader can mend. Any other refusal
/// (`AccessDenied` of the bucket's policy, throttling) may pass, and is retried.
fn unservable(error: &SdkError<GetObjectError, HttpResponse>) -> Option<String> {
    let code = error.code().unwrap_or_default();
    let message = error.message().unwrap_or_default();
    if let Some(GetObjectError::InvalidObjectState(state)) = error.as_service_error() {
        let class = state
            .storage_class()
            .map_or_else(|| "an archive".to_owned(), |c| c.as_str().to_owned());
        return Some(format!(
            "archived (storage class {class}): S3 serves it only once restored; restore it, or upload it again in the Standard class"
        ));
    }
    if code == "InvalidObjectState" {
        return Some("archived: S3 serves it only once restored; restore it, or upload it again in the Standard class".to_owned());
    }
    let lower = message.to_ascii_lowercase();
    if code == "InvalidRequest" && lower.contains("server side encryption") {
        return Some("encrypted with a customer-provided key (SSE-C), which the importer cannot have: upload it again with the bucket's default encryption".to_owned());
    }
    if code.starts_with("KMS.") || (code == "AccessDenied" && lower.contains("kms:")) {
        return Some(realty_model::listing::bound_reason(format!(
            "encrypted with a KMS key the importer may not use ({code}: {message}): upload it again with the bucket's default encryption"
        )));
    }
    None
}

fn port_error<E>(operation: &'static str, error: E) -> PortError
where
    E: std::error::Error + 'static,
{
    PortError::new(operation, crate::sdk::error_chain(&error))
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
            Err(e) => {
                return match unservable(&e) {
                    Some(reason) => Ok(ImportObject::Unservable { reason }),
                    None => Err(port_error("GetObject", e)),
                };
            }
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

    async fn read_result(&self, key: &str) -> Result<Option<StoredResult>, PortError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => {
                let etag = object.e_tag().map(str::to_owned);
                // A result is tens of KB: anything far larger is not one of ours, and
                // reading it whole would let it exhaust the function's memory at every
                // notification of its file. It counts as no result (written over as one).
                let unread = |etag| {
                    Ok(Some(StoredResult {
                        body: Vec::new(),
                        etag,
                    }))
                };
                if object
                    .content_length()
                    .is_some_and(|n| n > MAX_RESULT_BYTES as i64)
                {
                    return unread(etag);
                }
                let mut body = object.body;
                let mut bytes = Vec::new();
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| port_error("GetObject", e))?
                {
                    if bytes.len() + chunk.len() > MAX_RESULT_BYTES {
                        return unread(etag);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Some(StoredResult { body: bytes, etag }))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(port_error("GetObject", e)),
        }
    }

    async fn write_result(
        &self,
        key: &str,
        body: &[u8],
        condition: ResultCondition<'_>,
    ) -> Result<ResultWrite, PortError> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body.to_vec()));
        let put = match condition {
            ResultCondition::Absent => put.if_none_match("*"),
            ResultCondition::Matches(etag) => put.if_match(etag),
            ResultCondition::Any => put,
        };
        let error = match put.send().await {
            Ok(out) => {
                return Ok(ResultWrite::Written {
                    etag: out.e_tag().map(str::to_owned),
                });
            }
            Err(e) => e,
        };
        let status = error.raw_response().map(|r| r.status().as_u16());
        if error.code() == Some("PreconditionFailed") || status == Some(412) {
            // Maybe on the SDK's retry of this very write, which had landed: written if the
            // key holds what was written (a claim names the instant its attempt began).
            return Ok(match self.read_result(key).await? {
                Some(held) if held.body == body => ResultWrite::Written { etag: held.etag },
                _ => ResultWrite::Conflict,
            });
        }
        // Another write was under way on the key (S3's 409): that one goes first.
        if error.code() == Some("ConditionalRequestConflict") || status == Some(409) {
            return Ok(ResultWrite::Conflict);
        }
        Err(port_error("PutObject", error))
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

    /// A result object past the bound (not one the importer wrote) is read as an empty one
    /// (no result of ours, written over at its ETag), refused by its declared length or
    /// while reading; one at the bound is read.
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
            let body = result.expect("an object").body;
            assert_eq!(!body.is_empty(), read, "{len} bytes, declared {declared}");
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
    fn s3_error(code: &'static str, message: &'static str) -> GetObjectError {
        GetObjectError::generic(
            aws_sdk_s3::error::ErrorMetadata::builder()
                .code(code)
                .message(message)
                .build(),
        )
    }

    /// Objects S3 can never serve the importer are unservable, saying why and what to do;
    /// a refusal that may pass (the bucket's policy, throttling) stays an error, retried.
    #[tokio::test]
    async fn objects_s3_can_never_serve_are_unservable_and_other_refusals_errors() {
        use aws_sdk_s3::types::StorageClass;
        use aws_sdk_s3::types::error::InvalidObjectState;
        let archived = mock!(Client::get_object).then_error(|| {
            GetObjectError::InvalidObjectState(
                InvalidObjectState::builder()
                    .storage_class(StorageClass::DeepArchive)
                    .message("The operation is not valid for the object's storage class")
                    .build(),
            )
        });
        let sse_c = mock!(Client::get_object).then_error(|| {
            s3_error(
                "InvalidRequest",
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
            )
        });
        let foreign_key = mock!(Client::get_object).then_error(|| {
            s3_error(
                "AccessDenied",
                "User: arn:aws:sts::123456789012:assumed-role/importer is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:210987654321:key/1234",
            )
        });
        let disabled_key = mock!(Client::get_object)
            .then_error(|| s3_error("KMS.DisabledException", "arn:aws:kms:... is disabled."));
        for (rule, says) in [
            (&archived, "storage class DEEP_ARCHIVE"),
            (&sse_c, "customer-provided key (SSE-C)"),
            (&foreign_key, "KMS key the importer may not use"),
            (&disabled_key, "KMS.DisabledException"),
        ] {
            let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [rule]);
            match objects(client).read("imports/a.csv", None, 10).await {
                Ok(ImportObject::Unservable { reason }) => {
                    assert!(reason.contains(says), "{reason}");
                }
                other => panic!("{says}: {other:?}"),
            }
        }
        // Not a KMS refusal, nor the SSE-C one: may pass, so an error (retried).
        for (code, message) in [
            ("AccessDenied", "Access Denied"),
            ("InvalidRequest", "Something else"),
            ("SlowDown", "Please reduce your request rate."),
        ] {
            let rule = mock!(Client::get_object).then_error(move || s3_error(code, message));
            let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule]);
            let error = objects_err(client).await;
            assert!(error.contains(code), "{error}");
        }
    }

    /// A result is written under its condition (`If-None-Match: *` for none, `If-Match` the
    /// ETag read): a condition that failed is a conflict (another delivery wrote first),
    /// unless the key holds what was written (the SDK's retry of a write that had landed).
    #[tokio::test]
    async fn a_result_is_written_under_its_condition() {
        use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
        let written = mock!(Client::put_object)
            .match_requests(|r| r.if_none_match() == Some("*") && r.if_match().is_none())
            .then_output(|| PutObjectOutput::builder().e_tag("\"e2\"").build());
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&written]);
        assert_eq!(
            objects(client)
                .write_result("r.json", b"{}", ResultCondition::Absent)
                .await
                .expect("answered"),
            ResultWrite::Written {
                etag: Some("\"e2\"".into())
            }
        );
        let failed = || {
            mock!(Client::put_object)
                .match_requests(|r| r.if_match() == Some("\"e1\""))
                .then_error(|| {
                    PutObjectError::generic(
                        aws_sdk_s3::error::ErrorMetadata::builder()
                            .code("PreconditionFailed")
                            .build(),
                    )
                })
        };
        for (held, outcome) in [
            (b"{\"other\": 1}".as_slice(), ResultWrite::Conflict),
            (
                b"{}".as_slice(),
                ResultWrite::Written {
                    etag: Some("\"e3\"".into()),
                },
            ),
        ] {
            let put = failed();
            let get = mock!(Client::get_object).then_output(move || {
                GetObjectOutput::builder()
                    .e_tag("\"e3\"")
                    .body(ByteStream::from(held.to_vec()))
                    .build()
            });
            let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put, &get]);
            assert_eq!(
                objects(client)
                    .write_result("r.json", b"{}", ResultCondition::Matches("\"e1\""))
                    .await
                    .expect("answered"),
                outcome
            );
        }
    }
}
