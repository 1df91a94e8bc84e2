use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::environment::function_name_of;
use super::process::vm_hwm_bytes;
use super::routes::{ERROR_TYPE_HEADER, INIT_ERROR_PATH, NEXT_PATH};
use super::runtime_api::epoch_ms;
use super::*;

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
    assert_eq!(error.message, "no table");
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
    assert_eq!(error.message, "not json");
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
    let status = "Name:\tbootstrap\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
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

/// The cold start runs from the spawn to the first `next`: a runtime that takes 300 ms to
/// initialise cannot start in less, nor in more than the wall time around `start`.
#[tokio::test]
async fn the_cold_start_runs_from_the_spawn_to_the_first_next() {
    let Some(curl) = curl() else {
        eprintln!("skipped: no curl on PATH");
        return;
    };
    let scratch = Scratch::new("slow-init");
    let binary = scratch.script(
        "slow-init",
        &format!(
            "sleep 0.3\n{} -sS -o /dev/null \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\"\nsleep 30\n",
            curl.display()
        ),
    );
    let started = Instant::now();
    let (process, cold_start) = start_script(&binary, &[], &scratch.log(), Duration::from_secs(10))
        .await
        .expect("start");
    let around = started.elapsed();
    process.stop();
    assert!(cold_start >= Duration::from_millis(300), "{cold_start:?}");
    assert!(cold_start <= around, "{cold_start:?} > {around:?}");
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
