//! Support for the integration tests: one local AWS per test run, and a fresh stack
//! (resource-name prefix) per test, so tests run in parallel without meeting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::SdkConfig;
use realty_infra::emulator::{self, Emulator};
use realty_infra::provision::{self, ProvisionOptions, ProvisionedStack};
use realty_infra::template::Template;

/// The AWS endpoint of this test run: a moto server started for it (stopped when this is
/// dropped, or by the kernel if the run dies), or `AWS_ENDPOINT_URL` when set (LocalStack).
pub struct TestAws {
    pub endpoint: String,
    pub project_root: PathBuf,
    emulator: Option<Emulator>,
    next_stack: AtomicUsize,
}

impl TestAws {
    pub fn start() -> Result<Self, String> {
        let project_root = emulator::project_root().map_err(|e| e.to_string())?;
        if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|v| !v.is_empty())
        {
            return Ok(Self {
                endpoint,
                project_root,
                emulator: None,
                next_stack: AtomicUsize::new(0),
            });
        }
        let venv = emulator::ensure_venv(&project_root).map_err(|e| e.to_string())?;
        let log = project_root.join(format!("target/realty/it-moto-{}.log", std::process::id()));
        let moto = Emulator::start_attached(&venv, &log).map_err(|e| e.to_string())?;
        Ok(Self {
            endpoint: moto.endpoint.clone(),
            project_root,
            emulator: Some(moto),
            next_stack: AtomicUsize::new(0),
        })
    }

    /// Stops the emulator this run started.
    pub fn stop(self) {
        if let Some(moto) = self.emulator {
            moto.stop();
        }
    }

    pub async fn sdk_config(&self) -> SdkConfig {
        realty_shared::aws::sdk_config(Some(&self.endpoint)).await
    }

    pub fn template(&self) -> Template {
        Template::load(&self.project_root.join("template.yaml")).expect("template.yaml parses")
    }

    /// A stack name no other test of any run against this endpoint uses.
    pub fn unique_stack_name(&self) -> String {
        let n = self.next_stack.fetch_add(1, Ordering::Relaxed);
        format!("it{}-{n}", std::process::id())
    }

    /// Provisions template.yaml under a fresh stack name.
    pub async fn provision(&self, parameters: &[(&str, &str)]) -> ProvisionedStack {
        let name = self.unique_stack_name();
        self.provision_as(&name, parameters).await
    }

    pub async fn provision_as(
        &self,
        stack_name: &str,
        parameters: &[(&str, &str)],
    ) -> ProvisionedStack {
        let options = ProvisionOptions {
            stack_name: stack_name.to_owned(),
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        };
        provision::provision(&self.sdk_config().await, &self.template(), &options)
            .await
            .unwrap_or_else(|e| panic!("provisioning {stack_name}: {e}"))
    }
}

/// Names what failed, with the whole AWS error chain (an SDK error alone prints as
/// "service error").
pub trait Explain<T> {
    fn explain(self, what: &str) -> Result<T, libtest_mimic::Failed>;
}

impl<T, E: std::error::Error> Explain<T> for Result<T, E> {
    fn explain(self, what: &str) -> Result<T, libtest_mimic::Failed> {
        self.map_err(|e| format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)).into())
    }
}
