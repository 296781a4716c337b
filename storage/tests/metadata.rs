//! The metadata store's contract, run unchanged against SQLite and PostgreSQL.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;

use wharf_format::{Digest, MediaType, RepositoryName, Tag};
use wharf_storage::{Error, Linked, Metadata, NameRange, NewManifest};

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

async fn suite(m: Metadata) {
    let a: RepositoryName = "a".parse().unwrap();
    let b: RepositoryName = "b/c".parse().unwrap();
    let mt: MediaType = "application/vnd.oci.image.manifest.v1+json".parse().unwrap();
    let (cfg, layer) = (d("cfg"), d("layer"));

    assert_eq!(m.link_blob(&a, &cfg, 3, None, 0).await.unwrap(), Linked::Added, "first record");
    assert_eq!(m.blob_size(&a, &cfg).await.unwrap(), Some(3));
    // A blob stored where its multipart upload completed: the location is recorded; a second copy is surplus.
    let big = d("big");
    assert_eq!(m.link_blob(&a, &big, 9, Some("blobs/uploaded/one"), 0).await.unwrap(), Linked::Added);
    assert_eq!(m.link_blob(&b, &big, 9, Some("blobs/uploaded/two"), 0).await.unwrap(), Linked::Existing);
    assert_eq!(m.blob(&b, &big).await.unwrap(), Some((9, Some("blobs/uploaded/one".to_string()))));
    assert_eq!(m.blob(&a, &cfg).await.unwrap(), Some((3, None)));
    assert_eq!(m.blob_size(&b, &cfg).await.unwrap(), None);
    assert_eq!(m.mount_blob(&b, &a, &layer, 0).await.unwrap(), None);

    let tag: Tag = "v1".parse().unwrap();
    let md = d("manifest");
    let new = NewManifest {
        repo: &a,
        digest: &md,
        media_type: &mt,
        artifact_type: None,
        subject: None,
        content: b"{}",
        blobs: vec![&cfg, &layer],
        manifests: vec![],
        tag: Some(&tag),
        lazy: false,
    };
    match m.put_manifest(&new, 1).await {
        Err(Error::ReferencesMissing(missing)) => assert_eq!(missing, vec![layer.clone()]),
        other => panic!("{other:?}"),
    }
    assert!(m.manifest_by_tag(&a, &tag).await.unwrap().is_none(), "a refused manifest leaves no tag");
    m.link_blob(&a, &layer, 5, None, 1).await.unwrap();
    m.put_manifest(&new, 2).await.unwrap();
    assert_eq!(m.manifest_by_tag(&a, &tag).await.unwrap().unwrap().digest, md);
    assert_eq!(m.mount_blob(&a, &b, &layer, 3).await.unwrap(), Some(5));

    // Referrers.
    let art = d("artifact");
    let at: MediaType = "application/x.sig".parse().unwrap();
    let referrer = NewManifest { digest: &art, subject: Some(&md), artifact_type: Some(&at), tag: None, ..new };
    m.put_manifest(&referrer, 4).await.unwrap();
    let refs = m.referrers(&a, &md).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].digest, art);
    assert_eq!(refs[0].artifact_type.as_ref().unwrap().as_str(), "application/x.sig");

    // Tags page in lexical order.
    for t in ["v3", "v2", "a0"] {
        let t: Tag = t.parse().unwrap();
        let tagged = NewManifest {
            repo: &a,
            digest: &art,
            media_type: &mt,
            artifact_type: Some(&at),
            subject: Some(&md),
            content: b"{}",
            blobs: vec![&cfg, &layer],
            manifests: vec![],
            tag: Some(&t),
            lazy: false,
        };
        m.put_manifest(&tagged, 5).await.unwrap();
    }
    let (page, more) = m.tags(&a, None, 2).await.unwrap();
    assert_eq!(page.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["a0", "v1"]);
    assert!(more);
    let (page, more) = m.tags(&a, Some("v1"), 10).await.unwrap();
    assert_eq!(page.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["v2", "v3"]);
    assert!(!more);
    assert!(matches!(m.tags(&"nope".parse().unwrap(), None, 10).await, Err(Error::NameUnknown)));
    let (repos, _) = m.catalog(&NameRange::all(), None, 10).await.unwrap();
    assert_eq!(repos.iter().map(|r| r.as_str()).collect::<Vec<_>>(), ["a", "b/c"]);
    catalog_ranges(&m).await;

    // Deleting a tag keeps the manifest; deleting the manifest takes its tags.
    assert!(m.delete_tag(&a, &tag).await.unwrap());
    assert!(!m.delete_tag(&a, &tag).await.unwrap());
    assert!(m.manifest_by_digest(&a, &md).await.unwrap().is_some());
    assert!(m.delete_manifest(&a, &art).await.unwrap());
    let (page, _) = m.tags(&a, None, 10).await.unwrap();
    assert!(page.is_empty(), "{page:?}");
    assert!(m.unlink_blob(&a, &cfg).await.unwrap());
    assert_eq!(m.blob_size(&a, &cfg).await.unwrap(), None);

    // Leases: one holder at a time; the holder keeps it; another takes it once it has run out.
    assert!(m.try_lease("job", "r1", 100, 130).await.unwrap());
    assert!(!m.try_lease("job", "r2", 110, 140).await.unwrap());
    assert!(m.try_lease("job", "r1", 120, 150).await.unwrap());
    assert!(!m.try_lease("job", "r2", 149, 179).await.unwrap());
    assert!(m.try_lease("job", "r2", 150, 180).await.unwrap());
    assert!(!m.try_lease("job", "r1", 160, 190).await.unwrap());
}

/// Range reads of the catalog return only the rows inside the range, in byte order, paged after `last`.
async fn catalog_ranges(m: &Metadata) {
    let names = |page: &(Vec<RepositoryName>, bool)| page.0.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    let blob = d("catalog");
    let hidden = (0..40).map(|i| format!("hidden/r{i:02}"));
    let around = ["team", "team-x", "team.y", "team/app", "team/app-x", "team/app/sub", "team0", "teama", "tea/m"];
    for name in hidden.chain(around.iter().map(|s| s.to_string())) {
        m.link_blob(&name.parse().unwrap(), &blob, 1, None, 0).await.unwrap();
    }
    let team = NameRange::prefix("team/").unwrap();
    let page = m.catalog(&team, None, 10).await.unwrap();
    assert_eq!(names(&page), ["team/app", "team/app-x", "team/app/sub"]);
    assert!(!page.1);
    let page = m.catalog(&team, None, 2).await.unwrap();
    assert_eq!((names(&page), page.1), (vec!["team/app".to_string(), "team/app-x".into()], true));
    let page = m.catalog(&team, Some("team/app-x"), 2).await.unwrap();
    assert_eq!((names(&page), page.1), (vec!["team/app/sub".to_string()], false));
    let page = m.catalog(&team, Some("team/app/sub"), 2).await.unwrap();
    assert!(page.0.is_empty() && !page.1);
    // A `last` before the range starts reads from its start.
    assert_eq!(names(&m.catalog(&team, Some("a"), 1).await.unwrap()), ["team/app"]);
    let deep = NameRange::prefix("team/app/").unwrap();
    assert_eq!(names(&m.catalog(&deep, None, 10).await.unwrap()), ["team/app/sub"]);
    let one = NameRange::exact("team/app".parse().unwrap());
    assert_eq!(names(&m.catalog(&one, None, 10).await.unwrap()), ["team/app"]);
    assert!(m.catalog(&one, Some("team/app"), 10).await.unwrap().0.is_empty());
    let missing = NameRange::exact("team/none".parse().unwrap());
    assert!(m.catalog(&missing, None, 10).await.unwrap().0.is_empty());
    assert!(m.catalog(&NameRange::prefix("nothing/").unwrap(), None, 10).await.unwrap().0.is_empty());
    // All names, in byte order (`-` and `.` sort before `/`, `/` before `0`).
    let all = names(&m.catalog(&NameRange::all(), Some("tea"), 100).await.unwrap());
    assert_eq!(all, ["tea/m", "team", "team-x", "team.y", "team/app", "team/app-x", "team/app/sub", "team0", "teama"]);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    suite(Metadata::open_sqlite(&dir.path().join("meta.db")).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_reopens_with_migrations_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let m = Metadata::open_sqlite(&path).await.unwrap();
    m.link_blob(&"r".parse().unwrap(), &d("x"), 1, None, 0).await.unwrap();
    drop(m);
    let m = Metadata::open_sqlite(&path).await.unwrap();
    assert_eq!(m.blob_size(&"r".parse().unwrap(), &d("x")).await.unwrap(), Some(1));
}

#[test]
fn postgres() {
    let url = pg::database();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        suite(Metadata::open(&url).await.unwrap()).await;
        // Reopening applies no migration twice.
        let m = Metadata::open(&url).await.unwrap();
        m.link_blob(&"r".parse().unwrap(), &d("x"), 1, None, 0).await.unwrap();
        drop(m);
        let m = Metadata::open(&url).await.unwrap();
        assert_eq!(m.blob_size(&"r".parse().unwrap(), &d("x")).await.unwrap(), Some(1));
    });
}
