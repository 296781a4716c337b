//! Blobs in the metadata: which repository sees which blob, linked by uploads and mounts, touched by reads, and
//! claimed (a new version) by every write that needs a blob, so that the collector's conditional removals miss it.

use sqlx::Row;
use wharf_format::{Digest, RepositoryName};

use super::collect;
use super::journal::{self, Journal};
use super::quota::{self, Reference};
use super::{insert_repository, Metadata, Tx};
use crate::{Result, UnixTime};

/// What linking an uploaded blob found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// A new blob row: its bytes are the upload's (check they are there when they lie at the content address,
    /// where an upload may have found an old copy in place that the collector then deleted).
    Added,
    /// The blob was already recorded, live; an upload's own copy elsewhere is surplus.
    Existing,
    /// The collector is deleting this blob's bytes; link again once its tombstone is gone.
    Busy,
    /// A new row whose bytes were not where its upload left them (a copy the upload found in place at the content
    /// address, which the collector then deleted): nothing was recorded.
    Missing,
}

/// A blob as a read of it sees it.
#[derive(Debug, Clone)]
pub struct SeenBlob {
    pub size: u64,
    /// Where it lies, `None` for its content address.
    pub location: Option<String>,
    /// When an upload, mount, reference or read last restarted its grace period in this repository.
    pub touched_at: UnixTime,
}

/// How long a read's touch of a blob lasts before another read writes a new one, in seconds.
pub const TOUCH_EVERY: UnixTime = 60;

/// Which repository may see which blob: [`Metadata::blobs`].
#[derive(Clone, Copy, Debug)]
pub struct Blobs<'a>(pub(super) &'a Metadata);

impl Blobs<'_> {
    /// Makes `digest` (of `size` bytes, stored at `location` or at its content address) visible in `repo`, and
    /// touches it there (its grace period restarts). `Busy` when the collector is deleting that blob's bytes: the
    /// caller waits until the tombstone is gone and links again (see [`Linked`]).
    pub async fn link(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        location: Option<&str>,
        now: UnixTime,
    ) -> Result<Linked> {
        Ok(self.link_verified(repo, digest, size, location, now, || async { Ok(true) }).await?.0)
    }

    /// [`Blobs::link`] for an upload: a new row (`Added`) is committed only if `present()` (asked inside the
    /// transaction, before anything of it is visible) finds the blob's bytes; else nothing is recorded
    /// (`Missing`). A row and link visible before that check let another push see the blob (`HEAD` 200), claim the
    /// link for its manifest and get a `201` for an image whose bytes were gone. Also returns the version the link
    /// has after it (0 when nothing was linked): what [`unlink_added`](Self::unlink_added) names.
    pub async fn link_verified<F, Fut>(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        location: Option<&str>,
        now: UnixTime,
        present: F,
    ) -> Result<(Linked, i64)>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        // PostgreSQL aborts one of two transactions that wait on each other's rows (here: this link and a
        // collector's statement); the link is safe to repeat.
        crate::remote::retry_conflicts("blob link", || self.link_once(repo, digest, size, location, now, &present))
            .await
    }

    async fn link_once<F, Fut>(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        location: Option<&str>,
        now: UnixTime,
        present: &F,
    ) -> Result<(Linked, i64)>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let mut tx = self.0.writer().begin().await?;
        insert_repository(&mut tx, repo, now).await?;
        let linked = if claim_live(&mut tx, digest).await? {
            Linked::Existing
        } else {
            let added = sqlx::query(
                "INSERT INTO blobs (digest, size, created_at, location, version) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(digest.to_string())
            .bind(size as i64)
            .bind(now)
            .bind(location.map(str::to_owned))
            .bind(super::fresh_version())
            .execute(&mut *tx)
            .await?;
            if added.rows_affected() == 0 {
                // A tombstone (or a row another upload inserted a moment ago: linking again finds it live).
                return Ok((Linked::Busy, 0));
            }
            // The row is this transaction's until it commits: no tombstone can be made of it, and no one else
            // sees it. Bytes there now stay until a tombstone, which needs the link below gone first.
            if !present().await? {
                return Ok((Linked::Missing, 0));
            }
            Linked::Added
        };
        let (new, version) = link(&mut tx, repo, digest, now).await?;
        if new {
            quota::count(self.0, &mut tx, &[Reference::made(repo, digest, size)]).await?;
        }
        tx.commit().await?;
        Ok((linked, version))
    }

    /// Undoes a link whose bytes turned out to be missing (a store that lost them): the row goes unless another
    /// repository linked the blob meanwhile.
    /// Only the link as this upload left it goes (`version`, from [`link_versioned`](Self::link_versioned)): one
    /// that another upload of the same blob or a manifest claimed since (a new version) is theirs, and stays.
    pub async fn unlink_added(&self, repo: &RepositoryName, digest: &Digest, version: i64) -> Result<()> {
        crate::remote::retry_conflicts("blob unlink", || self.unlink_added_link(repo, digest, version)).await?;
        // The row goes too unless another repository linked the blob meanwhile (on PostgreSQL a link committed
        // after this statement's snapshot makes it fail its foreign key: that linker checks the bytes itself), or
        // the collector made it a tombstone: that is the collector's, which deletes the bytes at the content
        // address before it forgets the row. Removing it here let an upload record the blob again in between, and
        // the collector then deleted the new upload's bytes.
        let gone = sqlx::query(
            "DELETE FROM blobs WHERE digest = $1 AND state = 'live' \
             AND NOT EXISTS (SELECT 1 FROM repository_blobs WHERE digest = $1)",
        )
        .bind(digest.to_string())
        .execute(self.0.writer())
        .await;
        match gone {
            Ok(_) => Ok(()),
            Err(e) if e.as_database_error().is_some_and(|d| d.is_foreign_key_violation()) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The link half of [`unlink_added`](Self::unlink_added), one transaction.
    async fn unlink_added_link(&self, repo: &RepositoryName, digest: &Digest, version: i64) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query("DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2 AND version = $3")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            quota::count(self.0, &mut tx, &[Reference::removed(repo, digest.to_string())]).await?;
            // Should the blob's row stay (linked elsewhere meanwhile, or a crash before it goes), the collector
            // looks at it again.
            collect::enqueue(&mut tx, repo, &[digest]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the collector is deleting `digest` (a tombstone is recorded for it).
    pub async fn deleting(&self, digest: &Digest) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1 AND state = 'deleting'")
            .bind(digest.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.is_some())
    }

    /// Restarts the grace period of `digest` in `repo` (a HEAD or GET of it) when it was last touched before
    /// `stale`; one write at most per blob and minute, however often it is read.
    pub async fn touch(&self, repo: &RepositoryName, digest: &Digest, now: UnixTime) -> Result<()> {
        crate::remote::retry_conflicts("blob touch", || self.touch_once(repo, digest, now)).await
    }

    async fn touch_once(&self, repo: &RepositoryName, digest: &Digest, now: UnixTime) -> Result<()> {
        sqlx::query(
            "UPDATE repository_blobs SET touched_at = $3, version = version + 1 \
             WHERE repository = $1 AND digest = $2 AND touched_at < $4",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .bind(now)
        .bind(now - TOUCH_EVERY)
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// The size of `digest` and where it is stored (`None`: its content address), if `repo` can see it.
    pub async fn get(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<(u64, Option<String>)>> {
        Ok(self.seen(repo, digest).await?.map(|b| (b.size, b.location)))
    }

    /// What [`get`](Self::get) says, and whether the row is due a [`touch`](Self::touch). A tombstone (a row the
    /// collector or a repair is removing) is not there.
    pub async fn seen(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<SeenBlob>> {
        let row = sqlx::query(
            "SELECT b.size, b.location, rb.touched_at FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
             WHERE rb.repository = $1 AND rb.digest = $2 AND b.state = 'live'",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(self.0.reader())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(SeenBlob {
            size: r.try_get::<i64, _>(0)? as u64,
            location: r.try_get::<Option<String>, _>(1)?,
            touched_at: r.try_get::<i64, _>(2)?,
        }))
    }

    /// Makes a blob visible in `from` visible in `to` too; `None` if `from` cannot see it.
    pub async fn mount(
        &self,
        from: &RepositoryName,
        to: &RepositoryName,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<u64>> {
        crate::remote::retry_conflicts("blob mount", || self.mount_once(from, to, digest, now)).await
    }

    async fn mount_once(
        &self,
        from: &RepositoryName,
        to: &RepositoryName,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<u64>> {
        let mut tx = self.0.writer().begin().await?;
        let Some(size) = blob_size(&mut tx, from, digest).await? else { return Ok(None) };
        if !claim_live(&mut tx, digest).await? {
            return Ok(None);
        }
        insert_repository(&mut tx, to, now).await?;
        if link(&mut tx, to, digest, now).await?.0 {
            quota::count(self.0, &mut tx, &[Reference::made(to, digest, size)]).await?;
        }
        tx.commit().await?;
        Ok(Some(size))
    }

    /// The size of `digest` if `repo` can see it.
    pub async fn size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let mut conn = self.0.reader().acquire().await?;
        blob_size(&mut conn, repo, digest).await
    }

    /// Hides `digest` from `repo`; the bytes stay until garbage collection. False if it was not visible.
    pub async fn unlink(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        self.unlink_recorded(repo, digest, &Journal::default()).await
    }

    /// [`Blobs::unlink`], writing `journal` in the same transaction if the link was there.
    pub async fn unlink_recorded(&self, repo: &RepositoryName, digest: &Digest, journal: &Journal) -> Result<bool> {
        crate::remote::retry_conflicts("blob delete", || self.unlink_once(repo, digest, journal)).await
    }

    async fn unlink_once(&self, repo: &RepositoryName, digest: &Digest, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query("DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        quota::count(self.0, &mut tx, &[Reference::removed(repo, digest.to_string())]).await?;
        // The blob may have no link left: the collector's next run looks at it.
        collect::enqueue(&mut tx, repo, &[digest]).await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Links a blob into a repository, or touches the link: a new version, so that a collector that saw the old one
/// leaves it. True if the link is new (a new row starts at a fresh version, see [`super::fresh_version`];
/// touching one adds one), with the link's version now. A new link is queued for the collector: no manifest
/// references it yet.
pub(super) async fn link(
    tx: &mut Tx<'_>,
    repo: &RepositoryName,
    digest: &Digest,
    now: UnixTime,
) -> Result<(bool, i64)> {
    let start = super::fresh_version();
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO repository_blobs (repository, digest, touched_at, version) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (repository, digest) DO UPDATE \
         SET touched_at = excluded.touched_at, version = repository_blobs.version + 1 RETURNING version",
    )
    .bind(repo.as_str())
    .bind(digest.to_string())
    .bind(now)
    .bind(start)
    .fetch_one(&mut **tx)
    .await?;
    if version == start {
        collect::enqueue(tx, repo, &[digest]).await?;
    }
    Ok((version == start, version))
}

/// Takes hold of a live blob row for this transaction (a new version: the collector's conditional mark then
/// misses it). False if there is no live row: none, or a tombstone.
pub(super) async fn claim_live(tx: &mut Tx<'_>, digest: &Digest) -> Result<bool> {
    let done = sqlx::query("UPDATE blobs SET version = version + 1 WHERE digest = $1 AND state = 'live'")
        .bind(digest.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
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
