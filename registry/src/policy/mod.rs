//! Signature policy at the registry and the verifying mirror: the rules of `[[policy]]`, what each needs gathered
//! (from this registry's own storage, or from a mirror's upstream), and the one decision, made by
//! `wharf_format::policy::evaluate`.
//!
//! (Skeleton: the local evidence source, the hooks on manifest reads and writes, and the verdict cache are being
//! written.)

pub mod exempt;
pub mod upstream;

use std::future::Future;

use wharf_format::policy::{
    evaluate, Evidence, Material, NotationCandidate, Policy, Rule, SigstoreCandidate, Subject, TrustFinding, Verdict,
};

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

/// The server's policy with the keys, roots and trust stores its rules name, read once at start.
pub struct Enforcer {
    policy: Policy,
    material: Material,
}

impl Enforcer {
    pub fn new(policy: Policy, material: Material) -> Enforcer {
        Enforcer { policy, material }
    }

    /// The rule deciding for `repo`, if any.
    pub fn rule_for(&self, repo: &wharf_format::RepositoryName) -> Option<&Rule> {
        self.policy.rule_for(repo)
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
