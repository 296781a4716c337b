//! What a mirror remembers of its upstreams: the digest each tag named and trust metadata files, with when the
//! upstream last confirmed them; and the adoption of blobs its manifests reference.

use sqlx::Row;
use wharf_format::{Digest, RepositoryName};

use super::blobs::{claim_live, link};
use super::quota::{self, Reference};
use super::{insert_repository, Metadata};
use crate::{Result, UnixTime};

/// A cached entry: its content and when the upstream last confirmed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub content: Vec<u8>,
    pub fetched_at: UnixTime,
}

/// A mirror's memory of its upstreams: [`Metadata::mirror`].
#[derive(Clone, Copy, Debug)]
pub struct Mirror<'a>(pub(super) &'a Metadata);

impl Mirror<'_> {
    /// The cached entry `key` of `repo`, if any.
    pub async fn cached(&self, repo: &RepositoryName, key: &str) -> Result<Option<Cached>> {
        let row = sqlx::query("SELECT content, fetched_at FROM mirror_cache WHERE repository = $1 AND key = $2")
            .bind(repo.as_str())
            .bind(key)
            .fetch_optional(self.0.reader())
            .await?;
        row.map(|r| Ok(Cached { content: r.try_get("content")?, fetched_at: r.try_get("fetched_at")? })).transpose()
    }

    /// Stores (or confirms) the entry `key` of `repo` as of `now`.
    pub async fn cache(&self, repo: &RepositoryName, key: &str, content: &[u8], now: UnixTime) -> Result<()> {
        sqlx::query(
            "INSERT INTO mirror_cache (repository, key, content, fetched_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repository, key) DO UPDATE SET content = excluded.content, fetched_at = excluded.fetched_at",
        )
        .bind(repo.as_str())
        .bind(key)
        .bind(content)
        .bind(now)
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// Links a stored blob into mirrored `repo` when a manifest of `repo` references it (the upstream's own manifest
    /// says the repository has it), so that repositories sharing layers fetch each layer once. False when the blob
    /// is not stored, or no manifest of `repo` references it.
    pub async fn adopt_referenced_blob(&self, repo: &RepositoryName, digest: &Digest, now: UnixTime) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let referenced = sqlx::query(
            "SELECT 1 FROM manifest_references WHERE repository = $1 AND digest = $2 AND kind = 'blob' LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if referenced.is_none() || !claim_live(&mut tx, digest).await? {
            return Ok(false);
        }
        insert_repository(&mut tx, repo, now).await?;
        // A new link counts against the repository's quotas, as every other link does (the collector takes it
        // away again when it removes the link).
        if link(&mut tx, repo, digest, now).await?.0 {
            let size: i64 = sqlx::query("SELECT size FROM blobs WHERE digest = $1")
                .bind(digest.to_string())
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            quota::count(self.0, &mut tx, &[Reference::made(repo, digest, size.unsigned_abs())]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
