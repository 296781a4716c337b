//! The scrub's one removal (`wharf admin check --repair`): a tombstone set only on the row version judged, taken
//! off again when the bytes turn out good, and the removal made only under it.

use bytes::Bytes;
use url::Url;
use wharf_format::{Digest, RepositoryName};
use wharf_storage::{BlobStore, Journal, Metadata, UploadLimits, Uploads};

fn body(b: &[u8]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::iter(vec![Ok(Bytes::copy_from_slice(b))])
}

#[tokio::test]
async fn removal_is_conditional_on_the_version_judged() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
    let store = BlobStore::from_url(&Url::from_directory_path(dir.path().join("store")).unwrap()).unwrap();
    let up = Uploads::new(store, meta.clone(), UploadLimits::default());
    let repo: RepositoryName = "team/a".parse().unwrap();
    let content = b"a layer the scrub judged";
    let d = Digest::sha256_of(content);
    let push = || async {
        let c = up.put_whole(Some(content.len() as u64), body(content), &d).await.unwrap();
        up.record(&repo, &d, &c, 100).await.unwrap();
    };
    push().await;
    let check = meta.check();
    let judged = check.blob(&d).await.unwrap().unwrap();

    // Pushed again after the scrub read the row: the row it judged is gone, and so is the removal.
    push().await;
    assert!(!check.mark_blob(&d, judged.version).await.unwrap(), "a re-pushed row was marked");
    let now = check.blob(&d).await.unwrap().unwrap();
    assert!(!now.deleting);
    assert_eq!(check.linked_in(&d).await.unwrap(), vec![repo.clone()]);

    // Marked at the version read, then found good: back to live, at a new version, links kept.
    assert!(check.mark_blob(&d, now.version).await.unwrap());
    assert!(check.blob(&d).await.unwrap().unwrap().deleting);
    assert!(check.unmark_blob(&d).await.unwrap());
    let back = check.blob(&d).await.unwrap().unwrap();
    assert!(!back.deleting && back.version > now.version, "{back:?}");
    assert_eq!(check.linked_in(&d).await.unwrap(), vec![repo.clone()]);
    assert!(!check.remove_marked(&d, &Journal::default()).await.unwrap(), "removed a row with no tombstone");

    // Marked and still bad: the row and its links go.
    assert!(check.mark_blob(&d, back.version).await.unwrap());
    assert!(check.remove_marked(&d, &Journal::default()).await.unwrap());
    assert!(check.blob(&d).await.unwrap().is_none());
    assert!(check.linked_in(&d).await.unwrap().is_empty());
    assert!(!check.unmark_blob(&d).await.unwrap());
}
