//! Where a stack's resources are: the local AWS that `realty up` started (LocalStack or
//! moto), an endpoint named by `AWS_ENDPOINT_URL`, or a stack deployed to AWS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::emulator::{self, Emulator, EmulatorError, EmulatorKind};
use crate::provision::{self, ProvisionError, ProvisionOptions, ProvisionedStack};
use crate::template::{Template, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("cannot read the stack {stack} from CloudFormation: {message}")]
    CloudFormation { stack: String, message: String },
    #[error("local AWS state {path}: {reason}")]
    State { path: String, reason: String },
}

/// The local AWS as `realty up` left it: recorded so `realty down` (and every later
/// command) finds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalAws {
    /// The emulator `realty up` started (`localstack` or `moto`); none for an endpoint given
    /// by `AWS_ENDPOINT_URL`.
    #[serde(default)]
    pub emulator: Option<EmulatorKind>,
    pub endpoint: String,
    /// The emulator's process, when `realty up` started it...
    pub pid: Option<u32>,
    /// ...and when that process started ([`emulator::process_start`]): `realty down` signals
    /// the pid only while it still names that process, never one that reused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_started: Option<u64>,
    pub log_path: Option<PathBuf>,
    /// LocalStack's instance folder (its files, and the marker of the processes it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_dir: Option<PathBuf>,
    #[serde(flatten)]
    pub stack: ProvisionedStack,
}

/// What `realty up` brings up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub project_root: PathBuf,
    /// An endpoint to provision into instead of starting an emulator (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// The emulator asked for (`--emulator`); none lets [`emulator::choose`] pick.
    pub emulator: Option<EmulatorKind>,
    pub provision: ProvisionOptions,
}

/// Where `realty up` keeps its state and the emulator's log: `REALTY_STATE_DIR`, else
/// `target/realty` in the checkout.
pub fn state_dir(project_root: &Path) -> PathBuf {
    match std::env::var_os("REALTY_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => project_root.join("target/realty"),
    }
}

/// The file recording the running local AWS.
pub fn state_path(project_root: &Path) -> PathBuf {
    state_dir(project_root).join("local-aws.json")
}

pub fn read_state(project_root: &Path) -> Result<Option<LocalAws>, StackError> {
    let path = state_path(project_root);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StackError::State {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StackError::State {
            path: path.display().to_string(),
            reason: format!("unreadable ({e}); delete it and run realty up again"),
        })
}

fn write_state(project_root: &Path, state: &LocalAws) -> Result<(), StackError> {
    let path = state_path(project_root);
    let err = |reason: String| StackError::State {
        path: path.display().to_string(),
        reason,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(state).map_err(|e| err(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| err(e.to_string()))
}

/// An emulator `up` started and has not recorded yet (while it warms up and the stack is
/// provisioned), in a file of its own: an `up` cut short (Ctrl-C, a crash) left an emulator
/// nothing named, which `realty down` could not find. The next `up` or `down` stops it.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    pid: u32,
    pid_started: Option<u64>,
    instance_dir: Option<PathBuf>,
}

fn pending_path(project_root: &Path) -> PathBuf {
    state_dir(project_root).join("pending-emulator.json")
}

/// Records the emulator `up` just started (best effort: a record that cannot be written
/// leaves things as they were before it existed).
fn note_pending(project_root: &Path, pid: u32, instance_dir: Option<&Path>) {
    let pending = Pending {
        pid,
        pid_started: emulator::process_start(pid),
        instance_dir: instance_dir.map(Path::to_path_buf),
    };
    if let Ok(text) = serde_json::to_string(&pending) {
        let path = pending_path(project_root);
        if let Err(e) = std::fs::write(&path, text) {
            tracing::warn!(path = %path.display(), error = %e, "the starting emulator is not recorded");
        }
    }
}

/// Stops the emulator an `up` cut short left (if it still runs) and forgets it.
fn stop_pending(project_root: &Path) {
    let path = pending_path(project_root);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let recorded = read_state(project_root).ok().flatten().and_then(|s| s.pid);
    if let Ok(pending) = serde_json::from_str::<Pending>(&text)
        && recorded != Some(pending.pid)
        && emulator::is_same_process(pending.pid, pending.pid_started)
    {
        tracing::warn!(
            pid = pending.pid,
            "stopping an emulator a `realty up` cut short left running"
        );
        emulator::stop_emulator(
            pending.pid,
            pending.instance_dir.as_deref(),
            emulator::STOP_GRACE,
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// Held while `up` or `down` runs: two at once each started an emulator, and the record
/// of one replaced the other's, which nothing then named.
struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    fn take(project_root: &Path) -> Result<Self, StackError> {
        let dir = state_dir(project_root);
        let path = dir.join("up.lock");
        let err = |reason: String| StackError::State {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| err(e.to_string()))?;
        // SAFETY: flock on a descriptor this struct owns; released when it is closed.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
            return Err(err(std::io::Error::last_os_error().to_string()));
        }
        Ok(Self { _file: file })
    }
}

/// Starts the local AWS (or reuses the running one, or uses `options.endpoint`), provisions
/// template.yaml into it and records the result.
pub async fn up(options: &UpOptions) -> Result<LocalAws, StackError> {
    let root = &options.project_root;
    let template = Template::load(&root.join("template.yaml"))?;
    let _lock = StateLock::take(root)?;
    stop_pending(root);
    let previous = read_state(root)?;
    // An emulator started by this call is stopped again if provisioning fails: no record
    // names it yet, so `realty down` could not find it and each retry left one more running.
    let (running, started_now) = find_or_start(options, previous)?;
    let config = realty_aws::sdk::sdk_config(Some(&running.endpoint)).await;
    let stack = match provision::provision(&config, &template, &options.provision).await {
        Ok(stack) => stack,
        Err(e) => {
            if started_now && let Some(pid) = running.pid {
                stop_started(root, pid, running.instance_dir.as_deref());
            }
            return Err(e.into());
        }
    };
    let Running {
        emulator,
        endpoint,
        pid,
        pid_started,
        log_path,
        instance_dir,
    } = running;
    let state = LocalAws {
        emulator,
        endpoint,
        pid,
        pid_started,
        log_path,
        instance_dir,
        stack,
    };
    write_state(root, &state)?;
    // Named by the record now.
    let _ = std::fs::remove_file(pending_path(root));
    Ok(state)
}

/// The emulator `up` provisions into: the endpoint given, the one a record names while it
/// runs, or one started now (the flag says so).
fn find_or_start(
    options: &UpOptions,
    previous: Option<LocalAws>,
) -> Result<(Running, bool), StackError> {
    let root = &options.project_root;
    let is_running = |prev: &LocalAws| {
        prev.pid
            .is_some_and(|pid| emulator::is_same_process(pid, prev.pid_started))
    };
    Ok(match (&options.endpoint, previous) {
        // An emulator `up` started is running: reused when the endpoint given is its own (the
        // `aws --endpoint-url` line `up` prints invites exporting it), and not orphaned by a
        // record of another endpoint replacing its own.
        (Some(endpoint), Some(prev)) if is_running(&prev) => {
            (reuse_at_endpoint(root, endpoint, prev)?, false)
        }
        (Some(endpoint), _) => (Running::at(endpoint), false),
        (None, Some(prev)) if is_running(&prev) && answers(&prev.endpoint) => {
            (reuse_recorded(root, options, prev)?, false)
        }
        (None, previous) => {
            // One recorded but not answering is stopped first, not left running orphaned
            // when its record is replaced.
            if let Some(prev) = previous {
                stop_recorded(root, &prev)?;
            }
            (start_detached(root, options)?, true)
        }
    })
}

/// The recorded emulator, when `endpoint` is its own.
fn reuse_at_endpoint(root: &Path, endpoint: &str, prev: LocalAws) -> Result<Running, StackError> {
    if endpoint.trim_end_matches('/') != prev.endpoint.trim_end_matches('/') {
        return Err(StackError::State {
            path: state_path(root).display().to_string(),
            reason: format!(
                "the local AWS `realty up` started runs at {}: stop it with `realty down` \
                 before using {endpoint} (AWS_ENDPOINT_URL)",
                prev.endpoint
            ),
        });
    }
    Ok(Running::recorded(prev))
}

/// The recorded emulator, when it is the kind asked for (or none was).
fn reuse_recorded(root: &Path, options: &UpOptions, prev: LocalAws) -> Result<Running, StackError> {
    let wanted = match options.emulator {
        Some(kind) => Some(kind),
        None => EmulatorKind::from_env()?,
    };
    if let (Some(wanted), Some(running)) = (wanted, prev.emulator)
        && wanted != running
    {
        return Err(StackError::State {
            path: state_path(root).display().to_string(),
            reason: format!(
                "{running} is running at {}; stop it with `realty down` to start {wanted}",
                prev.endpoint
            ),
        });
    }
    Ok(Running::recorded(prev))
}

/// A new emulator, detached from this process, noted as pending until the record names it.
fn start_detached(root: &Path, options: &UpOptions) -> Result<Running, StackError> {
    let kind = emulator::choose(root, options.emulator)?;
    let log_path = state_dir(root).join(format!("{}.log", kind.name()));
    let started = Emulator::start_detached(kind, root, &log_path, &|pid, dir| {
        note_pending(root, pid, dir)
    })?;
    Ok(Running {
        emulator: Some(kind),
        endpoint: started.endpoint.clone(),
        pid: Some(started.pid),
        pid_started: emulator::process_start(started.pid),
        log_path: Some(log_path),
        instance_dir: started.instance_dir.clone(),
    })
}

/// Stops the emulator this `up` started for a provisioning that failed.
fn stop_started(root: &Path, pid: u32, instance_dir: Option<&Path>) {
    if emulator::stop_emulator(pid, instance_dir, emulator::STOP_GRACE) {
        let _ = std::fs::remove_file(pending_path(root));
    } else {
        tracing::warn!(
            pid,
            "the emulator started for the failed provisioning did not stop"
        );
    }
}

/// The emulator serving the stack, as `up` found or started it.
struct Running {
    emulator: Option<EmulatorKind>,
    endpoint: String,
    pid: Option<u32>,
    pid_started: Option<u64>,
    log_path: Option<PathBuf>,
    instance_dir: Option<PathBuf>,
}

impl Running {
    /// An emulator at `endpoint` this project did not start.
    fn at(endpoint: &str) -> Self {
        Self {
            emulator: None,
            endpoint: endpoint.to_owned(),
            pid: None,
            pid_started: None,
            log_path: None,
            instance_dir: None,
        }
    }

    /// The emulator a record names, as it runs still.
    fn recorded(state: LocalAws) -> Self {
        Self {
            emulator: state.emulator,
            endpoint: state.endpoint,
            pid: state.pid,
            pid_started: state.pid_started,
            log_path: state.log_path,
            instance_dir: state.instance_dir,
        }
    }
}

fn answers(endpoint: &str) -> bool {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .is_some_and(emulator::answers_http)
}

/// What `realty down` did.
#[derive(Debug, Clone, Serialize)]
pub struct Down {
    pub stopped_pid: Option<u32>,
    pub endpoint: Option<String>,
}

/// Stops the emulator a record names, with every process it started: its process group
/// while the recorded pid still names the process `realty up` started, and the processes
/// marked as its LocalStack instance's in any case. Returns the pid stopped.
fn stop_recorded(project_root: &Path, state: &LocalAws) -> Result<Option<u32>, StackError> {
    let Some(pid) = state.pid else {
        return Ok(None);
    };
    let ours = emulator::is_same_process(pid, state.pid_started);
    let leftovers = state
        .instance_dir
        .as_deref()
        .is_some_and(|dir| !crate::emulator::localstack::instance_processes(dir).is_empty());
    let stopped = match (ours, leftovers) {
        (false, false) => return Ok(None),
        (true, _) => {
            emulator::stop_emulator(pid, state.instance_dir.as_deref(), emulator::STOP_GRACE)
        }
        // The pid now names another process (or none): only the instance's own are signalled.
        (false, true) => state
            .instance_dir
            .as_deref()
            .is_none_or(|dir| emulator::stop_instance(dir, emulator::STOP_GRACE)),
    };
    if !stopped {
        return Err(StackError::State {
            path: state_path(project_root).display().to_string(),
            reason: format!("emulator process {pid} did not stop"),
        });
    }
    Ok(Some(pid))
}

/// Stops the emulator `realty up` started (with every process it started) and forgets the
/// local stack.
pub fn down(project_root: &Path) -> Result<Down, StackError> {
    let _lock = StateLock::take(project_root)?;
    stop_pending(project_root);
    let Some(state) = read_state(project_root)? else {
        return Ok(Down {
            stopped_pid: None,
            endpoint: None,
        });
    };
    let stopped_pid = stop_recorded(project_root, &state)?;
    let path = state_path(project_root);
    std::fs::remove_file(&path).map_err(|e| StackError::State {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Down {
        stopped_pid,
        endpoint: Some(state.endpoint),
    })
}

/// The Outputs of a stack deployed to AWS, read from CloudFormation.
pub async fn deployed_outputs(
    config: &aws_config::SdkConfig,
    stack_name: &str,
) -> Result<BTreeMap<String, String>, StackError> {
    let stack = describe_stack(config, stack_name).await?;
    Ok(stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect())
}

/// The parameter values a stack deployed to AWS runs with (`sam deploy
/// --parameter-overrides`, and the defaults it was deployed with), read from CloudFormation.
pub async fn deployed_parameters(
    config: &aws_config::SdkConfig,
    stack_name: &str,
) -> Result<BTreeMap<String, String>, StackError> {
    let stack = describe_stack(config, stack_name).await?;
    Ok(stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.resolved_value().or(p.parameter_value())?.to_owned(),
            ))
        })
        .collect())
}

async fn describe_stack(
    config: &aws_config::SdkConfig,
    stack_name: &str,
) -> Result<aws_sdk_cloudformation::types::Stack, StackError> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let out = cfn
        .describe_stacks()
        .stack_name(stack_name)
        .send()
        .await
        .map_err(|e| StackError::CloudFormation {
            stack: stack_name.to_owned(),
            message: realty_aws::sdk::error_line(&e),
        })?;
    out.stacks()
        .first()
        .cloned()
        .ok_or_else(|| StackError::CloudFormation {
            stack: stack_name.to_owned(),
            message: "no such stack".into(),
        })
}
