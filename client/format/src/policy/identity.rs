//! Which image a sigstore signature's payload may name (`critical.identity.docker-reference`), as containers'
//! `signedIdentity` says it (`containers-policy.json(5)`), with containers/image's rules: a signed reference that
//! names a repository only (no tag or digest) matches only `match_repository` and `exact_repository`.
//!
//! The payload is read here only to drop candidates whose identity does not match; the signature over the same
//! bytes is still verified by `sigstore`, so a candidate can be refused here but never accepted.

use serde::{Deserialize, Serialize};

use super::{SigstoreCandidate, Subject};

/// The identity rule of a sigstore requirement. `registry` is the `HOST[:PORT]` of the image being checked (the
/// policy's subject names a repository only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Identity {
    /// The signed reference is the checked one exactly: `HOST/REPO:TAG`, or `HOST/REPO@DIGEST` when checked by
    /// digest.
    MatchExact { registry: String },
    /// Checked by digest: the same repository; by tag: exactly. containers' default for `sigstoreSigned`.
    MatchRepoDigestOrExact { registry: String },
    /// The same repository, whatever the tag or digest signed.
    MatchRepository { registry: String },
    /// Exactly this reference (`HOST/REPO:TAG` or `HOST/REPO@DIGEST`).
    ExactReference { docker_reference: String },
    /// This repository (`HOST/REPO`), whatever the tag or digest signed.
    ExactRepository { docker_repository: String },
}

/// A reference as a signature names it: `HOST/REPO`, then a tag or a digest if any.
#[derive(Debug, PartialEq, Eq)]
struct Named<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

fn split(r: &str) -> Named<'_> {
    if let Some((name, digest)) = r.split_once('@') {
        return Named { name, tag: None, digest: Some(digest) };
    }
    let slash = r.rfind('/').map_or(0, |i| i + 1);
    match r[slash..].rfind(':') {
        Some(i) => Named { name: &r[..slash + i], tag: Some(&r[slash + i + 1..]), digest: None },
        None => Named { name: r, tag: None, digest: None },
    }
}

impl Identity {
    /// Whether a signature naming `signed` may stand for `s`.
    pub fn accepts(&self, signed: &str, s: &Subject) -> bool {
        let sig = split(signed);
        let checked = |registry: &str| format!("{registry}/{}", s.repository);
        let digest = s.digest.to_string();
        let exact = |registry: &str| {
            sig.name == checked(registry)
                && match &s.tag {
                    Some(t) => sig.tag == Some(t.as_str()) && sig.digest.is_none(),
                    None => sig.digest == Some(digest.as_str()) && sig.tag.is_none(),
                }
        };
        let name_only = sig.tag.is_none() && sig.digest.is_none();
        match self {
            Identity::MatchExact { registry } => exact(registry),
            Identity::MatchRepoDigestOrExact { registry } => match s.tag {
                Some(_) => exact(registry),
                None => !name_only && sig.name == checked(registry),
            },
            Identity::MatchRepository { registry } => sig.name == checked(registry),
            Identity::ExactReference { docker_reference } => !name_only && split(docker_reference) == sig,
            Identity::ExactRepository { docker_repository } => sig.name == docker_repository,
        }
    }

    /// The rule in words, for the requirement's description.
    pub fn describe(&self) -> String {
        match self {
            Identity::MatchExact { .. } => "identity: exactly the image".into(),
            Identity::MatchRepoDigestOrExact { .. } => "identity: the image, or its repository by digest".into(),
            Identity::MatchRepository { .. } => "identity: its repository".into(),
            Identity::ExactReference { docker_reference } => format!("identity: {docker_reference}"),
            Identity::ExactRepository { docker_repository } => format!("identity: repository {docker_repository}"),
        }
    }
}

/// The reference a simple-signing payload names, if it names one.
fn payload_reference(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("critical")?.get("identity")?.get("docker-reference")?.as_str().map(String::from)
}

/// The candidates whose signed identity `identity` accepts for `s`, and how many were dropped. A bundle carries no
/// docker reference, so under an identity rule it is dropped (fail closed).
pub fn filter(identity: &Identity, s: &Subject, candidates: &[SigstoreCandidate]) -> (Vec<SigstoreCandidate>, usize) {
    let kept: Vec<SigstoreCandidate> = candidates
        .iter()
        .filter(|c| match c {
            SigstoreCandidate::SimpleSigning { payload, .. } => {
                payload_reference(payload).is_some_and(|r| identity.accepts(&r, s))
            }
            SigstoreCandidate::Bundle(_) => false,
        })
        .cloned()
        .collect();
    let dropped = candidates.len() - kept.len();
    (kept, dropped)
}
