//! Accounts and grants in SQL. Storage keeps rows; what a row means (hashing, pattern matching, decisions) lives in
//! the registry's `auth` module. Every write bumps the `auth.generation` counter in its transaction.

use sqlx::Row;

use crate::meta::journal::{self, Journal};
use crate::{Error, Metadata, Result, UnixTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    User,
    Robot,
}

impl AccountKind {
    fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "user",
            AccountKind::Robot => "robot",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccountRow {
    pub name: String,
    pub kind: AccountKind,
    /// An Argon2id PHC string.
    pub secret_hash: String,
    pub expires_at: Option<UnixTime>,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub account: String,
    pub pattern: String,
    /// Comma-separated action names.
    pub actions: String,
}

const GENERATION: &str = "auth.generation";

async fn bump(tx: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::query(
        "INSERT INTO counters (name, value) VALUES ($1, 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
    )
    .bind(GENERATION)
    .execute(tx)
    .await?;
    Ok(())
}

fn account_row(r: &sqlx::any::AnyRow) -> Result<AccountRow> {
    let kind: String = r.try_get("kind")?;
    let kind = match kind.as_str() {
        "user" => AccountKind::User,
        "robot" => AccountKind::Robot,
        other => return Err(Error::Corrupt(format!("account kind {other:?}"))),
    };
    Ok(AccountRow {
        name: r.try_get("name")?,
        kind,
        secret_hash: r.try_get("secret_hash")?,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Accounts and grants: [`Metadata::accounts`].
#[derive(Clone, Copy, Debug)]
pub struct Accounts<'a>(pub(super) &'a Metadata);

impl Accounts<'_> {
    /// A counter that changes with every account or grant change.
    pub async fn generation(&self) -> Result<i64> {
        let row = sqlx::query("SELECT value FROM counters WHERE name = $1")
            .bind(GENERATION)
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.unwrap_or(0))
    }

    /// Adds an account; `Conflict` if the name is taken.
    pub async fn add(&self, a: &AccountRow) -> Result<()> {
        self.add_recorded(a, &Journal::default()).await
    }

    /// [`Accounts::add`], writing `journal` in the same transaction.
    pub async fn add_recorded(&self, a: &AccountRow, journal: &Journal) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query(
            "INSERT INTO accounts (name, kind, secret_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&a.name)
        .bind(a.kind.as_str())
        .bind(&a.secret_hash)
        .bind(a.expires_at)
        .bind(a.created_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::Conflict(format!("account {} exists", a.name)));
        }
        bump(&mut tx).await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds `a` with `grants` only if there is no account yet (the first administrator); false if there was one.
    pub async fn add_first(&self, a: &AccountRow, grants: &[GrantRow], now: UnixTime) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM accounts").fetch_one(&mut *tx).await?.try_get(0)?;
        if n > 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO accounts (name, kind, secret_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&a.name)
        .bind(a.kind.as_str())
        .bind(&a.secret_hash)
        .bind(a.expires_at)
        .bind(a.created_at)
        .execute(&mut *tx)
        .await?;
        for g in grants {
            upsert_grant(&mut tx, g, now).await?;
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes an account and its grants; false if there was none.
    pub async fn remove(&self, name: &str) -> Result<bool> {
        self.remove_recorded(name, &Journal::default()).await
    }

    /// [`Accounts::remove`], writing `journal` in the same transaction if there was such an account.
    pub async fn remove_recorded(&self, name: &str, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query("DELETE FROM accounts WHERE name = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM grants WHERE account = $1").bind(name).execute(&mut *tx).await?;
        bump(&mut tx).await?;
        if done.rows_affected() > 0 {
            journal::write(&mut tx, journal).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces an account's secret hash; false if there is no such account.
    pub async fn set_secret(&self, name: &str, secret_hash: &str) -> Result<bool> {
        self.set_secret_recorded(name, secret_hash, &Journal::default()).await
    }

    /// [`Accounts::set_secret`], writing `journal` in the same transaction if there was such an account.
    pub async fn set_secret_recorded(&self, name: &str, secret_hash: &str, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query("UPDATE accounts SET secret_hash = $1 WHERE name = $2")
            .bind(secret_hash)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx).await?;
        if done.rows_affected() > 0 {
            journal::write(&mut tx, journal).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn list(&self) -> Result<Vec<AccountRow>> {
        let rows = sqlx::query("SELECT name, kind, secret_hash, expires_at, created_at FROM accounts ORDER BY name")
            .fetch_all(self.0.reader())
            .await?;
        rows.iter().map(account_row).collect()
    }

    /// Sets the actions `account` has on `pattern` (replacing earlier ones on the same pattern).
    pub async fn grant(&self, g: &GrantRow, now: UnixTime) -> Result<()> {
        self.grant_recorded(g, now, &Journal::default()).await
    }

    /// [`Accounts::grant`], writing `journal` in the same transaction.
    pub async fn grant_recorded(&self, g: &GrantRow, now: UnixTime, journal: &Journal) -> Result<()> {
        let mut tx = self.0.writer().begin().await?;
        upsert_grant(&mut tx, g, now).await?;
        bump(&mut tx).await?;
        journal::write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes what `account` has on `pattern`; false if it had nothing there.
    pub async fn revoke(&self, account: &str, pattern: &str) -> Result<bool> {
        self.revoke_recorded(account, pattern, &Journal::default()).await
    }

    /// [`Accounts::revoke`], writing `journal` in the same transaction if there was such a grant.
    pub async fn revoke_recorded(&self, account: &str, pattern: &str, journal: &Journal) -> Result<bool> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query("DELETE FROM grants WHERE account = $1 AND pattern = $2")
            .bind(account)
            .bind(pattern)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx).await?;
        if done.rows_affected() > 0 {
            journal::write(&mut tx, journal).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn grants(&self) -> Result<Vec<GrantRow>> {
        let rows = sqlx::query("SELECT account, pattern, actions FROM grants ORDER BY account, pattern")
            .fetch_all(self.0.reader())
            .await?;
        rows.iter()
            .map(|r| Ok(GrantRow { account: r.try_get(0)?, pattern: r.try_get(1)?, actions: r.try_get(2)? }))
            .collect()
    }
}

async fn upsert_grant(tx: &mut sqlx::AnyConnection, g: &GrantRow, now: UnixTime) -> Result<()> {
    sqlx::query(
        "INSERT INTO grants (account, pattern, actions, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (account, pattern) DO UPDATE SET actions = excluded.actions",
    )
    .bind(&g.account)
    .bind(&g.pattern)
    .bind(&g.actions)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}
