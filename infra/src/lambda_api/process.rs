//! Process supervision: a function's `bootstrap` started with Lambda's environment against
//! its own Runtime API, watched for exit, read for peak memory, killed with what it started.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::environment::{ACCOUNT_ID, DEFAULT_REGION, function_name_of, lambda_env};
use super::{CompletedInvocation, LambdaApiError, RuntimeApi};

/// How often a wait checks whether the process has exited.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// Log lines quoted in an error.
const TAIL_LINES: usize = 20;

/// A function's `bootstrap` running against its own [`RuntimeApi`]. Dropping it (or
/// [`LambdaProcess::stop`]) kills the process and everything it started, and reaps it.
#[derive(Debug)]
pub struct LambdaProcess {
    // Declared first: the process is killed (in Drop) before the API goes away.
    child: Mutex<ChildState>,
    api: RuntimeApi,
    pid: u32,
    binary: PathBuf,
    log_path: PathBuf,
    /// Length of the log before this process started: error tails quote only its lines.
    log_start: u64,
}

#[derive(Debug)]
struct ChildState {
    child: Child,
    /// Set once the process is reaped (its pid may then belong to another process).
    exit: Option<String>,
}

impl LambdaProcess {
    /// Spawns `binary` with Lambda's environment and waits up to `timeout` for its first
    /// `next` request; returns it with its cold start (spawn → first `next`).
    ///
    /// The process does not inherit this one's environment (as on Lambda). It gets
    /// `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME` (the binary's directory name
    /// for `.../<name>/bootstrap`, else its file name), `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`
    /// ([`DEFAULT_MEMORY_MB`](super::environment::DEFAULT_MEMORY_MB)), `AWS_LAMBDA_FUNCTION_VERSION` (`$LATEST`),
    /// `AWS_LAMBDA_LOG_GROUP_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`,
    /// `AWS_LAMBDA_INITIALIZATION_TYPE` (`on-demand`), `AWS_REGION` and
    /// `AWS_DEFAULT_REGION` ([`DEFAULT_REGION`]), `LAMBDA_TASK_ROOT` (the binary's directory,
    /// also its working directory), `TZ` and `PATH`; then `extra_env`, which may override
    /// any of them and must bring what the function needs (credentials, endpoints, its own
    /// settings). Its stdout and stderr are appended to `log_path`.
    ///
    /// If this process dies without dropping the handle, the function goes on until its
    /// next request to the Runtime API, which is gone (lambda_runtime then ends the process).
    pub async fn start(
        binary: &Path,
        extra_env: &[(String, String)],
        log_path: &Path,
        timeout: Duration,
    ) -> Result<(Self, Duration), LambdaApiError> {
        let spawn_err = |source| LambdaApiError::Spawn {
            binary: binary.display().to_string(),
            source,
        };
        // Absolute, so the working directory below cannot change which file runs.
        let binary = std::fs::canonicalize(binary).map_err(spawn_err)?;
        let task_root = binary.parent().unwrap_or(Path::new("/")).to_path_buf();
        let extra = |name: &str| {
            extra_env
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let function_name = extra("AWS_LAMBDA_FUNCTION_NAME")
            .map_or_else(|| function_name_of(&binary), str::to_owned);
        let region = extra("AWS_REGION").unwrap_or(DEFAULT_REGION);
        let api = RuntimeApi::start(&format!(
            "arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        ))
        .await?;
        let (log, log_start) = open_log(log_path)?;
        let log_err = log.try_clone().map_err(|source| LambdaApiError::Log {
            path: log_path.display().to_string(),
            source,
        })?;

        let mut cmd = Command::new(&binary);
        cmd.env_clear()
            .envs(lambda_env(&function_name, region, api.addr(), &task_root))
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .current_dir(&task_root)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own group, so stopping it also stops anything it started.
            .process_group(0);
        // No `pre_exec` (it had set a death signal): with one, std must fork this process,
        // copying its page tables, and the exec then tears the copy down, all counted in the
        // cold start: 20-30 ms of it in `realty bench`, which holds its generated events,
        // about 55 ms for a parent of 1 GB. Without, std uses posix_spawn (no copy).
        let spawned = Instant::now();
        let child = cmd.spawn().map_err(spawn_err)?;
        let process = Self {
            pid: child.id(),
            child: Mutex::new(ChildState { child, exit: None }),
            api,
            binary,
            log_path: log_path.to_path_buf(),
            log_start,
        };
        match process.wait_ready(timeout).await {
            Ok(ready) => Ok((process, ready.saturating_duration_since(spawned))),
            Err(reason) => {
                process.kill_and_reap();
                Err(LambdaApiError::NotReady {
                    binary: process.binary.display().to_string(),
                    reason,
                    log: process.log_path.display().to_string(),
                    tail: process.log_tail(),
                })
            }
        }
    }

    /// See [`RuntimeApi::allow_events_up_to`].
    pub fn allow_events_up_to(&self, bytes: usize) {
        self.api.allow_events_up_to(bytes);
    }

    /// Invokes the function with `event` and waits up to `timeout` for its answer. Fails
    /// early if the process exits meanwhile.
    pub async fn invoke(
        &self,
        event: Value,
        timeout: Duration,
    ) -> Result<CompletedInvocation, LambdaApiError> {
        let mut call = pin!(self.api.invoke(event, timeout));
        let mut poll = tokio::time::interval(EXIT_POLL);
        loop {
            tokio::select! {
                biased;
                result = &mut call => return result,
                _ = poll.tick() => {
                    if let Some(status) = self.exit_status() {
                        return Err(LambdaApiError::Exited {
                            binary: self.binary.display().to_string(),
                            status,
                            log: self.log_path.display().to_string(),
                            tail: self.log_tail(),
                        });
                    }
                }
            }
        }
    }

    /// Peak resident set size so far (`VmHWM`), while the process runs.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        // Under the lock: the process cannot be reaped (and its pid reused) while we read.
        let state = self.lock_child();
        if state.exit.is_some() {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        vm_hwm_bytes(&status)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Kills the process (and its process group) and reaps it; dropping does the same.
    pub fn stop(self) {
        drop(self);
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        let mut lifecycle = self.api.lifecycle();
        loop {
            {
                let now = lifecycle.borrow_and_update();
                if let Some(error) = &now.init_error {
                    return Err(format!("it reported an init error: {error}"));
                }
                if let Some(ready) = now.first_next {
                    return Ok(ready);
                }
            }
            if let Some(status) = self.exit_status() {
                return Err(format!("it exited ({status}) before asking for an event"));
            }
            if Instant::now() >= deadline {
                return Err(format!("it did not ask for an event within {timeout:?}"));
            }
            // Woken by `next` or `init/error`; the timeout is for noticing an exit.
            let _ = tokio::time::timeout(EXIT_POLL, lifecycle.changed()).await;
        }
    }

    /// How the process ended, if it has (it is then reaped); `None` while it runs.
    fn exit_status(&self) -> Option<String> {
        let mut state = self.lock_child();
        if let Some(exit) = &state.exit {
            return Some(exit.clone());
        }
        if has_exited(self.pid) {
            return Some(reap(&mut state));
        }
        None
    }

    fn kill_and_reap(&self) {
        reap(&mut self.lock_child());
    }

    fn lock_child(&self) -> MutexGuard<'_, ChildState> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log_tail(&self) -> String {
        let mut text = Vec::new();
        let read = File::open(&self.log_path).and_then(|mut file| {
            file.seek(SeekFrom::Start(self.log_start))?;
            file.read_to_end(&mut text)
        });
        if let Err(e) = read {
            return format!("(cannot read the log: {e})");
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        if tail.is_empty() {
            "(nothing)".into()
        } else {
            tail
        }
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Kills the process group and reaps its leader, once; returns how it ended.
fn reap(state: &mut ChildState) -> String {
    if let Some(exit) = &state.exit {
        return exit.clone();
    }
    // Until the leader is reaped its pid (the group id) cannot be reused, so this signal
    // reaches only what the function started.
    if let Ok(pgid) = i32::try_from(state.child.id()) {
        // SAFETY: plain kill(2) on the process group we created at spawn.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    // Returns at once: the process was killed, or had exited already.
    let exit = match state.child.wait() {
        Ok(status) => status.to_string(),
        Err(e) => format!("exit status unknown: {e}"),
    };
    state.exit = Some(exit.clone());
    exit
}

/// Whether our child `pid` has exited, without reaping it (so its pid stays ours).
fn has_exited(pid: u32) -> bool {
    // SAFETY: siginfo_t is plain data, valid zeroed; waitid with WNOWAIT|WNOHANG only
    // reports the state of our own child and leaves it waitable.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // An error (no such child) means it is gone all the same.
        rc != 0 || info.si_pid() != 0
    }
}

/// Opens the log for appending; returns it with its current length.
fn open_log(path: &Path) -> Result<(File, u64), LambdaApiError> {
    let log_err = |source| LambdaApiError::Log {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(log_err)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(log_err)?;
    let start = file.metadata().map_err(log_err)?.len();
    Ok((file, start))
}

/// `VmHWM:   12345 kB` → bytes.
pub(super) fn vm_hwm_bytes(proc_status: &str) -> Option<u64> {
    let value = proc_status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?;
    let kb: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kb.checked_mul(1024)
}
