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
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid storage configuration: {0}")]
    Config(String),
    #[error("object store failed")]
    Backend(#[source] object_store::Error),
    #[error("database failed")]
    Database(#[source] sqlx::Error),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
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
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}
