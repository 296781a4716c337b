//! The store's side of the scrub (`wharf admin check`): listing every stored object, hashing an object's bytes as
//! they are read (never buffered whole), moving an object under `quarantine/`, and putting verified bytes back
//! where a blob's row says they lie. What the objects should be is the metadata's (`meta.check()`); deciding what
//! is damage and what to repair is the registry's.
//!
//! Reads are paced by a [`Pace`], a token bucket shared by every read of one run, so that `--rate` bounds the
//! bytes a second whatever the number of reads in flight.

use std::io::Read;
use std::path::Path as FsPath;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use tokio::io::AsyncWriteExt;
use wharf_format::{Algorithm, Digest};

use crate::durable::{self, Commit};
use crate::gc::reconcile::{classify, Key};
use crate::upload::UploadId;
use crate::{paths, BlobStore, Error, Result, UnixTime};

/// Bytes read from a local file per call.
const READ_CHUNK: usize = 1 << 20;
/// Where quarantined objects go, under their own keys.
pub const QUARANTINE: &str = "quarantine";

/// What a stored key is, by the store's layout (`paths`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredKey {
    /// `blobs/<algorithm>/<xx>/<hex>`: content at its address.
    Content(Digest),
    /// `blobs/uploaded/<id>`: a multipart upload completed in place.
    Uploaded(UploadId),
    /// `uploads/<id>/...`: an upload session's bytes.
    Session(UploadId),
    /// `quarantine/...`: moved aside by an earlier repair.
    Quarantined,
    /// Nothing the layout makes.
    Foreign,
}

impl StoredKey {
    pub fn of(key: &str) -> StoredKey {
        if key.starts_with("quarantine/") {
            return StoredKey::Quarantined;
        }
        match classify(&Path::from(key)) {
            Key::Content(d) => StoredKey::Content(d),
            Key::Uploaded(id) => StoredKey::Uploaded(id),
            Key::Session(id) => StoredKey::Session(id),
            Key::Other => StoredKey::Foreign,
        }
    }
}

/// One stored object as a listing saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    pub modified: UnixTime,
}

/// What reading an object found: its size and the digest of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub size: u64,
    pub digest: Digest,
}

/// A token bucket of bytes: at most `rate` bytes a second on average, with a burst of a quarter second.
#[derive(Debug)]
pub struct Pace {
    rate: Option<f64>,
    /// Tokens available (negative: owed) and when they were last counted.
    state: Mutex<(f64, Instant)>,
}

impl Pace {
    /// `None`: unpaced.
    pub fn new(rate: Option<u64>) -> Pace {
        let rate = rate.filter(|r| *r > 0).map(|r| r as f64);
        Pace { rate, state: Mutex::new((0.0, Instant::now())) }
    }

    /// Takes `n` bytes' tokens; returns how long the caller must wait before reading them.
    pub fn reserve(&self, n: u64) -> Duration {
        let Some(rate) = self.rate else { return Duration::ZERO };
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = *s;
        let refilled = (tokens + now.duration_since(last).as_secs_f64() * rate).min(rate / 4.0);
        let left = refilled - n as f64;
        *s = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / rate)
        }
    }
}

impl BlobStore {
    /// Every object in the store, `quarantine/` included, in no promised order.
    pub fn list_objects(&self) -> BoxStream<'static, Result<StoredObject>> {
        std::sync::Arc::clone(self.object_store())
            .list(None)
            .map(|item| {
                let meta = item?;
                Ok(StoredObject {
                    key: meta.location.to_string(),
                    size: meta.size,
                    modified: meta.last_modified.timestamp(),
                })
            })
            .boxed()
    }

    /// The key of a committed blob stored at `location` (`None`: its content address).
    pub fn blob_key(&self, digest: &Digest, location: Option<&str>) -> String {
        paths::stored_blob(digest, location).to_string()
    }

    /// Whether the store keeps upload sessions as local files (which the upload reaper, not the scrub, answers for).
    pub fn local_sessions(&self) -> bool {
        self.local_root().is_some()
    }

    /// Reads the object at `key` through `pace`, hashing with `algorithm` as it reads; `None` if there is none.
    pub async fn hash_object(
        &self,
        key: &str,
        algorithm: Algorithm,
        pace: &std::sync::Arc<Pace>,
    ) -> Result<Option<Hashed>> {
        if let Some(root) = self.local_root() {
            let path = root.join(key);
            let pace = std::sync::Arc::clone(pace);
            return tokio::task::spawn_blocking(move || hash_file(&path, algorithm, &pace))
                .await
                .map_err(Error::task("hash"))?;
        }
        // A body may end cleanly short of the object (object_store does not check): counted against the size the
        // store announced, a short read is a read failure, never bytes that hash wrong; so is a stalled one.
        let Some((_, body)) = self.read_counted(&Path::from(key)).await? else { return Ok(None) };
        hash_stream(body, algorithm, pace).await.map(Some)
    }

    /// Moves the object at `key` to `quarantine/<key>`, never deleting it; returns the new key. `None` if there was
    /// no object to move.
    pub async fn quarantine(&self, key: &str) -> Result<Option<String>> {
        let to = format!("{QUARANTINE}/{key}");
        if let Some(cache) = self.cache_of() {
            if let StoredKey::Content(d) = StoredKey::of(key) {
                cache.remove(&d);
            }
        }
        match self.object_store().rename(&Path::from(key), &Path::from(to.as_str())).await {
            Ok(()) => Ok(Some(to)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::Backend(e)),
        }
    }

    /// Puts the bytes of `file`, which the caller verified are `digest`'s, where the blob's row says they lie (its
    /// content address, or `location`). Nothing is replaced: the damaged copy was quarantined first. On a local
    /// store the file is moved into place durably (synced, renamed, directory synced); elsewhere it is uploaded.
    pub async fn restore_verified(&self, file: &FsPath, digest: &Digest, location: Option<&str>) -> Result<()> {
        let key = paths::stored_blob(digest, location);
        if let Some(root) = self.local_root() {
            let (from, to) = (file.to_owned(), root.join(key.as_ref()));
            let done = tokio::task::spawn_blocking(move || durable::commit(&from, &to))
                .await
                .map_err(Error::task("commit"))??;
            if done == Commit::Found {
                // Another writer put the blob back meanwhile (a re-push): its copy was verified as it came in.
                tokio::fs::remove_file(file).await.map_err(Error::io("removing", file))?;
            }
            return Ok(());
        }
        let mut from = tokio::fs::File::open(file).await.map_err(Error::io("opening", file))?;
        let mut to = object_store::buffered::BufWriter::new(std::sync::Arc::clone(self.object_store()), key);
        tokio::io::copy(&mut from, &mut to).await.map_err(Error::io("uploading", file))?;
        to.shutdown().await.map_err(Error::io("uploading", file))?;
        Ok(())
    }

    /// A directory on the store's file system for files that will be moved into it (local stores), else `None`.
    pub fn spool_dir(&self) -> Option<std::path::PathBuf> {
        self.local_root().map(|r| r.join(QUARANTINE).join(".incoming"))
    }
}

/// Hashes a body as it comes, paced; any error of the body (a short one included) is the read's.
async fn hash_stream(
    mut body: BoxStream<'static, Result<bytes::Bytes>>,
    algorithm: Algorithm,
    pace: &Pace,
) -> Result<Hashed> {
    let mut hasher = algorithm.hasher();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let wait = pace.reserve(chunk.len() as u64);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok(Hashed { size, digest: hasher.finish() })
}

/// Hashes a local file in `READ_CHUNK` reads, paced.
fn hash_file(path: &FsPath, algorithm: Algorithm, pace: &Pace) -> Result<Option<Hashed>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("opening", path)(e)),
    };
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(Error::io("reading", path))?;
        if n == 0 {
            break;
        }
        let wait = pace.reserve(n as u64);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Some(Hashed { size, digest: hasher.finish() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_by_the_layout() {
        let hex = "ab".to_string() + &"0".repeat(62);
        type Row = (&'static str, fn(&StoredKey) -> bool);
        let rows: &[Row] = &[
            ("blobs/sha256/ab/HEX", |k| matches!(k, StoredKey::Content(_))),
            ("blobs/uploaded/0123456789abcdef0123456789abcdef", |k| matches!(k, StoredKey::Uploaded(_))),
            ("uploads/0123456789abcdef0123456789abcdef/data", |k| matches!(k, StoredKey::Session(_))),
            ("quarantine/blobs/sha256/ab/HEX", |k| *k == StoredKey::Quarantined),
            ("blobs/sha256/cd/HEX", |k| *k == StoredKey::Foreign),
            ("stray.txt", |k| *k == StoredKey::Foreign),
        ];
        for (key, want) in rows {
            let key = key.replace("HEX", &hex);
            assert!(want(&StoredKey::of(&key)), "{key}: {:?}", StoredKey::of(&key));
        }
    }

    #[test]
    fn pace_is_a_token_bucket() {
        let unpaced = Pace::new(None);
        assert_eq!(unpaced.reserve(1 << 30), Duration::ZERO);
        let p = Pace::new(Some(1000));
        // The bucket starts empty: 500 bytes owe half a second; the next 500 a whole one.
        let first = p.reserve(500);
        assert!(first > Duration::from_millis(450) && first <= Duration::from_millis(500), "{first:?}");
        let second = p.reserve(500);
        assert!(second > Duration::from_millis(950), "{second:?}");
    }

    #[tokio::test]
    async fn a_short_body_is_a_read_failure_not_a_digest() {
        let pace = Pace::new(None);
        let body = |parts: &[&'static [u8]]| {
            let parts: Vec<Result<bytes::Bytes>> = parts.iter().map(|p| Ok(bytes::Bytes::from_static(p))).collect();
            futures::stream::iter(parts).boxed()
        };
        let whole = hash_stream(
            crate::remote::exact(body(&[b"hello ", b"scrub"]), 11, crate::remote::S3_STALL_TIMEOUT),
            Algorithm::Sha256,
            &pace,
        );
        assert_eq!(whole.await.unwrap().digest, Digest::sha256_of(b"hello scrub"));
        // The store announced 11 bytes; the body ended cleanly after 6.
        let short = hash_stream(
            crate::remote::exact(body(&[b"hello "]), 11, crate::remote::S3_STALL_TIMEOUT),
            Algorithm::Sha256,
            &pace,
        )
        .await;
        assert!(short.is_err(), "{short:?}");
    }

    #[tokio::test]
    async fn hashing_reads_and_quarantine_moves() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let store = BlobStore::from_url(&url).unwrap();
        let bytes = b"hello scrub".to_vec();
        let d = Digest::sha256_of(&bytes);
        let key = paths::blob(&d);
        store.object_store().put(&key, bytes.clone().into()).await.unwrap();
        let pace = std::sync::Arc::new(Pace::new(None));
        let got = store.hash_object(key.as_ref(), Algorithm::Sha256, &pace).await.unwrap().unwrap();
        assert_eq!(got, Hashed { size: bytes.len() as u64, digest: d.clone() });
        assert_eq!(store.hash_object("blobs/none", Algorithm::Sha256, &pace).await.unwrap(), None);
        let moved = store.quarantine(key.as_ref()).await.unwrap().unwrap();
        assert_eq!(moved, format!("quarantine/{key}"));
        assert!(store.hash_object(key.as_ref(), Algorithm::Sha256, &pace).await.unwrap().is_none());
        let listed: Vec<String> = store.list_objects().map(|o| o.unwrap().key).collect().await;
        assert_eq!(listed, vec![moved]);
    }
}
