//! Notation's `trustpolicy.json` (version 1.0): parsing, the specification's validation, and choosing the policy
//! statement for a repository.
//!
//! Scopes are fully qualified repositories (`registry.example/team/app`) or the global `*`. Wharf decides for a
//! repository of its own, whose host it does not always know, so a scope **matches** a repository when its path
//! after the first `/` equals the repository name. A caller that knows the host ([`TrustPolicyDocument::select`]
//! with `Some(host)`) matches the whole scope instead. As the specification says, an exact match wins over the
//! global policy, and a repository with neither has no policy (verification fails). Two statements whose scopes
//! name the same path on different hosts are ambiguous without a host: verification fails rather than guess.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::dn::{DistinguishedName, DnError};
use super::level::{Action, Level, LevelError, Validation};
use crate::name::RepositoryName;

/// A parsed and validated trust policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicyDocument {
    pub statements: Vec<TrustPolicy>,
}

/// One statement of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    pub name: String,
    /// `*`, or fully qualified repositories.
    pub scopes: Vec<String>,
    pub level: Level,
    /// `(type, name)`: `("ca", "acme")` from `ca:acme`.
    pub trust_stores: Vec<(StoreType, String)>,
    pub identities: Identities,
}

/// The named-store kinds of a trust store (`x509/<kind>/<name>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreType {
    Ca,
    SigningAuthority,
    Tsa,
}

impl StoreType {
    pub fn parse(s: &str) -> Option<StoreType> {
        match s {
            "ca" => Some(StoreType::Ca),
            "signingAuthority" => Some(StoreType::SigningAuthority),
            "tsa" => Some(StoreType::Tsa),
            _ => None,
        }
    }
}

/// Who may sign: anyone the trust stores vouch for, or these subjects (other identity kinds never match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identities {
    Any,
    Subjects(Vec<DistinguishedName>),
}

/// Why a trust policy document is refused (each variant a rule of the specification).
#[derive(Debug, thiserror::Error)]
pub enum TrustPolicyError {
    #[error("not a trust policy document: {0}")]
    Json(#[source] serde_json::Error),
    #[error("unsupported trust policy version {0:?} (1.0 is)")]
    Version(String),
    #[error("the document has no trust policy statements")]
    NoStatements,
    #[error("a trust policy statement has no name")]
    NoName,
    #[error("two trust policy statements are named {0:?}")]
    DuplicateName(String),
    #[error("statement {0:?} has no registry scopes")]
    NoScopes(String),
    #[error("statement {0:?} uses the global scope `*` with other scopes")]
    GlobalWithOthers(String),
    #[error("statement {policy:?}: {scope:?} is not a fully qualified repository (host/repository)")]
    Scope { policy: String, scope: String },
    #[error("registry scope {0:?} is in more than one statement")]
    DuplicateScope(String),
    #[error("statement {policy:?}: {source}")]
    Level {
        policy: String,
        #[source]
        source: LevelError,
    },
    #[error("statement {0:?} skips verification but names trust stores or identities")]
    SkipWithTrust(String),
    #[error("statement {0:?} must name trust stores and trusted identities")]
    MissingTrust(String),
    #[error("statement {policy:?}: trust store {value:?} is not TYPE:NAME with TYPE ca, signingAuthority or tsa")]
    TrustStore { policy: String, value: String },
    #[error("statement {0:?} uses the wildcard identity `*` with other identities")]
    WildcardWithOthers(String),
    #[error("statement {policy:?}: trusted identity {identity:?}: {source}")]
    Identity {
        policy: String,
        identity: String,
        #[source]
        source: DnError,
    },
    #[error("statement {policy:?}: trusted identities {first:?} and {second:?} overlap")]
    Overlapping { policy: String, first: String, second: String },
}

/// Why no statement applies to a repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no trust policy statement applies to {0}")]
    NoPolicy(String),
    #[error("statements {first:?} and {second:?} both name {repository} (on different hosts)")]
    Ambiguous { repository: String, first: String, second: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    version: String,
    #[serde(default)]
    trust_policies: Vec<RawStatement>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStatement {
    #[serde(default)]
    name: String,
    #[serde(default)]
    registry_scopes: Vec<String>,
    signature_verification: RawVerification,
    #[serde(default)]
    trust_stores: Vec<String>,
    #[serde(default)]
    trusted_identities: Vec<String>,
}

#[derive(Deserialize)]
struct RawVerification {
    level: String,
    #[serde(default)]
    #[serde(rename = "override")]
    overrides: BTreeMap<String, String>,
}

impl TrustPolicyDocument {
    /// Parses and validates a `trustpolicy.json` as the specification's rules (and Notation's checks) say.
    pub fn parse(bytes: &[u8]) -> Result<TrustPolicyDocument, TrustPolicyError> {
        let raw: RawDocument = serde_json::from_slice(bytes).map_err(TrustPolicyError::Json)?;
        if raw.version != "1.0" {
            return Err(TrustPolicyError::Version(raw.version));
        }
        if raw.trust_policies.is_empty() {
            return Err(TrustPolicyError::NoStatements);
        }
        let (mut names, mut scopes) = (BTreeSet::new(), BTreeSet::new());
        let mut statements = vec![];
        for s in raw.trust_policies {
            let statement = statement(s)?;
            if !names.insert(statement.name.clone()) {
                return Err(TrustPolicyError::DuplicateName(statement.name));
            }
            for scope in &statement.scopes {
                if !scopes.insert(scope.clone()) {
                    return Err(TrustPolicyError::DuplicateScope(scope.clone()));
                }
            }
            statements.push(statement);
        }
        Ok(TrustPolicyDocument { statements })
    }

    /// The statement for `repository`: one whose scope names it (with `host`, exactly `host/repository`; without,
    /// any host), else the global one.
    pub fn select(&self, host: Option<&str>, repository: &RepositoryName) -> Result<&TrustPolicy, SelectError> {
        let names = |scope: &str| match host {
            Some(h) => scope.strip_prefix(h).and_then(|r| r.strip_prefix('/')) == Some(repository.as_str()),
            None => scope.split_once('/').is_some_and(|(_, path)| path == repository.as_str()),
        };
        let mut exact = self.statements.iter().filter(|s| s.scopes.iter().any(|sc| names(sc)));
        if let Some(first) = exact.next() {
            if let Some(second) = exact.next() {
                return Err(SelectError::Ambiguous {
                    repository: repository.to_string(),
                    first: first.name.clone(),
                    second: second.name.clone(),
                });
            }
            return Ok(first);
        }
        self.statements
            .iter()
            .find(|s| s.scopes.iter().any(|sc| sc == "*"))
            .ok_or_else(|| SelectError::NoPolicy(repository.to_string()))
    }
}

impl TrustPolicy {
    /// What this statement does on a failed validation.
    pub fn action(&self, v: Validation) -> Action {
        self.level.action(v)
    }
}

fn statement(s: RawStatement) -> Result<TrustPolicy, TrustPolicyError> {
    let policy = s.name.clone();
    if policy.is_empty() {
        return Err(TrustPolicyError::NoName);
    }
    let level = Level::new(&s.signature_verification.level, &s.signature_verification.overrides)
        .map_err(|source| TrustPolicyError::Level { policy: policy.clone(), source })?;
    if s.registry_scopes.is_empty() {
        return Err(TrustPolicyError::NoScopes(policy));
    }
    if s.registry_scopes.len() > 1 && s.registry_scopes.iter().any(|sc| sc == "*") {
        return Err(TrustPolicyError::GlobalWithOthers(policy));
    }
    for scope in s.registry_scopes.iter().filter(|sc| *sc != "*") {
        if !valid_scope(scope) {
            return Err(TrustPolicyError::Scope { policy, scope: scope.clone() });
        }
    }
    if level.is_skip() {
        if !s.trust_stores.is_empty() || !s.trusted_identities.is_empty() {
            return Err(TrustPolicyError::SkipWithTrust(policy));
        }
        let scopes = s.registry_scopes;
        return Ok(TrustPolicy { name: s.name, scopes, level, trust_stores: vec![], identities: Identities::Any });
    }
    if s.trust_stores.is_empty() || s.trusted_identities.is_empty() {
        return Err(TrustPolicyError::MissingTrust(policy));
    }
    let mut trust_stores = vec![];
    for value in &s.trust_stores {
        let parsed = value.split_once(':').and_then(|(t, n)| Some((StoreType::parse(t)?, n)));
        match parsed {
            Some((t, n)) if valid_store_name(n) => trust_stores.push((t, n.to_string())),
            _ => return Err(TrustPolicyError::TrustStore { policy, value: value.clone() }),
        }
    }
    let identities = identities(&policy, &s.trusted_identities)?;
    Ok(TrustPolicy { name: s.name, scopes: s.registry_scopes, level, trust_stores, identities })
}

fn identities(policy: &str, values: &[String]) -> Result<Identities, TrustPolicyError> {
    if values.iter().any(|v| v == "*") {
        if values.len() > 1 {
            return Err(TrustPolicyError::WildcardWithOthers(policy.to_string()));
        }
        return Ok(Identities::Any);
    }
    let mut subjects: Vec<(&String, DistinguishedName)> = vec![];
    for identity in values {
        let err = |source| TrustPolicyError::Identity { policy: policy.into(), identity: identity.clone(), source };
        let Some((prefix, value)) = identity.split_once(':') else {
            return Err(err(DnError::Syntax(identity.clone())));
        };
        // Other identity kinds belong to plugins: valid in the document, never matched here.
        if prefix.trim() != "x509.subject" {
            continue;
        }
        let dn = DistinguishedName::parse_identity(value).map_err(err)?;
        if let Some((other, _)) = subjects.iter().find(|(_, d)| d.is_subset_of(&dn) || dn.is_subset_of(d)) {
            let (first, second) = ((*other).clone(), identity.clone());
            return Err(TrustPolicyError::Overlapping { policy: policy.into(), first, second });
        }
        subjects.push((identity, dn));
    }
    Ok(Identities::Subjects(subjects.into_iter().map(|(_, d)| d).collect()))
}

/// `host[:port]/repository`, the host as a DNS name, the repository as the distribution specification's.
fn valid_scope(scope: &str) -> bool {
    let Some((host, repo)) = scope.split_once('/') else { return false };
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    name.split('.').all(label_ok) && port_ok && repo.parse::<RepositoryName>().is_ok()
}

/// Named store names: `[a-zA-Z0-9_.-]+` (Notation's rule, which also keeps them single path components).
fn valid_store_name(n: &str) -> bool {
    !n.is_empty() && n != "." && n != ".." && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests;
