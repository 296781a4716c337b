//! Server-wide settings kept in the database as bytes (what they mean is the caller's), so that every replica
//! sees the same value: the first replica to start stores it, and the others read what it stored.

use sqlx::Row;

use crate::meta::Metadata;
use crate::Result;

/// Named settings: [`Metadata::settings`].
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a>(pub(super) &'a Metadata);

impl Settings<'_> {
    /// The value of setting `name`, if it was ever stored.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Stores `value` as setting `name`, replacing any earlier value.
    pub async fn set(&self, name: &str, value: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// Forgets setting `name`.
    pub async fn remove(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM settings WHERE name = $1").bind(name).execute(self.0.writer()).await?;
        Ok(())
    }

    /// Stores `value` unless the setting exists; returns the stored value either way.
    pub async fn init(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(self.0.writer())
            .await?;
        let row =
            sqlx::query("SELECT value FROM settings WHERE name = $1").bind(name).fetch_one(self.0.writer()).await?;
        Ok(row.try_get(0)?)
    }
}
