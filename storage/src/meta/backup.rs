//! What `wharf admin backup` reads of the database: one consistent state of it, whatever writes go on meanwhile.
//! On SQLite that state is a copy (`VACUUM INTO`, run on a reader so that the writer is never held) read back
//! afterwards; on PostgreSQL it is a read-only repeatable-read transaction whose snapshot is exported, so that
//! `pg_dump --snapshot` dumps exactly what the backup's list of blobs was read from.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::meta::{Backend, Metadata};
use crate::{Error, Result};

/// One consistent state of the database, read-only: see the module's doc.
pub struct Snapshot {
    /// The copy's own connection (PostgreSQL's snapshot uses the registry's pool, which stays open).
    pool: Option<AnyPool>,
    tx: Transaction<'static, Any>,
    /// PostgreSQL: the exported snapshot's name, for `pg_dump --snapshot`.
    pub exported: Option<String>,
}

/// A blob row as a backup sees it: where its bytes are, and whether it is live or a tombstone whose bytes an
/// interrupted collection may already have deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupBlob {
    pub digest: String,
    pub size: u64,
    pub location: Option<String>,
    pub live: bool,
}

/// How much a snapshot holds, for the backup's record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupCounts {
    pub repositories: u64,
    pub manifests: u64,
    pub tags: u64,
    pub blobs: u64,
    pub trust_repositories: u64,
    pub notary_collections: u64,
}

impl Metadata {
    /// SQLite: writes a consistent copy of the whole database into the new file `dest` (`VACUUM INTO` on a read
    /// connection: pushes and pulls go on), empties its `upload_sessions` (a backup holds no session's bytes, so a
    /// restored session would name what is not there), then syncs it. PostgreSQL has no such statement: see [`snapshot`].
    ///
    /// [`snapshot`]: Metadata::snapshot
    pub async fn copy_into(&self, dest: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(Error::Config("VACUUM INTO copies SQLite databases only".into()));
        }
        let text = dest.to_str().ok_or_else(|| Error::Config(format!("{} is not UTF-8", dest.display())))?;
        // Made empty first with mode 0600 (SQLite accepts an empty file): it holds every account's password hash.
        crate::modes::file_options().write(true).create_new(true).open(dest).map_err(Error::io("creating", dest))?;
        sqlx::query("VACUUM INTO $1").bind(text).execute(self.reader()).await?;
        let options = AnyConnectOptions::from_str(&format!("sqlite://{text}")).map_err(Error::DatabaseUrl)?;
        let copy = AnyPoolOptions::new().max_connections(1).connect_with(options).await?;
        let emptied = sqlx::query("DELETE FROM upload_sessions").execute(&copy).await;
        copy.close().await;
        emptied?;
        std::fs::File::open(dest).and_then(|f| f.sync_all()).map_err(Error::io("syncing", dest))
    }

    /// PostgreSQL: a read-only, repeatable-read transaction with its snapshot exported (see the module's doc).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        if self.backend != Backend::Postgres {
            return Err(Error::Config("an exported snapshot needs PostgreSQL; SQLite is copied".into()));
        }
        let mut tx = self.reader().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let name: String = sqlx::query("SELECT pg_export_snapshot()").fetch_one(&mut *tx).await?.try_get(0)?;
        Ok(Snapshot { pool: None, tx, exported: Some(name) })
    }

    /// Whether the PostgreSQL database at `url` has no tables at all (a restore writes only into an empty one).
    pub async fn postgres_is_empty(url: &str) -> Result<bool> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url).map_err(Error::DatabaseUrl)?;
        let pool =
            AnyPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(10)).connect_with(options);
        let pool = pool.await?;
        let row = sqlx::query("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()")
            .fetch_one(&pool)
            .await?;
        let n: i64 = row.try_get(0)?;
        pool.close().await;
        Ok(n == 0)
    }
}

impl Snapshot {
    /// The SQLite copy at `path` (written by [`Metadata::copy_into`]), opened read-only.
    pub async fn open_copy(path: &Path) -> Result<Snapshot> {
        let text = path.to_str().ok_or_else(|| Error::Config(format!("{} is not UTF-8", path.display())))?;
        Snapshot::open_url(&format!("sqlite://{text}?mode=ro")).await
    }

    /// The database at `url` (a restored one, before anything else opens it), in one transaction of its own.
    pub async fn open_url(url: &str) -> Result<Snapshot> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url).map_err(Error::DatabaseUrl)?;
        let pool = AnyPoolOptions::new().max_connections(1).connect_with(options).await?;
        let tx = pool.begin().await?;
        Ok(Snapshot { pool: Some(pool), tx, exported: None })
    }

    /// Every blob row, in digest order.
    pub async fn blobs(&mut self) -> Result<Vec<BackupBlob>> {
        let rows = sqlx::query("SELECT digest, size, location, state FROM blobs ORDER BY digest")
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| {
                let size: i64 = r.try_get("size")?;
                let state: String = r.try_get("state")?;
                Ok(BackupBlob {
                    digest: r.try_get("digest")?,
                    size: u64::try_from(size).map_err(|_| Error::Corrupt(format!("a blob of size {size}")))?,
                    location: r.try_get("location")?,
                    live: state == "live",
                })
            })
            .collect()
    }

    /// How many repositories, manifests, tags, blobs and trust collections the snapshot holds.
    pub async fn counts(&mut self) -> Result<BackupCounts> {
        let mut n = [0u64; 6];
        let tables = ["repositories", "manifests", "tags", "blobs", "trust_repositories", "notary_collections"];
        for (i, table) in tables.iter().enumerate() {
            // The table names are the constants above, never input.
            let row = sqlx::query(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&mut *self.tx).await?;
            let count: i64 = row.try_get(0)?;
            n[i] = u64::try_from(count).map_err(|_| Error::Corrupt(format!("{table}: a count of {count}")))?;
        }
        let [repositories, manifests, tags, blobs, trust_repositories, notary_collections] = n;
        Ok(BackupCounts { repositories, manifests, tags, blobs, trust_repositories, notary_collections })
    }

    /// Ends the transaction (its snapshot with it) and closes the connection.
    pub async fn close(self) -> Result<()> {
        self.tx.rollback().await?;
        if let Some(pool) = self.pool {
            pool.close().await;
        }
        Ok(())
    }
}
