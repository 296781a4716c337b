//! The collector against real backends: SQLite with a local store, and PostgreSQL with S3. Each step is a state
//! the registry reaches through its API; the checks are on rows and bytes.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;
#[path = "../../tests/e2e/common/s3.rs"]
mod s3;

use bytes::Bytes;
use url::Url;
use wharf_format::{Digest, MediaType, RepositoryName};
use wharf_storage::{BlobStore, Collector, Error, Metadata, NewManifest, S3Options, UploadLimits, Uploads};

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn body(b: &[u8]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::iter(vec![Ok(Bytes::copy_from_slice(b))])
}

/// Uploads `content` into `r` as the registry does (verified commit, then the record).
async fn push_blob(up: &Uploads, r: &RepositoryName, content: &[u8], now: i64) -> Digest {
    let d = Digest::sha256_of(content);
    let c = up.put_whole(Some(content.len() as u64), body(content), &d).await.unwrap();
    up.record(r, &d, &c, now).await.unwrap();
    d
}

async fn put_manifest(
    m: &Metadata,
    r: &RepositoryName,
    name: &str,
    blobs: &[&Digest],
    now: i64,
) -> Result<Digest, Error> {
    let mt: MediaType = "application/vnd.oci.image.manifest.v1+json".parse().unwrap();
    let digest = Digest::sha256_of(name.as_bytes());
    let tag = name.parse().unwrap();
    m.manifests()
        .put(
            &NewManifest {
                repo: r,
                digest: &digest,
                media_type: &mt,
                artifact_type: None,
                subject: None,
                content: name.as_bytes(),
                blobs: blobs.to_vec(),
                manifests: vec![],
                tag: Some(&tag),
                lazy: false,
            },
            now,
        )
        .await?;
    Ok(digest)
}

async fn suite(meta: Metadata, store: BlobStore, local: bool) {
    let up = Uploads::new(store.clone(), meta.clone(), UploadLimits::default());
    let gc = Collector::new(meta.clone(), store.clone());
    let (a, b) = (repo("team/a"), repo("team/b"));

    // Two images sharing a layer, one blob never referenced, all uploaded at t=100.
    let base = push_blob(&up, &a, b"shared base layer", 100).await;
    let one = push_blob(&up, &a, b"config one", 100).await;
    let two = push_blob(&up, &a, b"config two", 100).await;
    let stray = push_blob(&up, &a, b"uploaded, never referenced", 100).await;
    let m1 = put_manifest(&meta, &a, "one", &[&base, &one], 100).await.unwrap();
    put_manifest(&meta, &a, "two", &[&base, &two], 100).await.unwrap();
    // The same base mounted into b and referenced there too.
    assert_eq!(meta.blobs().mount(&a, &b, &base, 100).await.unwrap(), Some(17));
    put_manifest(&meta, &b, "three", &[&base], 100).await.unwrap();

    // Within the grace period nothing goes; the dry run agrees.
    assert_eq!(gc.sweep(99).await.unwrap().blobs, 0);
    assert_eq!(store.stat(&stray).await.unwrap(), Some(26));
    let (would, which) = gc.dry_run(101).await.unwrap();
    assert_eq!((would.links, would.blobs, would.bytes), (1, 1, 26));
    assert_eq!(which[0].digest, stray);

    // Past it: the stray blob goes, bytes and rows; referenced ones stay.
    let s = gc.sweep(101).await.unwrap();
    assert_eq!((s.links, s.blobs, s.bytes), (1, 1, 26));
    assert_eq!(store.stat(&stray).await.unwrap(), None);
    assert_eq!(meta.blobs().get(&a, &stray).await.unwrap(), None);
    for d in [&base, &one, &two] {
        assert!(store.stat(d).await.unwrap().is_some(), "{d} is referenced");
    }

    // A manifest deleted: its own config goes; the shared base stays, referenced by "two" and by b.
    assert!(meta.manifests().delete(&a, &m1).await.unwrap());
    let s = gc.sweep(101).await.unwrap();
    assert_eq!((s.links, s.blobs, s.bytes), (1, 1, 10));
    assert_eq!(store.stat(&one).await.unwrap(), None);
    assert!(store.stat(&base).await.unwrap().is_some());

    // A blob uploaded for a manifest not yet PUT survives the grace period; once its link is gone, the PUT fails
    // cleanly (MANIFEST_BLOB_UNKNOWN), never with a missing blob.
    let late = push_blob(&up, &a, b"a layer for a manifest not yet pushed", 200).await;
    assert_eq!(gc.sweep(150).await.unwrap().blobs, 0, "in its grace period");
    put_manifest(&meta, &a, "late", &[&late, &base], 210).await.unwrap();
    assert_eq!(gc.sweep(1000).await.unwrap().blobs, 0, "referenced now");
    let early = push_blob(&up, &a, b"collected before its manifest came", 300).await;
    gc.sweep(301).await.unwrap();
    match put_manifest(&meta, &a, "too-late", &[&early], 302).await {
        Err(Error::ReferencesMissing(missing)) => assert_eq!(missing, vec![early.clone()]),
        other => panic!("expected ReferencesMissing, got {other:?}"),
    }

    // A read restarts the grace period (once a minute).
    let read = push_blob(&up, &a, b"read by a client", 400).await;
    meta.blobs().touch(&a, &read, 500).await.unwrap();
    assert_eq!(gc.sweep(450).await.unwrap().blobs, 0, "touched at 500");
    assert_eq!(gc.sweep(501).await.unwrap().blobs, 1);

    // An interrupted sweep (tombstones marked, bytes not yet deleted): uploads of that blob wait, then fail
    // cleanly when the bytes they found in place went; the next sweep finishes the job.
    let doomed = push_blob(&up, &a, b"tombstoned mid-sweep", 600).await;
    assert!(meta.blobs().unlink(&a, &doomed).await.unwrap());
    let seen = meta.collect().unlinked_blobs("", 100).await.unwrap();
    let marked = meta.collect().mark_blobs(&seen).await.unwrap();
    assert_eq!(marked.len(), 1);
    assert!(meta.blobs().deleting(&doomed).await.unwrap());
    let content = b"tombstoned mid-sweep";
    // On a local store the upload waits for the tombstone to go, then commits its own copy; on S3 its copy was
    // the one in place, so it fails cleanly once the collector deleted that.
    let record = {
        let (up, a, doomed) = (&up, &a, &doomed);
        async move {
            let c = up.put_whole(Some(content.len() as u64), body(content), doomed).await.unwrap();
            up.record(a, doomed, &c, 601).await
        }
    };
    // The sweep's cutoff (600) is before the upload's link (601): the link may land while the sweep is between
    // its steps, and a registry's cutoff is always a grace period before any link it has just made.
    let (recorded, swept) = tokio::join!(record, async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        gc.sweep(600).await.unwrap()
    });
    assert_eq!(swept.resumed, 1);
    match recorded {
        Err(Error::Collected) => {
            assert!(!local, "a local store keeps the upload's own copy");
            assert_eq!(meta.blobs().get(&a, &doomed).await.unwrap(), None, "nothing recorded");
        }
        // A store where the upload kept its own copy elsewhere.
        Ok(()) => {
            let (size, at) = meta.blobs().get(&a, &doomed).await.unwrap().expect("recorded");
            assert_eq!(store.stat_at(&doomed, at.as_deref()).await.unwrap(), Some(size), "bytes present");
        }
        Err(e) => panic!("{e}"),
    }
    assert!(!meta.blobs().deleting(&doomed).await.unwrap());
    // Uploaded again, it is recorded with its bytes.
    push_blob(&up, &a, content, 700).await;
    assert_eq!(
        store.stat_at(&doomed, meta.blobs().get(&a, &doomed).await.unwrap().unwrap().1.as_deref()).await.unwrap(),
        Some(20)
    );
}

#[tokio::test]
async fn sqlite_and_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
    let url = Url::from_directory_path(dir.path().join("store")).unwrap();
    suite(meta, BlobStore::from_url(&url).unwrap(), true).await;
}

fn s3_store() -> BlobStore {
    let (endpoint, bucket) = s3::bucket();
    let options = S3Options {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        path_style: true,
        access_key_id: Some(s3::ACCESS_KEY.into()),
        secret_access_key: Some(s3::SECRET_KEY.into()),
    };
    BlobStore::connect(&Url::parse(&format!("s3://{bucket}/gc")).unwrap(), &options).unwrap()
}

#[test]
fn postgres_and_s3() {
    let (url, store) = (pg::database(), s3_store());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        suite(Metadata::open(&url).await.unwrap(), store, false).await;
    });
}

/// Orphans: bytes no row accounts for (a crash between commit and record), found by the paced listing and removed
/// only once older than the minimum age.
#[tokio::test]
async fn reconciliation_removes_old_orphans_only() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
    let url = Url::from_directory_path(dir.path().join("store")).unwrap();
    let store = BlobStore::from_url(&url).unwrap();
    let up = Uploads::new(store.clone(), meta.clone(), UploadLimits::default());
    let gc = Collector::new(meta.clone(), store.clone());
    let r = repo("a");
    let kept = push_blob(&up, &r, b"recorded", 0).await;
    // A commit whose record never happened.
    let orphan = Digest::sha256_of(b"orphaned by a crash");
    up.put_whole(Some(19), body(b"orphaned by a crash"), &orphan).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let young = gc.reconcile(now, 3600, 10_000).await.unwrap();
    assert_eq!((young.listed, young.orphans), (2, 0), "younger than the minimum age");
    let old = gc.reconcile(now + 7200, 3600, 10_000).await.unwrap();
    assert_eq!((old.orphans, old.bytes), (1, 19));
    assert_eq!(store.stat(&orphan).await.unwrap(), None);
    assert_eq!(store.stat(&kept).await.unwrap(), Some(8));
    assert!(meta.collect().blob_row(&orphan).await.unwrap().is_none(), "its tombstone went too");
}
