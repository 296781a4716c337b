//! One suite for the blob store and upload sessions, run against every backend (`file://`, `memory://` and S3).

#[path = "../../tests/e2e/common/s3.rs"]
mod s3;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use url::Url;
use wharf_format::{Algorithm, Digest, RepositoryName};
use wharf_storage::{BlobStore, ByteRange, Error, Metadata, S3Options, UploadLimits, Uploads};

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn body(parts: &[&[u8]]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let v: Vec<Result<Bytes, std::io::Error>> = parts.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    futures::stream::iter(v)
}

async fn read_all(store: &BlobStore, d: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    let r = store.open(d, range).await.unwrap();
    let chunks: Vec<Bytes> = r.body.try_collect().await.unwrap();
    chunks.concat()
}

fn limits() -> UploadLimits {
    UploadLimits { max_blob_size: 10_000, part_size: 5 << 20, idle_timeout_secs: 10 }
}

/// A fresh metadata database (upload sessions are rows in it).
async fn meta() -> Metadata {
    let dir = tempfile::tempdir().unwrap();
    let m = Metadata::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
    std::mem::forget(dir);
    m
}

async fn suite(store: BlobStore) {
    let up = Uploads::new(store.clone(), meta().await, limits());
    let r = repo("a/b");

    // Chunked upload, then verified commit.
    let id = up.start(&r, 0).await.unwrap();
    up.append(&id, &r, Some(0), Some(5), body(&[b"hel", b"lo"]), 1).await.unwrap();
    assert!(matches!(
        up.append(&id, &r, Some(3), None, body(&[b"x"]), 1).await,
        Err(Error::RangeInvalid { offset: 5 })
    ));
    assert!(matches!(up.status(&id, &repo("other")).await, Err(Error::UploadUnknown)));
    let s = up.append(&id, &r, Some(5), None, body(&[b" world"]), 2).await.unwrap();
    assert_eq!(s.offset, 11);
    let d = Digest::sha256_of(b"hello world");
    assert_eq!(store.stat(&d).await.unwrap(), None, "not visible before finish");
    assert_eq!(up.finish(&id, &r, &d, 3).await.unwrap().size, 11);
    assert_eq!(store.stat(&d).await.unwrap(), Some(11));
    assert_eq!(read_all(&store, &d, None).await, b"hello world");
    assert_eq!(read_all(&store, &d, Some(ByteRange { start: 6, end: None })).await, b"world");
    assert_eq!(read_all(&store, &d, Some(ByteRange { start: 0, end: Some(3) })).await, b"hell");
    assert!(matches!(up.status(&id, &r).await, Err(Error::UploadUnknown)));

    // A wrong digest: nothing becomes visible, under either digest.
    let id = up.start(&r, 0).await.unwrap();
    up.append(&id, &r, None, None, body(&[b"abc"]), 0).await.unwrap();
    let wrong = Digest::sha256_of(b"abd");
    assert!(matches!(up.finish(&id, &r, &wrong, 0).await, Err(Error::DigestMismatch { .. })));
    assert_eq!(store.stat(&wrong).await.unwrap(), None);
    assert_eq!(store.stat(&Digest::sha256_of(b"abc")).await.unwrap(), None);

    // sha512 is checked by re-reading the committed upload.
    let id = up.start(&r, 0).await.unwrap();
    up.append(&id, &r, None, None, body(&[b"five twelve"]), 0).await.unwrap();
    let mut h = Algorithm::Sha512.hasher();
    h.update(b"five twelve");
    let d512 = h.finish();
    assert_eq!(up.finish(&id, &r, &d512, 0).await.unwrap().size, 11);
    assert_eq!(read_all(&store, &d512, None).await, b"five twelve");

    // Over the limit: refused, and the session is gone.
    let id = up.start(&r, 0).await.unwrap();
    assert!(matches!(up.append(&id, &r, None, Some(20_000), body(&[b"x"]), 0).await, Err(Error::TooLarge { .. })));
    assert!(matches!(up.status(&id, &r).await, Err(Error::UploadUnknown)));
    let id = up.start(&r, 0).await.unwrap();
    let big = vec![7u8; 6000];
    assert!(matches!(up.append(&id, &r, None, None, body(&[&big, &big]), 0).await, Err(Error::TooLarge { .. })));

    // A body that says one length and brings another.
    let id = up.start(&r, 0).await.unwrap();
    assert!(matches!(
        up.append(&id, &r, None, Some(4), body(&[b"ab"]), 0).await,
        Err(Error::SizeMismatch { expected: 4, actual: 2 })
    ));

    // Many sessions committing the same content: all succeed, one copy.
    let content = vec![42u8; 4096];
    let dc = Digest::sha256_of(&content);
    let mut ids = Vec::new();
    for _ in 0..8 {
        let id = up.start(&r, 0).await.unwrap();
        up.append(&id, &r, None, None, body(&[&content]), 0).await.unwrap();
        ids.push(id);
    }
    let results = futures::future::join_all(ids.iter().map(|id| up.finish(id, &r, &dc, 0))).await;
    assert!(results.iter().all(|r| matches!(r, Ok(c) if c.size == 4096 && c.location.is_none())), "{results:?}");
    assert_eq!(read_all(&store, &dc, None).await, content);

    // Cancel and idle expiry.
    let id = up.start(&r, 0).await.unwrap();
    up.cancel(&id, &r, 0).await.unwrap();
    assert!(matches!(up.status(&id, &r).await, Err(Error::UploadUnknown)));
    let up = Uploads::new(store.clone(), meta().await, limits());
    let idle = up.start(&r, 100).await.unwrap();
    let busy = up.start(&r, 100).await.unwrap();
    up.append(&busy, &r, None, None, body(&[b"x"]), 105).await.unwrap();
    assert_eq!(up.expire(112).await, 1);
    assert!(matches!(up.status(&idle, &r).await, Err(Error::UploadUnknown)));
    assert!(up.status(&busy, &r).await.is_ok());

    // A monolithic upload: checked, committed, and nothing kept when the digest is wrong.
    let whole = b"one request".to_vec();
    let dw = Digest::sha256_of(&whole);
    assert_eq!(up.put_whole(Some(11), body(&[&whole]), &dw).await.unwrap().size, 11);
    assert_eq!(read_all(&store, &dw, None).await, whole);
    let bad = Digest::sha256_of(b"another");
    assert!(matches!(up.put_whole(None, body(&[b"x"]), &bad).await, Err(Error::DigestMismatch { .. })));
    assert_eq!(store.stat(&bad).await.unwrap(), None);

    // Unknown blobs.
    assert!(matches!(store.open(&Digest::sha256_of(b"none"), None).await, Err(Error::BlobUnknown)));
}

/// Bytes `0..n` of a deterministic sequence.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Sessions as shared state: two `Uploads` over one store and one database stand for two replicas, and a third,
/// opened afresh, for a replica restarted. `part_size` is the store's (S3 wants 5 MiB); chunks are cut so that
/// parts and tails straddle requests.
async fn shared_sessions(store: BlobStore, part_size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meta.db");
    let l = UploadLimits { max_blob_size: 1 << 30, part_size, idle_timeout_secs: 10 };
    let a = Uploads::new(store.clone(), Metadata::open_sqlite(&db).await.unwrap(), l);
    let b = Uploads::new(store.clone(), Metadata::open_sqlite(&db).await.unwrap(), l);
    let r = repo("team/app");
    let content = pattern(part_size * 2 + part_size / 2 + 17);
    let cuts = [part_size / 3, part_size + 5, part_size + part_size / 2, part_size * 2 + 1];
    let id = a.start(&r, 0).await.unwrap();
    let mut at = 0;
    for (i, &cut) in cuts.iter().enumerate() {
        let side = if i % 2 == 0 { &a } else { &b };
        let s = side.append(&id, &r, Some(at as u64), None, body(&[&content[at..cut]]), 1).await.unwrap();
        assert_eq!(s.offset, cut as u64);
        assert_eq!(a.status(&id, &r).await.unwrap().offset, cut as u64, "every replica sees the offset");
        at = cut;
    }
    // A restarted replica finishes it, with the rest of the bytes in the final request.
    let c = Uploads::new(store.clone(), Metadata::open_sqlite(&db).await.unwrap(), l);
    let d = Digest::sha256_of(&content);
    let rest = &content[at..];
    let done = c.complete(&id, &r, Some(at as u64), Some(rest.len() as u64), body(&[rest]), &d, 2).await.unwrap();
    assert_eq!(done.size, content.len() as u64);
    // On an object store the completed multipart upload is the blob, where it lies; on disk it is renamed.
    assert_eq!(done.location.is_some(), store.open(&d, None).await.is_err());
    let r2 = store.open_at(&d, done.location.as_deref(), None).await.unwrap();
    let chunks: Vec<Bytes> = r2.body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), content);
    assert!(matches!(b.status(&id, &r).await, Err(Error::UploadUnknown)));

    // One writer at a time: a second request waits for the first, then finds the session moved on.
    let id = a.start(&r, 0).await.unwrap();
    let slow = futures::stream::iter(vec![b"abc".to_vec(), b"def".to_vec()]).then(|c| async move {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        Ok::<_, std::io::Error>(Bytes::from(c))
    });
    let first = a.append(&id, &r, Some(0), None, slow, 3);
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        b.append(&id, &r, Some(0), None, body(&[b"zzz"]), 3).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap().offset, 6);
    assert!(matches!(second, Err(Error::RangeInvalid { offset: 6 })), "{second:?}");

    // A writer that dies mid-request (its future dropped) records nothing; the session continues from what was
    // recorded, on another replica (whose clock has passed the dead writer's lease).
    let stalled = body(&[b"ghi"]).chain(futures::stream::pending());
    let died =
        tokio::time::timeout(std::time::Duration::from_millis(300), a.append(&id, &r, Some(6), None, stalled, 4));
    assert!(died.await.is_err(), "the stalled request is still running");
    let s = b.append(&id, &r, Some(6), None, body(&[b"GHI"]), 100).await.unwrap();
    assert_eq!(s.offset, 9);
    let d = Digest::sha256_of(b"abcdefGHI");
    assert_eq!(b.finish(&id, &r, &d, 100).await.unwrap().size, 9);
    assert_eq!(read_all(&store, &d, None).await, b"abcdefGHI");

    // Idle sessions expire on whichever replica looks, with their bytes.
    let id = a.start(&r, 1000).await.unwrap();
    a.append(&id, &r, None, None, body(&[&content[..part_size + 1]]), 1000).await.unwrap();
    assert_eq!(b.expire(1011).await, 1);
    assert!(matches!(a.status(&id, &r).await, Err(Error::UploadUnknown)));
}

#[tokio::test]
async fn file_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = Url::from_directory_path(dir.path().join("store")).unwrap();
    suite(BlobStore::from_url(&url).unwrap()).await;
    shared_sessions(BlobStore::from_url(&url).unwrap(), 64 << 10).await;
}

#[tokio::test]
async fn file_store_sweeps_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let url = Url::from_directory_path(dir.path().join("store")).unwrap();
    let store = BlobStore::from_url(&url).unwrap();
    let up = Uploads::new(store, meta().await, limits());
    let r = repo("a/b");
    let kept = up.start(&r, 0).await.unwrap();
    // What a crash leaves of a monolithic upload: a session directory with no row.
    let orphan = dir.path().join("store/uploads/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("data"), b"partial").unwrap();
    let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 60;
    assert_eq!(up.sweep_orphans(later).await.unwrap(), 1);
    assert!(!orphan.exists());
    assert!(dir.path().join(format!("store/uploads/{kept}/data")).exists(), "a session with a row stays");
    assert_eq!(up.sweep_orphans(0).await.unwrap(), 0);
}

/// A `202` promises that the bytes were received, not that they are synced: a local session records its bytes
/// under the machine's boot, and after a reboot (here, another boot id) keeps what survived a machine crash or
/// starts again from nothing, so that the offset it reports is always true. Within one boot, its row is trusted.
#[tokio::test]
async fn file_sessions_after_a_reboot_report_what_survived() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::from_url(&Url::from_directory_path(dir.path().join("store")).unwrap()).unwrap();
    let db = dir.path().join("meta.db");
    let l = UploadLimits { max_blob_size: 1 << 20, part_size: 5 << 20, idle_timeout_secs: 10 };
    let up = |boot: &'static str| {
        let (store, db) = (store.clone(), db.clone());
        async move { Uploads::new(store, Metadata::open_sqlite(&db).await.unwrap(), l).with_boot_id(Some(boot.into())) }
    };
    let (a, r, content) = (up("one").await, repo("boot/test"), pattern(300_000));
    let file = |id: &wharf_storage::UploadId| dir.path().join(format!("store/uploads/{id}/data"));
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = a.start(&r, 0).await.unwrap();
        a.append(&id, &r, Some(0), None, body(&[&content[..100_000]]), 1).await.unwrap();
        assert_eq!(
            a.append(&id, &r, Some(100_000), None, body(&[&content[100_000..200_000]]), 1).await.unwrap().offset,
            200_000
        );
        ids.push(id);
    }
    // The machine crashes: the first file survived whole, the second lost its unsynced end, the third kept its
    // length but not its bytes (zeros, as some file systems show).
    std::fs::OpenOptions::new().write(true).open(file(&ids[1])).unwrap().set_len(150_000).unwrap();
    let mut zeroed = content[..200_000].to_vec();
    zeroed[120_000..].fill(0);
    std::fs::write(file(&ids[2]), &zeroed).unwrap();
    std::fs::OpenOptions::new().write(true).open(file(&ids[3])).unwrap().set_len(10).unwrap();
    let b = up("two").await;
    // A session cancelled after the reboot goes without being read.
    b.cancel(&ids[3], &r, 2).await.unwrap();
    assert!(!file(&ids[3]).exists());
    ids.pop();
    let offsets: Vec<u64> = futures::future::join_all(ids.iter().map(|id| b.status(id, &r)))
        .await
        .into_iter()
        .map(|s| s.unwrap().offset)
        .collect();
    assert_eq!(offsets, [200_000, 0, 0], "a true offset for each session");
    // Each continues from the offset it reported, and commits only the right bytes.
    let d = Digest::sha256_of(&content);
    for (id, &at) in ids.iter().zip(&offsets) {
        let rest = &content[at as usize..];
        let done = b.complete(id, &r, Some(at), None, body(&[rest]), &d, 2).await.unwrap();
        assert_eq!(done.size, content.len() as u64);
    }
    assert_eq!(read_all(&store, &d, None).await, content);
    // Within one boot a file shorter than its row is corrupt, never quietly restarted.
    let id = b.start(&r, 0).await.unwrap();
    b.append(&id, &r, Some(0), None, body(&[&content[..1000]]), 3).await.unwrap();
    std::fs::OpenOptions::new().write(true).open(file(&id)).unwrap().set_len(10).unwrap();
    let e = b.append(&id, &r, Some(1000), None, body(&[b"x"]), 3).await;
    assert!(matches!(e, Err(Error::Corrupt(_))), "{e:?}");
}

#[tokio::test]
async fn memory_store() {
    suite(BlobStore::from_url(&Url::parse("memory://").unwrap()).unwrap()).await;
    shared_sessions(BlobStore::from_url(&Url::parse("memory://").unwrap()).unwrap(), 1000).await;
}

#[tokio::test]
async fn s3_store() {
    let (endpoint, bucket) = tokio::task::spawn_blocking(s3::bucket).await.unwrap();
    let options = S3Options {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        path_style: true,
        access_key_id: Some(s3::ACCESS_KEY.into()),
        secret_access_key: Some(s3::SECRET_KEY.into()),
        retry_timeout: None,
        stall_timeout: None,
    };
    let url = Url::parse(&format!("s3://{bucket}/some/prefix")).unwrap();
    suite(BlobStore::connect(&url, &options).unwrap()).await;
    shared_sessions(BlobStore::connect(&url, &options).unwrap(), 5 << 20).await;
}

#[test]
fn unknown_scheme_is_a_config_error() {
    assert!(matches!(BlobStore::from_url(&Url::parse("ftp://x/").unwrap()), Err(Error::Config(_))));
}

/// Waits up to two seconds for `cond`.
async fn eventually(cond: impl Fn() -> bool) -> bool {
    for _ in 0..40 {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_remote_store_caches_full_reads_verified_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = wharf_storage::BlobCache::open(&cache_dir, 2500).unwrap();
    let store = BlobStore::from_url(&Url::parse("memory://").unwrap()).unwrap().with_cache(cache);
    let up = Uploads::new(store.clone(), meta().await, limits());
    let mut digests = Vec::new();
    for i in 0..3u8 {
        let content = vec![i; 1000];
        let d = Digest::sha256_of(&content);
        up.put_whole(None, body(&[&content]), &d).await.unwrap();
        digests.push(d);
    }
    let cached = |d: &Digest| cache_dir.join(format!("sha256-{}", d.hex())).exists();
    // A range read caches nothing (a copy is made only of a full read whose bytes hash to the digest).
    read_all(&store, &digests[0], Some(ByteRange { start: 10, end: Some(20) })).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!cached(&digests[0]));
    // A full read is cached, and later reads (ranges too) are served from the copy.
    assert_eq!(read_all(&store, &digests[0], None).await, vec![0u8; 1000]);
    assert!(eventually(|| cached(&digests[0])).await);
    assert_eq!(read_all(&store, &digests[0], Some(ByteRange { start: 990, end: None })).await, vec![0u8; 10]);
    assert!(matches!(
        store.open(&digests[0], Some(ByteRange { start: 1000, end: None })).await,
        Err(Error::RangeInvalid { offset: 1000 })
    ));
    // Beyond the bound, the least recently read goes.
    read_all(&store, &digests[1], None).await;
    assert!(eventually(|| cached(&digests[1])).await);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    read_all(&store, &digests[0], None).await; // read again: now the most recent
    read_all(&store, &digests[2], None).await;
    assert!(eventually(|| cached(&digests[2]) && !cached(&digests[1])).await, "the least recently read is evicted");
    assert!(cached(&digests[0]));
    // Deleting a blob drops its copy.
    store.delete(&digests[0]).await.unwrap();
    assert!(!cached(&digests[0]));
    assert!(matches!(store.open(&digests[0], None).await, Err(Error::BlobUnknown)));
}
