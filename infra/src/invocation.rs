//! What an invocation is on Lambda, shared by both local stand-ins for it: the event source
//! mappings ([`crate::runner`]) and the Runtime API ([`crate::lambda_api`]).

/// Lambda's limit on a synchronous invocation's payload (the event, and the response).
pub const MAX_INVOKE_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// A failure Lambda reports as a function error (`errorType`, `errorMessage`): a handler's
/// error, its panic, or what a function process posted to the Runtime API. An event source
/// mapping bisects and retries on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct FunctionError {
    pub error_type: String,
    pub message: String,
}
