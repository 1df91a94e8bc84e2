//! Secrets Manager behind [`SecretSource`]: the listing-API keys, read once per container
//! (and again while a source has none); written by `realty secrets set`.

use realty_model::ports::PortError;
use realty_model::ports::SecretSource;

pub struct SecretsManagerSource {
    pub client: aws_sdk_secretsmanager::Client,
}

impl SecretSource for SecretsManagerSource {
    async fn secret_string(&self, id: &str) -> Result<String, PortError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| PortError::new("GetSecretValue", crate::sdk::error_line(&e)))?;
        Ok(out.secret_string().unwrap_or_default().to_owned())
    }
}

impl SecretsManagerSource {
    /// The text of secret `id`, `None` when it has no value yet; any other failure (access
    /// denied, throttling, no network) is an error, never taken for an empty secret.
    pub async fn secret_string_if_any(&self, id: &str) -> Result<Option<String>, PortError> {
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(out) => Ok(out.secret_string().map(str::to_owned)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(PortError::new("GetSecretValue", crate::sdk::error_line(&e))),
        }
    }

    /// Stores a new version of secret `id`.
    pub async fn put_secret_string(&self, id: &str, text: &str) -> Result<(), PortError> {
        self.client
            .put_secret_value()
            .secret_id(id)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| PortError::new("PutSecretValue", crate::sdk::error_line(&e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_secretsmanager::Client;
    use aws_sdk_secretsmanager::operation::get_secret_value::{
        GetSecretValueError, GetSecretValueOutput,
    };
    use aws_sdk_secretsmanager::types::error::{InternalServiceError, ResourceNotFoundException};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    /// Only a secret without a value reads as none: a failed read is an error, so that
    /// `realty secrets set` never writes one key over the others it could not read.
    #[tokio::test(flavor = "current_thread")]
    async fn only_a_secret_without_a_value_reads_as_none() {
        let stored = mock!(Client::get_secret_value)
            .then_output(|| GetSecretValueOutput::builder().secret_string("{}").build());
        let absent = mock!(Client::get_secret_value).then_error(|| {
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("no current version")
                    .build(),
            )
        });
        let failing = mock!(Client::get_secret_value).then_error(|| {
            GetSecretValueError::InternalServiceError(
                InternalServiceError::builder().message("down").build(),
            )
        });
        let client = mock_client!(
            aws_sdk_secretsmanager,
            RuleMode::Sequential,
            [&stored, &absent, &failing]
        );
        let source = SecretsManagerSource { client };
        assert_eq!(
            source.secret_string_if_any("keys").await.expect("read"),
            Some("{}".to_owned())
        );
        assert_eq!(
            source.secret_string_if_any("keys").await.expect("read"),
            None
        );
        assert!(source.secret_string_if_any("keys").await.is_err());
    }
}
