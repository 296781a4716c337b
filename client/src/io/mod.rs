//! The I/O library over the pure formats: HTTP transport, the local content store, and one entry point per verb
//! (pull, push, publish, unpack, run), each with an options struct. [`error`] says which error type belongs where.

pub mod auth;
pub mod cosign;
pub mod credentials;
pub mod error;
pub mod images;
pub mod inspect;
pub mod layout;
pub mod migrate;
pub mod modes;
pub mod notary_v1;
pub mod policy;
pub mod progress;
pub mod publish;
pub mod pull;
pub mod push;
pub mod runtime;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod transport;
pub mod trust;
pub mod tuf;
pub mod tuf_repo;
pub mod unpack;
