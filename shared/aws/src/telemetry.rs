//! Logging set-up: JSON lines in Lambda (CloudWatch Logs Insights parses them), readable
//! text on a terminal.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Installs the JSON subscriber used by the Lambda functions, at the level `RUST_LOG` names
/// (`error`, `warn`, `info`, `debug`, `trace` or `off`; `info` when unset). A level, not
/// `EnvFilter`'s per-crate directives: their regex engine was 0.8 MB of each arm64 bootstrap
/// and a parse at every cold start (docs/capacity.md). A value that is not a level is logged
/// and `info` used.
pub fn init_lambda_logging() {
    let (level, unread) = lambda_log_level(std::env::var("RUST_LOG").ok().as_deref());
    // A second call (tests, in-process handler runs) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_current_span(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line already.
        .try_init();
    if let Some(value) = unread {
        tracing::warn!(RUST_LOG = %value, "not a log level (error, warn, info, debug, trace, off): logging at info");
    }
}

/// The level `RUST_LOG`'s `value` names, and the value (its first 64 characters) when it
/// names none.
fn lambda_log_level(value: Option<&str>) -> (LevelFilter, Option<String>) {
    match value.map(str::trim) {
        None | Some("") => (LevelFilter::INFO, None),
        Some(value) => match value.parse::<LevelFilter>() {
            Ok(level) => (level, None),
            Err(_) => (LevelFilter::INFO, Some(value.chars().take(64).collect())),
        },
    }
}

/// Installs a human-readable subscriber on stderr for the CLI: colours on a terminal only
/// (in a file or a pipe their escape codes are noise, and lengthen every line).
pub fn init_cli_logging(default_level: &str) {
    use std::io::IsTerminal as _;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Installs the CloudWatch embedded-metric-format recorder for the `metrics` facade. The
/// function flushes it to stdout after each invocation (CloudWatch turns those lines into
/// metrics of namespace `RealtyStream`, dimension `function`).
pub fn init_emf(
    function: &'static str,
) -> Result<&'static metrics_cloudwatch_embedded::Collector, String> {
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("RealtyStream")
        .with_dimension("function", function)
        .init()
        .map_err(|e| format!("cannot install the EMF metrics recorder: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_is_a_level_and_anything_else_is_info_and_said() {
        assert_eq!(lambda_log_level(None), (LevelFilter::INFO, None));
        assert_eq!(lambda_log_level(Some(" ")), (LevelFilter::INFO, None));
        assert_eq!(lambda_log_level(Some("debug")), (LevelFilter::DEBUG, None));
        assert_eq!(lambda_log_level(Some("WARN")), (LevelFilter::WARN, None));
        assert_eq!(lambda_log_level(Some("off")), (LevelFilter::OFF, None));
        assert_eq!(
            lambda_log_level(Some("realty_core=debug,info")),
            (LevelFilter::INFO, Some("realty_core=debug,info".to_owned()))
        );
        let long = "x".repeat(65);
        assert_eq!(lambda_log_level(Some(&long)).1.map(|v| v.len()), Some(64));
    }
}
