//! A request's transaction that PostgreSQL aborts as a deadlock runs again instead of failing the request: a
//! manifest delete whose queueing of candidates meets another transaction that takes the same candidate rows in the
//! other order (as the collector's multi-row statements may) is aborted by the server's deadlock detector once,
//! then completes. SQLite has one writer and cannot deadlock.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use wharf_format::{Digest, MediaType, RepositoryName};
use wharf_storage::{Metadata, NewManifest};

/// Waits until some session of this database waits on a lock.
async fn until_blocked(pool: &sqlx::PgPool) {
    let started = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "nothing ever waited on a lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_manifest_delete_aborted_as_a_deadlock_runs_again() {
    let url = pg::database();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let meta = Metadata::open(&url).await.unwrap();
        let repo: RepositoryName = "dead/lock".parse().unwrap();
        let mut digests: Vec<Digest> = ["one", "two"].iter().map(|s| Digest::sha256_of(s.as_bytes())).collect();
        digests.sort();
        for d in &digests {
            meta.blobs().link(&repo, d, 3, None, 100).await.unwrap();
        }
        let mt: MediaType = "application/vnd.oci.image.manifest.v1+json".parse().unwrap();
        let manifest = Digest::sha256_of(b"the manifest");
        let m = NewManifest {
            repo: &repo,
            digest: &manifest,
            media_type: &mt,
            artifact_type: None,
            subject: None,
            content: b"the manifest",
            blobs: digests.iter().collect(),
            manifests: vec![],
            tag: None,
            lazy: false,
        };
        meta.manifests().put(&m, 100).await.unwrap();

        // Another transaction queues the same two candidates, the last one first.
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let mut other = pool.begin().await.unwrap();
        let queue = "INSERT INTO gc_candidates (repository, digest, seq) VALUES ($1, $2, 7) \
                     ON CONFLICT (repository, digest) DO UPDATE SET seq = excluded.seq";
        sqlx::query(queue).bind(repo.as_str()).bind(digests[1].to_string()).execute(&mut *other).await.unwrap();
        // The delete queues the first, then waits for the second.
        let deleting = {
            let meta = meta.clone();
            let (repo, manifest) = (repo.clone(), manifest.clone());
            tokio::spawn(async move { meta.manifests().delete(&repo, &manifest).await })
        };
        until_blocked(&pool).await;
        // Now the other transaction waits for the first: a cycle. The delete waited first, so the detector (after
        // `deadlock_timeout`, 1 s by default) aborts the delete; this statement then goes through.
        sqlx::query(queue).bind(repo.as_str()).bind(digests[0].to_string()).execute(&mut *other).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        other.commit().await.unwrap();

        let deleted = tokio::time::timeout(Duration::from_secs(20), deleting).await.unwrap().unwrap();
        assert!(deleted.unwrap(), "the delete ran again and found its manifest");
        assert!(meta.manifests().by_digest(&repo, &manifest).await.unwrap().is_none());
        // What the retried delete queued is there, at its own stamps (not the other transaction's).
        let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM gc_candidates WHERE repository = $1")
            .bind(repo.as_str())
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(seqs.len(), 2);
        assert!(seqs.iter().all(|s| *s != 7), "{seqs:?}");
    });
}
