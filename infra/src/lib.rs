//! Local AWS tooling for realty-stream: the emulator launcher ([`emulator`]), template.yaml
//! read as data ([`template`]), provisioning of its resources into any endpoint
//! ([`provision`]), and finding a stack's resources wherever it runs ([`stack`]). Lambda
//! itself is stood in for twice, sharing what an invocation is ([`invocation`]): the event
//! source mappings ([`runner`]) feed stream records to handlers in-process, and a local
//! Lambda Runtime API ([`lambda_api`]) runs a function's real `bootstrap` binary to measure
//! its cold start, invocations and memory.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod emulator;
pub mod invocation;
pub mod lambda_api;
pub mod provision;
pub mod runner;
pub mod stack;
pub mod template;
