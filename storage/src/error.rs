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
//! - **What the machine underneath says is read off the chain, not added as variants:** a full disk or a failing
//!   device surfaces wherever storage touches it (a file write, object_store's local store, SQLite or PostgreSQL),
//!   so [`Error::condition`] finds it in any variant's causes, and each server's table answers it (507, 503).

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

/// What a failure says about the machine underneath, whichever layer met it (see [`Error::condition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The file system or the database is full: `ENOSPC`, `EDQUOT`, SQLite's `SQLITE_FULL`, PostgreSQL's
    /// `disk_full` (53100). Nothing will fit until space is freed.
    NoSpace,
    /// The device failed a read, write or sync: `EIO`, SQLite's `SQLITE_IOERR` family, PostgreSQL's `io_error`
    /// (58030). The next request may succeed.
    IoFailed,
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

    /// The condition of the machine underneath that caused this error, if one did: found in any cause of the
    /// chain (an `std::io::Error`'s OS error, or a database's own code), so that it holds for `Io`, `Backend`
    /// (object_store's local store keeps the `io::Error` as its source), `Database` and what wraps them.
    /// A body that broke off is the client's failure, whatever its cause says.
    pub fn condition(&self) -> Option<Condition> {
        if matches!(self, Error::BodyInterrupted { .. }) {
            return None;
        }
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(c) = e.downcast_ref::<std::io::Error>().and_then(io_condition) {
                return Some(c);
            }
            if let Some(c) = e.downcast_ref::<sqlx::Error>().and_then(database_condition) {
                return Some(c);
            }
            cur = e.source();
        }
        None
    }

    /// A blocking task's failure: `spawn_blocking(..).await.map_err(Error::task("commit"))`.
    pub(crate) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Error {
        move |e| Error::Task { what, source: Arc::new(e) }
    }
}

fn io_condition(e: &std::io::Error) -> Option<Condition> {
    use rustix::io::Errno;
    let errno = Errno::from_raw_os_error(e.raw_os_error()?);
    match errno {
        Errno::NOSPC | Errno::DQUOT => Some(Condition::NoSpace),
        Errno::IO => Some(Condition::IoFailed),
        _ => None,
    }
}

/// SQLite reports its extended result code (the primary code in the low byte); PostgreSQL its SQLSTATE.
fn database_condition(e: &sqlx::Error) -> Option<Condition> {
    let code = e.as_database_error()?.code()?;
    match code.as_ref() {
        "53100" => return Some(Condition::NoSpace),
        "58030" => return Some(Condition::IoFailed),
        _ => {}
    }
    match code.parse::<i32>().ok()? & 0xff {
        SQLITE_FULL => Some(Condition::NoSpace),
        SQLITE_IOERR => Some(Condition::IoFailed),
        _ => None,
    }
}

const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: rustix::io::Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(errno.raw_os_error())
    }

    #[test]
    fn conditions_are_found_in_any_layer() {
        use rustix::io::Errno;
        let local = |e| Error::from(object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) });
        let rows: Vec<(Error, Option<Condition>)> = vec![
            (Error::io("writing", std::path::Path::new("/x"))(io(Errno::NOSPC)), Some(Condition::NoSpace)),
            (Error::io("writing", std::path::Path::new("/x"))(io(Errno::DQUOT)), Some(Condition::NoSpace)),
            (Error::io("syncing", std::path::Path::new("/x"))(io(Errno::IO)), Some(Condition::IoFailed)),
            (Error::io("opening", std::path::Path::new("/x"))(io(Errno::ACCESS)), None),
            (local(io(Errno::NOSPC)), Some(Condition::NoSpace)),
            (local(io(Errno::IO)), Some(Condition::IoFailed)),
            (Error::Database(sqlx::Error::Io(io(Errno::NOSPC))), Some(Condition::NoSpace)),
            (Error::Database(sqlx::Error::PoolTimedOut), None),
            (Error::BodyInterrupted { received: 0, source: Box::new(io(Errno::IO)) }, None),
            (Error::Corrupt("x".into()), None),
        ];
        for (e, want) in rows {
            assert_eq!(e.condition(), want, "{e:?}");
        }
    }

    #[tokio::test]
    async fn sqlite_codes_are_read() {
        // A real SQLite error: the primary code is in the extended code's low byte.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect("sqlite::memory:").await.unwrap();
        let e = sqlx::query("SELECT * FROM nowhere").execute(&pool).await.unwrap_err();
        assert_eq!(database_condition(&e), None, "{e:?}");
        assert_eq!(e.as_database_error().and_then(|d| d.code()).as_deref(), Some("1"));
    }
}
