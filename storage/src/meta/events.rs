//! The webhook outbox: deliveries written by [`super::journal`] in the reported change's transaction; taken,
//! finished and retried here by the deliverer (`registry::ops::notify::deliver`) and `wharf admin events`.
//!
//! An endpoint's rows go out in id order: the deliverer reads the head of its queue, sends it, and deletes what
//! was sent; a failure marks only the head (attempts, next attempt, last error), and nothing behind it goes first.

use sqlx::Row;

use crate::meta::{Metadata, Tx};
use crate::{Result, UnixTime};

use super::journal::{self, EventRow, Journal};

/// The webhook outbox: [`Metadata::events`].
#[derive(Clone, Copy, Debug)]
pub struct Events<'a>(pub(super) &'a Metadata);

/// One delivery waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub endpoint: String,
    pub action: String,
    pub repository: String,
    /// The event, as JSON text (empty in [`Events::list`]).
    pub payload: String,
    pub created_at: UnixTime,
    /// Failed attempts so far (0: pending, not failing).
    pub attempts: i64,
    /// Not sent again before this time.
    pub next_attempt: UnixTime,
    pub last_error: Option<String>,
}

/// The outbox of one endpoint, summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointBacklog {
    pub endpoint: String,
    pub pending: i64,
    /// Rows that failed at least once.
    pub failing: i64,
    pub oldest: UnixTime,
}

const COLUMNS: &str = "id, endpoint, action, repository, created_at, attempts, next_attempt, last_error";

impl Events<'_> {
    /// The first `limit` deliveries of `endpoint`, in id order, with their payloads.
    pub async fn head(&self, endpoint: &str, limit: i64) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, payload FROM event_deliveries WHERE endpoint = $1 ORDER BY id LIMIT $2"
        ))
        .bind(endpoint)
        .bind(limit)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| delivery(r, true)).collect()
    }

    /// Removes the deliveries of `endpoint` up to `through` (they were sent). How many went.
    pub async fn delivered(&self, endpoint: &str, through: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM event_deliveries WHERE endpoint = $1 AND id <= $2")
            .bind(endpoint)
            .bind(through)
            .execute(self.0.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Marks delivery `id` failed once more: not again before `next_attempt`, with `error`.
    pub async fn failed(&self, id: i64, next_attempt: UnixTime, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE event_deliveries SET attempts = attempts + 1, next_attempt = $2, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt)
        .bind(error)
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// The deliveries waiting (of `endpoint`, or all), failing ones first, then in id order; at most `limit`.
    pub async fn list(&self, endpoint: Option<&str>, limit: i64) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM event_deliveries WHERE ($1 IS NULL OR endpoint = $1) \
             ORDER BY CASE WHEN attempts > 0 THEN 0 ELSE 1 END, endpoint, id LIMIT $2"
        ))
        .bind(endpoint)
        .bind(limit)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| delivery(r, false)).collect()
    }

    /// Per endpoint with deliveries waiting (of `endpoint`, or all): how many, how many failing, the oldest.
    pub async fn backlog(&self, endpoint: Option<&str>) -> Result<Vec<EndpointBacklog>> {
        let rows = sqlx::query(
            "SELECT endpoint, COUNT(*), SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), MIN(created_at) \
             FROM event_deliveries WHERE ($1 IS NULL OR endpoint = $1) GROUP BY endpoint ORDER BY endpoint",
        )
        .bind(endpoint)
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EndpointBacklog {
                    endpoint: r.try_get(0)?,
                    pending: r.try_get(1)?,
                    failing: r.try_get(2)?,
                    oldest: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Makes the failing deliveries (of `endpoint`, or all) due now, writing `journal` in the same transaction.
    /// How many.
    pub async fn retry_recorded(&self, endpoint: Option<&str>, journal: &Journal) -> Result<u64> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE event_deliveries SET next_attempt = 0 WHERE attempts > 0 AND ($1 IS NULL OR endpoint = $1)",
        )
        .bind(endpoint)
        .execute(&mut *tx)
        .await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

fn delivery(r: &sqlx::any::AnyRow, with_payload: bool) -> Result<Delivery> {
    Ok(Delivery {
        id: r.try_get(0)?,
        endpoint: r.try_get(1)?,
        action: r.try_get(2)?,
        repository: r.try_get(3)?,
        created_at: r.try_get(4)?,
        attempts: r.try_get(5)?,
        next_attempt: r.try_get(6)?,
        last_error: r.try_get(7)?,
        payload: if with_payload { r.try_get(8)? } else { String::new() },
    })
}

/// Inserts `rows` in the caller's transaction, with ids from the `events.seq` counter: the counter's row is locked
/// until the commit, so ids follow commit order and an endpoint's deliveries can be sent in id order.
pub(super) async fn insert(tx: &mut Tx<'_>, rows: &[EventRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    for r in rows {
        let id: i64 = sqlx::Row::try_get(
            &sqlx::query(
                "INSERT INTO counters (name, value) VALUES ('events.seq', 1) \
                 ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            )
            .fetch_one(&mut **tx)
            .await?,
            0,
        )?;
        sqlx::query(
            "INSERT INTO event_deliveries (id, endpoint, action, repository, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&r.endpoint)
        .bind(&r.action)
        .bind(&r.repository)
        .bind(&r.payload)
        .bind(r.at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
