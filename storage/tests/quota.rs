//! Quotas' contract, run unchanged against SQLite and PostgreSQL: what counts (once per quota), what is refused,
//! what frees, that a recount finds nothing to correct after concurrent writers (and after a quota was added while
//! they ran), and that it sets right drift made behind its back.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;

use std::sync::Arc;

use wharf_format::policy::Pattern;
use wharf_format::{Digest, MediaType, RepositoryName};
use wharf_storage::meta::{QuotaRow, StaleLink, UntaggedRow};
use wharf_storage::{Error, Journal, Metadata, NewManifest};

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn r(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn p(s: &str) -> Pattern {
    s.parse().unwrap()
}

async fn usage(m: &Metadata, pattern: &str) -> u64 {
    let rows = m.quotas().list().await.unwrap();
    rows.iter().find(|q| q.pattern == pattern).map(|q| q.usage).expect("quota listed")
}

async fn clean(m: &Metadata) {
    let found = m.quotas().recount().await.unwrap();
    assert!(found.iter().all(|f| !f.corrected()), "recount corrected {found:?}");
}

async fn put(
    m: &Metadata,
    repo: &RepositoryName,
    digest: &Digest,
    content: &[u8],
    blobs: Vec<&Digest>,
) -> Result<(), Error> {
    let mt: MediaType = "application/vnd.oci.image.manifest.v1+json".parse().unwrap();
    let new = NewManifest {
        repo,
        digest,
        media_type: &mt,
        artifact_type: None,
        subject: None,
        content,
        blobs,
        manifests: vec![],
        tag: None,
        lazy: false,
    };
    m.manifests().put(&new, 10).await
}

async fn semantics(m: &Metadata) {
    let (a, b, other) = (r("team/a"), r("team/b/deep"), r("other/x"));
    // Content before the quota: counted from scratch when it is set (the shared blob once).
    m.blobs().link(&a, &d("shared"), 100, None, 1).await.unwrap();
    m.blobs().link(&b, &d("shared"), 100, None, 1).await.unwrap();
    m.blobs().link(&other, &d("outside"), 5000, None, 1).await.unwrap();
    let row = m.quotas().set(&p("team/**"), 1000, 2, &Journal::default()).await.unwrap();
    assert_eq!(row, QuotaRow { pattern: "team/**".into(), limit: 1000, usage: 100 });
    m.quotas().set(&p("team/a"), 10_000, 2, &Journal::default()).await.unwrap();
    assert_eq!(usage(m, "team/a").await, 100);

    // A blob, then a manifest of 50 bytes: counted in both quotas that cover team/a.
    m.blobs().link(&a, &d("layer"), 700, None, 3).await.unwrap();
    let man = vec![b'm'; 50];
    put(m, &a, &d("man"), &man, vec![&d("shared"), &d("layer")]).await.unwrap();
    assert_eq!((usage(m, "team/**").await, usage(m, "team/a").await), (850, 850));
    // The same manifest again, and a mount of a counted blob: nothing more.
    put(m, &a, &d("man"), &man, vec![&d("shared"), &d("layer")]).await.unwrap();
    assert_eq!(m.blobs().mount(&a, &b, &d("layer"), 4).await.unwrap(), Some(700));
    assert_eq!(usage(m, "team/**").await, 850);

    // Over the limit: refused with the figures, nothing linked, usage unchanged; outside the quota: no limit.
    let refused = m.blobs().link(&b, &d("big"), 151, None, 5).await.unwrap_err();
    assert!(
        matches!(&refused, Error::QuotaExceeded { quota, usage: 850, limit: 1000, adding: 151 } if quota == "team/**"),
        "{refused:?}"
    );
    assert_eq!(m.blobs().size(&b, &d("big")).await.unwrap(), None);
    assert_eq!(usage(m, "team/**").await, 850);
    assert!(matches!(m.blobs().mount(&other, &b, &d("outside"), 5).await, Err(Error::QuotaExceeded { .. })));
    let big = vec![b'x'; 151];
    assert!(matches!(put(m, &b, &d("man2"), &big, vec![]).await, Err(Error::QuotaExceeded { .. })));
    assert_eq!(m.manifests().by_digest(&b, &d("man2")).await.unwrap().map(|x| x.digest), None);
    m.blobs().link(&b, &d("fits"), 150, None, 5).await.unwrap();
    assert_eq!(usage(m, "team/**").await, 1000);
    m.blobs().link(&other, &d("more"), 99_999, None, 5).await.unwrap();
    clean(m).await;

    // What frees: a manifest delete, the last link of a blob (not the first of two), the collector's removals.
    assert!(m.manifests().delete(&a, &d("man")).await.unwrap());
    assert_eq!(usage(m, "team/**").await, 950);
    assert!(m.blobs().unlink(&a, &d("layer")).await.unwrap());
    assert_eq!(usage(m, "team/**").await, 950, "team/b/deep still links it");
    assert_eq!(usage(m, "team/a").await, 100);
    let links: Vec<StaleLink> = m.collect().unreferenced_links(100, None, 100).await.unwrap();
    let ours: Vec<StaleLink> = links.into_iter().filter(|l| l.repo == b).collect();
    assert_eq!(m.collect().remove_links(&ours).await.unwrap(), 3);
    assert_eq!(usage(m, "team/**").await, 100);
    put(m, &a, &d("man3"), &man, vec![&d("shared")]).await.unwrap();
    let untagged: Vec<UntaggedRow> = m.collect().untagged_manifests(&a, 100).await.unwrap();
    assert_eq!(untagged.len(), 1);
    assert!(m.collect().remove_manifest_seen(&a, &untagged[0]).await.unwrap());
    assert_eq!(usage(m, "team/**").await, 100);
    clean(m).await;

    // Removing a quota forgets it; setting it again counts from scratch.
    assert!(m.quotas().remove("team/a", &Journal::default()).await.unwrap());
    assert!(!m.quotas().remove("team/a", &Journal::default()).await.unwrap());
    m.blobs().link(&a, &d("after"), 1, None, 6).await.unwrap();
    m.quotas().set(&p("team/a"), 5, 7, &Journal::default()).await.unwrap();
    assert_eq!(usage(m, "team/a").await, 101, "over a lowered limit: allowed, and growth refused");
    assert!(matches!(m.blobs().link(&a, &d("one"), 1, None, 8).await, Err(Error::QuotaExceeded { .. })));
    m.blobs().link(&a, &d("shared"), 100, None, 8).await.unwrap();
    clean(m).await;
}

/// 16 writers link 10-byte blobs into repositories under one quota of 1000 bytes: exactly 100 fit.
async fn concurrent(m: Arc<Metadata>) {
    m.quotas().set(&p("race/**"), 1000, 1, &Journal::default()).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let m = m.clone();
            tokio::spawn(async move {
                let mut ok = 0;
                for i in 0..20 {
                    match m.blobs().link(&r(&format!("race/r{t}")), &d(&format!("{t}-{i}")), 10, None, 2).await {
                        Ok(_) => ok += 1,
                        Err(Error::QuotaExceeded { .. }) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert_eq!((ok, usage(&m, "race/**").await), (100, 1000));
    clean(&m).await;
}

/// Quotas added and removed while writers link and the collector unlinks: every write counts against the quotas
/// in force when it commits, so a recount finds nothing to correct.
async fn added_while_writing(m: Arc<Metadata>) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let (m, stop) = (m.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let repo = r(&format!("busy/r{}", t % 3));
                    m.blobs().link(&repo, &d(&format!("busy-{t}-{i}")), 7, None, 1).await.unwrap();
                    if i % 3 == 0 {
                        m.blobs().unlink(&repo, &d(&format!("busy-{t}-{}", i / 2))).await.unwrap();
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for round in 0..10 {
        m.quotas().set(&p("busy/**"), u64::MAX / 4, 1, &Journal::default()).await.unwrap();
        m.quotas().set(&p("busy/r1"), u64::MAX / 4, 1, &Journal::default()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        clean(&m).await;
        if round < 9 {
            m.quotas().remove("busy/r1", &Journal::default()).await.unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    clean(&m).await;
    assert!(usage(&m, "busy/**").await > usage(&m, "busy/r1").await);
}

/// Drift made behind storage's back (a member lost, a usage wrong): the recount says so and sets it right.
async fn drift(m: &Metadata, url: &str) {
    m.blobs().link(&r("drift/a"), &d("d1"), 40, None, 1).await.unwrap();
    m.blobs().link(&r("drift/a"), &d("d2"), 2, None, 1).await.unwrap();
    m.quotas().set(&p("drift/*"), 100, 1, &Journal::default()).await.unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("DELETE FROM quota_members WHERE digest = $1").bind(d("d1").to_string()).execute(&pool).await.unwrap();
    sqlx::query("UPDATE quotas SET usage_bytes = 7 WHERE pattern = 'drift/*'").execute(&pool).await.unwrap();
    pool.close().await;
    let found = m.quotas().recount().await.unwrap();
    let f = found.iter().find(|f| f.pattern == "drift/*").unwrap();
    assert_eq!((f.usage_before, f.usage_after, f.members_added, f.members_removed), (7, 42, 1, 0), "{f:?}");
    assert!(f.corrected());
    assert_eq!(usage(m, "drift/*").await, 42);
    clean(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let m = Arc::new(Metadata::open_sqlite(&path).await.unwrap());
    semantics(&m).await;
    concurrent(m.clone()).await;
    added_while_writing(m.clone()).await;
    drift(&m, &format!("sqlite://{}", path.display())).await;
}

#[test]
fn postgres() {
    let url = pg::database();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    rt.block_on(async {
        let m = Arc::new(Metadata::open(&url).await.unwrap());
        semantics(&m).await;
        concurrent(m.clone()).await;
        added_while_writing(m.clone()).await;
        drift(&m, &url).await;
    });
}
