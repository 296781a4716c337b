//! Named leases in SQL: a job that one replica at a time may run (timestamp renewal, collection) is taken for a
//! while by one holder, kept by renewing it, and taken over by another once it has run out.

use crate::meta::Metadata;
use crate::{Result, UnixTime};

/// Named leases: [`Metadata::leases`].
#[derive(Clone, Copy, Debug)]
pub struct Leases<'a>(pub(super) &'a Metadata);

impl Leases<'_> {
    /// Takes or keeps the lease `name` for `holder` until `until`, if it is free, expired at `now`, or already
    /// `holder`'s. True if `holder` holds it now. One statement, so two replicas cannot both win.
    pub async fn acquire(&self, name: &str, holder: &str, now: UnixTime, until: UnixTime) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.expires_at <= $4 OR leases.holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives up the lease `name` if `holder` holds it.
    pub async fn release(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.0.writer())
            .await?;
        Ok(())
    }
}
