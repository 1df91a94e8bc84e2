//! `realty api token [--rotate]`: the market API's bearer token, from the stack's
//! ApiTokenSecret; `--rotate` writes a new random one first (the old one keeps working until
//! the authorizer reads the secret again and API Gateway's cached answers expire: 6 minutes
//! at most).

use anyhow::{Context as _, Result};
use rand::Rng;
use rand::distr::Alphanumeric;
use realty_aws::adapters::secrets::SecretsManagerSource;
use realty_model::ports::SecretSource;

use crate::target;

/// Characters of a token: as many as the stack generates.
const TOKEN_LEN: usize = 40;

pub async fn run(rotate: bool, stack: Option<&str>) -> Result<()> {
    let target = target::resolve(stack).await?;
    let secrets = SecretsManagerSource {
        client: aws_sdk_secretsmanager::Client::new(&target.sdk),
    };
    let id = &target.resources.api_token_secret;
    if rotate {
        let token: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(TOKEN_LEN)
            .map(char::from)
            .collect();
        secrets
            .put_secret_string(id, &token)
            .await
            .with_context(|| format!("writing secret {id}"))?;
        eprintln!(
            "new token stored in {id}; the old one stops working within 6 minutes on the deployed API, within one on `realty serve`"
        );
    }
    let token = secrets
        .secret_string(id)
        .await
        .with_context(|| format!("reading secret {id}"))?;
    println!("{}", token.trim());
    Ok(())
}
