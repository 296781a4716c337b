//! The administration pages' reads: accounts (never their secret hashes), their grants, the audit log and quotas,
//! each a page of a bounded number of rows in one or two statements, paged by key (the name, the pattern, the
//! audit id), so that a later page costs what the first does.

use sqlx::Row;

use super::Ui;
use crate::meta::{AccountKind, AuditQuery, AuditRow, GrantRow, QuotaRow};
use crate::{Error, Result, UnixTime};

/// An account as the administration pages show it: no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub name: String,
    pub kind: AccountKind,
    pub expires_at: Option<UnixTime>,
    pub created_at: UnixTime,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    /// The rows with their ids.
    pub rows: Vec<(i64, AuditRow)>,
    /// Whether older rows match too (the next page starts before the last id here).
    pub more: bool,
}

/// The grants of anonymous callers are kept under this name (no account row).
const ANONYMOUS: &str = "anonymous";

impl Ui<'_> {
    /// Accounts named after `after`, by name, at most `limit`, and whether more follow.
    pub async fn accounts(&self, after: Option<&str>, limit: u32) -> Result<(Vec<AccountSummary>, bool)> {
        let rows = sqlx::query(
            "SELECT name, kind, expires_at, created_at FROM accounts WHERE name > $1 ORDER BY name LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.0.reader())
        .await?;
        let more = rows.len() > limit as usize;
        let list = rows
            .iter()
            .take(limit as usize)
            .map(|r| {
                let kind = match r.try_get::<String, _>(1)?.as_str() {
                    "user" => AccountKind::User,
                    "robot" => AccountKind::Robot,
                    other => return Err(Error::Corrupt(format!("account kind {other:?}"))),
                };
                Ok(AccountSummary { name: r.try_get(0)?, kind, expires_at: r.try_get(2)?, created_at: r.try_get(3)? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((list, more))
    }

    /// The grants of the accounts named `first` to `last` (inclusive: one page of [`Ui::accounts`]) and of
    /// anonymous callers, by account and pattern, at most `limit`, and whether more follow.
    pub async fn grants_of(&self, first: &str, last: &str, limit: u32) -> Result<(Vec<GrantRow>, bool)> {
        let rows = sqlx::query(
            "SELECT account, pattern, actions FROM grants WHERE (account >= $1 AND account <= $2) OR account = $3 \
             ORDER BY account, pattern LIMIT $4",
        )
        .bind(first)
        .bind(last)
        .bind(ANONYMOUS)
        .bind(i64::from(limit) + 1)
        .fetch_all(self.0.reader())
        .await?;
        let more = rows.len() > limit as usize;
        let list = rows
            .iter()
            .take(limit as usize)
            .map(|r| Ok(GrantRow { account: r.try_get(0)?, pattern: r.try_get(1)?, actions: r.try_get(2)? }))
            .collect::<Result<Vec<_>>>()?;
        Ok((list, more))
    }

    /// The audit rows `q` selects (at most `q.limit`) with ids below `before`, newest first, and whether older
    /// ones match too: [`crate::meta::Audit::query`], asked for one row more.
    pub async fn audit(&self, q: &AuditQuery, before: Option<i64>) -> Result<AuditPage> {
        let probe = AuditQuery { before, limit: q.limit.saturating_add(1), ..q.clone() };
        let mut rows = self.0.audit().query(&probe).await?;
        let more = rows.len() > q.limit as usize;
        rows.truncate(q.limit as usize);
        Ok(AuditPage { rows, more })
    }

    /// Quotas on patterns after `after`, by pattern, at most `limit`, and whether more follow.
    pub async fn quotas(&self, after: Option<&str>, limit: u32) -> Result<(Vec<QuotaRow>, bool)> {
        let rows = sqlx::query(
            "SELECT pattern, limit_bytes, usage_bytes FROM quotas WHERE pattern > $1 ORDER BY pattern LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.0.reader())
        .await?;
        let more = rows.len() > limit as usize;
        let list = rows
            .iter()
            .take(limit as usize)
            .map(|r| {
                let bytes = |i: usize| -> Result<u64> {
                    let v: i64 = r.try_get(i)?;
                    u64::try_from(v).map_err(|_| Error::Corrupt(format!("quota bytes {v}")))
                };
                Ok(QuotaRow { pattern: r.try_get(0)?, limit: bytes(1)?, usage: bytes(2)? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((list, more))
    }
}
