//! The manifest page's reads (`meta.ui()`), run unchanged against SQLite and PostgreSQL: the tags pointing at a
//! manifest and its referrers, each bounded, in order, with whether more follow.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;

use wharf_format::{Digest, MediaType, RepositoryName, Tag};
use wharf_storage::{Metadata, NewManifest};

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

/// A manifest of `repo` to store (its references do not matter here).
fn new<'a>(repo: &'a RepositoryName, digest: &'a Digest, mt: &'a MediaType, tag: Option<&'a Tag>) -> NewManifest<'a> {
    NewManifest {
        repo,
        digest,
        media_type: mt,
        artifact_type: None,
        subject: None,
        content: b"{\"schemaVersion\":2}",
        blobs: vec![],
        manifests: vec![],
        tag,
        lazy: false,
    }
}

async fn suite(m: Metadata) {
    let repo: RepositoryName = "team/app".parse().unwrap();
    let other: RepositoryName = "team/other".parse().unwrap();
    let mt: MediaType = "application/vnd.oci.image.manifest.v1+json".parse().unwrap();
    let (image, elsewhere) = (d("image"), d("elsewhere"));
    let t = |t: &str| -> Tag { t.parse().unwrap() };
    m.manifests().put(&new(&repo, &image, &mt, Some(&t("v2"))), 10).await.unwrap();
    for (tag, at) in [("v1", 11), ("latest", 12)] {
        assert!(m.manifests().set_tag(&repo, &t(tag), &image, at).await.unwrap());
    }
    m.manifests().put(&new(&repo, &elsewhere, &mt, Some(&t("other"))), 13).await.unwrap();
    m.manifests().put(&new(&other, &image, &mt, Some(&t("v9"))), 14).await.unwrap();

    let names = |tags: &[(Tag, i64)]| tags.iter().map(|(t, at)| format!("{t}@{at}")).collect::<Vec<_>>();
    let (tags, more) = m.ui().tags_of(&repo, &image, 10).await.unwrap();
    assert_eq!((names(&tags), more), (vec!["latest@12".to_string(), "v1@11".into(), "v2@10".into()], false));
    let (tags, more) = m.ui().tags_of(&repo, &image, 2).await.unwrap();
    assert_eq!((names(&tags), more), (vec!["latest@12".to_string(), "v1@11".into()], true));
    assert!(m.ui().tags_of(&repo, &d("none"), 10).await.unwrap().0.is_empty());

    // Referrers: oldest first, bounded, sized, only those of this repository's subject.
    let (sig, sbom, third) = (d("sig"), d("sbom"), d("third"));
    let sig_type: MediaType = "application/vnd.cncf.notary.signature".parse().unwrap();
    let sbom_type: MediaType = "application/spdx+json".parse().unwrap();
    for (digest, at, when) in [(&sig, &sig_type, 20), (&sbom, &sbom_type, 21), (&third, &sig_type, 22)] {
        let r = NewManifest {
            digest,
            subject: Some(&image),
            artifact_type: Some(at),
            content: b"{\"r\":1}",
            ..new(&repo, &image, &mt, None)
        };
        m.manifests().put(&r, when).await.unwrap();
    }
    let r = NewManifest {
        digest: &sig,
        subject: Some(&image),
        artifact_type: Some(&sig_type),
        ..new(&other, &image, &mt, None)
    };
    m.manifests().put(&r, 23).await.unwrap();
    let (found, more) = m.ui().referrers(&repo, &image, 10).await.unwrap();
    assert!(!more);
    let seen: Vec<(&Digest, Option<&str>, u64, i64)> =
        found.iter().map(|r| (&r.digest, r.artifact_type.as_ref().map(|t| t.as_str()), r.size, r.created_at)).collect();
    let (sig_s, sbom_s) = (Some(sig_type.as_str()), Some(sbom_type.as_str()));
    assert_eq!(seen, [(&sig, sig_s, 7, 20), (&sbom, sbom_s, 7, 21), (&third, sig_s, 7, 22)]);
    let (found, more) = m.ui().referrers(&repo, &image, 2).await.unwrap();
    assert_eq!((found.len(), more), (2, true));
    assert!(m.ui().referrers(&repo, &elsewhere, 10).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    suite(Metadata::open_sqlite(&dir.path().join("meta.db")).await.unwrap()).await;
}

#[test]
fn postgres() {
    let url = pg::database();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { suite(Metadata::open(&url).await.unwrap()).await });
}
