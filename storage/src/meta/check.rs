//! What the scrub (`wharf admin check`) reads of the metadata, page by page in key order so that a run can resume
//! where it stopped, and the one removal it may make: a blob row whose bytes are gone (with its links, through the
//! collector's tombstone, so that no upload links it meanwhile; set on the version judged, and taken off again
//! when the bytes turn out present and good).

use sqlx::Row;
use wharf_format::{Digest, RepositoryName, Tag};

use super::journal::{self, Journal};
use super::quota::{self, Reference};
use super::{parse, Metadata};
use crate::Result;

/// A blob row as the scrub sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBlob {
    pub digest: Digest,
    pub size: u64,
    /// Where its bytes lie, `None` for the content address.
    pub location: Option<String>,
    /// The collector is deleting it (a tombstone).
    pub deleting: bool,
    /// Bumped by every write that needs the row (a push, a mount): a removal names the version it judged.
    pub version: i64,
}

/// A stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedManifest {
    pub repo: RepositoryName,
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// One reference of a manifest and what resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedReference {
    pub digest: Digest,
    /// `blob` or `manifest`.
    pub kind: String,
    /// For a blob: the size of its live row when the repository links it, else `None`. For a manifest: whether
    /// the repository has it (`Some(0)`) or not (`None`).
    pub resolved: Option<u64>,
}

/// A tag and whether its manifest is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTag {
    pub repo: RepositoryName,
    pub tag: Tag,
    pub digest: Digest,
    pub manifest_present: bool,
}

/// The scrub's reads: [`Metadata::check`].
#[derive(Clone, Copy, Debug)]
pub struct Check<'a>(pub(super) &'a Metadata);

impl Check<'_> {
    /// Up to `limit` blob rows after `after` in digest order.
    pub async fn blobs(&self, after: &str, limit: u32) -> Result<Vec<CheckedBlob>> {
        let rows = sqlx::query(
            "SELECT digest, size, location, state, version FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(blob).collect()
    }

    /// The row of `digest` as the writer sees it now: re-read before a finding is reported, since the collector
    /// may have removed it since the page was read.
    pub async fn blob(&self, digest: &Digest) -> Result<Option<CheckedBlob>> {
        let row = sqlx::query("SELECT digest, size, location, state, version FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(self.0.writer())
            .await?;
        row.as_ref().map(blob).transpose()
    }

    /// The row of `digest` as a reader sees it (for a listing's many lookups, off the writer).
    pub async fn blob_read(&self, digest: &Digest) -> Result<Option<CheckedBlob>> {
        let row = sqlx::query("SELECT digest, size, location, state, version FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        row.as_ref().map(blob).transpose()
    }

    /// Whether some blob row records `location` as where its bytes lie.
    pub async fn location_recorded(&self, location: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE location = $1")
            .bind(location)
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.is_some())
    }

    /// Whether an upload session `id` is recorded (its bytes are an upload in progress).
    pub async fn session_exists(&self, id: &str) -> Result<bool> {
        Ok(crate::upload::row::load(self.0, id).await?.is_some())
    }

    /// Up to `limit` manifests after (`repo`, `digest`) in that order.
    pub async fn manifests(&self, after: (&str, &str), limit: u32) -> Result<Vec<CheckedManifest>> {
        let rows = sqlx::query(
            "SELECT repository, digest, media_type, content FROM manifests WHERE (repository, digest) > ($1, $2) \
             ORDER BY repository, digest LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckedManifest {
                    repo: parse(r.try_get::<String, _>(0)?)?,
                    digest: parse(r.try_get::<String, _>(1)?)?,
                    media_type: r.try_get(2)?,
                    content: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// The references of manifest `digest` in `repo`, each with what resolves it there.
    pub async fn references(&self, repo: &RepositoryName, digest: &Digest) -> Result<Vec<CheckedReference>> {
        let rows = sqlx::query(
            "SELECT mr.digest, mr.kind, \
             (SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
              WHERE rb.repository = mr.repository AND rb.digest = mr.digest AND b.state = 'live'), \
             (SELECT COUNT(*) FROM manifests m WHERE m.repository = mr.repository AND m.digest = mr.digest) \
             FROM manifest_references mr WHERE mr.repository = $1 AND mr.manifest = $2 ORDER BY mr.digest",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(1)?;
                let resolved = if kind == "blob" {
                    r.try_get::<Option<i64>, _>(2)?.map(|s| s as u64)
                } else {
                    (r.try_get::<i64, _>(3)? > 0).then_some(0)
                };
                Ok(CheckedReference { digest: parse(r.try_get::<String, _>(0)?)?, kind, resolved })
            })
            .collect()
    }

    /// Whether `repo` still has manifest `digest` (a finding about a manifest is re-read before it is reported).
    pub async fn manifest_exists(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM manifests WHERE repository = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .fetch_optional(self.0.writer())
            .await?;
        Ok(row.is_some())
    }

    /// Up to `limit` tags after (`repo`, `tag`), each with whether its manifest is there.
    pub async fn tags(&self, after: (&str, &str), limit: u32) -> Result<Vec<CheckedTag>> {
        let rows = sqlx::query(
            "SELECT t.repository, t.tag, t.digest, \
             (SELECT COUNT(*) FROM manifests m WHERE m.repository = t.repository AND m.digest = t.digest) \
             FROM tags t WHERE (t.repository, t.tag) > ($1, $2) ORDER BY t.repository, t.tag LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(tag_row).collect()
    }

    /// Up to `limit` repository names after `after`: those with content and those with TUF data alone.
    pub async fn repositories(&self, after: &str, limit: u32) -> Result<Vec<RepositoryName>> {
        let rows = sqlx::query(
            "SELECT name FROM repositories WHERE name > $1 \
             UNION SELECT repository FROM trust_repositories WHERE repository > $1 ORDER BY 1 LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| parse(r.try_get::<String, _>(0)?)).collect()
    }

    /// The repositories that link `digest`.
    pub async fn linked_in(&self, digest: &Digest) -> Result<Vec<RepositoryName>> {
        let rows = sqlx::query("SELECT repository FROM repository_blobs WHERE digest = $1 ORDER BY repository")
            .bind(digest.to_string())
            .fetch_all(self.0.writer())
            .await?;
        rows.iter().map(|r| parse(r.try_get::<String, _>(0)?)).collect()
    }

    /// The tags whose manifest needs `digest`: it references it, or a child manifest it references does.
    pub async fn tags_needing(&self, digest: &Digest) -> Result<Vec<CheckedTag>> {
        let rows = sqlx::query(
            "SELECT t.repository, t.tag, t.digest, CAST(1 AS BIGINT) FROM tags t WHERE EXISTS \
             (SELECT 1 FROM manifest_references mr WHERE mr.repository = t.repository AND mr.manifest = t.digest \
              AND mr.digest = $1) \
             OR EXISTS (SELECT 1 FROM manifest_references mi JOIN manifest_references mc \
              ON mc.repository = mi.repository AND mc.manifest = mi.digest \
              WHERE mi.repository = t.repository AND mi.manifest = t.digest AND mi.kind = 'manifest' \
              AND mc.digest = $1) \
             ORDER BY t.repository, t.tag",
        )
        .bind(digest.to_string())
        .fetch_all(self.0.writer())
        .await?;
        rows.iter().map(tag_row).collect()
    }

    /// The first step of removing the row of `digest` (whose bytes are gone or bad): its tombstone, set only on the
    /// live row at `version` (the one judged; a push since has bumped it). From here on no upload or mount links the
    /// blob: they wait for the tombstone to go. False if the row is not live at that version.
    pub async fn mark_blob(&self, digest: &Digest, version: i64) -> Result<bool> {
        let marked =
            sqlx::query("UPDATE blobs SET state = 'deleting' WHERE digest = $1 AND state = 'live' AND version = $2")
                .bind(digest.to_string())
                .bind(version)
                .execute(self.0.writer())
                .await?;
        Ok(marked.rows_affected() > 0)
    }

    /// Takes the tombstone of [`Check::mark_blob`] off again (the bytes turned out present and good): the row is
    /// live, at a new version. False if there was no tombstone (the collector removed the row meanwhile).
    pub async fn unmark_blob(&self, digest: &Digest) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE blobs SET state = 'live', version = version + 1 WHERE digest = $1 AND state = 'deleting'",
        )
        .bind(digest.to_string())
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes the marked row of `digest` ([`Check::mark_blob`]) and its links, writing `journal` in the same
    /// transaction. False if there was no tombstone (collected meanwhile).
    pub async fn remove_marked(&self, digest: &Digest, journal: &Journal) -> Result<bool> {
        let d = digest.to_string();
        let mut tx = self.0.writer().begin().await?;
        let marked: Option<i64> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1 AND state = 'deleting'")
            .bind(&d)
            .fetch_optional(&mut *tx)
            .await?;
        if marked.is_none() {
            return Ok(false);
        }
        let repos: Vec<String> =
            sqlx::query_scalar("DELETE FROM repository_blobs WHERE digest = $1 RETURNING repository")
                .bind(&d)
                .fetch_all(&mut *tx)
                .await?;
        let repos: Vec<RepositoryName> = repos.iter().filter_map(|r| r.parse().ok()).collect();
        let refs: Vec<Reference> = repos.iter().map(|r| Reference::removed(r, d.clone())).collect();
        quota::count(self.0, &mut tx, &refs).await?;
        sqlx::query("DELETE FROM blobs WHERE digest = $1 AND state = 'deleting'").bind(&d).execute(&mut *tx).await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn blob(r: &sqlx::any::AnyRow) -> Result<CheckedBlob> {
    Ok(CheckedBlob {
        digest: parse(r.try_get::<String, _>(0)?)?,
        size: r.try_get::<i64, _>(1)? as u64,
        location: r.try_get(2)?,
        deleting: r.try_get::<String, _>(3)? == "deleting",
        version: r.try_get(4)?,
    })
}

fn tag_row(r: &sqlx::any::AnyRow) -> Result<CheckedTag> {
    Ok(CheckedTag {
        repo: parse(r.try_get::<String, _>(0)?)?,
        tag: parse(r.try_get::<String, _>(1)?)?,
        digest: parse(r.try_get::<String, _>(2)?)?,
        manifest_present: r.try_get::<i64, _>(3)? > 0,
    })
}
