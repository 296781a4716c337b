//! Verification levels: what each validation's failure does under `strict`, `permissive`, `audit` and `skip`, and
//! the `override` map of a custom level, as the trust policy specification's table defines (and Notation applies:
//! `permissive` logs the authentic timestamp, expiry and revocation checks; `audit` enforces integrity only).

use std::collections::BTreeMap;
use std::fmt;

/// The validations of the specification's signature verification, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Validation {
    /// The envelope parses, its signature verifies with the signing certificate's key, and it signs this artifact.
    Integrity,
    /// The certificate chain is well formed, leads to a trusted root, and the signer is a trusted identity.
    Authenticity,
    /// Every certificate of the chain is valid at the signing time the verifier can trust (here: now).
    AuthenticTimestamp,
    /// The signer's "best by" time (`io.cncf.notary.expiry`) has not passed.
    Expiry,
    /// No certificate of the chain is revoked.
    Revocation,
}

impl Validation {
    const ALL: [Validation; 5] = [
        Validation::Integrity,
        Validation::Authenticity,
        Validation::AuthenticTimestamp,
        Validation::Expiry,
        Validation::Revocation,
    ];

    /// The key of this validation in an `override` map.
    pub fn key(self) -> &'static str {
        match self {
            Validation::Integrity => "integrity",
            Validation::Authenticity => "authenticity",
            Validation::AuthenticTimestamp => "authenticTimestamp",
            Validation::Expiry => "expiry",
            Validation::Revocation => "revocation",
        }
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What a failed validation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Verification fails.
    Enforce,
    /// The failure is reported with the result; verification goes on.
    Log,
    /// The validation does not run.
    Skip,
}

/// A level with its overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// `strict`, `permissive`, `audit` or `skip`, as written.
    pub name: String,
    actions: [Action; 5],
}

/// Why a `signatureVerification` object is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("unknown verification level {0:?} (strict, permissive, audit or skip)")]
    Unknown(String),
    #[error("the skip level cannot be customized")]
    SkipOverridden,
    #[error("unknown validation {0:?} in override")]
    UnknownValidation(String),
    #[error("unknown action {0:?} in override (enforce, log or skip)")]
    UnknownAction(String),
    #[error("integrity cannot be overridden")]
    Integrity,
    #[error("only revocation can be skipped, not {0}")]
    Skip(&'static str),
}

impl Level {
    pub fn new(name: &str, overrides: &BTreeMap<String, String>) -> Result<Level, LevelError> {
        use Action::{Enforce as E, Log as L, Skip as S};
        let mut actions = match name {
            "strict" => [E, E, E, E, E],
            "permissive" => [E, E, L, L, L],
            "audit" => [E, L, L, L, L],
            "skip" => [S, S, S, S, S],
            other => return Err(LevelError::Unknown(other.to_string())),
        };
        if name == "skip" && !overrides.is_empty() {
            return Err(LevelError::SkipOverridden);
        }
        for (key, value) in overrides {
            let i = Validation::ALL
                .iter()
                .position(|v| v.key() == key)
                .ok_or_else(|| LevelError::UnknownValidation(key.clone()))?;
            let action = match value.as_str() {
                "enforce" => E,
                "log" => L,
                "skip" => S,
                other => return Err(LevelError::UnknownAction(other.to_string())),
            };
            let v = Validation::ALL[i];
            if v == Validation::Integrity {
                return Err(LevelError::Integrity);
            }
            if action == S && v != Validation::Revocation {
                return Err(LevelError::Skip(v.key()));
            }
            actions[i] = action;
        }
        Ok(Level { name: name.to_string(), actions })
    }

    pub fn action(&self, v: Validation) -> Action {
        // `actions` is indexed in the declaration order of `Validation`, which `ALL` lists.
        self.actions[v as usize]
    }

    /// `skip`: no signature is fetched or verified; every artifact passes.
    pub fn is_skip(&self) -> bool {
        self.actions[0] == Action::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Enforce as E, Log as L, Skip as S};

    fn check(name: &str, overrides: &[(&str, &str)], expect: Result<[Action; 5], LevelError>) {
        let map = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let got = Level::new(name, &map).map(|l| Validation::ALL.map(|v| l.action(v)));
        assert_eq!(got, expect, "{name} {overrides:?}");
    }

    #[test]
    fn the_specifications_table() {
        check("strict", &[], Ok([E, E, E, E, E]));
        check("permissive", &[], Ok([E, E, L, L, L]));
        check("audit", &[], Ok([E, L, L, L, L]));
        check("skip", &[], Ok([S, S, S, S, S]));
        check("lenient", &[], Err(LevelError::Unknown("lenient".into())));
    }

    #[test]
    fn overrides() {
        check("strict", &[("expiry", "log"), ("revocation", "skip")], Ok([E, E, E, L, S]));
        check("audit", &[("authenticity", "enforce")], Ok([E, E, L, L, L]));
        check("strict", &[("integrity", "log")], Err(LevelError::Integrity));
        check("strict", &[("expiry", "skip")], Err(LevelError::Skip("expiry")));
        check("strict", &[("freshness", "log")], Err(LevelError::UnknownValidation("freshness".into())));
        check("strict", &[("expiry", "warn")], Err(LevelError::UnknownAction("warn".into())));
        check("skip", &[("expiry", "log")], Err(LevelError::SkipOverridden));
    }
}
