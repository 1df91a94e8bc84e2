//! The AWS the end-to-end and Lambda parts talk to: which emulators, each started on its own.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::Utc;
use realty_infra::emulator::{self, EmulatorKind};
use realty_infra::provision::ProvisionOptions;
use realty_infra::template::Template;
use realty_model::config::StackResources;

use super::progress;

/// The emulators of the end-to-end part: those asked for (`--emulator`, in that order, once
/// each), else `REALTY_EMULATOR`'s, else LocalStack (where it can run) and moto side by side.
pub(super) fn emulators_to_run(
    root: &Path,
    requested: &[EmulatorKind],
) -> Result<Vec<EmulatorKind>> {
    let mut kinds: Vec<EmulatorKind> = Vec::new();
    for kind in requested {
        if !kinds.contains(kind) {
            kinds.push(emulator::choose(root, Some(*kind))?);
        }
    }
    if kinds.is_empty() {
        if let Some(kind) = EmulatorKind::from_env()? {
            kinds.push(emulator::choose(root, Some(kind))?);
        } else {
            kinds.push(emulator::choose(root, None)?);
            if !kinds.contains(&EmulatorKind::Moto) {
                kinds.push(EmulatorKind::Moto);
            }
        }
    }
    Ok(kinds)
}

/// The AWS a run talks to: the given endpoint (`AWS_ENDPOINT_URL`), or an emulator of its own
/// (LocalStack or moto), started now on a free port and stopped at the end, so earlier runs'
/// data never slows this one.
pub struct LocalAws {
    pub endpoint: String,
    /// The emulator started for the run (none for `AWS_ENDPOINT_URL`).
    pub kind: Option<EmulatorKind>,
    emulator: Option<emulator::Emulator>,
    pub sdk: aws_config::SdkConfig,
    pub template: Template,
    /// Makes each provisioned stack's prefix unique within the run.
    prefix: String,
}

impl LocalAws {
    pub(super) async fn start(
        root: &Path,
        endpoint: Option<String>,
        requested: Option<EmulatorKind>,
        out_dir: &Path,
    ) -> Result<Self> {
        let (endpoint, kind, emulator) = match endpoint {
            Some(endpoint) => (endpoint, None, None),
            None => {
                let kind = emulator::choose(root, requested)?;
                progress(&format!("starting a {kind} of the benchmark's own"));
                let started = emulator::Emulator::start_attached(
                    kind,
                    root,
                    &out_dir.join(format!("{}.log", kind.name())),
                )?;
                (started.endpoint.clone(), Some(kind), Some(started))
            }
        };
        let sdk = realty_aws::sdk::sdk_config(Some(&endpoint)).await;
        Ok(Self {
            endpoint,
            kind,
            emulator,
            sdk,
            template: Template::load(&root.join("template.yaml"))?,
            prefix: format!("bench-{}", Utc::now().format("%Y%m%d-%H%M%S")),
        })
    }

    /// Provisions template.yaml as the stack `<run prefix>-<name>`.
    pub async fn provision(
        &self,
        name: &str,
    ) -> Result<(realty_infra::provision::ProvisionedStack, StackResources)> {
        let stack = realty_infra::provision::provision(
            &self.sdk,
            &self.template,
            &ProvisionOptions {
                stack_name: format!("{}-{name}", self.prefix),
                parameters: BTreeMap::new(),
            },
        )
        .await
        .with_context(|| format!("provisioning template.yaml at {}", self.endpoint))?;
        let resources = StackResources::from_outputs(&stack.outputs)?;
        Ok((stack, resources))
    }

    /// A template parameter's default.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        self.template
            .parameters
            .get(name)?
            .default
            .as_ref()
            .and_then(realty_infra::template::scalar_to_string)
    }

    pub(super) fn stop(self) {
        if let Some(emulator) = self.emulator {
            emulator.stop();
        }
    }
}
