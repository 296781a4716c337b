//! The content-addressed blob store: committed content by digest, read as streams.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::multipart::MultipartStore;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};
use url::Url;
use wharf_format::Digest;

use crate::cache::BlobCache;
use crate::{paths, Error, Result};

/// Window size for blobs served from a local file.
const FILE_READ_CHUNK: usize = 2 << 20;

/// An inclusive byte range of a blob, already checked against nothing: `open` checks it against the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive end; `None` means to the end of the blob.
    pub end: Option<u64>,
}

/// An open blob: its total size, the range being read, and the bytes as a stream.
pub struct BlobRead {
    pub size: u64,
    /// The inclusive range of the body, `(start, end)`.
    pub range: (u64, u64),
    pub body: BoxStream<'static, Result<Bytes>>,
}

/// How to reach an S3-compatible store; unset fields come from the usual `AWS_*` variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// `http://127.0.0.1:9000` for a local server; default AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`), as most S3-compatible servers want.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// How long one request may spend on retries (default [`crate::remote::S3_RETRY_TIMEOUT`]).
    pub retry_timeout: Option<std::time::Duration>,
    /// How long a read may wait for its answer or its next bytes (default [`crate::remote::S3_STALL_TIMEOUT`]).
    pub stall_timeout: Option<std::time::Duration>,
}

#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// For S3: the client that presigns URLs, and the key prefix the store adds.
    signer: Option<(Arc<object_store::aws::AmazonS3>, String)>,
    /// The store's multipart API and the key prefix it needs (S3 and memory), where upload sessions keep their
    /// parts. `None` for a local store, whose sessions are files under `local_root`.
    multipart: Option<(Arc<dyn MultipartStore>, String)>,
    /// The root directory when the store is local.
    local_root: Option<PathBuf>,
    /// For S3: the client that reads blobs, with no whole-request timeout (object_store's default of 30 s cut a
    /// 1 GiB body at a slow link); its reads are timed by their stalls instead (`stall`).
    reads: Option<Arc<dyn ObjectStore>>,
    stall: std::time::Duration,
    /// How long one attempt of a read waits for its answer: the stall timeout plus S3's retry timeout (object_store
    /// retries error answers and lost connections within the attempt).
    answer: std::time::Duration,
    /// A local cache of blobs read from a remote store.
    cache: Option<Arc<BlobCache>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore").field("store", &self.store).field("local_root", &self.local_root).finish()
    }
}

impl BlobStore {
    /// Opens a store named by URL: `file:///absolute/dir` or `memory://` (or `s3://` configured by `AWS_*`).
    pub fn from_url(url: &Url) -> Result<BlobStore> {
        BlobStore::connect(url, &S3Options::default())
    }

    /// Opens a store named by URL: `file:///absolute/dir`, `memory://`, or `s3://BUCKET[/PREFIX]`.
    pub fn connect(url: &Url, s3: &S3Options) -> Result<BlobStore> {
        match url.scheme() {
            "s3" => {
                let bucket = url.host_str().ok_or_else(|| Error::Config(format!("{url}: no bucket")))?;
                let client = |whole: bool| crate::remote::s3_client(bucket, s3, whole);
                let (s3_client, reader) = (client(true)?, client(false)?);
                let prefix = url.path().trim_matches('/').to_owned();
                let prefixed = |c: &Arc<object_store::aws::AmazonS3>| -> Arc<dyn ObjectStore> {
                    if prefix.is_empty() {
                        Arc::clone(c) as Arc<dyn ObjectStore>
                    } else {
                        Arc::new(object_store::prefix::PrefixStore::new(
                            Arc::clone(c) as Arc<dyn ObjectStore>,
                            prefix.as_str(),
                        ))
                    }
                };
                let (store, reads) = (prefixed(&s3_client), prefixed(&reader));
                let stall = s3.stall_timeout.unwrap_or(crate::remote::S3_STALL_TIMEOUT);
                let multipart = Some((Arc::clone(&s3_client) as Arc<dyn MultipartStore>, prefix.clone()));
                Ok(BlobStore {
                    store,
                    signer: Some((s3_client, prefix)),
                    multipart,
                    local_root: None,
                    cache: None,
                    reads: Some(reads),
                    stall,
                    answer: stall + s3.retry_timeout.unwrap_or(crate::remote::S3_RETRY_TIMEOUT),
                })
            }
            "file" => {
                let dir = url.to_file_path().map_err(|()| Error::Config(format!("bad file URL {url}")))?;
                crate::modes::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true);
                Ok(BlobStore {
                    store: Arc::new(fs),
                    signer: None,
                    multipart: None,
                    local_root: Some(dir),
                    cache: None,
                    reads: None,
                    stall: crate::remote::S3_STALL_TIMEOUT,
                    answer: crate::remote::S3_STALL_TIMEOUT,
                })
            }
            "memory" => {
                let memory = Arc::new(InMemory::new());
                let multipart = Some((Arc::clone(&memory) as Arc<dyn MultipartStore>, String::new()));
                Ok(BlobStore {
                    store: memory,
                    signer: None,
                    multipart,
                    local_root: None,
                    cache: None,
                    reads: None,
                    stall: crate::remote::S3_STALL_TIMEOUT,
                    answer: crate::remote::S3_STALL_TIMEOUT,
                })
            }
            other => Err(Error::Config(format!("unsupported storage URL scheme {other:?} (file, memory, s3)"))),
        }
    }

    /// Keeps a local cache of the blobs read from this (remote) store; a local store needs none.
    pub fn with_cache(mut self, cache: Arc<BlobCache>) -> BlobStore {
        if self.local_root.is_none() {
            self.cache = Some(cache);
        }
        self
    }

    /// The root directory of a local store, whose commits Wharf makes durable itself.
    pub(crate) fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    pub(crate) fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The answer (the headers) of a read: [`crate::remote::answer`] with this store's limit.
    async fn answer<F, Fut>(&self, get: F) -> Result<object_store::Result<object_store::GetResult>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<object_store::GetResult>>,
    {
        crate::remote::answer(self.answer, get).await
    }

    /// A whole read of the object at `key`, its body counted and timed by its stalls (see `reads`): what the
    /// scrub and backups read blobs with.
    pub(crate) async fn read_counted(
        &self,
        key: &object_store::path::Path,
    ) -> Result<Option<(u64, BoxStream<'static, Result<Bytes>>)>> {
        let reader = self.reads.as_ref().unwrap_or(&self.store);
        let got = match self.answer(|| reader.get(key)).await? {
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::Backend(e)),
            Ok(g) => g,
        };
        let size = got.meta.size;
        let body = got.into_stream().map_err(Error::Backend).boxed();
        Ok(Some((size, crate::remote::exact(body, size, self.stall))))
    }

    /// The local cache of a remote store's blobs, if it keeps one.
    pub(crate) fn cache_of(&self) -> Option<&Arc<BlobCache>> {
        self.cache.as_ref()
    }

    /// The multipart API and its key prefix, for stores that have one.
    pub(crate) fn multipart(&self) -> Option<(&Arc<dyn MultipartStore>, &str)> {
        self.multipart.as_ref().map(|(m, p)| (m, p.as_str()))
    }

    /// A URL that lets its holder GET the committed blob `digest` straight from the store until `expires_in` has
    /// passed; `None` for stores that cannot presign (local and memory).
    pub async fn presigned_get(&self, digest: &Digest, expires_in: std::time::Duration) -> Result<Option<Url>> {
        self.presigned_get_at(digest, None, expires_in).await
    }

    /// [`presigned_get`](Self::presigned_get) of a blob stored at `location` (see [`open_at`](Self::open_at)).
    pub async fn presigned_get_at(
        &self,
        digest: &Digest,
        location: Option<&str>,
        expires_in: std::time::Duration,
    ) -> Result<Option<Url>> {
        let Some((s3, prefix)) = &self.signer else { return Ok(None) };
        let full = paths::with_prefix(prefix, &paths::stored_blob(digest, location));
        let url = object_store::signer::Signer::signed_url(s3.as_ref(), http::Method::GET, &full, expires_in).await?;
        Ok(Some(url))
    }

    /// Whether the store answers (for `/readyz`): a lookup of a key that does not exist must say so.
    pub async fn ping(&self) -> Result<()> {
        match self.store.head(&object_store::path::Path::from("readyz/probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::Backend(e)),
        }
    }

    /// The size of a committed blob, or `None`.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        self.stat_at(digest, None).await
    }

    /// The size of a committed blob stored at `location`, or `None`.
    pub async fn stat_at(&self, digest: &Digest, location: Option<&str>) -> Result<Option<u64>> {
        match self.store.head(&paths::stored_blob(digest, location)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::Backend(e)),
        }
    }

    /// Opens a committed blob for reading, whole or a range of it. A range outside the blob is `RangeInvalid`.
    pub async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobRead> {
        self.open_at(digest, None, range).await
    }

    /// Opens a committed blob stored at `location`: where the metadata says its upload left it, `None` for its
    /// content address.
    pub async fn open_at(&self, digest: &Digest, at: Option<&str>, range: Option<ByteRange>) -> Result<BlobRead> {
        let location = paths::stored_blob(digest, at);
        if let Some(cached) = self.cache.as_ref().and_then(|c| c.get(digest)) {
            return cached_read(cached, range);
        }
        if let Some(r) = &range {
            // Checked against the size here, so that a bad range is recognised by value, never by error text.
            let size = self.stat_at(digest, at).await?.ok_or(Error::BlobUnknown)?;
            if r.start >= size || r.end.is_some_and(|e| e < r.start) {
                return Err(Error::RangeInvalid { offset: size });
            }
        }
        let options = GetOptions {
            range: range.map(|r| match r.end {
                Some(end) => GetRange::Bounded(r.start..end.saturating_add(1)),
                None => GetRange::Offset(r.start),
            }),
            ..Default::default()
        };
        let reader = self.reads.as_ref().unwrap_or(&self.store);
        let result = match self.answer(|| reader.get_opts(&location, options.clone())).await? {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(Error::BlobUnknown),
            Err(object_store::Error::NotModified { .. }) => return Err(Error::BlobUnknown),
            Err(e) => return Err(Error::Backend(e)),
        };
        let size = result.meta.size;
        let r = result.range.clone();
        let span = (r.start, r.end.saturating_sub(1));
        let body = match result.payload {
            GetResultPayload::File(file, _) => file_stream(file, r.start, r.end - r.start),
            // A remote body is counted: one that ends early is an error, never a short blob.
            GetResultPayload::Stream(s) => {
                crate::remote::exact(s.map_err(Error::from).boxed(), r.end - r.start, self.stall)
            }
        };
        let body = match &self.cache {
            Some(cache) if range.is_none() => cache.fill(digest, size, body),
            _ => body,
        };
        Ok(BlobRead { size, range: span, body })
    }

    /// Deletes a committed blob's bytes. Only garbage collection may call this.
    pub async fn delete(&self, digest: &Digest) -> Result<()> {
        self.delete_at(digest, None).await
    }

    /// Deletes many committed blobs' bytes (digest and location each): one result per blob, in order. On a local
    /// store the files are unlinked from one blocking task (a task per file costs more than the unlink); on others,
    /// `in_flight` deletions at a time.
    pub async fn delete_many(&self, blobs: Vec<(Digest, Option<String>)>, in_flight: usize) -> Vec<Result<()>> {
        if let Some(root) = self.local_root.clone() {
            if let Some(cache) = &self.cache {
                blobs.iter().for_each(|(d, _)| cache.remove(d));
            }
            // Unlinks from several blocking tasks at once: file systems unlink in different directories in
            // parallel, and each unlink waits on the journal.
            let per_task = blobs.len().div_ceil(in_flight.clamp(1, 32)).max(1);
            let tasks: Vec<_> = blobs
                .chunks(per_task)
                .map(|chunk| {
                    let (chunk, root) = (chunk.to_vec(), root.clone());
                    tokio::task::spawn_blocking(move || {
                        chunk
                            .iter()
                            .map(|(d, at)| {
                                let path = root.join(paths::stored_blob(d, at.as_deref()).as_ref());
                                match std::fs::remove_file(&path) {
                                    Ok(()) => Ok(()),
                                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                                    Err(e) => Err(Error::io("removing", &path)(e)),
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(blobs.len());
            for (task, chunk) in tasks.into_iter().zip(blobs.chunks(per_task)) {
                match task.await {
                    Ok(results) => out.extend(results),
                    Err(e) => {
                        let source = std::sync::Arc::new(e);
                        out.extend(chunk.iter().map(|_| Err(Error::Task { what: "delete", source: source.clone() })))
                    }
                }
            }
            return out;
        }
        let deletions: Vec<_> = blobs
            .into_iter()
            .map(|(d, at)| {
                let store = self.clone();
                async move { store.delete_at(&d, at.as_deref()).await }
            })
            .collect();
        futures::stream::iter(deletions).buffered(in_flight.max(1)).collect().await
    }

    /// Deletes a committed blob's bytes stored at `location`. Only garbage collection (and an upload that lost
    /// the race to commit the same blob) may call this.
    pub async fn delete_at(&self, digest: &Digest, location: Option<&str>) -> Result<()> {
        if let Some(cache) = &self.cache {
            cache.remove(digest);
        }
        let key = paths::stored_blob(digest, location);
        // Deleting is idempotent, but `object_store` retries a DELETE only on an error answer, not on a connection
        // lost before the answer: those are retried here, a few times.
        let mut lost = 0;
        loop {
            let done = self.store.delete(&key).await;
            tracing::debug!(%digest, %key, ok = done.is_ok(), "deleting a blob's bytes");
            match done {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => return Ok(()),
                Err(object_store::Error::Generic { store: "S3", .. }) if lost < crate::remote::DELETE_RETRIES => {
                    lost += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100 * lost)).await;
                }
                Err(e) => return Err(Error::Backend(e)),
            }
        }
    }
}

/// A read served from the local cache, with the same range rules as the store.
fn cached_read((file, size): (std::fs::File, u64), range: Option<ByteRange>) -> Result<BlobRead> {
    let (start, end) = match range {
        None if size == 0 => return Ok(BlobRead { size, range: (0, 0), body: futures::stream::empty().boxed() }),
        None => (0, size - 1),
        Some(r) if r.start >= size || r.end.is_some_and(|e| e < r.start) => {
            return Err(Error::RangeInvalid { offset: size })
        }
        Some(r) => (r.start, r.end.map_or(size - 1, |e| e.min(size - 1))),
    };
    Ok(BlobRead { size, range: (start, end), body: file_stream(file, start, end - start + 1) })
}

/// Streams `len` bytes of a local file from `start` as memory-mapped windows, read on the blocking pool. The pages
/// go from the page cache to the socket with one copy, as close to `sendfile` as a hyper body can get.
fn file_stream(file: std::fs::File, start: u64, len: u64) -> BoxStream<'static, Result<Bytes>> {
    // One window queued ahead of the socket: mapped pages count towards RSS, so keep the queue short.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(1);
    tokio::task::spawn_blocking(move || {
        let mut offset = start;
        let end = start + len;
        while offset < end {
            let window = (end - offset).min(FILE_READ_CHUNK as u64) as usize;
            // SAFETY: committed blob files (and the cache's copies) are immutable: they are written once under a
            // temporary name and renamed into place, and nothing truncates or rewrites them afterwards (garbage collection only unlinks, which
            // leaves an existing mapping valid). So the mapped bytes cannot change or vanish while mapped.
            #[allow(unsafe_code)]
            let mapped = unsafe { memmap2::MmapOptions::new().offset(offset).len(window).populate().map(&file) };
            let chunk = match mapped {
                Ok(m) => Bytes::from_owner(m),
                Err(e) => {
                    let _ = tx.blocking_send(Err(Error::Io { what: "mapping a blob".into(), source: e }));
                    return;
                }
            };
            offset += window as u64;
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // The reader went away: the client disconnected.
            }
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Result<Bytes>>) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
