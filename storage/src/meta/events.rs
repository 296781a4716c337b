//! The webhook outbox: deliveries written by [`super::journal`] in the reported change's transaction; taken,
//! finished and retried here by the deliverer (`registry::ops::notify`).

use crate::meta::{Metadata, Tx};
use crate::Result;

use super::journal::EventRow;

/// The webhook outbox: [`Metadata::events`].
#[derive(Clone, Copy, Debug)]
pub struct Events<'a>(pub(super) &'a Metadata);

impl Events<'_> {
    /// How many deliveries are waiting, over all endpoints.
    pub async fn pending(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM event_deliveries").fetch_one(self.0.reader()).await?;
        Ok(sqlx::Row::try_get(&row, 0)?)
    }
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
