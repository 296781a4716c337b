//! Trust data in SQL: TUF metadata versions per repository and role, and the service's sealed keys.
//! Storage neither parses nor signs metadata: it keeps bytes and versions, and makes a publish atomic.

use sqlx::Row;
use wharf_format::tuf::{Role, RoleName};
use wharf_format::RepositoryName;

use crate::meta::journal::{self, Journal};
use crate::meta::Metadata;
use crate::{Error, Result, UnixTime};

/// One stored metadata version.
#[derive(Debug, Clone)]
pub struct MetadataRow {
    pub role: RoleName,
    pub version: u64,
    pub content: Vec<u8>,
    pub expires: UnixTime,
}

/// A service-held key: public half in TUF JSON, private half sealed.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// Timestamp or snapshot: the roles the service holds keys for.
    pub role: Role,
    pub key_id: String,
    pub public_key: String,
    pub sealed_private: Vec<u8>,
    pub created_at: UnixTime,
}

/// An audit entry: a version that was written, whether or not it is still served.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub generation: i64,
    pub role: RoleName,
    pub version: u64,
    pub expires: UnixTime,
    pub created_at: UnixTime,
    pub content: Vec<u8>,
}

/// TUF 1.0 metadata and service keys: [`Metadata::trust`].
#[derive(Clone, Copy, Debug)]
pub struct Trust<'a>(pub(super) &'a Metadata);

impl Trust<'_> {
    async fn generation(&self, repo: &RepositoryName) -> Result<i64> {
        let row = sqlx::query("SELECT generation FROM trust_repositories WHERE repository = $1")
            .bind(repo.as_str())
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.unwrap_or(0))
    }

    /// The newest version of `role`, if any.
    pub async fn latest(&self, repo: &RepositoryName, role: &RoleName) -> Result<Option<MetadataRow>> {
        let g = self.generation(repo).await?;
        let row = sqlx::query(
            "SELECT role, version, content, expires FROM trust_metadata \
             WHERE repository = $1 AND generation = $2 AND role = $3 ORDER BY version DESC LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(g)
        .bind(role.as_str())
        .fetch_optional(self.0.reader())
        .await?;
        row.map(|r| metadata_row(&r)).transpose()
    }

    /// A given version of `role`.
    pub async fn version(&self, repo: &RepositoryName, role: &RoleName, version: u64) -> Result<Option<MetadataRow>> {
        let g = self.generation(repo).await?;
        let row = sqlx::query(
            "SELECT role, version, content, expires FROM trust_metadata \
             WHERE repository = $1 AND generation = $2 AND role = $3 AND version = $4",
        )
        .bind(repo.as_str())
        .bind(g)
        .bind(role.as_str())
        .bind(version as i64)
        .fetch_optional(self.0.reader())
        .await?;
        row.map(|r| metadata_row(&r)).transpose()
    }

    /// The newest version of every role of the repository.
    pub async fn latest_all(&self, repo: &RepositoryName) -> Result<Vec<MetadataRow>> {
        let g = self.generation(repo).await?;
        let rows = sqlx::query(
            "SELECT m.role, m.version, m.content, m.expires FROM trust_metadata m JOIN \
             (SELECT role, MAX(version) AS version FROM trust_metadata WHERE repository = $1 AND generation = $2 \
             GROUP BY role) x ON m.role = x.role AND m.version = x.version \
             WHERE m.repository = $1 AND m.generation = $2",
        )
        .bind(repo.as_str())
        .bind(g)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(metadata_row).collect()
    }

    /// Writes new metadata versions all at once. If any (role, version) exists already, nothing is written and
    /// the answer is `Conflict`: a concurrent publish won.
    pub async fn commit(&self, repo: &RepositoryName, rows: &[MetadataRow], now: UnixTime) -> Result<()> {
        self.commit_recorded(repo, rows, now, &Journal::default()).await
    }

    /// [`Trust::commit`], writing `journal` in the same transaction (a publish; renewals record nothing).
    pub async fn commit_recorded(
        &self,
        repo: &RepositoryName,
        rows: &[MetadataRow],
        now: UnixTime,
        journal: &Journal,
    ) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        sqlx::query("INSERT INTO trust_repositories (repository, generation) VALUES ($1, 0) ON CONFLICT DO NOTHING")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await?;
        let g: i64 = sqlx::query("SELECT generation FROM trust_repositories WHERE repository = $1")
            .bind(repo.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        for r in rows {
            let done = sqlx::query(
                "INSERT INTO trust_metadata (repository, generation, role, version, content, expires, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(repo.as_str())
            .bind(g)
            .bind(r.role.as_str())
            .bind(r.version as i64)
            .bind(&r.content)
            .bind(r.expires)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::Conflict(format!("{} version {} exists already", r.role, r.version)));
            }
        }
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn keys(&self, repo: &RepositoryName) -> Result<Vec<KeyRow>> {
        let g = self.generation(repo).await?;
        let rows = sqlx::query(
            "SELECT role, key_id, public_key, sealed_private, created_at FROM trust_keys \
             WHERE repository = $1 AND generation = $2 ORDER BY created_at, key_id",
        )
        .bind(repo.as_str())
        .bind(g)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyRow {
                    role: match role_name(r)? {
                        RoleName::TopLevel(role) => role,
                        RoleName::Delegated(other) => {
                            return Err(Error::Corrupt(format!("a service key for role {other:?}")));
                        }
                    },
                    key_id: r.try_get("key_id")?,
                    public_key: r.try_get("public_key")?,
                    sealed_private: r.try_get("sealed_private")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn add_key(&self, repo: &RepositoryName, key: &KeyRow) -> Result<()> {
        self.add_key_recorded(repo, key, &Journal::default()).await
    }

    /// [`Trust::add_key`], writing `journal` in the same transaction (a new or rotated service key).
    pub async fn add_key_recorded(&self, repo: &RepositoryName, key: &KeyRow, journal: &Journal) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        sqlx::query("INSERT INTO trust_repositories (repository, generation) VALUES ($1, 0) ON CONFLICT DO NOTHING")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO trust_keys (repository, generation, role, key_id, public_key, sealed_private, created_at) \
             SELECT $1, generation, $2, $3, $4, $5, $6 FROM trust_repositories WHERE repository = $7",
        )
        .bind(repo.as_str())
        .bind(key.role.as_str())
        .bind(&key.key_id)
        .bind(&key.public_key)
        .bind(&key.sealed_private)
        .bind(key.created_at)
        .bind(repo.as_str())
        .execute(&mut *tx)
        .await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest expiry of each repository's current timestamp and snapshot, as (repository, role, expires), at
    /// most `limit` rows in repository order: what the registry's metrics report at each scrape.
    pub async fn expiries(&self, limit: i64) -> Result<Vec<(String, String, UnixTime)>> {
        let rows = sqlx::query(
            "SELECT m.repository, m.role, MAX(m.expires) FROM trust_metadata m JOIN trust_repositories r \
             ON r.repository = m.repository AND r.generation = m.generation \
             WHERE m.role IN ('timestamp', 'snapshot') GROUP BY m.repository, m.role \
             ORDER BY m.repository, m.role LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Repositories with trust data in their current generation.
    pub async fn repositories(&self) -> Result<Vec<RepositoryName>> {
        let rows = sqlx::query(
            "SELECT DISTINCT m.repository FROM trust_metadata m JOIN trust_repositories r \
             ON r.repository = m.repository AND r.generation = m.generation ORDER BY m.repository",
        )
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get(0)?;
                s.parse().map_err(|_| Error::Corrupt(format!("stored repository name {s:?}")))
            })
            .collect()
    }

    /// Ends the repository's trust data: nothing of it is served any more, and its keys are retired. Every version
    /// stays in the history. Returns false if there was nothing to delete.
    pub async fn delete(&self, repo: &RepositoryName) -> Result<bool> {
        self.delete_recorded(repo, &Journal::default()).await
    }

    /// [`Trust::delete`], writing `journal` in the same transaction if there was trust data.
    pub async fn delete_recorded(&self, repo: &RepositoryName, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let had = sqlx::query(
            "SELECT 1 FROM trust_metadata m JOIN trust_repositories r ON r.repository = m.repository \
             AND r.generation = m.generation WHERE m.repository = $1 LIMIT 1",
        )
        .bind(repo.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        sqlx::query("UPDATE trust_repositories SET generation = generation + 1 WHERE repository = $1")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await?;
        if had {
            journal::write(&mut tx, journal).await?;
        }
        tx.commit().await?;
        Ok(had)
    }

    /// Every version ever written for the repository, oldest first.
    pub async fn history(&self, repo: &RepositoryName) -> Result<Vec<HistoryRow>> {
        let rows = sqlx::query(
            "SELECT generation, role, version, expires, created_at, content FROM trust_metadata \
             WHERE repository = $1 ORDER BY generation, created_at, role, version",
        )
        .bind(repo.as_str())
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    generation: r.try_get("generation")?,
                    role: role_name(r)?,
                    version: r.try_get::<i64, _>("version")? as u64,
                    expires: r.try_get("expires")?,
                    created_at: r.try_get("created_at")?,
                    content: r.try_get("content")?,
                })
            })
            .collect()
    }
}

fn metadata_row(r: &sqlx::any::AnyRow) -> Result<MetadataRow> {
    Ok(MetadataRow {
        role: role_name(r)?,
        version: r.try_get::<i64, _>("version")? as u64,
        content: r.try_get("content")?,
        expires: r.try_get("expires")?,
    })
}

/// The `role` column, parsed: a stored role name that does not parse is corruption, never an empty name.
fn role_name(r: &sqlx::any::AnyRow) -> Result<RoleName> {
    let raw: String = r.try_get("role")?;
    raw.parse().map_err(|_| Error::Corrupt(format!("stored trust role {raw:?} is not a role name")))
}
