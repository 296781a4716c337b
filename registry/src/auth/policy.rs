//! The in-memory view of accounts and grants, rebuilt from SQL whenever their generation changes.

use std::collections::HashMap;

use wharf_storage::{AccountKind, AccountRow, GrantRow, UnixTime};

use super::scope::{Actions, Pattern};

/// The principal name grants use for callers without credentials.
pub const ANONYMOUS: &str = "anonymous";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    Account(String),
    /// The subject of a token from a configured external issuer: its rights are the token's claims only.
    External(String),
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => ANONYMOUS,
            Principal::Account(n) | Principal::External(n) => n,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub kind: AccountKind,
    pub secret_hash: String,
    pub expires_at: Option<UnixTime>,
}

#[derive(Debug, Default)]
pub struct Policy {
    pub generation: i64,
    accounts: HashMap<String, Account>,
    grants: HashMap<String, Vec<(Pattern, Actions)>>,
}

impl Policy {
    /// Builds the view; a stored grant that no longer parses grants nothing (and is reported).
    pub fn build(generation: i64, accounts: Vec<AccountRow>, grants: Vec<GrantRow>) -> (Policy, Vec<String>) {
        let mut problems = Vec::new();
        let mut p = Policy { generation, ..Policy::default() };
        for a in accounts {
            p.accounts.insert(a.name, Account { kind: a.kind, secret_hash: a.secret_hash, expires_at: a.expires_at });
        }
        for g in grants {
            match (Pattern::parse(&g.pattern), Actions::parse_grant(&g.actions)) {
                (Ok(pat), Ok(act)) => p.grants.entry(g.account).or_default().push((pat, act)),
                (Err(e), _) | (_, Err(e)) => problems.push(format!("grant to {}: {e}", g.account)),
            }
        }
        (p, problems)
    }

    /// The account if it exists and has not expired at `now`.
    pub fn active(&self, name: &str, now: UnixTime) -> Option<&Account> {
        self.accounts.get(name).filter(|a| a.expires_at.is_none_or(|t| now < t))
    }

    /// The account, expired or not.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    pub fn has_accounts(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// The patterns of the grants that let `who` pull: a repository is pullable if and only if one of them matches
    /// it (the grants `actions` unites).
    pub fn pull_patterns(&self, who: &Principal) -> Vec<&Pattern> {
        let of = |name: &str| {
            let grants = self.grants.get(name).map_or(&[][..], Vec::as_slice);
            grants.iter().filter(|(_, a)| a.contains(Actions::PULL)).map(|(p, _)| p).collect::<Vec<_>>()
        };
        match who {
            Principal::Anonymous => of(ANONYMOUS),
            Principal::Account(n) => [of(n), of(ANONYMOUS)].concat(),
            Principal::External(_) => Vec::new(),
        }
    }

    /// Whether `who` (an account) holds a grant of every action on `**`.
    pub fn administers_all(&self, who: &Principal) -> bool {
        let Principal::Account(n) = who else { return false };
        self.grants.get(n).is_some_and(|gs| gs.iter().any(|(p, a)| p.as_str() == "**" && a.contains(Actions::ALL)))
    }

    /// What `who` may do on `repo`: its own grants plus those of anonymous callers (public repositories).
    pub fn actions(&self, who: &Principal, repo: &str) -> Actions {
        let of = |name: &str| {
            self.grants.get(name).map_or(Actions::NONE, |gs| {
                gs.iter().filter(|(p, _)| p.matches(repo)).fold(Actions::NONE, |acc, (_, a)| acc.union(*a))
            })
        };
        match who {
            Principal::Anonymous => of(ANONYMOUS),
            Principal::Account(n) => of(n).union(of(ANONYMOUS)),
            Principal::External(_) => Actions::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(account: &str, pattern: &str, actions: &str) -> GrantRow {
        GrantRow { account: account.into(), pattern: pattern.into(), actions: actions.into() }
    }

    #[test]
    fn decisions() {
        let acct = |n: &str, exp| AccountRow {
            name: n.into(),
            kind: AccountKind::User,
            secret_hash: String::new(),
            expires_at: exp,
            created_at: 0,
        };
        let (p, problems) = Policy::build(
            1,
            vec![acct("w", None), acct("old", Some(100))],
            vec![
                g("w", "team/*", "push"),
                g("w", "team/app", "delete"),
                g(ANONYMOUS, "pub/**", "pull"),
                g("x", "A", "pull"),
            ],
        );
        assert_eq!(problems.len(), 1);
        let w = Principal::Account("w".into());
        assert_eq!(p.actions(&w, "team/app"), Actions::PULL.union(Actions::PUSH).union(Actions::DELETE));
        assert_eq!(p.actions(&w, "team/app/sub"), Actions::NONE);
        assert_eq!(p.actions(&w, "pub/y"), Actions::PULL);
        assert_eq!(p.actions(&Principal::Anonymous, "pub/y"), Actions::PULL);
        assert_eq!(p.actions(&Principal::Anonymous, "team/app"), Actions::NONE);
        assert!(p.active("old", 99).is_some());
        assert!(p.active("old", 100).is_none());
        assert!(p.active("nobody", 0).is_none());
    }
}
