//! The metadata store's contract, run unchanged against SQLite and PostgreSQL.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;

use wharf_format::tuf::{Role, RoleName};
use wharf_format::{Digest, MediaType, RepositoryName, Tag};
use wharf_storage::{
    AccountKind, AccountRow, ChangeQuery, Error, GrantRow, KeyRow, Linked, Metadata, MetadataRow, NameRange,
    NewManifest, V1Row,
};

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

async fn suite(m: Metadata) {
    let a: RepositoryName = "a".parse().unwrap();
    let b: RepositoryName = "b/c".parse().unwrap();
    let mt: MediaType = "application/vnd.oci.image.manifest.v1+json".parse().unwrap();
    let (cfg, layer) = (d("cfg"), d("layer"));

    assert_eq!(m.blobs().link(&a, &cfg, 3, None, 0).await.unwrap(), Linked::Added, "first record");
    assert_eq!(m.blobs().size(&a, &cfg).await.unwrap(), Some(3));
    // A blob stored where its multipart upload completed: the location is recorded; a second copy is surplus.
    let big = d("big");
    assert_eq!(m.blobs().link(&a, &big, 9, Some("blobs/uploaded/one"), 0).await.unwrap(), Linked::Added);
    assert_eq!(m.blobs().link(&b, &big, 9, Some("blobs/uploaded/two"), 0).await.unwrap(), Linked::Existing);
    assert_eq!(m.blobs().get(&b, &big).await.unwrap(), Some((9, Some("blobs/uploaded/one".to_string()))));
    assert_eq!(m.blobs().get(&a, &cfg).await.unwrap(), Some((3, None)));
    // An upload's new row is checked for its bytes before anything of it is visible: while the check runs, no one
    // sees the blob; when the bytes are missing, nothing is recorded.
    let lost = d("lost");
    let (linked, _) = m
        .blobs()
        .link_verified(&a, &lost, 4, None, 0, || async {
            assert_eq!(m.blobs().get(&a, &lost).await.unwrap(), None, "visible before its bytes were checked");
            Ok(false)
        })
        .await
        .unwrap();
    assert_eq!(linked, Linked::Missing);
    assert_eq!(m.blobs().get(&a, &lost).await.unwrap(), None);
    assert_eq!(m.blobs().link(&a, &lost, 4, None, 0).await.unwrap(), Linked::Added, "no row was left behind");
    assert_eq!(m.blobs().size(&b, &cfg).await.unwrap(), None);
    assert_eq!(m.blobs().mount(&b, &a, &layer, 0).await.unwrap(), None);

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
    match m.manifests().put(&new, 1).await {
        Err(Error::ReferencesMissing(missing)) => assert_eq!(missing, vec![layer.clone()]),
        other => panic!("{other:?}"),
    }
    assert!(m.manifests().by_tag(&a, &tag).await.unwrap().is_none(), "a refused manifest leaves no tag");
    m.blobs().link(&a, &layer, 5, None, 1).await.unwrap();
    m.manifests().put(&new, 2).await.unwrap();
    assert_eq!(m.manifests().by_tag(&a, &tag).await.unwrap().unwrap().digest, md);
    assert_eq!(m.blobs().mount(&a, &b, &layer, 3).await.unwrap(), Some(5));

    // Referrers.
    let art = d("artifact");
    let at: MediaType = "application/x.sig".parse().unwrap();
    let referrer = NewManifest { digest: &art, subject: Some(&md), artifact_type: Some(&at), tag: None, ..new };
    m.manifests().put(&referrer, 4).await.unwrap();
    let refs = m.manifests().referrers(&a, &md).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].digest, art);
    assert_eq!(refs[0].artifact_type.as_ref().unwrap().as_str(), "application/x.sig");

    // Bounded reads for a policy: referrers of one artifact type, and the indexes a manifest is part of.
    let other_type: MediaType = "application/x.other".parse().unwrap();
    let other = d("other-artifact");
    m.manifests().put(&NewManifest { digest: &other, artifact_type: Some(&other_type), ..referrer }, 4).await.unwrap();
    let sigs = m.manifests().referrers_of_type(&a, &md, "application/x.sig", 5).await.unwrap();
    assert_eq!((sigs.len(), &sigs[0].digest), (1, &art));
    assert!(m.manifests().referrers_of_type(&a, &md, "application/x.sig", 0).await.unwrap().is_empty());
    let index_type: MediaType = "application/vnd.oci.image.index.v1+json".parse().unwrap();
    let idx = d("index");
    let index = NewManifest {
        repo: &a,
        digest: &idx,
        media_type: &index_type,
        artifact_type: None,
        subject: None,
        content: b"{}",
        blobs: vec![],
        manifests: vec![&md],
        tag: None,
        lazy: false,
    };
    m.manifests().put(&index, 4).await.unwrap();
    let parents = m.manifests().parents(&a, &md, 8).await.unwrap();
    assert_eq!((parents.len(), &parents[0]), (1, &idx));
    assert!(m.manifests().parents(&a, &idx, 8).await.unwrap().is_empty());
    assert!(m.manifests().parents(&b, &md, 8).await.unwrap().is_empty());

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
        m.manifests().put(&tagged, 5).await.unwrap();
    }
    let (page, more) = m.manifests().tags(&a, None, 2).await.unwrap();
    assert_eq!(page.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["a0", "v1"]);
    assert!(more);
    let (page, more) = m.manifests().tags(&a, Some("v1"), 10).await.unwrap();
    assert_eq!(page.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["v2", "v3"]);
    assert!(!more);
    assert!(matches!(m.manifests().tags(&"nope".parse().unwrap(), None, 10).await, Err(Error::NameUnknown)));
    let (repos, _) = m.catalog().list(&NameRange::all(), None, 10).await.unwrap();
    assert_eq!(repos.iter().map(|r| r.as_str()).collect::<Vec<_>>(), ["a", "b/c"]);
    catalog_ranges(&m).await;
    trust_accounts_settings(&m).await;

    // Deleting a tag keeps the manifest; deleting the manifest takes its tags.
    assert!(m.manifests().delete_tag(&a, &tag).await.unwrap());
    assert!(!m.manifests().delete_tag(&a, &tag).await.unwrap());
    assert!(m.manifests().by_digest(&a, &md).await.unwrap().is_some());
    assert!(m.manifests().delete(&a, &art).await.unwrap());
    let (page, _) = m.manifests().tags(&a, None, 10).await.unwrap();
    assert!(page.is_empty(), "{page:?}");
    assert!(m.blobs().unlink(&a, &cfg).await.unwrap());
    assert_eq!(m.blobs().size(&a, &cfg).await.unwrap(), None);

    // Leases: one holder at a time; the holder keeps it; another takes it once it has run out.
    assert!(m.leases().acquire("job", "r1", 100, 130).await.unwrap());
    assert!(!m.leases().acquire("job", "r2", 110, 140).await.unwrap());
    assert!(m.leases().acquire("job", "r1", 120, 150).await.unwrap());
    assert!(!m.leases().acquire("job", "r2", 149, 179).await.unwrap());
    assert!(m.leases().acquire("job", "r2", 150, 180).await.unwrap());
    assert!(!m.leases().acquire("job", "r1", 160, 190).await.unwrap());
}

/// The trust views keep versions per role, refuse a version written twice, and end a repository's data without
/// losing its history; settings keep the first value stored; accounts bump the generation with every change.
async fn trust_accounts_settings(m: &Metadata) {
    let repo: RepositoryName = "signed".parse().unwrap();
    let row = |role: Role, version: u64| MetadataRow {
        role: RoleName::TopLevel(role),
        version,
        content: format!("{} {version}", role.as_str()).into_bytes(),
        expires: 100,
    };
    let trust = m.trust();
    trust.commit(&repo, &[row(Role::Root, 1), row(Role::Targets, 1)], 1).await.unwrap();
    trust.commit(&repo, &[row(Role::Targets, 2)], 2).await.unwrap();
    let targets = RoleName::TopLevel(Role::Targets);
    assert_eq!(trust.latest(&repo, &targets).await.unwrap().unwrap().version, 2);
    assert_eq!(trust.version(&repo, &targets, 1).await.unwrap().unwrap().content, b"targets 1");
    assert_eq!(trust.latest_all(&repo).await.unwrap().len(), 2);
    assert!(matches!(trust.commit(&repo, &[row(Role::Targets, 2)], 3).await, Err(Error::Conflict(_))));
    let key = KeyRow {
        role: Role::Timestamp,
        key_id: "k1".into(),
        public_key: "{}".into(),
        sealed_private: vec![1],
        created_at: 1,
    };
    trust.add_key(&repo, &key).await.unwrap();
    assert_eq!(trust.keys(&repo).await.unwrap()[0].key_id, "k1");
    assert_eq!(trust.repositories().await.unwrap(), std::slice::from_ref(&repo));
    assert!(trust.delete(&repo).await.unwrap());
    assert!(trust.latest(&repo, &targets).await.unwrap().is_none());
    assert!(trust.keys(&repo).await.unwrap().is_empty(), "keys retire with the generation");
    assert_eq!(trust.history(&repo).await.unwrap().len(), 3);

    let gun = "example.com/signed".parse().unwrap();
    let v1 = m.notary_v1();
    let v1_row = |role: &str, version: i64| V1Row {
        role: role.parse().unwrap(),
        version,
        sha256: format!("{role}{version}"),
        content: role.as_bytes().to_vec(),
        created_at: 0,
    };
    v1.commit(&gun, &[v1_row("root", 1), v1_row("timestamp", 1)], 1).await.unwrap();
    v1.commit(&gun, &[v1_row("timestamp", 2)], 2).await.unwrap();
    let ts = "timestamp".parse().unwrap();
    assert_eq!(v1.current(&gun, &ts).await.unwrap().unwrap().version, 2);
    assert_eq!(v1.by_hash(&gun, &ts, "timestamp1").await.unwrap().unwrap().version, 1);
    assert!(v1.by_version(&gun, &ts, 3).await.unwrap().is_none());
    assert!(matches!(v1.commit(&gun, &[v1_row("timestamp", 2)], 3).await, Err(Error::Conflict(_))));
    v1.delete(&gun, 4).await.unwrap();
    assert!(v1.current_all(&gun).await.unwrap().is_empty());
    // The collections of a repository, bare or behind any host; `_` in a name is no wildcard.
    for g in ["127.0.0.1:5000/signed", "localhost/signed", "signed", "example.com/x/signed", "example.com/s_gned"] {
        v1.commit(&g.parse().unwrap(), &[v1_row("root", 1)], 5).await.unwrap();
    }
    let guns = |r: &str, limit| {
        let repo: RepositoryName = r.parse().unwrap();
        async move { v1.guns_for(&repo, limit).await.unwrap().iter().map(|g| g.to_string()).collect::<Vec<_>>() }
    };
    assert_eq!(guns("signed", 10).await, ["127.0.0.1:5000/signed", "example.com/signed", "localhost/signed", "signed"]);
    assert_eq!(guns("signed", 1).await.len(), 1);
    assert_eq!(guns("s_gned", 10).await, ["example.com/s_gned"]);
    let feed = v1.changes(Some(&gun), ChangeQuery { after: None, limit: 10, backwards: false }).await.unwrap();
    let kinds: Vec<_> = feed.iter().map(|c| c.category.as_str()).collect();
    assert_eq!(kinds, ["update", "update", "deletion"]);

    let settings = m.settings();
    assert_eq!(settings.get("salt").await.unwrap(), None);
    assert_eq!(settings.init("salt", b"first").await.unwrap(), b"first");
    assert_eq!(settings.init("salt", b"second").await.unwrap(), b"first");

    let accounts = m.accounts();
    let generation = accounts.generation().await.unwrap();
    let admin = AccountRow {
        name: "admin".into(),
        kind: AccountKind::User,
        secret_hash: "$argon2id$x".into(),
        expires_at: None,
        created_at: 1,
    };
    let grant = GrantRow { account: "admin".into(), pattern: "*".into(), actions: "pull,push".into() };
    assert!(accounts.add_first(&admin, std::slice::from_ref(&grant), 1).await.unwrap());
    assert!(!accounts.add_first(&admin, &[], 1).await.unwrap(), "only the first account");
    assert!(matches!(accounts.add(&admin).await, Err(Error::Conflict(_))));
    assert_eq!(accounts.grants().await.unwrap(), [grant]);
    assert!(accounts.set_secret("admin", "$argon2id$y").await.unwrap());
    assert_eq!(accounts.list().await.unwrap()[0].secret_hash, "$argon2id$y");
    assert!(accounts.revoke("admin", "*").await.unwrap());
    assert!(accounts.remove("admin").await.unwrap());
    assert!(accounts.list().await.unwrap().is_empty());
    assert!(accounts.generation().await.unwrap() > generation);
}

/// Range reads of the catalog return only the rows inside the range, in byte order, paged after `last`.
async fn catalog_ranges(m: &Metadata) {
    let names = |page: &(Vec<RepositoryName>, bool)| page.0.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    let blob = d("catalog");
    let hidden = (0..40).map(|i| format!("hidden/r{i:02}"));
    let around = ["team", "team-x", "team.y", "team/app", "team/app-x", "team/app/sub", "team0", "teama", "tea/m"];
    for name in hidden.chain(around.iter().map(|s| s.to_string())) {
        m.blobs().link(&name.parse().unwrap(), &blob, 1, None, 0).await.unwrap();
    }
    let team = NameRange::prefix("team/").unwrap();
    let page = m.catalog().list(&team, None, 10).await.unwrap();
    assert_eq!(names(&page), ["team/app", "team/app-x", "team/app/sub"]);
    assert!(!page.1);
    let page = m.catalog().list(&team, None, 2).await.unwrap();
    assert_eq!((names(&page), page.1), (vec!["team/app".to_string(), "team/app-x".into()], true));
    let page = m.catalog().list(&team, Some("team/app-x"), 2).await.unwrap();
    assert_eq!((names(&page), page.1), (vec!["team/app/sub".to_string()], false));
    let page = m.catalog().list(&team, Some("team/app/sub"), 2).await.unwrap();
    assert!(page.0.is_empty() && !page.1);
    // A `last` before the range starts reads from its start.
    assert_eq!(names(&m.catalog().list(&team, Some("a"), 1).await.unwrap()), ["team/app"]);
    let deep = NameRange::prefix("team/app/").unwrap();
    assert_eq!(names(&m.catalog().list(&deep, None, 10).await.unwrap()), ["team/app/sub"]);
    let one = NameRange::exact("team/app".parse().unwrap());
    assert_eq!(names(&m.catalog().list(&one, None, 10).await.unwrap()), ["team/app"]);
    assert!(m.catalog().list(&one, Some("team/app"), 10).await.unwrap().0.is_empty());
    let missing = NameRange::exact("team/none".parse().unwrap());
    assert!(m.catalog().list(&missing, None, 10).await.unwrap().0.is_empty());
    assert!(m.catalog().list(&NameRange::prefix("nothing/").unwrap(), None, 10).await.unwrap().0.is_empty());
    // All names, in byte order (`-` and `.` sort before `/`, `/` before `0`).
    let all = names(&m.catalog().list(&NameRange::all(), Some("tea"), 100).await.unwrap());
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
    m.blobs().link(&"r".parse().unwrap(), &d("x"), 1, None, 0).await.unwrap();
    drop(m);
    let m = Metadata::open_sqlite(&path).await.unwrap();
    assert_eq!(m.blobs().size(&"r".parse().unwrap(), &d("x")).await.unwrap(), Some(1));
}

#[test]
fn postgres() {
    let url = pg::database();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        suite(Metadata::open(&url).await.unwrap()).await;
        // Reopening applies no migration twice.
        let m = Metadata::open(&url).await.unwrap();
        m.blobs().link(&"r".parse().unwrap(), &d("x"), 1, None, 0).await.unwrap();
        drop(m);
        let m = Metadata::open(&url).await.unwrap();
        assert_eq!(m.blobs().size(&"r".parse().unwrap(), &d("x")).await.unwrap(), Some(1));
    });
}
