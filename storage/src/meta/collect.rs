//! The collector's statements. Every removal names the version of the row it saw and re-checks, in the same
//! statement, that nothing needs the row: a push that claimed the row meanwhile gave it a new version (on
//! PostgreSQL the removal then waits for that push's transaction and re-evaluates the row), so the row stays.
//! Bytes are deleted only under a tombstone (`blobs.state = 'deleting'`), which no upload or mount links.

use sqlx::Row;
use wharf_client::{Digest, RepositoryName, Tag};

use super::{parse, Metadata};
use crate::{Result, UnixTime};

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

/// What the store holds of a digest, for the reconciliation of orphans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub location: Option<String>,
    pub deleting: bool,
}

impl Metadata {
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
             WHERE rb.touched_at <= $1 AND (rb.repository > $2 OR (rb.repository = $2 AND rb.digest > $3)) \
             AND NOT EXISTS (SELECT 1 FROM manifest_references mr \
                             WHERE mr.repository = rb.repository AND mr.digest = rb.digest) \
             ORDER BY rb.repository, rb.digest LIMIT $4",
        )
        .bind(cutoff)
        .bind(repo)
        .bind(digest)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
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

    /// Removes each link that is still at the version seen and still unreferenced; returns how many went.
    pub async fn remove_links(&self, links: &[StaleLink]) -> Result<u64> {
        let mut tx = self.writer().begin().await?;
        let mut n = 0;
        for l in links {
            let done = sqlx::query(
                "DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2 AND version = $3 \
                 AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.repository = $1 AND mr.digest = $2)",
            )
            .bind(l.repo.as_str())
            .bind(l.digest.to_string())
            .bind(l.version)
            .execute(&mut *tx)
            .await?;
            n += done.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
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
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| Ok((tombstone(r)?, r.try_get::<i64, _>(3)?))).collect()
    }

    /// Turns each blob still unlinked at the version seen into a tombstone; returns those that became one.
    pub async fn mark_blobs(&self, seen: &[(Tombstone, i64)]) -> Result<Vec<Tombstone>> {
        let mut tx = self.writer().begin().await?;
        let mut marked = Vec::new();
        for (t, version) in seen {
            let done = sqlx::query(
                "UPDATE blobs SET state = 'deleting' WHERE digest = $1 AND version = $2 AND state = 'live' \
                 AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = $1)",
            )
            .bind(t.digest.to_string())
            .bind(*version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                marked.push(t.clone());
            }
        }
        tx.commit().await?;
        Ok(marked)
    }

    /// Tombstones, oldest interrupted work included: what a collection must finish.
    pub async fn tombstones(&self, limit: u32) -> Result<Vec<Tombstone>> {
        let rows =
            sqlx::query("SELECT digest, size, location FROM blobs WHERE state = 'deleting' ORDER BY digest LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(self.writer())
                .await?;
        rows.iter().map(tombstone).collect()
    }

    /// Removes tombstones whose bytes are gone.
    pub async fn forget_blobs(&self, digests: &[&Digest]) -> Result<u64> {
        let mut tx = self.writer().begin().await?;
        let mut n = 0;
        for d in digests {
            let done = sqlx::query("DELETE FROM blobs WHERE digest = $1 AND state = 'deleting'")
                .bind(d.to_string())
                .execute(&mut *tx)
                .await?;
            n += done.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The row of `digest`, if there is one, for the reconciliation of orphans.
    pub async fn blob_row(&self, digest: &Digest) -> Result<Option<BlobRow>> {
        let row = sqlx::query("SELECT location, state FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(self.writer())
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(BlobRow { location: r.try_get(0)?, deleting: r.try_get::<String, _>(1)? == "deleting" }))
    }

    /// Whether any blob row records `location` as where its bytes lie.
    pub async fn location_recorded(&self, location: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 FROM blobs WHERE location = $1").bind(location).fetch_optional(self.writer()).await?;
        Ok(row.is_some())
    }

    /// Records a tombstone for bytes at the content address of `digest` that no row claims (an orphan), so that
    /// no upload links them while they are deleted. False if a row exists.
    pub async fn claim_orphan(&self, digest: &Digest, size: u64, now: UnixTime) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, state) VALUES ($1, $2, $3, 'deleting') ON CONFLICT DO NOTHING",
        )
        .bind(digest.to_string())
        .bind(size as i64)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every repository's name.
    pub async fn repository_names(&self) -> Result<Vec<RepositoryName>> {
        let rows = sqlx::query("SELECT name FROM repositories ORDER BY name").fetch_all(self.reader()).await?;
        rows.iter().map(|r| parse(r.try_get::<String, _>(0)?)).collect()
    }

    /// Every tag of `repo` with the manifest it names and when it was last pushed.
    pub async fn tag_rows(&self, repo: &RepositoryName) -> Result<Vec<TagRow>> {
        let rows = sqlx::query("SELECT tag, digest, updated_at FROM tags WHERE repository = $1 ORDER BY tag")
            .bind(repo.as_str())
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TagRow {
                    tag: parse(r.try_get::<String, _>(0)?)?,
                    digest: parse(r.try_get::<String, _>(1)?)?,
                    updated_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Removes a tag if it still names the manifest seen and was not pushed again since.
    pub async fn remove_tag_seen(&self, repo: &RepositoryName, t: &TagRow) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM tags WHERE repository = $1 AND tag = $2 AND digest = $3 AND updated_at = $4")
                .bind(repo.as_str())
                .bind(t.tag.as_str())
                .bind(t.digest.to_string())
                .bind(t.updated_at)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Manifests of `repo` created at or before `cutoff` that no tag names, no index of the repository references, and
    /// whose subject (if any) is not in the repository: the roots a retention rule may sweep.
    pub async fn untagged_manifests(&self, repo: &RepositoryName, cutoff: UnixTime) -> Result<Vec<UntaggedRow>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.version, m.created_at FROM manifests m WHERE m.repository = $1 AND m.created_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifest_references r \
                             WHERE r.repository = m.repository AND r.digest = m.digest AND r.kind = 'manifest') \
             AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s \
                                                   WHERE s.repository = m.repository AND s.digest = m.subject)) \
             ORDER BY m.digest",
        )
        .bind(repo.as_str())
        .bind(cutoff)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UntaggedRow {
                    digest: parse(r.try_get::<String, _>(0)?)?,
                    version: r.try_get(1)?,
                    created_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Removes an untagged manifest if it is still at the version seen, untagged and unreferenced.
    pub async fn remove_manifest_seen(&self, repo: &RepositoryName, m: &UntaggedRow) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM manifests WHERE repository = $1 AND digest = $2 AND version = $3 \
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = $1 AND t.digest = $2) \
             AND NOT EXISTS (SELECT 1 FROM manifest_references r \
                             WHERE r.repository = $1 AND r.digest = $2 AND r.kind = 'manifest')",
        )
        .bind(repo.as_str())
        .bind(m.digest.to_string())
        .bind(m.version)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn tombstone(r: &sqlx::any::AnyRow) -> Result<Tombstone> {
    Ok(Tombstone {
        digest: parse(r.try_get::<String, _>(0)?)?,
        size: r.try_get::<i64, _>(1)? as u64,
        location: r.try_get(2)?,
    })
}

impl Metadata {
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
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(tombstone).collect()
    }
}

impl Metadata {
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
            .fetch_optional(self.reader())
            .await?;
        Ok(row.is_some())
    }
}

impl Metadata {
    /// Every blob row after `after` in digest order, at most `limit`: (digest, location, whether a tombstone).
    /// For consistency checks (`wharf admin gc --check` and the tests).
    pub async fn blob_rows(&self, after: &str, limit: u32) -> Result<Vec<(Digest, BlobRow)>> {
        let rows = sqlx::query("SELECT digest, location, state FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let row = BlobRow { location: r.try_get(1)?, deleting: r.try_get::<String, _>(2)? == "deleting" };
                Ok((parse(r.try_get::<String, _>(0)?)?, row))
            })
            .collect()
    }
}
