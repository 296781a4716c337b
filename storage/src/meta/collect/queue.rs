//! The collector's queue of candidates (`gc_candidates`, migration 0017): the links and blobs that may have become
//! garbage, written in the transaction of the change that may have made them so. A run reads the queue instead of
//! scanning every link and blob; the removals it then makes are the same conditional statements as ever, so the
//! queue decides only where a run looks, never what may go.
//!
//! Who writes it: a new link ([`enqueue`], from `blobs::link`: uploads, mounts, mirrors), a manifest deleted
//! ([`enqueue_references`]: the blobs it referenced), a blob unlinked. A manifest PUT takes out the links it now
//! references ([`dequeue_referenced`]). A run takes out a row only at the `seq` it read ([`Collect::drop_candidates`]):
//! every enqueue writes a fresh random `seq` (also into a row taken out and queued again meanwhile, which a counter
//! would give its old value back), so a change that lands while a run decides keeps its row for the next run.

use sqlx::Row;
use wharf_format::{Digest, RepositoryName};

use super::{params, tuples, Batch, Collect, Tombstone, PAGE_ROWS};
use crate::meta::parse;
use crate::meta::Tx;
use crate::{Result, UnixTime};

/// `INSERT … ON CONFLICT` of a candidate: a row already there gets the new `seq`.
const UPSERT: &str = "ON CONFLICT (repository, digest) DO UPDATE SET seq = excluded.seq";

/// A fresh `seq` for the rows one statement queues (64 random bits: a run never sees the same one twice).
fn stamp() -> i64 {
    i64::from_le_bytes(uuid::Uuid::new_v4().as_u64_pair().0.to_le_bytes())
}

/// A row of the queue as a run reads it, with the state of its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `None`: a blob that may have no link left (no repository named).
    pub repo: Option<RepositoryName>,
    pub digest: Digest,
    pub seq: i64,
    pub link: LinkState,
    /// The blob, when it is live, with the version seen: what a sweep turns into a tombstone once no link is left.
    pub blob: Option<(Tombstone, i64)>,
}

/// What the link of a candidate was when the run read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No link (or no repository named): the blob itself is the candidate.
    Absent,
    /// A manifest of the repository references it: not garbage while that holds.
    Referenced,
    /// Nothing references it; it goes once `touched_at` is at or before a run's cutoff (at `version`).
    Unreferenced { version: i64, touched_at: UnixTime },
}

impl Candidate {
    /// The key a page continues after.
    pub fn key(&self) -> (String, String) {
        (self.repo.as_ref().map_or_else(String::new, |r| r.to_string()), self.digest.to_string())
    }
}

impl Collect<'_> {
    /// Up to `limit` candidates after `after` in (repository, digest) order, each with its link's state and its
    /// blob. (The blob's version is read before its links go: a push that claims the blob after this read still
    /// makes the tombstone's conditional statement miss it.)
    pub async fn candidates(&self, after: &(String, String), limit: u32) -> Result<Vec<Candidate>> {
        let rows = sqlx::query(
            "SELECT c.repository, c.digest, c.seq, rb.version, rb.touched_at, \
             CASE WHEN EXISTS (SELECT 1 FROM manifest_references mr \
                               WHERE mr.repository = c.repository AND mr.digest = c.digest) THEN 1 ELSE 0 END, \
             b.size, b.location, b.version, b.state \
             FROM gc_candidates c LEFT JOIN repository_blobs rb \
             ON rb.repository = c.repository AND rb.digest = c.digest \
             LEFT JOIN blobs b ON b.digest = c.digest \
             WHERE (c.repository, c.digest) > ($1, $2) ORDER BY c.repository, c.digest LIMIT $3",
        )
        .bind(&after.0)
        .bind(&after.1)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let repo: String = r.try_get(0)?;
                let version: Option<i64> = r.try_get(3)?;
                let link = match (version, r.try_get::<i64, _>(5)? != 0) {
                    (None, _) => LinkState::Absent,
                    (Some(_), true) => LinkState::Referenced,
                    (Some(version), false) => LinkState::Unreferenced { version, touched_at: r.try_get(4)? },
                };
                let digest: Digest = parse(r.try_get::<String, _>(1)?)?;
                let blob = match (r.try_get::<Option<String>, _>(9)?.as_deref(), r.try_get::<Option<i64>, _>(8)?) {
                    (Some("live"), Some(version)) => {
                        let size = r.try_get::<i64, _>(6)?.unsigned_abs();
                        Some((Tombstone { digest: digest.clone(), size, location: r.try_get(7)? }, version))
                    }
                    _ => None,
                };
                Ok(Candidate {
                    repo: if repo.is_empty() { None } else { Some(parse(repo)?) },
                    digest,
                    seq: r.try_get(2)?,
                    link,
                    blob,
                })
            })
            .collect()
    }

    /// Takes each candidate out of the queue if it is still at the `seq` seen; returns how many went.
    pub async fn drop_candidates(&self, done: &[&Candidate]) -> Result<u64> {
        let mut batch = Batch::new(self.0);
        let n = self.drop_candidates_in(&mut batch, done).await?;
        batch.finish().await?;
        Ok(n)
    }

    /// [`Collect::drop_candidates`] in `batch`.
    pub(super) async fn drop_candidates_in(&self, batch: &mut Batch<'_>, done: &[&Candidate]) -> Result<u64> {
        let mut n = 0;
        for chunk in done.chunks(PAGE_ROWS) {
            let mut repos: Vec<String> = chunk.iter().map(|c| c.key().0).collect();
            repos.dedup();
            // `repository IN … AND digest IN …` finds the rows by the primary key; the tuples say which pairs.
            let sql = format!(
                "DELETE FROM gc_candidates WHERE repository IN ({}) AND digest IN ({}) \
                 AND (repository, digest, seq) IN (VALUES {})",
                params(1, repos.len()),
                params(1 + repos.len(), chunk.len()),
                tuples(1 + repos.len() + chunk.len(), chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for r in &repos {
                q = q.bind(r.clone());
            }
            for c in chunk {
                q = q.bind(c.digest.to_string());
            }
            for c in chunk {
                let (repo, digest) = c.key();
                q = q.bind(repo).bind(digest).bind(c.seq);
            }
            n += q.execute(&mut **batch.tx().await?).await?.rows_affected();
            batch.statement_done().await?;
        }
        Ok(n)
    }

    /// Queues every unreferenced link and every unlinked live blob, as the migration seeded the queue: a full scan,
    /// for a reconciliation (it repairs a queue that missed something). Returns the rows added.
    pub async fn requeue_all(&self) -> Result<u64> {
        let mut tx = self.0.writer().begin().await?;
        let links = sqlx::query(
            "INSERT INTO gc_candidates (repository, digest) \
             SELECT rb.repository, rb.digest FROM repository_blobs rb \
             WHERE NOT EXISTS (SELECT 1 FROM manifest_references mr \
                               WHERE mr.repository = rb.repository AND mr.digest = rb.digest) \
             ON CONFLICT DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        let blobs = sqlx::query(
            "INSERT INTO gc_candidates (repository, digest) SELECT '', b.digest FROM blobs b \
             WHERE b.state = 'live' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest) \
             ON CONFLICT DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(links.rows_affected() + blobs.rows_affected())
    }

    /// How many rows the queue holds (for tests and reports).
    pub async fn queued(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM gc_candidates").fetch_one(self.0.reader()).await?;
        Ok(n.unsigned_abs())
    }
}

/// Queues the links of `digests` in `repo` (or the blobs, when the links are gone), in the caller's transaction.
pub(in crate::meta) async fn enqueue(tx: &mut Tx<'_>, repo: &RepositoryName, digests: &[&Digest]) -> Result<()> {
    for chunk in digests.chunks(PAGE_ROWS) {
        let sql = format!(
            "INSERT INTO gc_candidates (repository, digest, seq) VALUES {} {UPSERT}",
            tuples(1, chunk.len(), 3)
        );
        let (mut q, seq) = (sqlx::query(&sql), stamp());
        for d in chunk {
            q = q.bind(repo.as_str()).bind(d.to_string()).bind(seq);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Queues the blobs manifest `digest` of `repo` references, before the manifest (and its references) go.
pub(in crate::meta) async fn enqueue_references(tx: &mut Tx<'_>, repo: &RepositoryName, digest: &Digest) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO gc_candidates (repository, digest, seq) SELECT repository, digest, $3 FROM manifest_references \
         WHERE repository = $1 AND manifest = $2 AND kind = 'blob' ORDER BY digest {UPSERT}"
    ))
    .bind(repo.as_str())
    .bind(digest.to_string())
    .bind(stamp())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes out of the queue the links of `repo` that a manifest now references, in the transaction that stores it
/// (its deletion queues them again).
pub(in crate::meta) async fn dequeue_referenced(
    tx: &mut Tx<'_>,
    repo: &RepositoryName,
    digests: &[&Digest],
) -> Result<()> {
    for chunk in digests.chunks(PAGE_ROWS) {
        let sql = format!("DELETE FROM gc_candidates WHERE repository = $1 AND digest IN ({})", params(2, chunk.len()));
        let mut q = sqlx::query(&sql).bind(repo.as_str());
        for d in chunk {
            q = q.bind(d.to_string());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
