//! Storage quotas per repository pattern: what each counts, kept exact in the transactions that change it.
//!
//! A quota (`team/**`, `team/*`, `team/app`: [`Pattern`]s as in `[[policy]]`) counts the bytes of every distinct
//! digest that a covered repository references, once however many covered repositories reference it: a blob
//! through its link (`repository_blobs`), a manifest through its row (`manifests`, its own bytes). `quota_members`
//! holds, per quota and digest, the size and how many references there are; a member comes with its first
//! reference and goes with its last, and the quota's `usage_bytes` moves by its size.
//!
//! **Exact under concurrency.** Every write that makes or removes a reference (a blob link, a mount, a manifest
//! put or delete, the collector's removals) calls [`count`] in its own transaction, after its other writes and
//! before its journal. `count` reads the generation in `quota_state` (servers cache the compiled patterns by
//! generation, so a server with no quota pays one small read), then, for each quota the change touches in pattern
//! order, locks the quota's row before its members: the quota's writers take turns there, a refused change rolls
//! back with its cause, and the collector never drifts. Adding or removing a quota bumps the generation in a
//! transaction that first waits for every writer past that read (on PostgreSQL, `LOCK TABLE quota_state`, the one
//! statement here that runs on one database only: SQLite's single writer already serialises all writes), so no
//! write counts against a stale set of quotas, and a new quota's usage is computed from scratch in that one
//! transaction. A recount holds only the quota's row.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sqlx::{Executor, Row};
use wharf_format::policy::Pattern;
use wharf_format::{Digest, RepositoryName};

use super::journal::{self, Journal};
use super::{Backend, Metadata, Tx};
use crate::{Error, Result, UnixTime};

/// A quota and how much of it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRow {
    /// The repository pattern, which is also the quota's name.
    pub pattern: String,
    pub limit: u64,
    pub usage: u64,
}

/// What a recount found wrong in one quota and set right.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recounted {
    pub pattern: String,
    pub usage_before: u64,
    pub usage_after: u64,
    /// Digests counted now that were missing.
    pub members_added: u64,
    /// Digests no longer referenced that were still counted.
    pub members_removed: u64,
    /// Digests whose size or reference count was wrong.
    pub members_fixed: u64,
}

impl Recounted {
    /// Whether anything was wrong.
    pub fn corrected(&self) -> bool {
        self.usage_before != self.usage_after || self.members_added + self.members_removed + self.members_fixed > 0
    }
}

/// Quotas: [`Metadata::quotas`].
#[derive(Clone, Copy, Debug)]
pub struct Quotas<'a>(pub(super) &'a Metadata);

impl Quotas<'_> {
    /// Every quota with its limit and usage, by pattern (for `wharf admin quota list` and the metrics' gauges).
    pub async fn list(&self) -> Result<Vec<QuotaRow>> {
        let rows = sqlx::query("SELECT pattern, limit_bytes, usage_bytes FROM quotas ORDER BY pattern")
            .fetch_all(self.0.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(QuotaRow {
                    pattern: r.try_get(0)?,
                    limit: r.try_get::<i64, _>(1)? as u64,
                    usage: r.try_get::<i64, _>(2)? as u64,
                })
            })
            .collect()
    }

    /// Sets the limit of the quota on `pattern`, adding the quota if there is none: a new quota's usage is computed
    /// from what covered repositories reference now, in the same transaction. A limit below the usage is allowed:
    /// what would grow the usage is refused until enough goes. Writes `journal` in the same transaction.
    pub async fn set(&self, pattern: &Pattern, limit: u64, now: UnixTime, journal: &Journal) -> Result<QuotaRow> {
        let limit = i64::try_from(limit).map_err(|_| Error::Config(format!("quota limit {limit} is too large")))?;
        let mut tx = self.0.writer().begin().await?;
        hold_writers(self.0, &mut tx).await?;
        let existing = sqlx::query("UPDATE quotas SET limit_bytes = $2 WHERE pattern = $1 RETURNING usage_bytes")
            .bind(pattern.as_str())
            .bind(limit)
            .fetch_optional(&mut *tx)
            .await?;
        let usage = match existing {
            Some(r) => r.try_get::<i64, _>(0)?,
            None => {
                sqlx::query(
                    "INSERT INTO quotas (pattern, limit_bytes, usage_bytes, created_at) VALUES ($1, $2, 0, $3)",
                )
                .bind(pattern.as_str())
                .bind(limit)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let members = census(&mut tx, pattern).await?;
                insert_members(&mut tx, pattern.as_str(), &members).await?;
                let usage: i64 = members.values().map(|(size, _)| *size as i64).sum();
                set_usage(&mut tx, pattern.as_str(), usage).await?;
                usage
            }
        };
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(QuotaRow { pattern: pattern.to_string(), limit: limit as u64, usage: usage as u64 })
    }

    /// Removes the quota on `pattern`, writing `journal` in the same transaction. False if there was none.
    pub async fn remove(&self, pattern: &str, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        hold_writers(self.0, &mut tx).await?;
        sqlx::query("DELETE FROM quota_members WHERE quota = $1").bind(pattern).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM quotas WHERE pattern = $1").bind(pattern).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Recomputes every quota's members and usage from what covered repositories reference, one transaction per
    /// quota, and sets right what differs. Returns every quota's finding (see [`Recounted::corrected`]).
    pub async fn recount(&self) -> Result<Vec<Recounted>> {
        let mut out = Vec::new();
        for q in self.list().await? {
            let pattern: Pattern = super::parse(q.pattern)?;
            let mut tx = self.0.writer().begin().await?;
            // The quota's row first, as every writer takes it: none of them changes its members meanwhile.
            let Some((usage, _)) = lock(&mut tx, pattern.as_str()).await? else { continue };
            let found = recount_one(&mut tx, &pattern, usage).await?;
            tx.commit().await?;
            out.push(found);
        }
        Ok(out)
    }
}

/// Compares what `pattern` counts with its census and sets right what differs, in the caller's transaction, which
/// holds the quota's row.
async fn recount_one(tx: &mut Tx<'_>, pattern: &Pattern, usage: i64) -> Result<Recounted> {
    let quota = pattern.as_str();
    let truth = census(tx, pattern).await?;
    let rows = sqlx::query("SELECT digest, size, refs FROM quota_members WHERE quota = $1")
        .bind(quota)
        .fetch_all(&mut **tx)
        .await?;
    let mut stored = BTreeMap::new();
    for r in &rows {
        stored.insert(r.try_get::<String, _>(0)?, (r.try_get::<i64, _>(1)? as u64, r.try_get::<i64, _>(2)?));
    }
    let mut found = Recounted { pattern: quota.to_owned(), usage_before: usage as u64, ..Default::default() };
    for (digest, have) in &stored {
        match truth.get(digest) {
            None => {
                found.members_removed += 1;
                sqlx::query("DELETE FROM quota_members WHERE quota = $1 AND digest = $2")
                    .bind(quota)
                    .bind(digest)
                    .execute(&mut **tx)
                    .await?;
            }
            Some(want) if want != have => {
                found.members_fixed += 1;
                sqlx::query("UPDATE quota_members SET size = $3, refs = $4 WHERE quota = $1 AND digest = $2")
                    .bind(quota)
                    .bind(digest)
                    .bind(want.0 as i64)
                    .bind(want.1)
                    .execute(&mut **tx)
                    .await?;
            }
            Some(_) => {}
        }
    }
    let missing: BTreeMap<String, (u64, i64)> =
        truth.iter().filter(|(d, _)| !stored.contains_key(*d)).map(|(d, m)| (d.clone(), *m)).collect();
    found.members_added = missing.len() as u64;
    insert_members(tx, quota, &missing).await?;
    let counted: i64 = truth.values().map(|(size, _)| *size as i64).sum();
    found.usage_after = counted as u64;
    if counted != usage {
        set_usage(tx, quota, counted).await?;
    }
    Ok(found)
}

/// A reference a write made (`delta` 1) or removed (-1): a blob link or a manifest row of `repo`.
pub(super) struct Reference<'a> {
    pub repo: &'a RepositoryName,
    pub digest: String,
    /// The content's bytes; a removal goes by the size its quota recorded.
    pub size: u64,
    pub delta: i64,
}

impl<'a> Reference<'a> {
    pub fn made(repo: &'a RepositoryName, digest: &Digest, size: u64) -> Reference<'a> {
        Reference { repo, digest: digest.to_string(), size, delta: 1 }
    }

    pub fn removed(repo: &'a RepositoryName, digest: String) -> Reference<'a> {
        Reference { repo, digest, size: 0, delta: -1 }
    }
}

/// Counts `refs` against every quota that covers their repositories, in the caller's transaction (see the
/// module's doc): `QuotaExceeded`, and nothing counted, if that would take a quota over its limit.
pub(super) async fn count(meta: &Metadata, tx: &mut Tx<'_>, refs: &[Reference<'_>]) -> Result<()> {
    let quotas = in_force(meta, tx).await?;
    if quotas.is_empty() || refs.is_empty() {
        return Ok(());
    }
    // Per quota, in pattern order (every writer locks quota rows in this one order), per digest: size, net change.
    let mut per: BTreeMap<&str, BTreeMap<&str, (u64, i64)>> = BTreeMap::new();
    for r in refs {
        for q in quotas.iter().filter(|q| q.matches(r.repo)) {
            let e = per.entry(q.as_str()).or_default().entry(r.digest.as_str()).or_insert((0, 0));
            e.0 = e.0.max(r.size);
            e.1 += r.delta;
        }
    }
    for (quota, changes) in per {
        let Some((usage, limit)) = lock(tx, quota).await? else { continue };
        let mut net: i64 = 0;
        for (digest, (size, delta)) in changes {
            if delta > 0 {
                let refs: i64 = sqlx::query_scalar(
                    "INSERT INTO quota_members (quota, digest, size, refs) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (quota, digest) DO UPDATE SET refs = quota_members.refs + excluded.refs \
                     RETURNING refs",
                )
                .bind(quota)
                .bind(digest)
                .bind(size as i64)
                .bind(delta)
                .fetch_one(&mut **tx)
                .await?;
                if refs == delta {
                    net += size as i64;
                }
            } else if delta < 0 {
                let row = sqlx::query(
                    "UPDATE quota_members SET refs = refs + $3 WHERE quota = $1 AND digest = $2 RETURNING refs, size",
                )
                .bind(quota)
                .bind(digest)
                .bind(delta)
                .fetch_optional(&mut **tx)
                .await?;
                // No member: it was never counted (a recount sets that right); nothing to take away.
                let Some(row) = row else { continue };
                if row.try_get::<i64, _>(0)? <= 0 {
                    sqlx::query("DELETE FROM quota_members WHERE quota = $1 AND digest = $2")
                        .bind(quota)
                        .bind(digest)
                        .execute(&mut **tx)
                        .await?;
                    net -= row.try_get::<i64, _>(1)?;
                }
            }
        }
        if net > 0 && usage + net > limit {
            return Err(Error::QuotaExceeded {
                quota: quota.to_owned(),
                usage: usage as u64,
                limit: limit as u64,
                adding: net as u64,
            });
        }
        if net != 0 {
            set_usage(tx, quota, usage + net).await?;
        }
    }
    Ok(())
}

/// The compiled patterns of the quotas in force, by the generation they were read at.
#[derive(Debug, Default)]
pub(super) struct Cache(Mutex<Option<(i64, Arc<[Pattern]>)>>);

/// The quotas in force for this transaction: the generation read here, the patterns from the cache when it holds
/// that generation (else read and cached).
async fn in_force(meta: &Metadata, tx: &mut Tx<'_>) -> Result<Arc<[Pattern]>> {
    let generation: i64 =
        sqlx::query_scalar("SELECT generation FROM quota_state WHERE id = 1").fetch_one(&mut **tx).await?;
    // A poisoned lock only means another thread panicked while replacing the entry: the entry itself is whole.
    if let Some((g, patterns)) = meta.quota_cache.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if *g == generation {
            return Ok(patterns.clone());
        }
    }
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT pattern FROM quotas ORDER BY pattern").fetch_all(&mut **tx).await?;
    let patterns: Arc<[Pattern]> = rows.into_iter().map(super::parse).collect::<Result<Vec<_>>>()?.into();
    *meta.quota_cache.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, patterns.clone()));
    Ok(patterns)
}

/// Makes the caller's transaction the only one counting until it ends, and bumps the generation (see the module's
/// doc): on PostgreSQL it waits for every transaction that read the generation to end, and holds back those that
/// would read it; on SQLite, the bump takes the one write lock.
async fn hold_writers(meta: &Metadata, tx: &mut Tx<'_>) -> Result<()> {
    if meta.backend() == Backend::Postgres {
        (&mut **tx).execute("LOCK TABLE quota_state IN ACCESS EXCLUSIVE MODE").await?;
    }
    sqlx::query("UPDATE quota_state SET generation = generation + 1 WHERE id = 1").execute(&mut **tx).await?;
    Ok(())
}

/// Locks a quota's row: (usage, limit), `None` if there is no such quota.
async fn lock(tx: &mut Tx<'_>, quota: &str) -> Result<Option<(i64, i64)>> {
    let row = sqlx::query(
        "UPDATE quotas SET usage_bytes = usage_bytes WHERE pattern = $1 RETURNING usage_bytes, limit_bytes",
    )
    .bind(quota)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?))).transpose()
}

async fn set_usage(tx: &mut Tx<'_>, quota: &str, usage: i64) -> Result<()> {
    sqlx::query("UPDATE quotas SET usage_bytes = $2 WHERE pattern = $1")
        .bind(quota)
        .bind(usage)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What `pattern` should count now: per digest referenced in a covered repository, its size and how many
/// references there are.
async fn census(tx: &mut Tx<'_>, pattern: &Pattern) -> Result<BTreeMap<String, (u64, i64)>> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM repositories ORDER BY name").fetch_all(&mut **tx).await?;
    let covered: Vec<String> = names.into_iter().filter(|n| pattern.matches_str(n)).collect();
    let mut out: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for chunk in covered.chunks(500) {
        let marks = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let blobs = format!(
            "SELECT rb.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
             WHERE rb.repository IN ({marks})"
        );
        let manifests =
            format!("SELECT digest, CAST(LENGTH(content) AS BIGINT) FROM manifests WHERE repository IN ({marks})");
        for sql in [blobs, manifests] {
            let mut q = sqlx::query(&sql);
            for name in chunk {
                q = q.bind(name);
            }
            for r in q.fetch_all(&mut **tx).await? {
                let e = out.entry(r.try_get(0)?).or_insert((0, 0));
                e.0 = e.0.max(r.try_get::<i64, _>(1)? as u64);
                e.1 += 1;
            }
        }
    }
    Ok(out)
}

/// Inserts members (digest, (size, refs)), 500 rows a statement.
async fn insert_members(tx: &mut Tx<'_>, quota: &str, members: &BTreeMap<String, (u64, i64)>) -> Result<()> {
    let rows: Vec<_> = members.iter().collect();
    for chunk in rows.chunks(500) {
        let values = (0..chunk.len())
            .map(|i| format!("($1, ${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO quota_members (quota, digest, size, refs) VALUES {values}");
        let mut q = sqlx::query(&sql).bind(quota);
        for (digest, (size, refs)) in chunk {
            q = q.bind(digest.as_str()).bind(*size as i64).bind(*refs);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
