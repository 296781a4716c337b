//! All of Wharf's SQL: registry metadata (repositories, which blobs each may see, manifests with their references,
//! tags), trust metadata for both notary dialects, accounts, leases and settings.
//!
//! [`Metadata`] owns the connection pools and hands out one small borrowed view per role, as containerd's content
//! store is composed of small role interfaces: [`blobs`](Metadata::blobs), [`manifests`](Metadata::manifests),
//! [`catalog`](Metadata::catalog), [`check`](Metadata::check), [`collect`](Metadata::collect), [`mirror`](Metadata::mirror),
//! [`trust`](Metadata::trust), [`notary_v1`](Metadata::notary_v1), [`accounts`](Metadata::accounts),
//! [`leases`](Metadata::leases), [`quotas`](Metadata::quotas) and [`settings`](Metadata::settings), each in its own
//! file. A view is a copyable
//! reference: `meta.trust().latest(..)`. Each method is one unit of work: it reads from the read pool, or writes in
//! one transaction of its own on the write pool (a publish of several versions, a manifest with its references and
//! tag), so no transaction outlives a call. Statements that several roles share (making a repository, linking a
//! blob) are functions that take the caller's transaction (`Tx`).
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
use wharf_format::RepositoryName;

use crate::{Error, Result, UnixTime};

mod accounts;
mod audit;
mod backup;
mod blobs;
mod buckets;
mod catalog;
mod check;
mod collect;
mod events;
pub mod journal;
mod leases;
mod manifests;
mod mirror;
mod notary_v1;
mod quota;
mod sessions;
mod settings;
mod trust;
mod ui;
mod ui_manifest;

/// The version a new `blobs`, `repository_blobs` or `manifests` row starts at: random in 1..2^62, never 0. Each
/// write that needs the row adds one, and the collector's removals name the version they saw. A row removed and
/// inserted again must not come back at a version the collector may have seen of the old one (it would remove the
/// new row: a blob deleted, collected and pushed again lost its bytes that way), so a row never starts at a
/// counter's base: two incarnations meet only if one's start lands within the other's few writes, about one chance
/// in 2^50 and more.
pub(crate) fn fresh_version() -> i64 {
    let (high, _) = uuid::Uuid::new_v4().as_u64_pair();
    ((high >> 2) as i64).max(1)
}

pub use accounts::{AccountKind, AccountRow, Accounts, GrantRow};
pub use audit::{Audit, AuditQuery};
pub use backup::{BackupBlob, BackupCounts, Snapshot};
pub use blobs::{Blobs, Linked, SeenBlob, TOUCH_EVERY};
pub use buckets::Buckets;
pub use catalog::{Catalog, NameRange};
pub use check::{Check, CheckedBlob, CheckedManifest, CheckedReference, CheckedTag};
pub use collect::{
    BlobRow, Candidate, Collect, Decided, LinkState, StaleLink, TagRow, Tombstone, UntaggedRow, Waiting,
};
pub use events::{Delivery, EndpointBacklog, Events};
pub use journal::{
    Actor, AuditRow, Change, EventRow, Journal, Journals, OnTagMove, Origin, Recorder, Silent, TrustFormat,
};
pub use leases::Leases;
pub use manifests::{ManifestRecord, Manifests, NewManifest, Referrer};
pub use mirror::{Cached, Mirror};
pub use notary_v1::{ChangeQuery, ChangeRow, NotaryV1, V1KeyRow, V1Row};
pub use quota::{QuotaRow, Quotas, Recounted};
pub use sessions::{SessionRow, Sessions};
pub use settings::Settings;
pub use trust::{HistoryRow, KeyRow, MetadataRow, Trust};
pub use ui::{AccountSummary, AuditPage, Child, LinkedBlob, RepoSummary, TagLine, TagPage, TagQuery, TagSort, Ui};
pub use ui_manifest::ReferrerSummary;

/// The SQLite migrations, applied at start-up.
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
/// The PostgreSQL migrations.
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

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
    /// The quotas' compiled patterns, by generation (see `quota.rs`).
    quota_cache: std::sync::Arc<quota::Cache>,
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
            let options = AnyConnectOptions::from_str(url).map_err(Error::DatabaseUrl)?;
            // A connection a server restart killed is found by the check before it is handed out and replaced; while
            // the server starts again, acquiring waits (retrying the connection) up to the timeout, then fails as
            // unavailable.
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .test_before_acquire(true)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            POSTGRES.run(&pool).await.map_err(|e| Error::Database(e.into()))?;
            return Ok(Metadata {
                write: pool.clone(),
                read: pool,
                backend: Backend::Postgres,
                quota_cache: Default::default(),
            });
        }
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| Error::Config("the database URL: use sqlite://PATH or postgres://...".into()))?;
        // Made here with mode 0600 (SQLite would make it 0644 less the umask), so that the password hashes in it
        // and the WAL and SHM files SQLite creates with its mode are the server user's only.
        if !path.starts_with(':') {
            crate::modes::private_database(Path::new(path)).map_err(Error::io("creating", Path::new(path)))?;
        }
        let rw = AnyConnectOptions::from_str(&format!("sqlite://{path}?mode=rwc")).map_err(Error::DatabaseUrl)?;
        let ro = AnyConnectOptions::from_str(&format!("sqlite://{path}?mode=ro")).map_err(Error::DatabaseUrl)?;
        // A writer whose COMMIT failed (an I/O error, a full disk) may be left inside a transaction that sqlx no
        // longer ends: it is closed on its way back to the pool, and the next request opens a fresh one.
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(sqlite_pragmas)
            .after_release(|conn, _| Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) }))
            .connect_with(rw)
            .await?;
        write.execute("PRAGMA journal_mode = WAL").await?;
        SQLITE.run(&write).await.map_err(|e| Error::Database(e.into()))?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2).max(4) as u32;
        let read =
            AnyPoolOptions::new().max_connections(readers).after_connect(sqlite_pragmas).connect_with(ro).await?;
        Ok(Metadata { write, read, backend: Backend::Sqlite, quota_cache: Default::default() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Which repository may see which blob: links, touches, mounts.
    pub fn blobs(&self) -> Blobs<'_> {
        Blobs(self)
    }

    /// Manifests with their references, tags and referrers.
    pub fn manifests(&self) -> Manifests<'_> {
        Manifests(self)
    }

    /// Repository names, for the catalog and for walks over every repository.
    pub fn catalog(&self) -> Catalog<'_> {
        Catalog(self)
    }

    /// The scrub's reads (`wharf admin check`) and its one removal.
    pub fn check(&self) -> Check<'_> {
        Check(self)
    }

    /// The garbage collector's and retention's conditional reads and removals.
    pub fn collect(&self) -> Collect<'_> {
        Collect(self)
    }

    /// What a mirror remembers of its upstreams.
    pub fn mirror(&self) -> Mirror<'_> {
        Mirror(self)
    }

    /// TUF 1.0 metadata versions and the notary's sealed keys.
    pub fn trust(&self) -> Trust<'_> {
        Trust(self)
    }

    /// Notary v1 collections, their sealed keys and the changefeed.
    pub fn notary_v1(&self) -> NotaryV1<'_> {
        NotaryV1(self)
    }

    /// Accounts and grants.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts(self)
    }

    /// Named leases that let one replica at a time run a job.
    pub fn leases(&self) -> Leases<'_> {
        Leases(self)
    }

    /// Writing audit rows and webhook deliveries alone (a login, a pull).
    pub fn journals(&self) -> Journals<'_> {
        Journals(self)
    }

    /// The audit log: queries and pruning.
    pub fn audit(&self) -> Audit<'_> {
        Audit(self)
    }

    /// The webhook outbox: taking, finishing and retrying deliveries.
    pub fn events(&self) -> Events<'_> {
        Events(self)
    }

    /// Rate limit buckets shared by replicas.
    pub fn buckets(&self) -> Buckets<'_> {
        Buckets(self)
    }

    /// Storage quotas per repository pattern: their limits and usage.
    pub fn quotas(&self) -> Quotas<'_> {
        Quotas(self)
    }

    /// Server-wide settings kept in the database.
    pub fn settings(&self) -> Settings<'_> {
        Settings(self)
    }

    /// Web interface sessions.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions(self)
    }

    /// The web interface's listings.
    pub fn ui(&self) -> Ui<'_> {
        Ui(self)
    }

    /// Whether `url` holds a Wharf database, without creating or migrating anything: for SQLite, whether the file
    /// exists; for PostgreSQL, whether the database answers and has the migrations table.
    pub async fn exists(url: &str) -> Result<bool> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = AnyConnectOptions::from_str(url).map_err(Error::DatabaseUrl)?;
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            let row = sqlx::query(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
            )
            .fetch_one(&pool)
            .await?;
            let n: i64 = row.try_get(0)?;
            pool.close().await;
            return Ok(n > 0);
        }
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| Error::Config("the database URL: use sqlite://PATH or postgres://...".into()))?;
        // A query (`?mode=...`) is SQLite's options, not part of the file's path.
        let path = path.split('?').next().unwrap_or(path);
        Ok(path.starts_with(':') || Path::new(path).exists())
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.write
    }
}

/// Each SQLite connection's settings. FULL: a commit that acknowledges a client write is on disk before the answer,
/// even in WAL mode.
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, std::result::Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -32768").await?;
        Ok(())
    })
}

pub(super) type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

pub(super) async fn insert_repository(tx: &mut Tx<'_>, repo: &RepositoryName, now: UnixTime) -> Result<()> {
    sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(repo.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) fn page<T: FromStr>(rows: Vec<sqlx::any::AnyRow>, limit: u32) -> Result<(Vec<T>, bool)> {
    let more = rows.len() > limit as usize;
    let items =
        rows.iter().take(limit as usize).map(|r| parse(r.try_get::<String, _>(0)?)).collect::<Result<Vec<T>>>()?;
    Ok((items, more))
}

pub(super) fn parse<T: FromStr>(s: String) -> Result<T> {
    s.parse().map_err(|_| Error::Corrupt(format!("stored value {s:?} does not parse")))
}
