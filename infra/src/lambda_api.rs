//! A local Lambda Runtime API (2018-06-01): runs a function's real `bootstrap` binary as a
//! child process, measures its cold start, invokes it with events and reads its peak memory.
//!
//! [`RuntimeApi`] is the HTTP side, as much of it as the `lambda_runtime` crate uses: the
//! function long-polls `GET /runtime/invocation/next`, answers each event with
//! `POST /runtime/invocation/{id}/response` or `.../{id}/error`, and may report a failed start
//! with `POST /runtime/init/error`. [`LambdaProcess`] starts a binary against it with the
//! environment Lambda gives a function (see [`LambdaProcess::start`]).
//!
//! **Cold start** here is the time from spawning the process to its first `next` request:
//! Lambda's Init phase (the runtime starting, reading configuration, building SDK and HTTP
//! clients, whatever `main` does before it polls). It leaves out what comes before Init on
//! Lambda: downloading and unpacking the deployment package and starting the Firecracker
//! micro-VM. This machine is not Lambda's either (there, CPU scales with the memory setting),
//! so compare these numbers with each other rather than with CloudWatch's `Init Duration`.
//!
//! **Peak memory** is the process's `VmHWM` (peak resident set) from `/proc`; Lambda's
//! `Max Memory Used` counts the whole sandbox, so it reads somewhat higher.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::runner::MAX_INVOKE_PAYLOAD_BYTES;

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` unless the caller's environment sets it.
pub const DEFAULT_MEMORY_MB: u32 = 1024;
/// `AWS_REGION` unless the caller's environment sets it.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The account in the function ARN handed to the function.
const ACCOUNT_ID: &str = "000000000000";
/// Lambda's `PATH` for OS-only runtimes.
const LAMBDA_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/opt/bin";
/// How often a wait checks whether the process has exited.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// Log lines quoted in an error.
const TAIL_LINES: usize = 20;

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const RESPONSE_PATH: &str = "/2018-06-01/runtime/invocation/{id}/response";
const ERROR_PATH: &str = "/2018-06-01/runtime/invocation/{id}/error";
const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";
const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";

#[derive(Debug, thiserror::Error)]
pub enum LambdaApiError {
    #[error("cannot start the local Lambda Runtime API: {0}")]
    Bind(std::io::Error),
    #[error("cannot open the function log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("{binary} did not become ready: {reason}; its log ({log}) ends with:\n{tail}")]
    NotReady {
        binary: String,
        reason: String,
        log: String,
        tail: String,
    },
    #[error("{binary} exited during an invocation ({status}); its log ({log}) ends with:\n{tail}")]
    Exited {
        binary: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error(
        "the event is {bytes} bytes, over the limit of {limit} (Lambda's is {MAX_INVOKE_PAYLOAD_BYTES})"
    )]
    EventTooLarge { bytes: usize, limit: usize },
    #[error("invocation {request_id} got no response within {timeout:?} ({stage})")]
    Timeout {
        request_id: String,
        timeout: Duration,
        /// Whether the function had fetched the event or never asked for it.
        stage: &'static str,
    },
    #[error("the response to invocation {request_id} is not JSON: {reason}")]
    BadResponse { request_id: String, reason: String },
    #[error("the local Lambda Runtime API has shut down")]
    Closed,
}

/// An error the function reported (`.../error`, or `init/error` at start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {error_message}")]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

/// One completed invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// The function's JSON response, or the error it reported.
    pub result: Result<Value, FunctionError>,
    /// From handing the event out (the answer to `next`) to the function's response: the
    /// handler plus the runtime's own work, without time spent waiting for `next`.
    pub duration: Duration,
}

/// The local Runtime API server, on 127.0.0.1 and a free port. It serves one function
/// process (one invocation at a time, as Lambda gives one sandbox); it stops on drop.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    function_arn: String,
    queues: Mutex<Queues>,
    /// Wakes a `next` request waiting for an event (all of them on shutdown).
    wake: Notify,
    closed: AtomicBool,
    lifecycle: watch::Sender<Lifecycle>,
    request_counter: AtomicU64,
    max_event_bytes: AtomicUsize,
}

#[derive(Debug, Default)]
struct Queues {
    queued: VecDeque<Queued>,
    in_flight: HashMap<String, InFlight>,
}

#[derive(Debug)]
struct Queued {
    handout: Handout,
    done: oneshot::Sender<Completion>,
}

/// What `next` answers with.
#[derive(Debug)]
struct Handout {
    request_id: String,
    trace_id: String,
    body: Bytes,
    deadline_ms: u64,
}

#[derive(Debug)]
struct InFlight {
    handed_out: Instant,
    done: oneshot::Sender<Completion>,
}

#[derive(Debug)]
struct Completion {
    handed_out: Instant,
    completed: Instant,
    /// `Err`: the response body could not be read as JSON.
    result: Result<Result<Value, FunctionError>, String>,
}

#[derive(Debug, Clone, Default)]
struct Lifecycle {
    first_next: Option<Instant>,
    init_error: Option<FunctionError>,
}

impl RuntimeApi {
    /// Binds a free loopback port and serves; `function_arn` goes to the function in
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub async fn start(function_arn: &str) -> Result<Self, LambdaApiError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(LambdaApiError::Bind)?;
        let addr = listener.local_addr().map_err(LambdaApiError::Bind)?;
        let shared = Arc::new(Shared {
            function_arn: function_arn.to_owned(),
            queues: Mutex::default(),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            lifecycle: watch::Sender::new(Lifecycle::default()),
            request_counter: AtomicU64::new(0),
            max_event_bytes: AtomicUsize::new(MAX_INVOKE_PAYLOAD_BYTES),
        });
        let router = Router::new()
            .route(NEXT_PATH, get(next))
            .route(RESPONSE_PATH, post(response))
            .route(ERROR_PATH, post(error))
            .route(INIT_ERROR_PATH, post(init_error))
            // Oversized responses get Lambda's error from the handler rather than a 413 the
            // runtime only logs, which would leave the invocation waiting for its timeout.
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "local Lambda Runtime API stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API` (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts events up to `bytes` instead of Lambda's 6 MB: to measure a function on a
    /// batch Lambda would have split, as an upper bound.
    pub fn allow_events_up_to(&self, bytes: usize) {
        self.shared.max_event_bytes.store(bytes, Ordering::Relaxed);
    }

    /// When the first `GET .../invocation/next` arrived: the function is initialised.
    pub fn first_next_at(&self) -> Option<Instant> {
        self.shared.lifecycle.borrow().first_next
    }

    /// What the function posted to `init/error`, if anything.
    pub fn init_error(&self) -> Option<FunctionError> {
        self.shared.lifecycle.borrow().init_error.clone()
    }

    /// Queues `event` for the function and waits for its response or error, up to `timeout`
    /// (also the deadline the function is told). A timed-out event is never handed out later.
    pub async fn invoke(
        &self,
        event: Value,
        timeout: Duration,
    ) -> Result<Invocation, LambdaApiError> {
        let body = Bytes::from(event.to_string());
        let limit = self.shared.max_event_bytes.load(Ordering::Relaxed);
        if body.len() > limit {
            return Err(LambdaApiError::EventTooLarge {
                bytes: body.len(),
                limit,
            });
        }
        let (request_id, trace_id) = self.shared.new_ids();
        let (done, completion) = oneshot::channel();
        let deadline_ms = epoch_ms(SystemTime::now() + timeout);
        self.shared.lock().queued.push_back(Queued {
            handout: Handout {
                request_id: request_id.clone(),
                trace_id,
                body,
                deadline_ms,
            },
            done,
        });
        self.shared.wake.notify_one();
        // Dropped on every way out, including a caller that gives up on this future.
        let _forget = Forget {
            shared: &self.shared,
            request_id: request_id.clone(),
        };
        match tokio::time::timeout(timeout, completion).await {
            Ok(Ok(completion)) => match completion.result {
                Ok(result) => Ok(Invocation {
                    request_id,
                    result,
                    duration: completion
                        .completed
                        .saturating_duration_since(completion.handed_out),
                }),
                Err(reason) => Err(LambdaApiError::BadResponse { request_id, reason }),
            },
            Ok(Err(_)) => Err(LambdaApiError::Closed),
            Err(_) => {
                let fetched = self.shared.lock().in_flight.contains_key(&request_id);
                let stage = if fetched {
                    "the function had fetched it"
                } else {
                    "the function never asked for it"
                };
                Err(LambdaApiError::Timeout {
                    request_id,
                    timeout,
                    stage,
                })
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Long-polls still waiting get 410 Gone instead of hanging on.
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_waiters();
        self.task.abort();
    }
}

/// Removes an invocation that is over (or abandoned) from the queues.
struct Forget<'a> {
    shared: &'a Shared,
    request_id: String,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut queues = self.shared.lock();
        queues
            .queued
            .retain(|q| q.handout.request_id != self.request_id);
        queues.in_flight.remove(&self.request_id);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // The maps stay consistent even if a holder panicked: every change is one call.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request id (UUID-shaped, unique per server and distinct across runs in one log)
    /// and an X-Ray trace header to go with it.
    fn new_ids(&self) -> (String, String) {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        let secs = (epoch_ms(SystemTime::now()) / 1000) & 0xffff_ffff;
        (
            format!("{secs:08x}-0000-4000-8000-{n:012x}"),
            format!("Root=1-{secs:08x}-{n:024x};Parent={n:016x};Sampled=0"),
        )
    }

    /// Moves the oldest event whose caller still waits to in-flight.
    fn take_next(&self) -> Option<Handout> {
        let mut queues = self.lock();
        while let Some(queued) = queues.queued.pop_front() {
            if queued.done.is_closed() {
                continue;
            }
            let Queued { handout, done } = queued;
            let handed_out = Instant::now();
            queues
                .in_flight
                .insert(handout.request_id.clone(), InFlight { handed_out, done });
            return Some(handout);
        }
        None
    }

    fn complete(
        &self,
        request_id: &str,
        result: Result<Result<Value, FunctionError>, String>,
    ) -> Response {
        let completed = Instant::now();
        let Some(in_flight) = self.lock().in_flight.remove(request_id) else {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown or finished invocation {request_id}"),
            )
                .into_response();
        };
        // The caller may have given up already; then nobody wants the result.
        let _ = in_flight.done.send(Completion {
            handed_out: in_flight.handed_out,
            completed,
            result,
        });
        StatusCode::ACCEPTED.into_response()
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let now = Instant::now();
    shared.lifecycle.send_if_modified(|lifecycle| {
        let first = lifecycle.first_next.is_none();
        if first {
            lifecycle.first_next = Some(now);
        }
        first
    });
    loop {
        // Registered before looking, so a notification between the look and the wait
        // is not lost.
        let mut woken = pin!(shared.wake.notified());
        woken.as_mut().enable();
        if shared.closed.load(Ordering::SeqCst) {
            return (StatusCode::GONE, "the local Runtime API is shutting down").into_response();
        }
        if let Some(handout) = shared.take_next() {
            return event_response(&shared, handout);
        }
        woken.await;
    }
}

fn event_response(shared: &Shared, queued: Handout) -> Response {
    let Handout {
        request_id,
        trace_id,
        body,
        deadline_ms,
    } = queued;
    let mut headers = HeaderMap::new();
    let values = [
        ("lambda-runtime-aws-request-id", request_id),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", trace_id),
    ];
    for (name, value) in values {
        // Only an ARN built from an odd file name can fail here; the runtime does without it.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, body).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(request_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let result = if body.len() > MAX_INVOKE_PAYLOAD_BYTES {
        // What Lambda answers the caller in this case.
        Ok(Err(FunctionError {
            error_type: "Function.ResponseSizeTooLarge".into(),
            error_message: format!(
                "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_INVOKE_PAYLOAD_BYTES} bytes).",
                body.len()
            ),
        }))
    } else if body.is_empty() {
        Ok(Ok(Value::Null))
    } else {
        serde_json::from_slice(&body)
            .map(Ok)
            .map_err(|e| e.to_string())
    };
    shared.complete(&request_id, result)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(request_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.complete(&request_id, Ok(Err(function_error(&headers, &body))))
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let error = function_error(&headers, &body);
    shared
        .lifecycle
        .send_modify(|lifecycle| lifecycle.init_error = Some(error));
    StatusCode::ACCEPTED
}

/// Reads `{"errorType", "errorMessage"}`; falls back on the error-type header and the raw
/// body, so a runtime that posts something else still shows what it said.
fn function_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let header_type = headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    FunctionError {
        error_type: field("errorType")
            .or(header_type)
            .unwrap_or_else(|| "Unhandled".into()),
        error_message: field("errorMessage")
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

fn epoch_ms(time: SystemTime) -> u64 {
    let ms = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

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
    /// ([`DEFAULT_MEMORY_MB`]), `AWS_LAMBDA_FUNCTION_VERSION` (`$LATEST`),
    /// `AWS_LAMBDA_LOG_GROUP_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`,
    /// `AWS_LAMBDA_INITIALIZATION_TYPE` (`on-demand`), `AWS_REGION` and
    /// `AWS_DEFAULT_REGION` ([`DEFAULT_REGION`]), `LAMBDA_TASK_ROOT` (the binary's directory,
    /// also its working directory), `TZ` and `PATH`; then `extra_env`, which may override
    /// any of them and must bring what the function needs (credentials, endpoints, its own
    /// settings). Its stdout and stderr are appended to `log_path`.
    ///
    /// The process is killed if the thread that started it ends: call this from an async
    /// task (a runtime worker or the main thread), not inside `spawn_blocking`.
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
        // SAFETY: prctl is async-signal-safe; it only sets the child's death signal, so the
        // function dies with this process rather than polling forever. (Strictly, with the
        // thread that spawned it: see the note on `start`.)
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
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
    ) -> Result<Invocation, LambdaApiError> {
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
        let mut lifecycle = self.api.shared.lifecycle.subscribe();
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

/// Lambda's environment for a function, before the caller's additions.
fn lambda_env(
    function_name: &str,
    region: &str,
    api: SocketAddr,
    task_root: &Path,
) -> Vec<(&'static str, String)> {
    let now = chrono::Utc::now();
    let stream = format!(
        "{}/[$LATEST]{:032x}",
        now.format("%Y/%m/%d"),
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    vec![
        ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            DEFAULT_MEMORY_MB.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("TZ", ":UTC".into()),
        ("PATH", LAMBDA_PATH.into()),
    ]
}

/// `target/lambda/<name>/bootstrap` (cargo lambda's layout) → `<name>`; else the file name.
fn function_name_of(binary: &Path) -> String {
    let file = binary.file_name();
    let name = if file.is_some_and(|f| f == "bootstrap") {
        binary.parent().and_then(Path::file_name)
    } else {
        file
    };
    name.map_or_else(|| "function".into(), |n| n.to_string_lossy().into_owned())
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
fn vm_hwm_bytes(proc_status: &str) -> Option<u64> {
    let value = proc_status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?;
    let kb: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NEXT_TIMEOUT: Duration = Duration::from_secs(5);

    fn url(api: &RuntimeApi, path: &str) -> String {
        format!("http://{}{path}", api.addr())
    }

    fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The fake runtime's `GET next`: returns the request id and the whole response.
    async fn fetch_next(client: &reqwest::Client, api: &RuntimeApi) -> (String, reqwest::Response) {
        let next = client
            .get(url(api, NEXT_PATH))
            .timeout(NEXT_TIMEOUT)
            .send()
            .await
            .expect("GET next");
        assert_eq!(next.status(), 200);
        (
            header(&next, "lambda-runtime-aws-request-id").to_owned(),
            next,
        )
    }

    #[tokio::test]
    async fn next_hands_out_the_event_and_response_completes_invoke() {
        let api = RuntimeApi::start("arn:aws:lambda:us-east-1:000000000000:function:f")
            .await
            .expect("start");
        assert!(api.first_next_at().is_none());
        let client = reqwest::Client::new();
        let runtime = async {
            let (id, next) = fetch_next(&client, &api).await;
            assert!(!id.is_empty());
            let deadline: u64 = header(&next, "lambda-runtime-deadline-ms")
                .parse()
                .expect("deadline");
            assert!(deadline > epoch_ms(SystemTime::now()));
            assert_eq!(
                header(&next, "lambda-runtime-invoked-function-arn"),
                "arn:aws:lambda:us-east-1:000000000000:function:f"
            );
            assert!(header(&next, "lambda-runtime-trace-id").starts_with("Root=1-"));
            let event: Value = next.json().await.expect("event JSON");
            assert_eq!(event, json!({"n": 1}));
            let posted = client
                .post(url(
                    &api,
                    &format!("/2018-06-01/runtime/invocation/{id}/response"),
                ))
                .json(&json!({"ok": true}))
                .send()
                .await
                .expect("POST response");
            assert_eq!(posted.status(), 202);
            id
        };
        let (invocation, id) =
            tokio::join!(api.invoke(json!({"n": 1}), Duration::from_secs(5)), runtime);
        let invocation = invocation.expect("invoke");
        assert_eq!(invocation.request_id, id);
        assert_eq!(invocation.result, Ok(json!({"ok": true})));
        assert!(api.first_next_at().is_some());

        // A second response to the same invocation is refused.
        let again = client
            .post(url(
                &api,
                &format!("/2018-06-01/runtime/invocation/{id}/response"),
            ))
            .json(&json!({}))
            .send()
            .await
            .expect("POST");
        assert_eq!(again.status(), 400);
    }

    #[tokio::test]
    async fn error_post_gives_a_function_error() {
        let api = RuntimeApi::start("arn").await.expect("start");
        let client = reqwest::Client::new();
        let runtime = async {
            let (id, _) = fetch_next(&client, &api).await;
            let posted = client
                .post(url(
                    &api,
                    &format!("/2018-06-01/runtime/invocation/{id}/error"),
                ))
                .header(ERROR_TYPE_HEADER, "unhandled")
                .json(&json!({"errorType": "Config", "errorMessage": "no table"}))
                .send()
                .await
                .expect("POST error");
            assert_eq!(posted.status(), 202);
        };
        let (invocation, ()) = tokio::join!(api.invoke(json!({}), Duration::from_secs(5)), runtime);
        let error = invocation
            .expect("invoke")
            .result
            .expect_err("function error");
        assert_eq!(error.error_type, "Config");
        assert_eq!(error.error_message, "no table");
    }

    #[tokio::test]
    async fn init_error_is_recorded() {
        let api = RuntimeApi::start("arn").await.expect("start");
        let posted = reqwest::Client::new()
            .post(url(&api, INIT_ERROR_PATH))
            .header(ERROR_TYPE_HEADER, "Runtime.InitError")
            .body("not json")
            .send()
            .await
            .expect("POST init/error");
        assert_eq!(posted.status(), 202);
        let error = api.init_error().expect("init error");
        assert_eq!(error.error_type, "Runtime.InitError");
        assert_eq!(error.error_message, "not json");
    }

    #[tokio::test]
    async fn a_timed_out_event_is_not_handed_out_later() {
        let api = RuntimeApi::start("arn").await.expect("start");
        let timeout = api
            .invoke(json!({"stale": true}), Duration::from_millis(50))
            .await;
        assert!(
            matches!(
                timeout,
                Err(LambdaApiError::Timeout { stage, .. }) if stage.contains("never asked")
            ),
            "{timeout:?}"
        );
        let client = reqwest::Client::new();
        let runtime = async {
            let (id, next) = fetch_next(&client, &api).await;
            assert_eq!(
                next.json::<Value>().await.expect("event"),
                json!({"fresh": true})
            );
            client
                .post(url(
                    &api,
                    &format!("/2018-06-01/runtime/invocation/{id}/response"),
                ))
                .body("")
                .send()
                .await
                .expect("POST response");
        };
        let (invocation, ()) = tokio::join!(
            api.invoke(json!({"fresh": true}), Duration::from_secs(5)),
            runtime
        );
        assert_eq!(invocation.expect("invoke").result, Ok(Value::Null));
    }

    #[test]
    fn reads_vm_hwm() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(vm_hwm_bytes(status), Some(1234 * 1024));
        assert_eq!(vm_hwm_bytes("Name:\tzombie\nState:\tZ\n"), None);
    }

    #[test]
    fn function_name_follows_cargo_lambda_layout() {
        assert_eq!(
            function_name_of(Path::new("/x/target/lambda/poller/bootstrap")),
            "poller"
        );
        assert_eq!(function_name_of(Path::new("/x/metrics")), "metrics");
    }

    /// A scratch directory for one test's scripts and log.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "realty-lambda-api-{name}-{}-{}",
                std::process::id(),
                epoch_ms(SystemTime::now())
            ));
            std::fs::create_dir_all(&dir).expect("scratch dir");
            Self(dir)
        }

        /// Writes an executable `sh` script named `bootstrap` in its own directory.
        fn script(&self, function: &str, body: &str) -> PathBuf {
            use std::os::unix::fs::PermissionsExt as _;
            let dir = self.0.join(function);
            std::fs::create_dir_all(&dir).expect("function dir");
            let path = dir.join("bootstrap");
            std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            path
        }

        fn log(&self) -> PathBuf {
            self.0.join("logs/function.log")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Starts a script; retries while another test's fork still holds it open for writing.
    async fn start_script(
        binary: &Path,
        extra_env: &[(String, String)],
        log: &Path,
        timeout: Duration,
    ) -> Result<(LambdaProcess, Duration), LambdaApiError> {
        for _ in 0..50 {
            match LambdaProcess::start(binary, extra_env, log, timeout).await {
                Err(LambdaApiError::Spawn { source, .. })
                    if source.kind() == std::io::ErrorKind::ExecutableFileBusy =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
        LambdaProcess::start(binary, extra_env, log, timeout).await
    }

    fn curl() -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("curl"))
            .find(|candidate| candidate.is_file())
    }

    #[tokio::test]
    async fn process_cold_start_invocations_memory_and_stop() {
        let Some(curl) = curl() else {
            eprintln!("skipped: no curl on PATH");
            return;
        };
        let scratch = Scratch::new("echo");
        let curl = curl.display();
        // A runtime in sh: echo each event back with some of its environment.
        let binary = scratch.script(
            "echo",
            &format!(
                r#"api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
echo "init in $PWD"
while true; do
  {curl} -sS -D headers -o event "$api/next" || exit 2
  id=$(grep -i '^lambda-runtime-aws-request-id:' headers | cut -d' ' -f2 | tr -d '\r')
  {curl} -sS -o /dev/null -X POST -d "{{\"event\":$(cat event),\"name\":\"$AWS_LAMBDA_FUNCTION_NAME\",\"memory\":$AWS_LAMBDA_FUNCTION_MEMORY_SIZE,\"extra\":\"$EXTRA\",\"home\":\"${{HOME:-unset}}\"}}" "$api/$id/response"
done
"#
            ),
        );
        let extra = [("EXTRA".to_owned(), "yes".to_owned())];
        let (process, cold_start) =
            start_script(&binary, &extra, &scratch.log(), Duration::from_secs(5))
                .await
                .expect("start");
        assert!(cold_start > Duration::ZERO && cold_start < Duration::from_secs(5));
        for n in 0..2 {
            let invocation = process
                .invoke(json!({"n": n}), Duration::from_secs(5))
                .await
                .expect("invoke");
            assert_eq!(
                invocation.result,
                Ok(json!({
                    "event": {"n": n},
                    "name": "echo",
                    "memory": DEFAULT_MEMORY_MB,
                    "extra": "yes",
                    "home": "unset",
                }))
            );
        }
        let rss = process.peak_rss_bytes().expect("VmHWM of a live process");
        assert!(rss > 0);
        let pid = process.pid();
        let log = std::fs::read_to_string(process.log_path()).expect("log");
        assert!(log.contains("init in "), "{log}");
        process.stop();
        // Reaped, not a zombie: the pid no longer exists.
        let pid = i32::try_from(pid).expect("pid");
        // SAFETY: signal 0 only checks for existence.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0);
    }

    #[tokio::test]
    async fn a_process_failing_at_start_reports_status_and_log_tail() {
        let scratch = Scratch::new("fail");
        let binary = scratch.script("fail", "echo 'missing setting REALTY_TABLE' >&2\nexit 1\n");
        // An earlier run's lines are not quoted.
        std::fs::create_dir_all(scratch.0.join("logs")).expect("logs");
        std::fs::write(scratch.log(), "an earlier run\n").expect("log");
        let started = Instant::now();
        let result = start_script(&binary, &[], &scratch.log(), Duration::from_secs(5)).await;
        let Err(LambdaApiError::NotReady { reason, tail, .. }) = result else {
            panic!("expected NotReady, got {result:?}");
        };
        assert!(reason.contains("exit status: 1"), "{reason}");
        assert_eq!(tail, "missing setting REALTY_TABLE");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn an_init_error_post_fails_start_without_waiting() {
        let Some(curl) = curl() else {
            eprintln!("skipped: no curl on PATH");
            return;
        };
        let scratch = Scratch::new("init-error");
        let binary = scratch.script(
            "init-error",
            &format!(
                r#"{curl} -sS -X POST -d '{{"errorType":"Runtime.InitError","errorMessage":"no config"}}' "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error"
sleep 30
"#,
                curl = curl.display()
            ),
        );
        let started = Instant::now();
        let result = start_script(&binary, &[], &scratch.log(), Duration::from_secs(10)).await;
        let Err(LambdaApiError::NotReady { reason, .. }) = result else {
            panic!("expected NotReady, got {result:?}");
        };
        assert!(reason.contains("Runtime.InitError: no config"), "{reason}");
        // The sleeping script was killed, not waited for.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_process_that_never_polls_times_out() {
        let scratch = Scratch::new("silent");
        let binary = scratch.script("silent", "sleep 30\n");
        let result = start_script(&binary, &[], &scratch.log(), Duration::from_millis(200)).await;
        let Err(LambdaApiError::NotReady { reason, tail, .. }) = result else {
            panic!("expected NotReady, got {result:?}");
        };
        assert!(reason.contains("did not ask for an event"), "{reason}");
        assert_eq!(tail, "(nothing)");
    }

    #[tokio::test]
    async fn a_process_dying_mid_invocation_fails_the_invoke() {
        let Some(curl) = curl() else {
            eprintln!("skipped: no curl on PATH");
            return;
        };
        let scratch = Scratch::new("crash");
        let binary = scratch.script(
            "crash",
            &format!(
                "{} -sS -o /dev/null \"http://$AWS_LAMBDA_RUNTIME_API{NEXT_PATH}\"\necho 'handler crashed'\nexit 3\n",
                curl.display()
            ),
        );
        let (process, _) = start_script(&binary, &[], &scratch.log(), Duration::from_secs(5))
            .await
            .expect("start");
        let result = process.invoke(json!({}), Duration::from_secs(5)).await;
        let Err(LambdaApiError::Exited { status, tail, .. }) = result else {
            panic!("expected Exited, got {result:?}");
        };
        assert!(status.contains("exit status: 3"), "{status}");
        assert!(tail.contains("handler crashed"), "{tail}");
        assert_eq!(process.peak_rss_bytes(), None);
    }
}
