//! The collector's statements. Every removal names the version of the row it saw and re-checks, in the same
//! statement, that nothing needs the row: a push that claimed the row meanwhile gave it a new version (on
//! PostgreSQL the removal then waits for that push's transaction and re-evaluates the row), so the row stays.
//! Bytes are deleted only under a tombstone (`blobs.state = 'deleting'`), which no upload or mount links.

use sqlx::Row;
use wharf_format::{Digest, RepositoryName, Tag};

use super::journal::{self, Journal};
use super::quota::{self, Reference};
use super::{parse, Metadata};
use crate::{Result, UnixTime};

mod batch;
mod decide;
mod queue;
mod retention;

use batch::Batch;

pub use decide::Decided;
pub(super) use queue::{dequeue_referenced, enqueue, enqueue_references};
pub use queue::{Candidate, LinkState};

/// A blob link no manifest of its repository references, as the collector saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleLink {
    pub repo: RepositoryName,
    pub digest: Digest,
    pub version: i64,
}

/// A blob whose bytes are going (or would go): no repository links it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub digest: Digest,
    pub size: u64,
    /// Where its bytes lie, `None` for the content address.
    pub location: Option<String>,
}

/// A tag as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub tag: Tag,
    pub digest: Digest,
    pub updated_at: UnixTime,
}

/// An untagged manifest as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntaggedRow {
    pub digest: Digest,
    pub version: i64,
    pub created_at: UnixTime,
}

/// A blob nothing references that is still inside the grace period: some link of it was touched after the cutoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub digest: Digest,
    pub size: u64,
    /// The latest touch of its links: it becomes collectible a grace period after (if nothing touches it again).
    pub touched_at: UnixTime,
}

/// What the store holds of a digest, for the reconciliation of orphans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub location: Option<String>,
    pub deleting: bool,
}

/// Rows per batched statement (SQLite takes 32,766 parameters, PostgreSQL 65,535: three per row here at most).
const PAGE_ROWS: usize = 500;

/// `$first, …`: `n` parameters.
fn params(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($first, …), …`: `rows` tuples of `width` parameters, numbered from `first`.
fn tuples(first: usize, rows: usize, width: usize) -> String {
    (0..rows).map(|r| format!("({})", params(first + r * width, width))).collect::<Vec<_>>().join(", ")
}

/// The collector's statements: [`Metadata::collect`].
#[derive(Clone, Copy, Debug)]
pub struct Collect<'a>(pub(super) &'a Metadata);

impl Collect<'_> {
    /// Up to `limit` links last touched at or before `cutoff` that no manifest of their repository references, after
    /// `after` in (repository, digest) order.
    pub async fn unreferenced_links(
        &self,
        cutoff: UnixTime,
        after: Option<&StaleLink>,
        limit: u32,
    ) -> Result<Vec<StaleLink>> {
        let (repo, digest) =
            after.map_or((String::new(), String::new()), |a| (a.repo.to_string(), a.digest.to_string()));
        let rows = sqlx::query(
            "SELECT rb.repository, rb.digest, rb.version FROM repository_blobs rb \
             WHERE rb.touched_at <= $1 AND (rb.repository, rb.digest) > ($2, $3) \
             AND NOT EXISTS (SELECT 1 FROM manifest_references mr \
                             WHERE mr.repository = rb.repository AND mr.digest = rb.digest) \
             ORDER BY rb.repository, rb.digest LIMIT $4",
        )
        .bind(cutoff)
        .bind(repo)
        .bind(digest)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StaleLink {
                    repo: parse(r.try_get::<String, _>(0)?)?,
                    digest: parse(r.try_get::<String, _>(1)?)?,
                    version: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Removes each link that is still at the version seen and still unreferenced; returns how many went. One
    /// statement per page: on PostgreSQL, a link a push claimed meanwhile is re-evaluated at its new version.
    pub async fn remove_links(&self, links: &[StaleLink]) -> Result<u64> {
        Ok(self.remove_stale(links).await?.len() as u64)
    }

    /// [`Collect::remove_links`], returning the links that went.
    pub async fn remove_stale(&self, links: &[StaleLink]) -> Result<Vec<StaleLink>> {
        let mut batch = Batch::new(self.0);
        let removed = self.remove_stale_in(&mut batch, links).await?;
        batch.finish().await?;
        Ok(removed)
    }

    /// [`Collect::remove_stale`] in `batch` (a statement per 500 rows: see `Batch` for the transactions).
    async fn remove_stale_in(&self, batch: &mut Batch<'_>, links: &[StaleLink]) -> Result<Vec<StaleLink>> {
        let mut removed = Vec::new();
        // One repository at a time, so that `repository = $1 AND digest IN (…)` finds the rows by the primary key.
        for group in links.chunk_by(|a, b| a.repo == b.repo) {
            for chunk in group.chunks(PAGE_ROWS) {
                let sql = format!(
                    "DELETE FROM repository_blobs WHERE repository = $1 AND digest IN ({}) \
                     AND (digest, version) IN (VALUES {}) \
                     AND NOT EXISTS (SELECT 1 FROM manifest_references mr \
                                     WHERE mr.repository = $1 AND mr.digest = repository_blobs.digest) \
                     RETURNING digest",
                    params(2, chunk.len()),
                    tuples(2 + chunk.len(), chunk.len(), 2)
                );
                let mut q = sqlx::query_scalar(&sql).bind(chunk[0].repo.as_str());
                for l in chunk {
                    q = q.bind(l.digest.to_string());
                }
                for l in chunk {
                    q = q.bind(l.digest.to_string()).bind(l.version);
                }
                // The quotas' usage moves in the same transaction as the links.
                let tx = batch.tx().await?;
                let gone: Vec<String> = q.fetch_all(&mut **tx).await?;
                let refs: Vec<Reference> = gone.iter().map(|d| Reference::removed(&chunk[0].repo, d.clone())).collect();
                quota::count(self.0, tx, &refs).await?;
                batch.statement_done().await?;
                let gone: std::collections::HashSet<String> = gone.into_iter().collect();
                removed.extend(chunk.iter().filter(|l| gone.contains(&l.digest.to_string())).cloned());
            }
        }
        Ok(removed)
    }

    /// Up to `limit` live blobs that no repository links, after `after` in digest order, with the version seen.
    pub async fn unlinked_blobs(&self, after: &str, limit: u32) -> Result<Vec<(Tombstone, i64)>> {
        let rows = sqlx::query(
            "SELECT b.digest, b.size, b.location, b.version FROM blobs b \
             WHERE b.state = 'live' AND b.digest > $1 \
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest) \
             ORDER BY b.digest LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| Ok((tombstone(r)?, r.try_get::<i64, _>(3)?))).collect()
    }

    /// Turns each blob still unlinked at the version seen into a tombstone; returns those that became one.
    pub async fn mark_blobs(&self, seen: &[(Tombstone, i64)]) -> Result<Vec<Tombstone>> {
        let mut batch = Batch::new(self.0);
        let marked = self.mark_blobs_in(&mut batch, seen).await?;
        batch.finish().await?;
        Ok(marked)
    }

    /// [`Collect::mark_blobs`] in `batch`.
    async fn mark_blobs_in(&self, batch: &mut Batch<'_>, seen: &[(Tombstone, i64)]) -> Result<Vec<Tombstone>> {
        let mut marked = Vec::new();
        for chunk in seen.chunks(PAGE_ROWS) {
            let sql = format!(
                "UPDATE blobs SET state = 'deleting' WHERE digest IN ({}) AND (digest, version) IN (VALUES {}) \
                 AND state = 'live' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = blobs.digest) \
                 RETURNING digest",
                params(1, chunk.len()),
                tuples(1 + chunk.len(), chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for (t, _) in chunk {
                q = q.bind(t.digest.to_string());
            }
            for (t, version) in chunk {
                q = q.bind(t.digest.to_string()).bind(*version);
            }
            let done: std::collections::HashSet<String> =
                q.fetch_all(&mut **batch.tx().await?).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
            batch.statement_done().await?;
            marked.extend(chunk.iter().filter(|(t, _)| done.contains(&t.digest.to_string())).map(|(t, _)| t.clone()));
        }
        Ok(marked)
    }

    /// Tombstones, oldest interrupted work included: what a collection must finish.
    pub async fn tombstones(&self, limit: u32) -> Result<Vec<Tombstone>> {
        let rows =
            sqlx::query("SELECT digest, size, location FROM blobs WHERE state = 'deleting' ORDER BY digest LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(self.0.writer())
                .await?;
        rows.iter().map(tombstone).collect()
    }

    /// Removes tombstones whose bytes are gone.
    pub async fn forget_blobs(&self, digests: &[&Digest]) -> Result<u64> {
        self.forget_blobs_recorded(digests, &|_| Journal::default()).await
    }

    /// [`Collect::forget_blobs`], writing `journal(digests removed)` in each page's transaction: one statement of
    /// audit rows per page, not one per blob.
    pub async fn forget_blobs_recorded(
        &self,
        digests: &[&Digest],
        journal: &(dyn Fn(&[String]) -> Journal + Send + Sync),
    ) -> Result<u64> {
        let mut n = 0;
        let mut batch = Batch::new(self.0);
        for chunk in digests.chunks(PAGE_ROWS) {
            let sql = format!(
                "DELETE FROM blobs WHERE state = 'deleting' AND digest IN ({}) RETURNING digest",
                params(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for d in chunk {
                q = q.bind(d.to_string());
            }
            let tx = batch.tx().await?;
            let gone: Vec<String> =
                q.fetch_all(&mut **tx).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
            journal::write(tx, &journal(&gone)).await?;
            batch.statement_done().await?;
            n += gone.len() as u64;
        }
        batch.finish().await?;
        Ok(n)
    }

    /// The row of `digest`, if there is one, for the reconciliation of orphans.
    pub async fn blob_row(&self, digest: &Digest) -> Result<Option<BlobRow>> {
        let row = sqlx::query("SELECT location, state FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(self.0.writer())
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(BlobRow { location: r.try_get(0)?, deleting: r.try_get::<String, _>(1)? == "deleting" }))
    }

    /// Whether any blob row records `location` as where its bytes lie.
    pub async fn location_recorded(&self, location: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE location = $1")
            .bind(location)
            .fetch_optional(self.0.writer())
            .await?;
        Ok(row.is_some())
    }

    /// Records a tombstone for bytes at the content address of `digest` that no row claims (an orphan), so that
    /// no upload links them while they are deleted. False if a row exists.
    pub async fn claim_orphan(&self, digest: &Digest, size: u64, now: UnixTime) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, state, version) VALUES ($1, $2, $3, 'deleting', $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(digest.to_string())
        .bind(size as i64)
        .bind(now)
        .bind(super::fresh_version())
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Live blobs whose every link is collectible at `cutoff` (unreferenced and untouched): what a sweep would
    /// delete, with sizes, after `after` in digest order. For dry runs; a sweep itself goes by links, then blobs.
    pub async fn collectible_blobs(&self, cutoff: UnixTime, after: &str, limit: u32) -> Result<Vec<Tombstone>> {
        let rows = sqlx::query(
            "SELECT b.digest, b.size, b.location FROM blobs b WHERE b.state = 'live' AND b.digest > $2 \
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest AND (rb.touched_at > $1 \
                 OR EXISTS (SELECT 1 FROM manifest_references mr \
                            WHERE mr.repository = rb.repository AND mr.digest = rb.digest))) \
             ORDER BY b.digest LIMIT $3",
        )
        .bind(cutoff)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(tombstone).collect()
    }

    /// Live blobs that no manifest references but that some link touched after `cutoff` keeps: what a sweep at
    /// `cutoff` leaves for later, after `after` in digest order. For dry runs.
    pub async fn waiting_blobs(&self, cutoff: UnixTime, after: &str, limit: u32) -> Result<Vec<Waiting>> {
        let rows = sqlx::query(
            "SELECT b.digest, b.size, MAX(rb.touched_at) FROM blobs b \
             JOIN repository_blobs rb ON rb.digest = b.digest \
             WHERE b.state = 'live' AND b.digest > $2 \
             AND NOT EXISTS (SELECT 1 FROM repository_blobs r2 JOIN manifest_references mr \
                             ON mr.repository = r2.repository AND mr.digest = r2.digest WHERE r2.digest = b.digest) \
             GROUP BY b.digest, b.size HAVING MAX(rb.touched_at) > $1 ORDER BY b.digest LIMIT $3",
        )
        .bind(cutoff)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Waiting {
                    digest: parse(r.try_get::<String, _>(0)?)?,
                    size: r.try_get::<i64, _>(1)? as u64,
                    touched_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Whether `digest` is a manifest of `repo` created at or before `cutoff`.
    pub async fn manifest_created_before(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        cutoff: UnixTime,
    ) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM manifests WHERE repository = $1 AND digest = $2 AND created_at <= $3")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .bind(cutoff)
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.is_some())
    }

    /// Every blob row after `after` in digest order, at most `limit`: (digest, location, whether a tombstone).
    /// For consistency checks (`wharf admin gc --check` and the tests).
    pub async fn blob_rows(&self, after: &str, limit: u32) -> Result<Vec<(Digest, BlobRow)>> {
        let rows = sqlx::query("SELECT digest, location, state FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.0.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let row = BlobRow { location: r.try_get(1)?, deleting: r.try_get::<String, _>(2)? == "deleting" };
                Ok((parse(r.try_get::<String, _>(0)?)?, row))
            })
            .collect()
    }
}

fn tombstone(r: &sqlx::any::AnyRow) -> Result<Tombstone> {
    Ok(Tombstone {
        digest: parse(r.try_get::<String, _>(0)?)?,
        size: r.try_get::<i64, _>(1)? as u64,
        location: r.try_get(2)?,
    })
}
