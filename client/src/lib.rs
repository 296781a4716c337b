//! Wharf's client library, in two layers that match ARCHITECTURE.md, on top of the pure formats of `wharf-format`:
//!
//! - [`io`]: transport, content store, pull, push, publish, trust updates, unpack, runtime.
//! - [`cli`] (feature `cli`): the `wharf` client commands and the `wharf-tuf-client` program, one file per command
//!   group.
//!
//! Paths name their layer (`wharf_client::io::pull`, `wharf_format::digest`): nothing is re-exported at the root.

#[cfg(feature = "cli")]
pub mod cli;
pub mod io;
