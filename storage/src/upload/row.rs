//! The `upload_sessions` table: where a session's bytes are, how far they go, what they hash to, and who may write.
//!
//! Writers are fenced: a multipart session is written under a lease (`holder`, `held_until`) that the writing
//! request renews while it streams, and every save names the holder it expects, so a writer whose lease lapsed
//! can never record its bytes. A local-file session is written under an exclusive file lock instead and saved on
//! the condition that its size is still the one it started from.
//!
//! A local session's progress is recorded once its bytes are written, before they are synced (`boot_id` says under
//! which boot of the machine), and on SQLite without syncing the database either: a crash of the process loses
//! neither, and a machine crash that loses the latest saves leaves the row behind the file, which the next writer
//! cuts back to the row. Everything else is committed as durably as any write.

use sqlx::{Executor as _, Row as _};

use crate::meta::Backend;
use crate::{Error, Metadata, Result, UnixTime};

/// One session's persistent state.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub repo: String,
    pub size: u64,
    pub hash_state: Vec<u8>,
    pub part_size: u64,
    pub multipart_id: Option<String>,
    /// The completed parts in order: the store's id and the size of each, at least `part_size` bytes (S3 refuses a
    /// shorter part anywhere but last).
    pub parts: Vec<(String, u64)>,
    /// The object holding the bytes after the last part (fewer than `part_size`).
    pub tail_key: Option<String>,
    /// The boot of the machine under which a local session's recorded bytes were written (and perhaps not yet
    /// synced); `None` when every recorded byte is durable.
    pub boot_id: Option<String>,
}

impl Row {
    /// Bytes after the last part: in the tail object of a multipart session, or all of a file session's.
    pub fn tail_len(&self) -> u64 {
        self.size.saturating_sub(self.in_parts())
    }

    /// Bytes in the completed parts.
    pub fn in_parts(&self) -> u64 {
        self.parts.iter().map(|(_, n)| n).sum()
    }
}

fn size(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("negative upload size {v}")))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) async fn insert(
    m: &Metadata,
    id: &str,
    repo: &str,
    part_size: u64,
    state: &[u8],
    now: UnixTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO upload_sessions (id, repository, started_at, touched_at, size, hash_state, part_size) \
         VALUES ($1, $2, $3, $3, 0, $4, $5)",
    )
    .bind(id)
    .bind(repo)
    .bind(now)
    .bind(state.to_vec())
    .bind(to_i64(part_size))
    .execute(m.writer())
    .await?;
    Ok(())
}

pub(crate) async fn load(m: &Metadata, id: &str) -> Result<Option<Row>> {
    let row = sqlx::query(
        "SELECT repository, size, hash_state, part_size, multipart_id, parts, tail_key, boot_id \
         FROM upload_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(m.writer())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let parts: String = r.try_get("parts")?;
    let row = Row {
        repo: r.try_get("repository")?,
        size: size(r.try_get("size")?)?,
        hash_state: r.try_get("hash_state")?,
        part_size: size(r.try_get("part_size")?)?,
        multipart_id: r.try_get("multipart_id")?,
        parts: if parts.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&parts)
                .map_err(|source| Error::Json { what: format!("upload session {id}: decoding its parts"), source })?
        },
        tail_key: r.try_get("tail_key")?,
        boot_id: r.try_get("boot_id")?,
    };
    let short = row.parts.iter().any(|(_, n)| *n < row.part_size);
    if row.part_size == 0
        || short
        || row.in_parts() > row.size
        || (row.tail_key.is_some() && row.tail_len() >= row.part_size)
    {
        return Err(Error::Corrupt(format!("upload session {id}: parts do not add up to its size")));
    }
    Ok(Some(row))
}

/// Takes the writer lease if it is free or lapsed; `false` if another holds it (or the session is gone).
pub(crate) async fn acquire(m: &Metadata, id: &str, holder: &str, now: UnixTime, until: UnixTime) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE upload_sessions SET holder = $1, held_until = $2 \
         WHERE id = $3 AND (holder IS NULL OR held_until < $4)",
    )
    .bind(holder)
    .bind(until)
    .bind(id)
    .bind(now)
    .execute(m.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends a held lease; `false` if it was lost.
pub(crate) async fn renew(m: &Metadata, id: &str, holder: &str, until: UnixTime) -> Result<bool> {
    let done = sqlx::query("UPDATE upload_sessions SET held_until = $1 WHERE id = $2 AND holder = $3")
        .bind(until)
        .bind(id)
        .bind(holder)
        .execute(m.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the first multipart upload id while the lease is held.
pub(crate) async fn set_multipart(m: &Metadata, id: &str, holder: &str, multipart: &str) -> Result<bool> {
    let done = sqlx::query("UPDATE upload_sessions SET multipart_id = $1 WHERE id = $2 AND holder = $3")
        .bind(multipart)
        .bind(id)
        .bind(holder)
        .execute(m.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Who may save: the lease holder (multipart sessions) or whoever still sees the size it started from (files).
pub(crate) enum Fence<'a> {
    Holder(&'a str),
    Size(u64),
}

/// Saves a session's progress and releases its lease; `false` if the fence no longer holds. A save of unsynced
/// bytes (`boot_id` set) is not synced on SQLite either (see the module's note).
pub(crate) async fn save(m: &Metadata, id: &str, row: &Row, fence: Fence<'_>, now: UnixTime) -> Result<bool> {
    let condition = match fence {
        Fence::Holder(_) => "holder = $9",
        Fence::Size(_) => "size = $9",
    };
    let sql = format!(
        "UPDATE upload_sessions SET size = $1, hash_state = $2, multipart_id = $3, parts = $4, tail_key = $5, \
         boot_id = $6, touched_at = $7, holder = NULL, held_until = 0 WHERE id = $8 AND {condition}"
    );
    let parts = serde_json::to_string(&row.parts)
        .map_err(|source| Error::Json { what: format!("upload session {id}: encoding its parts"), source })?;
    let query = sqlx::query(&sql)
        .bind(to_i64(row.size))
        .bind(row.hash_state.clone())
        .bind(row.multipart_id.clone())
        .bind(parts)
        .bind(row.tail_key.clone())
        .bind(row.boot_id.clone())
        .bind(now)
        .bind(id);
    let query = match fence {
        Fence::Holder(h) => query.bind(h.to_owned()),
        Fence::Size(s) => query.bind(to_i64(s)),
    };
    if row.boot_id.is_none() || m.backend() != Backend::Sqlite {
        return Ok(query.execute(m.writer()).await?.rows_affected() == 1);
    }
    // SQLite's one writer connection runs this statement at `synchronous = NORMAL` (committed to the WAL, synced
    // at the next checkpoint or durable commit) and goes back to FULL; if anything stops it in between (an error,
    // or the request dropped), the connection is closed rather than returned, so no other write runs unsynced.
    let mut held = Unsynced(Some(m.writer().acquire().await?));
    let conn = held.0.as_deref_mut().ok_or_else(|| Error::Config("no connection".into()))?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    let done = query.execute(&mut *conn).await;
    conn.execute("PRAGMA synchronous = FULL").await?;
    drop(held.0.take());
    Ok(done?.rows_affected() == 1)
}

/// The writer connection while it does not sync: closed if dropped before it is set back.
struct Unsynced(Option<sqlx::pool::PoolConnection<sqlx::Any>>);

impl Drop for Unsynced {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            c.close_on_drop();
        }
    }
}

/// Records the outcome of checking a session after a reboot (see `Uploads::check`): `size` bytes, all durable,
/// hashing to `state`; on the condition that the session still holds `seen` bytes.
pub(crate) async fn checked(m: &Metadata, id: &str, seen: u64, size: u64, state: &[u8]) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE upload_sessions SET size = $1, hash_state = $2, boot_id = NULL WHERE id = $3 AND size = $4",
    )
    .bind(to_i64(size))
    .bind(state.to_vec())
    .bind(id)
    .bind(to_i64(seen))
    .execute(m.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases a lease without saving (the request failed before it had anything to record).
pub(crate) async fn release(m: &Metadata, id: &str, holder: &str) -> Result<()> {
    sqlx::query("UPDATE upload_sessions SET holder = NULL, held_until = 0 WHERE id = $1 AND holder = $2")
        .bind(id)
        .bind(holder)
        .execute(m.writer())
        .await?;
    Ok(())
}

pub(crate) async fn delete(m: &Metadata, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM upload_sessions WHERE id = $1").bind(id).execute(m.writer()).await?;
    Ok(())
}

/// Sessions untouched since before `cutoff` whose lease is free or lapsed.
pub(crate) async fn stale(m: &Metadata, cutoff: UnixTime, now: UnixTime) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM upload_sessions WHERE touched_at < $1 AND (holder IS NULL OR held_until < $2) LIMIT 1000",
    )
    .bind(cutoff)
    .bind(now)
    .fetch_all(m.reader())
    .await?;
    rows.iter().map(|r| r.try_get::<String, _>(0).map_err(Error::from)).collect()
}
