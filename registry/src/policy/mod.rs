//! Signature policy at the registry and the verifying mirror: the rules of `[[policy]]`, what each needs gathered
//! (from this registry's own storage, or from a mirror's upstream), and the one decision, made by
//! `wharf_format::policy::evaluate`.
//!
//! - [`Enforcer`] holds the policy, the files its rules name, and the verdict cache ([`cache`]); `decide` gathers
//!   what a rule needs from an [`EvidenceSource`] and evaluates.
//! - [`local`] is this registry's source: TUF 1.0 ([`tuf`]) and Notary v1 ([`notary`]) verified over stored
//!   metadata, sigstore and Notation signatures found beside the manifest.
//! - [`gate`] is where the manifest handlers ask: reads by tag (and by digest where the rule says so), pushes by
//!   tag and tag deletions in a protected namespace. [`exempt`] says which manifests are signatures, served
//!   without a verdict.
//! - [`upstream`] is a verifying mirror's source: the same verification over what its upstream serves, from the
//!   roots the rules pin.

pub mod cache;
pub mod exempt;
pub mod files;
pub mod gate;
pub mod local;
pub mod notary;
pub mod tuf;
pub mod upstream;

use std::future::Future;

use sha2::Digest as _;
use wharf_format::policy::{
    evaluate, Evidence, Material, NotationCandidate, Policy, Rule, SigstoreCandidate, Subject, TrustFinding, Verdict,
};

pub use cache::{Decision, VerdictCache};
pub use files::StdFiles;
pub use local::LocalEvidence;
pub use local::Stored;

/// Where evidence for a subject comes from: this registry's storage, or a mirror's upstream.
pub trait EvidenceSource: Sync {
    /// The subject's tag (or, by digest, the tags signed for its digest) as the repository's verified TUF 1.0
    /// data signs it.
    fn tuf(&self, s: &Subject) -> impl Future<Output = TrustFinding> + Send;
    /// The same from the repository's Notary v1 collection.
    fn notary_v1(&self, s: &Subject) -> impl Future<Output = TrustFinding> + Send;
    /// sigstore signatures of the subject's digest: bundle referrers and cosign's `.sig` tag.
    fn sigstore(&self, s: &Subject) -> impl Future<Output = Vec<SigstoreCandidate>> + Send;
    /// Notation signature referrers of the subject's digest.
    fn notation(&self, s: &Subject) -> impl Future<Output = Vec<NotationCandidate>> + Send;
}

/// The server's policy with the keys, roots and trust stores its rules name, read once at start, and the verdicts
/// decided under it.
pub struct Enforcer {
    policy: Policy,
    material: Material,
    version: u64,
    cache: VerdictCache,
}

impl Enforcer {
    pub fn new(policy: Policy, material: Material) -> Enforcer {
        let version = version_of(&policy, &material);
        Enforcer { policy, material, version, cache: VerdictCache::default() }
    }

    /// The rule deciding for `repo`, if any.
    pub fn rule_for(&self, repo: &wharf_format::RepositoryName) -> Option<&Rule> {
        self.policy.rule_for(repo)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A digest of the rules and of every file they name: verdicts decided under another version do not count.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The verdicts decided under this policy, and the repositories' epochs.
    pub fn cache(&self) -> &VerdictCache {
        &self.cache
    }

    /// Gathers what `rule` needs from `src` and decides. `now`: Unix seconds.
    pub async fn decide<S: EvidenceSource>(&self, src: &S, rule: &Rule, subject: &Subject, now: i64) -> Verdict {
        let needs = rule.require.needs();
        let mut e = Evidence::default();
        if needs.tuf {
            e.tuf = Some(src.tuf(subject).await);
        }
        if needs.notary_v1 {
            e.notary_v1 = Some(src.notary_v1(subject).await);
        }
        if needs.sigstore {
            e.sigstore = src.sigstore(subject).await;
        }
        if needs.notation {
            e.notation = src.notation(subject).await;
        }
        evaluate(rule, subject, &e, &self.material, now)
    }
}

/// Why a repository's stored trust data does not prove a name (TUF 1.0 or Notary v1): a finding shows its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Metadata on the chain expired at `at` (Unix seconds); `why` names the role.
    Expired { why: String, at: i64 },
    /// Anything else: a signature, a threshold, a version, inconsistent or unreadable data, a store failure.
    Invalid(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Expired { why, .. } | Problem::Invalid(why) => f.write_str(why),
        }
    }
}

impl From<String> for Problem {
    fn from(why: String) -> Problem {
        Problem::Invalid(why)
    }
}

impl From<&str> for Problem {
    fn from(why: &str) -> Problem {
        Problem::Invalid(why.to_owned())
    }
}

fn version_of(policy: &Policy, material: &Material) -> u64 {
    let mut h = sha2::Sha256::new();
    // The rules' debug form names every field and pattern, and cannot fail.
    h.update(format!("{:?}", policy.rules).as_bytes());
    for (path, bytes) in &material.files {
        h.update((path.len() as u64).to_be_bytes());
        h.update(path.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    for (dir, files) in &material.trust_stores {
        h.update(dir.as_bytes());
        for (rel, bytes) in files {
            h.update((rel.len() as u64).to_be_bytes());
            h.update(rel.as_bytes());
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
    }
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}
