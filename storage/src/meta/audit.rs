//! The audit log's rows: written by [`super::journal`] in the recorded change's transaction; read and pruned here.

use sqlx::Row;

use crate::meta::{Metadata, Tx};
use crate::{Result, UnixTime};

use super::journal::AuditRow;

/// Rows per `INSERT` statement (10 parameters each: 500 parameters, under every SQLite build's limit).
const INSERT_ROWS: usize = 50;

/// The audit log: [`Metadata::audit`].
#[derive(Clone, Copy, Debug)]
pub struct Audit<'a>(pub(super) &'a Metadata);

/// Which rows [`Audit::query`] answers; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// The repository, exactly.
    pub repository: Option<String>,
    /// The actor's name (an account, a robot, a login's presented name), exactly.
    pub actor: Option<String>,
    /// Rows at or after this time.
    pub since: Option<UnixTime>,
    /// The action (`push`, `login_failed`, ...), exactly.
    pub action: Option<String>,
    /// Rows with ids below this one (the next page after a row of that id).
    pub before: Option<i64>,
    /// At most this many rows, newest first.
    pub limit: u32,
}

impl Audit<'_> {
    /// How many rows the log holds.
    pub async fn count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM audit").fetch_one(self.0.reader()).await?;
        Ok(row.try_get(0)?)
    }

    /// The rows `q` selects with their ids, newest first (by id: commit order).
    pub async fn query(&self, q: &AuditQuery) -> Result<Vec<(i64, AuditRow)>> {
        // Every filter is a parameter; an absent one is NULL and matches everything.
        let rows = sqlx::query(
            "SELECT id, at, action, actor, actor_kind, address, repository, digest, tag, detail FROM audit \
             WHERE ($1 IS NULL OR repository = $1) AND ($2 IS NULL OR actor = $2) \
             AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6",
        )
        .bind(q.repository.as_deref())
        .bind(q.actor.as_deref())
        .bind(q.since)
        .bind(q.action.as_deref())
        .bind(q.before)
        .bind(i64::from(q.limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let row = AuditRow {
                    at: r.try_get(1)?,
                    action: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    actor_kind: r.try_get(4)?,
                    address: r.try_get(5)?,
                    repository: r.try_get(6)?,
                    digest: r.try_get(7)?,
                    tag: r.try_get(8)?,
                    detail: r.try_get(9)?,
                };
                Ok((r.try_get(0)?, row))
            })
            .collect()
    }

    /// Removes up to `limit` of the oldest rows written before `before`; returns how many went. Bounded, so that a
    /// prune after a long pause never holds the writer for long: the caller repeats while it removes `limit`.
    pub async fn prune(&self, before: UnixTime, limit: u32) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < $1 ORDER BY id LIMIT $2)")
                .bind(before)
                .bind(i64::from(limit))
                .execute(self.0.writer())
                .await?;
        Ok(done.rows_affected())
    }
}

/// Inserts `rows` in the caller's transaction, in statements of [`INSERT_ROWS`] (a collection's removals may be
/// many). Ids come from the table's own sequence: no row that every recorded change would lock until its commit
/// (a shared counter made concurrent pushes and collections wait on each other, and deadlock on PostgreSQL).
pub(super) async fn insert(tx: &mut Tx<'_>, rows: &[AuditRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    for chunk in rows.chunks(INSERT_ROWS) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p: Vec<String> = (1..=9).map(|k| format!("${}", i * 9 + k)).collect();
                format!("({})", p.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit (at, action, actor, actor_kind, address, repository, digest, tag, detail) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.at)
                .bind(r.action.clone())
                .bind(r.actor.clone())
                .bind(r.actor_kind.clone())
                .bind(r.address.clone())
                .bind(r.repository.clone())
                .bind(r.digest.clone())
                .bind(r.tag.clone())
                .bind(r.detail.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
