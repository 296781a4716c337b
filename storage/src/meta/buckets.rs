//! Rate limit buckets shared by replicas: one row per bucket holding its theoretical arrival time (see the
//! registry's `ops::limit`). Each decision is one conditional upsert, so two replicas never both spend the last
//! credit.

use sqlx::Row;

use crate::meta::Metadata;
use crate::Result;

/// Shared rate limit buckets: [`Metadata::buckets`].
#[derive(Clone, Copy, Debug)]
pub struct Buckets<'a>(pub(super) &'a Metadata);

impl Buckets<'_> {
    /// Takes from bucket `key` at `now` (nanoseconds): when `max(tat, now) + need - now <= burst`, charges `cost`
    /// and returns true; otherwise changes nothing and returns false. A missing bucket is full (`need <= burst`
    /// is the caller's to hold).
    pub async fn take(&self, key: &str, now: i64, need: i64, cost: i64, burst: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO rate_buckets (key, tat) VALUES ($1, $2 + $4) \
             ON CONFLICT (key) DO UPDATE \
             SET tat = (CASE WHEN rate_buckets.tat > $2 THEN rate_buckets.tat ELSE $2 END) + $4 \
             WHERE (CASE WHEN rate_buckets.tat > $2 THEN rate_buckets.tat ELSE $2 END) + $3 - $2 <= $5",
        )
        .bind(key)
        .bind(now)
        .bind(need)
        .bind(cost)
        .bind(burst)
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The bucket's theoretical arrival time (0: no row, a full bucket).
    pub async fn tat(&self, key: &str) -> Result<i64> {
        let row = sqlx::query("SELECT tat FROM rate_buckets WHERE key = $1")
            .bind(key)
            .fetch_optional(self.0.reader())
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => 0,
        })
    }

    /// Deletes the buckets full at `now` (they decide as a missing row does); returns how many went.
    pub async fn sweep(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM rate_buckets WHERE tat <= $1").bind(now).execute(self.0.writer()).await?;
        Ok(done.rows_affected())
    }
}
