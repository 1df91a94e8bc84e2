//! The Runtime API's state: events queued for the function, handed out, and completed;
//! what the function said at start-up.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use super::{CompletedInvocation, FunctionError, LambdaApiError, MAX_INVOKE_PAYLOAD_BYTES, routes};

/// The local Runtime API server, on 127.0.0.1 and a free port. It serves one function
/// process (one invocation at a time, as Lambda gives one sandbox); it stops on drop.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) function_arn: String,
    queues: Mutex<Queues>,
    /// Wakes a `next` request waiting for an event (all of them on shutdown).
    pub(super) wake: Notify,
    pub(super) closed: AtomicBool,
    pub(super) lifecycle: watch::Sender<Lifecycle>,
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
pub(super) struct Handout {
    pub(super) request_id: String,
    pub(super) trace_id: String,
    pub(super) body: Bytes,
    pub(super) deadline_ms: u64,
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
pub(super) struct Lifecycle {
    pub(super) first_next: Option<Instant>,
    pub(super) init_error: Option<FunctionError>,
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
        let router = routes::router(Arc::clone(&shared));
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

    /// Watches the function's start: its first `next`, or its init error.
    pub(super) fn lifecycle(&self) -> watch::Receiver<Lifecycle> {
        self.shared.lifecycle.subscribe()
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
    ) -> Result<CompletedInvocation, LambdaApiError> {
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
                Ok(result) => Ok(CompletedInvocation {
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
    pub(super) fn take_next(&self) -> Option<Handout> {
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

    pub(super) fn complete(
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

pub(super) fn epoch_ms(time: SystemTime) -> u64 {
    let ms = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}
