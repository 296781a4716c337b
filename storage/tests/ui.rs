//! The web interface's listings (`Metadata::ui`), run unchanged against SQLite and PostgreSQL: names by range and
//! search term (with `LIKE`'s wildcards taken literally), the page summaries (size, tags, last push, trust
//! formats), tag pages (filter, the four orders, offset, total) and index children.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;

use wharf_format::notary::{Gun, RoleName as V1Role};
use wharf_format::{Digest, MediaType, RepositoryName, Tag};
use wharf_storage::meta::{MetadataRow, TagQuery, TagSort, V1Row};
use wharf_storage::{Metadata, NameRange, NewManifest};

fn r(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

/// Puts a manifest of `content` referencing a blob of `size` bytes (and `children`), tagged `tag`, at `now`.
async fn put(
    m: &Metadata,
    repo: &str,
    content: &str,
    size: u64,
    children: &[&Digest],
    tag: Option<&str>,
    now: i64,
) -> Digest {
    let repo = r(repo);
    let blob = Digest::sha256_of(format!("blob-{size}").as_bytes());
    m.blobs().link(&repo, &blob, size, None, now).await.unwrap();
    let digest = Digest::sha256_of(content.as_bytes());
    let mt: MediaType = if children.is_empty() {
        "application/vnd.oci.image.manifest.v1+json".parse().unwrap()
    } else {
        "application/vnd.oci.image.index.v1+json".parse().unwrap()
    };
    let tag: Option<Tag> = tag.map(|t| t.parse().unwrap());
    let new = NewManifest {
        repo: &repo,
        digest: &digest,
        media_type: &mt,
        artifact_type: None,
        subject: None,
        content: content.as_bytes(),
        blobs: if children.is_empty() { vec![&blob] } else { vec![] },
        manifests: children.to_vec(),
        tag: tag.as_ref(),
        lazy: false,
    };
    m.manifests().put(&new, now).await.unwrap();
    digest
}

async fn contract(m: &Metadata) {
    for (repo, size) in [("a/app", 100), ("a/app_x", 7), ("xapp", 5), ("b/other", 9), ("c/signed", 1), ("d/v1", 2)] {
        put(m, repo, &format!("{{\"m\":\"{repo}\"}}"), size, &[], Some("latest"), 10).await;
    }
    // Names: ranges, terms (case-insensitive, wildcards literal), paging.
    let names = |v: Vec<RepositoryName>| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let all = NameRange::all();
    let (found, more) = m.ui().names(&all, "APP", None, 2).await.unwrap();
    assert_eq!((names(found), more), (vec!["a/app".to_string(), "a/app_x".into()], true));
    let (found, more) = m.ui().names(&all, "app", Some("a/app_x"), 2).await.unwrap();
    assert_eq!((names(found), more), (vec!["xapp".to_string()], false));
    assert_eq!(names(m.ui().names(&all, "p_x", None, 10).await.unwrap().0), ["a/app_x"]);
    assert_eq!(names(m.ui().names(&all, "%", None, 10).await.unwrap().0), Vec::<String>::new());
    let prefix = NameRange::prefix("a/").unwrap();
    assert_eq!(names(m.ui().names(&prefix, "", None, 10).await.unwrap().0), ["a/app", "a/app_x"]);
    let exact = NameRange::exact(r("a/app"));
    assert_eq!(names(m.ui().names(&exact, "", None, 10).await.unwrap().0), ["a/app"]);

    // Summaries: more tags and a later push in a/app; trust data in c/signed (TUF) and d/v1 (Notary v1).
    put(m, "a/app", "{\"m\":\"second\"}", 50, &[], Some("v2"), 30).await;
    let role: wharf_format::tuf::RoleName = "root".parse().unwrap();
    let row = MetadataRow { role, version: 1, content: b"{}".to_vec(), expires: 99 };
    m.trust().commit(&r("c/signed"), &[row], 11).await.unwrap();
    let gun: Gun = "registry.example:5000/d/v1".parse().unwrap();
    let v1 =
        V1Row { role: V1Role::root(), version: 1, sha256: "00".repeat(32), content: b"{}".to_vec(), created_at: 12 };
    m.notary_v1().commit(&gun, &[v1], 12).await.unwrap();
    let wanted = [r("d/v1"), r("a/app"), r("c/signed"), r("nope/none")];
    let s = m.ui().summaries(&wanted).await.unwrap();
    assert_eq!(s.iter().map(|s| s.name.to_string()).collect::<Vec<_>>(), ["d/v1", "a/app", "c/signed"]);
    let app = &s[1];
    let manifest_bytes = "{\"m\":\"a/app\"}".len() + "{\"m\":\"second\"}".len();
    assert_eq!((app.size, app.tags, app.pushed), (150 + manifest_bytes as u64, 2, Some(30)));
    assert_eq!((app.tuf, app.notary_v1), (false, false));
    assert_eq!((s[0].tuf, s[0].notary_v1, s[2].tuf, s[2].notary_v1), (false, true, true, false));

    // Tags: filter, orders, offset, total.
    for (i, t) in ["beta", "Alpha", "gamma", "alpha-2"].iter().enumerate() {
        put(m, "t/repo", &format!("{{\"t\":{i}}}"), 3, &[], Some(t), 100 - i as i64).await;
    }
    let page = |filter: &'static str, sort: TagSort, offset: u64, limit: u32| TagQuery { filter, sort, offset, limit };
    let tags = |q: TagQuery<'static>| async move {
        let p = m.ui().tags(&r("t/repo"), &q).await.unwrap();
        (p.tags.iter().map(|t| t.tag.to_string()).collect::<Vec<_>>(), p.total)
    };
    assert_eq!(
        tags(page("", TagSort::Name, 0, 10)).await,
        (vec!["Alpha".into(), "alpha-2".into(), "beta".into(), "gamma".into()], 4)
    );
    assert_eq!(tags(page("", TagSort::NameDesc, 1, 2)).await, (vec!["beta".into(), "alpha-2".into()], 4));
    assert_eq!(tags(page("ALPHA", TagSort::Pushed, 0, 10)).await, (vec!["alpha-2".into(), "Alpha".into()], 2));
    assert_eq!(tags(page("", TagSort::PushedDesc, 0, 1)).await, (vec!["beta".into()], 4));
    assert_eq!(tags(page("a_", TagSort::Name, 0, 10)).await, (vec![], 0));
    let line = m.ui().tags(&r("t/repo"), &page("gamma", TagSort::Name, 0, 1)).await.unwrap().tags.remove(0);
    assert_eq!((line.content.as_slice(), line.updated_at), (b"{\"t\":2}".as_slice(), 98));
    assert!(m.ui().exists(&r("t/repo")).await.unwrap() && !m.ui().exists(&r("t/none")).await.unwrap());

    // An index's children, and the blobs linked into a repository.
    let a = put(m, "i/multi", "{\"c\":1}", 4, &[], None, 5).await;
    let b = put(m, "i/multi", "{\"c\":2}", 6, &[], None, 5).await;
    let index = put(m, "i/multi", "{\"manifests\":2}", 0, &[&a, &b], Some("v1"), 6).await;
    let mut kids: Vec<(Digest, Vec<u8>)> = m
        .ui()
        .children(&r("i/multi"), std::slice::from_ref(&index))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.digest, c.content))
        .collect();
    kids.sort();
    let mut want = vec![(a, b"{\"c\":1}".to_vec()), (b, b"{\"c\":2}".to_vec())];
    want.sort();
    assert_eq!(kids, want);
    let blob = Digest::sha256_of(b"blob-4");
    let linked = m.ui().blobs(&r("i/multi"), &[blob.clone(), Digest::sha256_of(b"absent")]).await.unwrap();
    assert_eq!(linked.iter().map(|l| (l.digest.clone(), l.size)).collect::<Vec<_>>(), [(blob, 4)]);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metadata::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
    contract(&m).await;
}

#[test]
fn postgres() {
    let url = pg::database();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async { contract(&Metadata::open(&url).await.unwrap()).await });
}
