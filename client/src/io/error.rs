//! Which error type belongs in which layer of the client, and how causes travel.
//!
//! - **Formats** (`wharf_format`): one error per format, beside its parser; that crate's root has its own guide.
//! - **I/O** (`crate::io`): one `thiserror` enum per verb or boundary, in its module: `TransportError` (HTTP),
//!   `FetchError` (verified downloads), `TrustError` (the TUF workflow), `PullError`, `PushError`, `PublishError`,
//!   `UnpackError`, `SnapshotError`, `RuntimeError`, `CredentialsError`. Variants are what a caller can act on. A
//!   lower layer's error is kept whole as `#[source]` (or `#[error(transparent)]` when the variant adds nothing),
//!   never turned into a `String`, and a message never repeats its source. A `String` field holds our own words or
//!   a server's answer as it wrote it (a refusal's body, a credential helper's output). File-system code returning
//!   `std::io::Result` names the path with [`IoContext::wrap`], which keeps the cause and its `ErrorKind`.
//! - **Classes**: each I/O error's `failure()` says what kind of failure it is
//!   ([`Failure`](crate::io::source::Failure): verification, denied, unreachable, other), looking into its
//!   sources; the class, never the message, decides the `wharf` exit code.
//! - **CLI** (`crate::cli`): `anyhow`, with `.context()`; plain strings are fine there, as messages to the user.
//!   `wharf` prints the whole chain (`{:#}`) and `cli::exit_code` walks it for the first error that knows its
//!   class. Where a cause must fit in one line (a list of failed sources, a log field),
//!   [`report`](crate::io::transport::report) writes the chain out.

/// An I/O error and what it happened to (a path, an operation): the `io::Error` the file-system code returns
/// carries it with the cause's kind, and the cause stays its source.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct IoContext {
    what: String,
    #[source]
    source: std::io::Error,
}

impl IoContext {
    /// `source`, wrapped so that its message says `what` it happened to.
    pub fn wrap(what: impl std::fmt::Display, source: impl Into<std::io::Error>) -> std::io::Error {
        let source: std::io::Error = source.into();
        std::io::Error::new(source.kind(), IoContext { what: what.to_string(), source })
    }
}
