//! A bounded local cache of blobs read from a remote store (S3), on each replica's own disk. Committed blobs are
//! immutable and named by digest, so a cached copy can never be stale: a blob is cached only when a full read has
//! streamed through and its bytes hashed to its digest, under a temporary name renamed into place. The response
//! waits for the writer only when `QUEUE` chunks are waiting (local disk and SHA-256 outpace a remote store); if
//! the writer fails, the response goes on uncached.
//! The least recently read blobs are evicted beyond `max_bytes`. Whether a repository may see a blob is decided by
//! the metadata before any read, so the cache never widens access.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::mpsc::{channel, Receiver};
use tokio_util::sync::PollSender;
use wharf_format::Digest;

use crate::{Error, Result};

/// Chunks queued between the response and the writer thread, at most (S3 reads arrive in chunks of 64 KiB or
/// less: a few MiB).
const QUEUE: usize = 64;

#[derive(Debug)]
pub struct BlobCache {
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
}

impl BlobCache {
    /// Opens (creating) the cache directory; drops fills a crash interrupted and counts what is cached.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Arc<BlobCache>> {
        crate::modes::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        let mut used = 0;
        for entry in std::fs::read_dir(dir).map_err(Error::io("listing", dir))?.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("tmp-") {
                let _ = std::fs::remove_file(entry.path());
            } else {
                used += entry.metadata().map_or(0, |m| m.len());
            }
        }
        Ok(Arc::new(BlobCache { dir: dir.to_owned(), max_bytes, used: AtomicU64::new(used) }))
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(format!("{}-{}", d.algorithm().as_str(), d.hex()))
    }

    /// The cached copy of `d` and its size, marked as just read.
    pub fn get(&self, d: &Digest) -> Option<(File, u64)> {
        let file = File::open(self.path(d)).ok()?;
        let size = file.metadata().ok()?.len();
        let _ = file.set_modified(std::time::SystemTime::now());
        Some((file, size))
    }

    /// Streams `body` (a full read of `d`, `size` bytes) through unchanged while caching it.
    pub fn fill(
        self: &Arc<Self>,
        d: &Digest,
        size: u64,
        body: BoxStream<'static, Result<Bytes>>,
    ) -> BoxStream<'static, Result<Bytes>> {
        if size > self.max_bytes / 2 {
            return body;
        }
        let (tx, rx) = channel::<Bytes>(QUEUE);
        let (cache, digest) = (Arc::clone(self), d.clone());
        tokio::task::spawn_blocking(move || cache.write(&digest, size, rx));
        Tee { body, tx: Some(PollSender::new(tx)), held: None }.boxed()
    }

    /// The writer thread: the bytes to a temporary file, hashed; renamed into place only if they are all there
    /// and hash to the digest.
    fn write(&self, d: &Digest, size: u64, mut rx: Receiver<Bytes>) {
        let tmp = self.dir.join(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let Ok(mut file) = crate::modes::file_options().write(true).create_new(true).open(&tmp) else { return };
        let mut hasher = d.algorithm().hasher();
        let mut written = 0u64;
        // The sender goes away when the body ends (all bytes sent) or breaks off (fewer).
        while let Some(chunk) = rx.blocking_recv() {
            hasher.update(&chunk);
            written += chunk.len() as u64;
            if file.write_all(&chunk).is_err() {
                let _ = std::fs::remove_file(&tmp);
                return;
            }
        }
        drop(file);
        if written != size || hasher.finish() != *d || std::fs::rename(&tmp, self.path(d)).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        if self.used.fetch_add(size, Ordering::AcqRel) + size > self.max_bytes {
            self.evict();
        }
    }

    /// Removes the least recently read blobs until the cache is under 90% of its bound.
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with("tmp-"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        files.sort();
        let mut used: u64 = files.iter().map(|f| f.1).sum();
        for (_, len, path) in files {
            if used <= self.max_bytes / 10 * 9 {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                used -= len;
            }
        }
        self.used.store(used, Ordering::Release);
    }

    /// Drops `d`'s cached copy (its blob was deleted).
    pub fn remove(&self, d: &Digest) {
        if let Ok(m) = std::fs::metadata(self.path(d)) {
            if std::fs::remove_file(self.path(d)).is_ok() {
                self.used.fetch_sub(m.len().min(self.used.load(Ordering::Acquire)), Ordering::AcqRel);
            }
        }
    }
}

/// A body passed through unchanged, each chunk handed to the cache's writer before it is passed on.
struct Tee {
    body: BoxStream<'static, Result<Bytes>>,
    tx: Option<PollSender<Bytes>>,
    /// A chunk received and not yet passed on (the writer's queue was full).
    held: Option<Bytes>,
}

impl Stream for Tee {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.held.is_none() {
            match self.body.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.held = Some(chunk),
                other => {
                    // The end (the writer checks it has every byte), an error, or nothing yet.
                    if !matches!(other, Poll::Pending) {
                        self.tx = None;
                    }
                    return other;
                }
            }
        }
        if let Some(tx) = self.tx.as_mut() {
            match tx.poll_reserve(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {
                    let chunk = self.held.clone().unwrap_or_default();
                    if self.tx.as_mut().is_some_and(|tx| tx.send_item(chunk).is_err()) {
                        self.tx = None;
                    }
                }
                // The writer gave up: the rest streams uncached.
                Poll::Ready(Err(_)) => self.tx = None,
            }
        }
        Poll::Ready(self.held.take().map(Ok))
    }
}
