//! Registry metadata in SQL: repositories, which blobs each may see, manifests with their references, and tags.
//!
//! One code path for both databases through `sqlx::Any`: every statement is written once, in the SQL both SQLite and
//! PostgreSQL accept, with `$N` parameters. SQLite runs in WAL mode with one writer connection and a pool of
//! readers; PostgreSQL has one pool for both. Each has its own migrations (`migrations/sqlite`,
//! `migrations/postgres`), applied at start-up. Callers never see SQL.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};
use wharf_client::{Digest, MediaType, RepositoryName, Tag};

use crate::{Error, Result, UnixTime};

/// The SQLite migrations, applied at start-up.
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
/// The PostgreSQL migrations.
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

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

/// Which database holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Metadata {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
}

impl Metadata {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Metadata> {
        let text = path.to_str().ok_or_else(|| Error::Config(format!("{} is not UTF-8", path.display())))?;
        Metadata::open(&format!("sqlite://{text}")).await
    }

    /// Opens the database at `url`: `sqlite://PATH` (created if missing) or `postgres://USER:PASSWORD@HOST/DB`.
    pub async fn open(url: &str) -> Result<Metadata> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = AnyConnectOptions::from_str(url).map_err(|e| Error::Config(format!("database URL: {e}")))?;
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            POSTGRES.run(&pool).await.map_err(|e| Error::Database(e.into()))?;
            return Ok(Metadata { write: pool.clone(), read: pool, backend: Backend::Postgres });
        }
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| Error::Config(format!("database URL {url:?}: use sqlite://PATH or postgres://...")))?;
        let rw = AnyConnectOptions::from_str(&format!("sqlite://{path}?mode=rwc"))
            .map_err(|e| Error::Config(format!("database URL: {e}")))?;
        let ro = AnyConnectOptions::from_str(&format!("sqlite://{path}?mode=ro"))
            .map_err(|e| Error::Config(format!("database URL: {e}")))?;
        let write = AnyPoolOptions::new().max_connections(1).after_connect(sqlite_pragmas).connect_with(rw).await?;
        write.execute("PRAGMA journal_mode = WAL").await?;
        SQLITE.run(&write).await.map_err(|e| Error::Database(e.into()))?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2).max(4) as u32;
        let read =
            AnyPoolOptions::new().max_connections(readers).after_connect(sqlite_pragmas).connect_with(ro).await?;
        Ok(Metadata { write, read, backend: Backend::Sqlite })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Makes `digest` (of `size` bytes, stored at `location` or at its content address) visible in `repo`.
    /// Returns `false` when the blob was already recorded (stored elsewhere): a copy at `location` is then surplus.
    pub async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        location: Option<&str>,
        now: UnixTime,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        insert_repository(&mut tx, repo, now).await?;
        let added = sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, location) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(digest.to_string())
        .bind(size as i64)
        .bind(now)
        .bind(location.map(str::to_owned))
        .execute(&mut *tx)
        .await?;
        link(&mut tx, repo, digest).await?;
        tx.commit().await?;
        Ok(added.rows_affected() > 0)
    }

    /// The size of `digest` and where it is stored (`None`: its content address), if `repo` can see it.
    pub async fn blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<(u64, Option<String>)>> {
        let row = sqlx::query(
            "SELECT b.size, b.location FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
             WHERE rb.repository = $1 AND rb.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some((r.try_get::<i64, _>(0)? as u64, r.try_get::<Option<String>, _>(1)?)))
    }

    /// Makes a blob visible in `from` visible in `to` too; `None` if `from` cannot see it.
    pub async fn mount_blob(
        &self,
        from: &RepositoryName,
        to: &RepositoryName,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<u64>> {
        let mut tx = self.write.begin().await?;
        let Some(size) = blob_size(&mut tx, from, digest).await? else { return Ok(None) };
        insert_repository(&mut tx, to, now).await?;
        link(&mut tx, to, digest).await?;
        tx.commit().await?;
        Ok(Some(size))
    }

    /// The size of `digest` if `repo` can see it.
    pub async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let mut conn = self.read.acquire().await?;
        blob_size(&mut conn, repo, digest).await
    }

    /// Hides `digest` from `repo`; the bytes stay until garbage collection. False if it was not visible.
    pub async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let done = sqlx::query("DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores a manifest (and points its tag at it) if everything it references is in the repository.
    pub async fn put_manifest(&self, m: &NewManifest<'_>, now: UnixTime) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let mut missing = Vec::new();
        let have_blobs = present(&mut tx, "repository_blobs", m.repo, &m.blobs).await?;
        let have_manifests = present(&mut tx, "manifests", m.repo, &m.manifests).await?;
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
        if !missing.is_empty() {
            return Err(Error::ReferencesMissing(missing));
        }
        insert_repository(&mut tx, m.repo, now).await?;
        let digest = m.digest.to_string();
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository, digest, media_type, artifact_type, subject, content, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(m.repo.as_str())
        .bind(&digest)
        .bind(m.media_type.as_str())
        .bind(m.artifact_type.map(|a| a.as_str()))
        .bind(m.subject.map(|s| s.to_string()))
        .bind(m.content)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let refs: Vec<(&Digest, &str)> =
            m.blobs.iter().map(|d| (*d, "blob")).chain(m.manifests.iter().map(|d| (*d, "manifest"))).collect();
        if inserted.rows_affected() > 0 && !refs.is_empty() {
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
        tx.commit().await?;
        Ok(())
    }

    pub async fn manifest_by_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<ManifestRecord>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM tags t JOIN manifests m \
             ON m.repository = t.repository AND m.digest = t.digest WHERE t.repository = $1 AND t.tag = $2",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| manifest_record(&r)).transpose()
    }

    pub async fn manifest_by_digest(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        let row =
            sqlx::query("SELECT digest, media_type, content FROM manifests WHERE repository = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .fetch_optional(&self.read)
                .await?;
        row.map(|r| manifest_record(&r)).transpose()
    }

    /// Deletes a manifest and every tag pointing at it. False if it was not there.
    pub async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let done = sqlx::query("DELETE FROM manifests WHERE repository = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a tag only; the manifest stays. False if there was no such tag.
    pub async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tags WHERE repository = $1 AND tag = $2")
            .bind(repo.as_str())
            .bind(tag.as_str())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Tags of `repo` in lexical order after `last`, at most `limit` (and whether more follow).
    pub async fn tags(&self, repo: &RepositoryName, last: Option<&str>, limit: u32) -> Result<(Vec<Tag>, bool)> {
        let exists = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&self.read)
            .await?;
        if exists.is_none() {
            return Err(Error::NameUnknown);
        }
        let rows = sqlx::query("SELECT tag FROM tags WHERE repository = $1 AND tag > $2 ORDER BY tag LIMIT $3")
            .bind(repo.as_str())
            .bind(last.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.read)
            .await?;
        page(rows, limit)
    }

    /// Repository names in lexical order after `last`, at most `limit` (and whether more follow).
    pub async fn catalog(&self, last: Option<&str>, limit: u32) -> Result<(Vec<RepositoryName>, bool)> {
        let rows = sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(last.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.read)
            .await?;
        page(rows, limit)
    }

    /// Manifests in `repo` whose subject is `subject`, oldest first.
    pub async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, artifact_type, content FROM manifests \
             WHERE repository = $1 AND subject = $2 ORDER BY created_at, digest",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let artifact_type: Option<String> = r.try_get("artifact_type")?;
                Ok(Referrer {
                    digest: parse(r.try_get::<String, _>("digest")?)?,
                    media_type: parse(r.try_get::<String, _>("media_type")?)?,
                    artifact_type: artifact_type.map(parse).transpose()?,
                    content: r.try_get("content")?,
                })
            })
            .collect()
    }
}

/// Each SQLite connection's settings. FULL: a commit that acknowledges a client write is on disk before the answer,
/// even in WAL mode.
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, std::result::Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL").await?;
        Ok(())
    })
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

async fn insert_repository(tx: &mut Tx<'_>, repo: &RepositoryName, now: UnixTime) -> Result<()> {
    sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(repo.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn link(tx: &mut Tx<'_>, repo: &RepositoryName, digest: &Digest) -> Result<()> {
    sqlx::query("INSERT INTO repository_blobs (repository, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(repo.as_str())
        .bind(digest.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Which of `digests` have a row in `table` (`repository_blobs` or `manifests`) for `repo`, in one query.
async fn present(
    tx: &mut Tx<'_>,
    table: &'static str,
    repo: &RepositoryName,
    digests: &[&Digest],
) -> Result<std::collections::HashSet<String>> {
    let mut found = std::collections::HashSet::new();
    for chunk in digests.chunks(500) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!("SELECT digest FROM {table} WHERE repository = $1 AND digest IN ({})", marks.join(", "));
        let mut q = sqlx::query(&sql).bind(repo.as_str());
        for d in chunk {
            q = q.bind(d.to_string());
        }
        for row in q.fetch_all(&mut **tx).await? {
            found.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(found)
}

async fn blob_size(conn: &mut sqlx::AnyConnection, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
    let row = sqlx::query(
        "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
         WHERE rb.repository = $1 AND rb.digest = $2",
    )
    .bind(repo.as_str())
    .bind(digest.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.map(|s| s as u64))
}

fn manifest_record(r: &sqlx::any::AnyRow) -> Result<ManifestRecord> {
    Ok(ManifestRecord {
        digest: parse(r.try_get::<String, _>("digest")?)?,
        media_type: parse(r.try_get::<String, _>("media_type")?)?,
        content: r.try_get("content")?,
    })
}

fn page<T: FromStr>(rows: Vec<sqlx::any::AnyRow>, limit: u32) -> Result<(Vec<T>, bool)> {
    let more = rows.len() > limit as usize;
    let items =
        rows.iter().take(limit as usize).map(|r| parse(r.try_get::<String, _>(0)?)).collect::<Result<Vec<T>>>()?;
    Ok((items, more))
}

fn parse<T: FromStr>(s: String) -> Result<T> {
    s.parse().map_err(|_| Error::Corrupt(format!("stored value {s:?} does not parse")))
}
