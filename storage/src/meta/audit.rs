//! The audit log's rows: written by [`super::journal`] in the recorded change's transaction; read and pruned here.

use crate::meta::{Metadata, Tx};
use crate::Result;

use super::journal::AuditRow;

/// The audit log: [`Metadata::audit`].
#[derive(Clone, Copy, Debug)]
pub struct Audit<'a>(pub(super) &'a Metadata);

impl Audit<'_> {
    /// How many rows the log holds.
    pub async fn count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM audit").fetch_one(self.0.reader()).await?;
        Ok(sqlx::Row::try_get(&row, 0)?)
    }
}

/// Inserts `rows` in the caller's transaction, with ids from the `audit.seq` counter (commit order).
pub(super) async fn insert(tx: &mut Tx<'_>, rows: &[AuditRow]) -> Result<()> {
    for r in rows {
        let id: i64 = sqlx::Row::try_get(
            &sqlx::query(
                "INSERT INTO counters (name, value) VALUES ('audit.seq', 1) \
                 ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            )
            .fetch_one(&mut **tx)
            .await?,
            0,
        )?;
        sqlx::query(
            "INSERT INTO audit (id, at, action, actor, actor_kind, address, repository, digest, tag, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(r.at)
        .bind(&r.action)
        .bind(&r.actor)
        .bind(&r.actor_kind)
        .bind(r.address.as_deref())
        .bind(r.repository.as_deref())
        .bind(r.digest.as_deref())
        .bind(r.tag.as_deref())
        .bind(r.detail.as_deref())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
