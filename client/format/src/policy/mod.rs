//! One policy language for the registry, the verifying mirror and the client: rules map a repository pattern to a
//! requirement that a manifest must satisfy before it is served or used.
//!
//! The language is pure. A caller (the registry's gate, the mirror, `wharf pull`) asks the matching rule what it
//! [needs](Requirement::needs), gathers that [`Evidence`] (verified TUF and Notary v1 findings, candidate sigstore
//! and Notation signatures) with its own I/O, and [`evaluate`]s it. Signatures are verified here, by `sigstore` and
//! `notation`; TUF and Notary v1 findings arrive already verified (the caller ran the trust workflow), and are
//! compared here with the manifest's digest and the named roles and keys.
//!
//! In TOML (the server's `[[policy]]`; the client's policy file is the same, as TOML or JSON):
//!
//! ```toml
//! [[policy]]
//! repositories = ["team/*"]      # `team/app`, `team/*` (one component), `team/**` (any depth)
//! by_digest = false              # also enforce on GET/HEAD by digest
//! immutable_tags = false         # a tag, once pushed, never moves
//! require = { any_of = [
//!   { tuf = { roles = ["targets/releases"] } },
//!   { sigstore = { key = "/etc/wharf/cosign.pub" } },
//! ] }
//! ```

pub mod containers;
mod eval;
mod identity;
mod pattern;
#[cfg(test)]
mod tests;

pub use eval::{evaluate, Outcome, Verdict};
pub use identity::Identity;
pub use pattern::{Pattern, PatternError};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::name::{RepositoryName, Tag};

/// Rules in order; the first whose pattern matches a repository decides for it. A repository no rule matches has
/// no policy (the registry serves it as before; the client applies its default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default, rename = "policy")]
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The rule deciding for `repo`: the first that matches.
    pub fn rule_for(&self, repo: &RepositoryName) -> Option<&Rule> {
        self.rules.iter().find(|r| r.repositories.iter().any(|p| p.matches(repo)))
    }
}

/// A policy that cannot be applied as written (checked by [`Policy::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {rule:?}: no repository patterns")]
    NoPatterns { rule: String },
    #[error("policy {rule:?}: an empty {what} (it would accept nothing, or everything)")]
    EmptyList { rule: String, what: &'static str },
    #[error("policy {rule:?}: a sigstore requirement needs `key`, or `issuer` with `subject` or `subject_pattern` and `trusted_root`")]
    Sigstore { rule: String },
    #[error("policy {rule:?}: tuf `key_threshold` must be between 1 and the number of `keys`")]
    KeyThreshold { rule: String },
}

impl Policy {
    /// Refuses what would make a rule meaningless: no patterns, an empty `any_of`/`all_of`, a sigstore requirement
    /// naming neither a key nor a keyless identity, a TUF key threshold of 0 or above the keys named.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for rule in &self.rules {
            let name = rule.display_name();
            if rule.repositories.is_empty() {
                return Err(PolicyError::NoPatterns { rule: name });
            }
            let mut bad = None;
            rule.require.walk(&mut |r| {
                bad = bad.take().or_else(|| match r {
                    Requirement::AnyOf(v) if v.is_empty() => {
                        Some(PolicyError::EmptyList { rule: name.clone(), what: "any_of" })
                    }
                    Requirement::AllOf(v) if v.is_empty() => {
                        Some(PolicyError::EmptyList { rule: name.clone(), what: "all_of" })
                    }
                    Requirement::Sigstore(s)
                        if s.key.is_none()
                            && (s.issuer.is_none()
                                || s.trusted_root.is_none()
                                || (s.subject.is_none() && s.subject_pattern.is_none())) =>
                    {
                        Some(PolicyError::Sigstore { rule: name.clone() })
                    }
                    Requirement::Tuf(t) if t.key_threshold.is_some_and(|n| n == 0 || n as usize > t.keys.len()) => {
                        Some(PolicyError::KeyThreshold { rule: name.clone() })
                    }
                    _ => None,
                });
            });
            if let Some(e) = bad {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// One rule: which repositories, what they require, and how the registry protects their tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A name for messages (`DENIED: policy "releases" ...`); the first pattern if none.
    #[serde(default)]
    pub name: Option<String>,
    pub repositories: Vec<Pattern>,
    pub require: Requirement,
    /// Also enforce on reads by digest (by default only reads by tag are enforced).
    #[serde(default)]
    pub by_digest: bool,
    /// A tag, once it exists, cannot be pushed to another digest.
    #[serde(default)]
    pub immutable_tags: bool,
}

impl Rule {
    pub fn display_name(&self) -> String {
        match (&self.name, self.repositories.first()) {
            (Some(n), _) => n.clone(),
            (None, Some(p)) => p.to_string(),
            (None, None) => "(no pattern)".into(),
        }
    }
}

/// What a manifest must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Requirement {
    Accept,
    Reject,
    AnyOf(Vec<Requirement>),
    AllOf(Vec<Requirement>),
    Tuf(TufRequirement),
    NotaryV1(NotaryV1Requirement),
    Sigstore(SigstoreRequirement),
    Notation(NotationRequirement),
}

/// The tag is a TUF 1.0 target of the repository, found by the standard search, whose signing role is one of
/// `roles` (any, if empty) and whose metadata carries valid signatures from at least `key_threshold` of `keys`
/// (if any are named). The role's own threshold was already met when the metadata verified.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufRequirement {
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub key_threshold: Option<u32>,
    /// Path to a pinned `root.json` of the repository: where a verifying mirror starts the upstream's root chain
    /// (5.2). A registry verifying its own data does not need it.
    #[serde(default)]
    pub root: Option<String>,
}

/// The tag is signed in the repository's Notary v1 collection, by one of the named delegations (`targets/releases`)
/// or, if none are named, by any role docker's search order accepts (the repository's root's `targets` included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotaryV1Requirement {
    #[serde(default)]
    pub delegations: Vec<String>,
    /// Path to a pinned Notary v1 `root.json` of the collection: where a verifying mirror starts the upstream's
    /// root chain. A registry verifying its own collection does not need it.
    #[serde(default)]
    pub root: Option<String>,
}

/// A cosign / sigstore signature over the manifest digest: keyed (a PEM public key, ECDSA P-256 or ed25519), or
/// keyless (a Fulcio certificate whose identity matches, proven in Rekor, against a `trusted_root.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigstoreRequirement {
    /// Path to a PEM public key (keyed signatures).
    #[serde(default)]
    pub key: Option<String>,
    /// Keyless: the OIDC issuer the certificate must name.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Keyless: the exact subject (an e-mail or URI SAN).
    #[serde(default)]
    pub subject: Option<String>,
    /// Keyless: a regular-expression-free glob over the subject (`https://github.com/org/*`).
    #[serde(default)]
    pub subject_pattern: Option<String>,
    /// Keyless: path to the `trusted_root.json` (Fulcio CAs, Rekor keys, timestamp authorities).
    #[serde(default)]
    pub trusted_root: Option<String>,
    /// Which image the signed payload must name (containers' `signedIdentity`); none: any (cosign's own check is
    /// the digest, which `sigstore` always enforces).
    #[serde(default)]
    pub identity: Option<Identity>,
}

/// A Notation signature, judged by a trust policy in Notation's `trustpolicy.json` form against a trust store
/// directory (`x509/{ca,signingAuthority}/<name>/*.pem`, Notation's layout).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotationRequirement {
    pub trust_policy: String,
    pub trust_store: String,
}

/// What is being decided: a manifest of a repository, read or pushed by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub repository: RepositoryName,
    pub tag: Option<Tag>,
    pub digest: Digest,
    /// The registry host the subject was read from, when the caller knows it (the client): Notation scopes then
    /// match whole (`host/repository`). `None` at the registry and the mirror, which match scopes by path.
    pub host: Option<String>,
}

/// Which kinds of evidence a requirement can use; the caller gathers only these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub tuf: bool,
    pub notary_v1: bool,
    pub sigstore: bool,
    pub notation: bool,
}

impl Requirement {
    pub fn needs(&self) -> Needs {
        let mut n = Needs::default();
        self.add_needs(&mut n);
        n
    }

    /// The files this requirement names (keys, trusted roots, trust policies).
    pub fn paths(&self) -> Vec<&str> {
        let mut out = vec![];
        self.walk(&mut |r| match r {
            Requirement::Tuf(t) => out.extend(t.root.as_deref()),
            Requirement::NotaryV1(n) => out.extend(n.root.as_deref()),
            Requirement::Sigstore(s) => out.extend(s.key.iter().chain(&s.trusted_root).map(String::as_str)),
            Requirement::Notation(n) => out.push(n.trust_policy.as_str()),
            _ => {}
        });
        out
    }

    /// The Notation trust store directories this requirement names.
    pub fn trust_stores(&self) -> Vec<&str> {
        let mut out = vec![];
        self.walk(&mut |r| {
            if let Requirement::Notation(n) = r {
                out.push(n.trust_store.as_str())
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Requirement)) {
        f(self);
        if let Requirement::AnyOf(v) | Requirement::AllOf(v) = self {
            v.iter().for_each(|r| r.walk(f));
        }
    }

    fn add_needs(&self, n: &mut Needs) {
        match self {
            Requirement::Accept | Requirement::Reject => {}
            Requirement::AnyOf(v) | Requirement::AllOf(v) => v.iter().for_each(|r| r.add_needs(n)),
            Requirement::Tuf(_) => n.tuf = true,
            Requirement::NotaryV1(_) => n.notary_v1 = true,
            Requirement::Sigstore(_) => n.sigstore = true,
            Requirement::Notation(_) => n.notation = true,
        }
    }
}

/// A tag found, verified, in trust data: the digest it was signed for, the role that signed it, and the key IDs
/// whose signatures on that role's metadata verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTag {
    pub tag: String,
    pub digest: Digest,
    pub role: String,
    pub keys: Vec<String>,
}

/// What a trust workflow (TUF 1.0 or Notary v1) proved for the subject, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustFinding {
    /// The subject's tag (or, by digest, every tag signed for this digest) as the verified data signs it.
    Signed(Vec<SignedTag>),
    /// The repository has no trust data of this format.
    NoData,
    /// The trust data did not verify (expired, rolled back, bad signature...); the reason, for messages.
    Failed(String),
}

/// A sigstore signature found for the subject's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigstoreCandidate {
    /// A sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`), attached as an OCI 1.1 referrer.
    Bundle(Vec<u8>),
    /// cosign's `sha256-<hex>.sig` tag scheme: one layer's simple-signing payload and its annotations.
    SimpleSigning {
        payload: Vec<u8>,
        /// `dev.cosignproject.cosign/signature`, base64.
        signature: String,
        /// `dev.sigstore.cosign/certificate` and `.../chain`, PEM (keyless).
        certificate: Option<String>,
        chain: Option<String>,
        /// `dev.sigstore.cosign/bundle`: Rekor's signed entry timestamp, JSON (keyless).
        rekor_bundle: Option<String>,
    },
}

/// A Notation signature envelope found as a referrer (`application/vnd.cncf.notary.signature`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotationCandidate {
    /// `application/jose+json` or `application/cose`.
    pub media_type: String,
    pub envelope: Vec<u8>,
}

/// Keys, roots and trust policies that requirements name by path, read by the caller (the format does no I/O):
/// see [`Material::gather`].
#[derive(Debug, Clone, Default)]
pub struct Material {
    /// Path as written in the rule → file contents (sigstore keys and trusted roots, Notation trust policies).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Notation trust store directory as written in the rule → every file under it, by path relative to it
    /// (`x509/ca/NAME/root.pem`) → contents. `notation` turns them into certificates.
    pub trust_stores: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// The file system as policy material needs it; the registry and the client implement it over the real one.
pub trait Files {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>>;
    /// Every regular file under `dir`, recursively, as paths relative to it with `/` separators.
    fn walk(&self, dir: &str) -> std::io::Result<Vec<String>>;
}

/// A file a rule names could not be read.
#[derive(Debug, thiserror::Error)]
#[error("policy {rule:?}: reading {path}")]
pub struct MaterialError {
    pub rule: String,
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

impl Material {
    /// Reads every key, trusted root, trust policy and trust store that `rules` name. Fails on the first file that
    /// cannot be read, so a server refuses to start on a policy it could not apply.
    pub fn gather(rules: &[Rule], fs: &dyn Files) -> Result<Material, MaterialError> {
        let mut m = Material::default();
        for rule in rules {
            let err = |path: &str| {
                let (rule, path) = (rule.display_name(), path.to_string());
                move |source| MaterialError { rule, path, source }
            };
            for path in rule.require.paths() {
                if !m.files.contains_key(path) {
                    m.files.insert(path.into(), fs.read(path).map_err(err(path))?);
                }
            }
            for dir in rule.require.trust_stores() {
                if m.trust_stores.contains_key(dir) {
                    continue;
                }
                let mut files = BTreeMap::new();
                for rel in fs.walk(dir).map_err(err(dir))? {
                    let full = format!("{}/{rel}", dir.trim_end_matches('/'));
                    files.insert(rel, fs.read(&full).map_err(err(&full))?);
                }
                m.trust_stores.insert(dir.into(), files);
            }
        }
        Ok(m)
    }
}

/// Everything gathered for one subject. `None`: not gathered (the rule did not need it).
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub tuf: Option<TrustFinding>,
    pub notary_v1: Option<TrustFinding>,
    pub sigstore: Vec<SigstoreCandidate>,
    pub notation: Vec<NotationCandidate>,
}
