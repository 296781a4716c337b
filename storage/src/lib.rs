//! Wharf's storage: content-addressed blobs over `object_store`, upload sessions, and metadata over `sqlx`.
//!
//! This crate knows nothing of HTTP. Every value it takes is already parsed (`Digest`, `RepositoryName`, `Tag`,
//! `UploadId`); every failure is an [`Error`] variant a caller can act on.

pub mod backup;
pub mod blob;
pub mod cache;
mod durable;
mod error;
pub mod gc;
pub mod meta;
pub mod modes;
mod paths;
pub mod remote;
pub mod scrub;
pub mod upload;

pub use blob::{BlobRead, BlobStore, ByteRange, S3Options};
pub use cache::BlobCache;
pub use error::{Condition, Error};
pub use gc::{Collector, Phases, Reconciled, Swept};
pub use meta::{
    AccountKind, AccountRow, Actor, AuditQuery, AuditRow, Cached, Change, ChangeQuery, ChangeRow, EventRow, GrantRow,
    HistoryRow, Journal, KeyRow, Linked, ManifestRecord, Metadata, MetadataRow, NameRange, NewManifest, Origin,
    Recorder, Referrer, SeenBlob, SessionRow, TrustFormat, V1KeyRow, V1Row,
};
pub use remote::Unavailable;
pub use upload::{Committed, UploadId, UploadLimits, UploadStatus, Uploads};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Seconds since the Unix epoch, as stored in the database. Callers pass it in so that storage reads no clock.
pub type UnixTime = i64;

/// The time source the servers inject (tests move it); storage itself never calls it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as UnixTime)
    }
}
