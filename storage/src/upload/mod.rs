//! Upload sessions as shared state. A session's bytes stream into storage while they are hashed; its row in the
//! database (`upload_sessions`) records how many bytes it holds, the SHA-256 state after them, and where they are.
//! So any replica continues a session another started, and a session outlives the process that started it: a
//! client whose request broke off, or whose replica was killed, asks for the session's offset (from any replica)
//! and continues from there. On `finish` the digest is checked and the bytes are committed under their content
//! address atomically.
//!
//! One request at a time writes into a session: on an object store under a lease in the row that the request
//! renews while it holds the session (a lease whose holder died lapses after `LEASE_SECS`), on a local store under a lock on
//! the session's file. A request that finds the session busy waits for it, then continues from what it holds.
//! A monolithic upload (`POST ?digest=`) happens in one request and keeps no row.
//!
//! A request's bytes are recorded once received, not once durable: on a local store they are written and not
//! synced (the commit syncs them), and the row notes the machine's boot, so that a session written under an
//! earlier boot is checked against its hash state before anything continues it or reports its offset (a machine
//! crash may have lost what was not synced; then the session starts again from nothing). In the object store they
//! are uploaded parts, durable when recorded.
//!
//! SHA-256 is computed on a blocking thread one 1 MiB batch behind the bytes received (`state::Behind`), so that
//! receiving, hashing and writing a body overlap; its state is saved after every request, with exactly the bytes
//! recorded hashed. A digest of another algorithm is checked at `finish` by re-reading the bytes, the documented
//! fallback.

mod adopt;
mod file;
mod parts;
pub(crate) mod row;
mod session;
mod state;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use wharf_format::{Digest, RepositoryName};

use self::file::FileWriter;
use self::parts::PartsWriter;
use self::row::Row;
use self::state::Sha256State;
use crate::blob::BlobStore;
use crate::meta::Linked;
use crate::{paths, Error, Metadata, Result, UnixTime};

/// Seconds a writer's lease lasts without renewal: how long a session whose writer died stays busy.
const LEASE_SECS: i64 = 15;
/// How often a request renews its lease, from a task of its own, so that a slow store cannot delay it.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How long a request waits for a busy session.
const WAIT_FOR_WRITER: Duration = Duration::from_secs(LEASE_SECS as u64 + 5);

/// An upload session's identifier: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    pub fn random() -> UploadId {
        UploadId(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
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

/// A blob an upload committed: its size, and where it lies when that is not its content address (a multipart
/// upload completed in place); the metadata records both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub size: u64,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadStatus {
    /// Bytes received so far.
    pub offset: u64,
}

/// The upload sessions of the registry, over its blob store and its database.
pub struct Uploads {
    blobs: BlobStore,
    meta: Metadata,
    limits: UploadLimits,
    /// The machine's current boot; `None` where the kernel does not say, and then every request syncs its bytes.
    boot: Option<String>,
}

/// Where a request writes: a session's file, or the store's multipart API.
enum Writer {
    File(FileWriter),
    Parts(Box<PartsWriter>),
}

/// A session open for writing by one request.
struct Open {
    id: UploadId,
    /// The row as recorded when the request took the session; a monolithic upload's is never stored.
    row: Row,
    state: Sha256State,
    /// Bytes this request has added.
    received: u64,
    writer: Writer,
    /// The lease holder's token, for multipart sessions that have a row.
    holder: Option<String>,
    /// Renews the lease while the request holds the session.
    renewer: Option<session::Renewer>,
    /// Whether the session has a row (every session but a monolithic upload).
    shared: bool,
}

/// How a request's body ended, when it did not end well.
enum Stop {
    /// The client's fault: what arrived is kept, and the client may continue from there.
    Keep(Error),
    /// The session can never complete: it ends, and its bytes go.
    End(Error),
    /// Storage failed: nothing this request wrote is recorded.
    Abandon(Error),
}

impl Uploads {
    pub fn new(blobs: BlobStore, meta: Metadata, limits: UploadLimits) -> Uploads {
        Uploads { blobs, meta, limits, boot: file::boot_id() }
    }

    /// Names the machine's current boot in place of the kernel's (which `new` reads): tests stand for a reboot
    /// with it, and `None` makes every request sync its bytes.
    pub fn with_boot_id(mut self, boot: Option<String>) -> Uploads {
        self.boot = boot;
        self
    }

    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// Opens a new session for `repo`.
    pub async fn start(&self, repo: &RepositoryName, now: UnixTime) -> Result<UploadId> {
        let id = UploadId::random();
        let part_size = self.limits.part_size as u64;
        row::insert(&self.meta, id.as_str(), repo.as_str(), part_size, &Sha256State::new().save(), now).await?;
        if let Some(root) = self.blobs.local_root() {
            if let Err(e) = FileWriter::create(root.join(paths::upload_data(&id).as_ref())).await {
                row::delete(&self.meta, id.as_str()).await?;
                return Err(e);
            }
        }
        Ok(id)
    }

    /// How many bytes the session holds, as recorded (a request still streaming into it is not counted yet). A
    /// session recorded under an earlier boot is checked first, so that the offset is one that survived.
    pub async fn status(&self, id: &UploadId, repo: &RepositoryName) -> Result<UploadStatus> {
        let row = self.row(id, Some(repo)).await?;
        if !self.unchecked(&row) {
            return Ok(UploadStatus { offset: row.size });
        }
        let open = self.open(id, Some(repo), 0, WAIT_FOR_WRITER, true).await?;
        Ok(UploadStatus { offset: open.row.size })
    }

    /// Appends a request body. `start` is the chunk's declared first offset, `declared_len` its declared length.
    /// If the body breaks off, the bytes that arrived stay in the session and `BodyInterrupted` says how many.
    #[allow(clippy::too_many_arguments)]
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
        let mut open = self.open(id, Some(repo), now, WAIT_FOR_WRITER, true).await?;
        match self.receive(&mut open, start, declared_len, body).await {
            Ok(()) => Ok(UploadStatus { offset: self.save(open, now).await? }),
            Err(stop) => Err(self.stopped(open, stop, now).await),
        }
    }

    /// Appends a last body (possibly empty), then ends the session: checks that its bytes hash to `digest` and
    /// commits them as that blob. On a mismatch the session ends and nothing becomes visible. Returns the blob's
    /// size and where it lies.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete<S, E>(
        &self,
        id: &UploadId,
        repo: &RepositoryName,
        start: Option<u64>,
        declared_len: Option<u64>,
        body: S,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Committed>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut open = self.open(id, Some(repo), now, WAIT_FOR_WRITER, true).await?;
        if let Err(stop) = self.receive(&mut open, start, declared_len, body).await {
            return Err(self.stopped(open, stop, now).await);
        }
        self.commit(open, digest).await
    }

    /// Ends a session with no more bytes: see [`complete`](Self::complete).
    pub async fn finish(
        &self,
        id: &UploadId,
        repo: &RepositoryName,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Committed> {
        let none = futures::stream::empty::<std::result::Result<Bytes, std::io::Error>>();
        self.complete(id, repo, None, None, none, digest, now).await
    }

    /// A monolithic upload: the whole blob in one body, checked against `digest` and committed. No session row is
    /// kept, since no other request can continue it.
    pub async fn put_whole<S, E>(&self, declared_len: Option<u64>, body: S, digest: &Digest) -> Result<Committed>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let id = UploadId::random();
        let row = Row {
            repo: String::new(),
            size: 0,
            hash_state: Vec::new(),
            part_size: self.limits.part_size as u64,
            multipart_id: None,
            parts: Vec::new(),
            tail_key: None,
            boot_id: None,
        };
        let writer = match (self.blobs.local_root(), self.blobs.multipart()) {
            (Some(root), _) => {
                let path = root.join(paths::upload_data(&id).as_ref());
                FileWriter::create(path.clone()).await?;
                let w = FileWriter::lock(path, Duration::ZERO).await?;
                Writer::File(w.ok_or_else(|| Error::Conflict("a new upload file is locked".into()))?)
            }
            (None, Some((api, prefix))) => Writer::Parts(Box::new(
                PartsWriter::open(api, prefix, self.blobs.object_store(), &id, &row, None).await?,
            )),
            (None, None) => return Err(Error::Config("the store has neither files nor multipart uploads".into())),
        };
        let mut open = Open {
            id,
            row,
            state: Sha256State::new(),
            received: 0,
            writer,
            holder: None,
            renewer: None,
            shared: false,
        };
        if let Err(stop) = self.receive(&mut open, None, declared_len, body).await {
            let (Stop::Keep(e) | Stop::End(e) | Stop::Abandon(e)) = stop;
            self.end(open, false).await;
            return Err(e);
        }
        self.commit(open, digest).await
    }

    /// Records a committed blob in the metadata, linked into `repo`. If another upload recorded the same blob
    /// first, this upload's copy (stored in place of its multipart upload) is surplus and goes. If the collector
    /// is deleting the blob, this waits until its tombstone is gone and records it again; if the bytes this upload
    /// found at the content address went with it, the upload fails with `Collected` and records nothing.
    pub async fn record(&self, repo: &RepositoryName, digest: &Digest, c: &Committed, now: UnixTime) -> Result<()> {
        let location = c.location.as_deref();
        let waited = tokio::time::Instant::now();
        loop {
            // A new row is recorded only with its bytes found where this upload left them (see `link_verified`).
            let present = || async { Ok(self.blobs.stat_at(digest, location).await?.is_some()) };
            let (linked, version) =
                self.meta.blobs().link_verified(repo, digest, c.size, location, now, present).await?;
            tracing::debug!(%repo, %digest, ?location, ?linked, "linking an uploaded blob");
            match linked {
                Linked::Added => return Ok(()),
                // The copy this upload found in place at the content address went before the row was recorded.
                Linked::Missing => return Err(Error::Collected),
                Linked::Existing => {
                    if location.is_some() {
                        if let Err(e) = self.blobs.delete_at(digest, location).await {
                            tracing::warn!(error = %e, %digest, "removing a second copy of a blob");
                        }
                    }
                    // A live row was recorded with its bytes, which go only under a tombstone. Checked anyway: with
                    // no grace period the collector may take this very link and the blob right after the commit,
                    // and a store may lose bytes; either way the upload fails instead of reporting success.
                    let recorded = self.meta.blobs().get(repo, digest).await?.and_then(|(_, at)| at);
                    let found = self.blobs.stat_at(digest, recorded.as_deref()).await?;
                    if found.is_none() {
                        tracing::debug!(%repo, %digest, ?recorded, "the linked blob's bytes are gone");
                        self.meta.blobs().unlink_added(repo, digest, version).await?;
                        return Err(Error::Collected);
                    }
                    return Ok(());
                }
                Linked::Busy if waited.elapsed() < WAIT_FOR_WRITER => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Linked::Busy => return Err(Error::Collected),
            }
        }
    }

    /// Cancels a session and reclaims its bytes.
    pub async fn cancel(&self, id: &UploadId, repo: &RepositoryName, now: UnixTime) -> Result<()> {
        let open = self.open(id, Some(repo), now, WAIT_FOR_WRITER, false).await?;
        self.end(open, false).await;
        Ok(())
    }

    /// Cancels every session idle since before `now - idle_timeout`, and removes what crashed uploads left in a
    /// local store; returns how many sessions went.
    pub async fn expire(&self, now: UnixTime) -> usize {
        let cutoff = now - self.limits.idle_timeout_secs;
        let stale = match row::stale(&self.meta, cutoff, now).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "listing idle upload sessions");
                return 0;
            }
        };
        let mut n = 0;
        for id in stale.iter().filter_map(|s| s.parse::<UploadId>().ok()) {
            // A session busy with a request is not idle: skip it rather than wait for it.
            match self.open(&id, None, now, Duration::ZERO, false).await {
                Ok(open) => {
                    self.end(open, false).await;
                    n += 1;
                }
                Err(Error::UploadUnknown) => {
                    // Its file is gone (a crash between commit and cleanup): only the row is left.
                    if row::delete(&self.meta, id.as_str()).await.is_ok() {
                        n += 1;
                    }
                }
                Err(_) => {}
            }
        }
        if let Err(e) = self.sweep_orphans(cutoff).await {
            tracing::warn!(error = %e, "sweeping orphaned upload files");
        }
        n
    }

    /// Removes session directories of a local store that have no row and were last written before `cutoff`: what
    /// a crash left of monolithic uploads and of sessions whose row is gone.
    pub async fn sweep_orphans(&self, cutoff: UnixTime) -> Result<usize> {
        let Some(root) = self.blobs.local_root() else { return Ok(0) };
        let dir = root.join(paths::UPLOADS_DIR);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("listing", &dir)(e)),
        };
        let mut n = 0;
        while let Some(entry) = entries.next_entry().await.map_err(Error::io("listing", &dir))? {
            let modified = entry.metadata().await.ok().and_then(|m| m.modified().ok());
            let age = modified.and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
            let Ok(id) = entry.file_name().to_string_lossy().parse::<UploadId>() else { continue };
            if (age as UnixTime) < cutoff && row::load(&self.meta, id.as_str()).await?.is_none() {
                file::remove_dir(entry.path()).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn row(&self, id: &UploadId, repo: Option<&RepositoryName>) -> Result<Row> {
        match row::load(&self.meta, id.as_str()).await? {
            Some(r) if repo.is_none_or(|repo| r.repo == repo.as_str()) => Ok(r),
            _ => Err(Error::UploadUnknown),
        }
    }
}

#[cfg(test)]
fn _send_check(u: &Uploads, id: &UploadId, r: &RepositoryName, d: &Digest) {
    fn is_send<T: Send>(_: T) {}
    let body = || futures::stream::empty::<std::result::Result<Bytes, std::io::Error>>();
    is_send(u.append(id, r, None, None, body(), 0));
    is_send(u.complete(id, r, None, None, body(), d, 0));
    is_send(u.put_whole(None, body(), d));
    is_send(u.status(id, r));
    is_send(u.cancel(id, r, 0));
    is_send(u.start(r, 0));
    is_send(u.expire(0));
}
