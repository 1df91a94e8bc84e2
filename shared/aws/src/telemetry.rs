//! Logging set-up: JSON lines in Lambda (CloudWatch Logs Insights parses them), readable
//! text on a terminal.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber used by the Lambda functions. `RUST_LOG` sets the level
/// (default `info`).
pub fn init_lambda_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests, in-process handler runs) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line already.
        .try_init();
}

/// Installs a human-readable subscriber on stderr for the CLI.
pub fn init_cli_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
