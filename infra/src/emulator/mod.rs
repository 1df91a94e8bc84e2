//! The local AWS: one of two emulators, installed by the project on first use and run on a
//! free loopback port.
//!
//! - [`EmulatorKind::LocalStack`] (the default where it can run): LocalStack in host mode,
//!   with AWS's own DynamoDB Local and kinesis-mock behind it ([`localstack`]).
//! - [`EmulatorKind::Moto`]: moto server from the project's `.venv`, serving one request at a
//!   time (`moto_serial.py`).
//!
//! [`choose`] picks one (`--emulator`, else `REALTY_EMULATOR`, else LocalStack when the
//! machine has what it needs, moto otherwise, saying why). Two lifetimes:
//! [`Emulator::start_attached`] for test runs (the emulator dies with the process that
//! started it, even on a crash), and [`Emulator::start_detached`] for `realty up` (it
//! outlives the CLI until `realty down`). [`stop_emulator`] stops one with every process it
//! started.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod localstack;

/// Pinned Python requirements of the local tooling (moto server, cfn-lint, checkov).
pub const REQUIREMENTS_FILE: &str = "infra/requirements.txt";
/// Copy of the requirements the `.venv` was last built from: a different file rebuilds it.
const INSTALLED_STAMP: &str = ".realty-requirements.txt";
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Environment variable choosing the emulator (`localstack` or `moto`) for tests, `make
/// demo` and `make bench`; `--emulator` wins over it.
pub const EMULATOR_ENV: &str = "REALTY_EMULATOR";
/// moto's server with its requests serialised, its Firehose prefixes evaluated as AWS does and
/// each table backed up once per transaction: see the scripts for why.
const MOTO_SERIAL: &str = concat!(
    include_str!("../firehose_prefix.py"),
    "\n",
    include_str!("../moto_transactions.py"),
    "\n",
    include_str!("../moto_serial.py")
);

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "cannot find the project root (a directory with template.yaml and {REQUIREMENTS_FILE}) from {0}; run from the checkout or set REALTY_PROJECT_ROOT"
    )]
    NoProjectRoot(String),
    #[error(
        "cannot create the Python environment in {venv}: {reason}. The local AWS needs python3 with the venv module (Debian: apt-get install python3-venv)"
    )]
    Venv { venv: String, reason: String },
    #[error("cannot install {what}: {reason}")]
    Install { what: String, reason: String },
    #[error(
        "LocalStack cannot run on this machine: it needs {0}. Use --emulator moto (or REALTY_EMULATOR=moto)"
    )]
    LocalStackUnavailable(String),
    #[error("unknown emulator {0:?}: expected localstack or moto")]
    UnknownKind(String),
    #[error("cannot start {kind}: {source}")]
    Spawn {
        kind: EmulatorKind,
        source: std::io::Error,
    },
    #[error(
        "{kind} did not answer on {endpoint} within {secs} s; its log ({log}) ends with:\n{tail}"
    )]
    NotReady {
        kind: EmulatorKind,
        endpoint: String,
        secs: u64,
        log: String,
        tail: String,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EmulatorError + '_ {
    move |source| EmulatorError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Finds the checkout: `REALTY_PROJECT_ROOT`, else the first ancestor of the current
/// directory (then of this crate's source directory) holding template.yaml and the
/// requirements file.
pub fn project_root() -> Result<PathBuf, EmulatorError> {
    if let Some(root) = std::env::var_os("REALTY_PROJECT_ROOT") {
        return Ok(PathBuf::from(root));
    }
    let is_root =
        |p: &Path| p.join("template.yaml").is_file() && p.join(REQUIREMENTS_FILE).is_file();
    let cwd = std::env::current_dir().unwrap_or_default();
    let from_source = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for start in [cwd.as_path(), from_source.as_path()] {
        if let Some(found) = start.ancestors().find(|p| is_root(p)) {
            return Ok(found.to_path_buf());
        }
    }
    Err(EmulatorError::NoProjectRoot(cwd.display().to_string()))
}

/// Makes sure `<root>/.venv` holds the pinned tools, creating or refreshing it when the
/// requirements changed. Returns the venv's path. Concurrent callers are serialised by a
/// lock file, so parallel test binaries install once.
pub fn ensure_venv(root: &Path) -> Result<PathBuf, EmulatorError> {
    ensure_requirements(
        root,
        &root.join(".venv"),
        &root.join(REQUIREMENTS_FILE),
        INSTALLED_STAMP,
        "the local AWS tools (first use, about a minute)",
    )
}

/// Makes sure `<root>/.venv` also holds the pinned packages of `requirements_path` (the
/// benchmark peers, say), recorded in the venv under `stamp_name`. Returns the venv's path.
pub fn ensure_extra_venv(
    root: &Path,
    requirements_path: &Path,
    stamp_name: &str,
    what: &str,
) -> Result<PathBuf, EmulatorError> {
    ensure_venv(root)?;
    ensure_requirements(
        root,
        &root.join(".venv"),
        requirements_path,
        stamp_name,
        what,
    )
}

/// Makes sure the virtualenv `venv` holds exactly the pinned packages of `requirements_path`
/// (a tool whose dependencies must not move the local AWS tools' own, such as a test's
/// checker). Returns the venv's path.
pub fn ensure_separate_venv(
    root: &Path,
    venv: &Path,
    requirements_path: &Path,
    what: &str,
) -> Result<PathBuf, EmulatorError> {
    ensure_requirements(root, venv, requirements_path, INSTALLED_STAMP, what)
}

fn ensure_requirements(
    root: &Path,
    venv: &Path,
    requirements_path: &Path,
    stamp_name: &str,
    what: &str,
) -> Result<PathBuf, EmulatorError> {
    let venv = venv.to_path_buf();
    let requirements = fs::read_to_string(requirements_path).map_err(io_err(requirements_path))?;
    let stamp = venv.join(stamp_name);
    let up_to_date = || {
        fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str())
            && venv.join("bin/python").is_file()
    };
    if up_to_date() {
        return Ok(venv);
    }
    let lock_path = root.join("target").join(".realty-venv.lock");
    fs::create_dir_all(lock_path.parent().unwrap_or(root)).map_err(io_err(&lock_path))?;
    let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    if up_to_date() {
        return Ok(venv);
    }
    let venv_err = |reason: String| EmulatorError::Venv {
        venv: venv.display().to_string(),
        reason,
    };
    eprintln!("realty: installing {what} into {}", venv.display());
    // A venv whose creation failed part-way (python3 without ensurepip: Debian's missing
    // python3-venv) has its python but no pip: made again, or the advice to install
    // python3-venv never took effect.
    let has_pip = || {
        run_quiet(Command::new(venv.join("bin/python")).args(["-m", "pip", "--version"])).is_ok()
    };
    if !venv.join("bin/python").is_file() || !has_pip() {
        run_quiet(
            Command::new(python())
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
        )
        .map_err(venv_err)?;
    }
    run_quiet(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(requirements_path)
            // Its downloads kept in the project, not in the user's ~/.cache.
            .env("PIP_CACHE_DIR", root.join("target").join("pip-cache")),
    )
    .map_err(venv_err)?;
    fs::write(&stamp, &requirements).map_err(io_err(&stamp))?;
    Ok(venv)
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

pub(crate) fn run_quiet(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(format!(
        "{cmd:?} failed ({}):\n{}",
        out.status,
        tail(&text, 30)
    ))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The two local emulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmulatorKind {
    /// LocalStack in host mode: AWS's DynamoDB Local, kinesis-mock, LocalStack's own S3,
    /// SQS, SNS, Firehose, KMS, and Glue from the moto it bundles (`localstack_main.py`).
    LocalStack,
    /// moto server, one request at a time.
    Moto,
}

impl EmulatorKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::LocalStack => "localstack",
            Self::Moto => "moto",
        }
    }

    /// The choice in `REALTY_EMULATOR`, if any.
    pub fn from_env() -> Result<Option<Self>, EmulatorError> {
        match std::env::var(EMULATOR_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse().map(Some),
            _ => Ok(None),
        }
    }
}

impl std::fmt::Display for EmulatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LocalStack => "LocalStack",
            Self::Moto => "moto server",
        })
    }
}

impl std::str::FromStr for EmulatorKind {
    type Err = EmulatorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "localstack" => Ok(Self::LocalStack),
            "moto" => Ok(Self::Moto),
            other => Err(EmulatorError::UnknownKind(other.to_owned())),
        }
    }
}

/// The emulator to run: `requested` (`--emulator`), else `REALTY_EMULATOR`, else LocalStack
/// where it is installed or can be, else moto, saying on stderr why. Asked for by name,
/// LocalStack that cannot run is an error.
pub fn choose(root: &Path, requested: Option<EmulatorKind>) -> Result<EmulatorKind, EmulatorError> {
    let named = match requested {
        Some(kind) => Some(kind),
        None => EmulatorKind::from_env()?,
    };
    match named {
        Some(EmulatorKind::Moto) => Ok(EmulatorKind::Moto),
        Some(EmulatorKind::LocalStack) => match localstack_ready(root) {
            Ok(()) => Ok(EmulatorKind::LocalStack),
            Err(missing) => Err(EmulatorError::LocalStackUnavailable(missing)),
        },
        None => match localstack_ready(root) {
            Ok(()) => Ok(EmulatorKind::LocalStack),
            Err(missing) => {
                eprintln!(
                    "realty: LocalStack cannot run on this machine: it needs {missing}; using moto server instead"
                );
                Ok(EmulatorKind::Moto)
            }
        },
    }
}

fn localstack_ready(root: &Path) -> Result<(), String> {
    if localstack::installed(root).is_some() {
        return Ok(());
    }
    localstack::prerequisites().map(|_| ())
}

/// A free TCP port on 127.0.0.1, as the kernel hands it out.
pub fn free_loopback_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    pub kind: EmulatorKind,
    pub endpoint: String,
    pub pid: u32,
    pub log_path: PathBuf,
    /// LocalStack's folder of this instance (its files, and the marker of its processes).
    pub instance_dir: Option<PathBuf>,
    /// Set when this process owns the emulator's lifetime (attached mode).
    child: Option<Child>,
}

impl Emulator {
    /// Installs `kind` if needed and starts it for this process only: it is stopped on drop,
    /// and the kernel stops it if this process dies first.
    pub fn start_attached(
        kind: EmulatorKind,
        root: &Path,
        log_path: &Path,
    ) -> Result<Self, EmulatorError> {
        Self::start(kind, root, log_path, true, &|_, _| {})
    }

    /// Installs `kind` if needed and starts it in its own session, outliving this process;
    /// stop it with [`stop_emulator`].
    /// `spawned` is told each process it starts (pid, instance folder) before it waits for
    /// it to answer, so that a caller cut short meanwhile can have it stopped later.
    pub fn start_detached(
        kind: EmulatorKind,
        root: &Path,
        log_path: &Path,
        spawned: &dyn Fn(u32, Option<&Path>),
    ) -> Result<Self, EmulatorError> {
        let mut emulator = Self::start(kind, root, log_path, false, spawned)?;
        emulator.child = None; // not ours to stop on drop
        Ok(emulator)
    }

    fn start(
        kind: EmulatorKind,
        root: &Path,
        log_path: &Path,
        attached: bool,
        spawned: &dyn Fn(u32, Option<&Path>),
    ) -> Result<Self, EmulatorError> {
        let log_dir = log_path.parent().unwrap_or(root).to_path_buf();
        fs::create_dir_all(&log_dir).map_err(io_err(&log_dir))?;
        let launcher = Launcher::ready(kind, root)?;
        // Another process may take the port between our probe and the bind: try again.
        let mut last_error = None;
        for _ in 0..3 {
            let port =
                free_loopback_port().map_err(|source| EmulatorError::Spawn { kind, source })?;
            match Self::launch_on(&launcher, kind, port, log_path, attached, spawned)? {
                Launch::Ready(emulator) => return Ok(emulator),
                Launch::NotReady { error, port_taken } => {
                    last_error = Some(error);
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// Starts the emulator on `port` and waits until it answers (or stops it again).
    fn launch_on(
        launcher: &Launcher,
        kind: EmulatorKind,
        port: u16,
        log_path: &Path,
        attached: bool,
        spawned: &dyn Fn(u32, Option<&Path>),
    ) -> Result<Launch, EmulatorError> {
        let log = File::create(log_path).map_err(io_err(log_path))?;
        let log_err = log.try_clone().map_err(io_err(log_path))?;
        let log_dir = log_path.parent().unwrap_or(Path::new("."));
        let (mut cmd, instance_dir) = launcher.command(port, log_dir, attached)?;
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        if attached {
            stop_with_parent(&mut cmd);
        }
        let mut child = cmd
            .spawn()
            .map_err(|source| EmulatorError::Spawn { kind, source })?;
        spawned(child.id(), instance_dir.as_deref());
        let endpoint = format!("http://127.0.0.1:{port}");
        if wait_ready(kind, port, &mut child).is_ok() {
            return Ok(Launch::Ready(Self {
                kind,
                endpoint,
                pid: child.id(),
                log_path: log_path.to_path_buf(),
                instance_dir,
                child: Some(child),
            }));
        }
        stop_emulator(child.id(), instance_dir.as_deref(), STOP_GRACE);
        let _ = child.wait();
        let text = fs::read_to_string(log_path).unwrap_or_default();
        let error = EmulatorError::NotReady {
            kind,
            endpoint,
            secs: READY_TIMEOUT.as_secs(),
            log: log_path.display().to_string(),
            tail: tail(&text, 20),
        };
        Ok(Launch::NotReady {
            error,
            port_taken: text.contains("Address already in use"),
        })
    }

    /// Stops an attached emulator now (drop does the same).
    pub fn stop(mut self) {
        self.stop_child();
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_emulator(child.id(), self.instance_dir.as_deref(), STOP_GRACE);
            let _ = child.wait();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop_child();
    }
}

/// How one start of the emulator on a port ended.
enum Launch {
    Ready(Emulator),
    /// It exited or did not answer in time; `port_taken` when its log says another process
    /// had bound the port first (worth another port).
    NotReady {
        error: EmulatorError,
        port_taken: bool,
    },
}

enum Launcher {
    Moto(PathBuf),
    LocalStack(localstack::Installation),
}

impl Launcher {
    /// The emulator of `kind`, installed first when it is not.
    fn ready(kind: EmulatorKind, root: &Path) -> Result<Self, EmulatorError> {
        Ok(match kind {
            EmulatorKind::Moto => Self::Moto(ensure_venv(root)?),
            EmulatorKind::LocalStack => Self::LocalStack(match localstack::installed(root) {
                Some(install) => install,
                None => {
                    let found = localstack::prerequisites()
                        .map_err(EmulatorError::LocalStackUnavailable)?;
                    localstack::ensure_installed(root, &found)?
                }
            }),
        })
    }

    /// The command serving on `port`, and the instance directory it keeps its state in.
    fn command(
        &self,
        port: u16,
        log_dir: &Path,
        attached: bool,
    ) -> Result<(Command, Option<PathBuf>), EmulatorError> {
        Ok(match self {
            Self::Moto(venv) => {
                let mut cmd = Command::new(venv.join("bin/python"));
                let port = port.to_string();
                cmd.args(["-c", MOTO_SERIAL, "-H", "127.0.0.1", "-p", &port]);
                (cmd, None)
            }
            Self::LocalStack(install) => {
                localstack::kill_orphans();
                let dir = log_dir.join(format!("localstack-{port}"));
                localstack::prepare_instance(install, &dir)?;
                let mut cmd = localstack::command(install, &dir, port);
                if attached {
                    cmd.env(localstack::OWNER_MARK, std::process::id().to_string());
                }
                (cmd, Some(dir))
            }
        })
    }
}

/// Has the kernel send `cmd`'s process SIGTERM when this one dies, so that an attached
/// emulator never outlives its test run.
fn stop_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it only sets this child's death signal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How long an emulator gets to shut down (LocalStack stops its engines) before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Waits until the emulator answers on `port`, or the child exits, or the timeout passes.
fn wait_ready(kind: EmulatorKind, port: u16, child: &mut Child) -> Result<(), ()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Err(());
        }
        let ready = match kind {
            EmulatorKind::Moto => answers_http(port),
            EmulatorKind::LocalStack => localstack_healthy(port),
        };
        if ready {
            return match kind {
                EmulatorKind::Moto => Ok(()),
                EmulatorKind::LocalStack => warm_up_localstack(port, deadline),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(())
}

/// LocalStack starts DynamoDB Local (a JVM) and kinesis-mock on their first call, 2-4 s each
/// on an idle machine and far longer on a busy one: long enough that the first CreateTable
/// of a test outlived the SDK's attempt timeout and its retry met the table it had made
/// (`ResourceInUseException`). One call to each here, before anyone else calls, makes
/// "ready" mean ready.
fn warm_up_localstack(port: u16, deadline: Instant) -> Result<(), ()> {
    for (target, content_type) in [
        ("DynamoDB_20120810.ListTables", "application/x-amz-json-1.0"),
        ("Kinesis_20131202.ListStreams", "application/x-amz-json-1.1"),
    ] {
        loop {
            if Instant::now() > deadline {
                return Err(());
            }
            let request = format!(
                "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Amz-Target: {target}\r\nContent-Type: {content_type}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: 2\r\n\r\n{{}}",
                service = if target.starts_with("DynamoDB") {
                    "dynamodb"
                } else {
                    "kinesis"
                },
            );
            let answered =
                http_request(port, &request, 16, Duration::from_secs(60)).is_some_and(|head| {
                    head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200")
                });
            if answered {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// One HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the response's first bytes, if any.
fn http_get(port: u16, path: &str, max: usize) -> Option<Vec<u8>> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    http_request(port, &request, max, Duration::from_secs(2))
}

/// Sends `request` to 127.0.0.1:`port`; the response's first `max` bytes, if any.
fn http_request(port: u16, request: &str, max: usize, timeout: Duration) -> Option<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    let _ = stream.set_read_timeout(Some(timeout));
    stream.write_all(request.as_bytes()).ok()?;
    let mut out = Vec::new();
    let _ = stream.take(max as u64).read_to_end(&mut out);
    Some(out)
}

/// True when something on 127.0.0.1:`port` answers an HTTP request.
pub fn answers_http(port: u16) -> bool {
    http_get(port, "/moto-api/", 8).is_some_and(|head| head.starts_with(b"HTTP/"))
}

/// True when LocalStack on `port` says it is up (`/_localstack/health` answers 200).
fn localstack_healthy(port: u16) -> bool {
    http_get(port, "/_localstack/health", 16)
        .is_some_and(|head| head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200"))
}

/// True while a process with this pid runs. A zombie (exited, not yet reaped: a detached
/// emulator's parent is gone and PID 1 may reap late) counts as stopped.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    exists && !is_zombie(pid)
}

/// When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat`'s 22nd field):
/// with the pid, what names one process, since a pid is reused once its process is gone.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) " come the fields from the 3rd (state) on; comm may hold spaces and
    // parentheses, so it is cut at the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether `pid` is still the process recorded with start time `started` (a record without
/// one, from before it was kept, trusts the pid alone).
pub fn is_same_process(pid: u32, started: Option<u64>) -> bool {
    pid_alive(pid) && started.is_none_or(|s| process_start(pid) == Some(s))
}

fn is_zombie(pid: i32) -> bool {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces and parentheses.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Stops an emulator and everything it started: its process group and, for LocalStack, the
/// processes of its instance (DynamoDB Local and kinesis-mock run in groups of their own).
/// SIGTERM first (LocalStack stops its engines itself), SIGKILL after `grace` to whatever is
/// left; then the instance folder is removed. Returns whether nothing is left running.
pub fn stop_emulator(pid: u32, instance_dir: Option<&Path>, grace: Duration) -> bool {
    let Ok(leader) = i32::try_from(pid) else {
        return true;
    };
    if leader <= 1 {
        return false;
    }
    let others = || {
        instance_dir
            .map(localstack::instance_processes)
            .unwrap_or_default()
    };
    // SAFETY: plain kill(2) on a process group we started (the emulator runs in its own).
    unsafe { libc::kill(-leader, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    let gone = |others: &[i32]| {
        reap(leader);
        !pid_alive(pid) && others.iter().all(|p| !pid_alive(*p as u32))
    };
    let mut remaining = others();
    while Instant::now() < deadline {
        if gone(&remaining) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        remaining = others();
    }
    if !gone(&remaining) {
        // SAFETY: as above; the others carry our instance's marker in their environment.
        unsafe { libc::kill(-leader, libc::SIGKILL) };
        for other in &remaining {
            unsafe { libc::kill(*other, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(200));
        remaining = others();
    }
    let stopped = gone(&remaining);
    if stopped && let Some(dir) = instance_dir {
        let _ = fs::remove_dir_all(dir);
    }
    stopped
}

/// Stops the process group led by `pid` (moto and anything it started): SIGTERM, then
/// SIGKILL after `grace`. Returns whether it is gone.
/// Stops the processes marked as LocalStack instance `dir`'s (each by its own pid, no
/// group: their leader may be gone and its pid reused), SIGTERM then SIGKILL after `grace`,
/// and removes the folder. Returns whether none is left.
pub fn stop_instance(dir: &Path, grace: Duration) -> bool {
    let signal = |signal: i32| {
        for pid in localstack::instance_processes(dir) {
            // SAFETY: plain kill(2) on processes carrying our instance's marker.
            unsafe { libc::kill(pid, signal) };
        }
    };
    signal(libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !localstack::instance_processes(dir).is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(200));
    let stopped = localstack::instance_processes(dir).is_empty();
    if stopped {
        let _ = fs::remove_dir_all(dir);
    }
    stopped
}

pub fn stop_pid(pid: u32, grace: Duration) -> bool {
    stop_emulator(pid, None, grace)
}

/// Collects the exit status of `pid` if it is our zombie child, so it stops counting as alive.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: non-blocking waitpid; fails harmlessly when `pid` is not our child.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A venv left with its python but no pip (made where python3 had no ensurepip, the
    /// error then said to install python3-venv) is made again, not reused as it is: before,
    /// every run failed on its missing pip, whatever was installed meanwhile.
    #[test]
    fn a_venv_left_without_pip_is_made_again() {
        let root = std::env::temp_dir().join(format!("realty-venv-{}", std::process::id()));
        let venv = root.join("venv");
        fs::create_dir_all(venv.join("bin")).expect("folders");
        let python = venv.join("bin/python");
        fs::write(&python, "#!/bin/sh\nexit 1\n").expect("a python without pip");
        fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("executable");
        let requirements = root.join("requirements.txt");
        fs::write(&requirements, "# nothing to install\n").expect("requirements");
        let made = ensure_separate_venv(&root, &venv, &requirements, "nothing");
        let works = run_quiet(Command::new(&python).args(["-m", "pip", "--version"]));
        let _ = fs::remove_dir_all(&root);
        made.expect("the venv made again");
        works.expect("its pip runs");
    }

    /// A pid with its start time names one process: the same process is recognised, one
    /// that reused the pid (another start time) is not, and a record without a start time
    /// trusts the pid while it lives.
    #[test]
    fn a_pid_with_its_start_time_names_one_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("a child");
        let pid = child.id();
        let started = process_start(pid).expect("its start time");
        assert!(is_same_process(pid, Some(started)));
        assert!(!is_same_process(pid, Some(started + 1)));
        assert!(is_same_process(pid, None));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!is_same_process(pid, Some(started)));
        assert_eq!(process_start(pid), None);
    }
}
