//! Web interface sessions (`ui_sessions`): the registry's `auth::session` creates, reads and ends them. Only the
//! SHA-256 of a session's secret is stored (the caller hashes it), never the secret.

use sqlx::Row;

use crate::meta::Metadata;
use crate::{Result, UnixTime};

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub account: String,
    pub csrf: String,
    /// A fingerprint of the account's credential at sign-in (the registry's `auth::session` makes and checks it).
    pub credential: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// Web sessions: [`Metadata::sessions`].
#[derive(Clone, Copy, Debug)]
pub struct Sessions<'a>(pub(super) &'a Metadata);

impl Sessions<'_> {
    /// Stores a session under `id_hash`; sweeps the sessions expired at `row.created_at` first.
    pub async fn create(&self, id_hash: &str, row: &SessionRow) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1").bind(row.created_at).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO ui_sessions (id_hash, account, csrf, credential, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(&row.account)
        .bind(&row.csrf)
        .bind(&row.credential)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session under `id_hash` if it has not expired at `now`.
    pub async fn get(&self, id_hash: &str, now: UnixTime) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT account, csrf, credential, created_at, expires_at FROM ui_sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(self.0.reader())
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                account: r.try_get(0)?,
                csrf: r.try_get(1)?,
                credential: r.try_get(2)?,
                created_at: r.try_get(3)?,
                expires_at: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Ends the session under `id_hash`; false if there was none.
    pub async fn delete(&self, id_hash: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1").bind(id_hash).execute(self.0.writer()).await?;
        Ok(done.rows_affected() > 0)
    }
}
