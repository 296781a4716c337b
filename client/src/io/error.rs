//! Which error type belongs where in the client, and how causes travel.
//!
//! - **Pure formats** (`wharf_format`): one error per format (`DigestError`, `NameError`, `ManifestError`,
//!   `TufError`, ...), with no I/O in them. The crate's root documentation has its own guide.
//! - **I/O layer** (`crate::io`): one `thiserror` enum per verb or boundary, in the module that owns it:
//!   [`TransportError`](crate::io::transport::TransportError) for HTTP, [`FetchError`](crate::io::store::FetchError)
//!   for verified downloads, [`TrustError`](crate::io::trust::TrustError) for the TUF workflow,
//!   [`PullError`](crate::io::pull::PullError), [`PushError`](crate::io::push::PushError),
//!   [`PublishError`](crate::io::publish::PublishError), [`UnpackError`](crate::io::unpack::UnpackError),
//!   [`SnapshotError`](crate::io::snapshot::SnapshotError), [`RuntimeError`](crate::io::runtime::RuntimeError),
//!   [`CredentialsError`](crate::io::credentials::CredentialsError). A variant is something a caller can act on;
//!   a lower layer's error is kept whole, as `#[source]` (or `#[error(transparent)]` when it adds nothing), never
//!   turned into a `String`. A message never repeats its source: the chain is printed once, cause by cause. A
//!   `String` field holds only words of our own or a server's answer as it wrote it (a refusal's body, a credential
//!   helper's output), never another error's `Display`.
//! - **Classes**: each I/O error says what kind of failure it is through `failure()` (a
//!   [`Failure`](crate::io::source::Failure): verification, denied, unreachable, other), looking through its
//!   sources; that class, not the message, decides the `wharf` exit code.
//! - **File-system code that returns `std::io::Result`** names the path or operation with [`IoContext::wrap`],
//!   which keeps the cause (and its `ErrorKind`) as the source.
//! - **CLI** (`crate::cli`): `anyhow`, with `.context()` for what the user asked; it prints the whole chain (`{:#}`)
//!   and `cli::exit_code` walks it for the first error that knows its class. Plain strings are fine there: they are
//!   messages to the user. Where a cause must be shown inside one message line (a list of failed sources, a log
//!   field), [`report`](crate::io::transport::report) writes the chain out.

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
