//! The environment Lambda gives a function process.

use std::net::SocketAddr;
use std::path::Path;

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` unless the caller's environment sets it.
pub const DEFAULT_MEMORY_MB: u32 = 1024;
/// `AWS_REGION` unless the caller's environment sets it.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The account in the function ARN handed to the function.
pub(super) const ACCOUNT_ID: &str = "000000000000";
/// Lambda's `PATH` for OS-only runtimes.
const LAMBDA_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/opt/bin";

/// Lambda's environment for a function, before the caller's additions.
pub(super) fn lambda_env(
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
pub(super) fn function_name_of(binary: &Path) -> String {
    let file = binary.file_name();
    let name = if file.is_some_and(|f| f == "bootstrap") {
        binary.parent().and_then(Path::file_name)
    } else {
        file
    };
    name.map_or_else(|| "function".into(), |n| n.to_string_lossy().into_owned())
}
