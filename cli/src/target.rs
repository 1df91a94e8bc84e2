//! Which stack a command works on: the local one `realty up` recorded, or (with `--stack`)
//! one deployed in AWS.

use anyhow::{Context as _, Result, bail};
use aws_config::SdkConfig;
use realty_infra::{emulator, stack};
use realty_model::config::StackResources;

pub struct Target {
    pub sdk: SdkConfig,
    pub resources: StackResources,
    /// Where the stack is, for messages: an endpoint, or `AWS stack NAME`.
    pub description: String,
}

pub async fn resolve(stack_name: Option<&str>) -> Result<Target> {
    if let Some(name) = stack_name {
        if realty_aws::sdk::endpoint_from_env().is_some() {
            bail!("--stack reads a stack deployed in AWS; unset AWS_ENDPOINT_URL to use it");
        }
        let sdk = realty_aws::sdk::sdk_config(None).await;
        let outputs = stack::deployed_outputs(&sdk, name).await?;
        let resources =
            StackResources::from_outputs(&outputs).with_context(|| format!("stack {name}"))?;
        return Ok(Target {
            sdk,
            resources,
            description: format!("AWS stack {name}"),
        });
    }
    let root = emulator::project_root()?;
    let Some(local) = stack::read_state(&root)? else {
        bail!(
            "no local stack is running: start one with `realty up` (or name a deployed stack with --stack NAME)"
        );
    };
    let sdk = realty_aws::sdk::local_sdk_config(&local.endpoint, &local.stack.region).await;
    let resources = StackResources::from_outputs(&local.stack.outputs)?;
    Ok(Target {
        sdk,
        resources,
        description: local.endpoint,
    })
}
