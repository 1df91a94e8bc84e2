//! The local AWS: moto server, installed into the project's `.venv` on first use and run on
//! a free loopback port.
//!
//! Two lifetimes: [`Emulator::start_attached`] for test runs (the emulator dies with the
//! process that started it, even on a crash), and [`Emulator::start_detached`] for
//! `realty up` (it outlives the CLI until `realty down`).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Pinned Python requirements of the local tooling (moto server, cfn-lint, checkov).
pub const REQUIREMENTS_FILE: &str = "infra/requirements.txt";
/// Copy of the requirements the `.venv` was last built from: a different file rebuilds it.
const INSTALLED_STAMP: &str = ".realty-requirements.txt";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// moto's server with its requests serialised: see the script for why.
const MOTO_SERIAL: &str = include_str!("moto_serial.py");

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
    #[error("cannot start moto server: {0}")]
    Spawn(std::io::Error),
    #[error(
        "moto server did not answer on {endpoint} within {secs} s; its log ({log}) ends with:\n{tail}"
    )]
    NotReady {
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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EmulatorError + '_ {
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
    ensure_requirements(root, requirements_path, stamp_name, what)
}

fn ensure_requirements(
    root: &Path,
    requirements_path: &Path,
    stamp_name: &str,
    what: &str,
) -> Result<PathBuf, EmulatorError> {
    let venv = root.join(".venv");
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
    if !venv.join("bin/python").is_file() {
        run_quiet(Command::new(python()).args(["-m", "venv"]).arg(&venv)).map_err(venv_err)?;
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
            .arg(requirements_path),
    )
    .map_err(venv_err)?;
    fs::write(&stamp, &requirements).map_err(io_err(&stamp))?;
    Ok(venv)
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn run_quiet(cmd: &mut Command) -> Result<(), String> {
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

/// A free TCP port on 127.0.0.1, as the kernel hands it out.
pub fn free_loopback_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running moto server.
#[derive(Debug)]
pub struct Emulator {
    pub endpoint: String,
    pub pid: u32,
    pub log_path: PathBuf,
    /// Set when this process owns the emulator's lifetime (attached mode).
    child: Option<Child>,
}

impl Emulator {
    /// Starts moto for this process only: it is stopped on drop, and the kernel stops it if
    /// this process dies first.
    pub fn start_attached(venv: &Path, log_path: &Path) -> Result<Self, EmulatorError> {
        Self::start(venv, log_path, true)
    }

    /// Starts moto in its own session, outliving this process; stop it with [`stop_pid`].
    pub fn start_detached(venv: &Path, log_path: &Path) -> Result<Self, EmulatorError> {
        let mut emulator = Self::start(venv, log_path, false)?;
        emulator.child = None; // not ours to stop on drop
        Ok(emulator)
    }

    fn start(venv: &Path, log_path: &Path, attached: bool) -> Result<Self, EmulatorError> {
        if let Some(dir) = log_path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // Another process may take the port between our probe and moto's bind: try again.
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_loopback_port().map_err(EmulatorError::Spawn)?;
            let log = File::create(log_path).map_err(io_err(log_path))?;
            let log_err = log.try_clone().map_err(io_err(log_path))?;
            let mut cmd = Command::new(venv.join("bin/python"));
            cmd.args([
                "-c",
                MOTO_SERIAL,
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
            if attached {
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
            let mut child = cmd.spawn().map_err(EmulatorError::Spawn)?;
            let endpoint = format!("http://127.0.0.1:{port}");
            match wait_ready(port, &mut child) {
                Ok(()) => {
                    return Ok(Self {
                        endpoint,
                        pid: child.id(),
                        log_path: log_path.to_path_buf(),
                        child: Some(child),
                    });
                }
                Err(()) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let text = fs::read_to_string(log_path).unwrap_or_default();
                    last_error = Some(EmulatorError::NotReady {
                        endpoint,
                        secs: READY_TIMEOUT.as_secs(),
                        log: log_path.display().to_string(),
                        tail: tail(&text, 20),
                    });
                    if !text.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// Stops an attached emulator now (drop does the same).
    pub fn stop(mut self) {
        self.stop_child();
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_pid(child.id(), Duration::from_secs(5));
            let _ = child.wait();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop_child();
    }
}

/// Waits until moto answers HTTP on `port`, or the child exits, or the timeout passes.
fn wait_ready(port: u16, child: &mut Child) -> Result<(), ()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Err(());
        }
        if answers_http(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(())
}

/// True when something on 127.0.0.1:`port` answers an HTTP request.
pub fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 8];
    matches!(stream.read(&mut head), Ok(n) if n >= 5 && &head[..5] == b"HTTP/")
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

/// Stops the process group led by `pid` (moto and anything it started): SIGTERM, then
/// SIGKILL after `grace`. Returns whether it is gone.
pub fn stop_pid(pid: u32, grace: Duration) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return true;
    };
    if pid <= 1 {
        return false;
    }
    // SAFETY: plain kill(2) on a process group we started (moto runs in its own group).
    unsafe { libc::kill(-pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(pid);
        if !pid_alive(pid as u32) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(100));
    reap(pid);
    !pid_alive(pid as u32)
}

/// Collects the exit status of `pid` if it is our zombie child, so it stops counting as alive.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: non-blocking waitpid; fails harmlessly when `pid` is not our child.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}
