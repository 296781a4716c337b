//! Notary v1 collections in SQL (migration 0009): every version of every role per GUN in generations, lookups by
//! version and by SHA-256, the server-held keys (sealed by the caller), and the changefeed. Storage neither parses
//! nor signs metadata; it keeps bytes and makes a publish atomic.

use sqlx::Row;
use wharf_format::notary::{Gun, RoleName};

use crate::meta::journal::{self, Journal};
use crate::meta::Metadata;
use crate::{Error, Result, UnixTime};

/// One stored version of a role.
#[derive(Debug, Clone)]
pub struct V1Row {
    pub role: RoleName,
    pub version: i64,
    /// Lowercase hex SHA-256 of `content`.
    pub sha256: String,
    pub content: Vec<u8>,
    pub created_at: UnixTime,
}

/// A server-held key: the public half as Notary key JSON, the private half sealed.
#[derive(Debug, Clone)]
pub struct V1KeyRow {
    /// `timestamp` or `snapshot`.
    pub role: String,
    pub key_id: String,
    pub public_key: String,
    pub sealed_private: Vec<u8>,
    pub created_at: UnixTime,
}

/// One changefeed record.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub id: i64,
    pub gun: String,
    pub version: i64,
    pub sha256: String,
    /// `update` or `deletion`.
    pub category: String,
    pub created_at: UnixTime,
}

/// Which changes a changefeed page holds.
#[derive(Debug, Clone, Copy)]
pub struct ChangeQuery {
    /// Exclusive cursor; with `backwards`, `None` starts from the newest.
    pub after: Option<i64>,
    pub limit: i64,
    pub backwards: bool,
}

const COLUMNS: &str = "role, version, sha256, content, created_at";

/// Notary v1 collections, keys and changefeed: [`Metadata::notary_v1`].
#[derive(Clone, Copy, Debug)]
pub struct NotaryV1<'a>(pub(super) &'a Metadata);

impl NotaryV1<'_> {
    async fn generation(&self, gun: &Gun) -> Result<i64> {
        let row = sqlx::query("SELECT generation FROM notary_collections WHERE gun = $1")
            .bind(gun.as_str())
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.unwrap_or(0))
    }

    /// The newest timestamp and snapshot of every collection's current generation, as (gun, role, content), at
    /// most `limit` rows in GUN order: the registry's metrics read their expiry at each scrape.
    pub async fn current_signing(&self, limit: i64) -> Result<Vec<(String, String, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT m.gun, m.role, m.content FROM notary_metadata m JOIN notary_collections c \
             ON c.gun = m.gun AND c.generation = m.generation WHERE m.role IN ('timestamp', 'snapshot') \
             AND m.version = (SELECT MAX(x.version) FROM notary_metadata x \
             WHERE x.gun = m.gun AND x.generation = m.generation AND x.role = m.role) \
             ORDER BY m.gun, m.role LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// The newest version of `role`.
    pub async fn current(&self, gun: &Gun, role: &RoleName) -> Result<Option<V1Row>> {
        let g = self.generation(gun).await?;
        let q = format!(
            "SELECT {COLUMNS} FROM notary_metadata WHERE gun = $1 AND generation = $2 AND role = $3 \
             ORDER BY version DESC LIMIT 1"
        );
        let row =
            sqlx::query(&q).bind(gun.as_str()).bind(g).bind(role.as_str()).fetch_optional(self.0.reader()).await?;
        row.map(|r| v1_row(&r)).transpose()
    }

    /// The version of `role` whose bytes hash to `sha256` (lowercase hex).
    pub async fn by_hash(&self, gun: &Gun, role: &RoleName, sha256: &str) -> Result<Option<V1Row>> {
        let g = self.generation(gun).await?;
        let q = format!(
            "SELECT {COLUMNS} FROM notary_metadata WHERE gun = $1 AND generation = $2 AND role = $3 AND sha256 = $4 \
             ORDER BY version DESC LIMIT 1"
        );
        let row = sqlx::query(&q)
            .bind(gun.as_str())
            .bind(g)
            .bind(role.as_str())
            .bind(sha256)
            .fetch_optional(self.0.reader())
            .await?;
        row.map(|r| v1_row(&r)).transpose()
    }

    pub async fn by_version(&self, gun: &Gun, role: &RoleName, version: i64) -> Result<Option<V1Row>> {
        let g = self.generation(gun).await?;
        let q = format!(
            "SELECT {COLUMNS} FROM notary_metadata WHERE gun = $1 AND generation = $2 AND role = $3 AND version = $4"
        );
        let row = sqlx::query(&q)
            .bind(gun.as_str())
            .bind(g)
            .bind(role.as_str())
            .bind(version)
            .fetch_optional(self.0.reader())
            .await?;
        row.map(|r| v1_row(&r)).transpose()
    }

    /// The newest version of every role of the collection.
    pub async fn current_all(&self, gun: &Gun) -> Result<Vec<V1Row>> {
        let g = self.generation(gun).await?;
        let rows = sqlx::query(
            "SELECT m.role, m.version, m.sha256, m.content, m.created_at FROM notary_metadata m JOIN \
             (SELECT role, MAX(version) AS version FROM notary_metadata WHERE gun = $1 AND generation = $2 \
             GROUP BY role) x ON m.role = x.role AND m.version = x.version WHERE m.gun = $1 AND m.generation = $2",
        )
        .bind(gun.as_str())
        .bind(g)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(v1_row).collect()
    }

    /// The collections whose GUN names `repo`, bare or after a registry host (`host:port/team/app`): at most
    /// `limit`, in byte order. A deleted collection still has its row; its current generation serves nothing.
    pub async fn guns_for(&self, repo: &wharf_format::RepositoryName, limit: i64) -> Result<Vec<Gun>> {
        // `_` and `%` are LIKE wildcards, and `_` is common in repository names: escape them.
        let escaped = repo.as_str().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let rows = sqlx::query(
            "SELECT gun FROM notary_collections WHERE gun = $1 OR gun LIKE $2 ESCAPE '\\' ORDER BY gun LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(format!("%/{escaped}"))
        .bind(limit)
        .fetch_all(self.0.reader())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let text: String = r.try_get(0)?;
            let gun: Gun = text.parse().map_err(|_| Error::Corrupt(format!("stored GUN {text:?} is not a GUN")))?;
            if gun.repository().as_ref() == Some(repo) {
                out.push(gun);
            }
        }
        // Byte order, whatever the database's collation.
        out.sort();
        Ok(out)
    }

    /// Writes new versions all at once, with an `update` changefeed record for the new timestamp (the row whose
    /// role is `timestamp`). If any (role, version) exists already nothing is written and the answer is `Conflict`.
    pub async fn commit(&self, gun: &Gun, rows: &[V1Row], now: UnixTime) -> Result<()> {
        self.commit_recorded(gun, rows, now, &Journal::default()).await
    }

    /// [`NotaryV1::commit`], writing `journal` in the same transaction (a publish; renewals record nothing).
    pub async fn commit_recorded(&self, gun: &Gun, rows: &[V1Row], now: UnixTime, journal: &Journal) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        sqlx::query("INSERT INTO notary_collections (gun, generation) VALUES ($1, 0) ON CONFLICT DO NOTHING")
            .bind(gun.as_str())
            .execute(&mut *tx)
            .await?;
        let g: i64 = sqlx::query("SELECT generation FROM notary_collections WHERE gun = $1")
            .bind(gun.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        for r in rows {
            let done = sqlx::query(
                "INSERT INTO notary_metadata (gun, generation, role, version, sha256, content, created_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM notary_metadata \
                 WHERE gun = $1 AND generation = $2 AND role = $3 AND version >= $4)",
            )
            .bind(gun.as_str())
            .bind(g)
            .bind(r.role.as_str())
            .bind(r.version)
            .bind(&r.sha256)
            .bind(&r.content)
            .bind(now)
            .execute(&mut *tx)
            .await;
            let done = match done {
                Ok(d) => d.rows_affected(),
                // Two publishes that read the same state: the primary key refuses the second.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => 0,
                Err(e) => return Err(e.into()),
            };
            if done == 0 {
                return Err(Error::Conflict(format!(
                    "{} version {} is not newer than the stored one",
                    r.role, r.version
                )));
            }
            if r.role.as_str() == "timestamp" {
                change(&mut tx, gun, r.version, &r.sha256, "update", now).await?;
            }
        }
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends the collection: nothing of it is served any more (every version stays as history), and a `deletion`
    /// record goes to the changefeed. Keys stay.
    pub async fn delete(&self, gun: &Gun, now: UnixTime) -> Result<()> {
        self.delete_recorded(gun, now, &Journal::default()).await
    }

    /// [`NotaryV1::delete`], writing `journal` in the same transaction.
    pub async fn delete_recorded(&self, gun: &Gun, now: UnixTime, journal: &Journal) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        sqlx::query(
            "INSERT INTO notary_collections (gun, generation) VALUES ($1, 1) \
             ON CONFLICT (gun) DO UPDATE SET generation = notary_collections.generation + 1",
        )
        .bind(gun.as_str())
        .execute(&mut *tx)
        .await?;
        change(&mut tx, gun, 0, "", "deletion", now).await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn keys(&self, gun: &Gun) -> Result<Vec<V1KeyRow>> {
        let rows = sqlx::query(
            "SELECT role, key_id, public_key, sealed_private, created_at FROM notary_keys WHERE gun = $1 \
             ORDER BY created_at, key_id",
        )
        .bind(gun.as_str())
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(V1KeyRow {
                    role: r.try_get("role")?,
                    key_id: r.try_get("key_id")?,
                    public_key: r.try_get("public_key")?,
                    sealed_private: r.try_get("sealed_private")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn add_key(&self, gun: &Gun, key: &V1KeyRow) -> Result<()> {
        self.add_key_recorded(gun, key, &Journal::default()).await
    }

    /// [`NotaryV1::add_key`], writing `journal` in the same transaction (a new or rotated server key).
    pub async fn add_key_recorded(&self, gun: &Gun, key: &V1KeyRow, journal: &Journal) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        sqlx::query(
            "INSERT INTO notary_keys (gun, role, key_id, public_key, sealed_private, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(gun.as_str())
        .bind(&key.role)
        .bind(&key.key_id)
        .bind(&key.public_key)
        .bind(&key.sealed_private)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A changefeed page, oldest first: of one collection, or of all with `gun` `None`.
    pub async fn changes(&self, gun: Option<&Gun>, q: ChangeQuery) -> Result<Vec<ChangeRow>> {
        let (cmp, order) = if q.backwards { ("<", "DESC") } else { (">", "ASC") };
        let after = q.after.unwrap_or(if q.backwards { i64::MAX } else { 0 });
        let filter = if gun.is_some() { "AND gun = $3" } else { "" };
        let sql = format!(
            "SELECT id, gun, version, sha256, category, created_at FROM notary_changes \
             WHERE id {cmp} $1 {filter} ORDER BY id {order} LIMIT $2"
        );
        let mut query = sqlx::query(&sql).bind(after).bind(q.limit);
        if let Some(g) = gun {
            query = query.bind(g.as_str());
        }
        let mut out = query
            .fetch_all(self.0.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(ChangeRow {
                    id: r.try_get("id")?,
                    gun: r.try_get("gun")?,
                    version: r.try_get("version")?,
                    sha256: r.try_get("sha256")?,
                    category: r.try_get("category")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if q.backwards {
            out.reverse();
        }
        Ok(out)
    }
}

async fn change(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gun: &Gun,
    version: i64,
    sha256: &str,
    category: &str,
    now: UnixTime,
) -> Result<()> {
    // The counter row serializes writers on PostgreSQL (SQLite has one writer), so ids are dense and ordered.
    let id: i64 = sqlx::query(
        "INSERT INTO counters (name, value) VALUES ('notary.changes', 1) \
         ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    sqlx::query(
        "INSERT INTO notary_changes (id, gun, version, sha256, category, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(gun.as_str())
    .bind(version)
    .bind(sha256)
    .bind(category)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn v1_row(r: &sqlx::any::AnyRow) -> Result<V1Row> {
    let role: String = r.try_get("role")?;
    Ok(V1Row {
        role: role.parse().map_err(|_| Error::Corrupt(format!("stored notary role {role:?} is not a role name")))?,
        version: r.try_get("version")?,
        sha256: r.try_get("sha256")?,
        content: r.try_get("content")?,
        created_at: r.try_get("created_at")?,
    })
}
