//! Local AWS tooling for realty-stream: the emulator launcher ([`emulator`]), template.yaml
//! read as data ([`template`]), provisioning of its resources into any endpoint
//! ([`provision`]), and finding a stack's resources wherever it runs ([`stack`]).

pub mod emulator;
pub mod provision;
pub mod runner;
pub mod stack;
pub mod template;
