//! Sessions on an object store (S3, memory): the store's multipart API. Parts of `part_size` bytes are uploaded as
//! the bytes arrive, keeping at least one part's worth back; at the end of a request what is left goes up as one
//! more part if it is at least `part_size` (so a 16 MiB chunk makes parts of 5, 5 and 6 MiB, and nothing is left
//! over), else to a small tail object that the next request reads back and continues, since a part in the middle
//! of an upload may not be short. Part numbers and
//! ids, the tail's key and the hash state are recorded in the session's row, so any replica continues the session.
//!
//! A writer that lost its lease may still have a part in flight that lands on a number the new writer reuses; the
//! store then holds bytes whose ETag is not the one recorded, and completing the upload fails instead of committing
//! them. Tails are named by the writer that wrote them, so a stale writer never overwrites the recorded one.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use wharf_format::{Algorithm, Digest};

use super::{row, UploadId};
use crate::{paths, Error, Metadata, Result};

/// How many parts may be in flight per request: bounds memory at about `(n + 3) * part_size`.
const PARTS_IN_FLIGHT: usize = 2;

/// The lease a shared session's request writes under; `None` for a whole upload in one request.
pub(super) struct Lease {
    pub meta: Metadata,
    pub id: String,
    pub holder: String,
}

pub(super) struct PartsWriter {
    api: Arc<dyn MultipartStore>,
    objects: Arc<dyn ObjectStore>,
    /// The staging object as the multipart API names it (with the store's prefix) and as `objects` names it.
    raw: Path,
    staging: Path,
    part_size: usize,
    pub multipart_id: Option<String>,
    pub parts: Vec<(String, u64)>,
    buf: BytesMut,
    inflight: FuturesOrdered<BoxFuture<'static, object_store::Result<(PartId, u64)>>>,
    lease: Option<Lease>,
}

impl PartsWriter {
    /// Continues a session from its row: the recorded parts, and the tail read back into the buffer.
    pub async fn open(
        api: &Arc<dyn MultipartStore>,
        prefix: &str,
        objects: &Arc<dyn ObjectStore>,
        id: &UploadId,
        session: &row::Row,
        lease: Option<Lease>,
    ) -> Result<PartsWriter> {
        let staging = paths::staged_blob(id);
        let mut buf = BytesMut::new();
        if session.tail_key.is_none() && session.tail_len() != 0 {
            return Err(Error::Corrupt(format!(
                "upload {id}: {} bytes recorded past its parts, no tail",
                session.tail_len()
            )));
        }
        if let Some(key) = &session.tail_key {
            let tail = objects.get(&Path::from(key.as_str())).await.map_err(Error::Backend)?.bytes().await?;
            if tail.len() as u64 != session.tail_len() {
                return Err(Error::Corrupt(format!(
                    "upload {id}: tail holds {} bytes, not {}",
                    tail.len(),
                    session.tail_len()
                )));
            }
            buf.extend_from_slice(&tail);
        }
        Ok(PartsWriter {
            api: Arc::clone(api),
            objects: Arc::clone(objects),
            raw: paths::with_prefix(prefix, &staging),
            staging,
            part_size: usize::try_from(session.part_size).unwrap_or(usize::MAX),
            multipart_id: session.multipart_id.clone(),
            parts: session.parts.clone(),
            buf,
            inflight: FuturesOrdered::new(),
            lease,
        })
    }

    pub async fn feed(&mut self, chunk: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&chunk);
        // One part's worth stays back, so that the request's last bytes can always make a part of their own.
        while self.buf.len() >= 2 * self.part_size {
            let part = self.buf.split_to(self.part_size).freeze();
            self.ship(part).await?;
        }
        Ok(())
    }

    /// Uploads the next part, once fewer than `PARTS_IN_FLIGHT` are in flight.
    async fn ship(&mut self, part: Bytes) -> Result<()> {
        let upload = match &self.multipart_id {
            Some(m) => m.clone(),
            None => {
                let m = self.api.create_multipart(&self.raw).await?;
                if let Some(l) = &self.lease {
                    if !row::set_multipart(&l.meta, &l.id, &l.holder, &m).await? {
                        let _ = self.api.abort_multipart(&self.raw, &m).await;
                        return Err(Error::Conflict("the upload session's writer lease was lost".into()));
                    }
                }
                self.multipart_id = Some(m.clone());
                m
            }
        };
        while self.inflight.len() >= PARTS_IN_FLIGHT {
            self.collect_one().await?;
        }
        let (api, raw, index) = (Arc::clone(&self.api), self.raw.clone(), self.parts.len() + self.inflight.len());
        let len = part.len() as u64;
        self.inflight.push_back(Box::pin(async move {
            api.put_part(&raw, &upload, index, PutPayload::from(part)).await.map(|id| (id, len))
        }));
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<()> {
        if let Some(done) = self.inflight.next().await {
            let (id, len) = done?;
            self.parts.push((id.content_id, len));
        }
        Ok(())
    }

    async fn drain(&mut self) -> Result<()> {
        while !self.inflight.is_empty() {
            self.collect_one().await?;
        }
        Ok(())
    }

    /// Waits for every part and stores what is left as the tail written by `holder`; returns its key.
    pub async fn flush(&mut self, id: &UploadId, holder: &str) -> Result<Option<String>> {
        if self.buf.len() >= self.part_size {
            let rest = self.buf.split().freeze();
            self.ship(rest).await?;
        }
        self.drain().await?;
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = paths::upload_tail(id, holder);
        self.objects.put(&key, PutPayload::from(self.buf.clone().freeze())).await?;
        Ok(Some(key.to_string()))
    }

    /// Completes the upload and commits it under `expected` if its bytes hash to it (`sha256` is the streamed
    /// SHA-256; other algorithms are checked by re-reading). Returns where the blob lies when that is not its
    /// content address.
    pub async fn commit(&mut self, expected: &Digest, sha256: Digest) -> Result<Option<String>> {
        self.drain().await?;
        let target = paths::blob(expected);
        let Some(upload) = self.multipart_id.clone() else {
            // Never filled a part: the whole blob is in memory, and one conditional PUT commits it.
            let data = self.buf.split().freeze();
            let actual = match expected.algorithm() {
                Algorithm::Sha256 => sha256,
                other => {
                    let mut h = other.hasher();
                    h.update(&data);
                    h.finish()
                }
            };
            check(expected, actual)?;
            return put_once(self.objects.as_ref(), &target, data).await.map(|()| None);
        };
        if !self.buf.is_empty() {
            let last = self.buf.split().freeze();
            self.ship(last).await?;
            self.drain().await?;
        }
        let parts = self.parts.iter().map(|(p, _)| PartId { content_id: p.clone() }).collect();
        if let Err(e) = self.api.complete_multipart(&self.raw, &upload, parts).await {
            // A completion retried after its answer was lost finds the upload gone: the object is there, whole.
            let total: u64 = self.parts.iter().map(|(_, n)| n).sum();
            let done = matches!(e, object_store::Error::NotFound { .. })
                && self.objects.head(&self.staging).await.is_ok_and(|m| m.size == total);
            if !done {
                return Err(e.into());
            }
        }
        // Completed: nothing is left to abort.
        self.multipart_id = None;
        let actual = match expected.algorithm() {
            Algorithm::Sha256 => sha256,
            other => rehash(self.objects.as_ref(), &self.staging, other).await?,
        };
        if let Err(e) = check(expected, actual) {
            let _ = self.objects.delete(&self.staging).await;
            return Err(e);
        }
        // Verified where it lies: the blob stays there (object stores have no rename, and a copy of a large blob
        // would cost as much as its upload), and the metadata records the location.
        Ok(Some(self.staging.to_string()))
    }
}

fn check(expected: &Digest, actual: Digest) -> Result<()> {
    if actual == *expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch { expected: expected.clone(), actual })
    }
}

/// Writes `data` at `target` unless it exists (the same verified content, committed by a concurrent upload).
/// Some servers answer a refused conditional PUT by closing the connection before reading the body; whatever the
/// error, a target that exists afterwards was committed by another upload (only verified bytes are ever written
/// there, each in one atomic PUT or copy), so it counts as done.
async fn put_once(objects: &dyn ObjectStore, target: &Path, data: Bytes) -> Result<()> {
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    let put = objects.put_opts(target, PutPayload::from(data.clone()), create).await;
    tracing::debug!(%target, result = ?put.as_ref().map(|_| ()), "a conditional PUT of a whole blob");
    let refused = match put {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => return Ok(()),
        Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented) => {
            objects.put(target, PutPayload::from(data)).await?;
            return Ok(());
        }
        Err(e) => e,
    };
    match objects.head(target).await {
        Ok(meta) if meta.size == data.len() as u64 => Ok(()),
        _ => Err(Error::Backend(refused)),
    }
}

/// Hashes a stored object with `algorithm`: the documented fallback for digests other than SHA-256, whose state
/// is not kept while streaming.
pub(super) async fn rehash(objects: &dyn ObjectStore, location: &Path, algorithm: Algorithm) -> Result<Digest> {
    let mut hasher = algorithm.hasher();
    let mut stream = objects.get(location).await?.into_stream().map_err(Error::from);
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(hasher.finish())
}

/// Removes everything a session keeps in the store: its multipart upload and every object under its prefix.
pub(super) async fn destroy(
    api: &Arc<dyn MultipartStore>,
    prefix: &str,
    objects: &Arc<dyn ObjectStore>,
    id: &UploadId,
    multipart_id: Option<&str>,
) -> Result<()> {
    if let Some(m) = multipart_id {
        // An upload already completed or aborted is no longer there to abort.
        let _ = api.abort_multipart(&paths::with_prefix(prefix, &paths::staged_blob(id)), &m.to_owned()).await;
    }
    let keys: Vec<Path> = objects
        .list(Some(&paths::upload_dir(id)))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(Error::Backend)?;
    for key in keys {
        match objects.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::Backend(e)),
        }
    }
    Ok(())
}
