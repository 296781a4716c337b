//! The collector against real backends: SQLite with a local store, and PostgreSQL with S3. Each step is a state
//! the registry reaches through its API; the checks are on rows and bytes.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;
#[path = "../../tests/e2e/common/s3.rs"]
mod s3;

use bytes::Bytes;
use url::Url;
use wharf_format::{Digest, MediaType, RepositoryName};
use wharf_storage::meta::{LinkState, StaleLink};
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
        retry_timeout: None,
        stall_timeout: None,
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

/// Empties the collector's queue behind its back, as a queue that missed every candidate would be.
async fn forget_queue(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("DELETE FROM gc_candidates").execute(&pool).await.unwrap();
    pool.close().await;
}

/// The collector's queue of candidates: a sweep looks only at what a change queued (a new link, a deleted
/// manifest's blobs, an unlinked blob), leaves what the grace period keeps, collects what a full scan would, and
/// keeps a candidate queued again while it decided; a reconciliation puts back what the queue missed.
async fn queue_suite(meta: Metadata, store: BlobStore, url: &str) {
    let up = Uploads::new(store.clone(), meta.clone(), UploadLimits::default());
    let gc = Collector::new(meta.clone(), store.clone());
    let (a, b) = (repo("q/a"), repo("q/b"));
    let mut images = Vec::new();
    for i in 0..10 {
        let config = push_blob(&up, &a, format!("config {i}").as_bytes(), 100).await;
        let layer = push_blob(&up, &a, format!("layer {i}").as_bytes(), 100).await;
        let m = put_manifest(&meta, &a, &format!("img{i}"), &[&config, &layer], 100).await.unwrap();
        images.push((m, config, layer));
    }
    assert_eq!(meta.collect().queued().await.unwrap(), 0, "a referenced link is no candidate");

    // Candidates: a stray upload (1), a deleted manifest's blobs (2), a blob mounted into b and unlinked there (1).
    let stray = push_blob(&up, &a, b"stray", 100).await;
    assert!(meta.manifests().delete(&a, &images[0].0).await.unwrap());
    assert_eq!(meta.blobs().mount(&a, &b, &images[1].2, 100).await.unwrap(), Some(7));
    assert!(meta.blobs().unlink(&b, &images[1].2).await.unwrap());
    assert_eq!(meta.collect().queued().await.unwrap(), 4);

    // Inside the grace period the candidates stay; past it, exactly what a full scan finds goes, and only the
    // queue was read.
    let s = gc.sweep(99).await.unwrap();
    assert_eq!((s.candidates, s.links, s.blobs), (4, 0, 0));
    assert_eq!(meta.collect().queued().await.unwrap(), 3, "the unlinked mount is decided: a has the blob");
    let (would, _) = gc.dry_run(101).await.unwrap();
    let s = gc.sweep(101).await.unwrap();
    assert_eq!((s.candidates, s.links, s.blobs, s.bytes), (3, 3, 3, would.bytes));
    assert_eq!(would.blobs, 3);
    assert_eq!(meta.collect().queued().await.unwrap(), 0);
    assert_eq!(gc.dry_run(101).await.unwrap().0.blobs, 0, "the full scan finds nothing the queue missed");
    for d in [&stray, &images[0].1, &images[0].2] {
        assert_eq!(store.stat(d).await.unwrap(), None);
    }
    assert!(store.stat(&images[1].2).await.unwrap().is_some(), "referenced in a");

    // A candidate queued again after a sweep read it (a manifest PUT took it out, its delete queued it again)
    // stays: it is taken out only at the seq the sweep saw.
    let late = push_blob(&up, &a, b"late", 200).await;
    let seen = meta.collect().candidates(&Default::default(), 100).await.unwrap();
    assert_eq!(seen.len(), 1);
    let m = put_manifest(&meta, &a, "late", &[&late], 200).await.unwrap();
    assert_eq!(meta.collect().queued().await.unwrap(), 0);
    assert!(meta.manifests().delete(&a, &m).await.unwrap());
    assert_eq!(meta.collect().drop_candidates(&seen.iter().collect::<Vec<_>>()).await.unwrap(), 0);
    assert_eq!(meta.collect().queued().await.unwrap(), 1);
    assert_eq!(gc.sweep(300).await.unwrap().blobs, 1);

    // A queue that missed everything (as one from before the queue, had the migration not seeded it): a sweep
    // finds nothing, a reconciliation queues what a full scan finds, and the next sweep collects it.
    assert!(meta.manifests().delete(&a, &images[2].0).await.unwrap());
    forget_queue(url).await;
    assert_eq!(gc.sweep(300).await.unwrap().blobs, 0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(gc.reconcile(now, 1 << 40, 100_000).await.unwrap().requeued, 2);
    let s = gc.sweep(300).await.unwrap();
    assert_eq!((s.candidates, s.blobs), (2, 2));
    assert_eq!(gc.dry_run(300).await.unwrap().0.blobs, 0);
    for (i, (_, config, layer)) in images.iter().enumerate().skip(1) {
        assert_eq!(store.stat(config).await.unwrap().is_some(), i != 2, "config {i}");
        assert_eq!(store.stat(layer).await.unwrap().is_some(), i != 2, "layer {i}");
    }

    // A blob collected and pushed again is a new link and a new row, each at a fresh version: what a collector
    // read of the old ones (a page read before the new push) removes nothing of the new. When a new row started at
    // the old one's version, the stale link went and the bytes with it: a 201'd push that then answered 404.
    let again = push_blob(&up, &a, b"again", 400).await;
    let old = meta.collect().candidates(&Default::default(), 100).await.unwrap();
    assert_eq!(gc.sweep(400).await.unwrap().blobs, 1);
    assert_eq!(store.stat(&again).await.unwrap(), None);
    push_blob(&up, &a, b"again", 500).await;
    let stale: Vec<StaleLink> = old
        .iter()
        .filter_map(|c| match (&c.repo, c.link) {
            (Some(repo), LinkState::Unreferenced { version, .. }) => {
                Some(StaleLink { repo: repo.clone(), digest: c.digest.clone(), version })
            }
            _ => None,
        })
        .collect();
    assert_eq!(stale.len(), 1, "the first push's link was read");
    assert!(meta.collect().remove_stale(&stale).await.unwrap().is_empty(), "the new link stays");
    assert!(meta.blobs().unlink(&a, &again).await.unwrap());
    let rows: Vec<_> = old.iter().filter_map(|c| c.blob.clone()).collect();
    assert_eq!(rows.len(), 1, "the first push's row was read");
    assert!(meta.collect().mark_blobs(&rows).await.unwrap().is_empty(), "the new row is not marked");
    assert!(store.stat(&again).await.unwrap().is_some());

    // An upload that finds its copy gone undoes its link, but never the collector's tombstone: the collector
    // deletes the bytes at the content address after marking, so a row forgotten early let a new upload record the
    // blob and lose its bytes.
    let late = Digest::sha256_of(b"marked under an upload");
    let c = up.put_whole(Some(22), body(b"marked under an upload"), &late).await.unwrap();
    let (_, version) = meta.blobs().link_verified(&a, &late, c.size, None, 600, || async { Ok(true) }).await.unwrap();
    let seen = meta.collect().candidates(&Default::default(), 100).await.unwrap();
    let seen: Vec<_> = seen.iter().filter(|c| c.digest == late).collect();
    let stale: Vec<StaleLink> = seen
        .iter()
        .filter_map(|c| match c.link {
            LinkState::Unreferenced { version, .. } => {
                Some(StaleLink { repo: a.clone(), digest: late.clone(), version })
            }
            _ => None,
        })
        .collect();
    assert_eq!(meta.collect().remove_stale(&stale).await.unwrap().len(), 1);
    let rows: Vec<_> = seen.iter().filter_map(|c| c.blob.clone()).collect();
    assert_eq!(meta.collect().mark_blobs(&rows).await.unwrap().len(), 1);
    meta.blobs().unlink_added(&a, &late, version).await.unwrap();
    assert!(meta.blobs().deleting(&late).await.unwrap(), "the tombstone stays the collector's");

    // A linked blob whose row `check --repair` made a tombstone (its bytes are gone) is not there for a HEAD or a
    // GET: a client uploads it again instead of being told it exists.
    let damaged = push_blob(&up, &a, b"damaged under a link", 900).await;
    let row = meta.check().blob(&damaged).await.unwrap().expect("recorded");
    assert!(meta.blobs().get(&a, &damaged).await.unwrap().is_some());
    assert!(meta.check().mark_blob(&damaged, row.version).await.unwrap());
    assert_eq!(meta.blobs().get(&a, &damaged).await.unwrap(), None, "a tombstone is not served");
    assert!(meta.check().unmark_blob(&damaged).await.unwrap());
    assert!(meta.blobs().get(&a, &damaged).await.unwrap().is_some(), "live again");
}

#[tokio::test]
async fn queue_on_sqlite_and_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let meta = Metadata::open_sqlite(&path).await.unwrap();
    let url = Url::from_directory_path(dir.path().join("store")).unwrap();
    queue_suite(meta, BlobStore::from_url(&url).unwrap(), &format!("sqlite://{}", path.display())).await;
}

#[test]
fn queue_on_postgres_and_s3() {
    let (url, store) = (pg::database(), s3_store());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        queue_suite(Metadata::open(&url).await.unwrap(), store, &url).await;
    });
}
