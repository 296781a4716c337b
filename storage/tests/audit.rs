//! The audit log's storage, run unchanged against SQLite and PostgreSQL: rows written in the change's transaction
//! (none when it fails), a tag move read inside the push, ids in order across batched inserts, the query's
//! filters and the bounded prune.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;

use wharf_format::{Digest, MediaType, RepositoryName, Tag};
use wharf_storage::{AuditQuery, AuditRow, Error, Journal, Metadata, NewManifest};

fn row(at: i64, action: &str, actor: &str, repository: Option<&str>) -> AuditRow {
    AuditRow {
        at,
        action: action.into(),
        actor: actor.into(),
        actor_kind: "account".into(),
        address: Some("10.0.0.1".into()),
        repository: repository.map(Into::into),
        digest: None,
        tag: None,
        detail: None,
    }
}

fn journal(rows: Vec<AuditRow>) -> Journal {
    Journal { audit: rows, events: Vec::new() }
}

async fn all(m: &Metadata) -> Vec<(i64, AuditRow)> {
    m.audit().query(&AuditQuery { limit: 10_000, ..AuditQuery::default() }).await.unwrap()
}

async fn suite(m: Metadata) {
    let repo: RepositoryName = "team/app".parse().unwrap();
    let mt: MediaType = "application/vnd.oci.image.manifest.v1+json".parse().unwrap();
    let tag: Tag = "v1".parse().unwrap();
    let (layer, one, two) = (Digest::sha256_of(b"layer"), Digest::sha256_of(b"one"), Digest::sha256_of(b"two"));
    let new = |digest| NewManifest {
        repo: &repo,
        digest,
        media_type: &mt,
        artifact_type: None,
        subject: None,
        content: b"{}",
        blobs: vec![&layer],
        manifests: vec![],
        tag: Some(&tag),
        lazy: false,
    };
    let moved =
        |from: Option<String>| journal(vec![AuditRow { detail: from, ..row(1, "tag", "alice", Some("team/app")) }]);
    let push = journal(vec![row(1, "push", "alice", Some("team/app"))]);

    // A push refused for a missing blob writes no row.
    match m.manifests().put_tag_recorded(&new(&one), 1, &push, &moved).await {
        Err(Error::ReferencesMissing(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(m.audit().count().await.unwrap(), 0);
    m.blobs().link(&repo, &layer, 5, None, 1).await.unwrap();
    // A new tag, the same push again (no move), then a move: the move names the digest the tag left.
    m.manifests().put_tag_recorded(&new(&one), 2, &push, &moved).await.unwrap();
    m.manifests().put_tag_recorded(&new(&one), 3, &push, &moved).await.unwrap();
    m.manifests().put_tag_recorded(&new(&two), 4, &push, &moved).await.unwrap();
    let rows = all(&m).await;
    let actions: Vec<(&str, Option<&str>)> =
        rows.iter().rev().map(|(_, r)| (r.action.as_str(), r.detail.as_deref())).collect();
    let one_text = one.to_string();
    assert_eq!(
        actions,
        [("push", None), ("tag", None), ("push", None), ("push", None), ("tag", Some(one_text.as_str()))]
    );

    // Many rows in one journal: ids follow on, in order, past one statement's rows.
    let many: Vec<AuditRow> = (0..120).map(|i| row(100 + i, "remove_blob", "gc", None)).collect();
    m.journals().record(&journal(many)).await.unwrap();
    let rows = all(&m).await;
    assert_eq!(rows.len(), 125);
    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1] + 1), "ids are consecutive, newest first");
    assert_eq!(rows[0].1.at, 219, "the last row of the batch is the newest");

    // Filters.
    let m = &m;
    let q = |f: AuditQuery| async move { m.audit().query(&AuditQuery { limit: 1_000, ..f }).await.unwrap().len() };
    assert_eq!(q(AuditQuery { repository: Some("team/app".into()), ..AuditQuery::default() }).await, 5);
    assert_eq!(q(AuditQuery { actor: Some("gc".into()), ..AuditQuery::default() }).await, 120);
    assert_eq!(q(AuditQuery { since: Some(200), ..AuditQuery::default() }).await, 20);
    assert_eq!(q(AuditQuery { action: Some("tag".into()), ..AuditQuery::default() }).await, 2);
    let both = AuditQuery { actor: Some("alice".into()), action: Some("push".into()), ..AuditQuery::default() };
    assert_eq!(q(both).await, 3);
    assert_eq!(m.audit().query(&AuditQuery { limit: 7, ..AuditQuery::default() }).await.unwrap().len(), 7);

    // Pruning goes oldest first, at most `limit` rows a statement.
    assert_eq!(m.audit().prune(150, 30).await.unwrap(), 30);
    assert_eq!(m.audit().prune(150, 1_000).await.unwrap(), 25);
    assert_eq!(m.audit().prune(150, 1_000).await.unwrap(), 0);
    assert_eq!(m.audit().count().await.unwrap(), 70);
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
