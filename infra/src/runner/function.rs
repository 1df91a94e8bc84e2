//! The function, as the runner sees it: a handler invoked with Lambda's event JSON, whose
//! response (or error, or panic) is read back as Lambda reads it.

use std::future::Future;

use futures::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::FunctionError;
use super::delivery::{InvokeOutcome, read_response};
use super::records::StreamRecord;

/// A handler an event source mapping invokes: its event type is read from the JSON Lambda
/// would send, its response is read back as JSON (`batchItemFailures`).
pub trait StreamFunction {
    type Event: DeserializeOwned;
    type Response: Serialize;
    fn invoke(
        &self,
        event: Self::Event,
    ) -> impl Future<Output = Result<Self::Response, FunctionError>>;
}

/// Invokes `function` with `records` as one event.
pub(super) async fn invoke<F: StreamFunction>(
    function: &F,
    records: Vec<StreamRecord>,
) -> InvokeOutcome {
    let sequence_numbers: Vec<&str> = records.iter().map(|r| r.sequence_number.as_str()).collect();
    let event = json!({ "Records": records.iter().map(|r| &r.json).collect::<Vec<_>>() });
    let failed = |error_type: &str, message: String| {
        InvokeOutcome::Failed(FunctionError {
            error_type: error_type.into(),
            message,
        })
    };
    let event: F::Event = match serde_json::from_value(event) {
        Ok(e) => e,
        // The function's runtime could not read the event: Lambda reports that as a
        // function error too.
        Err(e) => return failed("Runtime.UnmarshalError", e.to_string()),
    };
    let call = std::panic::AssertUnwindSafe(function.invoke(event)).catch_unwind();
    match call.await {
        Ok(Ok(response)) => match serde_json::to_value(&response) {
            Ok(value) => read_response(&value, &sequence_numbers),
            Err(e) => failed("Runtime.MarshalError", e.to_string()),
        },
        Ok(Err(e)) => InvokeOutcome::Failed(e),
        Err(panic) => failed(
            "Runtime.Panic",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the handler panicked".into()),
        ),
    }
}
