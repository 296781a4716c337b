//! `wharf admin`: accounts, robots and grants, written straight to the metadata database (the data directory's
//! SQLite file, or the configured database URL). Running servers pick changes up within a second.

use wharf_storage::{AccountKind, AccountRow, Change, GrantRow, Journal, Metadata, Origin, Recorder, UnixTime};

use crate::auth::credentials::hash_secret;
use crate::auth::policy::ANONYMOUS;
use crate::auth::random_secret;
use crate::auth::scope::{Actions, Pattern};

/// The prefix of robot account names (`robot$ci`), as Harbor spells it.
pub const ROBOT_PREFIX: &str = "robot$";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("no account {0:?}")]
    NoAccount(String),
    #[error(transparent)]
    Storage(#[from] wharf_storage::Error),
}

/// Checks a user name or a robot's short name: `[a-z0-9][a-z0-9._-]{0,63}`, not `anonymous`.
pub fn check_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok || name == ANONYMOUS {
        return Err(AdminError::Invalid(format!(
            "{name:?}: account names are 1 to 64 of [a-z0-9._-], starting with a letter or digit, and not {ANONYMOUS:?}"
        )));
    }
    Ok(())
}

/// What an operator's change records: its audit row, with `admin` as the actor.
fn journal(rec: &dyn Recorder, change: Change, now: UnixTime) -> Journal {
    rec.journal(&Origin::system("admin"), &change, now)
}

fn account(action: &str, name: &str, kind: AccountKind) -> Change {
    Change::Account { action: action.into(), account: name.into(), kind: kind_name(kind).into() }
}

fn kind_name(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::User => "user",
        AccountKind::Robot => "robot",
    }
}

fn hash(secret: &str) -> Result<String, AdminError> {
    hash_secret(secret).map_err(AdminError::Invalid)
}

pub async fn user_add(
    meta: &Metadata,
    rec: &dyn Recorder,
    name: &str,
    password: &str,
    now: UnixTime,
) -> Result<(), AdminError> {
    check_name(name)?;
    if password.len() < 8 {
        return Err(AdminError::Invalid("passwords have at least 8 characters".into()));
    }
    let row = AccountRow {
        name: name.into(),
        kind: AccountKind::User,
        secret_hash: hash(password)?,
        expires_at: None,
        created_at: now,
    };
    meta.accounts().add_recorded(&row, &journal(rec, account("add", name, AccountKind::User), now)).await?;
    Ok(())
}

pub async fn passwd(
    meta: &Metadata,
    rec: &dyn Recorder,
    name: &str,
    password: &str,
    now: UnixTime,
) -> Result<(), AdminError> {
    if password.len() < 8 {
        return Err(AdminError::Invalid("passwords have at least 8 characters".into()));
    }
    let kind = kind_of(meta, name).await?;
    let journal = journal(rec, account("secret", name, kind), now);
    if !meta.accounts().set_secret_recorded(name, &hash(password)?, &journal).await? {
        return Err(AdminError::NoAccount(name.into()));
    }
    Ok(())
}

/// The kind of account `name` (a user if there is none: the write then finds nothing and records nothing).
async fn kind_of(meta: &Metadata, name: &str) -> Result<AccountKind, AdminError> {
    Ok(meta.accounts().list().await?.into_iter().find(|a| a.name == name).map_or(AccountKind::User, |a| a.kind))
}

pub async fn remove(meta: &Metadata, rec: &dyn Recorder, name: &str, now: UnixTime) -> Result<(), AdminError> {
    let journal = journal(rec, account("remove", name, kind_of(meta, name).await?), now);
    if !meta.accounts().remove_recorded(name, &journal).await? {
        return Err(AdminError::NoAccount(name.into()));
    }
    Ok(())
}

/// Creates a robot and returns its full name and secret (shown once, never stored in the clear).
pub async fn robot_create(
    meta: &Metadata,
    rec: &dyn Recorder,
    short: &str,
    expires_at: Option<UnixTime>,
    grants: &[(String, String)],
    now: UnixTime,
) -> Result<(String, String), AdminError> {
    check_name(short)?;
    let name = format!("{ROBOT_PREFIX}{short}");
    for (p, a) in grants {
        check_grant(p, a)?;
    }
    let secret = random_secret();
    let row = AccountRow {
        name: name.clone(),
        kind: AccountKind::Robot,
        secret_hash: hash(&secret)?,
        expires_at,
        created_at: now,
    };
    meta.accounts().add_recorded(&row, &journal(rec, account("add", &name, AccountKind::Robot), now)).await?;
    for (p, a) in grants {
        let g = GrantRow { account: name.clone(), pattern: p.clone(), actions: a.clone() };
        meta.accounts().grant_recorded(&g, now, &journal(rec, grant_change("grant", &g), now)).await?;
    }
    Ok((name, secret))
}

fn grant_change(action: &str, g: &GrantRow) -> Change {
    Change::Grant {
        action: action.into(),
        account: g.account.clone(),
        pattern: g.pattern.clone(),
        actions: g.actions.clone(),
    }
}

fn check_grant(pattern: &str, actions: &str) -> Result<Actions, AdminError> {
    Pattern::parse(pattern).map_err(AdminError::Invalid)?;
    Actions::parse_grant(actions).map_err(AdminError::Invalid)
}

/// Gives `account` (or `anonymous`) `actions` on `pattern`.
pub async fn grant(
    meta: &Metadata,
    rec: &dyn Recorder,
    account: &str,
    pattern: &str,
    actions: &str,
    now: UnixTime,
) -> Result<(), AdminError> {
    check_grant(pattern, actions)?;
    if account != ANONYMOUS && !meta.accounts().list().await?.iter().any(|a| a.name == account) {
        return Err(AdminError::NoAccount(account.into()));
    }
    let normal: Vec<&str> = actions.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    let g = GrantRow { account: account.into(), pattern: pattern.into(), actions: normal.join(",") };
    meta.accounts().grant_recorded(&g, now, &journal(rec, grant_change("grant", &g), now)).await?;
    Ok(())
}

pub async fn revoke(
    meta: &Metadata,
    rec: &dyn Recorder,
    account: &str,
    pattern: &str,
    now: UnixTime,
) -> Result<(), AdminError> {
    let g = GrantRow { account: account.into(), pattern: pattern.into(), actions: String::new() };
    if !meta.accounts().revoke_recorded(account, pattern, &journal(rec, grant_change("revoke", &g), now)).await? {
        return Err(AdminError::Invalid(format!("{account} has no grant on {pattern}")));
    }
    Ok(())
}

/// Accounts of one kind with their grants, as JSON (for `list --json`) and as text lines.
pub async fn list(meta: &Metadata, kind: AccountKind) -> Result<serde_json::Value, AdminError> {
    let grants = meta.accounts().grants().await?;
    let rows: Vec<serde_json::Value> = meta
        .accounts()
        .list()
        .await?
        .into_iter()
        .filter(|a| a.kind == kind)
        .map(|a| {
            let g: Vec<serde_json::Value> = grants
                .iter()
                .filter(|g| g.account == a.name)
                .map(|g| serde_json::json!({ "pattern": g.pattern, "actions": g.actions }))
                .collect();
            serde_json::json!({ "name": a.name, "created_at": a.created_at, "expires_at": a.expires_at, "grants": g })
        })
        .collect();
    Ok(serde_json::Value::Array(rows))
}

/// Parses `30d`, `12h`, `45m`, `90s`, `2w` (or plain seconds): see [`crate::config::parse_duration`].
pub fn parse_duration(s: &str) -> Result<i64, AdminError> {
    crate::config::parse_duration(s).map_err(AdminError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("ci-bot.2").is_ok());
        for bad in ["", "Alice", "-a", "a b", "anonymous", "robot$x", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("1w").unwrap(), 604_800);
        assert!(parse_duration("h").is_err());
    }
}
