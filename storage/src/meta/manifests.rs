//! Manifests in the metadata: stored whole with their references, tags, listings and referrers.

use std::collections::HashSet;

use sqlx::Row;
use wharf_format::{Digest, MediaType, RepositoryName, Tag};

use super::collect;
use super::journal::{self, Journal, OnTagMove};
use super::quota::{self, Reference};
use super::{insert_repository, page, parse, Metadata, Tx};
use crate::{Error, Result, UnixTime};

/// A manifest to store, already validated and hashed by the caller.
pub struct NewManifest<'a> {
    pub repo: &'a RepositoryName,
    pub digest: &'a Digest,
    pub media_type: &'a MediaType,
    pub artifact_type: Option<&'a MediaType>,
    pub subject: Option<&'a Digest>,
    pub content: &'a [u8],
    /// Config and layers: each must be visible in the repository.
    pub blobs: Vec<&'a Digest>,
    /// Child manifests of an index: each must be in the repository.
    pub manifests: Vec<&'a Digest>,
    pub tag: Option<&'a Tag>,
    /// A mirrored manifest: its references are recorded, but they may be absent (a mirror fetches them when asked).
    pub lazy: bool,
}

#[derive(Debug, Clone)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: MediaType,
    pub content: Vec<u8>,
}

/// A manifest whose `subject` is the digest asked about.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: MediaType,
    pub artifact_type: Option<MediaType>,
    pub content: Vec<u8>,
}

/// Manifests, tags and referrers: [`Metadata::manifests`].
#[derive(Clone, Copy, Debug)]
pub struct Manifests<'a>(pub(super) &'a Metadata);

impl Manifests<'_> {
    /// Stores a manifest (and points its tag at it) if everything it references is in the repository.
    pub async fn put(&self, m: &NewManifest<'_>, now: UnixTime) -> Result<()> {
        self.put_recorded(m, now, &Journal::default()).await
    }

    /// [`Manifests::put`], writing `journal` in the same transaction.
    pub async fn put_recorded(&self, m: &NewManifest<'_>, now: UnixTime, journal: &Journal) -> Result<()> {
        self.put_tag_recorded(m, now, journal, &|_| Journal::default()).await
    }

    /// [`Manifests::put_recorded`]; when the push moves its tag (or makes it), also `tag_moved(previous digest)`'s
    /// journal, the previous digest read in the same transaction.
    pub async fn put_tag_recorded(
        &self,
        m: &NewManifest<'_>,
        now: UnixTime,
        journal: &Journal,
        tag_moved: &OnTagMove<'_>,
    ) -> Result<()> {
        // PostgreSQL aborts one of two transactions that wait on each other's rows (here: this push's claims and
        // a collector's or another push's statements); nothing of the aborted one stays, so it runs again.
        crate::remote::retry_conflicts("manifest push", || self.put_once(m, now, journal, tag_moved)).await
    }

    async fn put_once(
        &self,
        m: &NewManifest<'_>,
        now: UnixTime,
        journal: &Journal,
        tag_moved: &OnTagMove<'_>,
    ) -> Result<()> {
        let mut journal = journal.clone();
        let mut tx = self.0.writer().begin().await?;
        let mut missing = Vec::new();
        // Claimed, not only read: each referenced row gets a new version in this transaction, so a collector
        // that saw it unreferenced cannot remove it, and one that removed it first leaves it missing here.
        let have_blobs = claim(&mut tx, "repository_blobs", m.repo, Some(now), &m.blobs).await?;
        let have_manifests = claim(&mut tx, "manifests", m.repo, None, &m.manifests).await?;
        for d in m.blobs.iter().filter(|d| !have_blobs.contains(&d.to_string())) {
            if !missing.contains(*d) {
                missing.push((*d).clone());
            }
        }
        for d in m.manifests.iter().filter(|d| !have_manifests.contains(&d.to_string())) {
            if !missing.contains(*d) {
                missing.push((*d).clone());
            }
        }
        if !missing.is_empty() && !m.lazy {
            return Err(Error::ReferencesMissing(missing));
        }
        // The links referenced now are not the collector's candidates any more (a delete queues them again).
        let referenced: Vec<&Digest> =
            m.blobs.iter().copied().filter(|d| have_blobs.contains(&d.to_string())).collect();
        collect::dequeue_referenced(&mut tx, m.repo, &referenced).await?;
        insert_repository(&mut tx, m.repo, now).await?;
        let digest = m.digest.to_string();
        // Pushing a manifest again is a new version of its row too (retention saw the old one); a new row starts
        // at a fresh version (see `fresh_version`).
        let start = super::fresh_version();
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO manifests (repository, digest, media_type, artifact_type, subject, content, created_at, \
             version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (repository, digest) DO UPDATE SET version = manifests.version + 1 RETURNING version",
        )
        .bind(m.repo.as_str())
        .bind(&digest)
        .bind(m.media_type.as_str())
        .bind(m.artifact_type.map(|a| a.as_str()))
        .bind(m.subject.map(|s| s.to_string()))
        .bind(m.content)
        .bind(now)
        .bind(start)
        .fetch_one(&mut *tx)
        .await?;
        let refs: Vec<(&Digest, &str)> =
            m.blobs.iter().map(|d| (*d, "blob")).chain(m.manifests.iter().map(|d| (*d, "manifest"))).collect();
        // Also when the manifest was there: its references are the same rows.
        if !refs.is_empty() {
            // One statement for all references (SQLite allows 32766 parameters: 4 per row).
            for chunk in refs.chunks(2000) {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
                    .collect();
                let sql = format!(
                    "INSERT INTO manifest_references (repository, manifest, digest, kind) VALUES {} \
                     ON CONFLICT DO NOTHING",
                    rows.join(", ")
                );
                let mut q = sqlx::query(&sql);
                for (d, kind) in chunk {
                    q = q.bind(m.repo.as_str()).bind(&digest).bind(d.to_string()).bind(*kind);
                }
                q.execute(&mut *tx).await?;
            }
        }
        if let Some(tag) = m.tag {
            let previous: Option<String> = sqlx::query("SELECT digest FROM tags WHERE repository = $1 AND tag = $2")
                .bind(m.repo.as_str())
                .bind(tag.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            if previous.as_deref() != Some(digest.as_str()) {
                journal.append(tag_moved(previous));
            }
            sqlx::query(
                "INSERT INTO tags (repository, tag, digest, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
            )
            .bind(m.repo.as_str())
            .bind(tag.as_str())
            .bind(&digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if version == start {
            quota::count(self.0, &mut tx, &[Reference::made(m.repo, m.digest, m.content.len() as u64)]).await?;
        }
        journal::write(&mut tx, &journal).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn by_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<ManifestRecord>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM tags t JOIN manifests m \
             ON m.repository = t.repository AND m.digest = t.digest WHERE t.repository = $1 AND t.tag = $2",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .fetch_optional(self.0.reader())
        .await?;
        row.map(|r| manifest_record(&r)).transpose()
    }

    pub async fn by_digest(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        let row =
            sqlx::query("SELECT digest, media_type, content FROM manifests WHERE repository = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .fetch_optional(self.0.reader())
                .await?;
        row.map(|r| manifest_record(&r)).transpose()
    }

    /// Deletes a manifest and every tag pointing at it. False if it was not there.
    pub async fn delete(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        self.delete_recorded(repo, digest, &Journal::default()).await
    }

    /// [`Manifests::delete`], writing `journal` in the same transaction if the manifest was there.
    pub async fn delete_recorded(&self, repo: &RepositoryName, digest: &Digest, journal: &Journal) -> Result<bool> {
        // Its queueing of candidates meets the collector's removal of them: see `retry_conflicts`.
        crate::remote::retry_conflicts("manifest delete", || self.delete_once(repo, digest, journal)).await
    }

    async fn delete_once(&self, repo: &RepositoryName, digest: &Digest, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        // Its blobs become the collector's candidates (rolled back with the rest when there is no such manifest).
        collect::enqueue_references(&mut tx, repo, digest).await?;
        let done = sqlx::query("DELETE FROM manifests WHERE repository = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        quota::count(self.0, &mut tx, &[Reference::removed(repo, digest.to_string())]).await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a tag only; the manifest stays. False if there was no such tag.
    pub async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool> {
        self.delete_tag_recorded(repo, tag, &Journal::default()).await
    }

    /// [`Manifests::delete_tag`], writing `journal` in the same transaction if the tag was there.
    pub async fn delete_tag_recorded(&self, repo: &RepositoryName, tag: &Tag, journal: &Journal) -> Result<bool> {
        crate::remote::retry_conflicts("tag delete", || self.delete_tag_once(repo, tag, journal)).await
    }

    async fn delete_tag_once(&self, repo: &RepositoryName, tag: &Tag, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query("DELETE FROM tags WHERE repository = $1 AND tag = $2")
            .bind(repo.as_str())
            .bind(tag.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Points `tag` of `repo` at a manifest the repository holds. False when it holds no such manifest.
    pub async fn set_tag(&self, repo: &RepositoryName, tag: &Tag, digest: &Digest, now: UnixTime) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO tags (repository, tag, digest, updated_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM manifests WHERE repository = $1 AND digest = $3) \
             ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(now)
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Tags of `repo` in lexical order after `last`, at most `limit` (and whether more follow).
    pub async fn tags(&self, repo: &RepositoryName, last: Option<&str>, limit: u32) -> Result<(Vec<Tag>, bool)> {
        let exists = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(self.0.reader())
            .await?;
        if exists.is_none() {
            return Err(Error::NameUnknown);
        }
        let rows = sqlx::query("SELECT tag FROM tags WHERE repository = $1 AND tag > $2 ORDER BY tag LIMIT $3")
            .bind(repo.as_str())
            .bind(last.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(self.0.reader())
            .await?;
        page(rows, limit)
    }

    /// The manifests of `repo` that list `child` among their manifests (the indexes it is part of), at most
    /// `limit`.
    pub async fn parents(&self, repo: &RepositoryName, child: &Digest, limit: i64) -> Result<Vec<Digest>> {
        let rows = sqlx::query(
            "SELECT manifest FROM manifest_references WHERE repository = $1 AND digest = $2 AND kind = 'manifest' \
             ORDER BY manifest LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(child.to_string())
        .bind(limit)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| parse(r.try_get::<String, _>(0)?)).collect()
    }

    /// The newest `limit` manifests in `repo` whose subject is `subject` and whose artifact type is
    /// `artifact_type`, newest first: a bounded read of one kind of referrer (signatures, for a policy).
    pub async fn referrers_of_type(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: &str,
        limit: i64,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, artifact_type, content FROM manifests \
             WHERE repository = $1 AND subject = $2 AND artifact_type = $3 ORDER BY created_at DESC, digest LIMIT $4",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .bind(limit)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(referrer).collect()
    }

    /// Manifests in `repo` whose subject is `subject`, oldest first.
    pub async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, artifact_type, content FROM manifests \
             WHERE repository = $1 AND subject = $2 ORDER BY created_at, digest",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(referrer).collect()
    }
}

/// Which of `digests` have a row in `table` (`repository_blobs` or `manifests`) for `repo`, claiming each (a new
/// version; a blob link is touched at `now` too): one statement per 500.
async fn claim(
    tx: &mut Tx<'_>,
    table: &'static str,
    repo: &RepositoryName,
    now: Option<UnixTime>,
    digests: &[&Digest],
) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    let mut unique: Vec<&Digest> = digests.to_vec();
    unique.sort();
    unique.dedup();
    for chunk in unique.chunks(500) {
        let first = if now.is_some() { 3 } else { 2 };
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + first)).collect();
        let set = if now.is_some() { "touched_at = $2, version = version + 1" } else { "version = version + 1" };
        let sql = format!(
            "UPDATE {table} SET {set} WHERE repository = $1 AND digest IN ({}) RETURNING digest",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(repo.as_str());
        if let Some(now) = now {
            q = q.bind(now);
        }
        for d in chunk {
            q = q.bind(d.to_string());
        }
        for row in q.fetch_all(&mut **tx).await? {
            found.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(found)
}

fn referrer(r: &sqlx::any::AnyRow) -> Result<Referrer> {
    let artifact_type: Option<String> = r.try_get("artifact_type")?;
    Ok(Referrer {
        digest: parse(r.try_get::<String, _>("digest")?)?,
        media_type: parse(r.try_get::<String, _>("media_type")?)?,
        artifact_type: artifact_type.map(parse).transpose()?,
        content: r.try_get("content")?,
    })
}

fn manifest_record(r: &sqlx::any::AnyRow) -> Result<ManifestRecord> {
    Ok(ManifestRecord {
        digest: parse(r.try_get::<String, _>("digest")?)?,
        media_type: parse(r.try_get::<String, _>("media_type")?)?,
        content: r.try_get("content")?,
    })
}
