//! Upload sessions: bytes stream into an object-store multipart upload while they are hashed; on `finish` the
//! digest is checked and the object is committed under its content address atomically.
//!
//! Sessions live in this process: a client whose connection drops keeps every byte that arrived and resumes from
//! the offset `status` reports, but a server restart ends all sessions (their bytes are swept at start, and the
//! client gets `UploadUnknown` and starts again).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::WriteMultipart;
use wharf_client::{Algorithm, Digest, Hasher, RepositoryName};

use crate::blob::BlobStore;
use crate::{paths, Error, Result, UnixTime};

/// How many multipart parts may be in flight per session: bounds memory at about `(n + 1) * part_size`.
const PARTS_IN_FLIGHT: usize = 2;

/// An upload session's identifier: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    pub fn random() -> UploadId {
        UploadId(uuid::Uuid::new_v4().simple().to_string())
    }
}

impl FromStr for UploadId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(Error::UploadUnknown)
        }
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// The largest blob accepted, in bytes.
    pub max_blob_size: u64,
    /// The size of each multipart part written to the object store.
    pub part_size: usize,
    /// Seconds a session may sit idle before it expires and its bytes are reclaimed.
    pub idle_timeout_secs: i64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits { max_blob_size: 64 << 30, part_size: 5 << 20, idle_timeout_secs: 3600 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadStatus {
    /// Bytes received so far.
    pub offset: u64,
}

struct Writer {
    parts: WriteMultipart,
    hasher: Hasher,
}

struct Session {
    repo: RepositoryName,
    offset: AtomicU64,
    touched: AtomicI64,
    /// `None` once finished or cancelled. The lock is held while a request streams into the session.
    writer: tokio::sync::Mutex<Option<Writer>>,
}

/// The upload sessions of this process.
pub struct Uploads {
    blobs: BlobStore,
    limits: UploadLimits,
    sessions: Mutex<HashMap<UploadId, Arc<Session>>>,
}

impl Uploads {
    pub fn new(blobs: BlobStore, limits: UploadLimits) -> Uploads {
        Uploads { blobs, limits, sessions: Mutex::new(HashMap::new()) }
    }

    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// Opens a new session for `repo`.
    pub async fn start(&self, repo: &RepositoryName, now: UnixTime) -> Result<UploadId> {
        let id = UploadId::random();
        let upload = self.blobs.object_store().put_multipart(&paths::upload_data(&id)).await?;
        let writer = Writer {
            parts: WriteMultipart::new_with_chunk_size(upload, self.limits.part_size),
            hasher: Algorithm::Sha256.hasher(),
        };
        let session = Session {
            repo: repo.clone(),
            offset: AtomicU64::new(0),
            touched: AtomicI64::new(now),
            writer: tokio::sync::Mutex::new(Some(writer)),
        };
        self.table().insert(id.clone(), Arc::new(session));
        Ok(id)
    }

    pub fn status(&self, id: &UploadId, repo: &RepositoryName) -> Result<UploadStatus> {
        let session = self.session(id, repo)?;
        Ok(UploadStatus { offset: session.offset.load(Ordering::Acquire) })
    }

    /// Appends a request body. `start` is the chunk's declared first offset, `declared_len` its declared length.
    /// If the body breaks off, the bytes that arrived stay in the session and `BodyInterrupted` says how many.
    pub async fn append<S, E>(
        &self,
        id: &UploadId,
        repo: &RepositoryName,
        start: Option<u64>,
        declared_len: Option<u64>,
        body: S,
        now: UnixTime,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let session = self.session(id, repo)?;
        let mut guard = session.writer.lock().await;
        let writer = guard.as_mut().ok_or(Error::UploadUnknown)?;
        session.touched.store(now, Ordering::Release);
        let offset = session.offset.load(Ordering::Acquire);
        if start.is_some_and(|s| s != offset) {
            return Err(Error::RangeInvalid { offset });
        }
        let max = self.limits.max_blob_size;
        if declared_len.is_some_and(|n| offset.saturating_add(n) > max) {
            // The session cannot ever complete within the limit: end it and reclaim its bytes.
            drop(guard);
            self.cancel(id, repo).await?;
            return Err(Error::TooLarge { max });
        }
        let mut received = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    return Err(Error::BodyInterrupted { received: offset + received, source: Box::new(e) });
                }
            };
            let len = chunk.len() as u64;
            if offset + received + len > max {
                // The session cannot ever complete within the limit: end it and reclaim its bytes.
                drop(guard);
                self.cancel(id, repo).await?;
                return Err(Error::TooLarge { max });
            }
            if declared_len.is_some_and(|n| received + len > n) {
                return Err(Error::SizeMismatch { expected: declared_len.unwrap_or(0), actual: received + len });
            }
            writer.parts.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            writer.hasher.update(&chunk);
            writer.parts.put(chunk);
            received += len;
            session.offset.store(offset + received, Ordering::Release);
        }
        if let Some(expected) = declared_len {
            if received != expected {
                return Err(Error::SizeMismatch { expected, actual: received });
            }
        }
        Ok(UploadStatus { offset: offset + received })
    }

    /// Ends a session: checks that its bytes hash to `digest` and commits them as that blob. On a mismatch the
    /// session is ended and nothing becomes visible. Returns the blob's size.
    pub async fn finish(&self, id: &UploadId, repo: &RepositoryName, digest: &Digest) -> Result<u64> {
        let session = self.session(id, repo)?;
        let mut guard = session.writer.lock().await;
        let writer = guard.take().ok_or(Error::UploadUnknown)?;
        self.table().remove(id);
        let size = session.offset.load(Ordering::Acquire);
        let location = paths::upload_data(id);
        let store = self.blobs.object_store();
        writer.parts.finish().await?;
        let actual = match digest.algorithm() {
            Algorithm::Sha256 => writer.hasher.finish(),
            other => rehash(store.as_ref(), &location, other).await?,
        };
        if actual != *digest {
            store.delete(&location).await?;
            return Err(Error::DigestMismatch { expected: digest.clone(), actual });
        }
        if let Some(root) = self.blobs.local_root() {
            let (from, to) = (root.join(location.as_ref()), root.join(paths::blob(digest).as_ref()));
            tokio::task::spawn_blocking(move || crate::durable::commit(&from, &to))
                .await
                .map_err(|e| Error::Config(format!("commit task: {e}")))??;
            return Ok(size);
        }
        // Object stores have no rename: the verified bytes are copied to their content address, then the staging
        // object goes. Where the store can refuse an existing target it does; where it cannot (S3 without a
        // conditional copy), a concurrent commit of the same blob writes the same verified bytes, and each copy is
        // atomic, so readers see the whole blob or none.
        let target = paths::blob(digest);
        match store.copy_if_not_exists(&location, &target).await {
            Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented) => {
                store.copy(&location, &target).await?
            }
            Err(e) => return Err(Error::Backend(e)),
        }
        store.delete(&location).await?;
        Ok(size)
    }

    /// Cancels a session and reclaims its bytes.
    pub async fn cancel(&self, id: &UploadId, repo: &RepositoryName) -> Result<()> {
        let session = self.session(id, repo)?;
        self.table().remove(id);
        let writer = session.writer.lock().await.take();
        if let Some(w) = writer {
            w.parts.abort().await?;
        }
        Ok(())
    }

    /// Cancels every session idle since before `now - idle_timeout`; returns how many.
    pub async fn expire(&self, now: UnixTime) -> usize {
        let cutoff = now - self.limits.idle_timeout_secs;
        let stale: Vec<(UploadId, RepositoryName)> = self
            .table()
            .iter()
            .filter(|(_, s)| s.touched.load(Ordering::Acquire) < cutoff)
            .map(|(id, s)| (id.clone(), s.repo.clone()))
            .collect();
        let mut n = 0;
        for (id, repo) in stale {
            // A session busy with a request is not idle: skip it rather than wait for it.
            let busy = self.session(&id, &repo).map(|s| s.writer.try_lock().is_err()).unwrap_or(true);
            if !busy && self.cancel(&id, &repo).await.is_ok() {
                n += 1;
            }
        }
        n
    }

    fn session(&self, id: &UploadId, repo: &RepositoryName) -> Result<Arc<Session>> {
        match self.table().get(id) {
            Some(s) if s.repo == *repo => Ok(Arc::clone(s)),
            _ => Err(Error::UploadUnknown),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, Arc<Session>>> {
        // A panic while holding this lock cannot leave the map half-updated (single insert/remove calls).
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn rehash(
    store: &dyn object_store::ObjectStore,
    location: &object_store::path::Path,
    algorithm: Algorithm,
) -> Result<Digest> {
    let mut hasher = algorithm.hasher();
    let mut stream = store.get(location).await?.into_stream().map_err(Error::from);
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(hasher.finish())
}
