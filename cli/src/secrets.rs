//! `realty secrets set`: a listing-API key into the stack's secret. The key is read from
//! stdin when it is piped, else from a hidden prompt; never from the command line, where
//! shell history and `ps` would keep it. RESO takes a bearer token or OAuth2 client
//! credentials as JSON (`{"token_url", "client_id", "client_secret", "scope"?}`), checked
//! before they are stored and never printed.

use std::io::{IsTerminal, Read};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use realty_aws::adapters::secrets::SecretsManagerSource;
use realty_model::markets::SourceKind;
use realty_poller::config::{MAX_API_KEY_BYTES, with_key};

use crate::target;

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Set one source's key (read from stdin or a prompt) in the stack's API-key secret.
    /// RESO: a bearer token, or client credentials as JSON on stdin
    /// (`{"token_url": ..., "client_id": ..., "client_secret": ..., "scope": ...}`).
    Set {
        /// zillow, realtor or reso.
        #[arg(long)]
        source: SourceKind,
        /// A stack deployed in AWS instead of the local one.
        #[arg(long)]
        stack: Option<String>,
    },
}

pub async fn run(command: SecretsCommand) -> Result<()> {
    let SecretsCommand::Set { source, stack } = command;
    let key = read_key(source)?;
    let target = target::resolve(stack.as_deref()).await?;
    let secrets = SecretsManagerSource {
        client: aws_sdk_secretsmanager::Client::new(&target.sdk),
    };
    let id = &target.resources.api_key_secret;
    // Only a secret with no value yet is empty: read as empty on any failure, the write
    // below would drop the other sources' keys.
    let current = secrets
        .secret_string_if_any(id)
        .await
        .with_context(|| {
            format!(
                "reading secret {id} to keep its other keys (on AWS only the poller's role and \
                 the stack's ListingKeysAdminArn may read it: docs/deploy.md, section 4)"
            )
        })?
        .unwrap_or_default();
    let updated = with_key(&current, source, &key).map_err(anyhow::Error::msg)?;
    secrets
        .put_secret_string(id, &updated)
        .await
        .with_context(|| format!("writing secret {id}"))?;
    println!(
        "{source} key stored in {id} ({}); the next poll run uses it",
        target.description
    );
    Ok(())
}

fn read_key(source: SourceKind) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let what = if source == SourceKind::Reso {
            "reso bearer token, or client credentials JSON on one line"
        } else {
            source.as_str()
        };
        return rpassword::prompt_password(format!("{what} (not shown): "))
            .context("reading the key from the terminal");
    }
    let mut key = String::new();
    stdin
        .take(MAX_API_KEY_BYTES as u64 + 2)
        .read_to_string(&mut key)
        .context("reading the key from stdin")?;
    if key.trim().is_empty() {
        bail!("no key on stdin: `printf %s \"$KEY\" | realty secrets set --source {source}`");
    }
    Ok(key)
}
