//! Secrets Manager behind [`SecretSource`]: the listing-API keys, read once per container
//! (and again while a source has none); written by `realty secrets set`.

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use realty_core::poller::ports::SecretSource;
use realty_core::ports::PortError;

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
            .map_err(|e| PortError::new("GetSecretValue", DisplayErrorContext(&e).to_string()))?;
        Ok(out.secret_string().unwrap_or_default().to_owned())
    }
}

impl SecretsManagerSource {
    /// Stores a new version of secret `id`.
    pub async fn put_secret_string(&self, id: &str, text: &str) -> Result<(), PortError> {
        self.client
            .put_secret_value()
            .secret_id(id)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| PortError::new("PutSecretValue", DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}
