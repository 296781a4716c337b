//! Retention's statements: tags and untagged manifests, each removed only at the version retention saw.

use sqlx::Row;
use wharf_format::RepositoryName;

use super::{Collect, TagRow, UntaggedRow};
use crate::meta::journal::{self, Journal};
use crate::meta::parse;
use crate::meta::quota::{self, Reference};
use crate::{Result, UnixTime};

impl Collect<'_> {
    /// Every tag of `repo` with the manifest it names and when it was last pushed.
    pub async fn tag_rows(&self, repo: &RepositoryName) -> Result<Vec<TagRow>> {
        let rows = sqlx::query("SELECT tag, digest, updated_at FROM tags WHERE repository = $1 ORDER BY tag")
            .bind(repo.as_str())
            .fetch_all(self.0.reader())
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
        self.remove_tag_seen_recorded(repo, t, &Journal::default()).await
    }

    /// [`Collect::remove_tag_seen`], writing `journal` in the same transaction if the tag went.
    pub async fn remove_tag_seen_recorded(&self, repo: &RepositoryName, t: &TagRow, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let done =
            sqlx::query("DELETE FROM tags WHERE repository = $1 AND tag = $2 AND digest = $3 AND updated_at = $4")
                .bind(repo.as_str())
                .bind(t.tag.as_str())
                .bind(t.digest.to_string())
                .bind(t.updated_at)
                .execute(&mut *tx)
                .await?;
        let gone = done.rows_affected() > 0;
        if gone {
            journal::write(&mut tx, journal).await?;
        }
        tx.commit().await?;
        Ok(gone)
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
        .fetch_all(self.0.reader())
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
        self.remove_manifest_seen_recorded(repo, m, &Journal::default()).await
    }

    /// [`Collect::remove_manifest_seen`], writing `journal` in the same transaction if the manifest went.
    pub async fn remove_manifest_seen_recorded(
        &self,
        repo: &RepositoryName,
        m: &UntaggedRow,
        journal: &Journal,
    ) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        // Its blobs become the collector's candidates (rolled back with the rest when the manifest stays).
        super::enqueue_references(&mut tx, repo, &m.digest).await?;
        let done = sqlx::query(
            "DELETE FROM manifests WHERE repository = $1 AND digest = $2 AND version = $3 \
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = $1 AND t.digest = $2) \
             AND NOT EXISTS (SELECT 1 FROM manifest_references r \
                             WHERE r.repository = $1 AND r.digest = $2 AND r.kind = 'manifest')",
        )
        .bind(repo.as_str())
        .bind(m.digest.to_string())
        .bind(m.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        quota::count(self.0, &mut tx, &[Reference::removed(repo, m.digest.to_string())]).await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(true)
    }
}
