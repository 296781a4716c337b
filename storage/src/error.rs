//! Storage's one error type, and which error belongs in which layer.
//!
//! - **Callers see only [`Error`].** The registry, the notary and the tools match on its variants: one per outcome a
//!   caller acts on (`BlobUnknown`, `DigestMismatch`, `Conflict`, `TooLarge`, ...). Which HTTP status each gets is
//!   decided in each server's one error table, never here.
//! - **What storage stands on keeps its own error as the `#[source]`:** `Backend` (object_store), `Database` (sqlx),
//!   `DatabaseUrl`, `Io` (the local file system, with what was done to which path), `Json` (a record's encoding) and
//!   `Task` (a blocking task that panicked or was cancelled). Nothing is flattened into a string on the way up, so a
//!   log shows the whole chain.
//! - **A backend outcome that means something becomes a domain variant where the call is made:** object_store's
//!   `NotFound` is `BlobUnknown` (the `From` below); a unique-constraint violation or a lost race is `Conflict` in
//!   the method that ran the query; a stored value that does not parse is `Corrupt`, never an empty value.
//! - **Inside the crate,** a module may keep a private type for its own control flow (the upload's `Stop`, which
//!   says whether a failed write keeps, ends or abandons its session); it carries an `Error` and is unwrapped at
//!   the module's edge.
//! - `Config` is for a configuration storage cannot use, found by storage's own checks.

use std::sync::Arc;

use wharf_format::Digest;

/// Everything storage can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob unknown to this repository")]
    BlobUnknown,
    #[error("upload session unknown or expired")]
    UploadUnknown,
    #[error("manifest unknown")]
    ManifestUnknown,
    #[error("repository unknown")]
    NameUnknown,
    #[error("content digest {actual} does not match {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("received {actual} bytes where {expected} were declared")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("chunk does not start at the upload's offset {offset}")]
    RangeInvalid { offset: u64 },
    #[error("blob exceeds the maximum size of {max} bytes")]
    TooLarge { max: u64 },
    #[error("request body ended early; {received} bytes of the upload are kept")]
    BodyInterrupted {
        received: u64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("manifest references content the repository does not have: {0:?}")]
    ReferencesMissing(Vec<Digest>),
    #[error("the blob was garbage-collected while this upload committed it; upload it again")]
    Collected,
    /// A write would take a quota over its limit; nothing of it was stored.
    #[error("quota {quota} exceeded: {usage} of {limit} bytes used, {adding} more needed")]
    QuotaExceeded { quota: String, usage: u64, limit: u64, adding: u64 },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid storage configuration: {0}")]
    Config(String),
    #[error("object store failed")]
    Backend(#[source] object_store::Error),
    #[error("database failed")]
    Database(#[source] sqlx::Error),
    #[error("invalid database URL")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A blocking task panicked or was cancelled; shared, since one task may carry several outcomes.
    #[error("the {what} task failed")]
    Task {
        what: &'static str,
        #[source]
        source: Arc<tokio::task::JoinError>,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Error::BlobUnknown,
            other => Error::Backend(other),
        }
    }
}

impl Error {
    pub(crate) fn io(what: impl std::fmt::Display, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
        let what = format!("{what} {}", path.display());
        move |source| Error::Io { what, source }
    }

    /// A blocking task's failure: `spawn_blocking(..).await.map_err(Error::task("commit"))`.
    pub(crate) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Error {
        move |e| Error::Task { what, source: Arc::new(e) }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}
