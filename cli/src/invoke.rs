//! `realty invoke FUNCTION --event FILE`: the real handler, once, in-process, against a stack.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use aws_lambda_events::event::kinesis::KinesisEvent;
use realty_shared::metrics::lambda::MetricsFunction;

use crate::target;

pub async fn run(function: &str, event_file: &Path, stack: Option<&str>) -> Result<()> {
    let text = std::fs::read_to_string(event_file)
        .with_context(|| format!("cannot read {}", event_file.display()))?;
    let target = target::resolve(stack).await?;
    match function {
        "metrics" => {
            let event: KinesisEvent = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a Kinesis event", event_file.display()))?;
            let handler = MetricsFunction::new(&target.sdk, &target.resources);
            let (response, outcomes) = Box::pin(handler.handle(event)).await;
            for outcome in &outcomes {
                eprintln!("{}", serde_json::to_string(&outcome.stats)?);
                if let Some(e) = &outcome.error {
                    eprintln!("batch failed: {e}");
                }
            }
            println!("{}", serde_json::to_string_pretty(&response)?);
            Ok(())
        }
        "poller" | "alerts" => {
            bail!("the {function} handler is not implemented yet (issues #4 and #6)")
        }
        other => bail!("no function {other:?}: poller, metrics or alerts"),
    }
}
