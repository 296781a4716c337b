//! One suite for the blob store and upload sessions, run against every backend (`file://`, `memory://` and S3).

#[path = "../../tests/common/s3.rs"]
mod s3;

use bytes::Bytes;
use futures::TryStreamExt;
use url::Url;
use wharf_client::{Algorithm, Digest, RepositoryName};
use wharf_storage::{BlobStore, ByteRange, Error, S3Options, UploadLimits, Uploads};

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

async fn suite(store: BlobStore) {
    let up = Uploads::new(store.clone(), limits());
    let r = repo("a/b");

    // Chunked upload, then verified commit.
    let id = up.start(&r, 0).await.unwrap();
    up.append(&id, &r, Some(0), Some(5), body(&[b"hel", b"lo"]), 1).await.unwrap();
    assert!(matches!(
        up.append(&id, &r, Some(3), None, body(&[b"x"]), 1).await,
        Err(Error::RangeInvalid { offset: 5 })
    ));
    assert!(matches!(up.status(&id, &repo("other")), Err(Error::UploadUnknown)));
    let s = up.append(&id, &r, Some(5), None, body(&[b" world"]), 2).await.unwrap();
    assert_eq!(s.offset, 11);
    let d = Digest::sha256_of(b"hello world");
    assert_eq!(store.stat(&d).await.unwrap(), None, "not visible before finish");
    assert_eq!(up.finish(&id, &r, &d).await.unwrap(), 11);
    assert_eq!(store.stat(&d).await.unwrap(), Some(11));
    assert_eq!(read_all(&store, &d, None).await, b"hello world");
    assert_eq!(read_all(&store, &d, Some(ByteRange { start: 6, end: None })).await, b"world");
    assert_eq!(read_all(&store, &d, Some(ByteRange { start: 0, end: Some(3) })).await, b"hell");
    assert!(matches!(up.status(&id, &r), Err(Error::UploadUnknown)));

    // A wrong digest: nothing becomes visible, under either digest.
    let id = up.start(&r, 0).await.unwrap();
    up.append(&id, &r, None, None, body(&[b"abc"]), 0).await.unwrap();
    let wrong = Digest::sha256_of(b"abd");
    assert!(matches!(up.finish(&id, &r, &wrong).await, Err(Error::DigestMismatch { .. })));
    assert_eq!(store.stat(&wrong).await.unwrap(), None);
    assert_eq!(store.stat(&Digest::sha256_of(b"abc")).await.unwrap(), None);

    // sha512 is checked by re-reading the committed upload.
    let id = up.start(&r, 0).await.unwrap();
    up.append(&id, &r, None, None, body(&[b"five twelve"]), 0).await.unwrap();
    let mut h = Algorithm::Sha512.hasher();
    h.update(b"five twelve");
    let d512 = h.finish();
    assert_eq!(up.finish(&id, &r, &d512).await.unwrap(), 11);
    assert_eq!(read_all(&store, &d512, None).await, b"five twelve");

    // Over the limit: refused, and the session is gone.
    let id = up.start(&r, 0).await.unwrap();
    assert!(matches!(up.append(&id, &r, None, Some(20_000), body(&[b"x"]), 0).await, Err(Error::TooLarge { .. })));
    assert!(matches!(up.status(&id, &r), Err(Error::UploadUnknown)));
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
    let results = futures::future::join_all(ids.iter().map(|id| up.finish(id, &r, &dc))).await;
    assert!(results.iter().all(|r| matches!(r, Ok(4096))), "{results:?}");
    assert_eq!(read_all(&store, &dc, None).await, content);

    // Cancel and idle expiry.
    let id = up.start(&r, 0).await.unwrap();
    up.cancel(&id, &r).await.unwrap();
    assert!(matches!(up.status(&id, &r), Err(Error::UploadUnknown)));
    let up = Uploads::new(store.clone(), limits());
    let idle = up.start(&r, 100).await.unwrap();
    let busy = up.start(&r, 100).await.unwrap();
    up.append(&busy, &r, None, None, body(&[b"x"]), 105).await.unwrap();
    assert_eq!(up.expire(112).await, 1);
    assert!(matches!(up.status(&idle, &r), Err(Error::UploadUnknown)));
    assert!(up.status(&busy, &r).is_ok());

    // Unknown blobs.
    assert!(matches!(store.open(&Digest::sha256_of(b"none"), None).await, Err(Error::BlobUnknown)));
    store.sweep_uploads().await.unwrap();
}

#[tokio::test]
async fn file_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = Url::from_directory_path(dir.path().join("store")).unwrap();
    suite(BlobStore::from_url(&url).unwrap()).await;
}

#[tokio::test]
async fn memory_store() {
    suite(BlobStore::from_url(&Url::parse("memory://").unwrap()).unwrap()).await;
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
    };
    let url = Url::parse(&format!("s3://{bucket}/some/prefix")).unwrap();
    suite(BlobStore::connect(&url, &options).unwrap()).await;
}

#[test]
fn unknown_scheme_is_a_config_error() {
    assert!(matches!(BlobStore::from_url(&Url::parse("ftp://x/").unwrap()), Err(Error::Config(_))));
}
