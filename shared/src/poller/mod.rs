//! The poller: read listing APIs ([`read`], [`fetch`]), find what changed since the last
//! complete read ([`detect`]), publish the events ([`ports`]) and remember the read
//! ([`run`]). The Lambda glue is [`lambda`].

pub mod detect;
pub mod fetch;
pub mod lambda;
pub mod ports;
pub mod read;
pub mod run;
